//! SARIF 2.1.0 for code-scanning views: one rule per finding kind, one
//! result per finding with its kernel stacks (`stacks`, innermost frame
//! first) and a logical location (the function, with its module). Kernel
//! stacks carry no source files, so results have logical locations only.
//! Allowed findings carry a `suppressions` entry with the allow reason.

use std::collections::BTreeMap;

use serde_json::{json, Value};
// The SARIF 2.1.0 object model, generated from its JSON schema: field names,
// nesting and enumerated values come from the schema, not from this file.
use serde_sarif::sarif::{
    Invocation, Location, LogicalLocation, Message, MultiformatMessageString, Notification,
    NotificationLevel, PropertyBag, ReportingConfiguration, ReportingDescriptor,
    Result as SarifResult, ResultLevel, Run, Sarif, Stack, StackFrame, Suppression, SupressionKind,
    Tool, ToolComponent,
};

use crate::analysis::{Finding, FindingKind, Severity};
use crate::events::{Frame, StackId, StackTable};
use crate::gate::{Outcome, Status};
use crate::kernel::frames::is_plumbing;

pub const VERSION: &str = "2.1.0";
/// The OASIS schema (serde-sarif's `SCHEMA_URL` points at a schemastore copy).
pub const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

fn level(s: Severity) -> ResultLevel {
    match s {
        Severity::Error => ResultLevel::Error,
        Severity::Warning => ResultLevel::Warning,
        Severity::Info => ResultLevel::Note,
    }
}

fn text(t: impl Into<String>) -> Message {
    Message::builder().text(t).build()
}

fn multiformat(t: impl Into<String>) -> MultiformatMessageString {
    MultiformatMessageString::builder().text(t).build()
}

fn properties(p: impl IntoIterator<Item = (&'static str, Value)>) -> PropertyBag {
    PropertyBag::builder()
        .additional_properties(
            p.into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<BTreeMap<_, _>>(),
        )
        .build()
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

fn logical(f: &Frame) -> Option<LogicalLocation> {
    let sym = f.symbol.as_deref()?;
    Some(
        LogicalLocation::builder()
            .name(sym)
            .fully_qualified_name(format!(
                "{}!{sym}",
                f.module.as_deref().unwrap_or("vmlinux")
            ))
            .kind("function")
            .build(),
    )
}

fn frame_location(f: &Frame) -> StackFrame {
    StackFrame {
        location: Some(Location {
            message: Some(text(f.display())),
            logical_locations: logical(f).map(|l| vec![l]),
            ..Default::default()
        }),
        module: f.module.clone(),
        ..Default::default()
    }
}

fn stack(id: Option<StackId>, what: String, stacks: Option<&StackTable>) -> Option<Stack> {
    let frames = stacks?.get(id?)?;
    Some(
        Stack::builder()
            .message(text(what))
            .frames(frames.iter().map(frame_location).collect::<Vec<_>>())
            .build(),
    )
}

/// The finding's stacks, the offending one first.
fn stacks_of(f: &Finding, stacks: Option<&StackTable>) -> Vec<Stack> {
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
fn location(f: &Finding, stacks: Option<&StackTable>) -> Location {
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
        Some((fr, l)) => Location {
            logical_locations: Some(vec![l]),
            message: Some(text(fr.display())),
            ..Default::default()
        },
        None => Location {
            logical_locations: Some(vec![LogicalLocation::builder()
                .name(f.location.as_str())
                .kind("function")
                .build()]),
            ..Default::default()
        },
    }
}

fn result(f: &Finding, status: &Status, stacks: Option<&StackTable>) -> SarifResult {
    let rule_index = FindingKind::ALL.iter().position(|k| *k == f.id);
    let gate = match status {
        Status::Failing => "failing",
        Status::Below => "below-threshold",
        Status::Suppressed { .. } => "suppressed",
    };
    let mut props = vec![
        ("severity", json!(f.severity.as_str())),
        ("location", json!(f.location)),
        ("count", json!(f.count)),
        ("task", json!(format!("{}/{}", f.task.comm, f.task.pid))),
        ("advice", json!(f.advice)),
        ("gate", json!(gate)),
    ];
    if let Some(b) = &f.buffer {
        props.push(("exporter", json!(b.exp_name)));
    }
    if let Some(cb) = &f.callback {
        props.push((
            "callback",
            json!(format!("dma_buf_ops.{} = {}", cb.member, cb.symbol)),
        ));
    }
    if let Some(func) = &f.function {
        props.push(("function", json!(func)));
    }
    let mut r = SarifResult::builder()
        .rule_id(f.id.id())
        .level(level(f.severity))
        .message(text(format!("{}: {}", f.title, f.explanation.trim_end())))
        .locations(vec![location(f, stacks)])
        .stacks(stacks_of(f, stacks))
        .partial_fingerprints(BTreeMap::from([(
            "tracerLocation/v1".to_string(),
            format!("{}:{}", f.id.id(), f.location),
        )]))
        .properties(properties(props))
        .build();
    r.rule_index = rule_index.map(|i| i as i64);
    if let Status::Suppressed { reason, .. } = status {
        r.suppressions = Some(vec![Suppression::builder()
            .kind(json!(SupressionKind::External))
            .justification(reason.as_str())
            .build()]);
    }
    r
}

/// The SARIF log.
pub fn render(o: &Outcome, stacks: Option<&StackTable>) -> String {
    let rules: Vec<ReportingDescriptor> = FindingKind::ALL
        .iter()
        .map(|k| {
            let i = k.info();
            ReportingDescriptor::builder()
                .id(i.id)
                .name(rule_name(i.id))
                .short_description(multiformat(i.title))
                .full_description(multiformat(i.summary))
                .help(multiformat(i.advice))
                .default_configuration(ReportingConfiguration {
                    level: Some(json!(level(i.severity))),
                    ..Default::default()
                })
                .build()
        })
        .collect();
    let results: Vec<SarifResult> = o
        .judged
        .iter()
        .map(|j| result(&j.finding, &j.status, stacks))
        .collect();
    let notes: Vec<Notification> = o
        .hooks_missing
        .iter()
        .map(|(h, why)| {
            Notification::builder()
                .level(json!(NotificationLevel::Warning))
                .message(text(format!("hook {h} not attached: {why}")))
                .build()
        })
        .collect();
    let mut inv_props = vec![
        ("subject", json!(o.subject)),
        ("failOn", json!(o.fail_on.as_str())),
    ];
    if let Some(w) = &o.workload {
        inv_props.push((
            "workload",
            json!(format!("`{}` {}", w.command, w.describe())),
        ));
    }
    let inv = Invocation::builder()
        .execution_successful(true)
        .exit_code(i64::from(o.exit_code()))
        .tool_execution_notifications(notes)
        .properties(properties(inv_props))
        .build();
    let driver = ToolComponent::builder()
        .name("tracer")
        .version(env!("CARGO_PKG_VERSION"))
        .rules(rules)
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .invocations(vec![inv])
        .results(results)
        .build();
    let log = Sarif::builder()
        .schema(SCHEMA)
        .version(json!(VERSION))
        .runs(vec![run])
        .build();
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
