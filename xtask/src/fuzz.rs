//! `cargo xtask fuzz`: libFuzzer over what the tracer reads that someone else wrote: the
//! recording reader (`recording`), the raw-event decoder (`decode`) and `tracer analyze`
//! end to end (`analyze`: read, replay through the engine, every report). Targets live in
//! `fuzz/` (its own workspace); the build adds the coverage instrumentation cargo-fuzz would
//! (stable rustc: no sanitizer), and every target aborts on an allocation over 64 MiB.
//!
//! Seeds: the lab recordings in tests/data, cut at a frame boundary to at most `SEED_BYTES`
//! (a recording cut between frames is a valid, cut-short recording). The corpus and any
//! crashing input stay in lab-cache/fuzz (git-ignored); a crash is then a unit test to write.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};

pub const TARGETS: &[&str] = &["recording", "decode", "analyze"];
/// Largest input libFuzzer makes.
const MAX_LEN: usize = 64 << 10;
/// Seeds are cut to this size (between two frames).
const SEED_BYTES: usize = 48 << 10;
/// Per-input time limit (s): an input that takes longer is a hang, reported as a crash.
const TIMEOUT_S: u32 = 10;

/// The flags cargo-fuzz gives rustc for libFuzzer's coverage feedback.
const RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// One target's run, from libFuzzer's final statistics.
#[derive(Debug, PartialEq)]
pub struct Stats {
    pub runs: u64,
    pub secs: f64,
    pub peak_rss_mb: u64,
    pub corpus: usize,
}

/// The numbers libFuzzer prints with -print_final_stats=1.
pub fn parse_stats(stderr: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((
        field("stat::number_of_executed_units:")?,
        field("stat::peak_rss_mb:")?,
    ))
}

/// A recording cut after its last whole frame within `max` bytes (None if not a recording
/// or if even its metadata does not fit).
pub fn seed_of(bytes: &[u8], max: usize) -> Option<Vec<u8>> {
    if bytes.len() < 12 || &bytes[..8] != b"DMABUFTR" {
        return None;
    }
    let format = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
    let mut off = match format {
        1 => 12,
        _ => 13 + *bytes.get(12)? as usize,
    };
    let mut last = None;
    while off + 5 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off + 1..off + 5].try_into().ok()?) as usize;
        let end = off + 5 + len;
        if end > max || end > bytes.len() {
            break;
        }
        last = Some(end);
        off = end;
    }
    last.map(|e| bytes[..e].to_vec())
}

fn build(root: &Path) -> Result<PathBuf> {
    let target_dir = root.join("target/fuzz");
    println!("fuzz: building the targets with coverage instrumentation");
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root.join("fuzz"))
        .env("RUSTFLAGS", RUSTFLAGS)
        .env("CARGO_TARGET_DIR", &target_dir)
        // --target: the flags must not reach build scripts and proc macros.
        .args([
            "build",
            "--release",
            "--bins",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .status()
        .context("running cargo build for fuzz/")?;
    if !st.success() {
        bail!("building the fuzz targets failed");
    }
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release"))
}

/// The recordings under `dir` and its subdirectories (tests/data/full-stream), sorted.
fn recordings(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(recordings(&p)?);
        } else if p.extension().is_some_and(|x| x == "rec") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn seeds(root: &Path, dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut n = 0;
    for p in recordings(&root.join("tests/data"))? {
        let bytes = std::fs::read(&p).with_context(|| format!("reading seed {}", p.display()))?;
        if let Some(seed) = seed_of(&bytes, SEED_BYTES) {
            let name = p
                .strip_prefix(root.join("tests/data"))
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('/', "-");
            std::fs::write(dir.join(name), seed)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Runs each target for `runs` executions; fails on the first crash, hang or allocation
/// over the bound, naming the input libFuzzer kept.
pub fn run(root: &Path, runs: u64, targets: &[String]) -> Result<Vec<(String, Stats)>> {
    for t in targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!(
                "--target {t}: no such fuzz target (targets: {})",
                TARGETS.join(", ")
            );
        }
    }
    let bin = build(root)?;
    let work = root.join("lab-cache/fuzz");
    let seed_dir = work.join("seeds");
    let n = seeds(root, &seed_dir)?;
    let mut out = Vec::new();
    for t in targets {
        let corpus = work.join("corpus").join(t);
        let artifacts = work.join("artifacts");
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        println!(
            "fuzz: {t}: {runs} executions from {n} seeds (corpus {})",
            corpus.display()
        );
        let started = Instant::now();
        let o = Command::new(bin.join(t))
            .arg(format!("-runs={runs}"))
            .arg(format!("-max_len={MAX_LEN}"))
            .arg(format!("-timeout={TIMEOUT_S}"))
            .arg("-rss_limit_mb=2048")
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/{t}-", artifacts.display()))
            .arg(&corpus)
            .arg(&seed_dir)
            .output()
            .with_context(|| format!("running fuzz target {t}"))?;
        let secs = started.elapsed().as_secs_f64();
        let err = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() {
            let tail: Vec<&str> = err.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "fuzz target {t} failed after {secs:.0} s (input kept in {}):\n{}",
                artifacts.display(),
                tail.join("\n")
            );
        }
        let (done, rss) = parse_stats(&err)
            .with_context(|| format!("fuzz target {t}: no final statistics in its output"))?;
        if done < runs {
            bail!("fuzz target {t} stopped after {done} of {runs} executions");
        }
        let stats = Stats {
            runs: done,
            secs,
            peak_rss_mb: rss,
            corpus: std::fs::read_dir(&corpus)?.count(),
        };
        println!(
            "fuzz: {t}: {} executions in {:.0} s ({:.0}/s), 0 crashes, 0 hangs, 0 allocations over 64 MiB, peak RSS {} MiB, corpus {} inputs",
            stats.runs,
            stats.secs,
            stats.runs as f64 / stats.secs.max(1e-9),
            stats.peak_rss_mb,
            stats.corpus
        );
        out.push((t.clone(), stats));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_statistics_are_read() {
        let err = "Done 200000 runs in 16 second(s)\nstat::number_of_executed_units: 200000\n\
                   stat::average_exec_per_sec:     12500\nstat::peak_rss_mb:              47\n";
        assert_eq!(parse_stats(err), Some((200_000, 47)));
        assert_eq!(parse_stats("INFO: crash"), None);
    }

    #[test]
    fn seeds_are_recordings_cut_between_frames() {
        let data =
            std::fs::read(crate::lab::repo_root().join("tests/data/abba-no-ctx.rec")).unwrap();
        let s = seed_of(&data, SEED_BYTES).unwrap();
        assert!(s.len() <= SEED_BYTES && s.len() > 12);
        assert_eq!(&s[..8], b"DMABUFTR");
        // Whole frames: walking them ends exactly at the end.
        let mut off = 12;
        while off < s.len() {
            let len = u32::from_le_bytes(s[off + 1..off + 5].try_into().unwrap()) as usize;
            off += 5 + len;
        }
        assert_eq!(off, s.len());
        assert!(seed_of(b"hello", 100).is_none());
        assert!(seed_of(&data, 20).is_none(), "not even the metadata fits");
    }

    #[test]
    fn seeds_come_from_every_recording_under_tests_data() {
        let root = crate::lab::repo_root().join("tests/data");
        let all = recordings(&root).unwrap();
        assert!(
            all.iter().any(|p| p.ends_with("abba-no-ctx.rec")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|p| p.starts_with(root.join("full-stream"))),
            "{all:?}"
        );
        assert!(all.iter().all(|p| p.is_file()), "{all:?}");
    }
}
