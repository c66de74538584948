//! Kernel stack symbolization (live side): blazesym over the running kernel's
//! kallsyms, with module names from our kallsyms index. Recordings carry the
//! resolved frames, so replay needs neither.

use blazesym::symbolize::{
    source::{Kernel, Source},
    Input, Symbolized, Symbolizer,
};
use blazesym::MaybeDefault;

use tracer_core::events::{stacks::strip_tracing, Frame};

use crate::probes::kallsyms::Kallsyms;

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
