//! `cargo xtask lab --soak MINUTES`: one tracer for a long run of mixed traffic
//! (tests/lab/guest/soak.sh), judged on what a user leaving it on for hours cares about: its
//! memory and map fill stay flat after warm-up, no event is lost at the default ring, and the
//! long run finds exactly what one round of the same mix finds.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{boot_guest, modules, repo_root, GuestOptions};

/// Past warm-up, memory may grow by this fraction of its warm-up level at most: the stack
/// table and the lock-order graph only grow with stacks and classes never seen before, which
/// a repeated mix stops producing.
const RSS_GROWTH_MAX: f64 = 0.10;

/// The soak is recorded in segments of this long, each analysed and deleted in the guest: the
/// mix records about 14 MB a minute, and the guest has 2 GiB.
const SEGMENT_SECONDS: u32 = 300;

/// One `stats.log` line: `t=<uptime> round=<n> phase=<short|soak|end> guest_rss_kib=<kib>
/// stats key=value ...` (the tracer's answer to the `stats` control command).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t: f64,
    pub phase: String,
    pub values: BTreeMap<String, f64>,
}

impl Sample {
    fn parse(line: &str) -> Option<Sample> {
        let mut values = BTreeMap::new();
        let mut phase = String::new();
        for field in line.split_whitespace() {
            if let Some((k, v)) = field.split_once('=') {
                if k == "phase" {
                    phase = v.to_string();
                } else if let Ok(x) = v.parse() {
                    values.insert(k.to_string(), x);
                }
            }
        }
        Some(Sample {
            t: *values.get("t")?,
            phase,
            values,
        })
    }

    pub fn get(&self, k: &str) -> f64 {
        self.values.get(k).copied().unwrap_or(0.0)
    }
}

pub fn parse_samples(log: &str) -> Vec<Sample> {
    log.lines().filter_map(Sample::parse).collect()
}

/// The figures of a soak and whether it met its bars.
#[derive(Debug, Default)]
pub struct Judgement {
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

/// `(id, location)` of every finding of a `tracer analyze --json` document.
pub fn finding_keys(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    doc["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["id"].as_str().unwrap_or("").to_string(),
                f["location"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Judges the soak from its samples (in order), the guest's status lines and the two
/// reports. Warm-up: the first quarter of the soak's samples (at least one).
pub fn judge(
    samples: &[Sample],
    status: &BTreeMap<String, String>,
    short: &BTreeSet<(String, String)>,
    segments: &[(String, BTreeSet<(String, String)>)],
) -> Judgement {
    let mut j = Judgement::default();
    let soaked: Vec<&Sample> = samples.iter().filter(|s| s.phase != "short").collect();
    let (Some(first), Some(last)) = (soaked.first(), soaked.last()) else {
        j.failures
            .push("no samples from the soak (did the guest run a round?)".into());
        return j;
    };
    let warm = soaked[(soaked.len() / 4).max(1).min(soaked.len()) - 1];
    let minutes = (last.t - first.t) / 60.0;
    j.lines.push(format!(
        "{} rounds over {minutes:.1} min after warm-up ({} samples; warm-up ends at round {})",
        status.get("soak_rounds").map(String::as_str).unwrap_or("?"),
        soaked.len(),
        warm.get("round")
    ));
    let rss_w = warm.get("rss_kib");
    let rss_end = last.get("rss_kib");
    let rss_max = soaked
        .iter()
        .skip_while(|s| s.t <= warm.t)
        .map(|s| s.get("rss_kib"))
        .fold(rss_end, f64::max);
    let growth = if rss_w > 0.0 {
        (rss_max - rss_w) / rss_w
    } else {
        f64::INFINITY
    };
    j.lines.push(format!(
        "tracer RSS: {:.1} MiB after the short run, {:.1} MiB at the end of warm-up, at most {:.1} MiB after it, {:.1} MiB at the end ({:+.1}% after warm-up; bar {:.0}%)",
        soaked[0].get("rss_kib") / 1024.0,
        rss_w / 1024.0,
        rss_max / 1024.0,
        rss_end / 1024.0,
        growth * 100.0,
        RSS_GROWTH_MAX * 100.0
    ));
    if growth > RSS_GROWTH_MAX {
        j.failures.push(format!(
            "tracer RSS grew {:.1}% after warm-up",
            growth * 100.0
        ));
    }
    for (k, what) in [
        ("thread_slots", "per-thread slots in use"),
        ("thread_slots_kernel", "of them owned by kernel threads"),
        ("guest_kthreads", "kernel threads alive in the guest"),
        (
            "thread_slots_gone",
            "slots of live owners whose thread is gone",
        ),
        ("sites", "call-site cache entries"),
        ("stacks", "stacks in the stack table"),
        ("hooks", "hooks attached"),
    ] {
        if !last.values.contains_key(k) {
            continue;
        }
        let series: Vec<f64> = soaked.iter().map(|s| s.get(k)).collect();
        let max_after = soaked
            .iter()
            .skip_while(|s| s.t <= warm.t)
            .map(|s| s.get(k))
            .fold(last.get(k), f64::max);
        j.lines.push(format!(
            "{what}: {} at the end of warm-up, at most {} after it, {} at the end (max over the run {})",
            warm.get(k),
            max_after,
            last.get(k),
            series.iter().copied().fold(0.0, f64::max)
        ));
    }
    // Slots of threads that no longer exist are state nothing will clear (an exit the
    // kernel side did not see): they must not accumulate.
    if last.get("thread_slots_gone") > warm.get("thread_slots_gone") {
        j.failures.push(format!(
            "slots of threads that are gone grew from {} to {} after warm-up",
            warm.get("thread_slots_gone"),
            last.get("thread_slots_gone")
        ));
    }
    let slots_cap = last.get("thread_slots_max");
    if slots_cap > 0.0 && last.get("thread_slots") >= slots_cap {
        j.failures.push("the per-thread slots are full".into());
    }
    let lost = last.get("lost");
    let untracked = last.get("untracked");
    j.lines.push(format!(
        "events: {} recorded in the short run, {} in the soak; lost {lost}, untracked calls {untracked}",
        status.get("short_events").map(String::as_str).unwrap_or("?"),
        status.get("soak_events").map(String::as_str).unwrap_or("?"),
    ));
    if lost > 0.0 {
        j.failures.push(format!("{lost} events lost"));
    }
    if untracked > 0.0 {
        j.failures.push(format!("{untracked} calls untracked"));
    }
    let show = |s: &BTreeSet<(String, String)>| {
        s.iter()
            .map(|(k, l)| format!("{k} at {l}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    j.lines.push(format!(
        "findings: short run {} ({}); the soak's {} segment(s): {}",
        short.len(),
        show(short),
        segments.len(),
        segments
            .iter()
            .map(|(n, k)| format!("{n} {}", k.len()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if segments.is_empty() {
        j.failures.push("no soak segment was analysed".into());
    }
    for (name, soak) in segments {
        if short != soak {
            j.failures.push(format!(
                "{name} found something else than the short run: only in the short run: [{}]; only in {name}: [{}]",
                show(&short.difference(soak).cloned().collect()),
                show(&soak.difference(short).cloned().collect())
            ));
        }
    }
    if short.is_empty() {
        j.failures
            .push("the short run found nothing, though the mix runs the test module's bugs".into());
    }
    for (k, want) in [
        ("tracer_exit", "0"),
        ("short_failed_workloads", "0"),
        ("soak_failed_workloads", "0"),
    ] {
        let got = status.get(k).map(String::as_str).unwrap_or("missing");
        if got != want {
            j.failures.push(format!("{k} = {got} (want {want})"));
        }
    }
    j
}

fn read_status(path: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn read_report(path: &Path) -> Result<BTreeSet<(String, String)>> {
    let text = fs::read_to_string(path).with_context(|| format!("no report {}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(finding_keys(&doc))
}

pub fn run(opts: &GuestOptions, minutes: u32) -> Result<()> {
    if minutes == 0 {
        bail!("--soak needs at least 1 minute");
    }
    if opts.tracer.is_none() {
        bail!("--soak needs the tracer");
    }
    let kos = modules::build_module(
        &opts.kernel,
        &repo_root().join("tests/lab/modules/tracer_scenarios"),
    )?;
    let guest = fs::read_to_string(repo_root().join("tests/lab/guest/soak.sh"))?;
    let script = format!(
        "SOAK_SECONDS={}\nSEGMENT_SECONDS={SEGMENT_SECONDS}\nTRACER_ARGS='{}'\n{guest}",
        u64::from(minutes) * 60,
        opts.tracer_args.replace('\'', "'\\''")
    );
    // Boot, start-up, one short round, the rounds (the last may start just before the end),
    // the analysis of both recordings in the guest: a wide margin over the soak itself.
    let timeout = opts
        .timeout
        .unwrap_or(Duration::from_secs(900 + u64::from(minutes) * 60 * 3 / 2));
    let r = boot_guest(
        &GuestOptions {
            timeout: Some(timeout),
            ..opts.clone()
        },
        &script,
        &kos,
        &[],
        0,
    )?;
    let dir = r.files_dir.join("soak");
    let status = read_status(&dir.join("tracer.status"));
    let samples = parse_samples(&fs::read_to_string(dir.join("stats.log")).unwrap_or_default());
    if r.guest_status != Some(0) || samples.is_empty() {
        bail!(
            "the soak did not complete ({}); its stats: {} samples; tracer stderr: {}",
            r.describe_end(),
            samples.len(),
            super::qemu::tail(&dir.join("tracer.stderr"), 5)
        );
    }
    let short = read_report(&dir.join("short.json"))?;
    let n: u32 = status
        .get("soak_segments")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut segments = Vec::new();
    for i in 1..=n {
        let name = format!("soak{i}");
        segments.push((
            name.clone(),
            read_report(&dir.join(format!("{name}.json")))?,
        ));
    }
    let j = judge(&samples, &status, &short, &segments);
    println!();
    println!(
        "soak: {} for {minutes} min ({}, -accel {}), files in {}",
        opts.kernel.kver,
        opts.emulator.version(),
        opts.emulator.accel(),
        dir.display()
    );
    for l in &j.lines {
        println!("  {l}");
    }
    if !j.failures.is_empty() {
        for f in &j.failures {
            println!("  FAILED: {f}");
        }
        let log = fs::read_to_string(dir.join("failures.log")).unwrap_or_default();
        for l in log.lines().take(5) {
            println!("  workload: {l}");
        }
        bail!("the soak failed: {}", j.failures.join("; "));
    }
    println!("soak: passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: f64, round: u32, phase: &str, rss: u32, lost: u32) -> String {
        format!(
            "t={t} round={round} phase={phase} guest_rss_kib={rss} stats events=10 lost={lost} untracked=0 rss_kib={rss} thread_slots=12 thread_slots_max=8192 sites=40 stacks=300 hooks=70"
        )
    }

    fn status() -> BTreeMap<String, String> {
        [
            ("tracer_exit", "0"),
            ("short_failed_workloads", "0"),
            ("soak_failed_workloads", "0"),
            ("soak_rounds", "8"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn keys(v: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn samples(rss: &[u32], lost_at_end: u32) -> Vec<Sample> {
        let mut log = vec![line(10.0, 0, "short", rss[0], 0)];
        for (i, r) in rss.iter().enumerate().skip(1) {
            let lost = if i == rss.len() - 1 { lost_at_end } else { 0 };
            log.push(line(10.0 + 60.0 * i as f64, i as u32, "soak", *r, lost));
        }
        parse_samples(&log.join("\n"))
    }

    #[test]
    fn a_flat_run_with_the_same_findings_passes() {
        let f = keys(&[("exporter-relock", "tsc_relock_map_dma_buf")]);
        let s = samples(
            &[9000, 10000, 10200, 10300, 10300, 10350, 10300, 10400, 10300],
            0,
        );
        let j = judge(
            &s,
            &status(),
            &f,
            &[("soak1".into(), f.clone()), ("soak2".into(), f.clone())],
        );
        assert!(j.failures.is_empty(), "{:?}", j.failures);
        assert!(
            j.lines.iter().any(|l| l.contains("tracer RSS")),
            "{:?}",
            j.lines
        );
    }

    #[test]
    fn growing_memory_lost_events_or_other_findings_fail() {
        let f = keys(&[("exporter-relock", "tsc_relock_map_dma_buf")]);
        let g = keys(&[
            ("exporter-relock", "tsc_relock_map_dma_buf"),
            ("lock-order-inversion", "x"),
        ]);
        let grows = samples(
            &[9000, 10000, 11000, 12000, 13000, 14000, 15000, 16000, 17000],
            0,
        );
        let seg = |k: &BTreeSet<(String, String)>| vec![("soak1".to_string(), k.clone())];
        let j = judge(&grows, &status(), &f, &seg(&f));
        assert!(
            j.failures.iter().any(|f| f.contains("RSS grew")),
            "{:?}",
            j.failures
        );
        let flat = samples(&[9000, 10000, 10000, 10000, 10000], 3);
        let j = judge(&flat, &status(), &f, &seg(&f));
        assert_eq!(j.failures, vec!["3 events lost".to_string()]);
        let two = [("soak1".to_string(), f.clone()), ("soak2".to_string(), g)];
        let j = judge(&flat[..4], &status(), &f, &two);
        assert_eq!(j.failures.len(), 1, "{:?}", j.failures);
        assert!(
            j.failures[0].contains("only in soak2: [lock-order-inversion at x]"),
            "{:?}",
            j.failures
        );
        let j = judge(&flat[..4], &status(), &f, &[]);
        assert!(
            j.failures[0].contains("no soak segment"),
            "{:?}",
            j.failures
        );
        let j = judge(
            &flat[..4],
            &status(),
            &BTreeSet::new(),
            &seg(&BTreeSet::new()),
        );
        assert!(j.failures[0].contains("found nothing"), "{:?}", j.failures);
    }
}
