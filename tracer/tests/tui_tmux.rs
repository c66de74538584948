//! The interactive view in a real terminal: `tracer --replay` run by a shell
//! in a detached tmux session of fixed size, driven with send-keys and read
//! with capture-pane. Each step waits by polling the screen for what it
//! expects (a bounded number of polls), never by sleeping a fixed time.

use std::path::Path;
use std::process::Command;

mod common;
use common::tmux::Tmux;

const REC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/abba-no-ctx.rec");
const PROMPT: &str = "tuitest$ ";

fn has_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
#[ignore = "needs tmux (cargo xtask setup installs it; cargo xtask test runs it)"]
fn replay_in_a_real_terminal() {
    assert!(
        has_tmux(),
        "tmux is not installed (cargo xtask setup installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::start("tracer-tui", 120, 32, PROMPT, dir.path().to_str());
    let cmd = format!(
        "{} --replay {} --speed 0",
        env!("CARGO_BIN_EXE_tracer"),
        Path::new(REC).display()
    );
    tmux.keys(&["-l", &cmd]);
    tmux.keys(&["Enter"]);

    // The whole recording fed, both findings listed.
    let s = tmux.wait("the replay to finish", |s| {
        s.contains("100%") && s.contains("lock-order-inversion")
    });
    assert!(s.contains("ww-protocol"), "{s}");
    assert!(s.contains("tsc_abba_no_ctx"), "{s}");
    assert_eq!(tmux.alternate_on(), "1");

    // Detail of the inversion; its advice is at the end of the block.
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_for("WARNING: possible circular locking dependency detected");
    for _ in 0..20 {
        let before = tmux.screen();
        if before.contains("what to do:") {
            break;
        }
        tmux.keys(&["PageDown"]);
        tmux.wait("the detail to scroll", |s| s != before);
    }
    tmux.wait_for("what to do:");
    tmux.keys(&["Enter"]);
    tmux.wait("the detail to close", |s| !s.contains("what to do:"));

    // Filter: typed text shows, enter applies it.
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "ww-prot"]);
    tmux.wait_for("/ww-prot_");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("Findings 1/2 [filter: ww-prot]");
    assert!(!s.contains("lock-order-inversion"), "{s}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("Findings 2/2");

    // Save: both files in the working directory, the paths on screen.
    tmux.keys(&["s"]);
    tmux.wait_for("saved ");
    let saved: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        saved
            .iter()
            .any(|n| n.starts_with("tracer-report-") && n.ends_with(".txt")),
        "{saved:?}"
    );
    assert!(saved.iter().any(|n| n.ends_with(".json")), "{saved:?}");

    // Other views.
    tmux.keys(&["Tab"]);
    tmux.wait_for("Lock order (held, then acquired)");
    tmux.keys(&["Tab"]);
    tmux.wait_for("no hooked lock is held right now");
    tmux.keys(&["?"]);
    tmux.wait_for("pause the view");
    tmux.keys(&["Escape"]);
    tmux.wait("the help to close", |s| !s.contains("pause the view"));

    // Quit: the shell is back, on the main screen, with the summary printed.
    tmux.keys(&["q"]);
    let s = tmux.wait("the shell prompt after quitting", |s| {
        s.contains("2 findings (1 error)")
            && s.trim_end()
                .lines()
                .last()
                .is_some_and(|l| l.starts_with(PROMPT.trim_end()))
    });
    assert_eq!(tmux.alternate_on(), "0", "{s}");
    // The terminal is back in cooked mode: a command line runs.
    tmux.keys(&["-l", "echo sane-$((40+2))"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("sane-42");
}
