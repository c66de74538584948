//! The novelty filter: a ww transaction sends its locks once. As lockdep
//! validates a chain of held classes once (its chain key) and then only
//! hashes, the kernel side keeps, per thread, a hash of the acquisitions it
//! holds in order (each one's call site, as the stack id taken there, and its
//! lock function), all under one acquire context. A nested acquisition whose
//! chain (the held chain plus itself) was sent before is kept unsent in the
//! thread's `KEPT` entries, with no lock entry sent either, and its unlock
//! drops it: the engine already judged that chain (every ordering, every ww
//! rule it rests on), so only a count leaves the kernel
//! (`TaskFrames::summarised`, and `LOST[KEPT_DROPPED]`). A -EALREADY return
//! (the context already holds that lock: DRM's modeset locking does it all
//! the time) leaves the held chain as it was; one whose key was sent once
//! with that outcome is dropped, attempt and return (`LOST[ALREADY_DROPPED]`).
//!
//! Kept acquisitions are still held locks: before any event judged against
//! what the thread holds (a dma-buf call, a fence wait, a return to user
//! space holding, a contention, any lock that is not a repeat) they are sent
//! like the kept-back lone ones (`emit::flush_pending`), oldest first, each
//! checked against its owner word where the kernel can skip an unlock.
//!
//! What is never summarised: an acquisition without a context, under another
//! context or lock function than the held chain's, inside a hooked dma-buf
//! call, of the object the thread just tore down, a trylock, a return that
//! is neither 0 nor -EALREADY (-EDEADLK, -EINTR: those go out with the held
//! chain sent first, and end the chain), a chain whose first lock came
//! without its call site, any
//! acquisition after an unlock in the middle of the chain (the hash no longer
//! describes the held set) and the full stream (`--all-events`).

use aya_ebpf::{
    cty::c_void,
    helpers::{bpf_get_current_task, bpf_loop, bpf_probe_read_kernel},
};
use tracer_common::{
    Config, KEPT_PER_THREAD, MUTEX_FLAGS, RawKind, SEEN_ACQUIRED, SEEN_ALREADY, STACK_SKIPPED,
    TaskFrames, call_site_of,
};

use crate::{
    KEPT, SEEN,
    emit::{count, output},
};

/// 1 to run the filter at all: set by user space at load (a read-only
/// global, so the verifier folds every branch of it away where it is 0).
#[unsafe(no_mangle)]
static NOVELTY: u32 = 0;

#[inline(always)]
pub(crate) fn on() -> bool {
    // SAFETY: a read of a read-only global (volatile: its value is the one
    // user space set at load, not the compiled-in 0).
    unsafe { core::ptr::read_volatile(&raw const NOVELTY) != 0 }
}

/// `LOST` index: kept acquisitions released unsent (a transaction's repeats).
pub const KEPT_DROPPED: u32 = 3;
/// `LOST` index: chain keys recorded in `SEEN` (past `SEEN_ENTRIES`, each one
/// evicts the least recently used: that chain is sent again when it recurs).
pub const SEEN_INSERTS: u32 = 4;
/// `LOST` index: repeats sent anyway because the thread's `KEPT` entries were full.
pub const KEPT_FULL: u32 = 5;
/// `LOST` index: -EALREADY returns that repeated a chain's and were not sent.
pub const ALREADY_DROPPED: u32 = 6;

/// The kernel's -EALREADY (include/uapi/asm-generic/errno.h).
const EALREADY: i64 = -114;

/// Whether a stack id names the call site (a stack, or the call site itself).
#[inline(always)]
pub(crate) fn names_site(stack: i64) -> bool {
    stack >= 0 || call_site_of(stack).is_some()
}

/// The chain key after one more acquisition (never 0: 0 is "no chain").
#[inline(always)]
pub(crate) fn mix(chain: u64, stack: i64, hook: u16) -> u64 {
    let mut h = chain ^ (stack as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ ((hook as u64) << 1);
    h = (h ^ (h >> 32)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h | 1
}

/// At a lone acquisition kept back (`funcs::keep_pending`): the thread's
/// chain starts with it, if it has a context and its call site, and was
/// taken outside every hooked call (no chain grows inside one).
#[inline(always)]
pub fn chain_start(t: &mut TaskFrames, ctx: u64, stack: i64, hook: u16, ip: u64) {
    if on()
        && ctx != 0
        && names_site(stack)
        && stack != STACK_SKIPPED
        && t.in_call == 0
        && t.depth == 0
    {
        t.chain = mix(0, stack, hook);
        t.last_stack = stack;
        t.txn_ctx = ctx;
        t.txn_hook = hook;
        t.txn_ip = ip;
    } else {
        t.chain = 0;
    }
}

/// The chain key a nested acquisition would make, or 0 if it is not one the
/// filter may summarise.
#[inline(always)]
pub fn next_key(cfg: &Config, t: &TaskFrames, lock: u64, ctx: u64, hook: u16, stack: i64) -> u64 {
    if !on()
        || cfg.full_stream != 0
        || t.chain == 0
        || ctx == 0
        || ctx != t.txn_ctx
        || hook != t.txn_hook
        || t.depth != 0
        || t.in_call != 0
        || lock == t.last_fini
        || !names_site(stack)
    {
        return 0;
    }
    if stack == t.last_stack {
        // Another lock from the chain's last call site: the key of "one more
        // like the last" (the chain itself does not grow).
        t.chain ^ AGAIN
    } else {
        mix(t.chain, stack, hook)
    }
}

/// Marks the key of a repeated acquisition from the chain's last call site
/// (even: a chain key is odd, so the result is odd too, never 0).
const AGAIN: u64 = 0x5A5A_5A5A_5A5A_5A5A;

/// The chain after a plain success with `key` from `stack`.
#[inline(always)]
fn advance(t: &mut TaskFrames, key: u64, stack: i64) {
    if stack != t.last_stack {
        t.chain = key;
        t.last_stack = stack;
    }
}

/// The `SEEN` outcomes of `key`, from the thread's last one or the map.
#[inline(always)]
fn seen_of(t: &mut TaskFrames, key: u64) -> Option<u8> {
    if key == t.seen_key {
        return Some(t.seen_bits as u8);
    }
    // SAFETY: map value read.
    let bits = unsafe { SEEN.get(&key) }.copied()?;
    t.seen_key = key;
    t.seen_bits = bits as u32;
    Some(bits)
}

/// At a nested lock's entry: whether its chain was sent before (then the
/// entry is not sent, and its exit keeps the acquisition if it succeeds).
#[inline(always)]
pub fn entry_is_repeat(
    cfg: &Config,
    t: &mut TaskFrames,
    lock: u64,
    ctx: u64,
    hook: u16,
    stack: i64,
) -> bool {
    let key = next_key(cfg, t, lock, ctx, hook, stack);
    let seen = if key != 0 && on() {
        seen_of(t, key)
    } else {
        None
    };
    t.entry_key = if seen.is_some() { key } else { 0 };
    t.entry_seen = seen.unwrap_or(0) as u16;
    t.entry_key != 0
}

/// At a nested lock's exit (after the held count took it): true if the
/// acquisition is kept (nothing to send). Otherwise the caller sends the
/// return as before; a successful one in a chain records its key as seen.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn exit_kept(
    cfg: &Config,
    t: &mut TaskFrames,
    lock: u64,
    ctx: u64,
    hook: u16,
    stack: i64,
    ok: bool,
    ret: i64,
) -> bool {
    if !on() {
        return false;
    }
    let suppressed = t.entry_key;
    let seen = t.entry_seen as u8;
    t.entry_key = 0;
    // A plain success extends the chain; -EALREADY (the context holds the
    // lock already: nothing new is held) leaves it as it was; anything else
    // ends it (and the return goes out after the held chain, in `send_call`).
    let outcome = if ok && ret == 0 {
        SEEN_ACQUIRED
    } else if ret == EALREADY {
        SEEN_ALREADY
    } else {
        t.chain = 0;
        return false;
    };
    let key = if suppressed != 0 {
        suppressed
    } else {
        next_key(cfg, t, lock, ctx, hook, stack)
    };
    if key == 0 {
        t.chain = 0;
        return false;
    }
    if suppressed != 0 && seen & outcome != 0 {
        if outcome == SEEN_ALREADY {
            count(ALREADY_DROPPED);
            return true;
        }
        if keep(t, lock, stack) {
            advance(t, key, stack);
            return true;
        }
    }
    // First time with this outcome (or no room): sent by the caller; from
    // now on a repeat.
    let bits = seen | outcome;
    let _ = SEEN.insert(&key, &bits, 0);
    count(SEEN_INSERTS);
    t.seen_key = key;
    t.seen_bits = bits as u32;
    if outcome == SEEN_ACQUIRED {
        advance(t, key, stack);
    }
    false
}

/// Stores a kept acquisition at the top of the thread's window.
#[inline(always)]
fn keep(t: &mut TaskFrames, lock: u64, stack: i64) -> bool {
    if t.kept_top >= KEPT_PER_THREAD {
        count(KEPT_FULL);
        return false;
    }
    let Some(e) = KEPT.get_ptr_mut(t.slot * KEPT_PER_THREAD + (t.kept_top & (KEPT_PER_THREAD - 1)))
    else {
        return false;
    };
    // SAFETY: this thread's own entry of the array map.
    unsafe {
        (*e).lock = lock;
        (*e).stack_id = stack;
    }
    t.kept_top += 1;
    t.nkept += 1;
    true
}

#[inline(always)]
fn kept_entry(t: &TaskFrames, i: u32) -> Option<*mut tracer_common::KeptLock> {
    KEPT.get_ptr_mut(t.slot * KEPT_PER_THREAD + (i & (KEPT_PER_THREAD - 1)))
}

/// At an unlock: drops `lock` if it is a kept acquisition (true: nothing to
/// send). The oldest and the newest are looked at first (transactions unlock
/// in either order, and the window shrinks from that end); others by a scan
/// of the window (`bpf_loop`, as in `flush_kept`), which leaves a hole.
#[inline(always)]
pub fn drop_kept(t: &mut TaskFrames, lock: u64) -> bool {
    if !on() {
        return false;
    }
    let head = t.kept_head;
    let top = t.kept_top;
    if top <= head {
        return false;
    }
    let mut found = false;
    if let Some(e) = kept_entry(t, head) {
        // SAFETY: this thread's entry.
        if unsafe { (*e).lock } == lock {
            // SAFETY: as above.
            unsafe { (*e).lock = 0 };
            t.kept_head = head + 1;
            found = true;
        }
    }
    if !found {
        if let Some(e) = kept_entry(t, top - 1) {
            // SAFETY: as above.
            if unsafe { (*e).lock } == lock {
                // SAFETY: as above.
                unsafe { (*e).lock = 0 };
                t.kept_top = top - 1;
                found = true;
            }
        }
    }
    if !found && top > head + 2 {
        let mut s = Scan {
            t: t as *mut TaskFrames,
            lock,
            found: 0,
        };
        // SAFETY: the callback reads `s` only during the call.
        unsafe {
            bpf_loop(
                (top - head - 2).min(KEPT_PER_THREAD),
                scan_one as *mut c_void,
                &mut s as *mut Scan as *mut c_void,
                0,
            )
        };
        found = s.found != 0;
    }
    if !found {
        return false;
    }
    t.nkept = t.nkept.saturating_sub(1);
    t.summarised = t.summarised.saturating_add(1);
    count(KEPT_DROPPED);
    if t.nkept == 0 {
        t.kept_head = 0;
        t.kept_top = 0;
    }
    true
}

/// What `scan_one` needs (see `Flush`).
#[repr(C)]
struct Scan {
    t: *mut TaskFrames,
    lock: u64,
    found: u64,
}

/// One entry strictly inside the window (index `i` past the one after the
/// head): frees it if it is the lock looked for, and stops.
#[inline(never)]
extern "C" fn scan_one(i: u64, s: *mut c_void) -> i64 {
    // SAFETY: `s` is `drop_kept`'s `Scan`.
    let s = unsafe { &mut *(s as *mut Scan) };
    // SAFETY: the thread's own state.
    let t = unsafe { &*s.t };
    let Some(e) = kept_entry(t, t.kept_head.wrapping_add(1).wrapping_add(i as u32)) else {
        return 1;
    };
    // SAFETY: this thread's entry.
    if unsafe { (*e).lock } != s.lock {
        return 0;
    }
    // SAFETY: as above.
    unsafe { (*e).lock = 0 };
    s.found = 1;
    1
}

/// What `flush_one` needs, on the caller's stack (`bpf_loop` hands the
/// callback a pointer to it).
#[repr(C)]
struct Flush {
    t: *mut TaskFrames,
    cfg: *const Config,
    /// The current task, when the owner check is on; else 0.
    me: u64,
}

/// Sends the thread's kept acquisitions, oldest first, as lock returns of
/// the chain's lock function and context (stamped now, as kept-back lone
/// ones are). With the owner check on, one the thread no longer owns (its
/// unlock was skipped) is dropped instead. Through `bpf_loop`: the verifier
/// checks the body once, where an unrolled loop of `KEPT_PER_THREAD` made
/// every program that may flush (nearly all of them) take ten times longer
/// to verify.
#[inline(always)]
pub fn flush_kept(cfg: &Config, t: &mut TaskFrames, owner_check: bool) {
    if !on() {
        return;
    }
    let n = t.kept_top.saturating_sub(t.kept_head);
    if n > 0 {
        let mut f = Flush {
            t: t as *mut TaskFrames,
            cfg: cfg as *const Config,
            // SAFETY: helper without arguments.
            me: if owner_check {
                unsafe { bpf_get_current_task() }
            } else {
                0
            },
        };
        // SAFETY: the callback reads `f` only during the call.
        unsafe {
            bpf_loop(
                n.min(KEPT_PER_THREAD),
                flush_one as *mut c_void,
                &mut f as *mut Flush as *mut c_void,
                0,
            )
        };
    }
    t.nkept = 0;
    t.kept_head = 0;
    t.kept_top = 0;
}

/// One kept entry of `flush_kept` (index `i` past the window's head).
#[inline(never)]
extern "C" fn flush_one(i: u64, f: *mut c_void) -> i64 {
    // SAFETY: `f` is `flush_kept`'s `Flush`, its pointers its own arguments.
    let (t, cfg, me) = unsafe {
        let f = &*(f as *const Flush);
        (&mut *f.t, &*f.cfg, f.me)
    };
    let Some(e) = kept_entry(t, t.kept_head.wrapping_add(i as u32)) else {
        return 1;
    };
    // SAFETY: this thread's entry.
    let (lock, stack) = unsafe { ((*e).lock, (*e).stack_id) };
    if lock == 0 {
        return 0;
    }
    // SAFETY: a checked read; a failed one counts as owned. (Without the
    // owner check the verifier folds the read away.)
    let owned = !crate::held::owner_check_on(cfg)
        || me == 0
        || unsafe { bpf_probe_read_kernel((lock + cfg.ww_mutex_owner as u64) as *const u64) }
            .map(|o| o & !MUTEX_FLAGS == me)
            .unwrap_or(true);
    if owned {
        let (held, ctx, hook, ip) = (t.held, t.txn_ctx, t.txn_hook, t.txn_ip);
        output(RawKind::FuncReturn as u16, hook, |ev| {
            ev.func_ip = ip;
            ev.stack_id = stack;
            ev.args = [lock, ctx, 0, 0];
            ev.held = held;
        });
        // Sent now: checked against its owner like any sent lock (up to `SENT_LOCKS`).
        crate::held::note_sent(cfg, t, lock);
    } else {
        t.held = t.held.saturating_sub(1);
    }
    // SAFETY: as above.
    unsafe { (*e).lock = 0 };
    0
}

/// At an unlock that leaves the thread holding locks: the chain no longer
/// describes them (until the thread holds nothing again).
#[inline(always)]
pub fn chain_broken(t: &mut TaskFrames) {
    t.chain = 0;
}
