//! Deduplication of findings: one `Finding` per (kind, variant, code location),
//! with a count, first/last time and the set of tasks. A repeat costs a hash
//! lookup; the finding itself is only built on first occurrence.

use crate::events::Event;

use super::finding::{Finding, FindingKind, TaskRef, MAX_TASKS_PER_FINDING};
use super::FastMap;

/// What makes two occurrences the same finding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey {
    pub kind: FindingKind,
    /// Distinguishes sub-cases of one kind (ww-protocol's "no-backoff" vs
    /// "ctx-less-nesting"); empty for most kinds.
    pub variant: &'static str,
    pub location: String,
}

#[derive(Debug, Default)]
pub struct FindingStore {
    findings: Vec<Finding>,
    index: FastMap<DedupKey, usize>,
}

impl FindingStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts an occurrence; builds and returns the finding (a clone of the
    /// stored one) only when the key is new.
    pub fn report(
        &mut self,
        key: DedupKey,
        ev: &Event,
        build: impl FnOnce() -> Finding,
    ) -> Option<Finding> {
        if let Some(&i) = self.index.get(&key) {
            let f = &mut self.findings[i];
            f.count += 1;
            f.first_ts_ns = f.first_ts_ns.min(ev.ts_ns);
            f.last_ts_ns = f.last_ts_ns.max(ev.ts_ns);
            if !f.tasks.iter().any(|t| t.pid == ev.pid) {
                if f.tasks.len() < MAX_TASKS_PER_FINDING {
                    f.tasks.push(TaskRef {
                        pid: ev.pid,
                        tgid: ev.tgid,
                        comm: ev.comm.clone(),
                    });
                } else {
                    f.tasks_truncated = true;
                }
            }
            return None;
        }
        let mut f = build();
        f.location = key.location.clone();
        f.variant = key.variant.to_string();
        f.count = 1;
        f.first_ts_ns = ev.ts_ns;
        f.last_ts_ns = ev.ts_ns;
        f.tasks = vec![f.task.clone()];
        self.index.insert(key, self.findings.len());
        self.findings.push(f.clone());
        Some(f)
    }

    pub fn all(&self) -> &[Finding] {
        &self.findings
    }

    pub fn len(&self) -> usize {
        self.findings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }
}
