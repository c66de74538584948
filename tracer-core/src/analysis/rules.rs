//! The dma-buf locking convention as data: for every dma-buf API function and
//! every `dma_buf_ops` callback, what the kernel requires of the reservation
//! lock (`dmabuf->resv`), per convention era.
//!
//! Kept as a table so it can be reviewed like documentation and printed by
//! `tracer rules`; the checks only ask `fn_rule` / `callback_rule`. Sources:
//! shared docs `dma-buf-rules-by-version.md` (6.1, 6.2, 6.6, 6.12, 7.2 read
//! from source or patch diffs).

use crate::kernel::functions::{INVALIDATE_MAPPINGS, MOVE_NOTIFY};
use serde::{Deserialize, Serialize};

use crate::events::{Callback, DmaBufFn};

/// A span of kernels that share one locking convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Era {
    /// Before 6.2 (Debian bookworm's 6.1): map/unmap assert the lock only for
    /// dynamic attachments, vmap is guarded by an internal mutex.
    Pre6_2,
    /// 6.2 - 6.5: the convention is universal; the core holds the lock around `ops->mmap`.
    V6_2,
    /// 6.6 - 6.15: `ops->mmap` is invoked unlocked again.
    V6_6,
    /// 6.16 and later: attach no longer pins/maps (pin moves to map time).
    V6_16,
}

impl Era {
    pub const ALL: [Era; 4] = [Era::Pre6_2, Era::V6_2, Era::V6_6, Era::V6_16];

    /// Human range of kernels this era covers.
    pub fn range(self) -> &'static str {
        match self {
            Era::Pre6_2 => "< 6.2",
            Era::V6_2 => "6.2 - 6.5",
            Era::V6_6 => "6.6 - 6.15",
            Era::V6_16 => ">= 6.16",
        }
    }

    fn lower(self) -> &'static str {
        match self {
            Era::Pre6_2 => "",
            Era::V6_2 => "6.2",
            Era::V6_6 => "6.6",
            Era::V6_16 => "6.16",
        }
    }

    fn upper_exclusive(self) -> Option<&'static str> {
        match self {
            Era::Pre6_2 => Some("6.2"),
            Era::V6_2 => Some("6.6"),
            Era::V6_6 => Some("6.16"),
            Era::V6_16 => None,
        }
    }
}

/// The convention the running kernel follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Convention {
    pub era: Era,
    /// 7.1+ names the exporter-side notifier `dma_buf_invalidate_mappings`
    /// (and the importer callback `invalidate_mappings`); the rule is the same.
    pub invalidate_mappings: bool,
}

impl Convention {
    pub const fn new(era: Era) -> Self {
        Convention {
            era,
            invalidate_mappings: false,
        }
    }

    /// Kernel name of `DmaBufFn::MoveNotify` under this convention.
    pub fn move_notify_name(&self) -> &'static str {
        if self.invalidate_mappings {
            INVALIDATE_MAPPINGS.call
        } else {
            MOVE_NOTIFY.call
        }
    }

    /// The struct member a callback is under this convention
    /// (`invalidate_mappings` for the importer notifier from 7.1).
    pub fn callback_member(&self, cb: Callback) -> &'static str {
        if cb == Callback::MoveNotify && self.invalidate_mappings {
            INVALIDATE_MAPPINGS.member
        } else {
            cb.member()
        }
    }

    /// `dma_buf_ops.<member>` (exporter) or `dma_buf_attach_ops.<member>`
    /// (importer) of a callback under this convention.
    pub fn callback_name(&self, cb: Callback) -> String {
        if cb == Callback::MoveNotify {
            format!("dma_buf_attach_ops.{}", self.callback_member(cb))
        } else {
            format!("dma_buf_ops.{}", cb.member())
        }
    }

    /// Kernel name of a dma-buf API function under this convention.
    pub fn fn_name(&self, f: DmaBufFn) -> &'static str {
        match f {
            DmaBufFn::MoveNotify => self.move_notify_name(),
            f => f.kernel_name(),
        }
    }
}

impl Default for Convention {
    /// The lab's default kernel (bookworm-backports 6.12).
    fn default() -> Self {
        Convention::new(Era::V6_6)
    }
}

/// Parses `major.minor` from a release string such as `6.1.0-28-amd64` or `7.2.13`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

fn era_of_version(major: u32, minor: u32) -> Era {
    match (major, minor) {
        (m, _) if m < 6 => Era::Pre6_2,
        (6, n) if n < 2 => Era::Pre6_2,
        (6, n) if n < 6 => Era::V6_2,
        (6, n) if n < 16 => Era::V6_6,
        _ => Era::V6_16,
    }
}

/// Detects the convention. Symbol presence wins over the version string,
/// because distribution kernels backport (6.1.53+ has the attachment
/// `_unlocked` variants but not `dma_buf_vmap_unlocked`) and custom kernels
/// carry arbitrary release strings.
pub fn detect(kernel_release: &str, has_symbol: impl Fn(&str) -> bool) -> Convention {
    let version = parse_release(kernel_release);
    if has_symbol(INVALIDATE_MAPPINGS.call) {
        // The rename landed in 7.1: later than every era boundary.
        return Convention {
            era: Era::V6_16,
            invalidate_mappings: true,
        };
    }
    if has_symbol("dma_buf_vmap_unlocked") {
        // >= 6.2; the version string can only refine within that.
        let era = match version.map(|(a, b)| era_of_version(a, b)) {
            Some(Era::Pre6_2) | None => Era::V6_6,
            Some(e) => e,
        };
        // A >= 7.1 release string without the renamed symbol: trust the symbol
        // table for the name, the version for the era.
        return Convention {
            era,
            invalidate_mappings: false,
        };
    }
    if has_symbol("dma_buf_vmap") {
        // The lookup works (dma_buf_vmap exists in every era) and the 6.2
        // symbol is absent: an old convention whatever the string says.
        return Convention::new(Era::Pre6_2);
    }
    // No symbol information at all: the version string is all we have.
    match version {
        Some((a, b)) => {
            let era = era_of_version(a, b);
            Convention {
                era,
                invalidate_mappings: a > 7 || (a == 7 && b >= 1),
            }
        }
        None => Convention::default(),
    }
}

/// What the caller of a dma-buf API function must do with `dmabuf->resv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FnReq {
    /// `dma_resv_assert_held()` in the function.
    MustHold,
    /// The function takes the lock itself: holding it self-deadlocks.
    MustNotHold,
    /// The documented convention says to call without the lock, but the
    /// function does not take it (export, fd, get, put: the last put runs
    /// `ops->release`, invoked unlocked).
    ShouldNotHold,
    /// No rule in this era (or one the tracer cannot evaluate, see the note).
    None,
    /// The function does not exist in this era.
    Absent,
    /// MustHold for a dynamic importer's attachment, no rule otherwise (6.1's map/unmap).
    MustHoldIfDynamic,
}

/// The lock state the core guarantees when it invokes a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CbReq {
    /// The core (or the caller) holds the lock: the callback must not take it.
    InvokedLocked,
    /// Invoked without the lock: the callback may take it.
    InvokedUnlocked,
    /// Depends on the caller: no rule.
    Varies,
    /// Locked for a dynamic attachment or exporter, and under the `_unlocked`
    /// wrappers (6.1's map_dma_buf/unmap_dma_buf): judged locked when the task holds it.
    LockedIfDynamic,
}

/// One row of the rule table: a requirement per era.
#[derive(Clone, Copy, Debug)]
struct FnSpec {
    f: DmaBufFn,
    /// Indexed by `Era as usize`.
    req: [FnReq; 4],
    note: &'static str,
}

#[derive(Clone, Copy, Debug)]
struct CbSpec {
    cb: Callback,
    req: [CbReq; 4],
    note: &'static str,
}

use CbReq::{InvokedLocked as L, InvokedUnlocked as U, LockedIfDynamic as LD, Varies as V};
use FnReq::{
    Absent as A, MustHold as H, MustHoldIfDynamic as HD, MustNotHold as N, None as X,
    ShouldNotHold as C,
};

const PRE62_MAP_NOTE: &str = "before 6.2 the lock is asserted only for a dynamic importer \
     (attach->importer_ops, read in-kernel with the call); a static importer of a pin-capable \
     exporter gets the sg_table cached at attach time, before any assert";

const FN_TABLE: [FnSpec; 21] = [
    FnSpec {
        f: DmaBufFn::Export,
        req: [X, C, C, C],
        note: "documented convention (6.2+); takes no lock",
    },
    FnSpec {
        f: DmaBufFn::Fd,
        req: [X, C, C, C],
        note: "documented convention (6.2+); takes no lock",
    },
    FnSpec {
        f: DmaBufFn::Get,
        req: [X, C, C, C],
        note: "documented convention (6.2+); takes no lock",
    },
    FnSpec {
        f: DmaBufFn::Put,
        req: [X, C, C, C],
        note: "documented convention (6.2+); takes no lock itself, but the last put runs ops->release, invoked unlocked",
    },
    FnSpec {
        f: DmaBufFn::Attach,
        req: [N, N, N, N],
        note: "takes the lock itself",
    },
    FnSpec {
        f: DmaBufFn::DynamicAttach,
        req: [N, N, N, N],
        note: "takes the lock itself",
    },
    FnSpec {
        f: DmaBufFn::Detach,
        req: [N, N, N, N],
        note: "takes the lock itself",
    },
    FnSpec {
        f: DmaBufFn::Pin,
        req: [H, H, H, H],
        note: "dma_resv_assert_held",
    },
    FnSpec {
        f: DmaBufFn::Unpin,
        req: [H, H, H, H],
        note: "dma_resv_assert_held",
    },
    FnSpec {
        f: DmaBufFn::MapAttachment,
        req: [HD, H, H, H],
        note: PRE62_MAP_NOTE,
    },
    FnSpec {
        f: DmaBufFn::UnmapAttachment,
        req: [HD, H, H, H],
        note: PRE62_MAP_NOTE,
    },
    FnSpec {
        f: DmaBufFn::MapAttachmentUnlocked,
        req: [N, N, N, N],
        note: "takes the lock itself; before 6.2 only in 6.1.53+ stable",
    },
    FnSpec {
        f: DmaBufFn::UnmapAttachmentUnlocked,
        req: [N, N, N, N],
        note: "takes the lock itself; before 6.2 only in 6.1.53+ stable",
    },
    FnSpec {
        f: DmaBufFn::Vmap,
        req: [X, H, H, H],
        note: "before 6.2 guarded by dmabuf->lock, not the resv",
    },
    FnSpec {
        f: DmaBufFn::Vunmap,
        req: [X, H, H, H],
        note: "before 6.2 guarded by dmabuf->lock, not the resv",
    },
    FnSpec {
        f: DmaBufFn::VmapUnlocked,
        req: [A, N, N, N],
        note: "takes the lock itself (new in 6.2)",
    },
    FnSpec {
        f: DmaBufFn::VunmapUnlocked,
        req: [A, N, N, N],
        note: "takes the lock itself (new in 6.2)",
    },
    FnSpec {
        f: DmaBufFn::BeginCpuAccess,
        req: [N, N, N, N],
        note: "might_lock(resv)",
    },
    FnSpec {
        f: DmaBufFn::EndCpuAccess,
        req: [N, N, N, N],
        note: "might_lock(resv)",
    },
    FnSpec {
        f: DmaBufFn::Mmap,
        req: [X, N, N, N],
        note: "6.2-6.5 take the lock around ops->mmap; 6.6+ invoke ops->mmap unlocked, and exporters lock there",
    },
    FnSpec {
        f: DmaBufFn::MoveNotify,
        req: [H, H, H, H],
        note: "exporter side; dma_buf_invalidate_mappings from 7.1",
    },
];

const CB_TABLE: [CbSpec; 13] = [
    CbSpec {
        cb: Callback::Attach,
        req: [U, U, U, U],
        note: "",
    },
    CbSpec {
        cb: Callback::Detach,
        req: [U, U, U, U],
        note: "",
    },
    CbSpec {
        cb: Callback::Pin,
        req: [L, L, L, L],
        note: "",
    },
    CbSpec {
        cb: Callback::Unpin,
        req: [L, L, L, L],
        note: "",
    },
    CbSpec {
        cb: Callback::MapDmaBuf,
        req: [LD, L, L, L],
        note: "before 6.2 locked only for dynamic attachments",
    },
    CbSpec {
        cb: Callback::UnmapDmaBuf,
        req: [LD, L, L, L],
        note: "before 6.2 locked only for dynamic attachments",
    },
    CbSpec {
        cb: Callback::Release,
        req: [U, U, U, U],
        note: "",
    },
    CbSpec {
        cb: Callback::BeginCpuAccess,
        req: [U, U, U, U],
        note: "",
    },
    CbSpec {
        cb: Callback::EndCpuAccess,
        req: [U, U, U, U],
        note: "",
    },
    CbSpec {
        cb: Callback::Mmap,
        req: [U, L, U, U],
        note: "6.2-6.5 hold the lock around ops->mmap",
    },
    CbSpec {
        cb: Callback::Vmap,
        req: [V, L, L, L],
        note: "before 6.2 under dmabuf->lock; the resv state is the caller's",
    },
    CbSpec {
        cb: Callback::Vunmap,
        req: [V, L, L, L],
        note: "before 6.2 under dmabuf->lock; the resv state is the caller's",
    },
    CbSpec {
        cb: Callback::MoveNotify,
        req: [L, L, L, L],
        note: "importer callback (invalidate_mappings from 7.1)",
    },
];

/// The requirement on the caller of `f` under `conv`.
pub fn fn_rule(conv: Convention, f: DmaBufFn) -> FnReq {
    // The table is ordered like DmaBufFn::ALL; the debug assertion keeps it so.
    let spec = &FN_TABLE[f as usize];
    debug_assert_eq!(spec.f, f);
    spec.req[conv.era as usize]
}

/// The requirement on a call of `f` through an attachment whose importer is
/// (or is not) dynamic: resolves the dynamic-dependent rules of old kernels.
pub fn fn_rule_for(conv: Convention, f: DmaBufFn, dynamic_importer: bool) -> FnReq {
    match fn_rule(conv, f) {
        FnReq::MustHoldIfDynamic if dynamic_importer => FnReq::MustHold,
        FnReq::MustHoldIfDynamic => FnReq::None,
        r => r,
    }
}

/// The lock state a callback is invoked in under `conv`.
pub fn callback_rule(conv: Convention, cb: Callback) -> CbReq {
    let spec = &CB_TABLE[cb as usize];
    debug_assert_eq!(spec.cb, cb);
    spec.req[conv.era as usize]
}

/// What holding the buffer's reservation lock across a call of `f` does, for
/// a function the caller must not hold it for (the explanation of
/// `importer-holds-lock`). Sources: dma-buf.c of each lab kernel
/// (docs/findings.md, "The rules and the kernel lines behind them").
pub fn holding_consequence(conv: Convention, f: DmaBufFn) -> &'static str {
    match (f, conv.era) {
        (DmaBufFn::BeginCpuAccess | DmaBufFn::EndCpuAccess, _) => {
            "it is annotated might_lock(dmabuf->resv) (lockdep reports a caller holding it) and \
             invokes the exporter's callback, which runs unlocked and may take it"
        }
        (DmaBufFn::Mmap, Era::V6_2) => {
            "it takes that lock itself around ops->mmap, and a ww_mutex is not recursive"
        }
        (DmaBufFn::Mmap, _) => {
            "it takes no lock itself, but invokes ops->mmap unlocked and exporters take the lock \
             there (drm_gem_shmem_mmap does): holding it deadlocks with them"
        }
        (DmaBufFn::Export | DmaBufFn::Fd | DmaBufFn::Get | DmaBufFn::Put, _) => {
            "it takes no lock itself, but the dma-buf locking convention (6.2+) says to call it \
             without the reservation lock: exporters may rely on it (the last dma_buf_put runs \
             ops->release, which is invoked unlocked and may lock)"
        }
        _ => {
            "it takes that lock itself (dma_resv_lock(dmabuf->resv, NULL)), and a ww_mutex is not \
              recursive"
        }
    }
}

/// The callbacks a dma-buf core function invokes (kernel function name ->
/// callbacks), for telling from a stack which callback a driver frame is when
/// it was not hooked. `__map_dma_buf`/`__unmap_dma_buf` are static helpers that
/// may show up as frames of their own.
pub const CORE_INVOKES: &[(&str, &[Callback])] = &[
    ("dma_buf_vmap", &[Callback::Vmap]),
    ("dma_buf_vunmap", &[Callback::Vunmap]),
    ("__map_dma_buf", &[Callback::MapDmaBuf]),
    ("__unmap_dma_buf", &[Callback::UnmapDmaBuf]),
    (
        "dma_buf_map_attachment",
        &[Callback::Pin, Callback::MapDmaBuf],
    ),
    (
        "dma_buf_unmap_attachment",
        &[Callback::UnmapDmaBuf, Callback::Unpin],
    ),
    ("dma_buf_pin", &[Callback::Pin]),
    ("dma_buf_unpin", &[Callback::Unpin]),
    (
        "dma_buf_dynamic_attach",
        &[Callback::Pin, Callback::MapDmaBuf],
    ),
    (MOVE_NOTIFY.call, &[Callback::MoveNotify]),
    (INVALIDATE_MAPPINGS.call, &[Callback::MoveNotify]),
    ("dma_buf_mmap", &[Callback::Mmap]),
    ("dma_buf_begin_cpu_access", &[Callback::BeginCpuAccess]),
    ("dma_buf_end_cpu_access", &[Callback::EndCpuAccess]),
];

/// The callbacks `core_fn` invokes, if it is a core function that invokes any.
pub fn core_invokes(core_fn: &str) -> Option<&'static [Callback]> {
    CORE_INVOKES
        .iter()
        .find(|(f, _)| *f == core_fn)
        .map(|(_, cbs)| *cbs)
}

/// One printable row (for `tracer rules`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRow {
    /// "function" (importer/exporter API) or "callback" (`dma_buf_ops` member).
    pub kind: String,
    /// Kernel function name or `dma_buf_ops.member`.
    pub item: String,
    /// Human requirement.
    pub requirement: String,
    /// Kernels over which this requirement holds unchanged, e.g. "6.2 - 6.5" or ">= 6.6".
    pub kernels: String,
    pub note: String,
}

/// The contiguous span of eras around `era` for which `same(e)` holds, as a string.
fn span(era: Era, same: impl Fn(Era) -> bool) -> String {
    let i = era as usize;
    let mut lo = i;
    while lo > 0 && same(Era::ALL[lo - 1]) {
        lo -= 1;
    }
    let mut hi = i;
    while hi + 1 < Era::ALL.len() && same(Era::ALL[hi + 1]) {
        hi += 1;
    }
    let (lo, hi) = (Era::ALL[lo], Era::ALL[hi]);
    match (lo.lower(), hi.upper_exclusive()) {
        ("", None) => "all".to_string(),
        ("", Some(u)) => format!("< {u}"),
        (l, None) => format!(">= {l}"),
        (l, Some(u)) => format!("{l} - <{u}"),
    }
}

fn fn_req_text(r: FnReq) -> &'static str {
    match r {
        FnReq::MustHold => "caller MUST hold dmabuf->resv",
        FnReq::MustNotHold => "caller must NOT hold dmabuf->resv (it takes the lock)",
        FnReq::ShouldNotHold => {
            "caller should not hold dmabuf->resv (documented convention; it takes no lock)"
        }
        FnReq::None => "no rule checked",
        FnReq::Absent => "function does not exist",
        FnReq::MustHoldIfDynamic => {
            "caller MUST hold dmabuf->resv for a dynamic importer's attachment"
        }
    }
}

fn cb_req_text(r: CbReq) -> &'static str {
    match r {
        CbReq::InvokedLocked => "invoked WITH dmabuf->resv held: must not take it",
        CbReq::InvokedUnlocked => "invoked without dmabuf->resv: may take it",
        CbReq::Varies => "lock state varies (no rule checked)",
        CbReq::LockedIfDynamic => {
            "invoked WITH dmabuf->resv held for a dynamic attachment or exporter"
        }
    }
}

/// The rule table for one convention, functions first, then callbacks.
pub fn table(conv: Convention) -> Vec<RuleRow> {
    let e = conv.era as usize;
    let mut rows = Vec::with_capacity(FN_TABLE.len() + CB_TABLE.len());
    for s in FN_TABLE.iter() {
        let r = s.req[e];
        rows.push(RuleRow {
            kind: "function".into(),
            item: conv.fn_name(s.f).into(),
            requirement: fn_req_text(r).into(),
            kernels: span(conv.era, |x| s.req[x as usize] == r),
            note: s.note.into(),
        });
    }
    for s in CB_TABLE.iter() {
        let r = s.req[e];
        rows.push(RuleRow {
            kind: "callback".into(),
            item: conv.callback_name(s.cb),
            requirement: cb_req_text(r).into(),
            kernels: span(conv.era, |x| s.req[x as usize] == r),
            note: s.note.into(),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_in_enum_order() {
        for (i, f) in DmaBufFn::ALL.iter().enumerate() {
            assert_eq!(FN_TABLE[i].f, *f);
        }
        for (i, c) in Callback::ALL.iter().enumerate() {
            assert_eq!(CB_TABLE[i].cb, *c);
        }
    }

    #[test]
    fn detect_prefers_symbols_over_version() {
        // Debian 6.1 with the 6.1.53 backport: attachment _unlocked exist, vmap_unlocked does not.
        let c = detect("6.1.0-28-amd64", |s| {
            matches!(s, "dma_buf_vmap" | "dma_buf_map_attachment_unlocked")
        });
        assert_eq!(c.era, Era::Pre6_2);
        // A custom kernel claiming 6.1 but with the 6.2 API.
        let c = detect("6.1.99-custom", |s| {
            matches!(s, "dma_buf_vmap" | "dma_buf_vmap_unlocked")
        });
        assert_eq!(c.era, Era::V6_6);
        let c = detect("6.12.95+bpo-amd64", |s| {
            matches!(s, "dma_buf_vmap" | "dma_buf_vmap_unlocked")
        });
        assert_eq!(c.era, Era::V6_6);
        let c = detect("6.3.0", |s| {
            matches!(s, "dma_buf_vmap" | "dma_buf_vmap_unlocked")
        });
        assert_eq!(c.era, Era::V6_2);
        let c = detect("weird", |s| s == "dma_buf_invalidate_mappings");
        assert_eq!(
            c,
            Convention {
                era: Era::V6_16,
                invalidate_mappings: true
            }
        );
        // Version only (no symbol access).
        assert_eq!(detect("6.1.0", |_| false).era, Era::Pre6_2);
        assert_eq!(detect("6.17.1", |_| false).era, Era::V6_16);
        assert!(detect("7.2.13", |_| false).invalidate_mappings);
    }

    #[test]
    fn rules_differ_by_era() {
        let old = Convention::new(Era::Pre6_2);
        let new = Convention::new(Era::V6_6);
        assert_eq!(fn_rule(old, DmaBufFn::Vmap), FnReq::None);
        assert_eq!(fn_rule(new, DmaBufFn::Vmap), FnReq::MustHold);
        assert_eq!(
            fn_rule(old, DmaBufFn::MapAttachment),
            FnReq::MustHoldIfDynamic
        );
        assert_eq!(
            fn_rule_for(old, DmaBufFn::MapAttachment, true),
            FnReq::MustHold
        );
        assert_eq!(
            fn_rule_for(old, DmaBufFn::MapAttachment, false),
            FnReq::None
        );
        assert_eq!(
            fn_rule_for(new, DmaBufFn::MapAttachment, false),
            FnReq::MustHold
        );
        assert_eq!(
            callback_rule(Convention::new(Era::V6_2), Callback::Mmap),
            CbReq::InvokedLocked
        );
        assert_eq!(callback_rule(new, Callback::Mmap), CbReq::InvokedUnlocked);
        assert_eq!(callback_rule(old, Callback::Pin), CbReq::InvokedLocked);
    }

    #[test]
    fn table_has_ranges_and_names() {
        let rows = table(Convention {
            era: Era::V6_16,
            invalidate_mappings: true,
        });
        let vmap = rows.iter().find(|r| r.item == "dma_buf_vmap").unwrap();
        assert_eq!(vmap.kernels, ">= 6.2");
        assert!(rows.iter().any(|r| r.item == "dma_buf_invalidate_mappings"));
        assert!(rows
            .iter()
            .any(|r| r.item == "dma_buf_attach_ops.invalidate_mappings"));
        let rows = table(Convention::new(Era::V6_2));
        let mmap = rows.iter().find(|r| r.item == "dma_buf_ops.mmap").unwrap();
        assert_eq!(mmap.kernels, "6.2 - <6.6");
        let pin = rows.iter().find(|r| r.item == "dma_buf_pin").unwrap();
        assert_eq!(pin.kernels, "all");
    }
}
