//! RawEvent (kernel bytes) -> typed Event, through the hook registry (hook id
//! -> meaning) that the loader built or the recording carried.

use std::collections::HashMap;

use tracer_common::{buf_flags, RawEvent, RawKind};

use super::model::{BufRef, Event, EventKind, Phase, SummarisedCall};
use crate::kernel::{HookInfo, HookKind};

/// Why a raw record could not be decoded (counted, shown; never a panic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event kind {0}")]
    UnknownKind(u16),
    #[error("unknown hook id {0}")]
    UnknownHook(u16),
    #[error("hook {0} has no {1:?} event")]
    UnexpectedPhase(String, RawKind),
}

#[derive(Clone, Debug, Default)]
pub struct Decoder {
    hooks: HashMap<u16, HookInfo>,
}

pub fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Decoder {
    pub fn new(hooks: &[HookInfo]) -> Self {
        let mut d = Self::default();
        for h in hooks {
            d.add_hook(h.clone());
        }
        d
    }

    pub fn add_hook(&mut self, h: HookInfo) {
        self.hooks.insert(h.id, h);
    }

    pub fn hook(&self, id: u16) -> Option<&HookInfo> {
        self.hooks.get(&id)
    }

    pub fn decode(&self, r: &RawEvent) -> Result<Event, DecodeError> {
        let kind = RawKind::from_u16(r.kind).ok_or(DecodeError::UnknownKind(r.kind))?;
        let buf = || BufRef {
            dmabuf: r.dmabuf,
            resv: r.resv,
            ops: r.ops,
            exp_name: cstr(&r.exp_name),
            dynamic_importer: r.buf_flags & buf_flags::DYNAMIC_IMPORTER != 0,
        };
        let ek = match kind {
            RawKind::FuncEntry | RawKind::FuncReturn => {
                let h = self
                    .hooks
                    .get(&r.hook)
                    .ok_or(DecodeError::UnknownHook(r.hook))?;
                let phase = if kind == RawKind::FuncEntry {
                    Phase::Entry
                } else {
                    Phase::Return
                };
                let ret = (phase == Phase::Return).then_some(r.ret);
                match (h.kind, phase) {
                    (HookKind::Lock(func), Phase::Entry) => EventKind::LockAttempt {
                        lock: r.args[0],
                        ctx: r.args[1],
                        func,
                    },
                    // ww_mutex_lock* return int: only the low 32 bits of rax are defined.
                    (HookKind::Lock(func), Phase::Return) => EventKind::LockReturn {
                        lock: r.args[0],
                        ctx: r.args[1],
                        func,
                        ret: r.ret as i32 as i64,
                    },
                    (HookKind::Unlock, Phase::Entry) => EventKind::Unlock { lock: r.args[0] },
                    (HookKind::ResvInit, Phase::Entry) => EventKind::ResvInit { resv: r.args[0] },
                    (HookKind::ResvFini, Phase::Entry) => EventKind::ResvFini { resv: r.args[0] },
                    (HookKind::DmaBuf(func), _) => EventKind::DmaBufCall {
                        func,
                        phase,
                        buf: buf(),
                        ret,
                    },
                    (HookKind::Callback(cb), _) => EventKind::Callback {
                        cb,
                        phase,
                        symbol: h.symbol.clone(),
                        buf: buf(),
                        ret,
                    },
                    _ => return Err(DecodeError::UnexpectedPhase(h.symbol.clone(), kind)),
                }
            }
            RawKind::FenceWaitStart => EventKind::FenceWaitStart { fence: r.args[0] },
            RawKind::FenceWaitEnd => EventKind::FenceWaitEnd { fence: r.args[0] },
            RawKind::ContentionBegin => EventKind::ContentionBegin {
                lock: r.args[0],
                flags: r.args[1] as u32,
            },
            RawKind::ContentionEnd => EventKind::ContentionEnd {
                lock: r.args[0],
                ret: r.ret,
            },
            RawKind::MmapLockStart => EventKind::MmapLock {
                mm: r.args[0],
                write: r.args[1] != 0,
                acquired: None,
            },
            RawKind::MmapLockAcquired => EventKind::MmapLock {
                mm: r.args[0],
                write: r.args[1] != 0,
                acquired: Some(r.args[2] != 0),
            },
            RawKind::MmapLockReleased => EventKind::MmapUnlock {
                mm: r.args[0],
                write: r.args[1] != 0,
            },
            RawKind::SyscallExitHolding => EventKind::SyscallExit {
                nr: r.args[0] as i64,
                held: r.args[1] as u32,
            },
            RawKind::ModuleLoad => EventKind::ModuleLoad {
                name: cstr(&r.exp_name),
            },
            RawKind::ModuleFree => EventKind::ModuleFree {
                name: cstr(&r.exp_name),
            },
            RawKind::LockGone => EventKind::LockGone {
                locks: r.args.iter().copied().filter(|&l| l != 0).collect(),
            },
            RawKind::CallsSummarised => {
                let h = self
                    .hooks
                    .get(&r.hook)
                    .ok_or(DecodeError::UnknownHook(r.hook))?;
                let call = match h.kind {
                    HookKind::DmaBuf(f) => SummarisedCall::Api(f),
                    HookKind::Callback(cb) => SummarisedCall::Callback {
                        cb,
                        symbol: h.symbol.clone(),
                    },
                    _ => return Err(DecodeError::UnexpectedPhase(h.symbol.clone(), kind)),
                };
                EventKind::CallsSummarised {
                    call,
                    count: r.args[0],
                }
            }
            RawKind::ThreadExit => EventKind::ThreadExit {
                held: r.args[0] as u32,
                lone_locks: r.args[1] as u32,
                summarised: r.args[2] as u32,
            },
        };
        Ok(Event {
            ts_ns: r.ts_ns,
            cpu: r.cpu,
            pid: r.pid_tgid as u32,
            tgid: (r.pid_tgid >> 32) as u32,
            comm: cstr(&r.comm),
            stack: (r.stack_id >= 0).then_some(r.stack_id as u32),
            kind: ek,
        })
    }
}

/// Builds a RawEvent (tests and synthetic recordings).
pub fn raw(kind: RawKind, hook: u16, pid: u32, ts_ns: u64) -> RawEvent {
    RawEvent {
        ts_ns,
        pid_tgid: ((pid as u64) << 32) | pid as u64,
        kind: kind as u16,
        hook,
        cpu: 0,
        stack_id: -1,
        args: [0; 4],
        ret: 0,
        func_ip: 0,
        dmabuf: 0,
        resv: 0,
        ops: 0,
        held: 0,
        buf_flags: 0,
        comm: *b"synthetic\0\0\0\0\0\0\0",
        exp_name: [0; tracer_common::EXP_NAME_LEN],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::{DmaBufFn, LockFn};
    use crate::kernel::hooks::FUNC_HOOKS;

    fn decoder() -> Decoder {
        let hooks: Vec<HookInfo> = FUNC_HOOKS
            .iter()
            .map(|h| HookInfo {
                id: h.id,
                kind: h.kind,
                symbol: h.func.into(),
                module: None,
                addr: 0,
            })
            .collect();
        Decoder::new(&hooks)
    }

    #[test]
    fn decodes_lock_return_and_dma_buf_call() {
        let d = decoder();
        let mut r = raw(RawKind::FuncReturn, 1, 42, 100);
        r.args = [0xdead, 0, 0, 0];
        // As seen in the lab: an int -EALREADY in rax with zero upper bits.
        r.ret = (-114i32 as u32) as i64;
        let e = d.decode(&r).unwrap();
        assert_eq!(
            e.kind,
            EventKind::LockReturn {
                lock: 0xdead,
                ctx: 0,
                func: LockFn::Lock,
                ret: -114
            }
        );
        assert_eq!(e.pid, 42);
        assert_eq!(e.comm, "synthetic");

        let mut r = raw(RawKind::FuncEntry, 29, 42, 101);
        r.dmabuf = 0x1000;
        r.resv = 0x2000;
        r.exp_name[..7].copy_from_slice(b"udmabuf");
        r.stack_id = 7;
        let e = d.decode(&r).unwrap();
        match e.kind {
            EventKind::DmaBufCall {
                func,
                phase,
                buf,
                ret,
            } => {
                assert_eq!(func, DmaBufFn::MapAttachment);
                assert_eq!(phase, Phase::Entry);
                assert_eq!(buf.resv, 0x2000);
                assert_eq!(buf.exp_name, "udmabuf");
                assert_eq!(ret, None);
            }
            k => panic!("unexpected {k:?}"),
        }
        assert_eq!(e.stack, Some(7));
    }

    #[test]
    fn only_a_dynamic_importer_makes_the_6_1_map_rule_apply() {
        // 6.1: a static importer of a pin-capable exporter (DYNAMIC_EXPORTER
        // alone) maps a cached sg_table without the lock; only importer_ops
        // makes dma_buf_map_attachment assert it.
        let d = decoder();
        let dynamic_importer = |flags: u32| {
            let mut r = raw(RawKind::FuncEntry, 29, 42, 101);
            r.resv = 0x2000;
            r.buf_flags = flags;
            match d.decode(&r).unwrap().kind {
                EventKind::DmaBufCall { buf, .. } => buf.dynamic_importer,
                k => panic!("unexpected {k:?}"),
            }
        };
        assert!(!dynamic_importer(buf_flags::DYNAMIC_EXPORTER));
        assert!(dynamic_importer(buf_flags::DYNAMIC_IMPORTER));
        assert!(dynamic_importer(
            buf_flags::DYNAMIC_IMPORTER | buf_flags::DYNAMIC_EXPORTER
        ));
        assert!(!dynamic_importer(0));
    }

    #[test]
    fn thread_exit_decodes() {
        let d = decoder();
        let mut r = raw(RawKind::ThreadExit, 0, 42, 5);
        r.args = [2, 300, 7, 0];
        assert_eq!(
            d.decode(&r).unwrap().kind,
            EventKind::ThreadExit {
                held: 2,
                lone_locks: 300,
                summarised: 7,
            }
        );
    }

    #[test]
    fn lock_gone_carries_the_non_zero_locks() {
        let d = decoder();
        let mut r = raw(RawKind::LockGone, 0, 42, 5);
        r.args = [0x10, 0, 0x30, 0];
        assert_eq!(
            d.decode(&r).unwrap().kind,
            EventKind::LockGone {
                locks: vec![0x10, 0x30]
            }
        );
    }

    #[test]
    fn unknown_input_is_an_error_not_a_panic() {
        let d = decoder();
        assert_eq!(
            d.decode(&raw(RawKind::FuncEntry, 999, 1, 0)).unwrap_err(),
            DecodeError::UnknownHook(999)
        );
        let mut r = raw(RawKind::FuncEntry, 1, 1, 0);
        r.kind = 77;
        assert_eq!(d.decode(&r).unwrap_err(), DecodeError::UnknownKind(77));
        // ww_mutex_unlock has no return event.
        assert!(matches!(
            d.decode(&raw(RawKind::FuncReturn, 4, 1, 0)),
            Err(DecodeError::UnexpectedPhase(..))
        ));
    }
}
