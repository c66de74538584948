//! `cargo xtask lab --cycles N`: start the tracer, run real-driver traffic under it, stop it,
//! N times in one boot per kernel, with the other vCPU kept busy (tests/lab/guest/cycles.sh).
//!
//! Starting and stopping tracing is when the kernel patches its own code (static keys of the
//! tracepoints, function hooks). Guests under TCG have died of `Oops: int3` there; this mode
//! reproduces it on purpose and counts, so the emulator settings the lab uses rest on
//! measurements (docs/lab.md, "Guest crashes"). Each cycle prints `LAB-CYCLE <i> <status>` on
//! the console as it ends, so a guest that dies still says how far it got.

use anyhow::{bail, Result};
use std::fs;
use std::time::Duration;

use super::{boot_guest, repo_root, GuestOptions};

/// What a boot's console says of its cycles.
#[derive(Debug, Default, PartialEq)]
pub struct CycleOutcome {
    /// Cycles that ended with the tracer stopped cleanly.
    pub ok: u32,
    /// The status of a cycle that did not end `ok` (`not-ready`, `tracer-exit-1`).
    pub failed: Option<(u32, String)>,
    /// The kernel's first crash line (`Oops: ...`, `BUG: ...`, `Kernel panic ...`) and the
    /// `RIP:` line after it: a guest that died.
    pub crash: Option<String>,
}

const CRASH_MARKS: &[&str] = &["Oops:", "BUG:", "Kernel panic", "general protection fault"];

impl CycleOutcome {
    pub fn from_console(console: &str) -> CycleOutcome {
        let mut out = CycleOutcome::default();
        let lines: Vec<&str> = console.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some(rest) = line.split("LAB-CYCLE ").nth(1) {
                let mut f = rest.split_whitespace();
                let n: u32 = f.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                match f.next() {
                    Some("ok") => out.ok = out.ok.max(n),
                    Some(other) if out.failed.is_none() => {
                        out.failed = Some((n, other.to_string()));
                    }
                    _ => {}
                }
            }
            if out.crash.is_none() && CRASH_MARKS.iter().any(|m| line.contains(m)) {
                let what = kernel_text(line);
                let rip = lines[i..]
                    .iter()
                    .take(40)
                    .find(|l| l.contains("RIP:"))
                    .map(|l| format!("; {}", kernel_text(l)))
                    .unwrap_or_default();
                out.crash = Some(format!("{what}{rip}"));
            }
        }
        out
    }
}

/// A console line without its `[   12.345678] ` time stamp.
fn kernel_text(line: &str) -> &str {
    let l = line.trim();
    match (l.starts_with('['), l.find("] ")) {
        (true, Some(i)) => l[i + 2..].trim(),
        _ => l,
    }
}

/// Medians of the tracer's start-up (start to ready) and stop (SIGINT to exit, with the
/// traffic between) from the guest's `cycles.log` lines
/// `<i> status=<st> start=<t0> ready=<t1> stopped=<t2>`.
fn medians(log: &str) -> Option<(f64, f64)> {
    let mut ready = Vec::new();
    let mut rest = Vec::new();
    for line in log.lines() {
        let field = |k: &str| -> Option<f64> {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .and_then(|v| v.parse().ok())
        };
        if let (Some(t0), Some(t1), Some(t2)) =
            (field("start="), field("ready="), field("stopped="))
        {
            ready.push(t1 - t0);
            rest.push(t2 - t1);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Some((med(&mut ready)?, med(&mut rest)?))
}

pub fn run(kernels: &[GuestOptions], n: u32) -> Result<()> {
    if n == 0 {
        bail!("--cycles needs at least 1 cycle");
    }
    let guest = fs::read_to_string(repo_root().join("tests/lab/guest/cycles.sh"))?;
    let mut bad = Vec::new();
    let mut lines = Vec::new();
    for o in kernels {
        if o.tracer.is_none() {
            bail!("--cycles needs the tracer");
        }
        let script = format!(
            "CYCLES={n}\nTRACER_ARGS='{}'\n{guest}",
            o.tracer_args.replace('\'', "'\\''")
        );
        // About 15 s per cycle under TCG (start-up is most of it), with a wide margin.
        let timeout = o
            .timeout
            .unwrap_or(Duration::from_secs(180 + 60 * u64::from(n)));
        let r = boot_guest(
            &GuestOptions {
                timeout: Some(timeout),
                ..o.clone()
            },
            &script,
            &[],
            &[],
            0,
        )?;
        let console = fs::read_to_string(&r.console_log)?;
        let c = CycleOutcome::from_console(&console);
        let emu = format!("{}, -accel {}", o.emulator.version(), o.emulator.accel());
        let log = fs::read_to_string(r.files_dir.join("cycles/cycles.log")).unwrap_or_default();
        let times = medians(&log)
            .map(|(a, b)| format!(", start-up median {a:.1} s, traffic and stop median {b:.1} s"))
            .unwrap_or_default();
        // The loads' iteration counts (cycles.sh): proof that the other vCPU was busy.
        let summary = fs::read_to_string(r.files_dir.join("cycles/summary")).unwrap_or_default();
        let load = summary
            .lines()
            .find(|l| l.starts_with("load_"))
            .unwrap_or("load: not reported")
            .to_string();
        // Not reported (the guest died before shipping it) counts as idle unless it crashed.
        let idle = !load.starts_with("load_") || load.split_whitespace().any(|f| f.ends_with("=0"));
        let crashes = u32::from(c.crash.is_some());
        let mut line = format!(
            "cycles: {} ({emu}): {} of {n} cycles, {crashes} guest crash(es){times}, boot {:.0} s; {load}",
            o.kernel.kver,
            c.ok,
            r.elapsed.as_secs_f64()
        );
        if let Some(crash) = &c.crash {
            line.push_str(&format!(
                "\n  the guest died in cycle {}: {crash}",
                c.ok + 1
            ));
        }
        if let Some((i, why)) = &c.failed {
            line.push_str(&format!("\n  cycle {i}: {why}"));
            if let Ok(err) =
                fs::read_to_string(r.files_dir.join(format!("cycles/tracer.{i}.stderr")))
            {
                line.push_str(&format!(
                    "\n  its tracer said: {}",
                    err.lines().last().unwrap_or("")
                ));
            }
        }
        if idle && c.crash.is_none() {
            line.push_str("\n  a load never ran: the cycles were not under load");
        }
        if c.ok < n || c.crash.is_some() || (idle && c.crash.is_none()) {
            if c.crash.is_none() && c.failed.is_none() {
                line.push_str(&format!("\n  {}", r.describe_end()));
            }
            bad.push(o.kernel.kver.clone());
        }
        eprintln!("{line}");
        lines.push(line);
    }
    println!();
    for l in &lines {
        println!("{l}");
    }
    if !bad.is_empty() {
        bail!("attach/detach cycles failed on {}", bad.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_counts_its_cycles() {
        let console = "LAB-INIT\nLAB-CYCLE 1 ok\nLAB-CYCLE 2 ok\nLAB-EXIT 0\n";
        assert_eq!(
            CycleOutcome::from_console(console),
            CycleOutcome {
                ok: 2,
                failed: None,
                crash: None
            }
        );
    }

    #[test]
    fn a_guest_that_died_says_where_and_how_far_it_got() {
        let console = "LAB-CYCLE 1 ok\nLAB-CYCLE 2 ok\n\
            [  201.112233] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n\
            [  201.112300] CPU: 1 PID: 77 Comm: cat Not tainted 6.12.57+deb13-amd64 #1\n\
            [  201.112400] RIP: 0010:__mmap_lock_do_trace_released+0x5/0x90\n\
            [  201.2] Kernel panic - not syncing: Fatal exception in interrupt\n";
        let c = CycleOutcome::from_console(console);
        assert_eq!(c.ok, 2);
        assert_eq!(
            c.crash.as_deref(),
            Some(
                "Oops: int3: 0000 [#1] PREEMPT SMP NOPTI; RIP: 0010:__mmap_lock_do_trace_released+0x5/0x90"
            )
        );
    }

    #[test]
    fn a_cycle_whose_tracer_failed_is_named() {
        let c = CycleOutcome::from_console("LAB-CYCLE 1 ok\nLAB-CYCLE 2 tracer-exit-1\n");
        assert_eq!(c.ok, 1);
        assert_eq!(c.failed, Some((2, "tracer-exit-1".into())));
        assert_eq!(c.crash, None);
    }

    #[test]
    fn start_up_and_stop_medians_come_from_the_log() {
        let log = "1 status=0 start=10.0 ready=19.0 stopped=21.0\n\
                   2 status=0 start=22.0 ready=32.0 stopped=35.0\n\
                   3 status=0 start=36.0 ready=47.0 stopped=49.0\n";
        assert_eq!(medians(log), Some((10.0, 2.0)));
        assert_eq!(medians(""), None);
    }
}
