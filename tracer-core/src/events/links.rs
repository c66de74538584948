//! Resv links: for every dma-buf API call, whether the same task locked the
//! buffer's resv (the address read in-kernel from `dmabuf->resv`) while the
//! call ran. This is the evidence that the tracer identifies buffers' locks
//! correctly on a kernel (shown by `tracer dump --resv-links`, asserted in the
//! lab), and it shows which calls take the lock on that kernel.

use std::collections::HashMap;

use serde::Serialize;

use super::model::{DmaBufFn, Event, EventKind, LockFn, Phase};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResvLink {
    pub pid: u32,
    pub func: DmaBufFn,
    pub exp_name: String,
    pub resv: u64,
    /// The task locked `resv` between the call's entry and return.
    pub locked: bool,
    pub entry_ts_ns: u64,
}

/// Pairs calls with their returns per task; calls without a return (the
/// recording ended, or the call blocked forever) are reported too.
pub fn resv_links(events: &[Event]) -> Vec<ResvLink> {
    let mut open: HashMap<u32, Vec<ResvLink>> = HashMap::new();
    let mut done = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::DmaBufCall {
                func,
                phase: Phase::Entry,
                buf,
                ..
            } => {
                open.entry(e.pid).or_default().push(ResvLink {
                    pid: e.pid,
                    func: *func,
                    exp_name: buf.exp_name.clone(),
                    resv: buf.resv,
                    locked: false,
                    entry_ts_ns: e.ts_ns,
                });
            }
            EventKind::DmaBufCall {
                func,
                phase: Phase::Return,
                ..
            } => {
                if let Some(stack) = open.get_mut(&e.pid) {
                    if let Some(i) = stack.iter().rposition(|l| l.func == *func) {
                        let l = stack.remove(i);
                        // The lock was taken inside this call: every enclosing
                        // open call on the same buffer saw it too.
                        if l.locked {
                            for o in stack.iter_mut().filter(|o| o.resv == l.resv) {
                                o.locked = true;
                            }
                        }
                        done.push(l);
                    }
                }
            }
            EventKind::LockReturn {
                lock, func, ret, ..
            } => {
                let acquired = match func {
                    LockFn::Trylock => *ret == 1,
                    _ => *ret == 0,
                };
                if acquired {
                    if let Some(l) = open
                        .get_mut(&e.pid)
                        .and_then(|s| s.iter_mut().rev().find(|l| l.resv == *lock))
                    {
                        l.locked = true;
                    }
                }
            }
            _ => {}
        }
    }
    done.extend(open.into_values().flatten());
    done.sort_by_key(|l| l.entry_ts_ns);
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::BufRef;

    fn ev(ts: u64, pid: u32, kind: EventKind) -> Event {
        Event {
            ts_ns: ts,
            cpu: 0,
            pid,
            tgid: pid,
            comm: "synthetic".into(),
            stack: None,
            kind,
        }
    }
    fn call(func: DmaBufFn, phase: Phase, resv: u64) -> EventKind {
        EventKind::DmaBufCall {
            func,
            phase,
            buf: BufRef {
                dmabuf: 1,
                resv,
                ops: 2,
                exp_name: "udmabuf".into(),
                dynamic_importer: false,
            },
            ret: None,
        }
    }

    /// Synthetic: a PRIME import's attach takes the buffer's resv inside the
    /// call (same task, same address); a lock by another task or on another
    /// address does not count.
    #[test]
    fn attach_that_takes_its_resv_is_linked() {
        let evs = vec![
            ev(1, 10, call(DmaBufFn::Attach, Phase::Entry, 0xa0)),
            ev(
                2,
                11,
                EventKind::LockReturn {
                    lock: 0xa0,
                    ctx: 0,
                    func: LockFn::Lock,
                    ret: 0,
                },
            ),
            ev(
                3,
                10,
                EventKind::LockReturn {
                    lock: 0xb0,
                    ctx: 0,
                    func: LockFn::Lock,
                    ret: 0,
                },
            ),
            ev(4, 10, call(DmaBufFn::Attach, Phase::Return, 0xa0)),
            ev(
                5,
                10,
                call(DmaBufFn::MapAttachmentUnlocked, Phase::Entry, 0xa0),
            ),
            ev(
                6,
                10,
                EventKind::LockReturn {
                    lock: 0xa0,
                    ctx: 0,
                    func: LockFn::Lock,
                    ret: 0,
                },
            ),
            ev(
                7,
                10,
                call(DmaBufFn::MapAttachmentUnlocked, Phase::Return, 0xa0),
            ),
            ev(8, 10, call(DmaBufFn::Detach, Phase::Entry, 0xa0)),
        ];
        let l = resv_links(&evs);
        assert_eq!(l.len(), 3);
        assert_eq!((l[0].func, l[0].locked), (DmaBufFn::Attach, false));
        assert_eq!(
            (l[1].func, l[1].locked),
            (DmaBufFn::MapAttachmentUnlocked, true)
        );
        assert_eq!((l[2].func, l[2].locked), (DmaBufFn::Detach, false));
    }
}
