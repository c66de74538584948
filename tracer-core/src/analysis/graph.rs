//! The lock-order graph over classes ("A held while acquiring B"), as lockdep
//! keeps it: first-seen evidence per edge, seeded with the order
//! `dma_resv_lockdep()` primes at boot, cycle check on every new edge.
//!
//! Two refinements lockdep itself has:
//! - locks of one ww class taken under one acquire context are a transaction
//!   (the ww algorithm resolves their order), so they make no edges;
//! - same-class nesting without a context has no class-level edge (it would be
//!   a self-loop); `InstanceOrder` catches its ABBA between two instances.

use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::{Deserialize, Serialize};

use crate::events::StackId;

use super::identity::{ClassId, LockId, MMAP_LOCK, RESERVATION, RESERVATION_CTX};
use super::FastMap;

/// Where an edge (or instance ordering) was first seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeEvidence {
    /// Seeded from `dma_resv_lockdep()`, not observed.
    pub primed: bool,
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    pub ts_ns: u64,
    /// The held lock and its acquisition stack.
    pub from_lock: u64,
    pub from_stack: Option<StackId>,
    /// The lock being acquired and the stack of that attempt.
    pub to_lock: u64,
    pub to_stack: Option<StackId>,
}

/// A later observation of an ordering already known: who, and the stacks it
/// has (the held lock's acquisition, the attempt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    pub pid: u32,
    pub from_lock: u64,
    pub from_stack: Option<StackId>,
    pub to_lock: u64,
    pub to_stack: Option<StackId>,
}

impl EdgeEvidence {
    /// This evidence as an observation of its ordering.
    pub fn observation(&self) -> Observation {
        Observation {
            pid: self.pid,
            from_lock: self.from_lock,
            from_stack: self.from_stack,
            to_lock: self.to_lock,
            to_stack: self.to_stack,
        }
    }

    /// Fills a stack the first observation lacked (a lone acquisition kept
    /// back in the kernel may come without its call site: docs/probes.md)
    /// from a later observation by the same task of the same lock, so the
    /// evidence stays one task's: its pid, comm and addresses are the first's.
    fn fill_stacks(&mut self, o: &Observation) {
        if self.primed || o.pid != self.pid {
            return;
        }
        if self.from_stack.is_none() && o.from_lock == self.from_lock {
            self.from_stack = o.from_stack;
        }
        if self.to_stack.is_none() && o.to_lock == self.to_lock {
            self.to_stack = o.to_stack;
        }
    }

    fn primed() -> Self {
        EdgeEvidence {
            primed: true,
            pid: 0,
            tgid: 0,
            comm: String::new(),
            ts_ns: 0,
            from_lock: 0,
            from_stack: None,
            to_lock: 0,
            to_stack: None,
        }
    }
}

/// Outcome of inserting an edge.
#[derive(Debug, PartialEq, Eq)]
pub enum Insert {
    /// The edge was already known (the common case: a hash lookup).
    Known,
    /// A new edge, no cycle.
    New,
    /// A new edge that closes a cycle: the edges of the cycle, starting with
    /// the new one, then the existing path back to its source.
    Cycle(Vec<EdgeIndex>),
}

#[derive(Debug)]
pub struct LockGraph {
    graph: DiGraph<ClassId, EdgeEvidence>,
    nodes: Vec<Option<NodeIndex>>,
    edges: FastMap<(ClassId, ClassId), EdgeIndex>,
}

impl Default for LockGraph {
    fn default() -> Self {
        Self::new()
    }
}

impl LockGraph {
    /// A graph holding `dma_resv_lockdep()`'s order: mmap_lock ->
    /// reservation ww ctx -> reservation ww_mutex. (fs_reclaim and
    /// i_mmap_rwsem are not observable here, so they are left out.)
    pub fn new() -> Self {
        let mut g = LockGraph {
            graph: DiGraph::new(),
            nodes: Vec::new(),
            edges: FastMap::default(),
        };
        g.insert_edge(MMAP_LOCK, RESERVATION_CTX, EdgeEvidence::primed());
        g.insert_edge(RESERVATION_CTX, RESERVATION, EdgeEvidence::primed());
        g
    }

    fn node(&mut self, c: ClassId) -> NodeIndex {
        let i = c as usize;
        if self.nodes.len() <= i {
            self.nodes.resize(i + 1, None);
        }
        match self.nodes[i] {
            Some(n) => n,
            None => {
                let n = self.graph.add_node(c);
                self.nodes[i] = Some(n);
                n
            }
        }
    }

    fn insert_edge(&mut self, a: ClassId, b: ClassId, ev: EdgeEvidence) -> EdgeIndex {
        let (na, nb) = (self.node(a), self.node(b));
        let e = self.graph.add_edge(na, nb, ev);
        self.edges.insert((a, b), e);
        e
    }

    #[inline]
    pub fn has_edge(&self, a: ClassId, b: ClassId) -> bool {
        self.edges.contains_key(&(a, b))
    }

    /// Records "a held while acquiring b" (`seen`: this observation, to fill
    /// what a known edge's first one lacked). Only a new edge costs a search:
    /// a path b ~> a in the graph before the insert means a cycle.
    pub fn add(
        &mut self,
        a: ClassId,
        b: ClassId,
        seen: &Observation,
        ev: impl FnOnce() -> EdgeEvidence,
    ) -> Insert {
        if a == b {
            return Insert::Known;
        }
        if let Some(&e) = self.edges.get(&(a, b)) {
            self.graph[e].fill_stacks(seen);
            return Insert::Known;
        }
        let back = match (
            self.nodes.get(b as usize).copied().flatten(),
            self.nodes.get(a as usize).copied().flatten(),
        ) {
            (Some(nb), Some(na)) => self.path(nb, na),
            _ => None,
        };
        let e = self.insert_edge(a, b, ev());
        match back {
            Some(mut path) => {
                path.insert(0, e);
                Insert::Cycle(path)
            }
            None => Insert::New,
        }
    }

    /// Breadth-first shortest path from `from` to `to` (edge list), if any.
    fn path(&self, from: NodeIndex, to: NodeIndex) -> Option<Vec<EdgeIndex>> {
        let mut prev: FastMap<NodeIndex, EdgeIndex> = FastMap::default();
        let mut queue = std::collections::VecDeque::new();
        queue.push_back(from);
        let mut seen = std::collections::HashSet::new();
        seen.insert(from);
        while let Some(n) = queue.pop_front() {
            if n == to {
                let mut out = Vec::new();
                let mut cur = to;
                while cur != from {
                    let e = prev[&cur];
                    out.push(e);
                    cur = self.graph.edge_endpoints(e).unwrap().0;
                }
                out.reverse();
                return Some(out);
            }
            for er in self.graph.edges(n) {
                let t = er.target();
                if seen.insert(t) {
                    prev.insert(t, er.id());
                    queue.push_back(t);
                }
            }
        }
        None
    }

    /// Endpoints (classes) and evidence of an edge.
    pub fn edge(&self, e: EdgeIndex) -> (ClassId, ClassId, &EdgeEvidence) {
        let (a, b) = self
            .graph
            .edge_endpoints(e)
            .expect("edge index from this graph");
        (self.graph[a], self.graph[b], &self.graph[e])
    }

    /// Every edge: (from class, to class, evidence). For DOT export and reports.
    pub fn edges(&self) -> impl Iterator<Item = (ClassId, ClassId, &EdgeEvidence)> {
        self.graph
            .edge_references()
            .map(|e| (self.graph[e.source()], self.graph[e.target()], e.weight()))
    }

    /// The underlying petgraph graph (node weights are class ids).
    pub fn inner(&self) -> &DiGraph<ClassId, EdgeEvidence> {
        &self.graph
    }

    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }
}

/// Orderings between two instances of the reservation class taken without an
/// acquire context: both orders between the same two objects is an ABBA the ww
/// algorithm cannot resolve (there is no context to back off).
#[derive(Debug, Default)]
pub struct InstanceOrder {
    pairs: FastMap<(LockId, LockId), EdgeEvidence>,
    /// For forgetting an object's pairs at fini.
    by_lock: FastMap<LockId, Vec<LockId>>,
    cap: usize,
    pub dropped: u64,
}

impl InstanceOrder {
    pub fn new(cap: usize) -> Self {
        InstanceOrder {
            cap,
            ..Default::default()
        }
    }

    /// Records "a held while acquiring b" (`seen` as in `LockGraph::add`);
    /// returns the evidence of "b held while acquiring a" if that was seen
    /// (an ABBA).
    pub fn record(
        &mut self,
        a: LockId,
        b: LockId,
        seen: &Observation,
        ev: impl FnOnce() -> EdgeEvidence,
    ) -> Option<&EdgeEvidence> {
        if a == b {
            return None;
        }
        if let Some(known) = self.pairs.get_mut(&(a, b)) {
            known.fill_stacks(seen);
        } else {
            if self.pairs.len() >= self.cap {
                self.dropped += 1;
            } else {
                self.pairs.insert((a, b), ev());
                self.by_lock.entry(a).or_default().push(b);
                self.by_lock.entry(b).or_default().push(a);
            }
        }
        self.pairs.get(&(b, a))
    }

    pub fn get(&self, a: LockId, b: LockId) -> Option<&EdgeEvidence> {
        self.pairs.get(&(a, b))
    }

    /// The object ended: its orderings cannot involve a later object at the same address.
    pub fn forget(&mut self, lock: LockId) {
        if let Some(others) = self.by_lock.remove(&lock) {
            for o in others {
                self.pairs.remove(&(lock, o));
                self.pairs.remove(&(o, lock));
                if let Some(v) = self.by_lock.get_mut(&o) {
                    v.retain(|x| *x != lock);
                    if v.is_empty() {
                        self.by_lock.remove(&o);
                    }
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_STACKS: &Observation = &Observation {
        pid: 0,
        from_lock: 0,
        from_stack: None,
        to_lock: 0,
        to_stack: None,
    };

    fn seen(pid: u32, from_stack: Option<StackId>, to_stack: Option<StackId>) -> Observation {
        Observation {
            pid,
            from_stack,
            to_stack,
            ..Default::default()
        }
    }

    fn ev() -> EdgeEvidence {
        EdgeEvidence {
            primed: false,
            comm: "t".into(),
            ..EdgeEvidence::primed()
        }
    }

    #[test]
    fn primed_order_makes_resv_to_mmap_a_cycle() {
        let mut g = LockGraph::new();
        assert!(g.has_edge(MMAP_LOCK, RESERVATION_CTX));
        match g.add(RESERVATION, MMAP_LOCK, NO_STACKS, ev) {
            Insert::Cycle(path) => {
                assert_eq!(path.len(), 3);
                let (a, b, e) = g.edge(path[0]);
                assert_eq!((a, b), (RESERVATION, MMAP_LOCK));
                assert!(!e.primed);
                assert!(g.edge(path[1]).2.primed);
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
        assert_eq!(g.add(RESERVATION, MMAP_LOCK, NO_STACKS, ev), Insert::Known);
    }

    #[test]
    fn consistent_order_is_not_a_cycle() {
        let mut g = LockGraph::new();
        assert_eq!(g.add(MMAP_LOCK, RESERVATION, NO_STACKS, ev), Insert::New);
        assert_eq!(g.add(10, 11, NO_STACKS, ev), Insert::New);
        assert_eq!(g.add(11, 12, NO_STACKS, ev), Insert::New);
        assert!(matches!(g.add(12, 10, NO_STACKS, ev), Insert::Cycle(p) if p.len() == 3));
    }

    #[test]
    fn a_known_edge_gets_the_stacks_its_first_observation_lacked() {
        let mut g = LockGraph::new();
        // The first observation's evidence is ev(): task 0, no stacks.
        assert_eq!(g.add(10, 11, NO_STACKS, ev), Insert::New);
        let stacks = |g: &LockGraph| {
            let e = g.edges().find(|(a, b, _)| (*a, *b) == (10, 11)).unwrap().2;
            (e.from_stack, e.to_stack)
        };
        assert_eq!(stacks(&g), (None, None));
        // Another task's observation does not lend its stacks to task 0's evidence.
        assert_eq!(g.add(10, 11, &seen(5, Some(6), Some(6)), ev), Insert::Known);
        assert_eq!(stacks(&g), (None, None));
        // Nor does one of other locks.
        let other_lock = Observation {
            from_lock: 0x99,
            to_lock: 0x98,
            ..seen(0, Some(6), Some(6))
        };
        assert_eq!(g.add(10, 11, &other_lock, ev), Insert::Known);
        assert_eq!(stacks(&g), (None, None));
        // The same task's later observation fills the gaps and never replaces a
        // stack already there.
        assert_eq!(g.add(10, 11, &seen(0, Some(7), Some(8)), ev), Insert::Known);
        assert_eq!(g.add(10, 11, &seen(0, Some(9), Some(9)), ev), Insert::Known);
        assert_eq!(stacks(&g), (Some(7), Some(8)));
        // Primed edges stay without stacks (they were not observed).
        g.add(MMAP_LOCK, RESERVATION_CTX, &seen(0, Some(1), Some(2)), ev);
        let p = g
            .edges()
            .find(|(a, b, _)| (*a, *b) == (MMAP_LOCK, RESERVATION_CTX))
            .unwrap()
            .2;
        assert!(p.primed);
        assert_eq!((p.from_stack, p.to_stack), (None, None));
    }

    /// Two reservation objects (addresses 1 and 2).
    fn two_objects() -> (LockId, LockId) {
        (
            LockId {
                addr: 1,
                generation: 1,
            },
            LockId {
                addr: 2,
                generation: 2,
            },
        )
    }

    #[test]
    fn a_known_instance_pair_gets_missing_stacks() {
        let (a, b) = two_objects();
        let mut o = InstanceOrder::new(16);
        assert!(o.record(a, b, NO_STACKS, ev).is_none());
        assert!(o.record(a, b, &seen(0, Some(3), None), ev).is_none());
        assert_eq!(o.get(a, b).unwrap().from_stack, Some(3));
        assert_eq!(o.get(a, b).unwrap().to_stack, None);
    }

    #[test]
    fn instance_abba_and_forget() {
        let (a, b) = two_objects();
        let mut o = InstanceOrder::new(16);
        assert!(o.record(a, b, NO_STACKS, ev).is_none());
        assert!(o.record(b, a, NO_STACKS, ev).is_some());
        o.forget(a);
        assert!(o.is_empty());
        // A new object at a's address does not inherit a's orderings.
        let a2 = LockId {
            addr: 1,
            generation: 3,
        };
        assert!(o.record(b, a2, NO_STACKS, ev).is_none());
    }
}
