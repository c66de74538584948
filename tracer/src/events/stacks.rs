//! Kernel stacks as the engine and the reports see them: ids from the kernel's
//! stack map, resolved to symbols once (live: from kallsyms; replay: from the
//! recording, which carries the resolved frames).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::StackId;

/// One resolved kernel frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub addr: u64,
    /// Function name, if the address resolved.
    pub symbol: Option<String>,
    /// Offset of `addr` into `symbol`.
    pub offset: u64,
    /// Module name for module text (`vgem`, `i915`), None for vmlinux.
    pub module: Option<String>,
}

impl Frame {
    /// `symbol+0xoff [module]`, or the raw address.
    pub fn display(&self) -> String {
        match (&self.symbol, &self.module) {
            (Some(s), Some(m)) => format!("{s}+{:#x} [{m}]", self.offset),
            (Some(s), None) => format!("{s}+{:#x}", self.offset),
            (None, _) => format!("{:#x}", self.addr),
        }
    }
}

/// Resolved stacks by id. Innermost frame first (as the kernel returns them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackTable {
    stacks: HashMap<StackId, Vec<Frame>>,
}

impl StackTable {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, id: StackId, frames: Vec<Frame>) {
        self.stacks.insert(id, frames);
    }
    pub fn get(&self, id: StackId) -> Option<&[Frame]> {
        self.stacks.get(&id).map(|v| v.as_slice())
    }
    pub fn contains(&self, id: StackId) -> bool {
        self.stacks.contains_key(&id)
    }
    pub fn len(&self) -> usize {
        self.stacks.len()
    }
    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&StackId, &Vec<Frame>)> {
        self.stacks.iter()
    }
}
