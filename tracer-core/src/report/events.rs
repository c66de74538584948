//! One line per event, as `tracer dump` prints recordings.

use crate::events::{Event, EventKind, SummarisedCall};

/// One line per event: relative time, cpu, task, what happened.
pub fn event_line(e: &Event, t0: u64) -> String {
    let what = match &e.kind {
        EventKind::LockAttempt { lock, ctx, func } => {
            format!("lock-attempt {func:?} lock={lock:#x} ctx={ctx:#x}")
        }
        EventKind::LockReturn {
            lock,
            ctx,
            func,
            ret,
        } => format!("lock-return  {func:?} lock={lock:#x} ctx={ctx:#x} ret={ret}"),
        EventKind::Unlock { lock } => format!("unlock       lock={lock:#x}"),
        EventKind::LockGone { locks } => {
            let l: Vec<String> = locks.iter().map(|l| format!("{l:#x}")).collect();
            format!("lock-gone    locks={} (released unseen)", l.join(","))
        }
        EventKind::ResvInit { resv } => format!("resv-init    resv={resv:#x}"),
        EventKind::ResvFini { resv } => format!("resv-fini    resv={resv:#x}"),
        EventKind::DmaBufCall {
            func,
            phase,
            buf,
            ret,
        } => format!(
            "{:<12} {} dmabuf={:#x} resv={:#x} exp={}{}",
            format!("{phase:?}").to_lowercase(),
            func.kernel_name(),
            buf.dmabuf,
            buf.resv,
            buf.exp_name,
            ret.map(|r| format!(" ret={r:#x}")).unwrap_or_default()
        ),
        EventKind::Callback {
            cb,
            phase,
            symbol,
            buf,
            ret,
        } => format!(
            "{:<12} callback {}={} dmabuf={:#x} resv={:#x} exp={}{}",
            format!("{phase:?}").to_lowercase(),
            cb.member(),
            symbol,
            buf.dmabuf,
            buf.resv,
            buf.exp_name,
            ret.map(|r| format!(" ret={r}")).unwrap_or_default()
        ),
        EventKind::FenceWaitStart { fence } => format!("fence-wait-start fence={fence:#x}"),
        EventKind::FenceWaitEnd { fence } => format!("fence-wait-end   fence={fence:#x}"),
        EventKind::MmapLock {
            mm,
            write,
            acquired,
        } => match acquired {
            None => format!("mmap-lock-start mm={mm:#x} write={write}"),
            Some(ok) => format!("mmap-lock-acquired mm={mm:#x} write={write} success={ok}"),
        },
        EventKind::MmapUnlock { mm, write } => {
            format!("mmap-lock-released mm={mm:#x} write={write}")
        }
        EventKind::ContentionBegin { lock, flags } => {
            format!("contention-begin lock={lock:#x} flags={flags:#x}")
        }
        EventKind::ContentionEnd { lock, ret } => {
            format!("contention-end   lock={lock:#x} ret={ret}")
        }
        EventKind::SyscallExit { nr, held } => format!("syscall-exit nr={nr} holding={held}"),
        EventKind::ModuleLoad { name } => format!("module-load {name}"),
        EventKind::CallsSummarised { call, count } => match call {
            SummarisedCall::Api(f) => format!("calls-summarised {} count={count}", f.kernel_name()),
            SummarisedCall::Callback { cb, symbol } => {
                format!(
                    "calls-summarised callback {}={symbol} count={count}",
                    cb.member()
                )
            }
        },
        EventKind::ModuleFree { name } => format!("module-free {name}"),
        EventKind::ThreadExit {
            held,
            lone_locks,
            summarised,
        } => {
            format!("thread-exit holding={held} lone-locks={lone_locks} summarised={summarised}")
        }
    };
    format!(
        "{:>12.6} cpu{:<2} {:>7} {:<16} {}{}",
        e.ts_ns.saturating_sub(t0) as f64 / 1e9,
        e.cpu,
        e.pid,
        e.comm,
        what,
        e.stack.map(|s| format!(" [stack {s}]")).unwrap_or_default()
    )
}
