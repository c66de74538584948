//! JUnit XML for CI test views (GitLab, Jenkins, GitHub test reporters): one
//! testsuite "tracer"; per finding kind checked, one failing testcase per
//! finding at or above `--fail-on` (message = title, body = the lockdep-style
//! block with stacks) or one passing testcase when the kind found nothing.
//! Findings below the threshold pass with their block as output, allowed
//! ones are skipped with the allow reason, so the test view agrees with the
//! exit status. Setup testcases say whether hooks were missing (skipped, not
//! failing: that is what --require-hooks is for) and how the workload ended.

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::analysis::FindingKind;
use crate::events::StackTable;
use crate::gate::{Outcome, Status};

/// XML 1.0 cannot carry most control characters, even escaped; task names
/// and symbols come from the kernel and may hold any byte.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

enum Verdict {
    Pass(Option<String>),
    Fail {
        message: String,
        kind: String,
        body: String,
    },
    Skip(String, Option<String>),
}

struct Case {
    name: String,
    classname: String,
    verdict: Verdict,
}

fn cases(o: &Outcome, stacks: Option<&StackTable>) -> Vec<Case> {
    let mut v = Vec::new();
    if let Some(w) = &o.workload {
        v.push(Case {
            name: "workload".into(),
            classname: "tracer.setup".into(),
            verdict: if w.failed() {
                Verdict::Fail {
                    message: format!("workload `{}` {}", w.command, w.describe()),
                    kind: "workload".into(),
                    body: String::new(),
                }
            } else {
                Verdict::Pass(Some(format!("workload `{}` {}", w.command, w.describe())))
            },
        });
    }
    v.push(Case {
        name: "hooks".into(),
        classname: "tracer.setup".into(),
        verdict: if o.hooks_missing.is_empty() {
            Verdict::Pass(None)
        } else {
            let list: String = o
                .hooks_missing
                .iter()
                .map(|(h, r)| format!("{h}: {r}\n"))
                .collect();
            Verdict::Skip(
                format!(
                    "{} hook(s) could not be attached: what they see was not checked",
                    o.hooks_missing.len()
                ),
                Some(list),
            )
        },
    });
    for kind in FindingKind::ALL {
        let classname = format!("tracer.{}", kind.id());
        let mine: Vec<_> = o.judged.iter().filter(|j| j.finding.id == kind).collect();
        if mine.is_empty() {
            v.push(Case {
                name: kind.id().into(),
                classname: classname.clone(),
                verdict: Verdict::Pass(None),
            });
        }
        for j in mine {
            let f = &j.finding;
            let block = super::text::finding(f, stacks);
            v.push(Case {
                name: format!("{} at {}", kind.id(), f.location),
                classname: classname.clone(),
                verdict: match &j.status {
                    Status::Failing => Verdict::Fail {
                        message: f.title.clone(),
                        kind: f.severity.as_str().into(),
                        body: block,
                    },
                    Status::Below => Verdict::Pass(Some(block)),
                    Status::Suppressed { reason, .. } => {
                        Verdict::Skip(format!("allowed: {reason}"), Some(block))
                    }
                },
            });
        }
    }
    v
}

/// The JUnit document.
pub fn render(o: &Outcome, stacks: Option<&StackTable>) -> String {
    let cases = cases(o, stacks);
    let failures = cases
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Fail { .. }))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Skip(..)))
        .count();
    let time = o
        .workload
        .as_ref()
        .map(|w| format!("{:.3}", w.elapsed.as_secs_f64()))
        .unwrap_or_else(|| "0".into());
    let (n, f, s) = (
        cases.len().to_string(),
        failures.to_string(),
        skipped.to_string(),
    );
    let counts = [
        ("name", "tracer"),
        ("tests", n.as_str()),
        ("failures", f.as_str()),
        ("errors", "0"),
        ("skipped", s.as_str()),
        ("time", time.as_str()),
    ];
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail.
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .expect("in-memory write");
    w.create_element("testsuites")
        .with_attributes(counts)
        .write_inner_content(|w| {
            w.create_element("testsuite")
                .with_attributes(counts)
                .write_inner_content(|w| {
                    let subject = clean(&o.subject);
                    w.create_element("properties").write_inner_content(|w| {
                        for (k, v) in [
                            ("subject", subject.as_str()),
                            ("fail_on", o.fail_on.as_str()),
                            ("tracer_version", env!("CARGO_PKG_VERSION")),
                        ] {
                            w.create_element("property")
                                .with_attributes([("name", k), ("value", v)])
                                .write_empty()?;
                        }
                        Ok(())
                    })?;
                    for c in &cases {
                        let name = clean(&c.name);
                        let el = w.create_element("testcase").with_attributes([
                            ("name", name.as_str()),
                            ("classname", c.classname.as_str()),
                            ("time", "0"),
                        ]);
                        match &c.verdict {
                            Verdict::Pass(None) => {
                                el.write_empty()?;
                            }
                            Verdict::Pass(Some(out)) => {
                                el.write_inner_content(|w| {
                                    w.create_element("system-out")
                                        .write_text_content(BytesText::new(&clean(out)))?;
                                    Ok(())
                                })?;
                            }
                            Verdict::Fail {
                                message,
                                kind,
                                body,
                            } => {
                                el.write_inner_content(|w| {
                                    let m = clean(message);
                                    w.create_element("failure")
                                        .with_attributes([
                                            ("message", m.as_str()),
                                            ("type", kind.as_str()),
                                        ])
                                        .write_text_content(BytesText::new(&clean(body)))?;
                                    Ok(())
                                })?;
                            }
                            Verdict::Skip(message, out) => {
                                el.write_inner_content(|w| {
                                    let m = clean(message);
                                    w.create_element("skipped")
                                        .with_attribute(("message", m.as_str()))
                                        .write_empty()?;
                                    if let Some(out) = out {
                                        w.create_element("system-out")
                                            .write_text_content(BytesText::new(&clean(out)))?;
                                    }
                                    Ok(())
                                })?;
                            }
                        }
                    }
                    Ok(())
                })?;
            Ok(())
        })
        .expect("in-memory write");
    let mut s = String::from_utf8(w.into_inner()).expect("built from strings");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use crate::analysis::Severity;
    use crate::gate::{judge, Outcome, Status};
    use quick_xml::events::Event;

    #[test]
    fn synthetic_findings_make_failing_testcases() {
        let e = super::super::tests::engine();
        let mut judged = judge(e.findings(), Severity::Error, None, e.stacks());
        judged[0].status = Status::Suppressed {
            entry: 0,
            reason: "a <reason> & more".into(),
        };
        let o = Outcome {
            judged,
            fail_on: Severity::Error,
            hooks_missing: vec![("dma_buf_pin".into(), "fentry refused \u{1} (EPERM)".into())],
            workload: None,
            allow: None,
            subject: "synthetic".into(),
        };
        let want_failures = o.failing();
        assert!(want_failures > 0);
        let x = super::render(&o, e.stacks());
        let mut r = quick_xml::Reader::from_str(&x);
        let (mut failures, mut skipped, mut cases) = (0, 0, 0);
        loop {
            match r.read_event().unwrap() {
                Event::Eof => break,
                Event::Start(t) | Event::Empty(t) => match t.name().as_ref() {
                    b"testcase" => cases += 1,
                    b"failure" => failures += 1,
                    b"skipped" => skipped += 1,
                    _ => {}
                },
                _ => {}
            }
        }
        assert_eq!(failures, want_failures);
        assert_eq!(skipped, 2, "{x}");
        // hooks + one per kind without findings + one per finding.
        let mut kinds: Vec<_> = e.findings().iter().map(|f| f.id).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            cases,
            1 + (crate::analysis::FindingKind::ALL.len() - kinds.len()) + e.findings().len(),
            "{x}"
        );
        assert!(x.contains("allowed: a &lt;reason&gt; &amp; more"), "{x}");
        assert!(!x.contains('\u{1}'));
        assert!(x.contains("radeon_bo_reserve+0x1c [radeon]"));
    }
}
