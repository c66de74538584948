//! The kernel functions the tracer tells apart, and their kernel names (the one place
//! each is spelled, with its renames across kernel versions).

use serde::{Deserialize, Serialize};

/// The names of the move notification, which 7.1 renamed: the exporter's call into the
/// dma-buf core, and the importer callback it invokes (`dma_buf_attach_ops` member).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifyNames {
    pub call: &'static str,
    pub member: &'static str,
}

/// Up to 7.0.
pub const MOVE_NOTIFY: NotifyNames = NotifyNames {
    call: "dma_buf_move_notify",
    member: "move_notify",
};
/// From 7.1 (`DmaBufFn::MoveNotify` and `Callback::MoveNotify` under their new names).
pub const INVALIDATE_MAPPINGS: NotifyNames = NotifyNames {
    call: "dma_buf_invalidate_mappings",
    member: "invalidate_mappings",
};

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

impl LockFn {
    /// The kernel function: the one place an entry point is named.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Self::Lock => "ww_mutex_lock",
            Self::LockInterruptible => "ww_mutex_lock_interruptible",
            Self::Trylock => "ww_mutex_trylock",
        }
    }

    /// One word for tables (the live view's held locks).
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::LockInterruptible => "interruptible",
            Self::Trylock => "trylock",
        }
    }
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
            Self::MoveNotify => MOVE_NOTIFY.call,
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
            Self::MoveNotify => MOVE_NOTIFY.member,
        }
    }
}
