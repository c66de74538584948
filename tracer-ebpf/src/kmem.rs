//! Kernel memory reads on request, for user space: the tracer calls its own
//! `tracer_read_kernel(addr, len)` function, on which this uprobe sits, and
//! then reads the bytes from `KMEM`. Used to read exporters' `dma_buf_ops`
//! tables (function pointers) so their callbacks can be hooked; works on
//! kernels without /proc/kcore.

use aya_ebpf::{helpers::bpf_probe_read_kernel_buf, macros::uprobe, programs::ProbeContext};

use crate::KMEM;

#[uprobe]
pub fn read_kmem(ctx: ProbeContext) -> u32 {
    let addr: u64 = ctx.arg(0).unwrap_or(0);
    let Some(buf) = KMEM.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a map value of KMEM_LEN + 8 bytes; the read is checked by the helper.
    unsafe {
        let buf = &mut *buf;
        let ok = bpf_probe_read_kernel_buf(addr as *const u8, &mut buf.data).is_ok();
        buf.status = if ok { 1 } else { 2 };
        buf.addr = addr;
    }
    0
}
