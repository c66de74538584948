//! The tracer's eBPF programs. One file per hook family:
//! - `funcs`: kprobes: exporter/importer callbacks, and any other hooked
//!   function where fentry is refused, through one generic entry and one
//!   generic return program, described per address by user space (`FUNCS`);
//! - `tracing`: the dma-buf API and resv lifetimes on fentry/fexit;
//! - `lock_tracing`: the ww_mutex functions on fentry/fexit where the kernel
//!   allows it (`funcs` is their kprobe fallback);
//! - `tracepoints`: dma_fence waits, lock contention, mmap_lock, syscall exit;
//! - `floor`: programs that only return, for overhead measurements.
//!
//! Shared state lives here: the ring buffer, the per-task frames and held-lock
//! count (kept in the kernel so that lock traffic is filtered before it costs a
//! ring-buffer record), stacks, configuration and the loss counter.
#![no_std]
#![no_main]
// Compare-and-swap (BPF_CMPXCHG, Linux 5.12+): the bpf target has no
// `AtomicU64::compare_exchange`, the intrinsic lowers to the instruction.
#![feature(core_intrinsics)]
#![allow(internal_features, incomplete_features)]

/// fentry/fexit "slot" programs. A tracing program's target is fixed when it
/// is loaded, so the object carries identical copies and user space gives one
/// to each hooked function. `$entry_body`/`$exit_body` take `&FEntryContext` /
/// `&FExitContext` and return `Option<()>`; the second form makes entries only.
macro_rules! tracing_slots {
    ($entry_body:path, $exit_body:path; $(($entry:ident, $exit:ident)),+ $(,)?) => {
        $(
            #[aya_ebpf::macros::fentry]
            pub fn $entry(ctx: aya_ebpf::programs::FEntryContext) -> u32 {
                let _ = $entry_body(&ctx);
                0
            }
            #[aya_ebpf::macros::fexit]
            pub fn $exit(ctx: aya_ebpf::programs::FExitContext) -> u32 {
                let _ = $exit_body(&ctx);
                0
            }
        )+
    };
    ($entry_body:path; $($entry:ident),+ $(,)?) => {
        $(
            #[aya_ebpf::macros::fentry]
            pub fn $entry(ctx: aya_ebpf::programs::FEntryContext) -> u32 {
                let _ = $entry_body(&ctx);
                0
            }
        )+
    };
}

mod calls;
mod emit;
mod floor;
mod funcs;
mod held;
mod kmem;
mod lock_tracing;
mod novelty;
mod tracepoints;
mod tracing;

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
};
use tracer_common::{
    Config, FuncDesc, FuncSlot, KEPT_PER_THREAD, KeptLock, KmemBuf, SEEN_ENTRIES, SUMMARISED_HOOKS,
    THREAD_SLOTS, TaskFrames,
};

/// Events to user space. Size set by user space at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024 * 1024, 0);

/// Per CPU: [0] events that did not fit in `EVENTS`; [1] hooked calls of
/// threads that got no per-thread state (`emit::task`); [2] kretprobe
/// returns never run; [3..7] the novelty filter's counts (`novelty.rs`);
/// [7..9] the call filter's (`calls.rs`).
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(9, 0);

/// Per hook id: calls of that function the call filter left unsent (`calls.rs`).
#[map]
pub static CALLS_SUMMARISED: PerCpuArray<u64> = PerCpuArray::with_max_entries(SUMMARISED_HOOKS, 0);

/// Nested acquisitions kept unsent by the novelty filter: `KEPT_PER_THREAD`
/// entries per `THREADS` slot (`novelty.rs`).
#[map]
pub static KEPT: Array<KeptLock> = Array::with_max_entries(THREAD_SLOTS * KEPT_PER_THREAD, 0);

/// Chain keys of nested acquisitions sent once (`novelty.rs`), and keys of
/// dma-buf calls judged once (`calls.rs`): a repeat is kept, not sent. Least recently used keys make room for new ones.
#[map]
pub static SEEN: LruHashMap<u64, u8> = LruHashMap::with_max_entries(SEEN_ENTRIES, 0);

/// Kernel stacks referenced by events' `stack_id`.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);

/// Function address -> how to read it. Filled by user space before attaching.
#[map]
pub static FUNCS: HashMap<u64, FuncDesc> = HashMap::with_max_entries(4096, 0);

/// Direct-mapped copy of `FUNCS` (index `func_slot(ip)`), checked first.
#[map]
pub static FUNC_SLOTS: Array<FuncSlot> = Array::with_max_entries(tracer_common::FUNC_SLOTS, 0);

/// (call site = return address, hooked function, tgid) -> the stack id taken
/// there first. The function is part of the key: one indirect call site
/// (`ops->map_dma_buf` in the dma-buf core) reaches many callbacks.
#[map]
pub static SITES: LruHashMap<[u64; 3], i64> = LruHashMap::with_max_entries(8192, 0);

/// Index 0: offsets and policy.
#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Per-thread frames, held-lock count and unsent acquisitions (~1 KB each),
/// indexed by thread id with linear probing (`emit::task`): the lock hot path
/// reaches its thread's state without hashing. A slot is marked for takeover at its thread's exit.
#[map]
pub static THREADS: Array<TaskFrames> = Array::with_max_entries(THREAD_SLOTS, 0);

/// Result of the last `read_kmem` request.
#[map]
pub static KMEM: Array<KmemBuf> = Array::with_max_entries(1, 0);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
