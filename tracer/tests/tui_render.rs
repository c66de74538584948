//! The views drawn into an in-memory terminal from a fixed engine state: a
//! lab recording (6.12, scenario abba-no-ctx: two reservation locks taken in
//! both orders without an acquire context). Each screen is a reviewed snapshot
//! (tests/snapshots/): a change to a view shows as a diff to accept with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test`), never silently.

use ratatui::{backend::TestBackend, Terminal};
use tracer::session::read_recording;
use tracer::tui::{app::App, replay_app, ui, View};

const REC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/abba-no-ctx.rec");

/// The app after `n` events of the recording (all of them for None).
fn app(n: Option<usize>) -> App {
    let rec = read_recording(REC.as_ref()).expect("test recording");
    let (mut app, events) = replay_app(&rec, "replay abba-no-ctx.rec");
    let n = n.unwrap_or(events.len());
    for e in &events[..n] {
        app.feed(e);
    }
    app.progress = Some((n as u64, events.len() as u64));
    app.refresh();
    app
}

/// The app stopped at the first event after which two locks are held.
fn app_holding() -> App {
    let rec = read_recording(REC.as_ref()).unwrap();
    let (_, events) = replay_app(&rec, "x");
    let n = (1..=events.len())
        .find(|&n| app(Some(n)).snap.held.len() >= 2)
        .expect("the recording nests two locks");
    app(Some(n))
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app)).unwrap();
    ui::buffer_text(t.backend().buffer())
}

#[test]
fn findings_list() {
    let s = render(&app(None), 120, 32);
    assert!(s.contains("1 Findings (2)"), "{s}");
    assert!(s.contains("lock-order-inversion"), "{s}");
    assert!(s.contains("ww-protocol"), "{s}");
    assert!(s.contains("tsc_abba_no_ctx"), "{s}");
    assert!(s.contains("SEVERITY"), "{s}");
    assert!(s.contains("> warning"), "first row selected: {s}");
    insta::assert_snapshot!("findings", s);
}

#[test]
fn finding_detail() {
    let mut a = app(None);
    a.on_key(key(ratatui::crossterm::event::KeyCode::Down));
    a.on_key(key(ratatui::crossterm::event::KeyCode::Enter));
    assert!(a.detail);
    let s = render(&a, 120, 60);
    assert!(
        s.contains("WARNING: possible circular locking dependency detected"),
        "{s}"
    );
    assert!(s.contains("Possible unsafe locking scenario"), "{s}");
    // Symbolized stacks come from the recording's stack table.
    assert!(s.contains("tsc_abba_no_ctx+0x"), "{s}");
    // The advice is at the end of the block: scroll until it shows.
    let mut seen = false;
    for _ in 0..20 {
        if render(&a, 120, 60).contains("what to do:") {
            seen = true;
            break;
        }
        a.on_key(key(ratatui::crossterm::event::KeyCode::PageDown));
    }
    assert!(seen, "advice reachable by scrolling");
    let text = a.detail_text().unwrap();
    assert!(text.contains("what to do:"));
    insta::assert_snapshot!("finding_detail", s);
}

#[test]
fn graph_view() {
    let mut a = app(None);
    a.view = View::Graph;
    let s = render(&a, 120, 32);
    assert!(s.contains("Lock order (held, then acquired) 2/2"), "{s}");
    assert!(s.contains("&mm->mmap_lock"), "{s}");
    assert!(s.contains("reservation_ww_class_acquire"), "{s}");
    assert!(s.contains("primed at boot"), "{s}");
    // The five built-in classes (reservation, its acquire context, user and
    // init_mm mmap_lock, unknown ww).
    assert!(s.contains("Classes (5)"), "{s}");
    // The ABBA between two objects of one class is listed as a cycle.
    assert!(
        s.contains("lock-order-inversion at tsc_abba_no_ctx:"),
        "{s}"
    );
    assert!(
        s.contains("sh/692 at 11.787 s: reservation_ww_class_mutex"),
        "{s}"
    );
    insta::assert_snapshot!("graph", s);
}

#[test]
fn held_locks_view() {
    let mut a = app_holding();
    a.view = View::Held;
    let s = render(&a, 120, 20);
    assert!(s.contains("3 Held locks (2)"), "{s}");
    assert!(s.contains("HELD FOR"), "{s}");
    assert!(s.contains("reservation_ww_class_mutex"), "{s}");
    assert!(s.contains("sh/"), "{s}");
    let mut done = app(None);
    done.view = View::Held;
    assert!(render(&done, 120, 20).contains("no hooked lock is held right now"));
    insta::assert_snapshot!("held_locks", s);
}

#[test]
fn help_overlay() {
    let mut a = app(None);
    a.on_key(key(ratatui::crossterm::event::KeyCode::Char('?')));
    let s = render(&a, 120, 32);
    assert!(s.contains("Keys"), "{s}");
    assert!(s.contains("pause the view"), "{s}");
    assert!(s.contains("save the report"), "{s}");
    insta::assert_snapshot!("help", s);
}

#[test]
fn status_bar() {
    let a = app(None);
    let s = render(&a, 140, 10);
    let line = ui::status_line(&a);
    assert!(line.starts_with("replay abba-no-ctx.rec 100%"), "{line}");
    assert!(line.contains("6.12.95+deb12-amd64 (6.6 - 6.15)"), "{line}");
    assert!(line.contains("hooks, 0 unavailable"), "{line}");
    assert!(line.contains("events, 0 lost"), "{line}");
    assert!(s.contains(&line), "{s}");
    assert!(s.contains("? help"), "{s}");
    insta::assert_snapshot!("status_bar", s);
}

#[test]
fn tiny_terminals_do_not_panic() {
    let mut a = app(None);
    for (w, h) in [(10, 3), (1, 1), (3, 10), (20, 4), (40, 6), (200, 2)] {
        for v in View::ALL {
            a.view = v;
            a.detail = v == View::Findings;
            a.help = w == 10;
            render(&a, w, h);
        }
    }
    a.help = false;
    a.detail = false;
    a.view = View::Findings;
    let s = render(&a, 10, 3);
    assert_eq!(s.lines().count(), 3);
}

fn key(c: ratatui::crossterm::event::KeyCode) -> ratatui::crossterm::event::KeyEvent {
    ratatui::crossterm::event::KeyEvent::from(c)
}
