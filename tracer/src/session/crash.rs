//! What a panic (a bug) does: one line on stderr, and the process ends at once with
//! `EXIT_FAILURE`, from whichever thread panicked.
//!
//! The hook exits rather than let the panic unwind because unwinding ends only the
//! panicking thread: a panic on the live view's key reader would end the session as if
//! the user had quit, with a success status, and a panic in a tokio task (none is spawned
//! today) is caught by the runtime, the task just gone. On the session's thread,
//! unwinding would do nothing the exit does not: the kernel detaches every program, link
//! and map when the process's descriptors close (as after kill -9; tests/lifecycle.rs), and
//! a recording grows by whole frames only (`recfile`), so what is on disk reads up to the
//! last batch written out (the batch in hand is lost either way). A destructor panicking
//! again during the unwind would have aborted without a word.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

use tracer_core::gate::EXIT_FAILURE;

/// The recordings being written, named by the line: the whole run's and the current
/// segment's.
static RECORDING: Mutex<Option<PathBuf>> = Mutex::new(None);
static SEGMENT: Mutex<Option<PathBuf>> = Mutex::new(None);
/// Killed by the hook as a stopped run kills it: nothing the tracer started outlives it
/// (the child's `kill_on_drop` needs a drop, which the exit skips).
static WORKLOAD: Mutex<Option<u32>> = Mutex::new(None);

/// The run's recording (`None`: finished, or none).
pub fn recording(path: Option<&Path>) {
    set(&RECORDING, path);
}

/// The current segment's recording (`None`: no segment open).
pub fn segment(path: Option<&Path>) {
    set(&SEGMENT, path);
}

/// `tracer run`'s workload, a process group (`None`: not started, or ended).
pub fn workload(pgid: Option<u32>) {
    *WORKLOAD.lock().unwrap_or_else(|e| e.into_inner()) = pgid;
}

fn set(slot: &Mutex<Option<PathBuf>>, path: Option<&Path>) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = path.map(Path::to_path_buf);
}

/// Installs the hook; call it first thing in `main` (the live view's terminal hook, installed
/// later, restores the terminal and then calls this one).
pub fn install() {
    static ENDING: AtomicBool = AtomicBool::new(false);
    std::panic::set_hook(Box::new(|info| {
        // Two threads panicking at once: the first one says it and ends the process.
        if ENDING.swap(true, Ordering::SeqCst) {
            loop {
                std::thread::park();
            }
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        eprintln!("{}", line(msg, &at, &recordings()));
        if let Some(pgid) = WORKLOAD.try_lock().ok().and_then(|g| *g) {
            // SAFETY: kill(2) on the workload's group; one already gone (ESRCH) is fine.
            unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
        }
        // Only when asked (RUST_BACKTRACE=1): for the report.
        let bt = std::backtrace::Backtrace::capture();
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("{bt}");
        }
        std::process::exit(EXIT_FAILURE.into());
    }));
}

/// The recordings open now. `try_lock`: a panic while a slot is being set must still end
/// the process (without naming that recording) rather than wait on itself.
fn recordings() -> Vec<PathBuf> {
    [&RECORDING, &SEGMENT]
        .iter()
        .filter_map(|m| match m.try_lock() {
            Ok(g) => g.clone(),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().clone(),
            Err(std::sync::TryLockError::WouldBlock) => None,
        })
        .collect()
}

/// The one line a panic prints.
fn line(msg: &str, at: &str, recordings: &[PathBuf]) -> String {
    let msg = msg.lines().collect::<Vec<_>>().join(" ");
    let kept = match recordings {
        [] => String::new(),
        [one] => format!(
            "; the recording {} holds every event up to the last batch written out",
            one.display()
        ),
        many => format!(
            "; the recordings {} hold every event up to the last batch written out",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    };
    format!(
        "tracer: internal error (a bug): {msg}{at}{kept}; please report it with this line \
         (tracer {}, RUST_BACKTRACE=1 adds a backtrace)",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_place_and_the_recordings() {
        assert_eq!(
            line("boom", " at a.rs:1:2", &[]),
            format!(
                "tracer: internal error (a bug): boom at a.rs:1:2; please report it with this \
                 line (tracer {}, RUST_BACKTRACE=1 adds a backtrace)",
                env!("CARGO_PKG_VERSION")
            )
        );
        let l = line("two\nlines", "", &["r.rec".into(), "s/x.rec".into()]);
        assert!(l.starts_with("tracer: internal error (a bug): two lines; the recordings r.rec and s/x.rec hold every event up to the last batch written out"), "{l}");
        assert_eq!(l.lines().count(), 1);
    }
}
