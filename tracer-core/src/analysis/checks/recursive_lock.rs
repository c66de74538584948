//! `recursive-lock`: a task tries to acquire a ww_mutex it already holds,
//! outside the ww rules (the same non-NULL acquire context gets -EALREADY,
//! which is legal and not reported). Without a context, or with another one,
//! the task waits for itself forever.

use super::super::finding::Finding;
use super::super::rules::{fn_rule, FnReq};
use super::super::state::{HeldLock, TaskState};
use super::super::store::{DedupKey, FindingStore};
use super::{Acquire, Env};
use crate::analysis::kinds::RECURSIVE_LOCK as INFO;

/// Whether an importer-holds-lock finding already explains this relock: the
/// task is inside an API function that takes the lock itself and was told
/// not to be called with it held, and it held `held` already when it called
/// it. A lock taken inside that call (by a callback or a helper it runs,
/// panfrost's GEM pin under drm_gem_map_attach) is not the caller's doing.
pub fn explained_by_api_call(env: &Env, task: &TaskState, held: &HeldLock) -> bool {
    task.api.iter().any(|a| {
        a.resv == held.lock.addr
            && matches!(
                fn_rule(env.conv, a.func),
                FnReq::MustNotHold | FnReq::ShouldNotHold
            )
            && held.taken_in_api.is_none_or(|t| t < a.ts_ns)
    })
}

pub fn check(
    env: &Env,
    task: &TaskState,
    acq: &Acquire,
    held: &HeldLock,
    out: &mut FindingStore,
) -> Option<Finding> {
    let location = env.location(acq.stack, false).unwrap_or_else(|| {
        if let Some(cb) = task.callbacks.last() {
            env.names.get(cb.symbol).to_string()
        } else if let Some(a) = task.api.last() {
            env.conv.fn_name(a.func).to_string()
        } else {
            format!("ww_mutex_lock/{}", env.classes.name(acq.class))
        }
    });
    let key = DedupKey {
        kind: INFO.kind,
        variant: "",
        location,
    };
    out.report(key, env.ev, || {
        let mut fi = env.base(
            &INFO,
            format!(
                "{} is trying to acquire lock {} {:#x} (ctx {:#x}) but already holds it (taken with \
                 ctx {:#x} at {} ns); {}",
                env.who(),
                env.classes.name(acq.class),
                acq.lock.addr,
                acq.ctx,
                held.ctx,
                held.since_ns,
                if acq.ctx == 0 || held.ctx == 0 {
                    "without a shared acquire context the second lock waits for the first forever"
                } else {
                    "the two acquire contexts differ, so the second one waits (or is wounded) forever"
                }
            ),
        );
        if let Some(cb) = task.callbacks.last() {
            fi.callback = Some(env.cb_ref(cb));
            fi.buffer = Some(env.cb_buffer(cb));
        } else if let Some(a) = task.api.last() {
            fi.buffer = Some(env.api_buffer(a));
        }
        fi.function = task.api.last().map(|a| env.conv.fn_name(a.func).to_string());
        fi.lock = Some(env.acquire_ref(acq));
        fi.held_locks = env.held_refs(Some(task));
        fi.stack = acq.stack;
        fi.other_stacks = held.stack.into_iter().collect();
        fi
    })
}
