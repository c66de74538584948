//! Kernel stacks as the engine and the reports see them: ids from the kernel's
//! stack map, resolved to symbols once (live: from kallsyms; replay: from the
//! recording, which carries the resolved frames).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::StackId;
use crate::kernel::frames::is_tracing_frame;

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

/// Drops the tracing machinery's frames from a stack: the probe's own at the
/// top, and every fentry/fexit trampoline in the chain. A function hooked with
/// fentry shows up on both sides of its `bpf_trampoline_*` frame (its body,
/// which the trampoline called, above; its patched entry, which called the
/// trampoline, below): one frame, the body's, is kept. Other probe frames
/// further down (a kretprobe's `arch_rethook_trampoline` standing in for a
/// hooked callback's return address) stay.
pub fn strip_tracing(frames: Vec<Frame>) -> Vec<Frame> {
    let tracing = |f: &Frame| f.symbol.as_deref().is_some_and(is_tracing_frame);
    let trampoline = |f: &Frame| {
        f.symbol
            .as_deref()
            .is_some_and(|s| s.starts_with("bpf_trampoline_"))
    };
    let top = frames.iter().take_while(|f| tracing(f)).count();
    let mut out = Vec::with_capacity(frames.len());
    let mut i = top;
    while i < frames.len() {
        let f = &frames[i];
        if i + 2 < frames.len()
            && trampoline(&frames[i + 1])
            && f.symbol.is_some()
            && f.symbol == frames[i + 2].symbol
        {
            out.push(f.clone());
            i += 3;
            continue;
        }
        // A trampoline right at the top (the probe's, under its program).
        if out.is_empty() && trampoline(f) {
            i += 1;
            continue;
        }
        out.push(f.clone());
        i += 1;
    }
    out
}

#[cfg(test)]
mod strip_tests {
    use super::*;

    fn frame(sym: &str, offset: u64) -> Frame {
        Frame {
            addr: 0xffff_ffff_8100_0000 + offset,
            symbol: Some(sym.into()),
            offset,
            module: None,
        }
    }

    #[test]
    fn hooked_function_appears_once_below_its_trampoline() {
        // As seen on fentry kernels: the hooked function above and below its trampoline.
        let stack = vec![
            frame("bpf_prog_6deef7357e7b4530_lock_exit", 0x4a),
            frame("ww_mutex_lock", 0x5),
            frame("bpf_trampoline_6442509123", 0x6b),
            frame("ww_mutex_lock", 0x5),
            frame("drm_modeset_lock", 0x3c),
        ];
        let syms: Vec<String> = strip_tracing(stack)
            .into_iter()
            .map(|f| f.symbol.unwrap())
            .collect();
        assert_eq!(syms, ["ww_mutex_lock", "drm_modeset_lock"]);
        // A kprobe stack keeps everything under the probe frames, and a hooked
        // callback's kretprobe trampoline below the traced code stays with it.
        let stack = vec![
            frame("kprobe_ftrace_handler", 0x10),
            frame("ww_mutex_lock", 0x5),
            frame("tsc_relock_pin", 0x20),
            frame("arch_rethook_trampoline", 0x0),
            frame("dma_buf_dynamic_attach", 0x120),
        ];
        let syms: Vec<String> = strip_tracing(stack)
            .into_iter()
            .map(|f| f.symbol.unwrap())
            .collect();
        assert_eq!(
            syms,
            [
                "ww_mutex_lock",
                "tsc_relock_pin",
                "arch_rethook_trampoline",
                "dma_buf_dynamic_attach"
            ]
        );
        // A hooked API function in the middle of the chain: one frame, its body's.
        let stack = vec![
            frame("ww_mutex_lock", 0x9),
            frame("tsc_late_vmap", 0x5a),
            frame("dma_buf_vmap", 0x7c),
            frame("bpf_trampoline_6442538216", 0x84),
            frame("dma_buf_vmap", 0x9),
            frame("dma_buf_vmap_unlocked", 0x3b),
            frame("bpf_trampoline_6442538215", 0x84),
            frame("dma_buf_vmap_unlocked", 0x9),
            frame("importer_fn", 0x20),
        ];
        let got: Vec<(String, u64)> = strip_tracing(stack)
            .into_iter()
            .map(|f| (f.symbol.unwrap(), f.offset))
            .collect();
        let want = [
            ("ww_mutex_lock", 0x9),
            ("tsc_late_vmap", 0x5a),
            ("dma_buf_vmap", 0x7c),
            ("dma_buf_vmap_unlocked", 0x3b),
            ("importer_fn", 0x20),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(s, o)| (s.to_string(), *o))
                .collect::<Vec<_>>()
        );
        // No probe frame at all: untouched.
        assert_eq!(strip_tracing(vec![frame("ww_mutex_lock", 5)]).len(), 1);
    }
}
