//! The call filter: a dma-buf call judged before in the same state sends
//! nothing. What the engine judges at a dma-buf API call or callback entry is
//! the call (hooked function and call site), its buffer, whether the
//! importer is dynamic, and whether the thread holds the buffer's
//! reservation lock (importer-missing-lock, importer-holds-lock); the rest of
//! the call only matters through what happens inside it. So, like the
//! novelty filter for locks (novelty.rs), the kernel keeps a key of that
//! (call site's stack id, hook, dma_buf, its resv and ops, dynamic importer,
//! resv owned by this task per its owner word) in `SEEN`, and an outermost
//! call whose key was sent once becomes a quiet call:
//!
//! - its entry, and the entry of every hooked call or callback inside it, is
//!   kept in the thread's `deferred` entries instead of being sent;
//! - a return of a deferred entry is dropped with it, and counted per hook
//!   (`CALLS_SUMMARISED`, written into the stream by user space) and in
//!   `LOST[CALLS_DROPPED]`;
//! - anything inside it that has to be sent (a lock, an unlock of a sent
//!   lock, a fence wait, a resv init or fini, more nested calls than
//!   `DEFERRED_CALLS`) first sends the thread's kept-back and kept locks,
//!   then the deferred entries, oldest first (`emit::flush_pending`); from
//!   then on the call is sent as usual (`QUIET_SENT`).
//!
//! The lone lock a call is made under stays kept back through a quiet call:
//! an importer's lock, map, unmap, unlock repeated sends nothing. So does a
//! lock the core takes in a quiet call, with no callback open, while the
//! thread holds nothing (`in_quiet_core`: `dma_buf_dynamic_attach` and
//! `dma_buf_detach` lock the resv to link the attachment): it is kept back as a lone one, and
//! if it has to be sent, it goes out after the deferred entries it was taken
//! inside (`TaskFrames::pending_in_call`). While it is held nothing more is
//! deferred, and the call's return is not dropped.
//!
//! Never quiet: a call inside another hooked call (the core calling itself
//! is judged at the outer call), a call without its call site's stack, a
//! call whose arguments do not name a dma_buf (export, get), the full stream
//! (`--all-events`) and `--novelty off`.

use aya_ebpf::{
    cty::c_void,
    helpers::{bpf_get_current_task, bpf_loop, bpf_probe_read_kernel},
};
use tracer_common::{
    ArgKind, Config, DeferredCall, FIRST_DYNAMIC_ID, FuncDesc, MUTEX_FLAGS, QUIET_HELD, QUIET_OFF,
    QUIET_SENT, RawKind, SEEN_CALL, STACK_SKIPPED, TaskFrames, func_flags as ff,
};

use crate::{
    CALLS_SUMMARISED, SEEN,
    emit::{count, count_by, output},
    funcs::fill_args,
    novelty::{mix, names_site, on},
};

/// 1 to run the call filter: set by user space at load (a read-only global,
/// so the verifier folds every branch of it away where it is 0).
#[unsafe(no_mangle)]
static CALLS: u32 = 0;

/// Whether the call filter runs (it is part of the novelty filter).
#[inline(always)]
pub fn calls_on() -> bool {
    // SAFETY: a read of a read-only global (volatile: its value is the one
    // user space set at load, not the compiled-in 0).
    on() && unsafe { core::ptr::read_volatile(&raw const CALLS) != 0 }
}

/// `LOST` index: hooked calls (entry and return) left unsent by the call filter.
pub const CALLS_DROPPED: u32 = 7;
/// `LOST` index: call keys recorded in `SEEN`.
pub const CALL_KEYS: u32 = 8;

/// Seeds call keys apart from lock chain keys.
const CALL_SALT: u64 = 0xC411_5EED_0000_0001;

#[inline(always)]
fn read_u64(addr: u64) -> u64 {
    // SAFETY: a checked kernel read (0 if it faults).
    unsafe { bpf_probe_read_kernel(addr as *const u64) }.unwrap_or(0)
}

/// The key of a call's judgement, or 0 if it cannot be summarised.
#[inline(always)]
fn call_key(cfg: &Config, desc: &FuncDesc, stack: i64, args: &[u64; 3]) -> u64 {
    let (dmabuf, attachment) = if desc.arg_kind == ArgKind::DmaBuf as u8 {
        (args[0], 0)
    } else if desc.arg_kind == ArgKind::DmaBufThenAttachment as u8 {
        (args[0], args[1])
    } else if desc.arg_kind == ArgKind::Attachment as u8 {
        (read_u64(args[0] + cfg.attachment_dmabuf as u64), args[0])
    } else {
        return 0;
    };
    if dmabuf == 0 {
        return 0;
    }
    let resv = read_u64(dmabuf + cfg.dma_buf_resv as u64);
    let ops = read_u64(dmabuf + cfg.dma_buf_ops as u64);
    let dynamic = attachment != 0 && read_u64(attachment + cfg.attachment_importer_ops as u64) != 0;
    // The kernel's own word on whether this task holds the buffer's lock (a
    // dma_resv begins with its ww_mutex).
    // SAFETY: helper without arguments.
    let me = unsafe { bpf_get_current_task() };
    let holds = resv != 0 && read_u64(resv + cfg.ww_mutex_owner as u64) & !MUTEX_FLAGS == me;
    let mut h = mix(CALL_SALT, stack, desc.hook);
    h = mix(h, dmabuf as i64, dynamic as u16 | (holds as u16) << 1);
    h = mix(h, resv as i64, 0);
    mix(h, ops as i64, 0)
}

/// Keeps a call's entry unsent; false if the thread's entries are full.
/// Constant indices (old verifiers reject variable offsets into map values).
#[inline(always)]
fn defer(
    t: &mut TaskFrames,
    desc: &FuncDesc,
    ip: u64,
    stack: i64,
    args: &[u64; 3],
    level: u32,
) -> bool {
    let held = t.held;
    let d = if t.ndeferred == 0 {
        &mut t.deferred[0]
    } else if t.ndeferred == 1 {
        &mut t.deferred[1]
    } else if t.ndeferred == 2 {
        &mut t.deferred[2]
    } else if t.ndeferred == 3 {
        &mut t.deferred[3]
    } else {
        return false;
    };
    d.desc = *desc;
    d.func_ip = ip;
    d.stack_id = stack;
    d.args = *args;
    d.level = level;
    d.held = held;
    t.ndeferred += 1;
    true
}

/// Whether the thread is inside a quiet call with only dma-buf API calls
/// open (the quiet call and the core calls it made, as `dma_buf_attach`
/// calls `dma_buf_dynamic_attach`), no callback: their ids start at
/// `FIRST_DYNAMIC_ID`. A lock taken there while holding nothing is the
/// core's own; the engine judges nothing by it (nothing held, no callback
/// open: `Engine::intent` in tracer-core), so it may be kept back like a lone
/// lock outside every call. (Every call open inside a quiet call is a
/// deferred one: one that is not was sent, and the call with it.)
#[inline(always)]
pub fn in_quiet_core(t: &TaskFrames) -> bool {
    // Constant indices (see `defer`).
    let api = |d: &DeferredCall| d.desc.hook < FIRST_DYNAMIC_ID;
    calls_on()
        && t.quiet == QUIET_HELD
        && t.ndeferred >= 1
        && api(&t.deferred[0])
        && (t.ndeferred < 2 || api(&t.deferred[1]))
        && (t.ndeferred < 3 || api(&t.deferred[2]))
        && (t.ndeferred < 4 || api(&t.deferred[3]))
}

/// Whether the thread holds a lock kept back inside its quiet call
/// (`in_quiet_core`): what comes next in that call is sent, in order.
#[inline(always)]
fn holds_core_lock(t: &TaskFrames) -> bool {
    t.npending > 0 && t.pending_in_call != 0
}

/// At the entry of a hooked call (after `in_call` or `depth` counted it):
/// true if its entry is deferred, not sent now.
#[inline(always)]
pub fn entry_deferred(
    cfg: &Config,
    t: &mut TaskFrames,
    desc: &FuncDesc,
    ip: u64,
    stack: i64,
    args: &[u64; 3],
) -> bool {
    if !calls_on()
        || cfg.full_stream != 0
        || desc.flags & (ff::LOCKS | ff::UNLOCKS) != 0
        || desc.flags & ff::EMIT_RETURN == 0
    {
        return false;
    }
    let level = t.in_call.saturating_add(t.depth);
    // A quiet call that was sent and has returned (its return was sent, so
    // `return_dropped` did not close it).
    if t.quiet == QUIET_SENT && level <= t.quiet_level {
        t.quiet = QUIET_OFF;
    }
    // The core's lock taken inside the quiet call is held: this entry is
    // sent, after the deferred ones and that lock (`emit::flush_pending`).
    if holds_core_lock(t) {
        return false;
    }
    // Inside a quiet call: defer this one too. Else: is this an outermost
    // call judged before in this state?
    let starts = t.quiet != QUIET_HELD;
    if starts {
        if t.quiet != QUIET_OFF || level != 1 || !names_site(stack) || stack == STACK_SKIPPED {
            return false;
        }
        let key = call_key(cfg, desc, stack, args);
        if key == 0 {
            return false;
        }
        // SAFETY: map value read.
        if !unsafe { SEEN.get(&key) }.is_some_and(|b| b & SEEN_CALL != 0) {
            let _ = SEEN.insert(&key, &SEEN_CALL, 0);
            count(CALL_KEYS);
            return false;
        }
        t.ndeferred = 0;
    }
    // No room (nested deeper than the entries kept): the caller sends this
    // entry, and its send first flushes the held locks and the deferred
    // entries (`emit::flush_pending`); the rest of the call goes out as usual.
    if !defer(t, desc, ip, stack, args, level) {
        return false;
    }
    if starts {
        t.quiet = QUIET_HELD;
        t.quiet_level = level;
    }
    true
}

/// Counts one call left unsent, by hook (an array index: no hashing, and
/// nothing to insert; user space reads the indices of the hooks it has).
#[inline(always)]
fn summarised(hook: u16) {
    count(CALLS_DROPPED);
    if let Some(p) = CALLS_SUMMARISED.get_ptr_mut(hook as u32) {
        // SAFETY: this CPU's value.
        unsafe { *p += 1 };
    }
}

/// At the return of a hooked call that is not a lock function (after
/// `in_call` or `depth` dropped it): true if it is not sent (its entry was
/// deferred and never needed). The deferred entries deeper than the level
/// now are closed: this call's (counted by its hook), and any whose return
/// the kernel skipped (counted in `CALLS_DROPPED` only). One count per
/// return keeps the verifier's paths few.
#[inline(always)]
pub fn return_dropped(t: &mut TaskFrames) -> bool {
    if !calls_on() || t.quiet == QUIET_OFF {
        return false;
    }
    // The quiet call returns holding the core's lock it took: sent whole
    // (the caller's send flushes its entry and that lock first).
    if t.quiet == QUIET_HELD && holds_core_lock(t) {
        return false;
    }
    let level = t.in_call.saturating_add(t.depth);
    let mut dropped = false;
    if t.quiet == QUIET_HELD {
        // Pop, innermost first, every entry deeper than the level now. Each
        // index is a constant in its own test (older verifiers, 6.12, reject
        // the indexed access a choice by `ndeferred` compiles to); only the
        // innermost is counted by its hook, so one count is inlined.
        let mut hook = u32::MAX;
        let mut skipped = 0u64;
        if t.ndeferred >= 4 && t.deferred[3].level > level {
            t.ndeferred = 3;
            hook = t.deferred[3].desc.hook as u32;
        }
        if t.ndeferred >= 3 && t.deferred[2].level > level {
            t.ndeferred = 2;
            if hook == u32::MAX {
                hook = t.deferred[2].desc.hook as u32;
            } else {
                skipped += 1;
            }
        }
        if t.ndeferred >= 2 && t.deferred[1].level > level {
            t.ndeferred = 1;
            if hook == u32::MAX {
                hook = t.deferred[1].desc.hook as u32;
            } else {
                skipped += 1;
            }
        }
        if t.ndeferred >= 1 && t.deferred[0].level > level {
            t.ndeferred = 0;
            if hook == u32::MAX {
                hook = t.deferred[0].desc.hook as u32;
            } else {
                skipped += 1;
            }
        }
        if hook != u32::MAX {
            summarised(hook as u16);
            dropped = true;
        }
        if skipped > 0 {
            // Entries whose return the kernel skipped: counted, not by hook.
            count_by(CALLS_DROPPED, skipped);
        }
    }
    if level < t.quiet_level {
        t.quiet = QUIET_OFF;
        t.ndeferred = 0;
    }
    dropped
}

/// What `send_one` needs (see `novelty::Flush`).
#[repr(C)]
struct Flush {
    t: *mut TaskFrames,
    cfg: *const Config,
}

/// Sends the thread's deferred entries, oldest first (stamped now, with the
/// held count of their entry), and leaves the call sent as usual. Through
/// `bpf_loop`: the verifier checks the body (an event with its buffer read)
/// once instead of once per entry in every program that may flush.
#[inline(always)]
pub fn flush_deferred(cfg: &Config, t: &mut TaskFrames) {
    let n = t.ndeferred;
    if n > 0 {
        let mut f = Flush {
            t: t as *mut TaskFrames,
            cfg: cfg as *const Config,
        };
        // SAFETY: the callback reads `f` only during the call.
        unsafe {
            bpf_loop(
                n.min(tracer_common::DEFERRED_CALLS as u32),
                send_one as *mut c_void,
                &mut f as *mut Flush as *mut c_void,
                0,
            )
        };
    }
    t.ndeferred = 0;
    t.quiet = QUIET_SENT;
}

/// Deferred entry `i` of `flush_deferred`.
#[inline(never)]
extern "C" fn send_one(i: u64, f: *mut c_void) -> i64 {
    // SAFETY: `f` is `flush_deferred`'s `Flush`, its pointers its own arguments.
    let (t, cfg) = unsafe {
        let f = &*(f as *const Flush);
        (&*f.t, &*f.cfg)
    };
    let d: DeferredCall = if i == 0 {
        t.deferred[0]
    } else if i == 1 {
        t.deferred[1]
    } else if i == 2 {
        t.deferred[2]
    } else if i == 3 {
        t.deferred[3]
    } else {
        return 1;
    };
    output(RawKind::FuncEntry as u16, d.desc.hook, |ev| {
        ev.func_ip = d.func_ip;
        ev.stack_id = d.stack_id;
        ev.held = d.held;
        fill_args(cfg, &d.desc, &d.args, ev);
    });
    0
}
