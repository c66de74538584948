//! `exporter-relock`: a `dma_buf_ops` callback that the core invokes with
//! `dmabuf->resv` held (pin, unpin, map_dma_buf, unmap_dma_buf, vmap, vunmap;
//! mmap on 6.2-6.5; the importer's move_notify) tries to take that same lock.
//! The review thread's radeon case (`radeon_gem_prime_pin -> radeon_bo_reserve
//! -> dma_resv_lock`) and the 6.10 panfrost/lima pin regressions are this.
//! Since `dma_resv_lock` is inline, what is seen is `ww_mutex_lock` on the
//! buffer's resv address while the task is inside the callback.

use super::super::finding::{Finding, FindingKind, Severity};
use super::super::rules::{callback_rule, CbReq};
use super::super::state::{CbFrame, TaskState};
use super::super::store::{DedupKey, FindingStore};
use super::{Acquire, Env, KindInfo};

pub const INFO: KindInfo = KindInfo {
    kind: FindingKind::ExporterRelock,
    id: "exporter-relock",
    severity: Severity::Error,
    title: "possible recursive locking detected: dma-buf callback takes the reservation lock it is invoked with",
    summary: "an exporter callback invoked with dmabuf->resv held tries to lock it again",
    advice: "the callback runs with the buffer's reservation lock already held by the dma-buf core: \
             do not lock it again (drop the dma_resv_lock / *_bo_reserve in this path, assert it with \
             dma_resv_assert_held instead, or split a locked helper out for the callback)",
};

/// The innermost callback frame, invoked locked by the rules, whose buffer's
/// resv is `addr`.
pub fn frame<'t>(env: &Env, task: &'t TaskState, addr: u64) -> Option<&'t CbFrame> {
    task.callbacks.iter().rev().find(|f| {
        f.resv == addr
            && match callback_rule(env.conv, f.cb) {
                CbReq::InvokedLocked => true,
                // Old kernels' map_dma_buf/unmap_dma_buf run under the caller's lock
                // state (held for dynamic attachments, and by the *_unlocked wrappers):
                // locked when this task holds it now.
                CbReq::LockedIfDynamic | CbReq::Varies => task.holds(addr),
                _ => false,
            }
    })
}

pub fn check(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    cb: &CbFrame,
    out: &mut FindingStore,
) -> Option<Finding> {
    let symbol = env.names.get(cb.symbol);
    let exp = env.names.get(cb.exp_name);
    let location = env
        .location(acq.stack, false)
        .unwrap_or_else(|| format!("{symbol}/{exp}"));
    let key = DedupKey {
        kind: INFO.kind,
        variant: "",
        location,
    };
    out.report(key, env.ev, || {
        let held_by_us = task.holds(acq.lock.addr);
        let member = cb.cb.member();
        let mut fi = env.base(
            &INFO,
            format!(
                "{} is trying to acquire the reservation lock {:#x} of a dma-buf exported by \"{exp}\" \
                 inside dma_buf_ops.{member} ({symbol}), which the dma-buf core invokes with that lock \
                 held{}; a ww_mutex is not recursive, so this deadlocks",
                env.who(),
                acq.lock.addr,
                if held_by_us {
                    " (and this task holds it now)"
                } else {
                    " (this task does not hold it now: its caller broke the convention, but callers \
                     that follow it will deadlock here)"
                }
            ),
        );
        fi.callback = Some(env.cb_ref(cb));
        fi.buffer = Some(env.cb_buffer(cb));
        fi.function = task.api.last().map(|a| env.conv.fn_name(a.func).to_string());
        fi.lock = Some(env.acquire_ref(acq));
        fi.held_locks = env.held_refs(Some(task));
        fi.stack = acq.stack;
        fi.other_stacks = cb.stack.into_iter().chain(env.held_stacks(Some(task))).collect();
        fi
    })
}
