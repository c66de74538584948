//! `held-at-return-to-user`: a syscall returns to user space while the task
//! holds a ww_mutex (lockdep: "lock held when returning to user space"). The
//! engine's own held set is the primary evidence; the kernel-side held count
//! carried by the event catches the case where the engine missed the
//! acquisition (events lost, or the lock was taken before the tracer attached).

use super::super::finding::Finding;
use super::super::state::TaskState;
use super::super::store::{DedupKey, FindingStore};
use super::Env;
use crate::analysis::kinds::HELD_AT_RETURN_TO_USER as INFO;

pub fn check(
    env: &Env,
    task: Option<&TaskState>,
    nr: i64,
    kernel_held: u32,
    out: &mut FindingStore,
) -> Option<Finding> {
    let engine_held = task.map(|t| t.held.len()).unwrap_or(0);
    if engine_held == 0 && kernel_held == 0 {
        return None;
    }
    let first = task.and_then(|t| t.held.first().copied());
    let location = first
        .and_then(|h| env.location(h.stack, false))
        .unwrap_or_else(|| match first {
            Some(h) => format!("{} at syscall {nr}", env.classes.name(h.class)),
            None => format!("syscall {nr}"),
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
                "{} is returning to user space from syscall {nr} with {engine_held} ww_mutex lock(s) \
                 held by the tracer's account (the kernel-side count says {kernel_held}){}",
                env.who(),
                if engine_held == 0 {
                    "; the acquisition was not seen (lost events or taken before the tracer attached)"
                } else {
                    ""
                }
            ),
        );
        fi.lock = first.map(|h| env.held_ref(&h));
        fi.held_locks = env.held_refs(task);
        fi.stack = first.and_then(|h| h.stack).or(env.ev.stack);
        fi.other_stacks = env.held_stacks(task);
        fi
    })
}
