//! `importer-holds-lock`: a dma-buf API function that takes `dmabuf->resv`
//! itself (attach, detach, the `*_unlocked` variants, cpu access, mmap...) was
//! called by a task already holding that lock. ww_mutex is not recursive: the
//! function's own `dma_resv_lock(resv, NULL)` blocks forever. For export, fd,
//! get and put, which take no lock, only the documented convention is broken:
//! variant `convention`, a warning that says so.

use crate::events::{BufRef, DmaBufFn};

use super::super::finding::{BufferRef, Finding, Severity};
use super::super::state::TaskState;
use super::super::store::{DedupKey, FindingStore};
use super::Env;
use crate::analysis::kinds::IMPORTER_HOLDS_LOCK as INFO;
use crate::analysis::rules::{fn_rule, holding_consequence, FnReq};

/// At a dma-buf API call entry.
pub fn check(
    env: &Env,
    task: Option<&TaskState>,
    f: DmaBufFn,
    buf: &BufRef,
    stack_in: Option<u32>,
    out: &mut FindingStore,
) -> Option<Finding> {
    let rule = fn_rule(env.conv, f);
    if buf.resv == 0 || !matches!(rule, FnReq::MustNotHold | FnReq::ShouldNotHold) {
        return None;
    }
    // export/fd/get/put take no lock: holding it there breaks the documented
    // convention (the last put's ops->release runs as if unlocked), it does not
    // deadlock by itself. Said as such, at warning.
    let convention_only = rule == FnReq::ShouldNotHold;
    let task = task?;
    let held = task.held_index(buf.resv).map(|i| task.held[i])?;
    let name = env.conv.fn_name(f);
    // Without the call's stack, the function that took the lock it holds.
    let location = env
        .location(stack_in, true)
        .or_else(|| env.location(held.stack, true))
        .unwrap_or_else(|| format!("{name}/{}", buf.exp_name));
    let key = DedupKey {
        kind: INFO.kind,
        variant: if convention_only { "convention" } else { "" },
        location,
    };
    out.report(key, env.ev, || {
        let why = format!("{name}: {}", holding_consequence(env.conv, f));
        let mut fi = env.base(
            &INFO,
            format!(
                "{} called {name}() on a dma-buf exported by \"{}\" while holding its reservation \
                 lock {:#x} ({} since {} ns); {why}",
                env.who(),
                buf.exp_name,
                buf.resv,
                env.classes.name(held.class),
                held.since_ns
            ),
        );
        if convention_only {
            fi.severity = Severity::Warning;
            fi.title = format!(
                "dma-buf importer called {name} while holding the reservation lock (convention)"
            );
            fi.advice = format!(
                "call {name} after dma_resv_unlock: the convention keeps export, fd, get and put \
                 outside the reservation lock"
            );
        } else {
            fi.title = format!("dma-buf importer called {name} while holding the reservation lock");
        }
        fi.function = Some(name.to_string());
        fi.buffer = Some(BufferRef {
            exp_name: buf.exp_name.clone(),
            dmabuf: buf.dmabuf,
            resv: buf.resv,
        });
        fi.lock = Some(env.held_ref(&held));
        fi.held_locks = env.held_refs(Some(task));
        fi.other_stacks = env.held_stacks(Some(task));
        fi
    })
}
