//! `cargo xtask lab --bench`: what the tracer costs per reservation lock, measured in one
//! boot of a real kernel. See docs/overhead.md.
//!
//! The guest loads tests/lab/modules/tracer_bench, whose `run` file times three loops in the
//! kernel (`resv_pair`, `ww_txn3`, `importer_cycle`). Each repetition runs them once under
//! `tracer record` (started, waited for with `--ready-file`, stopped with SIGINT) and once
//! without a tracer; the order alternates between repetitions. Per run the guest ships
//! `bench/r<rep>.<config>` (the module's result lines plus `key=value` lines) and, for the
//! tracer, its stderr. The host takes medians over the repetitions and prints the table.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{boot_guest, modules, repo_root, GuestOptions};

/// The loops of tracer_bench, in the order it runs them, with what one operation is.
pub const LOOPS: &[(&str, &str)] = &[
    ("resv_pair", "dma_resv_lock(obj, NULL) + dma_resv_unlock"),
    (
        "ww_txn3",
        "ww transaction: lock 3 objects with a ctx, unlock 3",
    ),
    ("importer_cycle", "attach, lock, map, unmap, unlock, detach"),
];

pub const CONFIGS: &[&str] = &["none", "tracer"];

/// USER_HZ: the unit of utime/stime in /proc/PID/stat (100 on x86).
const USER_HZ: f64 = 100.0;

/// One configuration's run in one repetition.
#[derive(Debug, Default, Clone)]
pub struct RunResult {
    /// loop name -> ns per operation.
    pub ns_per_op: BTreeMap<String, u64>,
    /// Every other `key=value` line.
    pub keys: BTreeMap<String, String>,
}

/// Parse a `bench/r<rep>.<config>` file.
pub fn parse_run(text: &str) -> RunResult {
    let mut r = RunResult::default();
    for line in text.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some(ns) = words.find_map(|w| w.strip_prefix("ns_per_op=")) {
            if let Ok(v) = ns.parse() {
                r.ns_per_op.insert(first.to_string(), v);
            }
        } else if let Some((k, v)) = line.split_once('=') {
            r.keys.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    r
}

/// From the tracer's last stderr line `tracer: N events in Xs, S stacks, L lost...`:
/// (events, lost).
pub fn parse_tracer_summary(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(" events in ") && l.contains(" lost"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |w: &str| -> Option<u64> {
        let i = words.iter().position(|x| x.trim_end_matches(',') == w)?;
        words
            .get(i.checked_sub(1)?)?
            .trim_end_matches(',')
            .parse()
            .ok()
    };
    Some((before("events")?, before("lost")?))
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// The guest script: `reps` repetitions, alternating which configuration runs first.
pub fn guest_script(iters: u32, reps: u32) -> String {
    format!(
        r#". /lab/lib.sh
uptime_s() {{ cut -d' ' -f1 /proc/uptime; }}
B=/sys/kernel/debug/tracer_bench
D=/out/bench
mkdir -p $D
if [ ! -e $B/run ]; then
	echo "LAB: tracer_bench is not loaded"
	exit 1
fi
# Warm-up (caches, first allocations), not measured.
echo 1000 > $B/run || exit 1

run_none() {{
	echo {iters} > $B/run || {{ echo "LAB: bench run failed"; return 1; }}
	cat $B/result > $D/r$1.none
}}

run_tracer() {{
	f=$D/r$1.tracer
	rm -f /tmp/ready.b /tmp/b.rec
	t0=$(uptime_s)
	/bin/tracer record -o /tmp/b.rec --ready-file /tmp/ready.b 2> $D/r$1.tracer.stderr &
	tp=$!
	if ! wait_ready /tmp/ready.b $tp; then
		echo "ready=failed" > $f
		kill -KILL $tp 2>/dev/null
		wait $tp
		return 1
	fi
	t1=$(uptime_s)
	echo {iters} > $B/run || echo "LAB: bench run failed"
	t2=$(uptime_s)
	cat $B/result > $f
	echo "ready_after=$(awk "BEGIN{{print $t1 - $t0}}")" >> $f
	echo "loops_took=$(awk "BEGIN{{print $t2 - $t1}}")" >> $f
	# utime and stime (all threads, USER_HZ ticks) just before the stop.
	echo "cpu_ticks_before_stop=$(awk '{{print $14 + $15}}' /proc/$tp/stat)" >> $f
	echo "tracer_wall=$(awk "BEGIN{{print $(uptime_s) - $t0}}")" >> $f
	kill -INT $tp
	ts=$(uptime_s)
	i=0
	while kill -0 $tp 2>/dev/null && [ "$i" -lt 300 ]; do
		i=$((i + 1))
		sleep 0.1
	done
	if kill -0 $tp 2>/dev/null; then
		echo "sigint=ignored" >> $f
		kill -KILL $tp
	fi
	wait $tp
	echo "tracer_exit=$?" >> $f
	echo "stop_after=$(awk "BEGIN{{print $(uptime_s) - $ts}}")" >> $f
	echo "recording_bytes=$(wc -c < /tmp/b.rec 2>/dev/null || echo 0)" >> $f
	rm -f /tmp/b.rec
}}

r=1
while [ $r -le {reps} ]; do
	echo "LAB: bench repetition $r of {reps}"
	if [ $((r % 2)) = 1 ]; then
		run_tracer $r
		run_none $r
	else
		run_none $r
		run_tracer $r
	fi
	r=$((r + 1))
done
ship_tree $D bench
"#
    )
}

/// All runs found under `files/bench`: (config, rep) -> result.
pub fn collect(dir: &Path) -> Result<BTreeMap<(String, u32), RunResult>> {
    let mut out = BTreeMap::new();
    let entries =
        fs::read_dir(dir).with_context(|| format!("no bench results in {}", dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix('r') else {
            continue;
        };
        let Some((rep, config)) = rest.split_once('.') else {
            continue;
        };
        if !CONFIGS.contains(&config) {
            continue;
        }
        let Ok(rep) = rep.parse::<u32>() else {
            continue;
        };
        let mut r = parse_run(&fs::read_to_string(e.path())?);
        if config == "tracer" {
            let stderr =
                fs::read_to_string(dir.join(format!("r{rep}.tracer.stderr"))).unwrap_or_default();
            if let Some((events, lost)) = parse_tracer_summary(&stderr) {
                r.keys.insert("events".into(), events.to_string());
                r.keys.insert("lost".into(), lost.to_string());
            }
        }
        out.insert((config.to_string(), rep), r);
    }
    Ok(out)
}

/// The table and summary lines for the collected runs.
pub fn report(runs: &BTreeMap<(String, u32), RunResult>, iters: u32) -> String {
    let mut s = String::new();
    let med = |config: &str, f: &dyn Fn(&RunResult) -> Option<f64>| -> (Option<f64>, usize) {
        let v: Vec<f64> = runs
            .iter()
            .filter(|((c, _), _)| c == config)
            .filter_map(|(_, r)| f(r))
            .collect();
        (median(&v), v.len())
    };
    s.push_str(&format!(
        "{:<16} {:>14} {:>14} {:>10}   one operation\n",
        "loop", "none ns/op", "tracer ns/op", "x none"
    ));
    let mut pair_ratio = None;
    for (name, what) in LOOPS {
        let get = |r: &RunResult| r.ns_per_op.get(*name).map(|&v| v as f64);
        let (none, nn) = med("none", &get);
        let (tracer, nt) = med("tracer", &get);
        let fmt = |v: Option<f64>, n: usize| match v {
            Some(v) => format!("{v:.0} (n={n})"),
            None => "-".into(),
        };
        let ratio = match (none, tracer) {
            (Some(a), Some(b)) if a > 0.0 => Some(b / a),
            _ => None,
        };
        if *name == "resv_pair" {
            pair_ratio = ratio;
        }
        s.push_str(&format!(
            "{:<16} {:>14} {:>14} {:>10}   {what}\n",
            name,
            fmt(none, nn),
            fmt(tracer, nt),
            ratio
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_else(|| "-".into()),
        ));
    }
    let key = |k: &'static str| move |r: &RunResult| r.keys.get(k)?.parse::<f64>().ok();
    let tracer_runs: Vec<&RunResult> = runs
        .iter()
        .filter(|((c, _), _)| c == "tracer")
        .map(|(_, r)| r)
        .collect();
    s.push('\n');
    s.push_str(&format!("iterations per loop and run: {iters}\n"));
    if let (Some(v), n) = med("tracer", &key("ready_after")) {
        s.push_str(&format!(
            "tracer start-up (start to ready file), median of {n}: {v:.2} s\n"
        ));
    }
    if let (Some(v), n) = med("tracer", &key("stop_after")) {
        s.push_str(&format!(
            "tracer stop (SIGINT to exit), median of {n}: {v:.2} s\n"
        ));
    }
    let cpu = |r: &RunResult| Some(key("cpu_ticks_before_stop")(r)? / USER_HZ);
    if let (Some(c), n) = med("tracer", &cpu) {
        let wall = med("tracer", &key("tracer_wall")).0;
        let loops = med("tracer", &key("loops_took")).0;
        s.push_str(&format!(
            "tracer CPU (user+system, start to SIGINT), median of {n}: {c:.2} s{}{}\n",
            wall.map(|w| format!(" over {w:.2} s wall"))
                .unwrap_or_default(),
            loops
                .map(|l| format!(" (the loops took {l:.2} s)"))
                .unwrap_or_default(),
        ));
    }
    let lost: Vec<(u64, u64)> = tracer_runs
        .iter()
        .filter_map(|r| {
            Some((
                r.keys.get("events")?.parse().ok()?,
                r.keys.get("lost")?.parse().ok()?,
            ))
        })
        .collect();
    if !lost.is_empty() {
        let max_lost = lost.iter().map(|l| l.1).max().unwrap();
        let events: Vec<f64> = lost.iter().map(|l| l.0 as f64).collect();
        s.push_str(&format!(
            "tracer events recorded per run (all three loops), median: {:.0}; events lost, worst run: {max_lost}\n",
            median(&events).unwrap()
        ));
    }
    if let (Some(b), _) = med("tracer", &key("recording_bytes")) {
        s.push_str(&format!(
            "recording size per run, median: {:.0} KiB\n",
            b / 1024.0
        ));
    }
    for r in &tracer_runs {
        for (k, v) in &r.keys {
            if k == "ready" || k == "sigint" || (k == "tracer_exit" && v != "0") {
                s.push_str(&format!("warning: a tracer run had {k}={v}\n"));
            }
        }
    }
    s.push('\n');
    match pair_ratio {
        Some(r) => s.push_str(&format!(
            "overhead per lock+unlock: tracer {r:.2}x no-tracing\n"
        )),
        None => s.push_str("overhead per lock+unlock: not measured (no resv_pair results)\n"),
    }
    s.push_str("floor and bpftrace: not measured yet\n");
    s
}

/// Guest timeout: boot, warm-up, and per repetition a tracer start and stop plus the loops
/// twice. Under TCG, 10k iterations of the three loops take ~2 s under the tracer and its
/// stop (draining and writing ~50 MB of events) ~5 s; this allows twice that.
pub fn timeout(iters: u32, reps: u32) -> Duration {
    let per_rep = 30 + (iters as u64 * 10) / 10_000;
    Duration::from_secs(60 + per_rep * reps as u64)
}

/// Build tracer_bench for `opts.kernel`, boot once, and print the table.
pub fn run(opts: &GuestOptions, iters: u32, reps: u32) -> Result<()> {
    if opts.tracer.is_none() {
        bail!("--bench needs the tracer");
    }
    if iters == 0 || reps == 0 {
        bail!("--bench-iters and --bench-reps must be at least 1");
    }
    let dir = repo_root().join("tests/lab/modules/tracer_bench");
    let kos = modules::build_module(&opts.kernel, &dir)?;
    let opts = GuestOptions {
        timeout: Some(opts.timeout.unwrap_or_else(|| timeout(iters, reps))),
        ..opts.clone()
    };
    let r = boot_guest(&opts, &guest_script(iters, reps), &kos, &[], 0)?;
    let bench_dir = r.files_dir.join("bench");
    let runs = collect(&bench_dir)?;
    if runs.is_empty() {
        bail!("{}; no bench results came back", r.failure_report());
    }
    println!(
        "\nlab: overhead on {} (TCG: compare ratios, not absolute ns); files in {}\n",
        opts.kernel.kver,
        bench_dir.display()
    );
    print!("{}", report(&runs, iters));
    if r.guest_status != Some(0) {
        bail!("{}", r.failure_report());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_run_file() {
        let r = parse_run(
            "resv_pair ns_per_op=131 iters=200000 total_ns=26200000\n\
             ww_txn3 ns_per_op=905 iters=200000 total_ns=1\n\
             ready_after=1.5\ntracer_exit=0\n",
        );
        assert_eq!(r.ns_per_op["resv_pair"], 131);
        assert_eq!(r.ns_per_op["ww_txn3"], 905);
        assert_eq!(r.keys["ready_after"], "1.5");
        assert_eq!(r.keys["tracer_exit"], "0");
    }

    #[test]
    fn parses_the_tracer_summary() {
        let e = "tracer: attached\ntracer: 123456 events in 12.3s, 42 stacks, 7 lost (ring buffer full: raise --ring-mib)\n";
        assert_eq!(parse_tracer_summary(e), Some((123456, 7)));
        let e = "tracer: 10 events in 1.0s, 0 stacks, 0 lost\n";
        assert_eq!(parse_tracer_summary(e), Some((10, 0)));
        assert_eq!(parse_tracer_summary("nothing"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn report_has_the_ratio_line() {
        let mut runs = BTreeMap::new();
        for rep in 1..=3 {
            runs.insert(
                ("none".to_string(), rep),
                parse_run("resv_pair ns_per_op=100\n"),
            );
            runs.insert(
                ("tracer".to_string(), rep),
                parse_run(&format!(
                    "resv_pair ns_per_op={}\nready_after=2\n",
                    300 + rep
                )),
            );
        }
        let t = report(&runs, 1000);
        assert!(
            t.contains("overhead per lock+unlock: tracer 3.02x no-tracing"),
            "{t}"
        );
        assert!(t.contains("floor and bpftrace: not measured yet"));
    }

    #[test]
    fn script_interpolates() {
        let s = guest_script(1234, 3);
        assert!(s.contains("echo 1234 > $B/run"));
        assert!(s.contains("-le 3 ]"));
        assert!(s.contains("awk '{print $14 + $15}'"));
    }
}
