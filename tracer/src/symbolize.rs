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
        let mut frames = self.resolve(addrs, ksyms);
        let skip = frames
            .iter()
            .take_while(|f| f.symbol.as_deref().is_some_and(is_tracing_frame))
            .count();
        frames.drain(..skip);
        frames
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
                let module = ksyms.lookup(addr).and_then(|s| s.module.clone());
                match resolved.get(i) {
                    Some(Symbolized::Sym(s)) => Frame {
                        addr,
                        symbol: Some(s.name.to_string()),
                        offset: s.offset as u64,
                        module,
                    },
                    // Fall back to our own index (module text blazesym skipped).
                    _ => match ksyms.lookup(addr) {
                        Some(s) if addr - s.addr < (1 << 20) => Frame {
                            addr,
                            symbol: Some(s.name.clone()),
                            offset: addr - s.addr,
                            module,
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
