//! The tracer binary on this machine's real kernel: probes, record, dump, and
//! that no program stays loaded after Ctrl-C, SIGTERM, kill -9, an error exit or
//! (with `--features failpoints`) a panic.
//!
//! These need root (CI runs as root). Without root each test says so and
//! returns: nothing can be checked then.

mod common;
#[cfg(feature = "failpoints")]
use common::tmux::Tmux;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
};

/// The lifecycle checks look at every BPF program in the kernel: one tracer at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Kernel names (truncated to 15 bytes) of the tracer's programs.
const OUR_PROGRAMS: &[&str] = &[
    "fn_entry",
    "fn_unlock",
    "fn_return",
    "lock_fentry_slo",
    "floor_raw_tp",
    "fence_wait_star",
    "contention_begi",
    "sys_exit",
    "read_kmem",
];

fn tracer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracer"))
}

/// Our programs still loaded once the kernel has finished freeing them. The
/// kernel frees a program after an RCU grace period following the last
/// reference (the process exit), and offers no event to wait on: poll its
/// program list until empty, up to a generous deadline, then report.
fn our_programs_after_exit() -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = our_loaded_programs();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::yield_now();
    }
}

fn our_loaded_programs() -> Vec<String> {
    aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .filter_map(|p| p.name_as_str().map(str::to_string))
        .filter(|n| OUR_PROGRAMS.contains(&n.as_str()))
        .collect()
}

/// The tracer's maps (kernel names are cut to 15 characters).
const OUR_MAPS: &[&str] = &[
    "EVENTS",
    "LOST",
    "STACKS",
    "FUNCS",
    "FUNC_SLOTS",
    "SITES",
    "CONFIG",
    "THREADS",
    "KMEM",
];

/// Our maps still loaded, polled like `our_programs_after_exit` (a map is freed after the
/// last program using it).
fn our_maps_after_exit() -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left: Vec<String> = aya::maps::loaded_maps()
            .filter_map(|m| m.ok())
            .filter_map(|m| m.name_as_str().map(str::to_string))
            .filter(|n| OUR_MAPS.contains(&n.as_str()))
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::yield_now();
    }
}

/// The ids of our programs loaded now (a tracer is running): none is a test failure.
fn our_running_program_ids() -> std::collections::HashSet<u32> {
    let ours: std::collections::HashSet<u32> = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .filter(|p| p.name_as_str().is_some_and(|n| OUR_PROGRAMS.contains(&n)))
        .map(|p| p.id())
        .collect();
    assert!(!ours.is_empty(), "programs not visible while running");
    ours
}

/// A test that checks what is left loaded starts from nothing of ours loaded.
fn assert_nothing_of_ours_loaded() {
    let p = our_programs_after_exit();
    assert!(p.is_empty(), "programs loaded before the test: {p:?}");
    let m = our_maps_after_exit();
    assert!(m.is_empty(), "maps loaded before the test: {m:?}");
}

/// Kills the tracer if a test fails before stopping it, so a failed test
/// never leaves programs loaded for the next one.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts `tracer record` and returns once it printed that it is recording
/// (every hook attached): synchronised on its output, not on time.
fn start_recording(out: &Path, extra: &[&str]) -> (Running, Vec<String>) {
    let mut args = vec!["--all-events"];
    args.extend_from_slice(extra);
    let (child, rd, lines) = spawn_recording(out, &args);
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in rd.lines() {});
    (Running(child), lines)
}

/// Spawns `tracer record ARGS -o OUT` and reads its stderr up to the line saying it records
/// (every hook attached). Returns the child, the rest of its stderr and the lines read.
fn spawn_recording(
    out: &Path,
    args: &[&str],
) -> (Child, BufReader<std::process::ChildStderr>, Vec<String>) {
    spawn_recording_by(tracer(), out, args)
}

/// `spawn_recording` with the tracer command `cmd` (e.g. its environment set).
fn spawn_recording_by(
    mut cmd: Command,
    out: &Path,
    args: &[&str],
) -> (Child, BufReader<std::process::ChildStderr>, Vec<String>) {
    let mut child = cmd
        .arg("record")
        .args(args)
        .arg("-o")
        .arg(out)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracer");
    let mut lines = Vec::new();
    let mut rd = BufReader::new(child.stderr.take().unwrap());
    loop {
        let mut l = String::new();
        if rd.read_line(&mut l).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tracer exited before recording: {lines:?}");
        }
        let done = l.contains("recording to");
        lines.push(l);
        if done {
            break;
        }
    }
    (child, rd, lines)
}

fn tmp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    (d, p)
}

fn signal_and_wait(child: &mut Child, sig: libc::c_int) -> std::process::ExitStatus {
    // SAFETY: plain kill(2) on our child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    child.wait().unwrap()
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn probes_lists_every_hook_with_a_status() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = tracer().args(["probes", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let probes = v["probes"].as_array().unwrap();
    for h in tracer_core::kernel::hooks::FUNC_HOOKS {
        let row = probes
            .iter()
            .find(|p| p["hook"] == h.func)
            .unwrap_or_else(|| panic!("{} not listed", h.func));
        let state = row["state"].as_str().unwrap();
        assert!(["attached", "absent", "failed"].contains(&state));
        if state != "attached" {
            assert!(
                !row["reason"].as_str().unwrap().is_empty(),
                "{} has no reason",
                h.func
            );
        }
    }
    for tp in tracer_core::kernel::hooks::TRACEPOINTS {
        assert!(
            probes
                .iter()
                .any(|p| p["hook"].as_str().unwrap().ends_with(tp.tracepoint)),
            "{} missing",
            tp.tracepoint
        );
    }
    // The text table too.
    let out = tracer().arg("probes").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ww_mutex_lock")
            && text.contains("raw_syscalls:sys_exit")
            && text.contains("attached")
    );
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn record_then_dump_shows_real_events_with_symbolized_stacks() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_d, rec) = tmp("host.rec");
    let (mut child, _) = start_recording(&rec, &[]);
    // Real kernel work while recording: processes mapping memory take
    // mmap_lock (brk/mmap in exec), which the mmap_lock tracepoints report.
    for _ in 0..20 {
        Command::new("/bin/true").status().unwrap();
    }
    let status = signal_and_wait(&mut child, libc::SIGINT);
    assert!(status.success(), "{status:?}");

    let dump = tracer().arg("dump").arg(&rec).output().unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(
        text.contains("mmap-lock-start"),
        "no mmap_lock events recorded:\n{}",
        &text[..text.len().min(2000)]
    );
    // A symbolized kernel frame (name+offset) under an event.
    assert!(
        text.lines().any(|l| l.starts_with("        ")
            && l.contains("+0x")
            && !l.trim_start().starts_with("0x")),
        "no symbolized stack frame"
    );
    assert!(!text.contains("bpf_prog_"), "tracing frames not stripped");

    let json = tracer()
        .args(["dump", "--json", "--limit", "5"])
        .arg(&rec)
        .output()
        .unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&json.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 5);
    for l in lines {
        let e: tracer_core::events::Event = serde_json::from_str(l).unwrap();
        assert!(e.ts_ns > 0);
    }
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn truncated_and_corrupt_recordings_are_rejected_cleanly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (d, rec) = tmp("t.rec");
    let (mut child, _) = start_recording(&rec, &[]);
    Command::new("/bin/true").status().unwrap();
    assert!(signal_and_wait(&mut child, libc::SIGTERM).success());
    let bytes = std::fs::read(&rec).unwrap();
    assert!(bytes.len() > 100);

    // Cut inside its last frame (as a tracer killed mid-write leaves it): read up to there,
    // and said.
    let cut = d.path().join("cut.rec");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let out = tracer().arg("dump").arg(&cut).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("its last frame is cut at byte"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Cut inside the metadata: refused with the byte.
    let meta_cut = d.path().join("meta-cut.rec");
    std::fs::write(&meta_cut, &bytes[..40]).unwrap();
    let out = tracer().arg("dump").arg(&meta_cut).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated at byte"));

    let bad = d.path().join("bad.rec");
    let mut b = bytes.clone();
    b[9] ^= 0xff; // version
    std::fs::write(&bad, &b).unwrap();
    let out = tracer().arg("dump").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "made by tracer {}, recording format",
            env!("CARGO_PKG_VERSION")
        )),
        "{err}"
    );
    assert!(err.contains("this tracer"), "{err}");

    let junk = d.path().join("junk.rec");
    std::fs::write(&junk, b"hello").unwrap();
    let out = tracer().arg("dump").arg(&junk).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a tracer recording"));
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn nothing_stays_loaded_after_sigint_sigterm_or_an_error() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = our_programs_after_exit();
    assert!(
        before.is_empty(),
        "programs loaded before the test: {before:?}"
    );
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (_d, rec) = tmp("s.rec");
        let (mut child, _) = start_recording(&rec, &[]);
        assert!(
            !our_loaded_programs().is_empty(),
            "programs not visible while running"
        );
        let status = signal_and_wait(&mut child, sig);
        assert!(status.success(), "signal {sig}: {status:?}");
        let left = our_programs_after_exit();
        assert!(left.is_empty(), "left loaded after signal {sig}: {left:?}");
        // The recording is complete (has its end marker).
        assert!(tracer::session::read_recording(&rec)
            .unwrap()
            .summary
            .is_some());
    }
    // Error exit after everything is attached: the ready file cannot be created.
    let (_d, rec) = tmp("e.rec");
    let out = tracer()
        .args(["record", "-o"])
        .arg(&rec)
        .args(["--ready-file", "/nonexistent-dir/ready"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ready file"), "{err}");
    let left = our_programs_after_exit();
    assert!(left.is_empty(), "left loaded after an error: {left:?}");
}

/// kill -9 gives the tracer no chance to detach or finish its recording: the kernel must
/// free every program, link and map with the process, and the recording must read up to
/// its last complete event (it is flushed after every batch).
#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn nothing_stays_loaded_after_sigkill_and_the_recording_reads_to_its_last_event() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_nothing_of_ours_loaded();
    let (_d, rec) = tmp("k.rec");
    let (mut child, _) = start_recording(&rec, &[]);
    let ours = our_running_program_ids();
    let links = || {
        aya::programs::loaded_links()
            .filter_map(|l| l.ok())
            .filter(|l| ours.contains(&l.program_id()))
            .count()
    };
    assert!(links() > 0, "links not visible while running");
    // Events reach the file: wait (bounded) until it holds more than its header.
    let header = std::fs::metadata(&rec).unwrap().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&rec).unwrap().len() <= header + 4096 {
        assert!(std::time::Instant::now() < deadline, "no events recorded");
        Command::new("/bin/true").status().unwrap();
    }
    let status = signal_and_wait(&mut child, libc::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let left = our_programs_after_exit();
    assert!(left.is_empty(), "programs left after kill -9: {left:?}");
    assert_eq!(links(), 0, "links left after kill -9");
    let left = our_maps_after_exit();
    assert!(left.is_empty(), "maps left after kill -9: {left:?}");
    // The recording: no end marker, every complete event readable.
    let r = tracer::session::read_recording(&rec).expect("a killed tracer's recording reads");
    assert!(r.summary.is_none());
    assert!(
        !r.raw.is_empty(),
        "no event in the killed tracer's recording"
    );
    let dump = tracer().arg("dump").arg(&rec).output().unwrap();
    assert!(dump.status.success());
    let err = String::from_utf8_lossy(&dump.stderr);
    assert!(
        err.contains("no end marker (recording was cut short)"),
        "{err}"
    );
}

/// `tracer doctor` on this host: one line per check, exit 1 exactly when a requirement is
/// MISSING (here, when the kernel allows neither fentry nor kprobes), each naming what to do.
#[test]
#[ignore = "needs root: loads the tracer's object (cargo xtask test runs it)"]
fn doctor_says_what_is_missing_and_exits_accordingly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let o = tracer().arg("doctor").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.contains("privileges") && l.contains(" ok ")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.contains("kernel BTF")), "{out}");
    let missing = out.lines().filter(|l| l.contains(" MISSING ")).count();
    if missing > 0 {
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains(&format!("{missing} requirement(s) missing")),
            "{out}"
        );
    } else {
        assert_eq!(o.status.code(), Some(0), "{out}");
        assert!(out.contains("ready:"), "{out}");
    }
    assert!(
        our_programs_after_exit().is_empty(),
        "doctor left programs loaded"
    );
}

#[test]
fn bad_arguments_get_one_clear_line() {
    let out = tracer()
        .args(["record", "-o", "/tmp/x.rec", "--ring-mib", "3"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("power of two"), "{err}");

    // Each of these: exit 2, nothing on stdout, exactly one line on stderr naming the problem.
    let rec = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/abba-no-ctx.rec");
    let dir = tempfile::tempdir().unwrap();
    let bad_allow = dir.path().join("bad.allow");
    std::fs::write(&bad_allow, "garbage [[[\n").unwrap();
    let bad_allow = bad_allow.to_string_lossy().to_string();
    for (args, says) in [
        (
            vec!["analyze", rec, "--expect", "nosuchkind"],
            "--expect: unknown finding kind `nosuchkind`",
        ),
        (
            vec!["analyze", "/nonexistent.rec"],
            "/nonexistent.rec: No such file or directory (os error 2)",
        ),
        (vec!["analyze", rec, "--allow", &bad_allow], "bad.allow:1:"),
        (
            vec!["analyze", rec, "--allow", "/nonexistent.allow"],
            "--allow /nonexistent.allow: cannot read",
        ),
    ] {
        let out = tracer().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed a report");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        // The I/O error said once, not once more as its own cause.
        assert_eq!(
            err.matches("os error").count().min(1),
            err.matches("os error").count(),
            "{err}"
        );
    }
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn without_privileges_one_line_says_what_to_do() {
    // Drop to an unprivileged user the way a developer would run it without sudo.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_tracer"))
        .arg("probes")
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
}

/// Runs `tracer record EXTRA -o OUT`, waits until it records, runs real work (processes
/// taking mmap_lock), stops it with SIGINT and returns its whole stderr.
fn record_around_work(out: &Path, extra: &[&str]) -> Vec<String> {
    let (mut child, rd, mut lines) = spawn_recording(out, extra);
    for _ in 0..20 {
        Command::new("/bin/true").status().unwrap();
    }
    // SAFETY: plain kill(2) on our child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    lines.extend(rd.lines().map_while(Result::ok));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {lines:?}");
    lines
}

/// Runs of the programs whose name starts with `prefix`, from `--prog-stats` lines
/// (`tracer: prog-stats: NAME N runs ...`).
fn prog_runs(lines: &[String], prefix: &str) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("tracer: prog-stats: "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.next()?
                .starts_with(prefix)
                .then(|| w.next()?.parse::<u64>().ok())?
        })
        .sum()
}

#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn floor_runs_empty_programs_and_prog_stats_counts_them() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_d, rec) = tmp("floor.rec");
    let lines = record_around_work(&rec, &["--floor", "--prog-stats"]);
    assert!(lines.iter().any(|l| l.contains("floor mode")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("hooks attached in")),
        "no start-up time: {lines:?}"
    );
    // The floor's one raw-tracepoint program ran (mmap_lock fires in every exec)...
    assert!(prog_runs(&lines, "floor_raw_tp") > 0, "{lines:?}");
    // ...and none of the tracer's own programs did, and nothing was recorded.
    assert_eq!(prog_runs(&lines, "mmap_lock_"), 0, "{lines:?}");
    let dump = tracer().arg("dump").arg(&rec).output().unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("events: 0 in"), "{text}");

    // The same work under the tracer: its own programs run and are counted.
    let (_d2, rec2) = tmp("stats.rec");
    let lines = record_around_work(&rec2, &["--prog-stats"]);
    assert!(!lines.iter().any(|l| l.contains("floor mode")));
    assert!(prog_runs(&lines, "mmap_lock_") > 0, "{lines:?}");
    assert_eq!(prog_runs(&lines, "floor_raw_tp"), 0, "{lines:?}");
}

/// The fail point's line on a panicking tracer's stderr: `tracer: internal error (a bug):
/// failpoint NAME panic at ...` (the message `fail` panics with). Exactly one such line,
/// and none of the default hook's `panicked at` ones.
#[cfg(feature = "failpoints")]
fn assert_one_internal_error_line(err: &[String], failpoint: &str, rec: &Path) {
    let internal: Vec<&String> = err
        .iter()
        .filter(|l| l.contains("internal error"))
        .collect();
    assert_eq!(internal.len(), 1, "{err:?}");
    let l = internal[0].trim_end();
    assert!(
        l.starts_with(&format!(
            "tracer: internal error (a bug): failpoint {failpoint} panic at "
        )),
        "{l}"
    );
    assert!(l.contains(&rec.display().to_string()), "{l}");
    assert!(l.contains("please report"), "{l}");
    assert!(!err.iter().any(|l| l.contains("panicked at")), "{err:?}");
}

/// A panic (a bug) anywhere in the tracer ends it at once, like an error: one line saying
/// so, a failure status, nothing left loaded, and a recording that reads up to its last
/// batch written out, never a tracer left running without its session. Fail points
/// (`--features failpoints`) panic on the session's thread: between two batches, just
/// after one was written out, and in the middle of one, its frames staged but not written.
#[cfg(feature = "failpoints")]
#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn a_panic_ends_the_tracer_with_one_line_nothing_loaded_and_a_readable_recording() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_nothing_of_ours_loaded();
    // After three batches written out (so the recording has events); after 300 events,
    // whichever batch they fall in.
    for (failpoint, config) in [
        ("pump-batch", "pump-batch=3*off->panic"),
        ("pump-event", "pump-event=300*off->panic"),
    ] {
        let (_d, rec) = tmp("panic.rec");
        let mut cmd = tracer();
        // The line alone: no backtrace under it whatever the caller's environment says.
        cmd.env("FAILPOINTS", config).env_remove("RUST_BACKTRACE");
        let (child, rd, _) = spawn_recording_by(cmd, &rec, &["--all-events"]);
        let mut child = Running(child);
        let rest = std::thread::spawn(move || rd.lines().map_while(Result::ok).collect::<Vec<_>>());
        let ours = our_running_program_ids();
        // Work (processes taking mmap_lock) until the fail point ends the tracer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{failpoint}: the tracer still runs"
            );
            Command::new("/bin/true").status().unwrap();
        };
        let err = rest.join().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            None,
            "{failpoint}: {status:?} {err:?}"
        );
        assert_eq!(status.code(), Some(2), "{failpoint}: {err:?}");
        assert_one_internal_error_line(&err, failpoint, &rec);

        let left = our_programs_after_exit();
        assert!(left.is_empty(), "{failpoint}: programs left: {left:?}");
        let links = aya::programs::loaded_links()
            .filter_map(|l| l.ok())
            .filter(|l| ours.contains(&l.program_id()))
            .count();
        assert_eq!(links, 0, "{failpoint}: links left");
        let left = our_maps_after_exit();
        assert!(left.is_empty(), "{failpoint}: maps left: {left:?}");

        // Whole frames only: no end marker, no frame cut.
        let r = tracer::session::read_recording(&rec).expect("a panicked tracer's recording reads");
        assert!(r.summary.is_none(), "{failpoint}");
        if failpoint == "pump-batch" {
            assert!(!r.raw.is_empty(), "no event in the recording");
        }
        let dump = tracer().arg("dump").arg(&rec).output().unwrap();
        let derr = String::from_utf8_lossy(&dump.stderr);
        assert!(dump.status.success(), "{failpoint}: {derr}");
        assert!(derr.contains("no end marker"), "{derr}");
        assert!(!derr.contains("cut at byte"), "{failpoint}: {derr}");
        let analyze = tracer().arg("analyze").arg(&rec).output().unwrap();
        assert!(
            matches!(analyze.status.code(), Some(0 | 1)),
            "{failpoint}: {}",
            String::from_utf8_lossy(&analyze.stderr)
        );
    }
}

/// Polls `cond` (a bounded number of times, a short pause between) until it holds.
#[cfg(feature = "failpoints")]
fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A private tmux server (its own socket), killed when dropped.
/// A panic on a thread other than the session's: the live view's key reader. It must end
/// the tracer as a panic on the session's thread does (not end the session as if the user
/// quit, with a success status), with the terminal given back.
#[cfg(feature = "failpoints")]
#[test]
#[ignore = "needs root and tmux: the live view over loaded BPF programs (cargo xtask test runs it)"]
fn a_panic_in_the_live_views_key_thread_ends_the_tracer_too() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_nothing_of_ours_loaded();
    let d = tempfile::tempdir().unwrap();
    let (rec, err, exit) = (
        d.path().join("live.rec"),
        d.path().join("err"),
        d.path().join("exit"),
    );
    let tmux = Tmux::start("tracer-lifecycle", 160, 40, "lifecycle$ ", None);
    tmux.type_line(&format!(
        "FAILPOINTS=tui-key=panic RUST_BACKTRACE=0 {} --all-events --record {} 2>{}; echo $? >{}",
        env!("CARGO_BIN_EXE_tracer"),
        rec.display(),
        err.display(),
        exit.display()
    ));
    // The view is up (its status line), and events reach the recording.
    poll_until("the live view", || tmux.screen().contains(" events, "));
    let header = std::fs::metadata(&rec).unwrap().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&rec).unwrap().len() <= header + 4096 {
        assert!(std::time::Instant::now() < deadline, "no events recorded");
        Command::new("/bin/true").status().unwrap();
    }
    // A key: the reader thread panics.
    tmux.keys(&["Down"]);
    poll_until("the tracer's exit", || {
        std::fs::read_to_string(&exit).is_ok_and(|s| s.ends_with('\n'))
    });
    let code = std::fs::read_to_string(&exit).unwrap();
    let err: Vec<String> = std::fs::read_to_string(&err)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(code.trim(), "2", "{err:?}");
    assert_one_internal_error_line(&err, "tui-key", &rec);
    assert_eq!(tmux.alternate_on(), "0");

    let left = our_programs_after_exit();
    assert!(left.is_empty(), "programs left: {left:?}");
    let left = our_maps_after_exit();
    assert!(left.is_empty(), "maps left: {left:?}");
    let r = tracer::session::read_recording(&rec).expect("the recording reads");
    assert!(r.summary.is_none());
    assert!(!r.raw.is_empty(), "no event in the recording");
    let dump = tracer().arg("dump").arg(&rec).output().unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
}

/// `tracer run`'s workload does not outlive a panicking tracer (as it does not outlive a
/// stopped run): the hook kills its process group, since the exit skips the drop that
/// would have killed it.
#[cfg(feature = "failpoints")]
#[test]
#[ignore = "needs root: loads BPF programs (cargo xtask test runs it)"]
fn a_panic_in_tracer_run_takes_its_workload_along() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let (rec, pidfile) = (d.path().join("run.rec"), d.path().join("pid"));
    // The workload takes mmap_lock in every exec: the batches that trip the fail point. Its
    // output elsewhere: a workload left running must not keep the tracer's stderr open.
    let script = format!(
        "exec >/dev/null 2>&1; echo $$ >{}; while :; do /bin/true; done",
        pidfile.display()
    );
    let child = tracer()
        .env("FAILPOINTS", "pump-batch=3*off->panic")
        .env("RUST_BACKTRACE", "0")
        .args(["run", "--all-events", "--record"])
        .arg(&rec)
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let rd = BufReader::new(child.stderr.take().unwrap());
    let err: Vec<String> = rd.lines().map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{status:?} {err:?}");
    assert_one_internal_error_line(&err, "pump-batch", &rec);
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A failed check leaves no workload looping behind it.
    struct Group(u32);
    impl Drop for Group {
        fn drop(&mut self) {
            if std::thread::panicking() {
                // SAFETY: kill(2) on the workload's group; one already gone (ESRCH) is fine.
                unsafe { libc::kill(-(self.0 as i32), libc::SIGKILL) };
            }
        }
    }
    let _group = Group(pid);
    // Gone, or a zombie waiting for init to reap it.
    poll_until("the workload's end", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z'))
        })
    });
    let left = our_programs_after_exit();
    assert!(left.is_empty(), "programs left: {left:?}");
    assert!(!tracer::session::read_recording(&rec)
        .expect("the recording reads")
        .raw
        .is_empty());
}
