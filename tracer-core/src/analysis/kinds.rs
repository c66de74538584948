//! The finding kinds' static descriptions (id, default severity, title, summary,
//! advice): data the checks fill findings from and the reports (SARIF rules, JUnit
//! cases, `--expect` ids) list. Kept apart from the checks so a finding can name its
//! kind without depending on the code that finds it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The finding kinds; the serialized form is the stable id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    ImporterMissingLock,
    ImporterHoldsLock,
    ExporterRelock,
    RecursiveLock,
    LockOrderInversion,
    WwProtocol,
    FenceWaitUnderResv,
    HeldAtReturnToUser,
    ResvLockAfterFini,
}

impl FindingKind {
    pub const ALL: [FindingKind; 9] = [
        FindingKind::ImporterMissingLock,
        FindingKind::ImporterHoldsLock,
        FindingKind::ExporterRelock,
        FindingKind::RecursiveLock,
        FindingKind::LockOrderInversion,
        FindingKind::WwProtocol,
        FindingKind::FenceWaitUnderResv,
        FindingKind::HeldAtReturnToUser,
        FindingKind::ResvLockAfterFini,
    ];

    pub fn id(self) -> &'static str {
        self.info().id
    }

    /// The static description of the kind (id, default severity, texts).
    pub fn info(self) -> &'static KindInfo {
        use super::kinds::*;
        match self {
            FindingKind::ImporterMissingLock => &IMPORTER_MISSING_LOCK,
            FindingKind::ImporterHoldsLock => &IMPORTER_HOLDS_LOCK,
            FindingKind::ExporterRelock => &EXPORTER_RELOCK,
            FindingKind::RecursiveLock => &RECURSIVE_LOCK,
            FindingKind::LockOrderInversion => &LOCK_ORDER_INVERSION,
            FindingKind::WwProtocol => &WW_PROTOCOL,
            FindingKind::FenceWaitUnderResv => &FENCE_WAIT_UNDER_RESV,
            FindingKind::HeldAtReturnToUser => &HELD_AT_RETURN_TO_USER,
            FindingKind::ResvLockAfterFini => &RESV_LOCK_AFTER_FINI,
        }
    }
}

/// The static description of a finding kind.
#[derive(Debug)]
pub struct KindInfo {
    pub kind: FindingKind,
    /// Stable id (JSON `id`).
    pub id: &'static str,
    pub severity: Severity,
    /// Lockdep-style title (some kinds refine it per occurrence).
    pub title: &'static str,
    /// One line: what the kind means.
    pub summary: &'static str,
    /// What to do.
    pub advice: &'static str,
}

pub const EXPORTER_RELOCK: KindInfo = KindInfo {
    kind: FindingKind::ExporterRelock,
    id: "exporter-relock",
    severity: Severity::Error,
    title: "possible recursive locking detected: dma-buf callback takes the reservation lock it is invoked with",
    summary: "an exporter callback invoked with dmabuf->resv held tries to lock it again",
    advice: "the callback runs with the buffer's reservation lock already held by the dma-buf core: \
             do not lock it again (drop the dma_resv_lock / *_bo_reserve in this path, assert it with \
             dma_resv_assert_held instead, or split a locked helper out for the callback)",
};

pub const FENCE_WAIT_UNDER_RESV: KindInfo = KindInfo {
    kind: FindingKind::FenceWaitUnderResv,
    id: "fence-wait-under-resv",
    severity: Severity::Warning,
    title: "dma_fence wait while holding a reservation lock taken uninterruptibly",
    summary:
        "a dma_fence wait while holding a reservation lock taken with uninterruptible ww_mutex_lock",
    advice: "take the reservation lock with dma_resv_lock_interruptible() and wait interruptibly \
             (dma_resv_wait_timeout(..., intr = true, ...)), or wait for the fences before taking \
             the lock; never wait without a timeout under a resv",
};

pub const HELD_AT_RETURN_TO_USER: KindInfo = KindInfo {
    kind: FindingKind::HeldAtReturnToUser,
    id: "held-at-return-to-user",
    severity: Severity::Error,
    title: "lock held when returning to user space",
    summary: "a syscall returned to user space with a ww_mutex still held",
    advice: "every dma_resv_lock()/ww_mutex_lock() on the syscall path needs its unlock on every \
             return path, error paths included (look for an early return between the lock and \
             the unlock)",
};

pub const IMPORTER_HOLDS_LOCK: KindInfo = KindInfo {
    kind: FindingKind::ImporterHoldsLock,
    id: "importer-holds-lock",
    severity: Severity::Error,
    title: "dma-buf importer called a function that takes the reservation lock while holding it",
    summary:
        "a dma-buf function that takes dmabuf->resv itself was called with it held (self-deadlock)",
    advice: "drop the reservation lock before the call, or use the locked variant \
             (dma_buf_map_attachment instead of dma_buf_map_attachment_unlocked, dma_buf_vmap \
             instead of dma_buf_vmap_unlocked); attach/detach must always be called unlocked",
};

pub const IMPORTER_MISSING_LOCK: KindInfo = KindInfo {
    kind: FindingKind::ImporterMissingLock,
    id: "importer-missing-lock",
    severity: Severity::Error,
    title:
        "dma-buf importer called a function that requires the reservation lock without holding it",
    summary: "a dma-buf function that asserts dmabuf->resv is held was called without it",
    advice:
        "take the buffer's reservation lock around the call (dma_resv_lock(dmabuf->resv, NULL) ... \
             dma_resv_unlock), or call the *_unlocked variant where one exists \
             (dma_buf_map_attachment_unlocked, dma_buf_vmap_unlocked)",
};

pub const LOCK_ORDER_INVERSION: KindInfo = KindInfo {
    kind: FindingKind::LockOrderInversion,
    id: "lock-order-inversion",
    severity: Severity::Error,
    title: "possible circular locking dependency detected",
    summary: "two code paths take the same locks in opposite orders",
    advice: "pick one order and follow it on both paths (dma-buf's primed order is mmap_lock -> \
             reservation ww ctx -> reservation ww_mutex); for several reservation objects, lock them \
             all under one ww_acquire_ctx (drm_exec) so the ww algorithm resolves the order",
};

pub const RECURSIVE_LOCK: KindInfo = KindInfo {
    kind: FindingKind::RecursiveLock,
    id: "recursive-lock",
    severity: Severity::Error,
    title: "possible recursive locking detected",
    summary: "a task tries to acquire a ww_mutex it already holds (not an -EALREADY under the same context)",
    advice: "do not lock an object the task already holds: pass the held state down (or assert it), \
             or take both locks under one ww_acquire_ctx, which turns the second lock into a \
             harmless -EALREADY",
};

pub const RESV_LOCK_AFTER_FINI: KindInfo = KindInfo {
    kind: FindingKind::ResvLockAfterFini,
    id: "resv-lock-after-fini",
    severity: Severity::Error,
    title: "reservation object locked after dma_resv_fini",
    summary: "a dma_resv was locked after its teardown (dma_resv_fini): use after free",
    advice: "finish every use of the object's reservation lock before dma_resv_fini() (and \
             before the object's release frees it): move the fini after the last \
             dma_resv_lock/unlock of the teardown, or take a reference that keeps the object \
             alive across it",
};

pub const WW_PROTOCOL: KindInfo = KindInfo {
    kind: FindingKind::WwProtocol,
    id: "ww-protocol",
    severity: Severity::Error,
    title: "wound/wait mutex protocol violation",
    summary: "ww_mutex used against its protocol (no backoff after -EDEADLK, two contexts, nesting without a context)",
    advice: "follow Documentation/locking/ww-mutex-design.rst: lock every object of a transaction with one \
             ww_acquire_ctx (drm_exec does it for you); on -EDEADLK unlock everything taken with the \
             context, ww_mutex_lock_slow() the contended lock, then retry the rest",
};
