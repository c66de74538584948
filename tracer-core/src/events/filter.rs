//! What the kernel side sends of a full stream, modelled in user space: the
//! same decisions as tracer-ebpf (funcs.rs, lock_tracing.rs, novelty.rs),
//! made on the typed events of a full stream (`tracer record --all-events`).
//! A full stream and its filtered form are the same event model; the engine
//! must find the same things in both, which the tests check on synthetic
//! streams and on full-stream recordings of the lab.
//!
//! The kernel's decisions, per thread:
//! - lock attempts, fence waits, mmap_lock, contention and syscall exits are
//!   sent only while the thread holds a hooked lock;
//! - a lock taken while the thread holds nothing and is inside no hooked
//!   call is kept back (at most 2) and sent only before the thread's next
//!   sent event; its unlock, if it comes first, drops both; a failed one is
//!   dropped;
//! - the novelty filter: a nested acquisition under the acquire context of
//!   the thread's held chain (every held lock taken under it, with one lock
//!   function, each with its call site's stack) whose chain key was sent
//!   before is kept unsent, its attempt dropped, its unlock dropped; kept
//!   ones are sent (after the kept-back ones) before the thread's next sent
//!   event. Anything but a plain success, any unlock, a lock of the object
//!   the thread last tore down, or a lock inside a hooked call ends the
//!   chain;
//! - the call filter: an outermost dma-buf call or callback (inside no hooked
//!   call) with a call site, on a dma_buf, whose key (call, call site,
//!   buffer, its resv and ops, dynamic importer, whether the thread holds the
//!   resv) was sent before is quiet: its entry and the entries of calls inside
//!   it are deferred, their returns dropped with them; anything inside it that
//!   is sent goes out after the kept-back and kept locks and the deferred
//!   entries, and the rest of the call is sent as usual. A lock taken in a
//!   quiet call with only dma-buf API calls open (no callback) while the
//!   thread holds nothing is the core's own (attach and detach link the
//!   attachment under the resv): it is kept back as a lone one, and goes
//!   out after the deferred entries; while it is held, nothing more is
//!   deferred and the call's return is sent.

use std::collections::{HashMap, HashSet};

use tracer_common::{SEEN_ACQUIRED, SEEN_ALREADY};

use super::model::{DmaBufFn, Event, EventKind, LockFn, Phase, StackId, EALREADY};

/// Lone acquisitions the kernel keeps back per thread (`tracer_common::MAX_PENDING`).
pub const MAX_PENDING: usize = 2;
/// Nested acquisitions the novelty filter keeps per thread
/// (`tracer_common::KEPT_PER_THREAD`).
pub const KEPT_PER_THREAD: usize = 64;
/// Entries of calls open in a quiet call the kernel can defer
/// (`tracer_common::DEFERRED_CALLS`).
pub const DEFERRED_CALLS: usize = 4;

/// What the filter left out of a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterCounts {
    /// Nested acquisitions kept and released unsent.
    pub summarised: u64,
    /// Chain keys (with an outcome) recorded as sent.
    pub chains_seen: u64,
    /// -EALREADY returns that repeated a chain's, dropped with their attempt.
    pub already_dropped: u64,
    /// Lone acquisitions kept back and released unsent.
    pub lone_dropped: u64,
    /// dma-buf calls and callbacks the call filter left unsent (entry and return).
    pub calls_dropped: u64,
    /// Call keys recorded as judged once.
    pub call_keys: u64,
}

/// What the engine judges at a dma-buf call's entry (tracer-ebpf/src/calls.rs `call_key`).
#[derive(Clone, PartialEq, Eq, Hash)]
struct CallKey {
    call: String,
    stack: StackId,
    dmabuf: u64,
    resv: u64,
    ops: u64,
    dynamic_importer: bool,
    holds_resv: bool,
}

#[derive(Default, PartialEq, Eq, Clone, Copy)]
enum Quiet {
    #[default]
    Off,
    /// Entries deferred.
    Held,
    /// Something inside was sent: the rest goes out as usual.
    Sent,
}

#[derive(Default)]
struct Thread {
    held: u32,
    in_call: u32,
    pending: Vec<Event>,
    kept: Vec<Event>,
    last_fini: u64,
    /// The held chain's key (0: none), its last acquisition's call site, context and lock
    /// function.
    chain: u64,
    last_stack: Option<StackId>,
    txn_ctx: u64,
    txn_func: Option<LockFn>,
    /// The key of a nested attempt that was not sent (a repeat), and its outcomes seen.
    entry_key: u64,
    entry_seen: u8,
    summarised: u32,
    /// Locks the thread holds (the kernel reads the resv's owner word instead).
    held_locks: Vec<u64>,
    quiet: Quiet,
    /// The deferred entries of the quiet call, with their nesting level.
    deferred: Vec<(Event, u32)>,
    /// The first kept-back acquisition was taken inside the quiet call (read only while
    /// `pending` is not empty).
    pending_in_call: bool,
}

/// The key of one more acquisition from the chain's last call site (tracer-ebpf's `AGAIN`).
const AGAIN: u64 = 0x5A5A_5A5A_5A5A_5A5A;

/// The key after one more acquisition (never 0).
fn mix(chain: u64, stack: StackId, func: LockFn) -> u64 {
    let mut h = chain ^ u64::from(stack).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ ((func as u64) << 1);
    h = (h ^ (h >> 32)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h | 1
}

impl Thread {
    fn next_key(&self, lock: u64, ctx: u64, func: LockFn, stack: Option<StackId>) -> u64 {
        match stack {
            Some(s)
                if self.chain != 0
                    && ctx != 0
                    && ctx == self.txn_ctx
                    && Some(func) == self.txn_func
                    && self.in_call == 0
                    && lock != self.last_fini =>
            {
                if Some(s) == self.last_stack {
                    // One more from the chain's last call site: the chain does not grow.
                    self.chain ^ AGAIN
                } else {
                    mix(self.chain, s, func)
                }
            }
            _ => 0,
        }
    }

    /// The chain after a plain success with `key` from `stack`.
    fn advance(&mut self, key: u64, stack: Option<StackId>) {
        if stack != self.last_stack {
            self.chain = key;
            self.last_stack = stack;
        }
    }

    /// In a quiet call with only dma-buf API calls open, no callback (tracer-ebpf's
    /// `in_quiet_core`).
    fn in_quiet_core(&self) -> bool {
        self.quiet == Quiet::Held
            && !self.deferred.is_empty()
            && self
                .deferred
                .iter()
                .all(|(e, _)| matches!(e.kind, EventKind::DmaBufCall { .. }))
    }

    /// Holds a lock kept back inside the quiet call.
    fn holds_core_lock(&self) -> bool {
        !self.pending.is_empty() && self.pending_in_call
    }

    fn chain_start(&mut self, ctx: u64, func: LockFn, stack: Option<StackId>) {
        self.chain = match stack {
            Some(s) if ctx != 0 => mix(0, s, func),
            _ => 0,
        };
        self.last_stack = stack;
        self.txn_ctx = ctx;
        self.txn_func = Some(func);
    }
}

/// The kernel side's filter over a full stream, event by event.
#[derive(Default)]
pub struct KernelFilter {
    threads: HashMap<u32, Thread>,
    /// Chain key -> outcomes sent once (`SEEN_ACQUIRED`, `SEEN_ALREADY`).
    seen: HashMap<u64, u8>,
    /// Calls judged once.
    seen_calls: HashSet<CallKey>,
    counts: FilterCounts,
}

impl KernelFilter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counts(&self) -> FilterCounts {
        self.counts
    }

    /// The events the kernel would send for `ev` (and what it kept back
    /// before it), appended to `out` in order.
    pub fn push(&mut self, ev: &Event, out: &mut Vec<Event>) {
        let t = self.threads.entry(ev.pid).or_default();
        match &ev.kind {
            EventKind::DmaBufCall {
                phase: Phase::Entry,
                ..
            }
            | EventKind::Callback {
                phase: Phase::Entry,
                ..
            } => t.in_call += 1,
            EventKind::DmaBufCall {
                phase: Phase::Return,
                ..
            }
            | EventKind::Callback {
                phase: Phase::Return,
                ..
            } => t.in_call = t.in_call.saturating_sub(1),
            EventKind::ResvFini { resv } => t.last_fini = *resv,
            EventKind::ResvInit { resv } if *resv == t.last_fini => t.last_fini = 0,
            _ => {}
        }
        let sent = match &ev.kind {
            EventKind::DmaBufCall {
                phase: Phase::Entry,
                ..
            }
            | EventKind::Callback {
                phase: Phase::Entry,
                ..
            } => {
                let level = t.in_call;
                // A quiet call sent and returned (its return was sent).
                if t.quiet == Quiet::Sent && level <= 1 {
                    t.quiet = Quiet::Off;
                }
                match t.quiet {
                    _ if t.holds_core_lock() => true,
                    Quiet::Held if t.deferred.len() < DEFERRED_CALLS => {
                        t.deferred.push((ev.clone(), level));
                        false
                    }
                    Quiet::Held | Quiet::Sent => true,
                    Quiet::Off => match (level, call_key(t, ev)) {
                        (1, Some(key)) => {
                            if self.seen_calls.contains(&key) {
                                t.deferred = vec![(ev.clone(), level)];
                                t.quiet = Quiet::Held;
                                false
                            } else {
                                self.seen_calls.insert(key);
                                self.counts.call_keys += 1;
                                true
                            }
                        }
                        _ => true,
                    },
                }
            }
            EventKind::DmaBufCall {
                phase: Phase::Return,
                ..
            }
            | EventKind::Callback {
                phase: Phase::Return,
                ..
            } if t.quiet == Quiet::Held && t.holds_core_lock() => true,
            EventKind::DmaBufCall {
                phase: Phase::Return,
                ..
            }
            | EventKind::Callback {
                phase: Phase::Return,
                ..
            } if t.quiet != Quiet::Off => {
                let level = t.in_call;
                let mut dropped = false;
                if t.quiet == Quiet::Held {
                    while t.deferred.last().is_some_and(|(_, l)| *l > level) {
                        t.deferred.pop();
                        self.counts.calls_dropped += 1;
                        dropped = true;
                    }
                }
                // The quiet call itself returned (it is always at level 1).
                if level < 1 {
                    t.quiet = Quiet::Off;
                    t.deferred.clear();
                }
                !dropped
            }
            EventKind::LockAttempt { lock, ctx, func } => {
                if t.held == 0 {
                    false
                } else {
                    let key = t.next_key(*lock, *ctx, *func, ev.stack);
                    let seen = if key != 0 {
                        self.seen.get(&key).copied()
                    } else {
                        None
                    };
                    t.entry_key = if seen.is_some() { key } else { 0 };
                    t.entry_seen = seen.unwrap_or(0);
                    t.entry_key == 0
                }
            }
            EventKind::LockReturn {
                lock,
                ctx,
                func,
                ret,
            } => {
                let ok = if *func == LockFn::Trylock {
                    *ret == 1
                } else {
                    *ret == 0
                };
                let lone = t.held == 0 && (t.in_call == 0 || t.in_quiet_core());
                if ok {
                    t.held += 1;
                    t.held_locks.push(*lock);
                }
                let suppressed = std::mem::take(&mut t.entry_key);
                if lone && *lock != t.last_fini {
                    if !ok {
                        return;
                    }
                    if t.pending.len() < MAX_PENDING {
                        if t.pending.is_empty() {
                            t.pending_in_call = t.in_call != 0;
                        }
                        t.pending.push(ev.clone());
                        if t.in_call == 0 {
                            t.chain_start(*ctx, *func, ev.stack);
                        } else {
                            t.chain = 0;
                        }
                        return;
                    }
                    t.chain = 0;
                    true
                } else if lone || !(ok && *ret == 0 || *ret == EALREADY) {
                    // Neither a plain success nor -EALREADY: the chain ends, the return
                    // is sent.
                    t.chain = 0;
                    true
                } else {
                    let outcome = if *ret == 0 {
                        SEEN_ACQUIRED
                    } else {
                        SEEN_ALREADY
                    };
                    let seen = t.entry_seen;
                    let key = if suppressed != 0 {
                        suppressed
                    } else {
                        t.next_key(*lock, *ctx, *func, ev.stack)
                    };
                    if key == 0 {
                        t.chain = 0;
                        true
                    } else if suppressed != 0 && seen & outcome != 0 && outcome == SEEN_ALREADY {
                        self.counts.already_dropped += 1;
                        false
                    } else if suppressed != 0
                        && seen & outcome != 0
                        && t.kept.len() < KEPT_PER_THREAD
                    {
                        t.kept.push(ev.clone());
                        t.advance(key, ev.stack);
                        false
                    } else {
                        self.seen.insert(key, seen | outcome);
                        self.counts.chains_seen += 1;
                        if outcome == SEEN_ACQUIRED {
                            t.advance(key, ev.stack);
                        }
                        true
                    }
                }
            }
            EventKind::Unlock { lock } => {
                t.held = t.held.saturating_sub(1);
                if let Some(i) = t.held_locks.iter().rposition(|l| l == lock) {
                    t.held_locks.remove(i);
                }
                t.chain = 0;
                let is = |e: &Event| matches!(e.kind, EventKind::LockReturn { lock: l, .. } if l == *lock);
                if let Some(i) = t.pending.iter().position(is) {
                    t.pending.remove(i);
                    self.counts.lone_dropped += 1;
                    false
                } else if let Some(i) = t.kept.iter().position(is) {
                    t.kept.remove(i);
                    t.summarised = t.summarised.saturating_add(1);
                    self.counts.summarised += 1;
                    false
                } else {
                    true
                }
            }
            EventKind::FenceWaitStart { .. }
            | EventKind::FenceWaitEnd { .. }
            | EventKind::MmapLock { .. }
            | EventKind::MmapUnlock { .. }
            | EventKind::ContentionBegin { .. }
            | EventKind::ContentionEnd { .. }
            | EventKind::SyscallExit { .. } => t.held > 0,
            _ => true,
        };
        if !sent {
            return;
        }
        // A lock kept back inside the quiet call goes out after the entries it was taken
        // in; others before them (the call was made under them).
        let quiet = t.quiet == Quiet::Held;
        let in_call = quiet && t.pending_in_call;
        if !in_call {
            out.append(&mut t.pending);
        }
        out.append(&mut t.kept);
        if quiet {
            out.extend(t.deferred.drain(..).map(|(e, _)| e));
            t.quiet = Quiet::Sent;
        }
        out.append(&mut t.pending);
        let mut ev = ev.clone();
        if let EventKind::ThreadExit { summarised, .. } = &mut ev.kind {
            *summarised = std::mem::take(&mut t.summarised);
            self.threads.remove(&ev.pid);
        }
        out.push(ev);
    }

    /// The whole filtered stream of a full one.
    ///
    /// (Counted calls are not written into the result as `CallsSummarised` records: user
    /// space does that from the kernel's per-function counts, and the findings do not
    /// depend on them.)
    pub fn filter(full: &[Event]) -> (Vec<Event>, FilterCounts) {
        let mut f = Self::new();
        let mut out = Vec::with_capacity(full.len());
        for ev in full {
            f.push(ev, &mut out);
        }
        (out, f.counts())
    }
}

/// The key of a call entry the call filter may summarise: a dma-buf call on a dma_buf
/// (not export or get, whose arguments name none) or a callback, with its call site.
fn call_key(t: &Thread, ev: &Event) -> Option<CallKey> {
    let (call, buf) = match &ev.kind {
        EventKind::DmaBufCall { func, buf, .. } => {
            if matches!(func, DmaBufFn::Export | DmaBufFn::Get) {
                return None;
            }
            (func.kernel_name().to_string(), buf)
        }
        EventKind::Callback { symbol, buf, .. } => (symbol.clone(), buf),
        _ => return None,
    };
    if buf.dmabuf == 0 {
        return None;
    }
    Some(CallKey {
        call,
        stack: ev.stack?,
        dmabuf: buf.dmabuf,
        resv: buf.resv,
        ops: buf.ops,
        dynamic_importer: buf.dynamic_importer,
        holds_resv: buf.resv != 0 && t.held_locks.contains(&buf.resv),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::Phase;

    const CTX: u64 = 0xffff_c900_0000_1000;

    fn ev(pid: u32, stack: Option<StackId>, kind: EventKind) -> Event {
        Event {
            ts_ns: 0,
            cpu: 0,
            pid,
            tgid: pid,
            comm: "t".into(),
            stack,
            kind,
        }
    }

    /// One full-stream transaction over `locks` from call sites 7 (first) and 8 (the rest).
    fn txn(pid: u32, locks: &[u64], ret_of_last: i64) -> Vec<Event> {
        let mut v = Vec::new();
        for (i, &lock) in locks.iter().enumerate() {
            let stack = Some(if i == 0 { 7 } else { 8 });
            let func = LockFn::Lock;
            v.push(ev(
                pid,
                stack,
                EventKind::LockAttempt {
                    lock,
                    ctx: CTX,
                    func,
                },
            ));
            let ret = if i + 1 == locks.len() { ret_of_last } else { 0 };
            v.push(ev(
                pid,
                stack,
                EventKind::LockReturn {
                    lock,
                    ctx: CTX,
                    func,
                    ret,
                },
            ));
        }
        v
    }

    fn unlocks(pid: u32, locks: &[u64]) -> Vec<Event> {
        locks
            .iter()
            .map(|&lock| ev(pid, None, EventKind::Unlock { lock }))
            .collect()
    }

    fn kinds(v: &[Event]) -> Vec<&'static str> {
        v.iter()
            .map(|e| match e.kind {
                EventKind::LockAttempt { .. } => "attempt",
                EventKind::LockReturn { .. } => "return",
                EventKind::Unlock { .. } => "unlock",
                EventKind::FenceWaitStart { .. } => "wait",
                _ => "other",
            })
            .collect()
    }

    /// A udmabuf whose resv is at `resv`.
    fn buf(resv: u64) -> super::super::model::BufRef {
        super::super::model::BufRef {
            dmabuf: resv + 0x800,
            resv,
            ops: 0xc0,
            exp_name: "udmabuf".into(),
            dynamic_importer: false,
        }
    }

    fn call(pid: u32, stack: Option<StackId>, func: DmaBufFn, phase: Phase, resv: u64) -> Event {
        let ret = (phase == Phase::Return).then_some(0);
        let kind = EventKind::DmaBufCall {
            func,
            phase,
            buf: buf(resv),
            ret,
        };
        ev(pid, stack, kind)
    }

    /// The exporter's map_dma_buf callback (no call site of its own).
    fn callback(pid: u32, phase: Phase, resv: u64) -> Event {
        let (cb, symbol) = (super::super::model::Callback::MapDmaBuf, "tsc_map".into());
        let ret = (phase == Phase::Return).then_some(0);
        ev(
            pid,
            None,
            EventKind::Callback {
                cb,
                phase,
                symbol,
                buf: buf(resv),
                ret,
            },
        )
    }

    /// An importer's lock, map (the exporter's callback inside), unlock from one call site;
    /// `inside` happens in the callback.
    fn locked_map(pid: u32, resv: u64, inside: Vec<Event>) -> Vec<Event> {
        let mut v = vec![ev(
            pid,
            Some(7),
            EventKind::LockReturn {
                lock: resv,
                ctx: 0,
                func: LockFn::Lock,
                ret: 0,
            },
        )];
        v.push(call(
            pid,
            Some(9),
            DmaBufFn::MapAttachment,
            Phase::Entry,
            resv,
        ));
        v.push(callback(pid, Phase::Entry, resv));
        v.extend(inside);
        v.push(callback(pid, Phase::Return, resv));
        v.push(call(
            pid,
            Some(9),
            DmaBufFn::MapAttachment,
            Phase::Return,
            resv,
        ));
        v.extend(unlocks(pid, &[resv]));
        v
    }

    fn names(v: &[Event]) -> Vec<&'static str> {
        v.iter()
            .map(|e| match &e.kind {
                EventKind::DmaBufCall {
                    phase: Phase::Entry,
                    ..
                } => "call",
                EventKind::DmaBufCall { .. } => "call-return",
                EventKind::Callback {
                    phase: Phase::Entry,
                    ..
                } => "callback",
                EventKind::Callback { .. } => "callback-return",
                _ => kinds(std::slice::from_ref(e))[0],
            })
            .collect()
    }

    #[test]
    fn a_repeated_call_sends_nothing_until_something_inside_it_must_be_sent() {
        let mut full = locked_map(1, 0xa0, vec![]);
        full.extend(locked_map(1, 0xa0, vec![]));
        // The third time, the callback waits on a fence under the lock.
        let wait = ev(1, Some(5), EventKind::FenceWaitStart { fence: 3 });
        full.extend(locked_map(1, 0xa0, vec![wait]));
        let (out, c) = KernelFilter::filter(&full);
        assert_eq!(
            names(&out),
            [
                // The first: everything (the lone lock before the call judged against it).
                "return",
                "call",
                "callback",
                "callback-return",
                "call-return",
                "unlock",
                // The second: nothing. The third: the lock kept back, the deferred entries,
                // then the wait; the rest of that call as usual; the unlock of a sent lock.
                "return",
                "call",
                "callback",
                "wait",
                "callback-return",
                "call-return",
                "unlock",
            ]
        );
        // The second map call and its callback.
        assert_eq!((c.calls_dropped, c.call_keys), (2, 1));
    }

    /// An importer's attach as 6.12 does it: dma_buf_attach calls dma_buf_dynamic_attach,
    /// which calls the exporter's attach callback, then locks the resv itself to link the
    /// attachment (from call site 11); `inside` happens while the core holds it.
    fn attach(pid: u32, resv: u64, inside: Vec<Event>) -> Vec<Event> {
        let mut v = vec![call(pid, Some(10), DmaBufFn::Attach, Phase::Entry, resv)];
        v.push(call(
            pid,
            Some(14),
            DmaBufFn::DynamicAttach,
            Phase::Entry,
            resv,
        ));
        v.push(callback(pid, Phase::Entry, resv));
        v.push(callback(pid, Phase::Return, resv));
        v.push(ev(
            pid,
            Some(11),
            EventKind::LockReturn {
                lock: resv,
                ctx: 0,
                func: LockFn::Lock,
                ret: 0,
            },
        ));
        v.extend(inside);
        v.extend(unlocks(pid, &[resv]));
        v.push(call(
            pid,
            Some(14),
            DmaBufFn::DynamicAttach,
            Phase::Return,
            resv,
        ));
        v.push(call(pid, Some(10), DmaBufFn::Attach, Phase::Return, resv));
        v
    }

    #[test]
    fn the_cores_own_lock_in_a_repeated_call_is_kept_back_and_sent_after_its_entry() {
        let mut full = attach(1, 0xa0, vec![]);
        full.extend(attach(1, 0xa0, vec![]));
        // The third time the core waits on a fence under its lock: the deferred entry goes
        // out first, then the lock it was taken in, then the wait.
        let wait = ev(1, Some(5), EventKind::FenceWaitStart { fence: 3 });
        full.extend(attach(1, 0xa0, vec![wait]));
        // The fourth time a call is made under it: sent, after the entry and the lock.
        let inner = vec![
            call(1, Some(12), DmaBufFn::Vmap, Phase::Entry, 0xa0),
            call(1, Some(12), DmaBufFn::Vmap, Phase::Return, 0xa0),
        ];
        full.extend(attach(1, 0xa0, inner));
        // The fifth time it is not unlocked inside: the call's return is sent, after the
        // entry and the lock (which the thread then holds).
        let mut held_on = attach(1, 0xa0, vec![]);
        let unlock_at = held_on
            .iter()
            .position(|e| matches!(e.kind, EventKind::Unlock { .. }))
            .unwrap();
        let unlock = held_on.remove(unlock_at);
        full.extend(held_on);
        full.push(unlock);
        let (out, c) = KernelFilter::filter(&full);
        assert_eq!(
            names(&out),
            [
                // The first: everything.
                "call",
                "call",
                "callback",
                "callback-return",
                "return",
                "unlock",
                "call-return",
                "call-return",
                // The second: nothing. The third: in the order the kernel ran them, less
                // the callback, which had returned.
                "call",
                "call",
                "return",
                "wait",
                "unlock",
                "call-return",
                "call-return",
                // The fourth.
                "call",
                "call",
                "return",
                "call",
                "call-return",
                "unlock",
                "call-return",
                "call-return",
                // The fifth.
                "call",
                "call",
                "return",
                "call-return",
                "call-return",
                "unlock",
            ]
        );
        // The second attach, the core call inside it and its callback, and the callback of
        // the three after it.
        assert_eq!(c.calls_dropped, 3 + 3);
        // The second's lock; the others were sent.
        assert_eq!(c.lone_dropped, 1);
    }

    /// A lock inside a callback of a quiet call is never kept back: the engine judges it
    /// against the callback (an exporter relock of a lock the caller should hold).
    #[test]
    fn a_lock_inside_a_callback_of_a_quiet_call_is_sent() {
        let relock = ev(
            1,
            Some(13),
            EventKind::LockReturn {
                lock: 0xa0,
                ctx: 0,
                func: LockFn::Lock,
                ret: 0,
            },
        );
        let mut once = vec![call(
            1,
            Some(9),
            DmaBufFn::MapAttachment,
            Phase::Entry,
            0xa0,
        )];
        once.push(callback(1, Phase::Entry, 0xa0));
        once.push(relock);
        once.extend(unlocks(1, &[0xa0]));
        once.push(callback(1, Phase::Return, 0xa0));
        once.push(call(
            1,
            Some(9),
            DmaBufFn::MapAttachment,
            Phase::Return,
            0xa0,
        ));
        let mut full = once.clone();
        full.extend(once.iter().cloned());
        let (out, c) = KernelFilter::filter(&full);
        let first = names(&once);
        assert_eq!(names(&out), [first.clone(), first].concat());
        assert_eq!((c.calls_dropped, c.lone_dropped), (0, 0));
    }

    #[test]
    fn a_call_made_in_another_held_state_is_judged_again() {
        let mut full = locked_map(1, 0xa0, vec![]);
        // The same call from the same site without the lock: not a repeat.
        full.push(call(
            1,
            Some(9),
            DmaBufFn::MapAttachment,
            Phase::Entry,
            0xa0,
        ));
        full.push(call(
            1,
            Some(9),
            DmaBufFn::MapAttachment,
            Phase::Return,
            0xa0,
        ));
        // Another buffer, and a call without its call site: not repeats either.
        full.extend(locked_map(1, 0xb0, vec![]));
        full.push(call(1, None, DmaBufFn::MapAttachment, Phase::Entry, 0xa0));
        full.push(call(1, None, DmaBufFn::MapAttachment, Phase::Return, 0xa0));
        full.push(call(1, None, DmaBufFn::MapAttachment, Phase::Entry, 0xa0));
        full.push(call(1, None, DmaBufFn::MapAttachment, Phase::Return, 0xa0));
        let (out, c) = KernelFilter::filter(&full);
        assert_eq!(out.len(), full.len());
        assert_eq!((c.calls_dropped, c.call_keys), (0, 3));
    }

    #[test]
    fn a_repeated_transaction_sends_nothing() {
        let l = [1, 2, 3];
        let mut full = txn(1, &l, 0);
        full.extend(unlocks(1, &l));
        let once = full.clone();
        full.extend(once.iter().cloned());
        full.extend(once.iter().cloned());
        let (out, c) = KernelFilter::filter(&full);
        // The first: the lone first lock is sent before the second's attempt, then everything.
        assert_eq!(
            kinds(&out),
            ["return", "attempt", "return", "attempt", "return", "unlock", "unlock", "unlock"]
        );
        assert_eq!(c.summarised, 4);
        assert_eq!(c.lone_dropped, 2);
        assert_eq!(c.chains_seen, 2);
    }

    #[test]
    fn kept_locks_are_sent_in_order_before_a_judged_event() {
        let l = [1, 2, 3];
        let mut full = txn(1, &l, 0);
        full.extend(unlocks(1, &l));
        full.extend(txn(1, &l, 0));
        full.push(ev(1, Some(9), EventKind::FenceWaitStart { fence: 5 }));
        full.extend(unlocks(1, &l));
        let (out, _) = KernelFilter::filter(&full);
        let second: Vec<_> = out[8..].to_vec();
        assert_eq!(
            kinds(&second),
            ["return", "return", "return", "wait", "unlock", "unlock", "unlock"]
        );
        let held: Vec<u64> = second[..3]
            .iter()
            .map(|e| match e.kind {
                EventKind::LockReturn { lock, .. } => lock,
                _ => 0,
            })
            .collect();
        assert_eq!(held, l);
    }

    #[test]
    fn a_failed_repeat_ends_the_chain_and_goes_out_with_what_is_held() {
        let l = [1, 2, 3];
        let mut full = txn(1, &l, 0);
        full.extend(unlocks(1, &l));
        // The same transaction whose last lock gets -EDEADLK: the return is sent, after
        // the two held locks; its attempt was a repeat and stays out.
        full.extend(txn(1, &l, super::super::model::EDEADLK));
        let (out, _) = KernelFilter::filter(&full);
        assert_eq!(kinds(&out[8..]), ["return", "return", "return"]);
    }

    #[test]
    fn a_repeated_ealready_is_dropped_and_keeps_the_chain() {
        // Lock 1, 2, then 1 again (-EALREADY: the context holds it), then 3.
        let one = |pid| {
            let mut v = txn(pid, &[1, 2], 0);
            let func = LockFn::Lock;
            let (lock, ctx) = (1, CTX);
            v.push(ev(pid, Some(9), EventKind::LockAttempt { lock, ctx, func }));
            v.push(ev(
                pid,
                Some(9),
                EventKind::LockReturn {
                    lock,
                    ctx,
                    func,
                    ret: EALREADY,
                },
            ));
            v.extend(txn(pid, &[3], 0).into_iter().map(|mut e| {
                e.stack = Some(8);
                e
            }));
            v.extend(unlocks(pid, &[1, 2, 3]));
            v
        };
        let mut full = one(1);
        full.extend(one(1));
        let (out, c) = KernelFilter::filter(&full);
        // The first sends everything but the lone attempt; the second nothing.
        assert_eq!(out.len(), full.len() / 2 - 1, "{:?}", kinds(&out));
        assert_eq!((c.already_dropped, c.summarised), (1, 2));
    }

    #[test]
    fn a_transaction_without_context_or_first_site_is_never_summarised() {
        let mut full = Vec::new();
        for _ in 0..3 {
            for (i, lock) in [1u64, 2].into_iter().enumerate() {
                // No context.
                let k = EventKind::LockReturn {
                    lock,
                    ctx: 0,
                    func: LockFn::Lock,
                    ret: 0,
                };
                if i > 0 {
                    full.push(ev(
                        1,
                        Some(8),
                        EventKind::LockAttempt {
                            lock,
                            ctx: 0,
                            func: LockFn::Lock,
                        },
                    ));
                }
                full.push(ev(1, Some(8), k));
            }
            full.extend(unlocks(1, &[1, 2]));
        }
        let (_, c) = KernelFilter::filter(&full);
        assert_eq!(c.summarised, 0);
        // A first lock without its call site: no chain either.
        let mut full = txn(2, &[1, 2], 0);
        full[1].stack = None;
        full.extend(unlocks(2, &[1, 2]));
        let again = full.clone();
        full.extend(again);
        assert_eq!(KernelFilter::filter(&full).1.summarised, 0);
    }
}
