//! `ww-protocol`: misuse of the wound/wait protocol that lockdep +
//! DEBUG_WW_MUTEX_SLOWPATH would catch, observable from ww_mutex calls alone:
//! - `no-backoff`: after -EDEADLK the task locks with the same context again
//!   while still holding locks of that context (it must release them all and
//!   then `ww_mutex_lock_slow` the contended lock);
//! - `second-ctx`: a task locks with a second acquire context while holding
//!   locks of another one (only one transaction per task);
//! - `ctx-less-nesting`: a reservation lock taken without a context while the
//!   task holds another reservation lock: no deadlock avoidance, real ABBA risk.
//!
//! Not observable: locking after `ww_acquire_done` (inline, no event), and
//! "the first lock after a complete backoff is not the contended one" (acquire
//! contexts live on the stack, so a fresh transaction reuses the address and
//! would be indistinguishable).

use super::super::finding::{Finding, Severity};
use super::super::state::{Backoff, HeldLock, TaskState};
use super::super::store::{DedupKey, FindingStore};
use super::{Acquire, Env};
use crate::analysis::kinds::WW_PROTOCOL as INFO;

fn location(env: &Env, task: &TaskState, acq: &Acquire, variant: &str) -> String {
    env.location(acq.stack, false).unwrap_or_else(|| {
        let ctx = task
            .callbacks
            .last()
            .map(|c| env.names.get(c.symbol).to_string());
        match ctx {
            Some(s) => format!("{variant}/{s}"),
            None => format!("{variant}/{}", env.classes.name(acq.class)),
        }
    })
}

fn finish(env: &Env, task: &TaskState, acq: &Acquire, mut fi: Finding) -> Finding {
    fi.lock = Some(env.acquire_ref(acq));
    fi.held_locks = env.held_refs(Some(task));
    fi.stack = acq.stack;
    fi.other_stacks = env.held_stacks(Some(task));
    if let Some(cb) = task.callbacks.last() {
        fi.callback = Some(env.cb_ref(cb));
        fi.buffer = Some(env.cb_buffer(cb));
    }
    fi
}

pub fn no_backoff(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    b: &Backoff,
    out: &mut FindingStore,
) -> Option<Finding> {
    let key = DedupKey {
        kind: INFO.kind,
        variant: "no-backoff",
        location: location(env, task, acq, "no-backoff"),
    };
    out.report(key, env.ev, || {
        let still = task.held.iter().filter(|h| h.ctx == b.ctx).count();
        let mut fi = env.base(
            &INFO,
            format!(
                "{} got -EDEADLK on {:#x} with acquire context {:#x} at {} ns and now locks {:#x} with \
                 the same context while still holding {still} lock(s) of it; it must release every \
                 lock of the context before locking again",
                env.who(),
                b.contended,
                b.ctx,
                b.ts_ns,
                acq.lock.addr
            ),
        );
        fi.title = "wound/wait: no backoff after -EDEADLK".into();
        let mut fi = finish(env, task, acq, fi);
        fi.other_stacks.extend(b.stack);
        fi
    })
}

pub fn second_ctx(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    other: &HeldLock,
    out: &mut FindingStore,
) -> Option<Finding> {
    let key = DedupKey {
        kind: INFO.kind,
        variant: "second-ctx",
        location: location(env, task, acq, "second-ctx"),
    };
    out.report(key, env.ev, || {
        let fi = env.base(
            &INFO,
            format!(
                "{} locks {:#x} with acquire context {:#x} while holding {:#x} taken with context \
                 {:#x}: a task may run one ww transaction at a time, and two contexts of one task \
                 can wound or wait on each other forever",
                env.who(),
                acq.lock.addr,
                acq.ctx,
                other.lock.addr,
                other.ctx
            ),
        );
        let mut fi = finish(env, task, acq, fi);
        fi.title = "wound/wait: second acquire context in one task".into();
        fi
    })
}

pub fn ctx_less_nesting(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    other: &HeldLock,
    out: &mut FindingStore,
) -> Option<Finding> {
    let key = DedupKey {
        kind: INFO.kind,
        variant: "ctx-less-nesting",
        location: location(env, task, acq, "ctx-less-nesting"),
    };
    out.report(key, env.ev, || {
        let fi = env.base(
            &INFO,
            format!(
                "{} locks reservation {:#x} without an acquire context while holding reservation \
                 {:#x}; two same-class ww_mutexes nested without a context have no deadlock \
                 avoidance (another task taking them in the other order deadlocks)",
                env.who(),
                acq.lock.addr,
                other.lock.addr
            ),
        );
        let mut fi = finish(env, task, acq, fi);
        fi.title = "wound/wait: two reservation locks nested without an acquire context".into();
        fi.severity = Severity::Warning;
        fi
    })
}
