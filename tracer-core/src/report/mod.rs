//! Reports: pure functions of findings (plus the order graph and the stack
//! table where they help). No I/O: callers decide where the text goes.

pub mod dot;
pub mod events;
pub mod json;
pub mod junit;
pub mod sarif;
pub mod text;

/// A kernel timestamp (ns) as seconds with `digits` decimals (at most 9), truncated:
/// text reports show nanoseconds (9), graph labels microseconds (6), the live view
/// milliseconds (3). One function, so every face prints time the same way.
pub fn secs(ns: u64, digits: u32) -> String {
    let d = digits.min(9);
    let whole = ns / 1_000_000_000;
    if d == 0 {
        return whole.to_string();
    }
    let frac = (ns % 1_000_000_000) / 10u64.pow(9 - d);
    format!("{whole}.{frac:0w$}", w = d as usize)
}

#[cfg(test)]
mod secs_tests {
    #[test]
    fn seconds_are_truncated_to_the_digits_asked() {
        assert_eq!(super::secs(1_234_567_891, 9), "1.234567891");
        assert_eq!(super::secs(1_234_567_891, 6), "1.234567");
        assert_eq!(super::secs(1_234_567_891, 3), "1.234");
        assert_eq!(super::secs(999, 3), "0.000");
        assert_eq!(super::secs(2_000_000_000, 0), "2");
    }
}

#[cfg(test)]
mod tests {
    //! SYNTHETIC streams (hand-built, modelled on the radeon pin relock and a
    //! context-less ABBA) rendered through both sinks.

    use crate::analysis::{Engine, EngineConfig, Finding};
    use crate::events::*;

    fn ev(ts: u64, pid: u32, stack: Option<StackId>, kind: EventKind) -> Event {
        Event {
            ts_ns: ts,
            cpu: 0,
            pid,
            tgid: pid,
            comm: format!("task{pid}"),
            stack,
            kind,
        }
    }

    fn frames(syms: &[&str]) -> Vec<Frame> {
        syms.iter()
            .enumerate()
            .map(|(i, s)| Frame {
                addr: 0xffff_ffff_c000_0000 + i as u64 * 0x100,
                symbol: Some(s.to_string()),
                offset: 0x1c,
                module: s.starts_with("radeon").then(|| "radeon".to_string()),
            })
            .collect()
    }

    pub(super) fn engine() -> Engine {
        let (a, b) = (0xffff_8880_0000_1000u64, 0xffff_8880_0000_2000u64);
        let buf = BufRef {
            dmabuf: 0x10,
            resv: a,
            ops: 0x20,
            exp_name: "radeon".into(),
            dynamic_importer: false,
        };
        let mut st = StackTable::new();
        st.insert(
            1,
            frames(&[
                "ww_mutex_lock",
                "radeon_bo_reserve",
                "radeon_gem_prime_pin",
                "dma_buf_map_attachment",
            ]),
        );
        st.insert(2, frames(&["ww_mutex_lock", "path_one"]));
        st.insert(3, frames(&["ww_mutex_lock", "path_two"]));
        let mut e = Engine::with_stacks(EngineConfig::default(), st);
        let lock = |ts, pid, l, stack| {
            [
                ev(
                    ts,
                    pid,
                    stack,
                    EventKind::LockAttempt {
                        lock: l,
                        ctx: 0,
                        func: LockFn::Lock,
                    },
                ),
                ev(
                    ts + 1,
                    pid,
                    stack,
                    EventKind::LockReturn {
                        lock: l,
                        ctx: 0,
                        func: LockFn::Lock,
                        ret: 0,
                    },
                ),
            ]
        };
        let mut evs = vec![
            ev(1, 0, None, EventKind::ResvInit { resv: a }),
            ev(2, 0, None, EventKind::ResvInit { resv: b }),
        ];
        evs.extend(lock(10, 1, a, None));
        evs.extend(lock(20, 1, b, Some(2)));
        evs.push(ev(30, 1, None, EventKind::Unlock { lock: b }));
        evs.push(ev(31, 1, None, EventKind::Unlock { lock: a }));
        evs.extend(lock(40, 2, b, None));
        evs.extend(lock(50, 2, a, Some(3)));
        evs.push(ev(60, 2, None, EventKind::Unlock { lock: a }));
        evs.push(ev(61, 2, None, EventKind::Unlock { lock: b }));
        evs.push(ev(
            70,
            3,
            None,
            EventKind::DmaBufCall {
                func: DmaBufFn::MapAttachmentUnlocked,
                phase: Phase::Entry,
                buf: buf.clone(),
                ret: None,
            },
        ));
        evs.extend(lock(71, 3, a, None));
        evs.push(ev(
            73,
            3,
            None,
            EventKind::DmaBufCall {
                func: DmaBufFn::MapAttachment,
                phase: Phase::Entry,
                buf: buf.clone(),
                ret: None,
            },
        ));
        evs.push(ev(
            74,
            3,
            Some(1),
            EventKind::Callback {
                cb: Callback::Pin,
                phase: Phase::Entry,
                symbol: "radeon_gem_prime_pin".into(),
                buf,
                ret: None,
            },
        ));
        evs.push(ev(
            75,
            3,
            Some(1),
            EventKind::LockAttempt {
                lock: a,
                ctx: 0,
                func: LockFn::Lock,
            },
        ));
        for x in &evs {
            e.feed(x);
        }
        e
    }

    #[test]
    fn text_report_is_lockdep_style() {
        let e = engine();
        let out = super::text::report(e.findings(), e.stacks());
        // The whole report, reviewed (src/report/snapshots/); the lines below say what
        // must never go missing from it.
        insta::assert_snapshot!("synthetic_radeon_relock_and_abba", out);
        assert!(out.contains("======================================================\nWARNING: possible circular locking dependency detected"));
        assert!(out.contains("WARNING: possible recursive locking detected: dma-buf callback"));
        assert!(out.contains("CPU0"));
        assert!(out.contains("radeon_bo_reserve+0x1c [radeon]"), "{out}");
        assert!(out.contains("callback: dma_buf_ops.pin = radeon_gem_prime_pin"));
        assert!(out.contains("task: task3/3 (tgid 3)"));
        assert!(out.contains("what to do: "));
        assert!(out.contains("SEVERITY  KIND"));
        assert!(out.contains("exporter-relock"));
        // Task 3's held lock came without a stack: the report says why that happens.
        assert!(
            out.contains("   acquired at:\n    (no stack taken: most likely an un-nested lock"),
            "{out}"
        );
        // Deterministic: the same findings render the same text.
        assert_eq!(out, super::text::report(e.findings(), e.stacks()));
        assert_eq!(super::text::report(&[], None), "no findings\n");
    }

    /// The reports of the two lab recordings kept as test data, as a user reads them:
    /// `tracer analyze` (text), the CI gate's text, and the one-line-per-edge graph.
    #[test]
    fn lab_recordings_render_as_reviewed() {
        for name in ["return-to-user-holding", "abba-no-ctx"] {
            let r = crate::replay::tests::lab_recording(&format!("{name}.rec"));
            let e = &r.engine;
            insta::assert_snapshot!(
                format!("{name}_text"),
                super::text::report(e.findings(), e.stacks())
            );
            let o = crate::gate::Outcome {
                judged: crate::gate::judge(
                    e.findings(),
                    crate::analysis::Severity::Warning,
                    None,
                    e.stacks(),
                ),
                fail_on: crate::analysis::Severity::Warning,
                hooks_missing: vec![],
                workload: None,
                allow: None,
                subject: format!("{name}.rec"),
            };
            insta::assert_snapshot!(
                format!("{name}_gate"),
                super::text::gate_report(&o, e.stacks())
            );
            let edges = super::json::graph_edges(e.graph(), e.classes());
            insta::assert_snapshot!(format!("{name}_graph"), super::dot::edge_lines(&edges));
        }
    }

    #[test]
    fn json_lines_round_trip_with_stable_names() {
        let e = engine();
        let lines = super::json::findings_lines(e.findings());
        let parsed: Vec<Finding> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed, e.findings());
        let v: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
        assert_eq!(v["id"], "exporter-relock");
        assert_eq!(v["severity"], "error");
        assert_eq!(v["callback"]["symbol"], "radeon_gem_prime_pin");
        assert_eq!(v["buffer"]["exp_name"], "radeon");
        for field in [
            "title",
            "explanation",
            "advice",
            "location",
            "task",
            "tasks",
            "first_ts_ns",
            "last_ts_ns",
            "count",
            "held_locks",
            "stack",
            "other_stacks",
            "chains",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
    }

    #[test]
    fn json_document_has_graph_and_stacks() {
        let e = engine();
        let stats = e.stats();
        let doc = super::json::document(
            e.findings(),
            Some(e.config().convention),
            Some((e.graph(), e.classes())),
            e.stacks(),
            Some(&stats),
        );
        assert_eq!(doc.schema, "tracer-findings");
        assert_eq!(doc.version, 1);
        let j = serde_json::to_value(&doc).unwrap();
        assert_eq!(j["convention"]["era"], "v6_6");
        assert_eq!(
            serde_json::to_value(crate::analysis::Era::Pre6_2).unwrap(),
            "pre6_2"
        );
        assert!(doc.summary.by_kind.contains_key("lock-order-inversion"));
        assert!(doc
            .graph
            .iter()
            .any(|g| g.primed && g.from == "&mm->mmap_lock"));
        assert_eq!(
            doc.stacks["1"][2].text,
            "radeon_gem_prime_pin+0x1c [radeon]"
        );
        let s = super::json::document_string(&doc);
        let back: super::json::Document = serde_json::from_str(&s).unwrap();
        assert_eq!(back, doc);
    }
}
