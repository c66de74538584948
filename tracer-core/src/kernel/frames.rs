//! How the frames of a kernel stack are classified: the tracing machinery's own (dropped
//! when a stack is symbolized), locking and waiting plumbing (skipped when a finding
//! names the code that decided to lock), and the dma-buf core (skipped too when an API
//! finding names the importer). The one place these lists live.

/// Frames that are locking/tracing machinery, not the code that decided to lock.
/// Finding locations, the engine's lock sites and the report formats (SARIF) use it.
pub fn is_plumbing(sym: &str) -> bool {
    const PREFIXES: [&str; 30] = [
        "ww_mutex",
        "__ww_mutex",
        "mutex_",
        "__mutex",
        "dma_resv_lock",
        "dma_resv_trylock",
        "dma_resv_unlock",
        "_raw_",
        "lock_acquire",
        "__lock_acquire",
        "down_",
        "__down",
        "rwsem_",
        "up_",
        "bpf_",
        "__bpf",
        "kprobe",
        "ftrace",
        "__fentry",
        "rethook",
        "arch_rethook",
        "trace_",
        "__traceiter",
        "perf_",
        "__mmap_lock",
        "mmap_read_lock",
        "mmap_write_lock",
        "dma_fence_wait",
        "dma_fence_default_wait",
        "schedule",
    ];
    PREFIXES.iter().any(|p| sym.starts_with(p))
}

/// The source function of a kernel symbol: compilers split and clone
/// functions into `foo.cold`, `foo.isra.0`, `foo.constprop.0`, `foo.part.0`
/// (a C name has no dot), and one function must keep one location whichever
/// compiler built the module.
pub fn source_function(sym: &str) -> &str {
    sym.split_once('.').map_or(sym, |(f, _)| f)
}

/// The dma-buf core's own functions: an API finding's location is the caller of these.
pub fn is_dma_buf_core(sym: &str) -> bool {
    sym.starts_with("dma_buf_") || sym.starts_with("dma_resv_")
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
