//! `tracer run -- CMD` on this machine's kernel: exit statuses for a clean
//! workload, a failing one, a timeout, a missing hook with --require-hooks,
//! and a bad allow file. On the machines this project is built on function
//! hooks are refused, so no finding can appear here (the findings paths are
//! tested on a lab recording in run_reports.rs).
//!
//! Attaching needs root (CI runs as root). Without root each test says so
//! and returns: nothing can be checked then.

use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One attached tracer at a time: attaching is the slow part and the ring
/// buffers are not small.
static SERIAL: Mutex<()> = Mutex::new(());

fn run(args: &[&str]) -> Output {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Command::new(env!("CARGO_BIN_EXE_tracer"))
        .arg("run")
        .args(args)
        .output()
        .expect("running the tracer")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Whether this kernel refuses some hook (then --require-hooks must fail).
fn some_hook_missing() -> bool {
    let o = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(["probes", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["state"] == "failed")
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn clean_workload_exits_0_even_without_function_hooks() {
    let o = run(&["--", "/bin/true"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("verdict: pass (exit 0)") && out.contains("workload exited with status 0"),
        "{out}"
    );
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn require_hooks_fails_with_the_missing_hooks_named() {
    let missing = some_hook_missing();
    let o = run(&["--require-hooks", "--", "/bin/true"]);
    let (out, err) = text(&o);
    if !missing {
        eprintln!("every hook attaches on this kernel: --require-hooks passes");
        assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
        return;
    }
    assert_eq!(o.status.code(), Some(2), "stdout:\n{out}\nstderr:\n{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("tracer: --require-hooks:"))
        .unwrap_or_else(|| panic!("no --require-hooks line in:\n{err}"));
    assert!(line.contains("workload not started"), "{line}");
    // Names them (the ww_mutex hooks are the first the tracer needs).
    assert!(line.contains("ww_mutex_lock"), "{line}");
    assert!(
        !out.contains("verdict"),
        "the workload must not have run: {out}"
    );
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn failing_workload_exits_3_with_its_status_in_the_verdict() {
    let o = run(&["--", "sh", "-c", "exit 7"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("workload exited with status 7"), "{out}");
    // A workload killed by a signal is a failed workload too.
    let o = run(&["--", "sh", "-c", "kill -9 $$"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("killed by signal 9"), "{out}");
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn timeout_stops_the_workload_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("j.xml");
    let t = Instant::now();
    let o = run(&[
        "--timeout",
        "1s",
        "--junit",
        junit.to_str().unwrap(),
        "--",
        "sleep",
        "30",
    ]);
    let took = t.elapsed();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "stdout:\n{out}\nstderr:\n{err}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(out.contains("workload timed out after 1s"), "{out}");
    assert!(err.contains("--timeout 1s: stopping the workload"), "{err}");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.contains("<testcase name=\"workload\" classname=\"tracer.setup\""),
        "{x}"
    );
    assert!(x.contains("timed out after 1s"), "{x}");
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn workload_that_cannot_start_is_a_tracer_failure() {
    let o = run(&["--", "/nonexistent/workload"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("starting the workload `/nonexistent/workload`"),
        "{err}"
    );
}

/// Checked before anything is attached, so this needs no root.
#[test]
fn allow_entry_without_reason_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.toml");
    std::fs::write(
        &allow,
        "[[allow]]\nkind = \"exporter-relock\"\nsymbol = \"radeon_*\"\nreason = \"known\"\n\n[[allow]]\nkind = \"exporter-relock\"\nsymbol = \"amdgpu_*\"\n",
    )
    .unwrap();
    let o = run(&["--allow", allow.to_str().unwrap(), "--", "/bin/true"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("allow.toml:6: [[allow]] entry 2 (kind = \"exporter-relock\", symbol = \"amdgpu_*\") has no reason"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing ran: {out}");
}

#[test]
fn run_needs_a_command() {
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
}
