//! The engine's configuration: the kernel's convention era, severities, caps.

use serde::{Deserialize, Serialize};

use super::{finding::Severity, rules::Convention};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    pub convention: Convention,
    /// Severity of a fence wait under a reservation lock taken uninterruptibly.
    pub fence_wait_severity: Severity,
    /// Severity of a fence wait under an interruptibly taken reservation lock
    /// (None: not reported).
    pub fence_wait_interruptible_severity: Option<Severity>,
    /// Cap on classes made for kernel locks seen only through contention events.
    pub max_other_classes: usize,
    /// Cap on remembered context-less reservation instance orderings.
    pub max_instance_orders: usize,
    /// Address of `init_mm` (0: unknown): its mmap_lock is a static lock, a
    /// lockdep class of its own; every user mm shares the other one.
    #[serde(default)]
    pub init_mm: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            convention: Convention::default(),
            fence_wait_severity: Severity::Warning,
            fence_wait_interruptible_severity: None,
            max_other_classes: 4096,
            max_instance_orders: 1 << 16,
            init_mm: 0,
        }
    }
}
