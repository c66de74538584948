//! Raw tracepoints: their arguments are the TP_PROTO arguments, which are
//! stable across kernels where the event format is not, and they work on
//! kernels that refuse function hooks.
//!
//! Everything here fires for every task; only what matters to a thread that
//! holds a hooked lock is sent (unless `full_stream` is set), so the cost for
//! unrelated tasks is one map lookup.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::RawKind;

use crate::{
    emit::{output, stack_id, thread_exits, traced_thread},
    held::settle_thread,
};

/// Common filter: the thread holds a hooked lock, or the user asked for all.
#[inline(always)]
fn wanted() -> Option<u32> {
    let (cfg, tid) = traced_thread()?;
    // The held locks this event will be judged against are checked and go
    // first.
    let held = settle_thread(cfg, tid);
    if held > 0 || cfg.full_stream != 0 {
        Some(held)
    } else {
        None
    }
}

#[inline(always)]
fn simple(ctx: &RawTracePointContext, kind: RawKind, args: [u64; 4], ret: i64, with_stack: bool) {
    let Some(held) = wanted() else { return };
    let stack = if with_stack { stack_id(ctx) } else { -1 };
    output(kind as u16, 0, |ev| {
        ev.args = args;
        ev.ret = ret;
        ev.held = held;
        ev.stack_id = stack;
    });
}

/// dma_fence_wait_start(struct dma_fence *fence)
#[raw_tracepoint(tracepoint = "dma_fence_wait_start")]
pub fn fence_wait_start(ctx: RawTracePointContext) -> i32 {
    let fence: u64 = ctx.arg(0);
    simple(&ctx, RawKind::FenceWaitStart, [fence, 0, 0, 0], 0, true);
    0
}

/// dma_fence_wait_end(struct dma_fence *fence)
#[raw_tracepoint(tracepoint = "dma_fence_wait_end")]
pub fn fence_wait_end(ctx: RawTracePointContext) -> i32 {
    let fence: u64 = ctx.arg(0);
    simple(&ctx, RawKind::FenceWaitEnd, [fence, 0, 0, 0], 0, false);
    0
}

/// contention_begin(void *lock, unsigned int flags)
#[raw_tracepoint(tracepoint = "contention_begin")]
pub fn contention_begin(ctx: RawTracePointContext) -> i32 {
    let lock: u64 = ctx.arg(0);
    let flags: u64 = ctx.arg(1);
    simple(
        &ctx,
        RawKind::ContentionBegin,
        [lock, flags & 0xffff_ffff, 0, 0],
        0,
        false,
    );
    0
}

/// contention_end(void *lock, int ret)
#[raw_tracepoint(tracepoint = "contention_end")]
pub fn contention_end(ctx: RawTracePointContext) -> i32 {
    let lock: u64 = ctx.arg(0);
    let ret: u64 = ctx.arg(1);
    simple(
        &ctx,
        RawKind::ContentionEnd,
        [lock, 0, 0, 0],
        ret as i32 as i64,
        false,
    );
    0
}

// mmap_lock tracepoints: kernels before about 6.8 pass a `memcg_path`
// between `mm` and `write`. A raw tracepoint program may not read past the
// tracepoint's last argument (the attach fails), so each layout has its own
// program and user space loads the one BTF describes (`btf_trace_*`).

/// mmap_lock_start_locking(mm, write)
#[raw_tracepoint(tracepoint = "mmap_lock_start_locking")]
pub fn mmap_lock_start(ctx: RawTracePointContext) -> i32 {
    let (mm, write): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    // A stack here is the evidence of a resv -> mmap_lock ordering.
    simple(&ctx, RawKind::MmapLockStart, [mm, write & 1, 0, 0], 0, true);
    0
}

/// mmap_lock_start_locking(mm, memcg_path, write)
#[raw_tracepoint(tracepoint = "mmap_lock_start_locking")]
pub fn mmap_lock_start_memcg(ctx: RawTracePointContext) -> i32 {
    let (mm, write): (u64, u64) = (ctx.arg(0), ctx.arg(2));
    simple(&ctx, RawKind::MmapLockStart, [mm, write & 1, 0, 0], 0, true);
    0
}

/// mmap_lock_acquire_returned(mm, write, success)
#[raw_tracepoint(tracepoint = "mmap_lock_acquire_returned")]
pub fn mmap_lock_acquired(ctx: RawTracePointContext) -> i32 {
    let (mm, write, ok): (u64, u64, u64) = (ctx.arg(0), ctx.arg(1), ctx.arg(2));
    simple(
        &ctx,
        RawKind::MmapLockAcquired,
        [mm, write & 1, ok & 1, 0],
        0,
        false,
    );
    0
}

/// mmap_lock_acquire_returned(mm, memcg_path, write, success)
#[raw_tracepoint(tracepoint = "mmap_lock_acquire_returned")]
pub fn mmap_lock_acquired_memcg(ctx: RawTracePointContext) -> i32 {
    let (mm, write, ok): (u64, u64, u64) = (ctx.arg(0), ctx.arg(2), ctx.arg(3));
    simple(
        &ctx,
        RawKind::MmapLockAcquired,
        [mm, write & 1, ok & 1, 0],
        0,
        false,
    );
    0
}

/// mmap_lock_released(mm, write)
#[raw_tracepoint(tracepoint = "mmap_lock_released")]
pub fn mmap_lock_released(ctx: RawTracePointContext) -> i32 {
    let (mm, write): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    simple(
        &ctx,
        RawKind::MmapLockReleased,
        [mm, write & 1, 0, 0],
        0,
        false,
    );
    0
}

/// mmap_lock_released(mm, memcg_path, write)
#[raw_tracepoint(tracepoint = "mmap_lock_released")]
pub fn mmap_lock_released_memcg(ctx: RawTracePointContext) -> i32 {
    let (mm, write): (u64, u64) = (ctx.arg(0), ctx.arg(2));
    simple(
        &ctx,
        RawKind::MmapLockReleased,
        [mm, write & 1, 0, 0],
        0,
        false,
    );
    0
}

/// sys_exit(struct pt_regs *regs, long ret): return to user space. Sent only
/// while the thread holds a hooked lock: that is the finding.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    let Some((cfg, tid)) = traced_thread() else {
        return 0;
    };
    let held = settle_thread(cfg, tid);
    if held == 0 {
        return 0;
    }
    let regs: u64 = ctx.arg(0);
    let ret: u64 = ctx.arg(1);
    // orig_ax holds the syscall number; offset 120 in x86_64 pt_regs.
    let nr: u64 = unsafe { aya_ebpf::helpers::bpf_probe_read_kernel((regs + 120) as *const u64) }
        .unwrap_or(u64::MAX);
    output(RawKind::SyscallExitHolding as u16, 0, |ev| {
        ev.args = [nr, held as u64, 0, 0];
        ev.ret = ret as i64;
        ev.held = held;
    });
    0
}

/// A thread exits: see `emit::thread_exits`.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn thread_exit(_ctx: RawTracePointContext) -> i32 {
    if let Some((_, id)) = traced_thread() {
        thread_exits(id);
    }
    0
}

/// A module's name into the event (exp_name), for the module tracepoints.
#[inline(always)]
fn module_event(ctx: &RawTracePointContext, kind: RawKind) {
    // Module loads are rare and matter to every thread: no per-thread filter,
    // only the tracer's own threads and the arming are checked.
    let Some((cfg, _)) = traced_thread() else {
        return;
    };
    let module: u64 = ctx.arg(0);
    let name = module + cfg.module_name as u64;
    output(kind as u16, 0, |ev| {
        // SAFETY: reads kernel memory through the helper (fails cleanly).
        let _ = unsafe {
            aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(name as *const u8, &mut ev.exp_name)
        };
        ev.args = [module, 0, 0, 0];
    });
}

/// module_load(struct module *mod): a driver loaded after the start.
#[raw_tracepoint(tracepoint = "module_load")]
pub fn module_load(ctx: RawTracePointContext) -> i32 {
    module_event(&ctx, RawKind::ModuleLoad);
    0
}

/// module_free(struct module *mod): a module is gone with its functions.
#[raw_tracepoint(tracepoint = "module_free")]
pub fn module_free(ctx: RawTracePointContext) -> i32 {
    module_event(&ctx, RawKind::ModuleFree);
    0
}
