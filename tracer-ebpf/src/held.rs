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

/// 1 to check held locks at all: set by user space at load (a read-only
/// global, so the verifier folds the check away where it is 0: kernels that
/// do not preempt BPF programs skip no hook run, and 6.1's verifier spent
/// minutes on the check's branches).
#[unsafe(no_mangle)]
static OWNER_CHECK: u32 = 0;

/// Whether held locks are checked against their owner word (see `check_held`).
#[inline(always)]
pub fn owner_check_on(cfg: &Config) -> bool {
    // SAFETY: a read of a read-only global (volatile: its value is the one
    // user space set at load, not the compiled-in 0).
    (unsafe { core::ptr::read_volatile(&raw const OWNER_CHECK) }) != 0 && cfg.owner_check != 0
}

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

/// Remembers a lock user space was just told this thread acquired, for the
/// owner check (nothing to do without it: the verifier folds the rest away).
/// Constant indices: old verifiers (6.1) reject variable offsets here.
#[inline(always)]
pub fn note_sent(cfg: &Config, t: &mut TaskFrames, lock: u64) {
    if !owner_check_on(cfg) {
        return;
    }
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
pub fn forget_sent(cfg: &Config, t: &mut TaskFrames, lock: u64) {
    if !owner_check_on(cfg) {
        return;
    }
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

/// `lock` if the thread `me` was told to hold it and no longer owns it, else 0.
#[inline(always)]
fn gone(cfg: &Config, lock: u64, me: u64) -> u64 {
    if lock != 0 && !owned(cfg, lock, me) {
        lock
    } else {
        0
    }
}

/// Checks the thread's held locks (see the module comment). Called with the
/// thread's state before any event judged against what it holds. The sent
/// locks found gone go out in one `LockGone` event (up to `SENT_LOCKS`, in
/// its arguments): one event, and few branches for old verifiers (6.1).
#[inline(always)]
pub fn check_held(cfg: &Config, t: &mut TaskFrames) {
    if !owner_check_on(cfg) || t.held == 0 {
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
    let g = [
        gone(cfg, t.sent[0], me),
        gone(cfg, t.sent[1], me),
        gone(cfg, t.sent[2], me),
        gone(cfg, t.sent[3], me),
    ];
    let n = (g[0] != 0) as u32 + (g[1] != 0) as u32 + (g[2] != 0) as u32 + (g[3] != 0) as u32;
    if n == 0 {
        return;
    }
    if g[0] != 0 {
        t.sent[0] = 0;
    }
    if g[1] != 0 {
        t.sent[1] = 0;
    }
    if g[2] != 0 {
        t.sent[2] = 0;
    }
    if g[3] != 0 {
        t.sent[3] = 0;
    }
    t.held = t.held.saturating_sub(n);
    let held = t.held;
    output(RawKind::LockGone as u16, 0, |ev| {
        ev.args = g;
        ev.held = held;
    });
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
    if crate::emit::has_unsent(t) {
        flush_pending(t);
    }
    t.held
}
