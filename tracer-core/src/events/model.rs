//! The typed event model: what the analysis engine consumes.
//!
//! Decoded from `tracer_common::RawEvent` (live or from a recording) or built
//! by hand in tests. The same model expresses the full stream (every lock
//! entry) and the filtered live stream (lock entries only while nested): the
//! engine must reach the same findings from both.

use serde::{Deserialize, Serialize};

pub use crate::kernel::functions::{Callback, DmaBufFn, LockFn};

/// Kernel stack id; resolved to frames through a `StackTable`.
pub type StackId = u32;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Kernel monotonic time (ns).
    pub ts_ns: u64,
    pub cpu: u32,
    /// Thread id (kernel `pid`).
    pub pid: u32,
    /// Process id (kernel `tgid`).
    pub tgid: u32,
    pub comm: String,
    /// Kernel stack taken at this point, when the kernel side took one.
    pub stack: Option<StackId>,
    pub kind: EventKind,
}

/// Entry or return of a hooked function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Entry,
    Return,
}

/// Fields read in-kernel from the dma_buf of a dma-buf API call or callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufRef {
    /// `struct dma_buf *` (0 if it could not be read, e.g. dma_buf_export entry).
    pub dmabuf: u64,
    /// `dmabuf->resv`: the address `ww_mutex_lock` sees for this buffer.
    pub resv: u64,
    /// `dmabuf->ops`.
    pub ops: u64,
    /// `dmabuf->exp_name` (the exporter's name), may be empty.
    pub exp_name: String,
    /// The call's attachment belongs to a dynamic importer
    /// (`attach->importer_ops`): before 6.2 `dma_buf_map_attachment` /
    /// `dma_buf_unmap_attachment` assert the lock only then (a static
    /// importer of a pin-capable exporter gets the sg_table cached at attach
    /// time, returned before any assert; docs/findings.md).
    #[serde(default, alias = "dynamic")]
    pub dynamic_importer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// Entry into a ww_mutex lock function. In the live stream only emitted
    /// while the task already holds a hooked lock (a relock or an ordering can
    /// only appear then), so the engine must not depend on seeing every one.
    /// This is the only trace of a lock attempt that blocks forever.
    LockAttempt {
        lock: u64,
        ctx: u64,
        func: LockFn,
    },
    /// Return of a ww_mutex lock function: `ret` 0 = acquired (trylock: 1 =
    /// acquired, 0 = not), -EALREADY (-114) = ctx already holds it (nothing new
    /// held), -EDEADLK (-35) = back off, -EINTR = interrupted.
    LockReturn {
        lock: u64,
        ctx: u64,
        func: LockFn,
        ret: i64,
    },
    /// `ww_mutex_unlock(lock)`.
    Unlock {
        lock: u64,
    },
    /// `dma_resv_init(resv)`: a new reservation object at this address.
    ResvInit {
        resv: u64,
    },
    /// `dma_resv_fini(resv)`: the address may be reused from now on.
    ResvFini {
        resv: u64,
    },
    /// A dma-buf API function.
    DmaBufCall {
        func: DmaBufFn,
        phase: Phase,
        buf: BufRef,
        ret: Option<i64>,
    },
    /// An exporter/importer callback (`symbol` is the hooked function, e.g. `radeon_gem_prime_pin`).
    Callback {
        cb: Callback,
        phase: Phase,
        symbol: String,
        buf: BufRef,
        ret: Option<i64>,
    },
    FenceWaitStart {
        fence: u64,
    },
    FenceWaitEnd {
        fence: u64,
    },
    /// `mmap_lock` start of locking (`acquired` = None), acquire returned (Some(success)).
    MmapLock {
        mm: u64,
        write: bool,
        acquired: Option<bool>,
    },
    MmapUnlock {
        mm: u64,
        write: bool,
    },
    ContentionBegin {
        lock: u64,
        flags: u32,
    },
    ContentionEnd {
        lock: u64,
        ret: i64,
    },
    /// Return to user space (syscall exit) while the kernel-side count says
    /// the task holds `held` hooked locks.
    SyscallExit {
        nr: i64,
        held: u32,
    },
    /// A kernel module was loaded (`module:module_load`).
    ModuleLoad {
        name: String,
    },
    /// A kernel module was freed (`module:module_free`).
    ModuleFree {
        name: String,
    },
    /// Locks the thread was seen acquiring are no longer owned by it (the
    /// kernel's owner word says so, checked before an event judged against
    /// its held locks): their unlock was not seen. Forget them.
    LockGone {
        locks: Vec<u64>,
    },
    /// The thread exited (`sched_process_exit`), holding `held` hooked locks
    /// by the kernel-side count. Its id may be reused from now on.
    ThreadExit {
        held: u32,
        /// Its acquisitions that were lone (kept back in the kernel, most never sent).
        #[serde(default)]
        lone_locks: u32,
        /// Its nested acquisitions the kernel's novelty filter kept and saw
        /// released unsent: repeats of a transaction already sent once
        /// (tracer-ebpf/src/novelty.rs).
        #[serde(default)]
        summarised: u32,
    },
    /// `count` calls of one hooked function the kernel's call filter left
    /// unsent since the last such event: each one's entry repeated a judgement
    /// already made (call site, buffer, held state), and nothing inside it had
    /// to be sent (tracer-ebpf/src/calls.rs). Written into the stream by user
    /// space after a drain of the ring (not by the kernel, and with no thread).
    CallsSummarised {
        call: SummarisedCall,
        count: u64,
    },
}

/// Which hooked function a `CallsSummarised` counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SummarisedCall {
    Api(DmaBufFn),
    Callback { cb: Callback, symbol: String },
}

pub const EALREADY: i64 = -114;
pub const EDEADLK: i64 = -35;
pub const EINTR: i64 = -4;
