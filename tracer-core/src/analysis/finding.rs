//! What the engine reports. Field names are part of the JSON schema
//! (docs/findings.md): add fields, never rename them.

use serde::{Deserialize, Serialize};

pub use super::kinds::{FindingKind, Severity};
use crate::events::{LockFn, StackId};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskRef {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferRef {
    pub exp_name: String,
    pub dmabuf: u64,
    pub resv: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRef {
    /// `dma_buf_ops` member (`pin`, `map_dma_buf`, ...).
    pub member: String,
    /// The driver function hooked (`radeon_gem_prime_pin`).
    pub symbol: String,
    /// Not hooked (a module loaded after the tracer started, a table the
    /// tracer did not find): told from the stack, as the function the dma-buf
    /// core called. `member` is then the callback that core function invokes
    /// (`pin or map_dma_buf` where it invokes more than one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_stack: bool,
}

/// One lock as a report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRef {
    pub addr: u64,
    /// Distinguishes objects that reused the address (0 = not a known resv).
    pub generation: u64,
    pub class: String,
    /// Acquire context (0 = none).
    pub ctx: u64,
    /// How it was (or is being) acquired.
    pub func: Option<LockFn>,
    /// When it was acquired (held locks only).
    pub since_ns: Option<u64>,
    /// Acquisition stack.
    pub stack: Option<StackId>,
}

/// One "A held while acquiring B" link of an inversion chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub from: String,
    pub to: String,
    /// True for the order `dma_resv_lockdep()` primes at boot (no task, no stacks).
    pub primed: bool,
    pub task: Option<TaskRef>,
    pub ts_ns: u64,
    pub from_lock: u64,
    pub from_stack: Option<StackId>,
    pub to_lock: u64,
    pub to_stack: Option<StackId>,
}

/// One dependency chain of an inversion (a path in the graph).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub links: Vec<ChainLink>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable kind id (`exporter-relock`, ...).
    pub id: FindingKind,
    /// Which rule of the kind (`second-ctx`, `no-backoff`, `convention`, ...);
    /// absent for kinds with one rule.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    pub severity: Severity,
    /// Lockdep-style title.
    pub title: String,
    /// What happened, specific to this occurrence.
    pub explanation: String,
    /// What to do.
    pub advice: String,
    /// The code location used for deduplication: the innermost non-locking
    /// symbol of the relevant stack, or hook/function + exporter name.
    pub location: String,
    /// The task of the first occurrence.
    pub task: TaskRef,
    /// Every task seen with this finding (capped, see `tasks_truncated`).
    pub tasks: Vec<TaskRef>,
    pub tasks_truncated: bool,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    pub count: u64,
    pub buffer: Option<BufferRef>,
    /// The dma-buf API function involved (kernel name).
    pub function: Option<String>,
    pub callback: Option<CallbackRef>,
    /// The lock being acquired / waited under / at fault.
    pub lock: Option<LockRef>,
    /// Locks the task held at the first occurrence.
    pub held_locks: Vec<LockRef>,
    /// The offending stack (the attempt, the call, the wait).
    pub stack: Option<StackId>,
    /// Other relevant stacks (callback entry, API call entry, held-lock acquisitions).
    pub other_stacks: Vec<StackId>,
    /// For inversions: the new dependency and the existing one(s) it closes a cycle with.
    pub chains: Vec<Chain>,
}

/// Tasks recorded per finding; more are counted in `count` only.
pub const MAX_TASKS_PER_FINDING: usize = 16;
