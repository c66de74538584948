//! SARIF 2.1.0 for code-scanning views: one rule per finding kind, one
//! result per finding with its kernel stacks (`stacks`, innermost frame
//! first) and a logical location (the function, with its module). Kernel
//! stacks carry no source files, so results have logical locations only.
//! Allowed findings carry a `suppressions` entry with the allow reason.

use serde_json::{json, Value};

use crate::analysis::{Finding, FindingKind, Severity};
use crate::events::{Frame, StackId, StackTable};
use crate::gate::{Outcome, Status};
use crate::kernel::frames::is_plumbing;

pub const VERSION: &str = "2.1.0";
pub const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// `exporter-relock` -> `ExporterRelock` (SARIF's rule `name` is an identifier).
fn rule_name(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn logical(f: &Frame) -> Option<Value> {
    let sym = f.symbol.as_deref()?;
    Some(json!({
        "name": sym,
        "fullyQualifiedName": format!("{}!{sym}", f.module.as_deref().unwrap_or("vmlinux")),
        "kind": "function",
    }))
}

fn frame_location(f: &Frame) -> Value {
    let mut loc = json!({ "message": { "text": f.display() } });
    if let Some(l) = logical(f) {
        loc["logicalLocations"] = json!([l]);
    }
    let mut fr = json!({ "location": loc });
    if let Some(m) = &f.module {
        fr["module"] = json!(m);
    }
    fr
}

fn stack(id: Option<StackId>, what: String, stacks: Option<&StackTable>) -> Option<Value> {
    let frames = stacks?.get(id?)?;
    Some(json!({
        "message": { "text": what },
        "frames": frames.iter().map(frame_location).collect::<Vec<_>>(),
    }))
}

/// The finding's stacks, the offending one first.
fn stacks_of(f: &Finding, stacks: Option<&StackTable>) -> Vec<Value> {
    let mut v = Vec::new();
    let main = f.stack.or(f.lock.as_ref().and_then(|l| l.stack));
    v.extend(stack(main, "where it happened".into(), stacks));
    for (i, l) in f.held_locks.iter().enumerate() {
        v.extend(stack(
            l.stack,
            format!("held lock #{i} ({} {:#x}) acquired", l.class, l.addr),
            stacks,
        ));
    }
    for c in &f.chains {
        for l in c.links.iter().filter(|l| !l.primed) {
            v.extend(stack(l.from_stack, format!("{} held", l.from), stacks));
            v.extend(stack(l.to_stack, format!("{} acquired", l.to), stacks));
        }
    }
    v
}

/// The innermost frame that is not locking machinery: the engine's location
/// when it is a frame of the stack, else the first non-machinery frame.
fn location(f: &Finding, stacks: Option<&StackTable>) -> Value {
    let main = f.stack.or(f.lock.as_ref().and_then(|l| l.stack));
    let frames = main.and_then(|id| stacks?.get(id)).unwrap_or_default();
    let frame = frames
        .iter()
        .find(|fr| fr.symbol.as_deref() == Some(f.location.as_str()))
        .or_else(|| {
            frames
                .iter()
                .find(|fr| fr.symbol.as_deref().is_some_and(|s| !is_plumbing(s)))
        });
    match frame.and_then(|fr| logical(fr).map(|l| (fr, l))) {
        Some((fr, l)) => json!({
            "logicalLocations": [l],
            "message": { "text": fr.display() },
        }),
        None => json!({
            "logicalLocations": [{ "name": f.location, "kind": "function" }],
        }),
    }
}

fn result(f: &Finding, status: &Status, stacks: Option<&StackTable>) -> Value {
    let rule_index = FindingKind::ALL.iter().position(|k| *k == f.id);
    let mut r = json!({
        "ruleId": f.id.id(),
        "ruleIndex": rule_index,
        "level": level(f.severity),
        "message": { "text": format!("{}: {}", f.title, f.explanation.trim_end()) },
        "locations": [location(f, stacks)],
        "stacks": stacks_of(f, stacks),
        "partialFingerprints": { "tracerLocation/v1": format!("{}:{}", f.id.id(), f.location) },
        "properties": {
            "severity": f.severity.as_str(),
            "location": f.location,
            "count": f.count,
            "task": format!("{}/{}", f.task.comm, f.task.pid),
            "advice": f.advice,
            "gate": match status {
                Status::Failing => "failing",
                Status::Below => "below-threshold",
                Status::Suppressed { .. } => "suppressed",
            },
        },
    });
    if let Some(b) = &f.buffer {
        r["properties"]["exporter"] = json!(b.exp_name);
    }
    if let Some(cb) = &f.callback {
        r["properties"]["callback"] = json!(format!("dma_buf_ops.{} = {}", cb.member, cb.symbol));
    }
    if let Some(func) = &f.function {
        r["properties"]["function"] = json!(func);
    }
    if let Status::Suppressed { reason, .. } = status {
        r["suppressions"] = json!([{ "kind": "external", "justification": reason }]);
    }
    r
}

/// The SARIF log.
pub fn render(o: &Outcome, stacks: Option<&StackTable>) -> String {
    let rules: Vec<Value> = FindingKind::ALL
        .iter()
        .map(|k| {
            let i = k.info();
            json!({
                "id": i.id,
                "name": rule_name(i.id),
                "shortDescription": { "text": i.title },
                "fullDescription": { "text": i.summary },
                "help": { "text": i.advice },
                "defaultConfiguration": { "level": level(i.severity) },
            })
        })
        .collect();
    let results: Vec<Value> = o
        .judged
        .iter()
        .map(|j| result(&j.finding, &j.status, stacks))
        .collect();
    let notes: Vec<Value> = o
        .hooks_missing
        .iter()
        .map(|(h, why)| {
            json!({
                "level": "warning",
                "message": { "text": format!("hook {h} not attached: {why}") },
            })
        })
        .collect();
    let mut inv = json!({
        "executionSuccessful": true,
        "exitCode": o.exit_code(),
        "toolExecutionNotifications": notes,
        "properties": { "subject": o.subject, "failOn": o.fail_on.as_str() },
    });
    if let Some(w) = &o.workload {
        inv["properties"]["workload"] = json!(format!("`{}` {}", w.command, w.describe()));
    }
    let log = json!({
        "$schema": SCHEMA,
        "version": VERSION,
        "runs": [{
            "tool": { "driver": {
                "name": "tracer",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            } },
            "invocations": [inv],
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&log).expect("SARIF serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use crate::analysis::Severity;
    use crate::gate::{judge, Outcome};

    #[test]
    fn synthetic_findings_as_sarif() {
        let e = super::super::tests::engine();
        let o = Outcome {
            judged: judge(e.findings(), Severity::Error, None, e.stacks()),
            fail_on: Severity::Error,
            hooks_missing: vec![],
            workload: None,
            allow: None,
            subject: "synthetic".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&super::render(&o, e.stacks())).unwrap();
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "tracer");
        assert_eq!(run["tool"]["driver"]["rules"][2]["id"], "exporter-relock");
        assert_eq!(run["tool"]["driver"]["rules"][2]["name"], "ExporterRelock");
        let relock = run["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ruleId"] == "exporter-relock")
            .unwrap();
        assert_eq!(relock["ruleIndex"], 2);
        let l = &relock["locations"][0]["logicalLocations"][0];
        assert_eq!(l["name"], "radeon_bo_reserve", "{relock:#}");
        assert_eq!(l["fullyQualifiedName"], "radeon!radeon_bo_reserve");
        assert_eq!(
            relock["stacks"][0]["frames"][1]["location"]["message"]["text"],
            "radeon_bo_reserve+0x1c [radeon]"
        );
    }
}
