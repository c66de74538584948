//! A recording through the engine. Every command that judges a recording (`analyze`,
//! `graph`, `run`'s reports, the live view's replay) goes through here, so one recording
//! is judged in one order, the order its live run saw (`Recording::events`), and with
//! one configuration, the one its metadata describes.

use crate::{
    analysis::{rules, Convention, Engine, EngineConfig},
    events::{
        record::{Meta, Recording},
        Event, StackTable,
    },
};

/// The rule era of a recording (or of the running kernel, from its metadata).
pub fn convention_of(meta: &Meta) -> Convention {
    rules::detect(&meta.kernel_release, |s| {
        meta.kernel_symbols.iter().any(|k| k == s)
    })
}

/// The engine's configuration for the kernel a recording or live session describes: its
/// convention, and the static locks it knows by address.
pub fn engine_config(meta: &Meta) -> EngineConfig {
    EngineConfig {
        convention: convention_of(meta),
        init_mm: meta.init_mm.unwrap_or(0),
        ..Default::default()
    }
}

/// A fresh engine for a session described by `meta`, with the stacks known so far.
pub fn engine_for(meta: &Meta, stacks: StackTable) -> Engine {
    Engine::with_stacks(engine_config(meta), stacks)
}

/// What a replay needs to say besides its findings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caveats {
    /// Records the decoder could not read (skipped, counted).
    pub undecodable: u64,
    /// Events the kernel dropped while recording (ring buffer full).
    pub lost: u64,
    /// No end marker: the tracer did not stop cleanly; what was recorded is judged.
    pub cut_short: bool,
    /// Where a last frame was cut in the middle (the tracer was killed while writing).
    pub cut_at: Option<u64>,
}

impl Caveats {
    pub fn of(rec: &Recording, undecodable: u64) -> Self {
        Self {
            undecodable,
            lost: rec
                .summary
                .as_ref()
                .map_or(0, |s| s.lost_per_cpu.iter().sum()),
            cut_short: rec.summary.is_none(),
            cut_at: rec.cut_at,
        }
    }

    /// One line each, for stderr, about the recording `subject`.
    pub fn lines(&self, subject: &str) -> Vec<String> {
        let mut v = Vec::new();
        if self.cut_short {
            v.push(format!(
                "{subject}: no end marker (recording was cut short); analysing what was recorded"
            ));
        }
        if let Some(at) = self.cut_at {
            v.push(format!(
                "{subject}: its last frame is cut at byte {at} (the tracer was killed while writing it): read up to there"
            ));
        }
        if self.undecodable > 0 {
            v.push(format!("{} undecodable events skipped", self.undecodable));
        }
        if self.lost > 0 {
            v.push(format!(
                "the recording lost {} events in the kernel (ring buffer full): findings may be missing",
                self.lost
            ));
        }
        v
    }
}

/// A recording's events, in the one replay order, and what to say about them.
pub fn events(rec: &Recording) -> (Vec<Event>, Caveats) {
    let (events, undecodable) = rec.events();
    (events, Caveats::of(rec, undecodable))
}

/// A recording judged: the engine after its last event.
pub struct Replayed {
    pub engine: Engine,
    pub caveats: Caveats,
}

/// Feeds every event of `rec`, in order, to an engine configured for its kernel.
pub fn replay(rec: &Recording) -> Replayed {
    let (events, caveats) = events(rec);
    let mut engine = engine_for(&rec.meta, rec.stacks.clone());
    for e in &events {
        engine.feed(e);
    }
    Replayed { engine, caveats }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A lab recording kept as test data (tests/data at the top of the repository).
    pub(crate) fn lab_recording(name: &str) -> Replayed {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data")
            .join(name);
        let bytes = std::fs::read(&p).unwrap();
        replay(&Recording::parse(&bytes, name).unwrap())
    }

    #[test]
    fn a_replay_is_the_file_order() {
        // Feeding the events by hand, in file order, gives the same findings.
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/abba-no-ctx.rec");
        let rec = Recording::parse(&std::fs::read(&p).unwrap(), "abba").unwrap();
        let r = replay(&rec);
        let (evs, caveats) = events(&rec);
        assert_eq!(caveats, r.caveats);
        let mut e = engine_for(&rec.meta, rec.stacks.clone());
        for ev in &evs {
            e.feed(ev);
        }
        assert!(!r.engine.findings().is_empty());
        assert_eq!(e.findings(), r.engine.findings());
    }

    /// Full-stream lab recordings (`tracer record --all-events` in the lab, real kernels and
    /// drivers): the kernel side's filter, modelled over the same run (`events::filter`),
    /// leaves the engine the same findings, and it did filter.
    #[test]
    fn full_and_filtered_lab_streams_give_the_same_findings() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/full-stream");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rec"))
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{files:?}");
        let mut summarised = 0;
        let mut calls = 0;
        let mut with_findings = 0;
        for p in &files {
            let name = p.display().to_string();
            let rec = Recording::parse(&std::fs::read(p).unwrap(), &name).unwrap();
            assert!(rec.meta.full_stream, "{name}: not a full-stream recording");
            let (full, caveats) = events(&rec);
            assert_eq!(caveats.lost + caveats.undecodable, 0, "{name}");
            let (filtered, counts) = crate::events::filter::KernelFilter::filter(&full);
            assert!(
                filtered.len() < full.len(),
                "{name}: the filter dropped nothing"
            );
            summarised += counts.summarised;
            calls += counts.calls_dropped;
            eprintln!(
                "{name}: {} of {} events, {counts:?}",
                filtered.len(),
                full.len()
            );
            let judge = |evs: &[Event]| {
                let mut e = engine_for(&rec.meta, rec.stacks.clone());
                for ev in evs {
                    e.feed(ev);
                }
                e
            };
            let (a, b) = (judge(&full), judge(&filtered));
            with_findings += usize::from(!a.findings().is_empty());
            let comparable = crate::analysis::tests::comparable;
            assert_eq!(
                comparable(&a),
                comparable(&b),
                "{name}: full and filtered findings differ"
            );
        }
        // The recordings hold repeated transactions (kept by the novelty filter) and bugs.
        assert!(summarised > 0, "no repeated transaction in {files:?}");
        assert!(calls > 0, "no repeated dma-buf call in {files:?}");
        assert!(with_findings > 0, "no finding in {files:?}");
    }

    #[test]
    fn caveats_say_what_was_missing() {
        let c = Caveats {
            undecodable: 2,
            lost: 5,
            cut_short: true,
            cut_at: Some(77),
        };
        let l = c.lines("x.rec");
        assert_eq!(l.len(), 4);
        assert!(l[1].contains("cut at byte 77"), "{l:?}");
        assert!(l[0].starts_with("x.rec: no end marker"));
        assert!(Caveats::default().lines("x").is_empty());
    }
}
