//! `tracer record --segments DIR --control FIFO --ack FIFO`: the command protocol scripts
//! (the lab's guests, a CI job) drive one attached tracer with. Needs root (it loads the
//! BPF programs); `cargo xtask test` runs it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits (bounded) for the tracer to create `path`, or for it to die.
fn wait_for(path: &Path, child: &mut std::process::Child) {
    let t = Instant::now();
    while !path.exists() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("tracer exited before creating {}: {st}", path.display());
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no {}",
            path.display()
        );
        std::thread::yield_now();
    }
}

/// `stats key=value ...` into a map (values as text: a map that cannot be read says so).
fn fields(answer: &str) -> BTreeMap<String, String> {
    let rest = answer
        .strip_prefix("stats ")
        .unwrap_or_else(|| panic!("not a stats answer: {answer}"));
    rest.split_whitespace()
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or_else(|| panic!("field {f}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn num(m: &BTreeMap<String, String>, k: &str) -> u64 {
    m.get(k)
        .unwrap_or_else(|| panic!("no {k} in {m:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{k} is not a number in {m:?}"))
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn stats_start_stop_and_errors_over_the_control_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let (ctl, ack, segs) = (
        dir.path().join("ctl"),
        dir.path().join("ack"),
        dir.path().join("segs"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(["record", "--all-events", "--segments"])
        .arg(&segs)
        .arg("--control")
        .arg(&ctl)
        .arg("--ack")
        .arg(&ack)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&ack, &mut child);
    wait_for(&ctl, &mut child);
    // Both FIFOs are held open read-write by the tracer: these opens do not block.
    let mut answers = BufReader::new(std::fs::File::open(&ack).unwrap());
    let mut ready = String::new();
    answers.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim_end(), "ready");
    let mut commands = std::fs::OpenOptions::new().write(true).open(&ctl).unwrap();
    let mut ask = |cmd: &str| -> String {
        writeln!(commands, "{cmd}").unwrap();
        let mut line = String::new();
        answers.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    };
    assert_eq!(ask("sync"), "synced");

    let before = fields(&ask("stats"));
    assert_eq!(num(&before, "thread_slots_max"), 8192);
    assert!(num(&before, "hooks") > 0, "{before:?}");
    assert!(num(&before, "rss_kib") > 1024, "{before:?}");
    for k in [
        "events",
        "lost",
        "untracked",
        "lost_returns",
        "stacks",
        "failed_stacks",
        "thread_slots",
        "thread_slots_gone",
        "thread_slots_kernel",
        "thread_slots_exited",
        "sites",
    ] {
        num(&before, k);
    }

    assert_eq!(ask("start one"), "started one");
    // Work for the tracepoints --all-events sends (processes mapping memory and exiting).
    for _ in 0..20 {
        Command::new("true").status().unwrap();
    }
    let stopped = ask("stop");
    let n: u64 = stopped
        .strip_prefix("stopped one ")
        .unwrap_or_else(|| panic!("{stopped}"))
        .parse()
        .unwrap();
    assert!(n > 0, "no events recorded: {stopped}");
    let after = fields(&ask("stats"));
    assert!(
        num(&after, "events") >= num(&before, "events") + n,
        "before {before:?}, after {after:?}, segment {n}"
    );
    assert!(segs.join("one.rec").exists());

    assert!(ask("stop").starts_with("error: no segment started"));
    let bad = ask("statistics");
    assert!(
        bad.starts_with("error: unknown command `statistics`") && bad.contains("stats"),
        "{bad}"
    );
    // SAFETY: kill(2) on our child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
