//! `cargo xtask lab --bench`: what the tracer costs per reservation lock, measured in one
//! boot of a real kernel. See docs/overhead.md.
//!
//! The guest loads tests/lab/modules/tracer_bench, whose `run` file times four loops in the
//! kernel (`resv_pair`, `ww_txn3`, `importer_cycle`, `ww_txn64`); `workload` times real
//! drivers' traffic from user space (the lab's workload programs on udmabuf and vgem). Each
//! repetition runs them once under
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
    (
        "ww_txn64",
        "ww transaction: lock 64 objects with a ctx, unlock 64",
    ),
    (
        "workload",
        "real drivers from user space: a udmabuf PRIME import into vgem, a vgem fd's ops, a vgem fence",
    ),
];

/// The configurations a repetition runs, in the order of the first repetition (later ones
/// rotate it). `floor`: `tracer record --floor`, programs that only return on the same hooks
/// and mechanisms. `bpftrace`: an equivalent bpftrace script (see [`BPFTRACE_GEN`]), only when
/// the bundle is in the guest; `bpftrace_equal`: one doing the tracer's filtering (locks and
/// tracepoint events only while the thread holds a lock, a call site per nested lock or call
/// instead of a whole stack). `*_kprobe`: the same with `--lock-kprobes` (the ww_mutex
/// functions on kprobes, the tracer's fallback where fentry is refused). `tracer_sites`: the
/// tracer on a thread that already needed a kept-back acquisition (one importer_cycle
/// iteration first), so that every lone lock reads its call site (docs/probes.md).
/// `lone_sites`: `tracer record --lone-sites`, every lone lock reads its call site.
/// `*_allkprobe`: `--hooks kprobes`, every function hook on kprobes (loaded once for all
/// functions, where fentry loads a program per function: the start-up's difference).
pub const CONFIGS: &[&str] = &[
    "none",
    "floor",
    "tracer",
    "tracer_sites",
    "lone_sites",
    "bpftrace",
    "bpftrace_equal",
    "floor_kprobe",
    "tracer_kprobe",
    "floor_allkprobe",
    "tracer_allkprobe",
];

/// The configurations `--bench-configs` names, in [`CONFIGS`] order (all when none are named).
pub fn select_configs(names: &[String]) -> Result<Vec<&'static str>> {
    for n in names {
        if !CONFIGS.contains(&n.as_str()) {
            bail!(
                "--bench-configs: unknown configuration {n:?} (known: {})",
                CONFIGS.join(", ")
            );
        }
    }
    Ok(CONFIGS
        .iter()
        .copied()
        .filter(|c| names.is_empty() || names.iter().any(|n| n == c))
        .collect())
}

/// Configurations that start a tracing process (start-up, CPU and stop figures apply).
fn is_traced(config: &str) -> bool {
    config != "none"
}

/// The floor a configuration is compared with: programs that only return on its mechanisms.
fn floor_of(config: &str) -> Option<&'static str> {
    match config {
        "tracer" | "tracer_sites" | "lone_sites" | "bpftrace" | "bpftrace_equal" => Some("floor"),
        "tracer_kprobe" => Some("floor_kprobe"),
        "tracer_allkprobe" => Some("floor_allkprobe"),
        _ => None,
    }
}

/// resv_pair runs this many times the iterations of the other loops (it is the shortest, and
/// its figure is the headline ratio).
pub const PAIR_FACTOR: u32 = 10;

/// ww_txn64 runs the other loops' iterations divided by this (one of its operations is 64
/// acquisitions and 64 unlocks: at 1/16 it takes about four times as many locks as ww_txn3).
pub const BIG_DIVISOR: u32 = 16;

/// The workload runs the other loops' iterations divided by this (one of its operations is
/// three processes' iterations of real-driver traffic).
pub const WORKLOAD_DIVISOR: u32 = 250;

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

/// The `tracer: N held lock(s) came without their acquisition stack` count (0 when the tracer
/// did not say it).
pub fn parse_skipped_sites(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("tracer: "))
        .find(|l| l.contains(" held lock(s) came without their acquisition stack"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
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

/// Generates the bpftrace equivalent of the hooks the tracer attached in this guest, from
/// `tracer probes --json` on stdin: kprobe/kretprobe where the tracer used them, kfunc/kretfunc
/// where it used fentry/fexit, tracepoints for its raw tracepoints. Lock entries and dma-buf
/// calls count by kernel stack (what a bpftrace user checking the convention would keep),
/// kprobe returns by value, kretfunc returns, unlocks and tracepoints by probe. Busybox awk over the pretty-printed JSON
/// (one field per line).
pub const BPFTRACE_GEN: &str = include_str!("../../../tests/lab/guest/bpftrace-gen.awk");

/// The guest side of the bench, a shell script of its own.
const BENCH_SCRIPT: &str = include_str!("../../../tests/lab/guest/bench.sh");

/// The guest script: `reps` repetitions of every configuration in [`CONFIGS`] (bpftrace only if
/// its bundle is in the guest), rotating which runs first.
pub fn guest_script(iters: u32, first: u32, last: u32, extras: bool, configs: &[&str]) -> String {
    format!(
        "ITERS={iters}\nPAIR_ITERS={pair}\nBIG_ITERS={big}\nWL_ITERS={wl}\nFIRST={first}\nLAST={last}\nEXTRAS={extras}\nCONFIGS=\"{configs}\"\n\
         cat > /tmp/bpftrace-gen.awk <<'AWK'\n{gen}AWK\n{script}",
        pair = iters.saturating_mul(PAIR_FACTOR),
        big = (iters / BIG_DIVISOR).max(1),
        wl = (iters / WORKLOAD_DIVISOR).max(1),
        extras = extras as u32,
        configs = configs.join(" "),
        gen = BPFTRACE_GEN,
        script = BENCH_SCRIPT,
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
        if is_traced(config) && !config.starts_with("bpftrace") {
            let stderr =
                fs::read_to_string(dir.join(format!("r{rep}.{config}.stderr"))).unwrap_or_default();
            if let Some((events, lost)) = parse_tracer_summary(&stderr) {
                r.keys.insert("events".into(), events.to_string());
                r.keys.insert("lost".into(), lost.to_string());
                r.keys.insert(
                    "skipped_sites".into(),
                    parse_skipped_sites(&stderr).to_string(),
                );
            }
        }
        out.insert((config.to_string(), rep), r);
    }
    Ok(out)
}

/// The `prog-stats:` lines of the profile run's stderr (tracer record --prog-stats).
pub fn profile_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("tracer: prog-stats: "))
        .map(|l| l.trim_end().to_string())
        .collect()
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
    let present: Vec<&str> = CONFIGS
        .iter()
        .copied()
        .filter(|c| runs.keys().any(|(k, _)| k == c))
        .collect();
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a),
        _ => None,
    };
    let fmt_x = |r: Option<f64>| r.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "-".into());

    // ns/op per loop and configuration, then the ratios.
    s.push_str(&format!("{:<16}", "ns/op, median"));
    for c in &present {
        s.push_str(&format!(" {c:>14}"));
    }
    s.push_str("   one operation\n");
    // (loop, config) -> median ns/op
    let mut ns: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for (name, what) in LOOPS {
        s.push_str(&format!("{name:<16}"));
        for c in &present {
            let (v, n) = med(c, &|r: &RunResult| {
                r.ns_per_op.get(*name).map(|&v| v as f64)
            });
            if let Some(v) = v {
                ns.insert((name, c), v);
            }
            let cell = v.map(|v| format!("{v:.0} (n={n})")).unwrap_or("-".into());
            s.push_str(&format!(" {cell:>14}"));
        }
        s.push_str(&format!("   {what}\n"));
    }
    let traced: Vec<&str> = present.iter().copied().filter(|c| is_traced(c)).collect();
    if !traced.is_empty() {
        s.push('\n');
        s.push_str(&format!("{:<16}", "ratio"));
        for c in &traced {
            s.push_str(&format!(" {:>14}", format!("{c} x none")));
        }
        for c in traced.iter().filter(|c| floor_of(c).is_some()) {
            s.push_str(&format!(" {:>14}", format!("{c} x floor")));
        }
        s.push('\n');
        for (name, _) in LOOPS {
            s.push_str(&format!("{name:<16}"));
            let get = |c: &str| ns.get(&(*name, c)).copied();
            for c in &traced {
                s.push_str(&format!(" {:>14}", fmt_x(ratio(get("none"), get(c)))));
            }
            for c in traced.iter().filter(|c| floor_of(c).is_some()) {
                let floor = floor_of(c).unwrap_or("floor");
                s.push_str(&format!(" {:>14}", fmt_x(ratio(get(floor), get(c)))));
            }
            s.push('\n');
        }
    }

    let key = |k: &'static str| move |r: &RunResult| r.keys.get(k)?.parse::<f64>().ok();
    s.push('\n');
    s.push_str(&format!(
        "iterations per run: resv_pair {}, ww_txn64 {}, workload {}, the other loops {iters}\n",
        iters.saturating_mul(PAIR_FACTOR),
        (iters / BIG_DIVISOR).max(1),
        (iters / WORKLOAD_DIVISOR).max(1)
    ));
    for c in &traced {
        let mut parts = Vec::new();
        if let (Some(v), n) = med(c, &key("ready_after")) {
            parts.push(format!("start-up {v:.2} s (n={n})"));
        }
        if let (Some(v), _) = med(c, &key("stop_after")) {
            parts.push(format!("stop {v:.2} s"));
        }
        let cpu = |r: &RunResult| Some(key("cpu_ticks_before_stop")(r)? / USER_HZ);
        if let (Some(cpu), _) = med(c, &cpu) {
            let wall = med(c, &key("tracer_wall")).0;
            let loops = med(c, &key("loops_took")).0;
            parts.push(format!(
                "CPU {cpu:.2} s{}{}",
                wall.map(|w| format!(" over {w:.2} s wall"))
                    .unwrap_or_default(),
                loops
                    .map(|l| format!(" (loops {l:.2} s)"))
                    .unwrap_or_default(),
            ));
        }
        if !parts.is_empty() {
            s.push_str(&format!("{c}: {} (medians)\n", parts.join(", ")));
        }
    }
    let tracer_runs: Vec<&RunResult> = runs
        .iter()
        .filter(|((c, _), _)| c == "tracer")
        .map(|(_, r)| r)
        .collect();
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
            "tracer events recorded per run (all four loops), median: {:.0}; events lost, worst run: {max_lost}\n",
            median(&events).unwrap()
        ));
    }
    // Held locks sent without their acquisition stack (the lone-site rule, docs/probes.md):
    // the evidence the cheaper default gives up, per configuration.
    let skipped: Vec<String> = traced
        .iter()
        .filter(|c| !c.starts_with("floor"))
        .filter_map(|c| {
            let v: Vec<u64> = runs
                .iter()
                .filter(|((k, _), _)| k == c)
                .filter_map(|(_, r)| r.keys.get("skipped_sites")?.parse().ok())
                .collect();
            (!v.is_empty()).then(|| format!("{c} {}", v.iter().max().unwrap()))
        })
        .collect();
    if !skipped.is_empty() {
        s.push_str(&format!(
            "held locks without their acquisition stack, worst run: {}\n",
            skipped.join(", ")
        ));
    }
    if let (Some(b), _) = med("tracer", &key("recording_bytes")) {
        s.push_str(&format!(
            "tracer recording size per run, median: {:.0} KiB\n",
            b / 1024.0
        ));
    }
    for ((c, rep), r) in runs {
        for (k, v) in &r.keys {
            if k == "ready" || k == "run" || k == "sigint" || (k == "tracer_exit" && v != "0") {
                s.push_str(&format!("warning: {c} run {rep} had {k}={v}\n"));
            }
        }
    }
    s.push('\n');
    let pair = |c: &str| ns.get(&("resv_pair", c)).copied();
    let x_floor = |c: &str| {
        ratio(pair(floor_of(c).unwrap_or("floor")), pair(c))
            .map(|r| format!("{r:.2}x floor"))
            .unwrap_or_else(|| "not measured".into())
    };
    s.push_str(&format!(
        "overhead per lock+unlock: tracer {}, bpftrace {}, bpftrace doing the tracer's filtering {}\n",
        x_floor("tracer"),
        x_floor("bpftrace"),
        x_floor("bpftrace_equal")
    ));
    // The same for every loop, for the bpftrace scripts (labelled by what they do).
    for (c, what) in [
        ("bpftrace", "bpftrace, a stack on every lock and call"),
        (
            "bpftrace_equal",
            "bpftrace doing the tracer's filtering (held-lock filter, call sites)",
        ),
    ] {
        let per_loop: Vec<String> = LOOPS
            .iter()
            .filter_map(|(name, _)| {
                let get = |k: &str| ns.get(&(*name, k)).copied();
                let b = get(c)?;
                let cheaper = ratio(get("tracer"), Some(b))
                    .map(|r| format!(", the tracer {r:.2}x cheaper"))
                    .unwrap_or_default();
                Some(format!(
                    "{name} {} floor, {} none{cheaper}",
                    fmt_x(ratio(get("floor"), Some(b))),
                    fmt_x(ratio(get("none"), Some(b))),
                ))
            })
            .collect();
        if !per_loop.is_empty() {
            s.push_str(&format!("{what} per loop: {}\n", per_loop.join("; ")));
        }
    }
    if runs.keys().any(|(c, _)| c == "lone_sites") {
        s.push_str(&format!(
            "with --lone-sites (every lone lock reads its call site): tracer {}\n",
            x_floor("lone_sites")
        ));
    }
    if runs.keys().any(|(c, _)| c == "tracer_sites") {
        s.push_str(&format!(
            "on a thread that needed a kept-back lock (lone locks read their call site): tracer {}\n",
            x_floor("tracer_sites")
        ));
    }
    if runs.keys().any(|(c, _)| c == "tracer_kprobe") {
        s.push_str(&format!(
            "with --lock-kprobes (ww_mutex on kprobes): tracer {} (its own floor)\n",
            x_floor("tracer_kprobe")
        ));
    }
    // Every loop, both ratios: the tracer against its hooks' floor and against no tracing.
    let per_loop: Vec<String> = LOOPS
        .iter()
        .filter_map(|(name, _)| {
            let get = |c: &str| ns.get(&(*name, c)).copied();
            let t = get("tracer")?;
            Some(format!(
                "{name} {} floor, {} none",
                fmt_x(ratio(get("floor"), Some(t))),
                fmt_x(ratio(get("none"), Some(t)))
            ))
        })
        .collect();
    if !per_loop.is_empty() {
        s.push_str(&format!("tracer per loop: {}\n", per_loop.join("; ")));
    }
    s.push_str(&format!(
        "against no tracing: floor {}, tracer {}, bpftrace {}, floor_kprobe {}, tracer_kprobe {}\n",
        fmt_x(ratio(pair("none"), pair("floor"))),
        fmt_x(ratio(pair("none"), pair("tracer"))),
        fmt_x(ratio(pair("none"), pair("bpftrace"))),
        fmt_x(ratio(pair("none"), pair("floor_kprobe"))),
        fmt_x(ratio(pair("none"), pair("tracer_kprobe"))),
    ));
    s
}

/// Timeout of one bench boot: boot, warm-up, and per repetition five tracing processes
/// started and stopped plus the loops six times (the extra-runs boot makes five tracer runs). Under TCG a tracer starts in ~11 s
/// and stops in ~10 s, bpftrace needs ~35 s to compile and attach its ~120 probes, and 10k
/// iterations of the three loops take ~2 s under the tracer, ww_txn64 (a sixteenth of them,
/// 64 locks each) about as long as the other two together. This allows about twice that.
pub fn timeout(iters: u32, reps: u32) -> Duration {
    // The workload: about 4 s per configuration at 80 iterations under TCG, allowed five times.
    let per_rep = 240
        + (iters as u64 * 60) / 10_000
        + (iters as u64 * PAIR_FACTOR as u64) / 10_000
        + 20 * CONFIGS.len() as u64;
    Duration::from_secs(180 + per_rep * reps as u64)
}

/// Build tracer_bench for `opts.kernel`, boot once, and print the table.
pub fn run(opts: &GuestOptions, iters: u32, reps: u32, configs: &[&str]) -> Result<()> {
    if opts.tracer.is_none() {
        bail!("--bench needs the tracer");
    }
    if iters == 0 {
        bail!("--bench-iters must be at least 1");
    }
    let dir = repo_root().join("tests/lab/modules/tracer_bench");
    let kos = modules::build_module(&opts.kernel, &dir)?;
    let opts = GuestOptions {
        timeout: Some(opts.timeout.unwrap_or_else(|| timeout(iters, 1))),
        ..opts.clone()
    };
    // bpftrace is compared where its bundle can be built (Debian packages, cached).
    let files = if !configs.contains(&"bpftrace") {
        Vec::new()
    } else {
        match super::bpftrace::bundle() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("lab: bench without bpftrace: {e:#}");
                Vec::new()
            }
        }
    };
    // One boot per repetition (all configurations side by side in it), then one for the
    // extra runs: a boot that dies (docs/overhead.md: text patching under TCG) costs one
    // repetition, which is run again in a new boot (at most three such retries in all).
    let mut runs = BTreeMap::new();
    let mut crashed = Vec::new();
    let mut retries = 3;
    let mut rep = 1;
    while rep <= reps {
        let r = boot_guest(
            &opts,
            &guest_script(iters, rep, rep, false, configs),
            &kos,
            &files,
            0,
        )?;
        let got = collect(&r.files_dir.join("bench")).unwrap_or_default();
        let complete = r.guest_status == Some(0);
        if !complete {
            let why = r.failure_report().lines().next().unwrap_or("").to_string();
            eprintln!("lab: bench repetition {rep}: the guest did not finish ({why})");
            crashed.push(format!("repetition {rep}: {why}"));
        }
        if complete || retries == 0 {
            runs.extend(got);
            rep += 1;
        } else {
            retries -= 1;
        }
    }
    let extras = boot_guest(
        &opts,
        &guest_script(iters, 1, 0, true, configs),
        &kos,
        &[],
        0,
    )?;
    if extras.guest_status != Some(0) {
        crashed.push(format!(
            "extra runs: {}",
            extras.failure_report().lines().next().unwrap_or("")
        ));
    }
    let bench_dir = extras.files_dir.join("bench");
    if runs.is_empty() && reps > 0 {
        bail!("no bench results came back: {}", crashed.join("; "));
    }
    println!(
        "\nlab: overhead on {} (TCG: compare ratios, not absolute ns); files in {}\n",
        opts.kernel.kver,
        bench_dir.display()
    );
    if !runs.is_empty() {
        print!("{}", report(&runs, iters));
    }
    for (run, what, lp) in [
        (
            "ring16",
            "tracer --ring-mib 16, the four loops",
            "resv_pair",
        ),
        (
            "heaviest",
            "tracer, importer_cycle alone (the heaviest loop)",
            "importer_cycle",
        ),
    ] {
        let stderr =
            fs::read_to_string(bench_dir.join(format!("r0.{run}.stderr"))).unwrap_or_default();
        if let Some((events, lost)) = parse_tracer_summary(&stderr) {
            let r = parse_run(
                &fs::read_to_string(bench_dir.join(format!("r0.{run}"))).unwrap_or_default(),
            );
            println!(
                "\n{what} (one more run): {events} events recorded, {lost} lost; {lp} {} ns/op",
                r.ns_per_op
                    .get(lp)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    for (file, what) in [
        ("r0.profile.stderr", "the four loops"),
        ("r0.profile_pair.stderr", "resv_pair alone"),
        (
            "r0.profile_floor.stderr",
            "the floor's empty programs, four loops",
        ),
    ] {
        let profile = fs::read_to_string(bench_dir.join(file)).unwrap_or_default();
        let lines = profile_lines(&profile);
        if !lines.is_empty() {
            println!(
                "\nwhere the tracer's kernel time goes, {what} (one more run, kernel BPF stats on):"
            );
            for l in lines {
                println!("  {l}");
            }
        }
    }
    for c in &crashed {
        println!("\nwarning: a bench boot died and was not counted: {c}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The guest script as the guest gets it is valid shell (its parameters in front,
    /// the bpftrace generator written out by a here-document).
    #[test]
    fn the_guest_script_parses() {
        let script = guest_script(20_000, 1, 5, true, &["none", "floor", "tracer", "bpftrace"]);
        assert!(script.starts_with(
            "ITERS=20000\nPAIR_ITERS=200000\nBIG_ITERS=1250\nWL_ITERS=80\nFIRST=1\nLAST=5\nEXTRAS=1\n"
        ));
        assert!(script.contains("CONFIGS=\"none floor tracer bpftrace\""));
        assert!(
            script.contains("\nAWK\n# The overhead bench"),
            "the here-document ends before the script"
        );
        let dir = std::env::temp_dir().join(format!("bench-sh-{}", std::process::id()));
        std::fs::write(&dir, &script).unwrap();
        let st = std::process::Command::new("sh")
            .arg("-n")
            .arg(&dir)
            .status()
            .unwrap();
        let _ = std::fs::remove_file(&dir);
        assert!(st.success(), "sh -n rejects the bench's guest script");
    }

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
    fn profile_lines_are_the_prog_stats() {
        let e = "tracer: 9 hooks attached in 0.30 s\ntracer: prog-stats: fn_entry  10 runs  300 ns/run  0.003 ms total\ntracer: 0 events in 1.0s, 0 stacks, 0 lost\n";
        assert_eq!(
            profile_lines(e),
            vec!["fn_entry  10 runs  300 ns/run  0.003 ms total".to_string()]
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    fn runs_of(configs: &[(&str, u64)]) -> BTreeMap<(String, u32), RunResult> {
        let mut runs = BTreeMap::new();
        for rep in 1..=3u32 {
            for (c, ns) in configs {
                runs.insert(
                    (c.to_string(), rep),
                    parse_run(&format!(
                        "resv_pair ns_per_op={}\nready_after=2\n",
                        ns + rep as u64
                    )),
                );
            }
        }
        runs
    }

    #[test]
    fn report_has_the_ratio_line() {
        let t = report(
            &runs_of(&[
                ("none", 100),
                ("floor", 1000),
                ("tracer", 1200),
                ("bpftrace", 5000),
            ]),
            1000,
        );
        // Medians: none 102, floor 1002, tracer 1202, bpftrace 5002.
        assert!(
            t.contains("overhead per lock+unlock: tracer 1.20x floor, bpftrace 4.99x floor"),
            "{t}"
        );
        assert!(
            t.contains(
                "against no tracing: floor 9.82x, tracer 11.78x, bpftrace 49.04x, floor_kprobe -"
            ),
            "{t}"
        );
        assert!(t.contains("tracer x floor"), "{t}");
        // Both ratios per loop.
        assert!(
            t.contains("tracer per loop: resv_pair 1.20x floor, 11.78x none"),
            "{t}"
        );
    }

    #[test]
    fn kprobe_configs_compare_with_their_own_floor() {
        let t = report(
            &runs_of(&[
                ("none", 100),
                ("floor", 500),
                ("tracer", 1000),
                ("floor_kprobe", 2000),
                ("tracer_kprobe", 3000),
            ]),
            1000,
        );
        // Medians: floor 502, tracer 1002, floor_kprobe 2002, tracer_kprobe 3002.
        assert!(
            t.contains("overhead per lock+unlock: tracer 2.00x floor"),
            "{t}"
        );
        assert!(
            t.contains("with --lock-kprobes (ww_mutex on kprobes): tracer 1.50x floor"),
            "{t}"
        );
    }

    #[test]
    fn a_thread_that_needed_a_kept_back_lock_is_compared_with_the_same_floor() {
        let t = report(
            &runs_of(&[("floor", 1000), ("tracer", 1300), ("tracer_sites", 1500)]),
            1000,
        );
        // Medians: floor 1002, tracer 1302, tracer_sites 1502.
        assert!(
            t.contains("on a thread that needed a kept-back lock (lone locks read their call site): tracer 1.50x floor"),
            "{t}"
        );
        assert!(
            t.contains("overhead per lock+unlock: tracer 1.30x floor"),
            "{t}"
        );
        // Left out when not run.
        let t = report(&runs_of(&[("floor", 1000), ("tracer", 1300)]), 1000);
        assert!(!t.contains("needed a kept-back lock"), "{t}");
    }

    #[test]
    fn every_tracer_configuration_gets_its_exit_figures() {
        let dir = std::env::temp_dir().join(format!("bench-collect-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let exit = "tracer: 640000 events in 1.8s, 13 stacks, 0 lost\n";
        for c in ["tracer", "lone_sites", "floor"] {
            fs::write(
                dir.join(format!("r1.{c}")),
                "resv_pair ns_per_op=900 iters=1 total_ns=900\n",
            )
            .unwrap();
            fs::write(dir.join(format!("r1.{c}.stderr")), exit).unwrap();
        }
        fs::write(
            dir.join("r1.bpftrace"),
            "resv_pair ns_per_op=9000 iters=1 total_ns=9000\n",
        )
        .unwrap();
        let runs = collect(&dir).unwrap();
        let _ = fs::remove_dir_all(&dir);
        for c in ["tracer", "lone_sites", "floor"] {
            let r = &runs[&(c.to_string(), 1)];
            assert_eq!(
                r.keys.get("events").map(String::as_str),
                Some("640000"),
                "{c}"
            );
            assert_eq!(
                r.keys.get("skipped_sites").map(String::as_str),
                Some("0"),
                "{c}"
            );
        }
        assert!(!runs[&("bpftrace".to_string(), 1)]
            .keys
            .contains_key("events"));
    }

    #[test]
    fn skipped_sites_are_read_from_the_exit_line() {
        let e = "tracer: 10 hooks attached in 0.3 s\ntracer: 640000 events in 1.8s, 13 stacks, 0 lost\ntracer: 1 held lock(s) came without their acquisition stack: their threads were past ...\n";
        assert_eq!(parse_skipped_sites(e), 1);
        assert_eq!(
            parse_skipped_sites("tracer: 5 events in 1s, 0 stacks, 0 lost\n"),
            0
        );
    }

    #[test]
    fn a_primed_configuration_runs_one_importer_cycle_first() {
        let g = guest_script(1, 1, 1, false, &["tracer_sites"]);
        assert!(g.contains("tracer_sites) PRIME=1;"), "{g}");
        assert!(g.contains("echo 4 > $B/loops && echo 1 > $B/run"), "{g}");
    }

    #[test]
    fn report_says_what_was_not_measured() {
        let t = report(&runs_of(&[("none", 100), ("tracer", 300)]), 1000);
        assert!(
            t.contains("overhead per lock+unlock: tracer not measured, bpftrace not measured"),
            "{t}"
        );
        assert!(
            t.contains("against no tracing: floor -, tracer 2.96x"),
            "{t}"
        );
    }

    #[test]
    fn configs_are_selected_in_table_order() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(select_configs(&[]).unwrap(), CONFIGS);
        assert_eq!(
            select_configs(&names(&["tracer", "none", "floor"])).unwrap(),
            ["none", "floor", "tracer"]
        );
        let e = select_configs(&names(&["none", "lockdep"])).unwrap_err();
        assert!(
            e.to_string().contains("unknown configuration \"lockdep\""),
            "{e}"
        );
    }

    #[test]
    fn script_interpolates() {
        let s = guest_script(1234, 2, 3, false, CONFIGS);
        assert!(s.starts_with(
            "ITERS=1234\nPAIR_ITERS=12340\nBIG_ITERS=77\nWL_ITERS=4\nFIRST=2\nLAST=3\nEXTRAS=0\n"
        ));
        assert!(s.contains("echo $ITERS > $B/run"));
        assert!(
            s.contains("echo $PAIR_ITERS > $B/run"),
            "resv_pair runs PAIR_FACTOR times longer"
        );
        assert!(s.contains("r=$FIRST\nwhile [ $r -le $LAST ]"));
        assert!(s.contains("[ $EXTRAS = 1 ] || exit 0"));
        assert!(guest_script(1, 1, 0, true, CONFIGS).contains("\nEXTRAS=1\n"));
        assert!(
            guest_script(1, 1, 1, false, &["none", "tracer"]).contains("CONFIGS=\"none tracer\"")
        );
        assert!(s.contains("awk '{print $14 + $15}'"));
        assert!(s.contains(
            "CONFIGS=\"none floor tracer tracer_sites lone_sites bpftrace bpftrace_equal floor_kprobe tracer_kprobe floor_allkprobe tracer_allkprobe\""
        ));
        assert!(s.contains("record --floor -o"));
        assert!(s.contains("record --floor --lock-kprobes -o"));
    }

    /// The bpftrace generator over a `tracer probes --json` excerpt, run by the host's awk
    /// (the guest runs busybox awk on the same program).
    #[test]
    fn bpftrace_equivalent_of_the_attached_hooks() {
        let json = r#"{
  "probes": [
    {
      "hook": "lock:contention_begin",
      "family": "tracepoint",
      "mechanism": "raw_tp",
      "state": "attached",
      "reason": ""
    },
    {
      "hook": "ww_mutex_lock",
      "family": "function",
      "mechanism": "kprobe+kretprobe",
      "state": "attached",
      "reason": ""
    },
    {
      "hook": "ww_mutex_unlock",
      "family": "function",
      "mechanism": "kprobe",
      "state": "attached",
      "reason": ""
    },
    {
      "hook": "dma_buf_attach",
      "family": "function",
      "mechanism": "fentry+fexit",
      "state": "attached",
      "reason": ""
    },
    {
      "hook": "dma_buf_invalidate_mappings",
      "family": "function",
      "mechanism": "-",
      "state": "absent",
      "reason": "not in this kernel's kallsyms"
    },
    {
      "hook": "udmabuf_ops.map_dma_buf = map_udmabuf [udmabuf]",
      "family": "callback",
      "mechanism": "kprobe+kretprobe",
      "state": "attached",
      "reason": ""
    }
  ]
}
"#;
        let dir = std::env::temp_dir().join(format!("bench-gen-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let input = dir.join("probes.json");
        fs::write(&input, json).unwrap();
        let out = std::process::Command::new("awk")
            .arg(BPFTRACE_GEN)
            .arg(&input)
            .output()
            .expect("awk runs");
        let equal = std::process::Command::new("awk")
            .args(["-v", "equal=1"])
            .arg(BPFTRACE_GEN)
            .arg(&input)
            .output()
            .expect("awk runs");
        let _ = fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = String::from_utf8(out.stdout.clone()).unwrap();
        let want = "\
tracepoint:lock:contention_begin { @tp[probe] = count(); }
kprobe:ww_mutex_lock { @lock[kstack] = count(); }
kretprobe:ww_mutex_lock { @ret[probe, retval] = count(); }
kprobe:ww_mutex_unlock { @unlock = count(); }
kfunc:dma_buf_attach { @call[probe, kstack] = count(); }
kretfunc:dma_buf_attach { @fret[probe] = count(); }
kprobe:map_udmabuf { @call[probe, kstack] = count(); }
kretprobe:map_udmabuf { @ret[probe, retval] = count(); }
";
        assert_eq!(got, want);
        // Equal work: the held-lock filter, call sites instead of stacks.
        let got = String::from_utf8(equal.stdout).unwrap();
        let want = "\
tracepoint:lock:contention_begin /@held[tid] > 0/ { @tp[probe] = count(); }
kprobe:ww_mutex_lock { if (@held[tid] > 0) { @nested[kstack(2)] = count(); } }
kretprobe:ww_mutex_lock { if (retval == 0) { @held[tid] = @held[tid] + 1; } @lret[probe] = count(); }
kprobe:ww_mutex_unlock { if (@held[tid] > 0) { @held[tid] = @held[tid] - 1; } @unlock = count(); }
kfunc:dma_buf_attach { @call[probe, kstack(2)] = count(); }
kretfunc:dma_buf_attach { @fret[probe] = count(); }
kprobe:map_udmabuf { @call[probe, kstack(2)] = count(); }
kretprobe:map_udmabuf { @ret[probe, retval] = count(); }
";
        assert_eq!(got, want);
        // bpftrace refuses a script that keys one map two ways (a 2026-12-07 bench lost its
        // equal-work runs to it): every map keeps one number of key fields.
        for script in [&String::from_utf8(out.stdout).unwrap(), &got] {
            let mut arity = std::collections::HashMap::new();
            for use_ in script.split('@').skip(1) {
                let Some((name, rest)) = use_.split_once('[') else {
                    continue;
                };
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let key = rest.split(']').next().unwrap();
                let fields = key.split(',').count();
                let first = *arity.entry(name.to_string()).or_insert(fields);
                assert_eq!(first, fields, "@{name} keyed two ways in:\n{script}");
            }
        }
    }
}
