//! `exporter-relock`: a `dma_buf_ops` callback that the core invokes with
//! `dmabuf->resv` held (pin, unpin, map_dma_buf, unmap_dma_buf, vmap, vunmap;
//! mmap on 6.2-6.5; the importer's move_notify) tries to take that same lock.
//! The review thread's radeon case (`radeon_gem_prime_pin -> radeon_bo_reserve
//! -> dma_resv_lock`) and the 6.10 panfrost/lima pin regressions are this.
//! Since `dma_resv_lock` is inline, what is seen is `ww_mutex_lock` on the
//! buffer's resv address while the task is inside the callback.

use crate::events::Callback;

use super::super::finding::{CallbackRef, Finding};
use super::super::rules::{callback_rule, core_invokes, CbReq};
use super::super::state::{ApiFrame, CbFrame, HeldLock, TaskState};
use super::super::store::{DedupKey, FindingStore};
use super::{Acquire, Env};
use crate::analysis::kinds::EXPORTER_RELOCK as INFO;
use crate::kernel::frames::{is_dma_buf_core, is_plumbing};

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

/// A callback told from the relock's stack when none is hooked: the driver
/// frame the dma-buf core function called, and the callbacks that core
/// function invokes with the lock held (rules::CORE_INVOKES).
#[derive(Clone, Debug)]
pub struct FromStack {
    pub member: String,
    pub symbol: String,
    pub module: Option<String>,
    pub api: ApiFrame,
}

/// For a relock of `acq.lock` (held by the task) with no hooked callback
/// frame: whether its stack shows a driver function called by a dma-buf core
/// function that invokes its callbacks with that lock held, while the task
/// is inside a call of that core on the same buffer.
pub fn from_stack(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    held: &HeldLock,
) -> Option<FromStack> {
    let api = *task.api.iter().rev().find(|a| a.resv == acq.lock.addr)?;
    // A hooked callback opened inside that call is what the core called (an
    // unlocked one, such as attach, or frame() would have named it).
    if task.callbacks.iter().any(|c| c.ts_ns >= api.ts_ns) {
        return None;
    }
    // The held lock must be the one the core invokes its callbacks under: the
    // caller's, held before the call, or the core's own, taken by a dma-buf
    // function (its acquisition stack says so). A lock a driver took inside an
    // unhooked callback (a GEM helper in attach) says nothing of which
    // callback this is.
    let callers = held.taken_in_api.is_none_or(|t| t < api.ts_ns);
    let cores = || {
        env.location(held.stack, false)
            .is_some_and(|s| s.starts_with("dma_buf_") || s.starts_with("__map_dma_buf"))
    };
    if !callers && !cores() {
        return None;
    }
    let frames = env.stacks?.get(acq.stack?)?;
    let (i, cbs) = frames
        .iter()
        .enumerate()
        .find_map(|(i, f)| core_invokes(f.symbol.as_deref()?).map(|cbs| (i, cbs)))?;
    let driver = frames[..i].iter().rev().find(|f| {
        f.symbol
            .as_deref()
            .is_some_and(|s| !is_plumbing(s) && !is_dma_buf_core(s))
    })?;
    let locked: Vec<&Callback> = cbs
        .iter()
        .filter(|cb| match callback_rule(env.conv, **cb) {
            CbReq::InvokedLocked => true,
            CbReq::LockedIfDynamic | CbReq::Varies => task.holds(acq.lock.addr),
            _ => false,
        })
        .collect();
    if locked.is_empty() {
        return None;
    }
    let member = locked
        .iter()
        .map(|cb| env.conv.callback_member(**cb))
        .collect::<Vec<_>>()
        .join(" or ");
    Some(FromStack {
        member,
        symbol: driver.symbol.clone()?,
        module: driver.module.clone(),
        api,
    })
}

/// The relock inside a callback told from the stack (no hook on it).
pub fn check_from_stack(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    cb: &FromStack,
    out: &mut FindingStore,
) -> Option<Finding> {
    let exp = env.names.get(cb.api.exp_name);
    // Without a stack (a failed walk) the callback is where the relock is:
    // the lock is taken in it or below it.
    let location = env
        .location(acq.stack, false)
        .unwrap_or_else(|| cb.symbol.to_string());
    let key = DedupKey {
        kind: INFO.kind,
        variant: "from-stack",
        location,
    };
    out.report(key, env.ev, || {
        let module = cb.module.as_deref().map(|m| format!(" [{m}]")).unwrap_or_default();
        let core = env.conv.fn_name(cb.api.func);
        let mut fi = env.base(
            &INFO,
            format!(
                "{} is trying to acquire the reservation lock {:#x} of a dma-buf exported by \"{exp}\" \
                 inside {}{module}, which {core}() called as its {} callback (told from the stack: \
                 the callback is not hooked); the dma-buf core invokes it with that lock held (and \
                 this task holds it now); a ww_mutex is not recursive, so this deadlocks",
                env.who(),
                acq.lock.addr,
                cb.symbol,
                cb.member,
            ),
        );
        fi.callback = Some(CallbackRef {
            member: cb.member.clone(),
            symbol: cb.symbol.clone(),
            from_stack: true,
        });
        fi.buffer = Some(env.api_buffer(&cb.api));
        fi.function = Some(core.to_string());
        fi.lock = Some(env.acquire_ref(acq));
        fi.held_locks = env.held_refs(Some(task));
        fi.stack = acq.stack;
        fi.other_stacks = env.held_stacks(Some(task));
        fi
    })
}

pub fn check(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    cb: &CbFrame,
    out: &mut FindingStore,
) -> Option<Finding> {
    // Without a stack (a failed walk) the callback is where the relock is:
    // the lock is taken in it or below it.
    let symbol = env.names.get(cb.symbol);
    let exp = env.names.get(cb.exp_name);
    let location = env
        .location(acq.stack, false)
        .unwrap_or_else(|| symbol.to_string());
    let key = DedupKey {
        kind: INFO.kind,
        variant: "",
        location,
    };
    out.report(key, env.ev, || {
        let held_by_us = task.holds(acq.lock.addr);
        // dma_buf_ops.<member>, or the importer's dma_buf_attach_ops notifier,
        // which the exporter (dma_buf_move_notify) calls with the lock held.
        let member = env.conv.callback_name(cb.cb);
        let importer = cb.cb == Callback::MoveNotify;
        let invoker = if importer {
            "the exporter invokes (through the dma-buf core's notifier)"
        } else {
            "the dma-buf core invokes"
        };
        let mut fi = env.base(
            &INFO,
            format!(
                "{} is trying to acquire the reservation lock {:#x} of a dma-buf exported by \"{exp}\" \
                 inside {member} ({symbol}), which {invoker} with that lock \
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
        if importer {
            fi.title = "possible recursive locking detected: dma-buf importer's notifier takes the \
                        reservation lock it is invoked with"
                .into();
        }
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
