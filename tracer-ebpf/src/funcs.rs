//! Every hooked kernel function goes through these two programs. User space
//! attaches `fn_entry` (kprobe) and, where the return matters, `fn_return`
//! (kretprobe) to each function and describes the function's address in
//! `FUNCS`: its hook id, how to read its arguments, and the filtering policy.
//!
//! A kretprobe sees only the return value, so the entry pushes its arguments
//! on a per-thread frame stack that the return pops (returns are LIFO per
//! thread). The per-thread held count is maintained here: a successful lock
//! return increments it, an unlock entry decrements it. Lock traffic of a
//! thread that holds nothing is not sent to user space except the returns,
//! which the engine needs to know what is held.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_func_ip, bpf_get_smp_processor_id, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext, tracing::StackIdContext},
};
use tracer_common::{
    ArgKind, Config, FuncDesc, HOOK_RESV_FINI, HOOK_RESV_INIT, LONE_SITES_ALWAYS, MAX_FRAMES,
    RawEvent, RawKind, STACK_SKIPPED, SiteStack, TaskFrames, buf_flags, func_flags as ff,
    func_slot,
};

/// Keeps an un-nested acquisition unsent, with its CPU; false if both slots
/// are taken (a third one is sent at once). Constant indices, as in
/// `drop_pending`.
///
/// No clock is read: most kept acquisitions are dropped at their unlock, and
/// the clock read was two thirds of this path's cost (docs/overhead.md; the
/// coarse clock is refused to tracing programs). A lock sent late is stamped
/// when it is sent, just before the first event judged against it.
#[inline(always)]
pub fn keep_pending(
    t: &mut TaskFrames,
    lock: u64,
    ctx: u64,
    ret: i64,
    stack_id: i64,
    func_ip: u64,
    hook: u16,
) -> bool {
    // Written field by field into the slot (no copy through the stack: this
    // is the hot path of every lone lock).
    let p = if t.npending == 0 {
        &mut t.pending[0]
    } else if t.npending == 1 {
        &mut t.pending[1]
    } else {
        return false;
    };
    p.lock = lock;
    p.ctx = ctx;
    p.ret = ret;
    p.stack_id = stack_id;
    p.func_ip = func_ip;
    // SAFETY: helper without arguments.
    p.cpu = unsafe { bpf_get_smp_processor_id() };
    p.hook = hook;
    if t.npending == 0 {
        // Lone inside a hooked call: the core's own lock in a quiet call
        // (`calls::in_quiet_core`), sent after that call's deferred entries.
        t.pending_in_call = (t.in_call != 0 || t.depth != 0) as u32;
    }
    t.npending += 1;
    true
}

/// Whether a lone acquisition of this thread gets its call site read (and its
/// stack, once per site): always with `--lone-sites` or once one of the
/// thread's kept-back acquisitions was needed (`flush_pending`), else for its
/// first `LONE_SITE_BUDGET`. Past those, a thread whose lone locks nothing has
/// needed (the common lock/unlock pair) skips the read, about a third of what
/// the tracer adds to such a pair (docs/overhead.md). If one of them is needed
/// after all, it is sent with `STACK_SKIPPED` (no "acquired at" stack) and the
/// thread's later ones get their sites.
#[inline(always)]
pub fn lone_site_wanted(cfg: &Config, t: &mut TaskFrames) -> bool {
    if cfg.lone_sites_always != 0 {
        return true;
    }
    if t.lone_sites == 0 {
        return false;
    }
    if t.lone_sites != LONE_SITES_ALWAYS {
        t.lone_sites -= 1;
    }
    true
}

/// Removes `lock` from the thread's unsent acquisitions; true if it was there.
/// Written out for the two slots: constant indices keep old verifiers (6.1)
/// from rejecting variable offsets into the map value.
#[inline(always)]
pub fn drop_pending(t: &mut TaskFrames, lock: u64) -> bool {
    if t.npending >= 1 && t.pending[0].lock == lock {
        // Keep the other one first (they are sent oldest first).
        if t.npending >= 2 {
            t.pending[0] = t.pending[1];
        }
        t.npending -= 1;
        return true;
    }
    if t.npending >= 2 && t.pending[1].lock == lock {
        t.npending -= 1;
        return true;
    }
    false
}

use crate::{
    FUNC_SLOTS, FUNCS, SITES,
    calls::{entry_deferred, in_quiet_core, return_dropped},
    emit::{LOST_RETURNS, count_by, flush_pending, output, stack_id, task, traced_thread},
    held::{check_held, forget_sent, note_sent},
    novelty::{chain_broken, chain_start, drop_kept, entry_is_repeat, exit_kept},
};

/// The kernel's errno for a stack-map bucket that holds another stack.
const EEXIST: i64 = 17;

/// The stack for an event at a call site (the return address into the
/// caller): taken the first time the site is seen in a process, then reused
/// for that site in that process, the way lockdep saves a stack once per new
/// dependency. A lock later found held (at return to user space, under a fence
/// wait, first in an ordering) or a dma-buf call then has its stack without a
/// stack walk on every call. Keyed per process because one call site (say in
/// dma_buf_dynamic_attach) is reached from different paths by different
/// programs, and per hooked function because one indirect call site
/// (`ops->map_dma_buf`) reaches many callbacks. The thread's last two sites are checked first (no map lookup: a
/// loop that locks from one place never reaches `SITES`).
#[inline(always)]
pub fn site_stack<C: EbpfContext + StackIdContext>(
    ctx: &C,
    t: &mut TaskFrames,
    caller: u64,
    func: u64,
) -> i64 {
    if caller == 0 {
        return stack_id(ctx);
    }
    // Constant indices (see drop_pending).
    if t.sites[0].caller == caller && t.sites[0].func == func {
        return t.sites[0].stack_id;
    }
    if t.sites[1].caller == caller && t.sites[1].func == func {
        return t.sites[1].stack_id;
    }
    let key = [caller, func, bpf_get_current_pid_tgid() >> 32];
    // SAFETY: map value read.
    let id = match unsafe { SITES.get(&key) } {
        Some(id) => *id,
        None => {
            let id = stack_id(ctx);
            // A failed walk (a full or colliding STACKS map) is not kept: the
            // next call from this site tries again.
            if id >= 0 {
                let _ = SITES.insert(&key, &id, 0);
            } else if id == -EEXIST {
                // The bucket holds another stack: the call site at least (see
                // tracer_common::call_site_of), so a finding is still located.
                return caller as i64;
            }
            id
        }
    };
    // Only a stack that was taken is worth remembering.
    if id >= 0 {
        let s = SiteStack {
            caller,
            func,
            stack_id: id,
        };
        if t.site_next == 0 {
            t.sites[0] = s;
            t.site_next = 1;
        } else {
            t.sites[1] = s;
            t.site_next = 0;
        }
    }
    id
}

/// The stack pointer of a kprobe's register set, read first thing from the
/// unmodified context: older verifiers (6.12) refuse a context field read
/// through a pointer the compiler offset for an earlier read ("dereference
/// of modified ctx ptr").
#[inline(always)]
fn regs_sp(regs: *mut aya_ebpf::bindings::pt_regs) -> u64 {
    // SAFETY: the program's own context, a volatile read at a constant offset.
    unsafe { core::ptr::read_volatile(&raw const (*regs).rsp) }
}

/// A kprobe's first three arguments (x86-64: rdi, rsi, rdx), read first
/// thing like [`regs_sp`], for the same reason.
#[inline(always)]
fn regs_args(regs: *mut aya_ebpf::bindings::pt_regs) -> [u64; 3] {
    // SAFETY: as in regs_sp.
    unsafe {
        [
            core::ptr::read_volatile(&raw const (*regs).rdi),
            core::ptr::read_volatile(&raw const (*regs).rsi),
            core::ptr::read_volatile(&raw const (*regs).rdx),
        ]
    }
}

/// The return address at a kprobe on a function's first instruction (*rsp),
/// or 0 (then the caller gets a fresh stack) if a kretprobe on the same
/// function already replaced it with its trampoline: every call would then
/// share one "call site". User space attaches each function's kretprobe before
/// its entry kprobe so the entry program runs first (the kernel runs the
/// probes of one address newest first); this check keeps a wrong order safe.
#[inline(always)]
fn kprobe_caller(cfg: &Config, sp: u64) -> u64 {
    // SAFETY: the read is checked.
    let ret = unsafe { bpf_probe_read_kernel(sp as *const u64).unwrap_or(0) };
    if ret == cfg.ret_trampoline { 0 } else { ret }
}

/// The descriptor of the hooked function at `ip`: from its `FUNC_SLOTS`
/// slot (no hashing) unless another function holds it.
#[inline(always)]
pub fn desc_for(ip: u64) -> Option<FuncDesc> {
    if let Some(s) = FUNC_SLOTS.get(func_slot(ip)) {
        if s.ip == ip {
            return Some(s.desc);
        }
    }
    // SAFETY: map value read.
    unsafe { FUNCS.get(&ip) }.copied()
}

/// Reads the dma_buf fields the engine needs (resv, ops, exporter name).
#[inline(always)]
fn read_buf(cfg: &Config, dmabuf: u64, ev: &mut RawEvent) {
    if dmabuf == 0 {
        return;
    }
    ev.dmabuf = dmabuf;
    // SAFETY: bpf_probe_read_kernel validates the address.
    unsafe {
        ev.resv =
            bpf_probe_read_kernel((dmabuf + cfg.dma_buf_resv as u64) as *const u64).unwrap_or(0);
        ev.ops =
            bpf_probe_read_kernel((dmabuf + cfg.dma_buf_ops as u64) as *const u64).unwrap_or(0);
        if ev.ops != 0 {
            let pin: u64 =
                bpf_probe_read_kernel((ev.ops + cfg.ops_pin as u64) as *const u64).unwrap_or(0);
            if pin != 0 {
                ev.buf_flags |= buf_flags::DYNAMIC_EXPORTER;
            }
        }
        let name: u64 = bpf_probe_read_kernel((dmabuf + cfg.dma_buf_exp_name as u64) as *const u64)
            .unwrap_or(0);
        if name != 0 {
            let _ = bpf_probe_read_kernel_str_bytes(name as *const u8, &mut ev.exp_name);
        }
    }
}

/// Marks a dynamic importer (pre-6.2 kernels apply the lock rules to map and
/// unmap only for dynamic attachments).
#[inline(always)]
fn read_attachment_flags(cfg: &Config, attachment: u64, ev: &mut RawEvent) {
    if attachment == 0 {
        return;
    }
    // SAFETY: checked kernel read.
    let ops: u64 = unsafe {
        bpf_probe_read_kernel((attachment + cfg.attachment_importer_ops as u64) as *const u64)
            .unwrap_or(0)
    };
    if ops != 0 {
        ev.buf_flags |= buf_flags::DYNAMIC_IMPORTER;
    }
}

/// Sends a function event (entry or return) of the hooked function at `ip`,
/// after the thread's kept-back acquisitions it may be judged against.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn send_call(
    cfg: &Config,
    t: &mut TaskFrames,
    kind: RawKind,
    desc: &FuncDesc,
    ip: u64,
    stack: i64,
    ret: i64,
    args: &[u64; 3],
) {
    if kind == RawKind::FuncEntry {
        if desc.hook == HOOK_RESV_FINI {
            t.last_fini = args[0];
        } else if desc.hook == HOOK_RESV_INIT && args[0] == t.last_fini {
            t.last_fini = 0;
        }
    }
    check_held(cfg, t);
    flush_pending(t);
    let held = t.held;
    output(kind as u16, desc.hook, |ev| {
        ev.func_ip = ip;
        ev.stack_id = stack;
        ev.ret = ret;
        ev.held = held;
        fill_args(cfg, desc, args, ev);
    });
}

/// Whether a lock function's return value says it acquired the lock.
#[inline(always)]
pub fn lock_acquired(desc: &FuncDesc, ret: i64) -> bool {
    // The lock functions return int: only the low 32 bits are defined.
    let r = ret as i32;
    if desc.flags & ff::TRYLOCK != 0 {
        r == 1
    } else {
        r == 0
    }
}

/// Whether an acquisition now would be lone: the thread holds nothing and is
/// inside no hooked call (kretprobe frames or fentry-hooked API calls), or
/// inside a quiet call with no callback open (`calls::in_quiet_core`),
/// and the user did not ask for every event. Then nothing can judge it yet.
#[inline(always)]
pub fn is_lone(cfg: &Config, t: &TaskFrames) -> bool {
    t.held == 0 && cfg.full_stream == 0 && ((t.depth == 0 && t.in_call == 0) || in_quiet_core(t))
}

/// Whether a lone acquisition is taken outside every hooked call. Only those
/// may go without their call site (`lone_site_wanted`): a lock the core takes
/// inside a call keeps its site, the evidence if it is found held.
#[inline(always)]
pub fn outside_calls(t: &TaskFrames) -> bool {
    t.depth == 0 && t.in_call == 0
}

/// Counts a lock function's return in the thread's held locks. Returns
/// whether it acquired the lock, and whether the thread held nothing and was
/// inside no hooked call (callbacks push frames, the fentry-hooked API counts
/// `in_call`): then nothing can judge the acquisition yet, and it is kept back
/// (or, failed, dropped).
#[inline(always)]
pub fn count_lock_return(
    cfg: &Config,
    desc: &FuncDesc,
    t: &mut TaskFrames,
    ret: i64,
) -> (bool, bool) {
    let ok = lock_acquired(desc, ret);
    let lone = is_lone(cfg, t);
    if ok {
        t.held = t.held.saturating_add(1);
        if lone {
            t.lone_locks = t.lone_locks.saturating_add(1);
        }
    }
    (ok, lone)
}

#[inline(always)]
pub fn fill_args(cfg: &Config, desc: &FuncDesc, args: &[u64; 3], ev: &mut RawEvent) {
    ev.args = [args[0], args[1], args[2], 0];
    match desc.arg_kind {
        k if k == ArgKind::DmaBuf as u8 => read_buf(cfg, args[0], ev),
        k if k == ArgKind::DmaBufThenAttachment as u8 => {
            read_buf(cfg, args[0], ev);
            read_attachment_flags(cfg, args[1], ev);
        }
        k if k == ArgKind::Attachment as u8 => {
            // SAFETY: checked kernel read.
            let dmabuf: u64 = unsafe {
                bpf_probe_read_kernel((args[0] + cfg.attachment_dmabuf as u64) as *const u64)
                    .unwrap_or(0)
            };
            read_buf(cfg, dmabuf, ev);
            read_attachment_flags(cfg, args[0], ev);
        }
        k if k == ArgKind::ExportInfo as u8 => unsafe {
            // SAFETY: checked kernel reads of the caller's dma_buf_export_info.
            let info = args[0];
            ev.resv = bpf_probe_read_kernel((info + cfg.export_info_resv as u64) as *const u64)
                .unwrap_or(0);
            ev.ops = bpf_probe_read_kernel((info + cfg.export_info_ops as u64) as *const u64)
                .unwrap_or(0);
            let name: u64 =
                bpf_probe_read_kernel((info + cfg.export_info_exp_name as u64) as *const u64)
                    .unwrap_or(0);
            if name != 0 {
                let _ = bpf_probe_read_kernel_str_bytes(name as *const u8, &mut ev.exp_name);
            }
        },
        _ => {}
    }
}

#[kprobe]
pub fn fn_entry(ctx: ProbeContext) -> u32 {
    let _ = try_entry(&ctx);
    0
}

fn try_entry(ctx: &ProbeContext) -> Option<()> {
    let sp = regs_sp(ctx.regs);
    let args = regs_args(ctx.regs);
    // SAFETY: helper call on the program's own context.
    let ip = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    let desc = desc_for(ip)?;
    let (cfg, tid) = traced_thread()?;
    // SAFETY: `task` points into a map value owned by this thread's key.
    let t = unsafe { &mut *task(tid)? };
    entry_body(ctx, sp, args, ip, desc, cfg, t)
}

/// Attached to the unlock functions only: the unlock of an acquisition that
/// was never sent (the common case of a lone lock/unlock pair) is dropped
/// before the `FUNCS` lookup, which it does not need.
#[kprobe]
pub fn fn_unlock(ctx: ProbeContext) -> u32 {
    let _ = try_unlock(&ctx);
    0
}

fn try_unlock(ctx: &ProbeContext) -> Option<()> {
    let sp = regs_sp(ctx.regs);
    let args = regs_args(ctx.regs);
    let (cfg, tid) = traced_thread()?;
    // SAFETY: as in try_entry.
    let t = unsafe { &mut *task(tid)? };
    let lock = args[0];
    // The held locks are no longer the chain they were (novelty.rs).
    chain_broken(t);
    if (t.npending > 0 && drop_pending(t, lock)) || (t.nkept > 0 && drop_kept(t, lock)) {
        if t.held > 0 {
            t.held -= 1;
        }
        return Some(());
    }
    forget_sent(cfg, t, lock);
    // SAFETY: helper call on the program's own context.
    let ip = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    let desc = desc_for(ip)?;
    entry_body(ctx, sp, args, ip, desc, cfg, t)
}

#[inline(always)]
fn entry_body(
    ctx: &ProbeContext,
    sp: u64,
    args: [u64; 3],
    ip: u64,
    desc: FuncDesc,
    cfg: &Config,
    t: &mut TaskFrames,
) -> Option<()> {
    let held = t.held;
    let nested = held > 0;
    if desc.flags & ff::UNLOCKS != 0 && t.held > 0 {
        t.held -= 1;
    }
    // The unlock of an acquisition that was never sent: neither is sent.
    if desc.flags & ff::UNLOCKS != 0 {
        chain_broken(t);
        let lock = args[0];
        if (t.npending > 0 && drop_pending(t, lock)) || (t.nkept > 0 && drop_kept(t, lock)) {
            return Some(());
        }
    }
    // A lock keeps its call site's stack even when not nested: if it is
    // found held later, that stack is the evidence. Unless it will be lone
    // (as `count_lock_return` decides at the return) and the thread's lone
    // acquisitions have not been needed (`lone_site_wanted`).
    // (At the entry, before its own frame is pushed, as the return sees it
    // after popping.)
    // A lock of the object this thread just tore down is never lone: the
    // lock-after-fini check must see it, with its stack.
    let lone = desc.flags & ff::LOCKS != 0 && is_lone(cfg, t) && args[0] != t.last_fini;
    let stack = if cfg.stack_all != 0 {
        stack_id(ctx)
    } else if lone && outside_calls(t) && !lone_site_wanted(cfg, t) {
        STACK_SKIPPED
    } else if desc.flags & (ff::STACK_ALWAYS | ff::STACK_NESTED) != 0 {
        site_stack(ctx, t, kprobe_caller(cfg, sp), ip)
    } else {
        -1
    };
    // A nested lock repeating a chain already sent: nothing new to judge
    // (novelty.rs). Decided before its own frame is pushed: the filter looks
    // at the hooked calls the thread is inside, as the return sees them.
    let repeat = desc.flags & ff::LOCKS != 0
        && nested
        && entry_is_repeat(cfg, t, args[0], args[1], desc.hook, stack);
    if desc.flags & ff::EMIT_RETURN != 0 {
        let d = t.depth as usize;
        if d < MAX_FRAMES {
            let f = &mut t.frames[d & (MAX_FRAMES - 1)];
            f.func_ip = ip;
            f.args = args;
            f.stack_id = stack;
            f.desc = desc;
            f.sp = sp;
        }
        // Past MAX_FRAMES the depth still counts so returns stay paired;
        // the deepest frames' arguments are lost (user space sees hook 0 args).
        t.depth = t.depth.saturating_add(1);
    }
    let emit = desc.flags & ff::EMIT_ENTRY != 0
        && (desc.flags & ff::ENTRY_ONLY_NESTED == 0 || nested || cfg.full_stream != 0);
    if emit && !repeat && !entry_deferred(cfg, t, &desc, ip, stack, &args) {
        send_call(cfg, t, RawKind::FuncEntry, &desc, ip, stack, 0, &args);
    }
    Some(())
}

#[kretprobe]
pub fn fn_return(ctx: RetProbeContext) -> u32 {
    let _ = try_return(&ctx);
    0
}

fn try_return(ctx: &RetProbeContext) -> Option<()> {
    let sp = regs_sp(ctx.regs);
    let (cfg, tid) = traced_thread()?;
    let t = task(tid)?;
    // SAFETY: as in try_entry.
    let t = unsafe { &mut *t };
    if t.depth == 0 {
        // Attached mid-call: the entry was not seen.
        return None;
    }
    // The return's stack pointer is the entry's plus the popped return
    // address (arch_rethook_trampoline_callback). If the top frame is not
    // this call's but one of the next three is, the frames above it are
    // calls whose return the kernel never ran: dropped, counted. No match
    // at all (a kernel that reports another stack pointer): pop the top.
    let entry_sp = sp.wrapping_sub(8);
    let mut i = 0u32;
    while i < 4 {
        if t.depth <= i {
            break;
        }
        let d = (t.depth - 1 - i) as usize;
        if d >= MAX_FRAMES {
            break;
        }
        if t.frames[d & (MAX_FRAMES - 1)].sp == entry_sp {
            if i > 0 {
                t.depth -= i;
                count_by(LOST_RETURNS, i as u64);
            }
            break;
        }
        i += 1;
    }
    t.depth -= 1;
    let d = t.depth as usize;
    if d >= MAX_FRAMES {
        return None;
    }
    let f = t.frames[d & (MAX_FRAMES - 1)];
    let desc = f.desc;
    let ret: i64 = ctx.ret();
    if desc.flags & ff::LOCKS != 0 {
        let (ok, lone) = count_lock_return(cfg, &desc, t, ret);
        if lone && f.args[0] != t.last_fini {
            // Nothing else held: keep the acquisition in the kernel until
            // something needs it (a failed attempt holds nothing: drop it).
            if !ok {
                return Some(());
            }
            if keep_pending(
                t, f.args[0], f.args[1], ret, f.stack_id, f.func_ip, desc.hook,
            ) {
                // The first lock of what may be a transaction.
                chain_start(t, f.args[1], f.stack_id, desc.hook, f.func_ip);
                return Some(());
            }
            chain_broken(t);
        } else if !lone {
            let ok = ok && desc.flags & ff::TRYLOCK == 0;
            if exit_kept(cfg, t, f.args[0], f.args[1], desc.hook, f.stack_id, ok, ret) {
                return Some(());
            }
        } else {
            chain_broken(t);
        }
    } else if return_dropped(t) {
        // A call of a quiet call whose entry was never needed (calls.rs).
        return Some(());
    }
    send_call(
        cfg,
        t,
        RawKind::FuncReturn,
        &desc,
        f.func_ip,
        f.stack_id,
        ret,
        &f.args,
    );
    if desc.flags & ff::LOCKS != 0 && lock_acquired(&desc, ret) {
        note_sent(cfg, t, f.args[0]);
    }
    Some(())
}

/// Never attached for tracing: user space loads it once to learn whether this
/// kernel allows fentry programs at all, so `tracer probes` can say why
/// function hooks use kprobes (or nothing) here.
#[aya_ebpf::macros::fentry(function = "ww_mutex_unlock")]
pub fn fentry_capability(_ctx: aya_ebpf::programs::FEntryContext) -> u32 {
    0
}
