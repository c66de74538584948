//! `fence-wait-under-resv`: a fence wait starts while the task holds a
//! reservation lock taken with plain (uninterruptible) `ww_mutex_lock`. The
//! review thread: "taking these locks uninterruptible should ring a warning
//! bell". A fence that never signals (GPU hang) then leaves an unkillable task
//! holding the buffer's lock, and everything that needs the buffer piles up
//! behind it. Waits under interruptibly taken locks are reported only when the
//! configuration asks for it. Waits of the dma-buf core under a lock the core
//! took itself are not a driver's finding (docs/findings.md).

use crate::events::LockFn;

use super::super::finding::Finding;
use super::super::identity::RESERVATION;
use super::super::state::TaskState;
use super::super::store::{DedupKey, FindingStore};
use super::Env;
use crate::analysis::kinds::FENCE_WAIT_UNDER_RESV as INFO;

pub fn check(
    env: &Env,
    task: Option<&TaskState>,
    fence: u64,
    out: &mut FindingStore,
) -> Option<Finding> {
    let task = task?;
    // A wait inside a dma-buf core function under the lock that function
    // took (6.2-6.15 dma_buf_dynamic_attach -> __map_dma_buf's
    // dma_resv_wait_timeout for a static importer; 6.16+ the map path) is the
    // core's design: no driver can change how that lock was taken.
    let drivers = || {
        task.held
            .iter()
            .rev()
            .filter(|h| h.class == RESERVATION && !task.taken_by_open_core_call(h))
    };
    let uninterruptible = drivers().find(|h| h.func == LockFn::Lock);
    let (held, severity, variant) = match uninterruptible {
        Some(h) => (h, env.cfg.fence_wait_severity, "uninterruptible"),
        None => {
            let sev = env.cfg.fence_wait_interruptible_severity?;
            let h = drivers().next()?;
            (h, sev, "interruptible")
        }
    };
    let location = env
        .location(env.ev.stack, false)
        .or_else(|| env.location(held.stack, false))
        .unwrap_or_else(|| format!("dma_fence_wait/{variant}"));
    let held = *held;
    let key = DedupKey {
        kind: INFO.kind,
        variant,
        location,
    };
    out.report(key, env.ev, || {
        let mut fi = env.base(
            &INFO,
            format!(
                "{} starts waiting on fence {fence:#x} while holding reservation lock {:#x}, taken \
                 with {} at {} ns",
                env.who(),
                held.lock.addr,
                match held.func {
                    LockFn::Lock => "ww_mutex_lock (uninterruptible)",
                    f => f.kernel_name(),
                },
                held.since_ns
            ),
        );
        fi.severity = severity;
        if variant == "interruptible" {
            fi.title = "dma_fence wait while holding a reservation lock".into();
        }
        fi.lock = Some(env.held_ref(&held));
        fi.held_locks = env.held_refs(Some(task));
        fi.other_stacks = env.held_stacks(Some(task));
        if let Some(cb) = task.callbacks.last() {
            fi.callback = Some(env.cb_ref(cb));
            fi.buffer = Some(env.cb_buffer(cb));
        } else if let Some(a) = task.api.last() {
            fi.buffer = Some(env.api_buffer(a));
        }
        fi
    })
}
