//! Types both sides agree on: the raw event the eBPF programs write to the ring
//! buffer, the per-function hook descriptor user space installs, and the
//! configuration block (BTF offsets, stack policy).
//!
//! Everything here is `#[repr(C)]`, `Copy` and free of pointers so that the
//! kernel side can write it and user space can read it byte for byte.
#![no_std]

/// Length of a task's `comm`.
pub const COMM_LEN: usize = 16;
/// Bytes of `dma_buf.exp_name` copied into an event (NUL-terminated, truncated).
pub const EXP_NAME_LEN: usize = 32;
/// Deepest nesting of hooked functions tracked per task for pairing returns.
pub const MAX_FRAMES: usize = 16;
/// Depth of captured kernel stacks.
pub const STACK_DEPTH: usize = 64;

/// What an event records. Stable numbers: they are part of the recording format.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawKind {
    /// A hooked kernel function was entered.
    FuncEntry = 1,
    /// A hooked kernel function returned (`ret` is valid).
    FuncReturn = 2,
    /// `dma_fence:dma_fence_wait_start` (args[0] = fence).
    FenceWaitStart = 3,
    /// `dma_fence:dma_fence_wait_end` (args[0] = fence).
    FenceWaitEnd = 4,
    /// `lock:contention_begin` (args[0] = lock, args[1] = flags).
    ContentionBegin = 5,
    /// `lock:contention_end` (args[0] = lock, ret = result).
    ContentionEnd = 6,
    /// `mmap_lock:mmap_lock_start_locking` (args[0] = mm, args[1] = write).
    MmapLockStart = 7,
    /// `mmap_lock:mmap_lock_acquire_returned` (args[0] = mm, args[1] = write, args[2] = success).
    MmapLockAcquired = 8,
    /// `mmap_lock:mmap_lock_released` (args[0] = mm, args[1] = write).
    MmapLockReleased = 9,
    /// `raw_syscalls:sys_exit` of a task that holds hooked locks
    /// (args[0] = syscall nr, args[1] = locks held per the kernel-side count).
    SyscallExitHolding = 10,
    /// `sched:sched_process_exit` of a thread that used a hooked function
    /// (args[0] = locks it held per the kernel-side count, args[1] = its lone
    /// acquisitions, `TaskFrames::lone_locks`, args[2] = its acquisitions the
    /// novelty filter kept and released unsent, `TaskFrames::summarised`):
    /// its thread id may be reused from now on, so user space forgets its
    /// state.
    ThreadExit = 11,
    /// `module:module_load` (exp_name = the module's name): user space
    /// re-reads kallsyms and hooks the new module's dma-buf ops tables.
    ModuleLoad = 12,
    /// `module:module_free` (exp_name = the module's name): its hooks are gone.
    ModuleFree = 13,
    /// ww_mutexes the thread was seen acquiring (the non-zero args) are no
    /// longer owned by it, found before an event judged against its held
    /// locks: their unlock was not seen (the kernel skipped the program's
    /// run). User space drops them before the next event
    /// (tracer-ebpf/src/held.rs).
    LockGone = 14,
    /// Never sent by the kernel: written by user space into the stream
    /// after a drain of the ring, one per hooked function: `args[0]` calls of
    /// the function with hook id `hook` the kernel's call filter left unsent
    /// since the last such record (tracer-ebpf/src/calls.rs), so recordings
    /// and the engine's statistics count every call.
    CallsSummarised = 15,
}

impl RawKind {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::FuncEntry,
            2 => Self::FuncReturn,
            3 => Self::FenceWaitStart,
            4 => Self::FenceWaitEnd,
            5 => Self::ContentionBegin,
            6 => Self::ContentionEnd,
            7 => Self::MmapLockStart,
            8 => Self::MmapLockAcquired,
            9 => Self::MmapLockReleased,
            10 => Self::SyscallExitHolding,
            11 => Self::ThreadExit,
            12 => Self::ModuleLoad,
            13 => Self::ModuleFree,
            14 => Self::LockGone,
            15 => Self::CallsSummarised,
            _ => return None,
        })
    }
}

/// How the eBPF program reads a hooked function's first arguments.
/// Stable numbers (they live in `FuncDesc.arg_kind`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Record args 0..3 raw.
    Raw = 0,
    /// arg0 is a `struct ww_mutex *`, arg1 an acquire ctx (`struct ww_acquire_ctx *` or NULL).
    WwMutex = 1,
    /// arg0 is a `struct dma_resv *`.
    Resv = 2,
    /// arg0 is a `struct dma_buf *`: read its resv, ops and exp_name.
    DmaBuf = 3,
    /// arg0 is a `struct dma_buf_attachment *`: read ->dmabuf, then as DmaBuf.
    Attachment = 4,
    /// arg0 is a `struct dma_buf_export_info *`: read its resv, ops and exp_name.
    ExportInfo = 5,
    /// arg0 is a `struct dma_buf *`, arg1 a `struct dma_buf_attachment *` (ops->attach/detach).
    DmaBufThenAttachment = 6,
}

/// Flags in `FuncDesc.flags`.
pub mod func_flags {
    /// Emit an event at entry.
    pub const EMIT_ENTRY: u8 = 1;
    /// Emit an event at return (the entry args are kept per task to pair with it).
    pub const EMIT_RETURN: u8 = 2;
    /// A lock function: a successful return increments the task's held count.
    pub const LOCKS: u8 = 4;
    /// An unlock function: entry decrements the task's held count.
    pub const UNLOCKS: u8 = 8;
    /// Emit the entry only while the task already holds a hooked lock
    /// (nested acquisition: the only place a relock or an ordering can appear).
    pub const ENTRY_ONLY_NESTED: u8 = 16;
    /// Always capture a kernel stack at entry.
    pub const STACK_ALWAYS: u8 = 32;
    /// Capture a stack at entry when the task already holds a hooked lock.
    pub const STACK_NESTED: u8 = 64;
    /// With LOCKS: success is `ret == 1` (trylock), not `ret == 0`.
    pub const TRYLOCK: u8 = 128;
}

/// Bits of `RawEvent.buf_flags`.
pub mod buf_flags {
    /// The call's attachment has `importer_ops` (a dynamic importer).
    pub const DYNAMIC_IMPORTER: u32 = 1;
    /// The buffer's exporter implements `pin` (a dynamic exporter).
    pub const DYNAMIC_EXPORTER: u32 = 2;
}

/// Per-function descriptor, keyed by the function's address in the `FUNCS` map.
/// User space fills it from the hook table before attaching.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FuncDesc {
    /// Hook id (index into user space's hook table; stable for a recording).
    pub hook: u16,
    pub arg_kind: u8,
    pub flags: u8,
    pub _pad: u32,
}

/// Slots of the direct-mapped function table (map `FUNC_SLOTS`): an array
/// lookup, which the verifier inlines, finds most functions' descriptors
/// without hashing; `FUNCS` (a hash map) holds every function, for the ones
/// whose slot another function took.
pub const FUNC_SLOTS: u32 = 4096;

/// One `FUNC_SLOTS` entry: the descriptor of the function at `ip`, or `ip == 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FuncSlot {
    pub ip: u64,
    pub desc: FuncDesc,
    /// fentry/fexit only: 1 + the index of the word above the program's
    /// context that holds the return address into the traced function (the
    /// word after it is the call site). 0 until the eBPF side has found it;
    /// the trampoline's layout is fixed per function, so it is searched for
    /// once, not on every call.
    pub caller_word: u32,
    pub _pad: u32,
}

/// The `FUNC_SLOTS` index of a function address (a kprobe's or a tracing
/// program's view of it: the symbol, or 4 bytes past it after an ENDBR, which
/// land in different slots).
#[inline(always)]
pub fn func_slot(ip: u64) -> u32 {
    (ip ^ (ip >> 12)) as u32 & (FUNC_SLOTS - 1)
}

/// Configuration read by every program (map `CONFIG`, index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `offsetof(struct dma_buf, resv)`.
    pub dma_buf_resv: u32,
    /// `offsetof(struct dma_buf, ops)`.
    pub dma_buf_ops: u32,
    /// `offsetof(struct dma_buf, exp_name)` (a `const char *`).
    pub dma_buf_exp_name: u32,
    /// `offsetof(struct dma_buf_attachment, dmabuf)`.
    pub attachment_dmabuf: u32,
    /// `offsetof(struct dma_buf_export_info, ops)`.
    pub export_info_ops: u32,
    /// `offsetof(struct dma_buf_export_info, resv)`.
    pub export_info_resv: u32,
    /// `offsetof(struct dma_buf_export_info, exp_name)`.
    pub export_info_exp_name: u32,
    /// Tracer's own tgid: its events are dropped in the kernel.
    pub self_tgid: u32,
    /// 1: capture stacks on every function event, ignoring the flags.
    pub stack_all: u32,
    /// 1: emit every ww_mutex lock entry, not only nested ones (full stream).
    pub full_stream: u32,
    /// `offsetof(struct dma_buf_attachment, importer_ops)` (non-NULL: dynamic importer).
    pub attachment_importer_ops: u32,
    /// `offsetof(struct dma_buf_ops, pin)` (non-NULL: dynamic exporter).
    pub ops_pin: u32,
    /// 1: every lone acquisition reads its call site, whatever the thread's
    /// `TaskFrames::lone_sites` says (`--lone-sites`).
    pub lone_sites_always: u32,
    /// 1 once every hook is attached: until then the programs send nothing
    /// and keep no state (hooks go live one by one; a lock taken before its
    /// unlock hook was live would stay "held" forever).
    pub armed: u32,
    /// `offsetof(struct module, name)`.
    pub module_name: u32,
    /// Offset of the owner word in a `struct ww_mutex` (`base.owner`: the
    /// owning task's pointer with three flag bits), valid when `owner_check`.
    pub ww_mutex_owner: u32,
    /// 1: check held locks against their owner word before events judged
    /// against them (0 where BTF does not show a `struct mutex` owner).
    pub owner_check: u32,
    pub _pad: u32,
    /// Address of the kernel's kretprobe return trampoline
    /// (`arch_rethook_trampoline`, older `__kretprobe_trampoline`), 0 if
    /// unknown: a kretprobe's entry handler writes it over the return address,
    /// so a kprobe program that reads the return address after it finds this
    /// instead of its caller (and then must not use it as a call site).
    pub ret_trampoline: u64,
}

/// The record written to the ring buffer. 160 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawEvent {
    pub ts_ns: u64,
    pub pid_tgid: u64,
    /// `RawKind`.
    pub kind: u16,
    /// Hook id for function events, 0 otherwise.
    pub hook: u16,
    pub cpu: u32,
    /// Kernel stack id in the `STACKS` map, or negative when none was taken.
    pub stack_id: i64,
    /// Function arguments / tracepoint fields, meaning per kind and arg kind.
    pub args: [u64; 4],
    /// Return value (FuncReturn, ContentionEnd).
    pub ret: i64,
    /// The function's address (as seen by the probe).
    pub func_ip: u64,
    /// For dma-buf events: the `struct dma_buf *`, its resv and its ops, read in-kernel.
    pub dmabuf: u64,
    pub resv: u64,
    pub ops: u64,
    /// Locks the task holds per the kernel-side count (after this event for returns).
    pub held: u32,
    /// `buf_flags::*` for dma-buf events.
    pub buf_flags: u32,
    pub comm: [u8; COMM_LEN],
    pub exp_name: [u8; EXP_NAME_LEN],
}

impl RawEvent {
    pub const SIZE: usize = core::mem::size_of::<RawEvent>();

    /// Decode from bytes written by the kernel. `None` if too short.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        // SAFETY: RawEvent is repr(C), Copy, made only of integers and byte
        // arrays (every bit pattern is valid); the length was checked.
        Some(unsafe { core::ptr::read_unaligned(b.as_ptr() as *const RawEvent) })
    }
}

/// Per-task nesting of hooked function calls, to pair returns with entries
/// (kretprobes see only the return value).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Frame {
    pub func_ip: u64,
    pub args: [u64; 3],
    pub stack_id: i64,
    /// The function's descriptor, kept so the return needs no `FUNCS` lookup.
    pub desc: FuncDesc,
    /// Stack pointer at the entry (the address of the return address): the
    /// return of this call sees it 8 bytes higher, so a return pairs with
    /// its own entry even after the kernel lost a return in between.
    pub sp: u64,
}

/// A call site (return address into the caller) of a hooked function and the
/// stack id recorded the first time the thread's process called it from there.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SiteStack {
    pub caller: u64,
    /// The hooked function (one indirect call site reaches many).
    pub func: u64,
    pub stack_id: i64,
}

/// Call sites each thread remembers without a map lookup (constant indices,
/// as for `pending`).
pub const TASK_SITES: usize = 2;

/// Un-nested lock acquisitions a thread holds that were not sent yet: they are
/// sent (as their lock return, with their stack, stamped when sent) only when
/// something the analysis judges happens while they are held; a lone
/// lock/unlock pair costs no ring-buffer record at all.
/// Fixed at 2: the eBPF side addresses the slots with constant indices.
pub const MAX_PENDING: usize = 2;

/// Sent acquisitions per thread checked against their owner word (the
/// deepest nesting outside big transactions: a transaction's locks past
/// these go unchecked).
pub const SENT_LOCKS: usize = 4;

/// Flag bits in the low bits of `struct mutex`'s owner word
/// (kernel/locking/mutex.h, `MUTEX_FLAGS`, 6.1 to 7.3).
pub const MUTEX_FLAGS: u64 = 0x07;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingLock {
    pub lock: u64,
    pub ctx: u64,
    pub ret: i64,
    pub stack_id: i64,
    pub func_ip: u64,
    pub cpu: u32,
    pub hook: u16,
    pub _pad: u16,
}

/// Slots of the per-thread state (map `THREADS`, indexed by the scrambled
/// thread id with linear probing, tracer-ebpf/src/emit.rs): an array lookup,
/// which the verifier inlines, instead of hashing the thread id three times
/// per lock/unlock pair. A power of two.
pub const THREAD_SLOTS: u32 = 8192;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct TaskFrames {
    /// The pid_tgid of the thread that owns the slot, 0 when free; bit 63 set
    /// once the owner passed `sched_process_exit` (then any thread may take
    /// the slot over). Changed only by a compare-and-swap from 0 or an exited
    /// owner, and by the owner marking its exit.
    pub owner: u64,
    pub depth: u32,
    /// Locks the task holds (successful lock returns minus unlock entries).
    pub held: u32,
    pub frames: [Frame; MAX_FRAMES],
    /// How many of `pending` are in use.
    pub npending: u32,
    /// Hooked fentry/fexit calls (the dma-buf API) the thread is inside: a
    /// lock taken there is evidence (the core's own locking) and is sent.
    pub in_call: u32,
    pub pending: [PendingLock; MAX_PENDING],
    /// The thread's most recent call sites and their stacks (a loop that locks
    /// from one place finds its stack here, not in `SITES`).
    pub sites: [SiteStack; TASK_SITES],
    /// Which `sites` slot the next new call site replaces.
    pub site_next: u32,
    /// Whether the thread's lone acquisitions (kept back in the kernel) get
    /// their call site read: `LONE_SITES_ALWAYS` once one of its kept-back
    /// acquisitions was needed, otherwise how many more of them get it (from
    /// `LONE_SITE_BUDGET`; at 0 they are kept with `STACK_SKIPPED`).
    pub lone_sites: u32,
    /// Acquisitions of the thread that were lone (kept back, most never
    /// sent), saturating: reported at thread exit, so a run shows it saw lock
    /// traffic that needed no judging.
    pub lone_locks: u32,
    /// Locks user space was told this thread acquired (0 = free slot), to
    /// check against their owner word (`tracer-ebpf/src/held.rs`); more
    /// than `SENT_LOCKS` at once go unchecked.
    pub sent: [u64; SENT_LOCKS],
    /// The reservation object this thread last tore down (`dma_resv_fini`),
    /// 0 if none or re-initialised since: a lock of it is never kept back
    /// (the lock-after-fini check needs to see it).
    pub last_fini: u64,
    /// The novelty filter's state (tracer-ebpf/src/novelty.rs). `chain`: a
    /// hash of the thread's held acquisitions in order (call site's stack id
    /// and lock function of each), all under the acquire context `txn_ctx`
    /// with the lock function `txn_hook` at `txn_ip`; 0 while the held locks
    /// are not such a chain (then nothing is summarised).
    pub chain: u64,
    pub txn_ctx: u64,
    pub txn_ip: u64,
    /// The chain key of a nested acquisition whose entry was not sent (seen
    /// before), for its exit; 0 if its entry was sent.
    pub entry_key: u64,
    pub txn_hook: u16,
    /// The `SEEN` outcomes of `entry_key` (`SEEN_ACQUIRED`, `SEEN_ALREADY`).
    pub entry_seen: u16,
    /// This thread's index in `THREADS`: its kept acquisitions are
    /// `KEPT[slot * KEPT_PER_THREAD ..]`.
    pub slot: u32,
    /// Kept nested acquisitions (unsent, still held), and the live window
    /// `kept_head..kept_top` of the thread's `KEPT` entries (unlocked ones
    /// inside it are zeroed).
    pub nkept: u32,
    pub kept_head: u32,
    pub kept_top: u32,
    /// Acquisitions of the thread kept by the novelty filter and released
    /// unsent (saturating): reported at thread exit, so the engine's
    /// statistics count them.
    pub summarised: u32,
    /// The stack id (call site) of the chain's last acquisition: another
    /// one from the same site leaves the chain key as it is (as lockdep
    /// counts a class nested under its ww context once).
    pub last_stack: i64,
    /// The last chain key found in (or put into) `SEEN`, and its outcomes:
    /// a transaction that repeats finds its keys here without a hash lookup.
    pub seen_key: u64,
    pub seen_bits: u32,
    /// The call filter's state (tracer-ebpf/src/calls.rs): `QUIET_*`; the
    /// nesting level (`in_call + depth`) of the quiet call; the entries of
    /// hooked calls open inside it that were not sent (`deferred[..ndeferred]`).
    pub quiet: u32,
    pub quiet_level: u32,
    pub ndeferred: u32,
    /// 1 if the first of the `pending` acquisitions was taken inside a quiet
    /// call with no callback open (the core's own lock, as
    /// `dma_buf_dynamic_attach` takes it): sent after the deferred entries,
    /// not before. Read only while `npending > 0`.
    pub pending_in_call: u32,
    pub deferred: [DeferredCall; DEFERRED_CALLS],
}

/// Not inside a call the call filter summarises.
pub const QUIET_OFF: u32 = 0;
/// Inside a call whose entry was judged before with the same held state:
/// its entry and the entries of hooked calls inside it are deferred.
pub const QUIET_HELD: u32 = 1;
/// Inside such a call after something in it had to be sent: its deferred
/// entries went out, the rest of it is sent as usual.
pub const QUIET_SENT: u32 = 2;

/// Hooked calls open at once inside a summarised call whose entries can be
/// deferred (the call, its callback, a nested core call); one more sends
/// them. Constant indices on the eBPF side.
pub const DEFERRED_CALLS: usize = 4;

/// The entry of a hooked call not sent yet (`TaskFrames::deferred`): sent,
/// stamped then, if anything inside the call has to be.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DeferredCall {
    pub desc: FuncDesc,
    pub func_ip: u64,
    pub stack_id: i64,
    pub args: [u64; 3],
    /// `in_call + depth` inside the call: its return is the one that leaves
    /// this level.
    pub level: u32,
    /// Hooked locks held at the entry.
    pub held: u32,
}

/// Nested acquisitions each thread can keep unsent (`KEPT` entries per
/// `THREADS` slot): a transaction's locks past them are sent. A power of two.
pub const KEPT_PER_THREAD: u32 = 64;

/// A nested acquisition kept unsent by the novelty filter: its transaction
/// (context, lock function) is the thread's `txn_*`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KeptLock {
    /// 0: a free entry (unlocked).
    pub lock: u64,
    pub stack_id: i64,
}

/// `SEEN` value bits: the chain key's acquisition was sent once as a plain
/// success (0), or as -EALREADY (the context already held that lock).
pub const SEEN_ACQUIRED: u8 = 1;
pub const SEEN_ALREADY: u8 = 2;
/// A dma-buf call or callback's key (call site, buffer, held state) was sent once.
pub const SEEN_CALL: u8 = 4;

/// First hook id of the exporter and importer callbacks, found at run time;
/// ids below are the static table's (the dma-buf API, locks, resv lifetimes).
pub const FIRST_DYNAMIC_ID: u16 = 1000;

/// Entries of the `CALLS_SUMMARISED` map (indexed by hook id: calls left
/// unsent). Hook ids are below it: static ones under 1000, exporter callbacks
/// numbered from 1000 (`FIRST_DYNAMIC_ID`) up.
pub const SUMMARISED_HOOKS: u32 = 8192;

/// Entries of the `SEEN` map (chain keys of nested acquisitions already sent
/// once, LRU).
pub const SEEN_ENTRIES: u32 = 16384;

/// Hook ids of `dma_resv_init` / `dma_resv_fini` (the hook table's stable
/// ids): the programs track the thread's last fini by them.
pub const HOOK_RESV_INIT: u16 = 5;
pub const HOOK_RESV_FINI: u16 = 6;

/// How many lone acquisitions of a new thread read their call site. Past
/// them, a thread none of whose kept-back acquisitions has been needed stops
/// reading it (the read was about 140 ns of a lone lock's 377 ns exit program
/// under TCG: docs/overhead.md).
pub const LONE_SITE_BUDGET: u32 = 64;

/// `TaskFrames::lone_sites` of a thread that needed a kept-back acquisition:
/// every later one gets its call site.
pub const LONE_SITES_ALWAYS: u32 = u32::MAX;

/// `stack_id` of a lone acquisition kept back without its call site (see
/// `TaskFrames::lone_sites`). Negative like the kernel's stack-walk errors:
/// user space reads it as "no stack".
pub const STACK_SKIPPED: i64 = i64::MIN;

/// The call site a `stack_id` carries instead of a stack, if it does. A function hook
/// whose stack walk failed because the stack map's bucket held another stack (EEXIST, the
/// map is a fixed hash table) sends the return address into its caller there: a kernel
/// address, below the kernel's errno range and above `STACK_SKIPPED`, so no stack id and no
/// error reads as one.
pub fn call_site_of(stack_id: i64) -> Option<u64> {
    let addr = stack_id as u64;
    (addr >= 0xffff_8000_0000_0000 && stack_id < -4095).then_some(addr)
}

/// Bytes one kernel-memory read request returns (a `struct dma_buf_ops` is
/// well under this on every kernel seen).
pub const KMEM_LEN: usize = 256;

/// Value of the `KMEM` map: the answer to one kernel-memory read request.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KmemBuf {
    /// Address that was read.
    pub addr: u64,
    /// 1 = read ok, 2 = the kernel refused the read, 0 = never written.
    pub status: u64,
    pub data: [u8; KMEM_LEN],
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn raw_event_layout_is_stable() {
        // The recording format stores RawEvent bytes: a layout change must bump
        // the format version (tracer-core/src/events/record.rs).
        assert_eq!(RawEvent::SIZE, 160);
        assert_eq!(core::mem::size_of::<Config>(), 80);
        assert_eq!(core::mem::size_of::<FuncDesc>(), 8);
        assert_eq!(core::mem::size_of::<FuncSlot>(), 24);
    }

    #[test]
    fn only_kernel_addresses_read_as_call_sites() {
        // Kernel text and module addresses (as the eBPF side stores them in stack_id).
        for a in [0xffff_ffff_8100_0000u64, 0xffff_ffff_c0a0_105a] {
            assert_eq!(call_site_of(a as i64), Some(a));
        }
        // Stack ids, the kernel's errnos and the skipped marker are none.
        for id in [0, 1, 16383, -1, -14, -17, -4095, STACK_SKIPPED] {
            assert_eq!(call_site_of(id), None, "{id}");
        }
    }

    #[test]
    fn raw_kind_round_trips() {
        for v in 0..20u16 {
            if let Some(k) = RawKind::from_u16(v) {
                assert_eq!(k as u16, v);
            }
        }
        assert!(RawKind::from_u16(0).is_none());
    }
}

// SAFETY: plain-old-data: repr(C), Copy, integers and byte arrays only, with
// explicit padding fields, so every byte is initialised.
#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::FuncDesc {}
    unsafe impl aya::Pod for super::FuncSlot {}
    unsafe impl aya::Pod for super::KmemBuf {}
    // Only ever read from the map (`tracer record`'s `stats`), never written: any bytes the
    // kernel holds are a valid value of its integer fields.
    unsafe impl aya::Pod for super::TaskFrames {}
}
