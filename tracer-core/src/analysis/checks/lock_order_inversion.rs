//! `lock-order-inversion`: a new "A held while acquiring B" dependency closes a
//! cycle with dependencies seen before (or primed at boot by
//! `dma_resv_lockdep()`: mmap_lock -> reservation ww ctx -> reservation
//! ww_mutex). Two tasks running the two chains concurrently deadlock.
//!
//! Also the instance-level ABBA: two reservation objects locked in both
//! orders without an acquire context. lockdep sees only one class there; the
//! ww algorithm cannot help either, because there is no context to back off.

use crate::analysis::graph::{EdgeEvidence, LockGraph};
use crate::analysis::identity::ClassTable;

use super::super::finding::{Chain, ChainLink, Finding, TaskRef};
use super::super::state::TaskState;
use super::super::store::{DedupKey, FindingStore};
use super::{Acquire, Env};
use crate::analysis::kinds::LOCK_ORDER_INVERSION as INFO;

use petgraph::graph::EdgeIndex;

/// lockdep's two-CPU scenario for "task holds `held`, wants `wanted`, while the
/// reverse order exists".
pub fn scenario(held: &str, wanted: &str) -> String {
    format!(
        " Possible unsafe locking scenario:\n\n\
         \x20      CPU0                    CPU1\n\
         \x20      ----                    ----\n\
         \x20 lock({held});\n\
         \x20                              lock({wanted});\n\
         \x20                              lock({held});\n\
         \x20 lock({wanted});\n\n\
         \x20*** DEADLOCK ***\n"
    )
}

fn link(classes: &ClassTable, from: u32, to: u32, ev: &EdgeEvidence) -> ChainLink {
    ChainLink {
        from: classes.name(from),
        to: classes.name(to),
        primed: ev.primed,
        task: (!ev.primed).then(|| TaskRef {
            pid: ev.pid,
            tgid: ev.tgid,
            comm: ev.comm.clone(),
        }),
        ts_ns: ev.ts_ns,
        from_lock: ev.from_lock,
        from_stack: ev.from_stack,
        to_lock: ev.to_lock,
        to_stack: ev.to_stack,
    }
}

/// A class-level cycle: `cycle[0]` is the new edge, the rest the path back.
pub fn check_cycle(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    graph: &LockGraph,
    cycle: &[EdgeIndex],
    out: &mut FindingStore,
) -> Option<Finding> {
    let mut names: Vec<String> = cycle
        .iter()
        .map(|&e| env.classes.name(graph.edge(e).0))
        .collect();
    names.sort();
    names.dedup();
    let location = names.join(" <-> ");
    let key = DedupKey {
        kind: INFO.kind,
        variant: "class",
        location,
    };
    out.report(key, env.ev, || {
        let (a, b, new_ev) = graph.edge(cycle[0]);
        let new_chain = Chain { links: vec![link(env.classes, a, b, new_ev)] };
        let old_chain = Chain {
            links: cycle[1..]
                .iter()
                .map(|&e| {
                    let (x, y, ev) = graph.edge(e);
                    link(env.classes, x, y, ev)
                })
                .collect(),
        };
        let (an, bn) = (env.classes.name(a), env.classes.name(b));
        let old_desc: Vec<String> = old_chain
            .links
            .iter()
            .map(|l| {
                if l.primed {
                    format!("{} -> {} (primed at boot by dma_resv_lockdep())", l.from, l.to)
                } else {
                    let t = l.task.as_ref().map(|t| format!("{}/{}", t.comm, t.pid)).unwrap_or_default();
                    format!("{} -> {} (seen in {t} at {} ns)", l.from, l.to, l.ts_ns)
                }
            })
            .collect();
        let mut fi = env.base(
            &INFO,
            format!(
                "{} is trying to acquire {bn} {:#x} while holding {an}; the existing dependency chain \
                 {} says {bn} is taken before {an}.\n\n{}",
                env.who(),
                acq.lock.addr,
                old_desc.join(", "),
                scenario(&an, &bn)
            ),
        );
        fi.lock = Some(env.acquire_ref(acq));
        fi.held_locks = env.held_refs(Some(task));
        fi.stack = acq.stack;
        fi.other_stacks = cycle
            .iter()
            .flat_map(|&e| {
                let ev = graph.edge(e).2;
                [ev.from_stack, ev.to_stack]
            })
            .flatten()
            .filter(|s| Some(*s) != acq.stack)
            .collect();
        fi.chains = vec![new_chain, old_chain];
        fi
    })
}

/// Two reservation instances locked in both orders without a context.
pub fn check_abba(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    new_ev: &EdgeEvidence,
    old_ev: &EdgeEvidence,
    out: &mut FindingStore,
) -> Option<Finding> {
    let mut sites: Vec<String> = [new_ev.to_stack, old_ev.to_stack]
        .iter()
        .filter_map(|s| env.location(*s, false))
        .collect();
    sites.sort();
    sites.dedup();
    let location = if sites.is_empty() {
        "reservation_ww_class_mutex instances (no context)".to_string()
    } else {
        sites.join(" <-> ")
    };
    let key = DedupKey {
        kind: INFO.kind,
        variant: "instance",
        location,
    };
    out.report(key, env.ev, || {
        let name = env.classes.name(acq.class);
        let new_link = ChainLink {
            from: format!("{name} {:#x}", new_ev.from_lock),
            to: format!("{name} {:#x}", new_ev.to_lock),
            primed: false,
            task: Some(env.task_ref()),
            ts_ns: new_ev.ts_ns,
            from_lock: new_ev.from_lock,
            from_stack: new_ev.from_stack,
            to_lock: new_ev.to_lock,
            to_stack: new_ev.to_stack,
        };
        let old_link = ChainLink {
            from: format!("{name} {:#x}", old_ev.from_lock),
            to: format!("{name} {:#x}", old_ev.to_lock),
            primed: false,
            task: Some(TaskRef { pid: old_ev.pid, tgid: old_ev.tgid, comm: old_ev.comm.clone() }),
            ts_ns: old_ev.ts_ns,
            from_lock: old_ev.from_lock,
            from_stack: old_ev.from_stack,
            to_lock: old_ev.to_lock,
            to_stack: old_ev.to_stack,
        };
        let a = format!("{:#x}", new_ev.from_lock);
        let b = format!("{:#x}", new_ev.to_lock);
        let mut fi = env.base(
            &INFO,
            format!(
                "{} is trying to acquire reservation lock {b} while holding {a}, without an acquire \
                 context; {}/{} took them in the opposite order at {} ns, also without one. Neither \
                 path can back off.\n\n{}",
                env.who(),
                old_ev.comm,
                old_ev.pid,
                old_ev.ts_ns,
                scenario(&a, &b)
            ),
        );
        fi.lock = Some(env.acquire_ref(acq));
        fi.held_locks = env.held_refs(Some(task));
        fi.stack = acq.stack;
        fi.other_stacks = [new_ev.from_stack, old_ev.from_stack, old_ev.to_stack].into_iter().flatten().collect();
        fi.chains = vec![Chain { links: vec![new_link] }, Chain { links: vec![old_link] }];
        fi
    })
}
