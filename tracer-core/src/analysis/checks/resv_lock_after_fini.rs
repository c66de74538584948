//! `resv-lock-after-fini`: a reservation object's ww_mutex is locked after
//! `dma_resv_fini()` tore the object down, with no `dma_resv_init()` at that
//! address since. `dma_resv_fini` runs as the object is freed, so the lock
//! works on memory about to be (or already) reused: a use-after-free that
//! lockdep cannot see (ww_mutex_destroy is a no-op without DEBUG_MUTEXES).
//! A real xe teardown bug of 2026 had this shape.
//!
//! Judged only within the process that ran the fini (teardown paths lock and
//! fini in one thread or process); a lock by another process at that address
//! is more likely a new object whose init the tracer did not see.

use super::super::finding::{Finding, Severity};
use super::super::state::TaskState;
use super::super::store::{DedupKey, FindingStore};
use super::{Acquire, Env};
use crate::analysis::kinds::RESV_LOCK_AFTER_FINI as INFO;
use crate::events::StackId;

/// A `dma_resv_fini` the engine remembers for its address.
#[derive(Clone, Copy, Debug)]
pub struct Fini {
    pub ts_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub stack: Option<StackId>,
}

pub fn check(
    env: &Env,
    task: Option<&TaskState>,
    acq: &Acquire,
    fini: &Fini,
    out: &mut FindingStore,
) -> Option<Finding> {
    if fini.tgid != env.ev.tgid {
        return None;
    }
    let location = env
        .location(acq.stack, true)
        .unwrap_or_else(|| format!("dma_resv_lock after fini/{:#x}", acq.lock.addr));
    let key = DedupKey {
        kind: INFO.kind,
        variant: "",
        location,
    };
    out.report(key, env.ev, || {
        let mut fi = env.base(
            &INFO,
            format!(
                "{} locks reservation object {:#x}, which pid {} tore down with dma_resv_fini at {} ns \
                 ({} ns earlier) and nothing re-initialised since; the object is being freed",
                env.who(),
                acq.lock.addr,
                fini.pid,
                fini.ts_ns,
                env.ev.ts_ns.saturating_sub(fini.ts_ns),
            ),
        );
        fi.severity = Severity::Error;
        fi.lock = Some(env.acquire_ref(acq));
        fi.held_locks = env.held_refs(task);
        fi.stack = acq.stack;
        fi.other_stacks = fini.stack.into_iter().collect();
        fi
    })
}
