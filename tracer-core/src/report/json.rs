//! JSON: one object per finding (JSON lines, for streaming and `jq`), and a
//! whole-report document (findings, summary, order graph, the stacks the
//! findings refer to, engine counters). Field names are stable; the schema is
//! documented in docs/findings.md and versioned by `SCHEMA_VERSION`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::graph::LockGraph;
use crate::analysis::identity::ClassTable;
use crate::analysis::{Convention, Engine, Finding, Stats, TaskRef};
use crate::events::{StackId, StackTable};
use crate::gate::{Outcome, Status, WorkloadEnd};

pub const SCHEMA: &str = "tracer-findings";
/// Bumped on an incompatible change (a renamed or removed field).
pub const SCHEMA_VERSION: u32 = 1;

/// One finding as one JSON line (no trailing newline).
pub fn finding_line(f: &Finding) -> String {
    serde_json::to_string(f).expect("findings serialize")
}

/// Every finding, one per line, each line newline-terminated.
pub fn findings_lines(findings: &[Finding]) -> String {
    let mut o = String::new();
    for f in findings {
        o.push_str(&finding_line(f));
        o.push('\n');
    }
    o
}

/// Counts per kind and per severity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub findings: usize,
    pub occurrences: u64,
    pub by_kind: BTreeMap<String, usize>,
    pub by_severity: BTreeMap<String, usize>,
}

/// One edge of the class lock-order graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub primed: bool,
    pub task: Option<TaskRef>,
    pub ts_ns: u64,
    pub from_stack: Option<StackId>,
    pub to_stack: Option<StackId>,
}

/// A resolved frame as the document carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonFrame {
    pub addr: u64,
    pub symbol: Option<String>,
    pub offset: u64,
    pub module: Option<String>,
    /// `symbol+0xoff [module]`.
    pub text: String,
}

/// The whole-report document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub schema: String,
    pub version: u32,
    pub convention: Option<Convention>,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    /// Class-level order graph (empty when not supplied).
    pub graph: Vec<GraphEdge>,
    /// Stacks referenced by findings and graph edges, by id (as strings: JSON keys).
    pub stacks: BTreeMap<String, Vec<JsonFrame>>,
    pub stats: Option<Stats>,
}

pub fn summary(findings: &[Finding]) -> Summary {
    let mut s = Summary {
        findings: findings.len(),
        ..Default::default()
    };
    for f in findings {
        s.occurrences += f.count;
        *s.by_kind.entry(f.id.id().to_string()).or_default() += 1;
        *s.by_severity
            .entry(f.severity.as_str().to_string())
            .or_default() += 1;
    }
    s
}

pub fn graph_edges(graph: &LockGraph, classes: &ClassTable) -> Vec<GraphEdge> {
    let mut v: Vec<GraphEdge> = graph
        .edges()
        .map(|(a, b, ev)| GraphEdge {
            from: classes.name(a),
            to: classes.name(b),
            primed: ev.primed,
            task: (!ev.primed).then(|| TaskRef {
                pid: ev.pid,
                tgid: ev.tgid,
                comm: ev.comm.clone(),
            }),
            ts_ns: ev.ts_ns,
            from_stack: ev.from_stack,
            to_stack: ev.to_stack,
        })
        .collect();
    v.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    v
}

fn referenced_stacks(findings: &[Finding], graph: &[GraphEdge]) -> Vec<StackId> {
    let mut ids = Vec::new();
    for f in findings {
        ids.extend(f.stack);
        ids.extend(f.other_stacks.iter().copied());
        if let Some(l) = &f.lock {
            ids.extend(l.stack);
        }
        ids.extend(f.held_locks.iter().filter_map(|l| l.stack));
        for c in &f.chains {
            for l in &c.links {
                ids.extend(l.from_stack);
                ids.extend(l.to_stack);
            }
        }
    }
    for e in graph {
        ids.extend(e.from_stack);
        ids.extend(e.to_stack);
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The whole report.
pub fn document(
    findings: &[Finding],
    convention: Option<Convention>,
    graph: Option<(&LockGraph, &ClassTable)>,
    stacks: Option<&StackTable>,
    stats: Option<&Stats>,
) -> Document {
    let graph = graph.map(|(g, c)| graph_edges(g, c)).unwrap_or_default();
    let mut st = BTreeMap::new();
    if let Some(t) = stacks {
        for id in referenced_stacks(findings, &graph) {
            if let Some(frames) = t.get(id) {
                st.insert(
                    id.to_string(),
                    frames
                        .iter()
                        .map(|f| JsonFrame {
                            addr: f.addr,
                            symbol: f.symbol.clone(),
                            offset: f.offset,
                            module: f.module.clone(),
                            text: f.display(),
                        })
                        .collect(),
                );
            }
        }
    }
    Document {
        schema: SCHEMA.to_string(),
        version: SCHEMA_VERSION,
        convention,
        summary: summary(findings),
        findings: findings.to_vec(),
        graph,
        stacks: st,
        stats: stats.cloned(),
    }
}

/// The document as pretty JSON text.
/// The document of everything an engine holds: `findings` (all of its findings, or the
/// gate's unsuppressed ones), its convention, graph, stacks and statistics.
pub fn engine_document(e: &Engine, findings: &[Finding]) -> Document {
    document(
        findings,
        Some(e.config().convention),
        Some((e.graph(), e.classes())),
        e.stacks(),
        Some(&e.stats()),
    )
}

pub fn document_string(doc: &Document) -> String {
    serde_json::to_string_pretty(doc).expect("documents serialize")
}

/// The `ci` object `tracer run --json` and `analyze --json` add to the document.
pub fn ci_object(o: &Outcome) -> serde_json::Value {
    let suppressed: Vec<serde_json::Value> = o
        .judged
        .iter()
        .filter_map(|j| match &j.status {
            Status::Suppressed { entry, reason } => Some(serde_json::json!({
                "finding": j.finding,
                "allow_line": o.allow.as_ref().map(|a| a.entries[*entry].line),
                "reason": reason,
            })),
            _ => None,
        })
        .collect();
    serde_json::json!({
        "fail_on": o.fail_on.as_str(),
        "exit_code": o.exit_code(),
        "failing": o.failing(),
        "below_threshold": o.count(|s| *s == Status::Below),
        "suppressed": suppressed,
        "hooks_missing": o.hooks_missing.iter().map(|(h, _)| h).collect::<Vec<_>>(),
        "workload": o.workload.as_ref().map(|w| serde_json::json!({
            "command": w.command,
            "exit_status": match w.end { WorkloadEnd::Exited(c) => Some(c), _ => None },
            "signal": match w.end { WorkloadEnd::Signaled(s) => Some(s), _ => None },
            "timed_out": matches!(w.end, WorkloadEnd::TimedOut(_)),
            "interrupted": w.end == WorkloadEnd::Interrupted,
            "elapsed_ns": w.elapsed.as_nanos() as u64,
        })),
    })
}
