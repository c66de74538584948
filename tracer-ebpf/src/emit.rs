//! Helpers shared by the hook families: task state lookup and event output.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
    },
    programs::tracing::StackIdContext,
};
use tracer_common::{Config, PendingLock, RawEvent, RawKind, THREAD_SLOTS, TaskFrames};

use crate::{CONFIG, EVENTS, LOST, STACKS, THREADS};

#[inline(always)]
pub fn config() -> Option<&'static Config> {
    CONFIG.get(0)
}

/// The configuration and the current thread id, or None for the tracer's own
/// threads (their lock traffic is the tracer's, not the workload's).
#[inline(always)]
pub fn traced_thread() -> Option<(&'static Config, u32)> {
    let cfg = config()?;
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == cfg.self_tgid {
        return None;
    }
    Some((cfg, pid_tgid as u32))
}

/// Consecutive `THREADS` slots a thread may own, from `tid % THREAD_SLOTS` on
/// (linear probing: a thread whose first slot another live thread owns takes
/// the next free one).
const PROBES: u32 = 4;

/// The `i`th `THREADS` slot of thread `tid` (owned by it or not).
#[inline(always)]
fn thread_slot(tid: u32, i: u32) -> Option<*mut TaskFrames> {
    THREADS.get_ptr_mut(tid.wrapping_add(i) & (THREAD_SLOTS - 1))
}

/// The calling thread's state, created on first use: a `THREADS` slot it
/// owns, or the first free one of its `PROBES` slots, claimed. None (counted
/// in `LOST[1]`) if other live threads own all of them. Every pointer this
/// returns points into the one array map, so the verifier checks the rest of
/// each program once (a second map for collisions made it check everything
/// after the lookup twice, and start-up took 60% longer).
#[inline(always)]
pub fn task(tid: u32) -> Option<*mut TaskFrames> {
    if let Some(s) = find_task(tid) {
        return Some(s);
    }
    let mut i = 0;
    while i < PROBES {
        let s = thread_slot(tid, i)?;
        // SAFETY: a map value; only its owner writes it, others read `owner`.
        if tid != 0 && unsafe { (*s).owner } == 0 {
            // SAFETY: an aligned u64 in a map value; the swap makes one of
            // two threads racing for a free slot its owner.
            let (_, claimed) = unsafe {
                core::intrinsics::atomic_cxchg::<
                    u64,
                    { core::intrinsics::AtomicOrdering::SeqCst },
                    { core::intrinsics::AtomicOrdering::Relaxed },
                >(&raw mut (*s).owner, 0, tid as u64)
            };
            if claimed {
                // SAFETY: this thread now owns the slot.
                reset(unsafe { &mut *s });
                return Some(s);
            }
        }
        i += 1;
    }
    count(LOST_STATELESS);
    None
}

/// Clears what a previous owner of a slot left (frames and pending entries
/// are only read below `depth` and `npending`).
#[inline(always)]
fn reset(t: &mut TaskFrames) {
    t.depth = 0;
    t.held = 0;
    t.npending = 0;
    t.in_call = 0;
    t.sites[0].caller = 0;
    t.sites[1].caller = 0;
    t.site_next = 0;
}

/// The calling thread's state if it has any (tracepoints fire for every task;
/// most never touch a hooked lock). The first probe is the thread's own slot
/// unless it collided.
#[inline(always)]
pub fn find_task(tid: u32) -> Option<*mut TaskFrames> {
    let mut i = 0;
    while i < PROBES {
        let s = thread_slot(tid, i)?;
        // SAFETY: as in `task`.
        if unsafe { (*s).owner } == tid as u64 {
            return Some(s);
        }
        i += 1;
    }
    None
}

/// The thread's held count without creating state for it.
#[inline(always)]
pub fn held_of(tid: u32) -> u32 {
    // SAFETY: read of this thread's state.
    find_task(tid).map(|t| unsafe { (*t).held }).unwrap_or(0)
}

/// At the thread's exit: its slots are freed, so a later thread with the same
/// id starts clean and the next claimer finds them free. Only the owner
/// releases a slot, and it does so last.
#[inline(always)]
pub fn release_thread(tid: u32) {
    let mut i = 0;
    while i < PROBES {
        if let Some(s) = thread_slot(tid, i) {
            // SAFETY: as in `task`.
            let t = unsafe { &mut *s };
            if t.owner == tid as u64 {
                reset(t);
                // A plain store (the bpf target's store-release needs cpu v4;
                // x86 orders stores anyway). SAFETY: an aligned u64 in a map value.
                unsafe { core::ptr::write_volatile(&raw mut t.owner, 0) };
            }
        }
        i += 1;
    }
}

/// Sends the thread's not-yet-sent lock acquisitions (oldest first, with
/// their own cpu and stack, stamped now: see `funcs::keep_pending`) before an
/// event that needs them.
#[inline(always)]
pub fn flush_pending(t: &mut TaskFrames) {
    let held = t.held;
    // Constant indices: old verifiers (6.1) reject variable offsets here.
    if t.npending >= 1 {
        send_pending(&t.pending[0], held);
    }
    if t.npending >= 2 {
        send_pending(&t.pending[1], held);
    }
    t.npending = 0;
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

/// `flush_pending` for a thread that may have no state.
#[inline(always)]
pub fn flush_thread(tid: u32) {
    if let Some(t) = find_task(tid) {
        // SAFETY: a map value of this thread's key.
        let t = unsafe { &mut *t };
        if t.npending > 0 {
            flush_pending(t);
        }
    }
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

fn count(index: u32) {
    if let Some(p) = LOST.get_ptr_mut(index) {
        // SAFETY: per-CPU value, no concurrent writer on this CPU.
        unsafe { *p += 1 };
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
