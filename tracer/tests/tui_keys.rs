//! Key handling of the interactive view, driven on the state directly.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tracer::session::read_recording;
use tracer::tui::{app::App, replay_app, Action, View};

const REC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/abba-no-ctx.rec");

fn loaded() -> (App, Vec<tracer_core::events::Event>) {
    let rec = read_recording(REC.as_ref()).expect("test recording");
    replay_app(&rec, "replay abba-no-ctx.rec")
}

fn app() -> App {
    let (mut a, events) = loaded();
    for e in &events {
        a.feed(e);
    }
    a.refresh();
    a
}

fn k(c: KeyCode) -> KeyEvent {
    KeyEvent::from(c)
}

fn ch(c: char) -> KeyEvent {
    k(KeyCode::Char(c))
}

fn typ(a: &mut App, s: &str) {
    for c in s.chars() {
        assert_eq!(a.on_key(ch(c)), Action::None);
    }
}

#[test]
fn views_cycle_with_tab_and_arrows() {
    let mut a = app();
    assert_eq!(a.view, View::Findings);
    a.on_key(k(KeyCode::Tab));
    assert_eq!(a.view, View::Graph);
    a.on_key(k(KeyCode::Right));
    assert_eq!(a.view, View::Held);
    a.on_key(k(KeyCode::Tab));
    assert_eq!(a.view, View::Findings);
    a.on_key(k(KeyCode::Left));
    assert_eq!(a.view, View::Held);
    a.on_key(k(KeyCode::BackTab));
    assert_eq!(a.view, View::Graph);
    a.on_key(ch('1'));
    assert_eq!(a.view, View::Findings);
}

#[test]
fn selection_moves_and_stays_in_bounds() {
    let mut a = app();
    assert_eq!(a.snap.findings.len(), 2);
    assert_eq!(a.selected(), 0);
    a.on_key(k(KeyCode::Up));
    assert_eq!(a.selected(), 0);
    a.on_key(ch('j'));
    assert_eq!(a.selected(), 1);
    a.on_key(k(KeyCode::Down));
    assert_eq!(a.selected(), 1);
    a.on_key(ch('k'));
    assert_eq!(a.selected(), 0);
    a.on_key(k(KeyCode::End));
    assert_eq!(a.selected(), 1);
    // Each view keeps its own selection.
    a.on_key(k(KeyCode::Tab));
    assert_eq!(a.selected(), 0);
    a.on_key(k(KeyCode::Down));
    assert_eq!(a.selected(), 1);
    a.on_key(k(KeyCode::BackTab));
    assert_eq!(a.selected(), 1);
}

#[test]
fn enter_opens_and_closes_detail() {
    let mut a = app();
    a.on_key(k(KeyCode::Enter));
    assert!(a.detail);
    assert!(a.detail_text().unwrap().contains("what to do:"));
    a.on_key(k(KeyCode::PageDown));
    assert_eq!(a.detail_scroll, 10);
    // Moving to another finding shows it from the top.
    a.on_key(k(KeyCode::Down));
    assert_eq!(a.detail_scroll, 0);
    assert!(a.detail);
    assert_eq!(
        a.selected_finding().unwrap().id.id(),
        "lock-order-inversion"
    );
    a.on_key(k(KeyCode::Enter));
    assert!(!a.detail);
    a.on_key(k(KeyCode::Enter));
    a.on_key(k(KeyCode::Esc));
    assert!(!a.detail);
    // No detail in the other views.
    a.on_key(k(KeyCode::Tab));
    a.on_key(k(KeyCode::Enter));
    assert!(!a.detail);
}

#[test]
fn filter_typed_applied_and_cleared() {
    let mut a = app();
    a.on_key(ch('/'));
    // While typing, command keys are text.
    typ(&mut a, "inversQ");
    assert_eq!(a.filter_input.as_deref(), Some("inversQ"));
    a.on_key(k(KeyCode::Backspace));
    // Not applied until enter.
    assert_eq!(a.visible_findings().len(), 2);
    a.on_key(k(KeyCode::Enter));
    assert_eq!(a.filter, "invers");
    assert!(a.filter_input.is_none());
    let v = a.visible_findings();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].id.id(), "lock-order-inversion");
    // The filter is case-insensitive and applies to every view.
    a.on_key(ch('/'));
    typ(&mut a, "PRIMED");
    a.on_key(k(KeyCode::Enter));
    a.on_key(k(KeyCode::Tab));
    assert_eq!(a.visible_edges().len(), 2);
    a.on_key(ch('/'));
    typ(&mut a, "nothing-matches");
    a.on_key(k(KeyCode::Enter));
    assert_eq!(a.visible_edges().len(), 0);
    // esc while typing clears the filter.
    a.on_key(ch('/'));
    typ(&mut a, "x");
    a.on_key(k(KeyCode::Esc));
    assert!(a.filter.is_empty());
    assert!(a.filter_input.is_none());
    assert_eq!(a.visible_edges().len(), 2);
    // esc outside typing clears an applied filter too.
    a.on_key(ch('/'));
    typ(&mut a, "mmap");
    a.on_key(k(KeyCode::Enter));
    assert_eq!(a.visible_edges().len(), 1);
    a.on_key(k(KeyCode::Esc));
    assert!(a.filter.is_empty());
}

#[test]
fn pause_freezes_the_view_but_counts() {
    let (mut a, events) = loaded();
    // Pause just before the first finding.
    let mut half = 0;
    while a.engine.findings().is_empty() {
        a.feed(&events[half]);
        half += 1;
    }
    let (mut a, _) = loaded();
    for e in &events[..half - 1] {
        a.feed(e);
    }
    a.tick(0, 0);
    let before = a.snap.findings.len();
    assert_eq!(before, 0);
    let half = half - 1;
    a.on_key(ch('p'));
    assert!(a.paused);
    for e in &events[half..] {
        a.feed(e);
    }
    a.tick(2000, 0);
    assert_eq!(a.events, events.len() as u64, "events still counted");
    assert_eq!(a.snap.findings.len(), before, "view frozen");
    assert_eq!(a.engine.findings().len(), 2, "engine still fed");
    assert!(a.rate > 0.0);
    a.on_key(ch('p'));
    assert!(!a.paused);
    assert_eq!(a.snap.findings.len(), 2);
}

#[test]
fn help_quit_and_save() {
    let mut a = app();
    a.on_key(ch('?'));
    assert!(a.help);
    assert_eq!(a.on_key(ch('j')), Action::None);
    assert!(!a.help, "any key closes the help");
    assert_eq!(a.selected(), 0, "and does nothing else");
    assert_eq!(a.on_key(ch('s')), Action::Save);
    assert_eq!(a.on_key(ch('q')), Action::Quit);
    assert_eq!(
        a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Action::Quit
    );
    let dir = tempfile::tempdir().unwrap();
    let (txt, json) = a.save(dir.path(), "t").unwrap();
    let dot = std::fs::read_to_string(dir.path().join("tracer-graph-t.dot")).unwrap();
    assert!(dot.starts_with("digraph"), "{dot}");
    let t = std::fs::read_to_string(&txt).unwrap();
    assert!(t.contains("possible circular locking dependency detected"));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["findings"].as_array().unwrap().len(), 2);
    assert!(a
        .message
        .as_deref()
        .unwrap()
        .contains("tracer-report-t.txt"));
}

/// The live view's replay and `tracer analyze` judge a recording alike: same events, same
/// order (tracer_core::replay), same findings, for both test recordings.
#[test]
fn the_view_replays_what_analyze_judges() {
    for name in ["abba-no-ctx.rec", "return-to-user-holding.rec"] {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data")
            .join(name);
        let rec = read_recording(&p).unwrap();
        let (mut a, events) = replay_app(&rec, name);
        for e in &events {
            a.feed(e);
        }
        let (_, engine) = tracer::session::replay_file(&p).unwrap();
        assert!(!engine.findings().is_empty(), "{name}");
        assert_eq!(a.engine.findings(), engine.findings(), "{name}");
        assert_eq!(a.engine.stats(), engine.stats(), "{name}");
    }
}
