//! Helpers shared by the hook families: task state lookup and event output.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
    },
    programs::tracing::StackIdContext,
};
use tracer_common::{
    Config, LONE_SITE_BUDGET, LONE_SITES_ALWAYS, PendingLock, RawEvent, RawKind, THREAD_SLOTS,
    TaskFrames,
};

use crate::{CONFIG, EVENTS, LOST, STACKS, THREADS};

#[inline(always)]
pub fn config() -> Option<&'static Config> {
    CONFIG.get(0)
}

/// A thread's identity in `THREADS`: its pid_tgid (thread id in the low 32
/// bits, process id in the high 32), so a thread id reused by another process
/// does not match a slot its previous holder left.
pub type ThreadId = u64;

/// The configuration and the current thread, or None for the tracer's own
/// threads (their lock traffic is the tracer's, not the workload's).
#[inline(always)]
pub fn traced_thread() -> Option<(&'static Config, ThreadId)> {
    let cfg = config()?;
    if cfg.armed == 0 {
        return None;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == cfg.self_tgid {
        return None;
    }
    Some((cfg, pid_tgid))
}

/// Consecutive `THREADS` slots a thread may own, from its home slot on
/// (linear probing: a thread whose home slot another thread owns takes the
/// next free one).
const PROBES: u32 = 4;

/// Bit of `TaskFrames::owner` set when the owner passed `sched_process_exit`:
/// the owner still finds the slot (the last `fput` of its files runs later,
/// in task work, and calls hooked dma-buf functions), and any other thread
/// may take it over.
const EXITED: u64 = 1 << 63;

/// The `i`th `THREADS` slot of thread `id` (owned by it or not). The home slot
/// is the thread id scrambled (Fibonacci hashing: one multiply): a process's
/// consecutive thread ids would otherwise fill runs of slots that later
/// threads' probes all collide with.
#[inline(always)]
fn thread_slot(id: ThreadId, i: u32) -> Option<(*mut TaskFrames, u32)> {
    let home = (id as u32).wrapping_mul(0x9E37_79B1) >> (32 - THREAD_SLOTS.trailing_zeros());
    let index = home.wrapping_add(i) & (THREAD_SLOTS - 1);
    Some((THREADS.get_ptr_mut(index)?, index))
}

/// The calling thread's state, created on first use: the `THREADS` slot it
/// owns, or the first of its `PROBES` slots that is free or whose owner has
/// exited, claimed. None (counted in `LOST[1]`) if live threads own all of
/// them. Every pointer returned points into the one array map, so the verifier
/// checks the rest of each program once (a second map for collisions made it
/// check everything after the lookup twice, and start-up took 60% longer).
#[inline(always)]
pub fn task(id: ThreadId) -> Option<*mut TaskFrames> {
    let s = find_task(id).or_else(|| claim(id));
    if s.is_none() {
        count(LOST_STATELESS);
    }
    s
}

/// Takes a free (or exited owner's) slot for `id`: two passes, so a thread
/// that owns a later probe never claims an earlier one.
#[inline(always)]
fn claim(id: ThreadId) -> Option<*mut TaskFrames> {
    if id as u32 == 0 {
        // The idle tasks (pid 0 on every CPU at once) get no state.
        return None;
    }
    let mut i = 0;
    while i < PROBES {
        let (s, index) = thread_slot(id, i)?;
        // SAFETY: a map value; `owner` changes only by this swap, or by its
        // owner marking its exit.
        let owner = unsafe { (*s).owner };
        if owner == 0 || owner & EXITED != 0 {
            // SAFETY: an aligned u64 in a map value; of the threads racing
            // for the slot, the one whose swap finds `owner` unchanged wins.
            let (_, claimed) = unsafe {
                core::intrinsics::atomic_cxchg::<
                    u64,
                    { core::intrinsics::AtomicOrdering::SeqCst },
                    { core::intrinsics::AtomicOrdering::Relaxed },
                >(&raw mut (*s).owner, owner, id)
            };
            if claimed {
                // SAFETY: this thread now owns the slot.
                reset(unsafe { &mut *s }, index);
                return Some(s);
            }
        }
        i += 1;
    }
    None
}

/// Clears what a previous owner of a slot left (frames and pending entries
/// are only read below `depth` and `npending`).
#[inline(always)]
fn reset(t: &mut TaskFrames, index: u32) {
    t.slot = index;
    t.chain = 0;
    t.seen_key = 0;
    t.entry_key = 0;
    t.nkept = 0;
    t.kept_head = 0;
    t.kept_top = 0;
    t.summarised = 0;
    t.quiet = tracer_common::QUIET_OFF;
    t.ndeferred = 0;
    t.depth = 0;
    t.held = 0;
    t.npending = 0;
    t.pending_in_call = 0;
    t.in_call = 0;
    t.sites[0].caller = 0;
    t.sites[1].caller = 0;
    t.site_next = 0;
    t.lone_sites = LONE_SITE_BUDGET;
    t.lone_locks = 0;
    t.last_fini = 0;
}

/// The calling thread's state if it has any (tracepoints fire for every task;
/// most never touch a hooked lock). The first probe is the thread's home slot
/// unless it collided.
#[inline(always)]
pub fn find_task(id: ThreadId) -> Option<*mut TaskFrames> {
    if id as u32 == 0 {
        // A free slot's owner is 0: the idle tasks must not match it.
        return None;
    }
    let mut i = 0;
    while i < PROBES {
        let (s, _) = thread_slot(id, i)?;
        // SAFETY: as in `claim`.
        if unsafe { (*s).owner } & !EXITED == id {
            return Some(s);
        }
        i += 1;
    }
    None
}

/// At the thread's `sched_process_exit`: acquisitions it still holds unsent
/// go to user space (a recording shows what it died holding), and its slot is
/// marked for takeover. A thread without a slot claims one to mark: its last
/// `fput`s, which run after this tracepoint, then find it instead of claiming
/// a slot that nothing would free.
#[inline(always)]
pub fn thread_exits(id: ThreadId) {
    let found = find_task(id);
    let had_slot = found.is_some();
    let Some(s) = found.or_else(|| claim(id)) else {
        return;
    };
    // SAFETY: this thread's slot.
    let t = unsafe { &mut *s };
    if has_unsent(t) {
        flush_pending(t);
    }
    // A thread that used a hooked function: user space forgets its state
    // (its id may be reused; lost events must not leave a reused id "holding").
    if had_slot {
        let (held, lone, summarised) = (t.held, t.lone_locks, t.summarised);
        output(RawKind::ThreadExit as u16, 0, |ev| {
            ev.args = [held as u64, lone as u64, summarised as u64, 0];
            ev.held = held;
        });
    }
    // Only the owner writes a slot it owns (others swap only free or exited
    // slots). A plain store: the bpf target's store-release needs cpu v4, and
    // x86 orders stores anyway.
    // SAFETY: an aligned u64 in a map value.
    unsafe { core::ptr::write_volatile(&raw mut t.owner, id | EXITED) };
}

/// Sends the thread's not-yet-sent lock acquisitions (oldest first, with
/// their own cpu and stack, stamped now: see `funcs::keep_pending`) before an
/// event that needs them.
#[inline(always)]
pub fn flush_pending(t: &mut TaskFrames) {
    // Index 0 of an array map: always there.
    let Some(cfg) = config() else {
        return;
    };
    if t.npending > 0 {
        // A kept-back acquisition was needed: this thread's lone acquisitions
        // are evidence, so every later one gets its call site.
        t.lone_sites = LONE_SITES_ALWAYS;
    }
    let quiet = crate::calls::calls_on() && t.quiet == tracer_common::QUIET_HELD;
    // Kept back inside the quiet call (the core's own lock, calls.rs): it
    // goes out after the entries it was taken in. Else the kept-back locks
    // come first: the call was made under them.
    let in_call = quiet && t.pending_in_call != 0;
    if !in_call {
        send_pendings(cfg, t);
    }
    // Then the novelty filter's kept acquisitions, which nest in them.
    if t.nkept > 0 {
        crate::novelty::flush_kept(cfg, t, crate::held::owner_check_on(cfg));
    }
    // Then the entries of the quiet call the thread is in (calls.rs): every
    // lock above was taken before it.
    if quiet {
        crate::calls::flush_deferred(cfg, t);
    }
    if in_call {
        send_pendings(cfg, t);
    }
}

/// Sends the kept-back acquisitions, oldest first.
#[inline(always)]
fn send_pendings(cfg: &Config, t: &mut TaskFrames) {
    let held = t.held;
    // Constant indices: old verifiers (6.1) reject variable offsets here.
    if t.npending >= 1 {
        send_pending(&t.pending[0], held);
        let lock = t.pending[0].lock;
        crate::held::note_sent(cfg, t, lock);
    }
    if t.npending >= 2 {
        send_pending(&t.pending[1], held);
        let lock = t.pending[1].lock;
        crate::held::note_sent(cfg, t, lock);
    }
    t.npending = 0;
}

/// Whether the thread has something not sent yet that an event must follow:
/// kept-back or kept locks, or the deferred entries of a quiet call.
#[inline(always)]
pub fn has_unsent(t: &TaskFrames) -> bool {
    t.npending > 0
        || (crate::novelty::on() && t.nkept > 0)
        || (crate::calls::calls_on() && t.quiet == tracer_common::QUIET_HELD)
}

#[inline(always)]
fn send_pending(p: &PendingLock, held: u32) {
    let p = *p;
    output(RawKind::FuncReturn as u16, p.hook, |ev| {
        ev.cpu = p.cpu;
        ev.func_ip = p.func_ip;
        ev.stack_id = p.stack_id;
        ev.ret = p.ret;
        ev.args = [p.lock, p.ctx, 0, 0];
        ev.held = held;
    });
}

#[inline(always)]
pub fn stack_id<C: EbpfContext + StackIdContext>(ctx: &C) -> i64 {
    match ctx.get_stackid(&STACKS, 0) {
        Ok(id) => id,
        Err(e) => e as i64,
    }
}

/// `LOST` index: events that did not fit in the ring buffer.
pub const LOST_EVENTS: u32 = 0;
/// `LOST` index: hooked calls of threads that got no state (see `task`).
pub const LOST_STATELESS: u32 = 1;
/// `LOST` index: kretprobe returns the kernel never ran (out of kretprobe
/// instances, or the program skipped): their frames, found by stack pointer
/// under a later return, are dropped.
pub const LOST_RETURNS: u32 = 2;

pub fn count(index: u32) {
    count_by(index, 1);
}

pub fn count_by(index: u32, n: u64) {
    if let Some(p) = LOST.get_ptr_mut(index) {
        // SAFETY: per-CPU value, no concurrent writer on this CPU.
        unsafe { *p += n };
    }
}

/// Reserve a record, let `fill` write the kind-specific part, submit. The
/// header (time, task, cpu, comm) is written here. A full ring is counted.
#[inline(always)]
pub fn output(kind: u16, hook: u16, fill: impl FnOnce(&mut RawEvent)) {
    let Some(mut entry) = EVENTS.reserve::<RawEvent>(0) else {
        count(LOST_EVENTS);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points to a reserved ring-buffer record of RawEvent's size;
    // every field is written before submit.
    unsafe {
        let ev = &mut *ev;
        ev.ts_ns = bpf_ktime_get_ns();
        ev.pid_tgid = bpf_get_current_pid_tgid();
        ev.kind = kind;
        ev.hook = hook;
        ev.cpu = bpf_get_smp_processor_id();
        ev.stack_id = -1;
        ev.args = [0; 4];
        ev.ret = 0;
        ev.func_ip = 0;
        ev.dmabuf = 0;
        ev.resv = 0;
        ev.ops = 0;
        ev.held = 0;
        ev.buf_flags = 0;
        ev.comm = bpf_get_current_comm().unwrap_or([0; 16]);
        ev.exp_name = [0; tracer_common::EXP_NAME_LEN];
        fill(ev);
    }
    entry.submit(0);
}
