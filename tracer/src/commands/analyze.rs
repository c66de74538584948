//! `tracer analyze` (with the CI gate, or `--expect` for the lab), `tracer graph`, and
//! the report every gated command ends with.

use std::{io::Write, path::Path, process::ExitCode};

use anyhow::{Context, Result};
use tracer_core::{
    analysis::{Engine, FindingKind},
    gate::{judge, missing_hooks, AllowList, Outcome, Status},
    report,
};

use super::EXIT_FINDINGS;
use crate::{
    cli::{GateArgs, GraphArgs},
    session::replay_file,
};

/// `tracer analyze FILE [--expect KINDS]` (and a piped `--replay`): the report, then
/// with `--expect` whether exactly those finding kinds were found.
pub fn expect(file: &Path, json: bool, expect: Option<&str>) -> Result<ExitCode> {
    // A bad --expect is said before anything is read or printed.
    let want = expect.map(parse_kinds).transpose()?;
    let (_, engine) = replay_file(file)?;
    let findings = engine.findings();
    let mut out = std::io::stdout().lock();
    if json {
        let doc = report::json::engine_document(&engine, findings);
        writeln!(out, "{}", report::json::document_string(&doc))?;
    } else {
        write!(out, "{}", report::text::report(findings, engine.stacks()))?;
    }
    for n in engine.stats().notes() {
        eprintln!("tracer: {n}");
    }
    match want {
        Some(want) => {
            let mut got: Vec<&str> = findings.iter().map(|f| f.id.id()).collect();
            got.sort_unstable();
            got.dedup();
            if got == want {
                eprintln!(
                    "tracer: expectation met: {}",
                    if want.is_empty() {
                        "no findings".into()
                    } else {
                        want.join(", ")
                    }
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "tracer: expectation NOT met: expected [{}], found [{}]",
                    want.join(", "),
                    got.join(", ")
                );
                Ok(ExitCode::from(EXIT_FINDINGS))
            }
        }
        None if findings.is_empty() => Ok(ExitCode::SUCCESS),
        None => Ok(ExitCode::from(EXIT_FINDINGS)),
    }
}

/// `none` or a comma list of finding ids, validated, sorted.
fn parse_kinds(s: &str) -> Result<Vec<&'static str>> {
    if s.trim() == "none" || s.trim().is_empty() {
        return Ok(vec![]);
    }
    let mut v = Vec::new();
    for k in s.split(',').map(str::trim) {
        let kind = FindingKind::ALL
            .iter()
            .find(|f| f.id() == k)
            .with_context(|| {
                let ids: Vec<&str> = FindingKind::ALL.iter().map(|f| f.id()).collect();
                format!(
                    "--expect: unknown finding kind `{k}` (known: {}, or none)",
                    ids.join(", ")
                )
            })?;
        v.push(kind.id());
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// The allow file, read and checked before anything is attached or started.
pub(super) fn load_allow(gate: &GateArgs) -> Result<Option<AllowList>> {
    gate.allow
        .as_deref()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--allow {}: cannot read", p.display()))?;
            AllowList::parse(&text, p)
        })
        .transpose()
}

/// Prints the report, writes the JUnit/SARIF files, returns the exit status.
pub(super) fn emit(engine: &Engine, o: &Outcome, gate: &GateArgs, json: bool) -> Result<ExitCode> {
    let stacks = engine.stacks();
    let mut out = std::io::stdout().lock();
    if json {
        let doc = report::json::engine_document(engine, &o.active());
        let mut v = serde_json::to_value(&doc)?;
        v["ci"] = report::json::ci_object(o);
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        eprintln!("tracer: {}", o.verdict_line());
    } else {
        write!(out, "{}", report::text::gate_report(o, stacks))?;
    }
    out.flush()?;
    for n in engine.stats().notes() {
        eprintln!("tracer: {n}");
    }
    if let Some(a) = &o.allow {
        for (i, e) in a.entries.iter().enumerate() {
            if !o
                .judged
                .iter()
                .any(|j| matches!(j.status, Status::Suppressed { entry, .. } if entry == i))
            {
                eprintln!(
                    "tracer: {}:{}: allow entry ({}) matched no finding",
                    a.path.display(),
                    e.line,
                    e.describe()
                );
            }
        }
    }
    if let Some(p) = &gate.junit {
        std::fs::write(p, report::junit::render(o, stacks))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &gate.sarif {
        std::fs::write(p, report::sarif::render(o, stacks))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ExitCode::from(o.exit_code()))
}

/// `tracer analyze FILE` with the gate.
pub fn gated(file: &Path, json: bool, gate: &GateArgs) -> Result<ExitCode> {
    let allow = load_allow(gate)?;
    let (rec, engine) = replay_file(file)?;
    let o = Outcome {
        judged: judge(
            engine.findings(),
            gate.fail_on,
            allow.as_ref(),
            engine.stacks(),
        ),
        fail_on: gate.fail_on,
        hooks_missing: missing_hooks(&rec.meta.probes),
        workload: None,
        allow,
        subject: file.display().to_string(),
    };
    emit(&engine, &o, gate, json)
}

/// `tracer graph FILE [--dot] [-o OUT]`.
pub fn graph(args: &GraphArgs) -> Result<ExitCode> {
    let (_, engine) = replay_file(&args.file)?;
    let edges = report::json::graph_edges(engine.graph(), engine.classes());
    let text = if args.dot {
        report::dot::render(&edges, &args.file.display().to_string())
    } else {
        report::dot::edge_lines(&edges)
    };
    match &args.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
