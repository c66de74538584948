//! The hook table: every kernel function and tracepoint the tracer hooks, what
//! it reads there and on which kernels it exists. Kernel knowledge as data;
//! `tracer probes` prints it with the running kernel's status.

use tracer_common::{func_flags as ff, ArgKind};

use serde::{Deserialize, Serialize};

use super::functions::{Callback, DmaBufFn, LockFn, INVALIDATE_MAPPINGS, MOVE_NOTIFY};

/// What a function hook means to the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "what", rename_all = "snake_case")]
pub enum HookKind {
    Lock(LockFn),
    Unlock,
    ResvInit,
    ResvFini,
    DmaBuf(DmaBufFn),
    Callback(Callback),
}

/// A statically known kernel function to hook.
#[derive(Clone, Copy, Debug)]
pub struct FuncHook {
    /// Hook id: stable, stored in events and recordings.
    pub id: u16,
    /// Kernel function name.
    pub func: &'static str,
    pub kind: HookKind,
    pub arg: ArgKind,
    pub flags: u8,
    /// Kernels where the function exists (informational; presence is checked
    /// in kallsyms at start-up).
    pub exists: &'static str,
}

/// A hook id's meaning, as recorded (static table entries and discovered callbacks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookInfo {
    pub id: u16,
    pub kind: HookKind,
    /// Kernel function hooked.
    pub symbol: String,
    pub module: Option<String>,
    pub addr: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeState {
    Attached,
    /// The function/tracepoint does not exist in this kernel.
    Absent,
    /// It exists but could not be hooked.
    Failed,
}

/// One row of `tracer probes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub hook: String,
    /// function / callback / tracepoint
    pub family: String,
    pub mechanism: String,
    pub state: ProbeState,
    pub reason: String,
}

/// First id given to dynamically discovered callbacks (exporter `dma_buf_ops`
/// members). Ids below are static table entries. (The kernel side tells a
/// callback from an API call by it.)
pub use tracer_common::FIRST_DYNAMIC_ID;

const LOCK_FLAGS: u8 =
    ff::EMIT_ENTRY | ff::ENTRY_ONLY_NESTED | ff::EMIT_RETURN | ff::LOCKS | ff::STACK_NESTED;
const TRYLOCK_FLAGS: u8 = ff::EMIT_RETURN | ff::LOCKS | ff::TRYLOCK | ff::STACK_NESTED;
const API_FLAGS: u8 = ff::EMIT_ENTRY | ff::EMIT_RETURN | ff::STACK_ALWAYS;
/// Flags for exporter/importer callbacks.
pub const CALLBACK_FLAGS: u8 = API_FLAGS;

macro_rules! api {
    ($id:expr, $f:ident, $arg:ident, $exists:expr) => {
        FuncHook {
            id: $id,
            func: DmaBufFn::$f.kernel_name(),
            kind: HookKind::DmaBuf(DmaBufFn::$f),
            arg: ArgKind::$arg,
            flags: API_FLAGS,
            exists: $exists,
        }
    };
}

pub const FUNC_HOOKS: &[FuncHook] = &[
    FuncHook {
        id: 1,
        func: "ww_mutex_lock",
        kind: HookKind::Lock(LockFn::Lock),
        arg: ArgKind::WwMutex,
        flags: LOCK_FLAGS,
        exists: "all",
    },
    FuncHook {
        id: 2,
        func: "ww_mutex_lock_interruptible",
        kind: HookKind::Lock(LockFn::LockInterruptible),
        arg: ArgKind::WwMutex,
        flags: LOCK_FLAGS,
        exists: "all",
    },
    FuncHook {
        id: 3,
        func: "ww_mutex_trylock",
        kind: HookKind::Lock(LockFn::Trylock),
        arg: ArgKind::WwMutex,
        flags: TRYLOCK_FLAGS,
        exists: "all",
    },
    FuncHook {
        id: 4,
        func: "ww_mutex_unlock",
        kind: HookKind::Unlock,
        arg: ArgKind::WwMutex,
        flags: ff::EMIT_ENTRY | ff::UNLOCKS,
        exists: "all",
    },
    FuncHook {
        id: tracer_common::HOOK_RESV_INIT,
        func: "dma_resv_init",
        kind: HookKind::ResvInit,
        arg: ArgKind::Resv,
        flags: ff::EMIT_ENTRY,
        exists: "all",
    },
    FuncHook {
        id: tracer_common::HOOK_RESV_FINI,
        func: "dma_resv_fini",
        kind: HookKind::ResvFini,
        arg: ArgKind::Resv,
        flags: ff::EMIT_ENTRY,
        exists: "all",
    },
    api!(20, Export, ExportInfo, "all"),
    api!(21, Fd, DmaBuf, "all"),
    api!(22, Get, Raw, "all"),
    api!(23, Put, DmaBuf, "all"),
    api!(24, Attach, DmaBuf, "all"),
    api!(25, DynamicAttach, DmaBuf, "all"),
    api!(26, Detach, DmaBuf, "all"),
    api!(27, Pin, Attachment, "all"),
    api!(28, Unpin, Attachment, "all"),
    api!(29, MapAttachment, Attachment, "all"),
    api!(30, UnmapAttachment, Attachment, "all"),
    api!(31, MapAttachmentUnlocked, Attachment, ">= 6.2, 6.1.53+"),
    api!(32, UnmapAttachmentUnlocked, Attachment, ">= 6.2, 6.1.53+"),
    api!(33, Vmap, DmaBuf, "all"),
    api!(34, Vunmap, DmaBuf, "all"),
    api!(35, VmapUnlocked, DmaBuf, ">= 6.2"),
    api!(36, VunmapUnlocked, DmaBuf, ">= 6.2"),
    api!(37, BeginCpuAccess, DmaBuf, "all"),
    api!(38, EndCpuAccess, DmaBuf, "all"),
    api!(39, Mmap, DmaBuf, "all"),
    api!(40, MoveNotify, DmaBuf, "<= 7.0"),
    FuncHook {
        id: 41,
        func: INVALIDATE_MAPPINGS.call,
        kind: HookKind::DmaBuf(DmaBufFn::MoveNotify),
        arg: ArgKind::DmaBuf,
        flags: API_FLAGS,
        exists: ">= 7.1 (renamed dma_buf_move_notify)",
    },
];

/// A raw tracepoint the tracer attaches (program name = eBPF function name).
#[derive(Clone, Copy, Debug)]
pub struct TracepointHook {
    pub program: &'static str,
    /// Program for the older prototype with a `memcg_path` argument (used when
    /// BTF shows one more argument than `args`), if the layout changed.
    pub older: Option<(&'static str, usize)>,
    pub tracepoint: &'static str,
    pub category: &'static str,
    pub why: &'static str,
}

pub const TRACEPOINTS: &[TracepointHook] = &[
    TracepointHook {
        program: "fence_wait_start",
        older: None,
        tracepoint: "dma_fence_wait_start",
        category: "dma_fence",
        why: "fence waits under a resv lock",
    },
    TracepointHook {
        program: "fence_wait_end",
        older: None,
        tracepoint: "dma_fence_wait_end",
        category: "dma_fence",
        why: "end of the wait",
    },
    TracepointHook {
        program: "contention_begin",
        older: None,
        tracepoint: "contention_begin",
        category: "lock",
        why: "other kernel locks taken under a resv lock",
    },
    TracepointHook {
        program: "contention_end",
        older: None,
        tracepoint: "contention_end",
        category: "lock",
        why: "end of contention",
    },
    TracepointHook {
        program: "mmap_lock_start",
        older: Some(("mmap_lock_start_memcg", 3)),
        tracepoint: "mmap_lock_start_locking",
        category: "mmap_lock",
        why: "resv -> mmap_lock inversions",
    },
    TracepointHook {
        program: "mmap_lock_acquired",
        older: Some(("mmap_lock_acquired_memcg", 4)),
        tracepoint: "mmap_lock_acquire_returned",
        category: "mmap_lock",
        why: "mmap_lock held",
    },
    TracepointHook {
        program: "mmap_lock_released",
        older: Some(("mmap_lock_released_memcg", 3)),
        tracepoint: "mmap_lock_released",
        category: "mmap_lock",
        why: "mmap_lock released",
    },
    TracepointHook {
        program: "sys_exit",
        older: None,
        tracepoint: "sys_exit",
        category: "raw_syscalls",
        why: "locks held on return to user space",
    },
    TracepointHook {
        program: "thread_exit",
        older: None,
        tracepoint: "sched_process_exit",
        category: "sched",
        why: "marks the thread's state for takeover (sends what it still held first)",
    },
    TracepointHook {
        program: "module_load",
        older: None,
        tracepoint: "module_load",
        category: "module",
        why: "a driver loaded after the start: its dma-buf ops are hooked",
    },
    TracepointHook {
        program: "module_free",
        older: None,
        tracepoint: "module_free",
        category: "module",
        why: "a module unloaded: its hooks are forgotten",
    },
];

/// `struct dma_buf_ops` members hooked as exporter callbacks, and
/// `struct dma_buf_attach_ops` members hooked as importer callbacks.
pub const EXPORTER_CALLBACKS: &[(Callback, ArgKind)] = &[
    (Callback::Attach, ArgKind::DmaBufThenAttachment),
    (Callback::Detach, ArgKind::DmaBufThenAttachment),
    (Callback::Pin, ArgKind::Attachment),
    (Callback::Unpin, ArgKind::Attachment),
    (Callback::MapDmaBuf, ArgKind::Attachment),
    (Callback::UnmapDmaBuf, ArgKind::Attachment),
    (Callback::Release, ArgKind::DmaBuf),
    (Callback::BeginCpuAccess, ArgKind::DmaBuf),
    (Callback::EndCpuAccess, ArgKind::DmaBuf),
    (Callback::Mmap, ArgKind::DmaBuf),
    (Callback::Vmap, ArgKind::DmaBuf),
    (Callback::Vunmap, ArgKind::DmaBuf),
];

/// Data symbols (from kallsyms) whose names suggest a `struct dma_buf_ops`;
/// candidates are validated by their contents before any hook is attached.
pub fn looks_like_dma_buf_ops(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    (n.contains("dmabuf") || n.contains("dma_buf") || n.contains("heap_buf") || n.contains("prime"))
        && n.ends_with("_ops")
        && !n.contains("attach_ops")
        && !n.contains("fence")
}

/// Data symbols whose names suggest an importer's `struct dma_buf_attach_ops`
/// (amdgpu_dma_buf_attach_ops, xe_dma_buf_attach_ops, virtgpu_dma_buf_attach_ops,
/// ...): validated by their contents (the notifier member must point at a
/// function) before a hook is attached.
pub fn looks_like_dma_buf_attach_ops(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with("attach_ops")
        && (n.contains("dmabuf")
            || n.contains("dma_buf")
            || n.contains("prime")
            || n.contains("importer")
            || n.contains("umem"))
}

/// The importer notifier's member in `struct dma_buf_attach_ops`, by kernel:
/// `move_notify` up to 7.0, `invalidate_mappings` from 7.1.
/// The kretprobe return trampoline, by kernel: `arch_rethook_trampoline`
/// (x86 since 5.19, kretprobes on rethook), `__kretprobe_trampoline` (5.15-5.18)
/// and `kretprobe_trampoline` (older). A kretprobe writes its address over the
/// probed function's return address at entry (arch/x86/kernel/rethook.c,
/// `arch_rethook_prepare`).
pub const RET_TRAMPOLINES: [&str; 3] = [
    "arch_rethook_trampoline",
    "__kretprobe_trampoline",
    "kretprobe_trampoline",
];

pub const ATTACH_OPS_NOTIFY_MEMBERS: [&str; 2] = [MOVE_NOTIFY.member, INVALIDATE_MAPPINGS.member];

pub fn func_hook_by_id(id: u16) -> Option<&'static FuncHook> {
    FUNC_HOOKS.iter().find(|h| h.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn importer_attach_ops_names() {
        for n in [
            "amdgpu_dma_buf_attach_ops",
            "xe_dma_buf_attach_ops",
            "virtgpu_dma_buf_attach_ops",
            "tsc_importer_attach_ops",
        ] {
            assert!(looks_like_dma_buf_attach_ops(n), "{n}");
            assert!(!looks_like_dma_buf_ops(n), "{n} is not an exporter table");
        }
        assert!(!looks_like_dma_buf_attach_ops("amdgpu_dmabuf_ops"));
        assert!(!looks_like_dma_buf_attach_ops("iommu_attach_ops_foo"));
    }

    /// The ww_mutex entry program (lock_tracing.rs) drops an un-nested lock
    /// entry before reading the function's descriptor: that is only right while
    /// no lock function asks for its un-nested entries.
    #[test]
    fn no_lock_function_sends_un_nested_entries() {
        for h in FUNC_HOOKS {
            if matches!(h.kind, HookKind::Lock(_)) {
                assert!(
                    h.flags & ff::EMIT_ENTRY == 0 || h.flags & ff::ENTRY_ONLY_NESTED != 0,
                    "{}",
                    h.func
                );
            }
        }
    }

    #[test]
    fn hook_ids_and_names_are_unique() {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for h in FUNC_HOOKS {
            assert!(ids.insert(h.id), "duplicate id {}", h.id);
            assert!(names.insert(h.func), "duplicate function {}", h.func);
            assert!(h.id < FIRST_DYNAMIC_ID);
        }
    }

    #[test]
    fn every_dma_buf_fn_is_hooked() {
        for f in DmaBufFn::ALL {
            assert!(
                FUNC_HOOKS.iter().any(|h| h.kind == HookKind::DmaBuf(f)),
                "{f:?} missing from the hook table"
            );
        }
    }

    #[test]
    fn ops_name_heuristic() {
        assert!(looks_like_dma_buf_ops("udmabuf_ops"));
        assert!(looks_like_dma_buf_ops("drm_gem_prime_dmabuf_ops"));
        assert!(looks_like_dma_buf_ops("system_heap_buf_ops"));
        assert!(looks_like_dma_buf_ops("tsc_relock_pin_dmabuf_ops"));
        assert!(!looks_like_dma_buf_ops("dma_fence_array_ops"));
        assert!(!looks_like_dma_buf_ops("amdgpu_dma_buf_attach_ops"));
    }
}
