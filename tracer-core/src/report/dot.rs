//! The class lock-order graph as Graphviz DOT: classes are nodes, an edge
//! "A -> B" means A was held while B was acquired, labelled with the task
//! that first did so; the order `dma_resv_lockdep()` primes at boot is
//! dashed; edges on a cycle (an inversion) are red. Context-less ABBAs
//! between two instances of one class are not class edges (see
//! docs/findings.md), so they do not show here.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use petgraph::graph::DiGraph;

use super::json::GraphEdge;

/// A DOT double-quoted string.
fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Edges that lie on a cycle: both ends in one strongly connected component.
pub fn cycle_edges(edges: &[GraphEdge]) -> BTreeSet<(String, String)> {
    let mut g: DiGraph<&str, ()> = DiGraph::new();
    let mut idx = HashMap::new();
    for e in edges {
        for n in [&e.from, &e.to] {
            idx.entry(n.as_str())
                .or_insert_with(|| g.add_node(n.as_str()));
        }
        g.add_edge(idx[e.from.as_str()], idx[e.to.as_str()], ());
    }
    let mut comp = HashMap::new();
    for (i, scc) in petgraph::algo::tarjan_scc(&g).into_iter().enumerate() {
        if scc.len() > 1 {
            for n in scc {
                comp.insert(g[n], i);
            }
        }
    }
    edges
        .iter()
        .filter(|e| {
            comp.get(e.from.as_str())
                .is_some_and(|c| comp.get(e.to.as_str()) == Some(c))
        })
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect()
}

fn edge_label(e: &GraphEdge) -> String {
    if e.primed {
        "primed at boot".into()
    } else {
        match &e.task {
            Some(t) => format!("{}/{} at {} s", t.comm, t.pid, super::secs(e.ts_ns, 6)),
            None => format!("at {} s", super::secs(e.ts_ns, 6)),
        }
    }
}

/// The graph as DOT text, `title` as its label.
pub fn render(edges: &[GraphEdge], title: &str) -> String {
    let cyc = cycle_edges(edges);
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|e| [e.from.as_str(), e.to.as_str()])
        .collect();
    let mut o = String::new();
    let _ = writeln!(o, "digraph lock_order {{");
    let _ = writeln!(o, "  label={};", quote(&format!("lock order: {title}")));
    let _ = writeln!(o, "  labelloc=t;");
    let _ = writeln!(o, "  rankdir=LR;");
    let _ = writeln!(o, "  node [shape=box, fontname=\"monospace\"];");
    let _ = writeln!(o, "  edge [fontname=\"monospace\", fontsize=10];");
    for n in &nodes {
        let _ = writeln!(o, "  {};", quote(n));
    }
    for e in edges {
        let mut attrs = vec![format!("label={}", quote(&edge_label(e)))];
        if e.primed {
            attrs.push("style=dashed".into());
        }
        if cyc.contains(&(e.from.clone(), e.to.clone())) {
            attrs.push("color=red".into());
            attrs.push("fontcolor=red".into());
            attrs.push("penwidth=2".into());
        }
        let _ = writeln!(
            o,
            "  {} -> {} [{}];",
            quote(&e.from),
            quote(&e.to),
            attrs.join(", ")
        );
    }
    let _ = writeln!(o, "}}");
    o
}

/// One line per edge, for a terminal.
pub fn edge_lines(edges: &[GraphEdge]) -> String {
    let cyc = cycle_edges(edges);
    let mut o = String::new();
    for e in edges {
        let _ = writeln!(
            o,
            "{} -> {}  ({}){}",
            e.from,
            e.to,
            edge_label(e),
            if cyc.contains(&(e.from.clone(), e.to.clone())) {
                "  ON A CYCLE"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        o,
        "{} edge{}, {} on cycles",
        edges.len(),
        if edges.len() == 1 { "" } else { "s" },
        cyc.len()
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::TaskRef;

    fn edge(a: &str, b: &str, primed: bool) -> GraphEdge {
        GraphEdge {
            from: a.into(),
            to: b.into(),
            primed,
            task: (!primed).then(|| TaskRef {
                pid: 7,
                tgid: 7,
                comm: "t\"x".into(),
            }),
            ts_ns: 1_500_000_000,
            from_stack: None,
            to_stack: None,
        }
    }

    #[test]
    fn cycles_are_red_primed_dashed() {
        let edges = vec![
            edge("&mm->mmap_lock", "reservation_ww_class_acquire", true),
            edge(
                "reservation_ww_class_acquire",
                "reservation_ww_class_mutex",
                true,
            ),
            edge("reservation_ww_class_mutex", "&mm->mmap_lock", false),
            edge("reservation_ww_class_mutex", "lock@0x10", false),
        ];
        assert_eq!(cycle_edges(&edges).len(), 3);
        let d = render(&edges, "x.rec");
        assert!(d.starts_with("digraph lock_order {\n"));
        assert!(d.contains("\"reservation_ww_class_mutex\" -> \"&mm->mmap_lock\" [label=\"t\\\"x/7 at 1.500000 s\", color=red"), "{d}");
        assert!(d.contains("\"&mm->mmap_lock\" -> \"reservation_ww_class_acquire\" [label=\"primed at boot\", style=dashed, color=red"), "{d}");
        assert!(d.contains("\"reservation_ww_class_mutex\" -> \"lock@0x10\" [label=\"t\\\"x/7 at 1.500000 s\"];"), "{d}");
        assert!(edge_lines(&edges).ends_with("4 edges, 3 on cycles\n"));
    }
}
