//! The findings side of the CI gate, on a real recording: the 6.12 lab run of
//! the return-to-user-holding scenario (two error findings:
//! held-at-return-to-user, and a lock-order inversion against the order
//! dma_resv_lockdep() primes). This machine produces no dma-buf traffic, so
//! findings come from the lab. No root needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use quick_xml::events::Event;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/return-to-user-holding.rec")
}

fn tracer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(args)
        .output()
        .expect("running the tracer")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Attributes of an element as (name, value) pairs, unescaped.
fn attrs(t: &quick_xml::events::BytesStart) -> Vec<(String, String)> {
    t.attributes()
        .map(|a| {
            let a = a.unwrap();
            (
                String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                a.unescape_value().unwrap().into_owned(),
            )
        })
        .collect()
}

fn attr<'a>(a: &'a [(String, String)], k: &str) -> Option<&'a str> {
    a.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[derive(Debug, Default)]
struct Case {
    name: String,
    classname: String,
    failure: Option<(String, String)>,
    skipped: Option<String>,
}

#[derive(Debug, Default)]
struct Suite {
    attrs: Vec<(String, String)>,
    cases: Vec<Case>,
}

fn parse_junit(x: &str) -> Vec<Suite> {
    let mut r = quick_xml::Reader::from_str(x);
    let mut suites: Vec<Suite> = Vec::new();
    let mut in_failure = false;
    loop {
        let ev = r.read_event().expect("well-formed JUnit XML");
        match ev {
            Event::Eof => break,
            Event::Start(ref t) | Event::Empty(ref t) => {
                let empty = matches!(ev, Event::Empty(_));
                let a = attrs(t);
                match t.name().as_ref() {
                    b"testsuite" => suites.push(Suite {
                        attrs: a,
                        cases: vec![],
                    }),
                    b"testcase" => suites.last_mut().unwrap().cases.push(Case {
                        name: attr(&a, "name").expect("testcase name").into(),
                        classname: attr(&a, "classname").expect("testcase classname").into(),
                        ..Default::default()
                    }),
                    b"failure" => {
                        let c = suites.last_mut().unwrap().cases.last_mut().unwrap();
                        c.failure = Some((
                            attr(&a, "message").expect("failure message").into(),
                            String::new(),
                        ));
                        in_failure = !empty;
                    }
                    b"skipped" => {
                        let c = suites.last_mut().unwrap().cases.last_mut().unwrap();
                        c.skipped = Some(attr(&a, "message").unwrap_or_default().into());
                    }
                    _ => {}
                }
            }
            Event::Text(t) if in_failure => {
                let c = suites.last_mut().unwrap().cases.last_mut().unwrap();
                c.failure.as_mut().unwrap().1 += &t.unescape().unwrap();
            }
            Event::End(t) if t.name().as_ref() == b"failure" => in_failure = false,
            _ => {}
        }
    }
    suites
}

#[test]
fn findings_fail_analyze_and_fill_junit_and_sarif() {
    let dir = tempfile::tempdir().unwrap();
    let (j, sf) = (dir.path().join("j.xml"), dir.path().join("s.sarif"));
    let o = tracer(&["analyze", s(&data()), "--junit", s(&j), "--sarif", s(&sf)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("verdict: FAIL (exit 1): 2 findings at or above warning"),
        "{out}"
    );

    // JUnit: one suite "tracer", counts that match its cases.
    let suites = parse_junit(&std::fs::read_to_string(&j).unwrap());
    assert_eq!(suites.len(), 1);
    let suite = &suites[0];
    assert_eq!(attr(&suite.attrs, "name"), Some("tracer"));
    let tests: usize = attr(&suite.attrs, "tests").unwrap().parse().unwrap();
    let failures: usize = attr(&suite.attrs, "failures").unwrap().parse().unwrap();
    assert_eq!(tests, suite.cases.len());
    assert_eq!(failures, 2);
    assert_eq!(
        failures,
        suite.cases.iter().filter(|c| c.failure.is_some()).count()
    );
    // Every kind is checked: a passing case for each kind without findings.
    for kind in [
        "importer-missing-lock",
        "importer-holds-lock",
        "exporter-relock",
        "recursive-lock",
        "ww-protocol",
        "fence-wait-under-resv",
    ] {
        let c = suite
            .cases
            .iter()
            .find(|c| c.name == kind)
            .unwrap_or_else(|| panic!("no testcase {kind}: {suite:?}"));
        assert_eq!(c.classname, format!("tracer.{kind}"));
        assert!(c.failure.is_none() && c.skipped.is_none());
    }
    let held = suite
        .cases
        .iter()
        .find(|c| c.classname == "tracer.held-at-return-to-user")
        .unwrap();
    assert_eq!(
        held.name,
        "held-at-return-to-user at tsc_return_to_user_holding"
    );
    let (msg, body) = held.failure.as_ref().unwrap();
    assert_eq!(msg, "lock held when returning to user space");
    assert!(
        body.contains("WARNING: lock held when returning to user space"),
        "{body}"
    );
    assert!(
        body.contains("tsc_return_to_user_holding+0x"),
        "stacks in the body: {body}"
    );
    let inv = suite
        .cases
        .iter()
        .find(|c| c.classname == "tracer.lock-order-inversion")
        .unwrap();
    assert_eq!(
        inv.failure.as_ref().unwrap().0,
        "possible circular locking dependency detected"
    );
    assert!(inv
        .failure
        .as_ref()
        .unwrap()
        .1
        .contains("lock(&mm->mmap_lock);"));

    // SARIF 2.1.0: the required fields, rules for every kind, results that
    // point at a rule and a function.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&sf).unwrap()).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"]
        .as_str()
        .unwrap()
        .ends_with("sarif-schema-2.1.0.json"));
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "tracer");
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["shortDescription"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty()));
            assert!(r["help"]["text"].as_str().is_some_and(|t| !t.is_empty()));
            r["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(rules.len(), tracer_core::analysis::FindingKind::ALL.len());
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        assert!(rules.contains(&id), "{id}");
        assert_eq!(rules[r["ruleIndex"].as_u64().unwrap() as usize], id);
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
        assert_eq!(r["level"], "error");
        assert!(r.get("suppressions").is_none());
        let frames = r["stacks"][0]["frames"].as_array().unwrap();
        assert!(!frames.is_empty());
    }
    let held = results
        .iter()
        .find(|r| r["ruleId"] == "held-at-return-to-user")
        .unwrap();
    let l = &held["locations"][0]["logicalLocations"][0];
    assert_eq!(l["name"], "tsc_return_to_user_holding");
    assert_eq!(
        l["fullyQualifiedName"],
        "tracer_scenarios!tsc_return_to_user_holding"
    );
    assert_eq!(run["invocations"][0]["exitCode"], 1);
}

#[test]
fn allow_file_covering_the_findings_makes_it_pass() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.toml");
    std::fs::write(
        &allow,
        r#"
[[allow]]
kind = "held-at-return-to-user"
symbol = "tsc_return_*"
reason = "lab scenario: returns to user space holding a resv on purpose"

[[allow]]
kind = "lock-order-inversion"
symbol = "tsc_*"
reason = "the same scenario then faults under the held resv"
"#,
    )
    .unwrap();
    let (j, sf) = (dir.path().join("j.xml"), dir.path().join("s.sarif"));
    let o = tracer(&[
        "analyze",
        s(&data()),
        "--allow",
        s(&allow),
        "--junit",
        s(&j),
        "--sarif",
        s(&sf),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("suppressed by "), "{out}");
    assert!(
        out.contains("0 findings at or above warning, 0 below, 2 suppressed"),
        "{out}"
    );
    let suites = parse_junit(&std::fs::read_to_string(&j).unwrap());
    assert_eq!(attr(&suites[0].attrs, "failures"), Some("0"));
    assert_eq!(attr(&suites[0].attrs, "skipped"), Some("2"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&sf).unwrap()).unwrap();
    for r in v["runs"][0]["results"].as_array().unwrap() {
        assert_eq!(r["suppressions"][0]["kind"], "external");
        assert!(r["suppressions"][0]["justification"]
            .as_str()
            .unwrap()
            .contains("scenario"));
    }
    // JSON: suppressed findings move to `ci.suppressed`.
    let o = tracer(&["analyze", s(&data()), "--allow", s(&allow), "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
    assert_eq!(v["ci"]["suppressed"].as_array().unwrap().len(), 2);
    assert_eq!(v["ci"]["exit_code"], 0);
    // Covering only one finding still fails on the other.
    std::fs::write(
        &allow,
        "[[allow]]\nkind = \"held-at-return-to-user\"\nreason = \"known\"\n",
    )
    .unwrap();
    let o = tracer(&["analyze", s(&data()), "--allow", s(&allow)]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn fail_on_threshold() {
    // Both findings are errors: every threshold fails.
    for sev in ["error", "warning", "info"] {
        let o = tracer(&["analyze", s(&data()), "--fail-on", sev]);
        assert_eq!(o.status.code(), Some(1), "--fail-on {sev}");
    }
    let o = tracer(&["analyze", s(&data()), "--fail-on", "fatal"]);
    assert_eq!(o.status.code(), Some(2));
    // --expect keeps its meaning (exact kinds) and takes no gate files.
    let o = tracer(&[
        "analyze",
        s(&data()),
        "--expect",
        "held-at-return-to-user,lock-order-inversion",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tracer(&[
        "analyze",
        s(&data()),
        "--expect",
        "none",
        "--junit",
        "x.xml",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_allow_file_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.toml");
    std::fs::write(
        &allow,
        "[[allow]]\nkind = \"held-at-return-to-user\"\nreason = \"\"\n",
    )
    .unwrap();
    let o = tracer(&["analyze", s(&data()), "--allow", s(&allow)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("entry 1 (kind = \"held-at-return-to-user\") has no reason"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

/// A minimal reader of the DOT the tracer writes: `digraph NAME {`, node
/// statements `"a";`, edge statements `"a" -> "b" [k=v, ...];`, graph
/// attributes `k=v;`, `}`.
fn parse_dot(d: &str) -> (String, Vec<String>, Vec<(String, String, String)>) {
    fn quoted(s: &str) -> (String, &str) {
        let s = s.trim_start();
        assert!(s.starts_with('"'), "expected a quoted id at {s:?}");
        let mut out = String::new();
        let mut it = s[1..].char_indices();
        while let Some((i, c)) = it.next() {
            match c {
                '\\' => out.push(it.next().unwrap().1),
                '"' => return (out, &s[i + 2..]),
                c => out.push(c),
            }
        }
        panic!("unterminated string in {s:?}");
    }
    let mut lines = d.lines();
    let head = lines.next().unwrap();
    let name = head
        .strip_prefix("digraph ")
        .and_then(|h| h.strip_suffix(" {"))
        .expect("a digraph");
    let (mut nodes, mut edges) = (vec![], vec![]);
    let mut closed = false;
    for l in lines {
        let l = l.trim();
        if l == "}" {
            closed = true;
            continue;
        }
        assert!(!closed, "text after the closing brace: {l}");
        assert!(l.ends_with(';'), "statement without ';': {l}");
        if !l.starts_with('"') {
            continue; // graph/node/edge defaults
        }
        let (a, rest) = quoted(l);
        if let Some(rest) = rest.trim_start().strip_prefix("->") {
            let (b, rest) = quoted(rest);
            let attrs = rest.trim().trim_end_matches(';').trim();
            assert!(attrs.starts_with('[') && attrs.ends_with(']'), "{l}");
            edges.push((a, b, attrs.to_string()));
        } else {
            assert_eq!(rest.trim(), ";", "{l}");
            nodes.push(a);
        }
    }
    assert!(closed, "no closing brace");
    (name.to_string(), nodes, edges)
}

#[test]
fn graph_dot_has_the_classes_and_the_red_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.dot");
    let o = tracer(&["graph", s(&data()), "--dot", "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = std::fs::read_to_string(&out).unwrap();
    let (name, mut nodes, edges) = parse_dot(&d);
    assert_eq!(name, "lock_order");
    nodes.sort();
    assert_eq!(
        nodes,
        [
            "&mm->mmap_lock",
            "reservation_ww_class_acquire",
            "reservation_ww_class_mutex"
        ]
    );
    assert_eq!(edges.len(), 3);
    for (a, b, attrs) in &edges {
        assert!(nodes.contains(a) && nodes.contains(b));
        // The inversion closes a cycle through the primed order: all red.
        assert!(attrs.contains("color=red"), "{a} -> {b} {attrs}");
        let primed = attrs.contains("style=dashed");
        assert_eq!(primed, attrs.contains("primed at boot"), "{attrs}");
    }
    let observed = edges
        .iter()
        .find(|(_, _, a)| !a.contains("style=dashed"))
        .unwrap();
    assert_eq!(
        (observed.0.as_str(), observed.1.as_str()),
        ("reservation_ww_class_mutex", "&mm->mmap_lock")
    );
    assert!(observed.2.contains("label=\"sh/819 at "), "{}", observed.2);
    // Without --dot: one line per edge on stdout.
    let o = tracer(&["graph", s(&data())]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).ends_with("3 edges, 3 on cycles\n"),
        "{}",
        stdout(&o)
    );
}
