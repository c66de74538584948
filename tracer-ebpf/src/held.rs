//! The truth check of held locks. Before an event is judged against the
//! locks a thread holds, every lock the thread was seen acquiring (the ones
//! user space was told of, up to `SENT_LOCKS`, and the kept-back ones) is
//! checked against the kernel's own record: the ww_mutex's owner word, the
//! owning task's pointer plus `MUTEX_FLAGS`. A lock the thread no longer owns
//! was released without its unlock being seen: the kernel skips a program's
//! run on a CPU where it is already running (a preempted fentry program, or
//! any BPF map syscall in progress there for kprobes). A kept-back one is
//! dropped; a sent one is reported (`LockGone`) so that user space forgets
//! it before the event: no finding rests on a lock the kernel shows free.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use tracer_common::{Config, MUTEX_FLAGS, RawKind, TaskFrames};

use crate::emit::{ThreadId, find_task, flush_pending, output};

/// Whether `lock` is owned by the task `me` now.
#[inline(always)]
fn owned(cfg: &Config, lock: u64, me: u64) -> bool {
    // SAFETY: a checked kernel read. One that fails counts as owned: only
    // the kernel's word that the lock is free drops it.
    let owner: u64 =
        unsafe { bpf_probe_read_kernel((lock + cfg.ww_mutex_owner as u64) as *const u64) }
            .unwrap_or(me);
    owner & !MUTEX_FLAGS == me
}

/// Remembers a lock user space was just told this thread acquired.
/// Constant indices: old verifiers (6.1) reject variable offsets here.
#[inline(always)]
pub fn note_sent(t: &mut TaskFrames, lock: u64) {
    if t.sent[0] == lock || t.sent[1] == lock || t.sent[2] == lock || t.sent[3] == lock {
        return;
    }
    if t.sent[0] == 0 {
        t.sent[0] = lock;
    } else if t.sent[1] == 0 {
        t.sent[1] = lock;
    } else if t.sent[2] == 0 {
        t.sent[2] = lock;
    } else if t.sent[3] == 0 {
        t.sent[3] = lock;
    }
}

/// Forgets a lock at its unlock.
#[inline(always)]
pub fn forget_sent(t: &mut TaskFrames, lock: u64) {
    if t.sent[0] == lock {
        t.sent[0] = 0;
    } else if t.sent[1] == lock {
        t.sent[1] = 0;
    } else if t.sent[2] == lock {
        t.sent[2] = 0;
    } else if t.sent[3] == lock {
        t.sent[3] = 0;
    }
}

/// One `sent` slot: a lock the thread no longer owns is reported and dropped.
#[inline(always)]
fn check_sent(cfg: &Config, t: &mut TaskFrames, i: usize, me: u64) {
    let lock = t.sent[i & (tracer_common::SENT_LOCKS - 1)];
    if lock == 0 || owned(cfg, lock, me) {
        return;
    }
    t.sent[i & (tracer_common::SENT_LOCKS - 1)] = 0;
    t.held = t.held.saturating_sub(1);
    let held = t.held;
    output(RawKind::LockGone as u16, 0, |ev| {
        ev.args = [lock, 0, 0, 0];
        ev.held = held;
    });
}

/// Checks the thread's held locks (see the module comment). Called with the
/// thread's state before any event judged against what it holds.
#[inline(always)]
pub fn check_held(cfg: &Config, t: &mut TaskFrames) {
    if cfg.owner_check == 0 || t.held == 0 {
        return;
    }
    // SAFETY: helper without arguments.
    let me = unsafe { bpf_get_current_task() };
    // Kept-back acquisitions first (never sent: dropped silently).
    if t.npending >= 2 && !owned(cfg, t.pending[1].lock, me) {
        t.npending -= 1;
        t.held = t.held.saturating_sub(1);
    }
    if t.npending >= 1 && !owned(cfg, t.pending[0].lock, me) {
        if t.npending >= 2 {
            t.pending[0] = t.pending[1];
        }
        t.npending -= 1;
        t.held = t.held.saturating_sub(1);
    }
    check_sent(cfg, t, 0, me);
    check_sent(cfg, t, 1, me);
    check_sent(cfg, t, 2, me);
    check_sent(cfg, t, 3, me);
}

/// For the tracepoints: checks the thread's held locks and sends its kept-back
/// ones; returns what it holds then (0 for a thread without state).
#[inline(always)]
pub fn settle_thread(cfg: &Config, id: ThreadId) -> u32 {
    let Some(t) = find_task(id) else {
        return 0;
    };
    // SAFETY: a map value of this thread's key.
    let t = unsafe { &mut *t };
    if t.held == 0 {
        return 0;
    }
    check_held(cfg, t);
    if t.npending > 0 {
        flush_pending(t);
    }
    t.held
}
