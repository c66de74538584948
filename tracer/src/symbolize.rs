//! Kernel stack symbolization (live side): blazesym over the running kernel's
//! kallsyms, with module names from our kallsyms index. Recordings carry the
//! resolved frames, so replay needs neither.

use blazesym::symbolize::{
    source::{Kernel, Source},
    Input, Symbolized, Symbolizer,
};
use blazesym::MaybeDefault;

use crate::{events::Frame, probes::kallsyms::Kallsyms};

pub struct KernelSymbolizer {
    inner: Symbolizer,
    src: Source<'static>,
}

impl Default for KernelSymbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl KernelSymbolizer {
    pub fn new() -> Self {
        // kallsyms only: a vmlinux search on a production box finds nothing
        // and costs start-up time.
        let kernel = Kernel {
            vmlinux: MaybeDefault::None,
            ..Default::default()
        };
        Self {
            inner: Symbolizer::new(),
            src: Source::Kernel(kernel),
        }
    }

    /// Resolves addresses, dropping the tracing machinery's own innermost
    /// frames (BPF program, trampolines); unresolvable ones keep their address.
    pub fn frames(&self, addrs: &[u64], ksyms: &Kallsyms) -> Vec<Frame> {
        strip_tracing(self.resolve(addrs, ksyms))
    }

    fn resolve(&self, addrs: &[u64], ksyms: &Kallsyms) -> Vec<Frame> {
        let resolved = self
            .inner
            .symbolize(&self.src, Input::AbsAddr(addrs))
            .unwrap_or_default();
        addrs
            .iter()
            .enumerate()
            .map(|(i, &addr)| {
                let ours = ksyms.lookup(addr);
                match resolved.get(i) {
                    Some(Symbolized::Sym(s)) => Frame {
                        addr,
                        symbol: Some(s.name.to_string()),
                        offset: s.offset as u64,
                        // Our index names the module only if it knows this very
                        // symbol: a module loaded after it was read would
                        // otherwise take a neighbour's name.
                        module: ours
                            .filter(|o| *o.name == *s.name)
                            .and_then(|o| o.module.clone()),
                    },
                    // Fall back to our own index (module text blazesym skipped).
                    _ => match ours {
                        Some(s) if addr - s.addr < (1 << 20) => Frame {
                            addr,
                            symbol: Some(s.name.clone()),
                            offset: addr - s.addr,
                            module: s.module.clone(),
                        },
                        _ => Frame {
                            addr,
                            symbol: None,
                            offset: 0,
                            module: None,
                        },
                    },
                }
            })
            .collect()
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

/// Frames that belong to the probe, not to the traced code.
pub fn is_tracing_frame(sym: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "bpf_prog_",
        // fentry/fexit trampolines, named by their BTF id.
        "bpf_trampoline_",
        "bpf_trace_run",
        "__bpf_trace_",
        "trace_call_bpf",
        "kprobe_",
        "kretprobe_",
        "__kretprobe_",
        "pre_handler_kretprobe",
        "aggr_pre_handler",
        "rethook_",
        "arch_rethook_",
        "perf_trace_",
        "__traceiter_",
        "__mmap_lock_do_trace_",
        "bpf_get_stack",
        "__bpf_get_stack",
        "ftrace_",
        "fprobe_",
        "__fprobe_",
    ];
    PREFIXES.iter().any(|p| sym.starts_with(p))
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn tracing_frames_are_recognised() {
        assert!(is_tracing_frame(
            "bpf_prog_8f797dd5c1019b2d_mmap_lock_start"
        ));
        assert!(is_tracing_frame("bpf_trace_run2"));
        assert!(is_tracing_frame("bpf_trampoline_6442471387"));
        assert!(is_tracing_frame("kprobe_ftrace_handler"));
        assert!(!is_tracing_frame("ww_mutex_lock"));
        assert!(!is_tracing_frame("dma_buf_map_attachment_unlocked"));
    }
}
