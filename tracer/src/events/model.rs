//! The typed event model: what the analysis engine consumes.
//!
//! Decoded from `tracer_common::RawEvent` (live or from a recording) or built
//! by hand in tests. The same model expresses the full stream (every lock
//! entry) and the filtered live stream (lock entries only while nested): the
//! engine must reach the same findings from both.

use serde::{Deserialize, Serialize};

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

/// Which ww_mutex entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockFn {
    /// `ww_mutex_lock` (uninterruptible; `dma_resv_lock`).
    Lock,
    /// `ww_mutex_lock_interruptible` (`dma_resv_lock_interruptible`).
    LockInterruptible,
    /// `ww_mutex_trylock` (`dma_resv_trylock`); returns 1 on success, 0 on failure.
    Trylock,
}

/// Entry or return of a hooked function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Entry,
    Return,
}

/// dma-buf API functions (importer and exporter side), dma-buf-locking.md §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DmaBufFn {
    Export,
    Fd,
    Get,
    Put,
    Attach,
    DynamicAttach,
    Detach,
    Pin,
    Unpin,
    MapAttachment,
    UnmapAttachment,
    MapAttachmentUnlocked,
    UnmapAttachmentUnlocked,
    Vmap,
    Vunmap,
    VmapUnlocked,
    VunmapUnlocked,
    BeginCpuAccess,
    EndCpuAccess,
    Mmap,
    /// `dma_buf_move_notify` (<= 7.0) / `dma_buf_invalidate_mappings` (7.1+): exporter must hold.
    MoveNotify,
}

impl DmaBufFn {
    pub const ALL: [DmaBufFn; 21] = [
        Self::Export,
        Self::Fd,
        Self::Get,
        Self::Put,
        Self::Attach,
        Self::DynamicAttach,
        Self::Detach,
        Self::Pin,
        Self::Unpin,
        Self::MapAttachment,
        Self::UnmapAttachment,
        Self::MapAttachmentUnlocked,
        Self::UnmapAttachmentUnlocked,
        Self::Vmap,
        Self::Vunmap,
        Self::VmapUnlocked,
        Self::VunmapUnlocked,
        Self::BeginCpuAccess,
        Self::EndCpuAccess,
        Self::Mmap,
        Self::MoveNotify,
    ];

    /// The kernel function name (for 7.1+ MoveNotify is `dma_buf_invalidate_mappings`,
    /// see `probes::table`).
    pub const fn kernel_name(self) -> &'static str {
        match self {
            Self::Export => "dma_buf_export",
            Self::Fd => "dma_buf_fd",
            Self::Get => "dma_buf_get",
            Self::Put => "dma_buf_put",
            Self::Attach => "dma_buf_attach",
            Self::DynamicAttach => "dma_buf_dynamic_attach",
            Self::Detach => "dma_buf_detach",
            Self::Pin => "dma_buf_pin",
            Self::Unpin => "dma_buf_unpin",
            Self::MapAttachment => "dma_buf_map_attachment",
            Self::UnmapAttachment => "dma_buf_unmap_attachment",
            Self::MapAttachmentUnlocked => "dma_buf_map_attachment_unlocked",
            Self::UnmapAttachmentUnlocked => "dma_buf_unmap_attachment_unlocked",
            Self::Vmap => "dma_buf_vmap",
            Self::Vunmap => "dma_buf_vunmap",
            Self::VmapUnlocked => "dma_buf_vmap_unlocked",
            Self::VunmapUnlocked => "dma_buf_vunmap_unlocked",
            Self::BeginCpuAccess => "dma_buf_begin_cpu_access",
            Self::EndCpuAccess => "dma_buf_end_cpu_access",
            Self::Mmap => "dma_buf_mmap",
            Self::MoveNotify => "dma_buf_move_notify",
        }
    }
}

/// Exporter (`struct dma_buf_ops`) and importer (`dma_buf_attach_ops`) callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Callback {
    Attach,
    Detach,
    Pin,
    Unpin,
    MapDmaBuf,
    UnmapDmaBuf,
    Release,
    BeginCpuAccess,
    EndCpuAccess,
    Mmap,
    Vmap,
    Vunmap,
    /// Importer's `move_notify` / `invalidate_mappings`.
    MoveNotify,
}

impl Callback {
    pub const ALL: [Callback; 13] = [
        Self::Attach,
        Self::Detach,
        Self::Pin,
        Self::Unpin,
        Self::MapDmaBuf,
        Self::UnmapDmaBuf,
        Self::Release,
        Self::BeginCpuAccess,
        Self::EndCpuAccess,
        Self::Mmap,
        Self::Vmap,
        Self::Vunmap,
        Self::MoveNotify,
    ];

    /// Member name in `struct dma_buf_ops` (or `dma_buf_attach_ops`).
    pub fn member(self) -> &'static str {
        match self {
            Self::Attach => "attach",
            Self::Detach => "detach",
            Self::Pin => "pin",
            Self::Unpin => "unpin",
            Self::MapDmaBuf => "map_dma_buf",
            Self::UnmapDmaBuf => "unmap_dma_buf",
            Self::Release => "release",
            Self::BeginCpuAccess => "begin_cpu_access",
            Self::EndCpuAccess => "end_cpu_access",
            Self::Mmap => "mmap",
            Self::Vmap => "vmap",
            Self::Vunmap => "vunmap",
            Self::MoveNotify => "move_notify",
        }
    }
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
    /// The thread exited (`sched_process_exit`), holding `held` hooked locks
    /// by the kernel-side count. Its id may be reused from now on.
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
    ThreadExit {
        held: u32,
        /// Its acquisitions that were lone (kept back in the kernel, most never sent).
        #[serde(default)]
        lone_locks: u32,
    },
}

pub const EALREADY: i64 = -114;
pub const EDEADLK: i64 = -35;
pub const EINTR: i64 = -4;
