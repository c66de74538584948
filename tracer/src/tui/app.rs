//! The state of the interactive view, kept apart from the terminal so that
//! every key and every refresh can be tested without one: the shell feeds
//! events and keys in, `ui` draws whatever this holds.
//!
//! The engine is always fed; what the views show is a snapshot taken at each
//! refresh. Pausing stops refreshing the snapshot (the rows stay still while
//! they are read) while the counters in the status bar keep moving, so no
//! event is missed by pausing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use tracer_core::analysis::{Engine, Finding, FindingKind, HeldLockView, Stats};
use tracer_core::events::record::Meta;
use tracer_core::events::Event;
use tracer_core::kernel::{ProbeState, ProbeStatus};
use tracer_core::report;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Findings,
    Graph,
    Held,
}

impl View {
    pub const ALL: [View; 3] = [View::Findings, View::Graph, View::Held];

    pub fn title(self) -> &'static str {
        match self {
            View::Findings => "Findings",
            View::Graph => "Lock graph",
            View::Held => "Held locks",
        }
    }

    fn index(self) -> usize {
        match self {
            View::Findings => 0,
            View::Graph => 1,
            View::Held => 2,
        }
    }

    fn next(self) -> View {
        View::ALL[(self.index() + 1) % 3]
    }

    fn prev(self) -> View {
        View::ALL[(self.index() + 2) % 3]
    }
}

/// What the shell must do after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    /// Write the report files (the shell knows the directory and the time).
    Save,
}

/// Where the events come from, for the status bar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceInfo {
    /// `live` or `replay FILE`.
    pub label: String,
    pub kernel_release: String,
    /// The convention era's kernel range (`6.6 - 6.15`).
    pub era: String,
    pub hooks_attached: usize,
    /// Hooks the kernel refused (absent functions are not counted: the
    /// kernel simply does not have them).
    pub hooks_failed: usize,
    /// The kernel's reason for the first refused hook, if any.
    pub failed_reason: Option<String>,
}

impl SourceInfo {
    pub fn new(label: &str, kernel_release: &str, era: &str, probes: &[ProbeStatus]) -> Self {
        let failed: Vec<&ProbeStatus> = probes
            .iter()
            .filter(|p| p.state == ProbeState::Failed)
            .collect();
        SourceInfo {
            label: label.to_string(),
            kernel_release: kernel_release.to_string(),
            era: era.to_string(),
            hooks_attached: probes
                .iter()
                .filter(|p| p.state == ProbeState::Attached)
                .count(),
            hooks_failed: failed.len(),
            failed_reason: failed.first().map(|p| format!("{}: {}", p.hook, p.reason)),
        }
    }

    pub fn from_meta(label: &str, meta: &Meta) -> Self {
        let conv = tracer_core::replay::convention_of(meta);
        Self::new(label, &meta.kernel_release, conv.era.range(), &meta.probes)
    }
}

/// One edge of the class lock-order graph, as the graph view lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeRow {
    pub from: String,
    pub to: String,
    /// `comm/pid` of the task that first showed the order, or `primed at boot`.
    pub first_seen: String,
    pub ts_ns: u64,
    /// Part of a cycle of the class graph.
    pub in_cycle: bool,
}

/// One lock class with its degree in the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassRow {
    pub name: String,
    pub before: usize,
    pub after: usize,
    pub in_cycle: bool,
}

/// What the views show, frozen while paused.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub findings: Vec<Finding>,
    pub classes: Vec<ClassRow>,
    pub edges: Vec<EdgeRow>,
    /// Cycles as lines: the class graph's strongly connected parts and the
    /// dependency chains of inversion findings (an ABBA between two
    /// objects of one class is no cycle of the class graph, but it is one).
    pub cycles: Vec<String>,
    pub held: Vec<HeldLockView>,
    pub stats: Stats,
    /// Event time of the snapshot (what "held for" is measured against).
    pub now_ns: u64,
}

pub struct App {
    pub engine: Engine,
    pub source: SourceInfo,
    pub view: View,
    /// The detail pane of the selected finding is open.
    pub detail: bool,
    pub detail_scroll: u16,
    pub help: bool,
    pub paused: bool,
    /// The applied filter (case-insensitive substring of a row).
    pub filter: String,
    /// Text being typed after `/`, not applied yet.
    pub filter_input: Option<String>,
    selected: [usize; 3],
    pub snap: Snapshot,
    /// Events received (counted while paused too).
    pub events: u64,
    pub decode_errors: u64,
    /// Events the kernel could not queue (ring buffer full).
    pub lost: u64,
    /// Events per second over the last rate interval.
    pub rate: f64,
    rate_mark: Option<(u64, u64)>,
    /// Latest event time.
    pub now_ns: u64,
    /// Replay progress: (fed, total).
    pub progress: Option<(u64, u64)>,
    /// One line for the user (saved paths, errors).
    pub message: Option<String>,
}

/// Rate is recomputed at most this often (wall ms), so it does not flicker.
const RATE_INTERVAL_MS: u64 = 1000;

impl App {
    pub fn new(engine: Engine, source: SourceInfo) -> Self {
        let mut a = App {
            engine,
            source,
            view: View::Findings,
            detail: false,
            detail_scroll: 0,
            help: false,
            paused: false,
            filter: String::new(),
            filter_input: None,
            selected: [0; 3],
            snap: Snapshot::default(),
            events: 0,
            decode_errors: 0,
            lost: 0,
            rate: 0.0,
            rate_mark: None,
            now_ns: 0,
            progress: None,
            message: None,
        };
        a.refresh();
        a
    }

    /// Feeds one event to the engine; returns how many new findings it made.
    pub fn feed(&mut self, ev: &Event) -> usize {
        self.events += 1;
        self.now_ns = self.now_ns.max(ev.ts_ns);
        self.engine.feed(ev).len()
    }

    /// Periodic update: the event rate (from wall time in ms, any origin)
    /// and, unless paused, the snapshot. `now_ns` is the event-clock "now"
    /// for held-lock durations (0: the latest event's time).
    pub fn tick(&mut self, wall_ms: u64, now_ns: u64) {
        if now_ns > 0 {
            self.now_ns = self.now_ns.max(now_ns);
        }
        match self.rate_mark {
            None => self.rate_mark = Some((wall_ms, self.events)),
            Some((t, n)) if wall_ms >= t + RATE_INTERVAL_MS => {
                self.rate = (self.events - n) as f64 * 1000.0 / (wall_ms - t) as f64;
                self.rate_mark = Some((wall_ms, self.events));
            }
            _ => {}
        }
        if !self.paused {
            self.refresh();
        }
    }

    /// Takes a new snapshot from the engine.
    pub fn refresh(&mut self) {
        let e = &self.engine;
        let (part, mut cycles) = class_cycles(e);
        let edges = edge_rows(e, &part);
        let classes = class_rows(e, &edges);
        cycles.extend(inversion_lines(e.findings()));
        let now = self.now_ns;
        self.snap = Snapshot {
            findings: e.findings().to_vec(),
            classes,
            edges,
            cycles,
            held: e.held_locks(now),
            stats: e.stats(),
            now_ns: now,
        };
        self.clamp();
    }

    fn matches(&self, row: &str) -> bool {
        self.filter.is_empty() || row.to_lowercase().contains(&self.filter.to_lowercase())
    }

    /// Findings shown (filtered), with their index in the snapshot.
    pub fn visible_findings(&self) -> Vec<&Finding> {
        self.snap
            .findings
            .iter()
            .filter(|f| self.matches(&finding_row(f).join(" ")))
            .collect()
    }

    pub fn visible_edges(&self) -> Vec<&EdgeRow> {
        self.snap
            .edges
            .iter()
            .filter(|r| self.matches(&edge_row(r).join(" ")))
            .collect()
    }

    pub fn visible_held(&self) -> Vec<&HeldLockView> {
        self.snap
            .held
            .iter()
            .filter(|h| self.matches(&held_row(h).join(" ")))
            .collect()
    }

    fn visible_len(&self, v: View) -> usize {
        match v {
            View::Findings => self.visible_findings().len(),
            View::Graph => self.visible_edges().len(),
            View::Held => self.visible_held().len(),
        }
    }

    /// Selected row of the current view (index into the visible rows).
    pub fn selected(&self) -> usize {
        self.selected[self.view.index()]
    }

    pub fn selected_finding(&self) -> Option<&Finding> {
        self.visible_findings().get(self.selected()).copied()
    }

    /// The lockdep-style block of the selected finding, with stacks.
    pub fn detail_text(&self) -> Option<String> {
        self.selected_finding()
            .map(|f| report::text::finding(f, self.engine.stacks()))
    }

    fn clamp(&mut self) {
        for v in View::ALL {
            let n = self.visible_len(v);
            let s = &mut self.selected[v.index()];
            *s = (*s).min(n.saturating_sub(1));
        }
    }

    fn move_by(&mut self, d: isize) {
        let n = self.visible_len(self.view);
        let s = &mut self.selected[self.view.index()];
        *s = if d < 0 {
            s.saturating_sub(d.unsigned_abs())
        } else {
            (*s + d as usize).min(n.saturating_sub(1))
        };
        self.detail_scroll = 0;
    }

    pub fn on_key(&mut self, k: KeyEvent) -> Action {
        if k.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c')) {
            return Action::Quit;
        }
        if self.filter_input.is_some() {
            self.filter_key(k.code, ctrl);
            return Action::None;
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            return if k.code == KeyCode::Char('q') {
                Action::Quit
            } else {
                Action::None
            };
        }
        match k.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab | KeyCode::Right => self.switch(self.view.next()),
            KeyCode::BackTab | KeyCode::Left => self.switch(self.view.prev()),
            KeyCode::Char('1') => self.switch(View::Findings),
            KeyCode::Char('2') => self.switch(View::Graph),
            KeyCode::Char('3') => self.switch(View::Held),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX / 2),
            KeyCode::PageDown | KeyCode::Char(' ') => self.page_down(),
            KeyCode::PageUp => self.detail_scroll = self.detail_scroll.saturating_sub(10),
            KeyCode::Enter if self.view == View::Findings => {
                self.detail = !self.detail && self.selected_finding().is_some();
                self.detail_scroll = 0;
            }
            KeyCode::Esc => {
                if self.detail {
                    self.detail = false;
                } else {
                    self.filter.clear();
                    self.clamp();
                }
            }
            KeyCode::Char('/') => self.filter_input = Some(String::new()),
            KeyCode::Char('p') => {
                self.paused = !self.paused;
                if !self.paused {
                    self.refresh();
                }
            }
            KeyCode::Char('s') => return Action::Save,
            _ => {}
        }
        Action::None
    }

    /// A key while the filter is being typed.
    fn filter_key(&mut self, code: KeyCode, ctrl: bool) {
        let Some(input) = self.filter_input.as_mut() else {
            return;
        };
        match code {
            KeyCode::Enter => {
                self.filter = self.filter_input.take().unwrap_or_default();
                self.clamp();
            }
            KeyCode::Esc => {
                self.filter_input = None;
                self.filter.clear();
                self.clamp();
            }
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char(c) if !ctrl => input.push(c),
            _ => {}
        }
    }

    /// Scrolls the detail down, not past its last line (scrolling into blank looks like
    /// lost text).
    fn page_down(&mut self) {
        let last = self
            .detail_text()
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0);
        self.detail_scroll = self
            .detail_scroll
            .saturating_add(10)
            .min(u16::try_from(last).unwrap_or(u16::MAX));
    }

    fn switch(&mut self, v: View) {
        self.view = v;
        if v != View::Findings {
            self.detail = false;
        }
    }

    /// Writes the engine's full current state (not the paused snapshot) as
    /// the text report and the JSON document: `tracer-report-STAMP.txt` and
    /// `.json` in `dir`. Sets the message line to the paths.
    pub fn save(&mut self, dir: &Path, stamp: &str) -> Result<(PathBuf, PathBuf)> {
        let e = &self.engine;
        let txt = dir.join(format!("tracer-report-{stamp}.txt"));
        let json = dir.join(format!("tracer-report-{stamp}.json"));
        std::fs::write(&txt, report::text::report(e.findings(), e.stacks()))
            .with_context(|| format!("writing {}", txt.display()))?;
        let doc = report::json::engine_document(e, e.findings());
        std::fs::write(&json, report::json::document_string(&doc) + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        // The lock-order graph as it stands, for Graphviz (`dot -Tsvg`).
        let dot = dir.join(format!("tracer-graph-{stamp}.dot"));
        let edges = report::json::graph_edges(e.graph(), e.classes());
        std::fs::write(&dot, report::dot::render(&edges, "lock order (live view)"))
            .with_context(|| format!("writing {}", dot.display()))?;
        self.message = Some(format!(
            "saved {}, {} and {}",
            txt.display(),
            json.display(),
            dot.display()
        ));
        Ok((txt, json))
    }
}

/// Strongly connected parts of the class graph with more than one class are its cycles:
/// each class's part, and one line per cycle.
fn class_cycles(e: &Engine) -> (HashMap<u32, usize>, Vec<String>) {
    let graph = e.graph();
    let classes = e.classes();
    let sccs = petgraph::algo::tarjan_scc(graph.inner());
    let mut part: HashMap<u32, usize> = HashMap::new();
    let mut cycles = Vec::new();
    for (i, scc) in sccs.iter().enumerate().filter(|(_, s)| s.len() > 1) {
        let mut names: Vec<String> = scc
            .iter()
            .map(|n| {
                let c = graph.inner()[*n];
                part.insert(c, i);
                classes.name(c)
            })
            .collect();
        names.sort();
        cycles.push(format!("class cycle: {}", names.join(" <-> ")));
    }
    (part, cycles)
}

/// The graph's edges, in the JSON report's order, marked when on a cycle.
fn edge_rows(e: &Engine, part: &HashMap<u32, usize>) -> Vec<EdgeRow> {
    let classes = e.classes();
    let in_cycle = |a: u32, b: u32| match (part.get(&a), part.get(&b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    };
    let mut edges: Vec<EdgeRow> = e
        .graph()
        .edges()
        .map(|(a, b, ev)| EdgeRow {
            from: classes.name(a),
            to: classes.name(b),
            first_seen: if ev.primed {
                "primed at boot".to_string()
            } else {
                format!("{}/{}", ev.comm, ev.pid)
            },
            ts_ns: ev.ts_ns,
            in_cycle: in_cycle(a, b),
        })
        .collect();
    edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    edges
}

/// Every class with its edge counts either way.
fn class_rows(e: &Engine, edges: &[EdgeRow]) -> Vec<ClassRow> {
    let classes = e.classes();
    let mut before: HashMap<&str, usize> = HashMap::new();
    let mut after: HashMap<&str, usize> = HashMap::new();
    for r in edges {
        *before.entry(r.from.as_str()).or_default() += 1;
        *after.entry(r.to.as_str()).or_default() += 1;
    }
    let cyc: HashSet<&str> = edges
        .iter()
        .filter(|r| r.in_cycle)
        .flat_map(|r| [r.from.as_str(), r.to.as_str()])
        .collect();
    (0..classes.len() as u32)
        .map(|c| {
            let name = classes.name(c);
            ClassRow {
                before: before.get(name.as_str()).copied().unwrap_or(0),
                after: after.get(name.as_str()).copied().unwrap_or(0),
                in_cycle: cyc.contains(name.as_str()),
                name,
            }
        })
        .collect()
}

/// Each lock-order inversion finding's chains, a line per link.
fn inversion_lines(findings: &[Finding]) -> Vec<String> {
    let mut out = Vec::new();
    for f in findings
        .iter()
        .filter(|f| f.id == FindingKind::LockOrderInversion)
    {
        out.push(format!("{} at {}:", f.id.id(), f.location));
        for l in f.chains.iter().flat_map(|c| c.links.iter()) {
            let who = match (&l.task, l.primed) {
                (_, true) => "primed at boot".to_string(),
                (Some(t), _) => format!("{}/{} at {} s", t.comm, t.pid, report::secs(l.ts_ns, 3)),
                (None, _) => "?".to_string(),
            };
            out.push(format!("  {who}: {} -> {}", l.from, l.to));
        }
    }
    out
}

/// A duration for humans: `850ns`, `12.3us`, `4.5ms`, `2.10s`.
pub fn duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// Who to blame in a list: the exporter's name, else the driver callback.
pub fn driver(f: &Finding) -> String {
    match (&f.buffer, &f.callback) {
        (Some(b), _) if !b.exp_name.is_empty() => b.exp_name.clone(),
        (_, Some(c)) => c.symbol.clone(),
        _ => "-".to_string(),
    }
}

pub const FINDING_HEADER: [&str; 6] = ["SEVERITY", "KIND", "DRIVER", "COUNT", "LAST SEEN", "WHERE"];

/// Columns of the findings list.
pub fn finding_row(f: &Finding) -> [String; 6] {
    [
        f.severity.as_str().to_string(),
        f.id.id().to_string(),
        driver(f),
        f.count.to_string(),
        format!("{} s", report::secs(f.last_ts_ns, 3)),
        f.location.clone(),
    ]
}

pub const EDGE_HEADER: [&str; 4] = ["HELD", "THEN ACQUIRED", "FIRST SEEN", "AT"];

pub fn edge_row(r: &EdgeRow) -> [String; 4] {
    [
        r.from.clone(),
        r.to.clone(),
        r.first_seen.clone(),
        if r.first_seen == "primed at boot" {
            "-".to_string()
        } else {
            format!("{} s", report::secs(r.ts_ns, 3))
        },
    ]
}

pub const HELD_HEADER: [&str; 6] = ["TASK", "LOCK", "CLASS", "CTX", "HOW", "HELD FOR"];

pub fn held_row(h: &HeldLockView) -> [String; 6] {
    [
        format!("{}/{}", h.comm, h.pid),
        format!("{:#x}", h.lock.addr),
        h.class.clone(),
        if h.ctx == 0 {
            "-".to_string()
        } else {
            format!("{:#x}", h.ctx)
        },
        h.func.short_name().to_string(),
        duration(h.held_for_ns),
    ]
}
