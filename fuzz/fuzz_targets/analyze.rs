//! `tracer analyze` on arbitrary bytes: a recording read, replayed through the engine and
//! rendered by every report (text, JSON, graph, the CI gate's text, JUnit, SARIF), never a
//! panic, a hang or an allocation over the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_core::{
    analysis::Severity,
    events::record::Recording,
    gate::{judge, Outcome},
    replay::replay,
    report,
};

#[global_allocator]
static A: tracer_fuzz::Bounded = tracer_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    let Ok(rec) = Recording::parse(data, "fuzz") else {
        return;
    };
    let r = replay(&rec);
    let e = &r.engine;
    let _ = report::text::report(e.findings(), e.stacks());
    let doc = report::json::engine_document(e, e.findings());
    let _ = report::json::document_string(&doc);
    let edges = report::json::graph_edges(e.graph(), e.classes());
    let _ = report::dot::render(&edges, "fuzz");
    let o = Outcome {
        judged: judge(e.findings(), Severity::Warning, None, e.stacks()),
        fail_on: Severity::Warning,
        hooks_missing: tracer_core::gate::missing_hooks(&rec.meta.probes),
        workload: None,
        allow: None,
        subject: "fuzz".into(),
    };
    let _ = report::text::gate_report(&o, e.stacks());
    let _ = report::junit::render(&o, e.stacks());
    let _ = report::sarif::render(&o, e.stacks());
});
