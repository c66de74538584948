//! JUnit XML for CI test views (GitLab, Jenkins, GitHub test reporters): one
//! testsuite "tracer"; per finding kind checked, one failing testcase per
//! finding at or above `--fail-on` (message = title, body = the lockdep-style
//! block with stacks) or one passing testcase when the kind found nothing.
//! Findings below the threshold pass with their block as output, allowed
//! ones are skipped with the allow reason, so the test view agrees with the
//! exit status. Setup testcases say whether hooks were missing (skipped, not
//! failing: that is what --require-hooks is for) and how the workload ended.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::analysis::FindingKind;
use crate::events::StackTable;
use crate::gate::{Outcome, Status};

/// XML 1.0 cannot carry most control characters, even escaped; task names
/// and symbols come from the kernel and may hold any byte. quick-junit drops
/// them silently (C1 controls and tabs too, as terminal output); mark them
/// with U+FFFD instead so the report shows something was there, and keep tabs
/// as spaces. It lets U+FFFE and U+FFFF through, which XML does not allow.
/// Carriage returns are left to it: CRLF becomes LF, as XML readers see it.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' => ' ',
            '\n' | '\r' => c,
            '\0'..='\u{1f}' | '\u{80}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// A testcase; `out` becomes its `system-out`.
fn case(name: &str, classname: &str, status: TestCaseStatus, out: Option<&str>) -> TestCase {
    let mut c = TestCase::new(clean(name), status);
    c.set_classname(classname).set_time(Duration::ZERO);
    if let Some(out) = out {
        c.set_system_out(clean(out));
    }
    c
}

fn failure(message: &str, ty: &str, body: &str) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
    s.set_message(clean(message)).set_type(ty);
    if !body.is_empty() {
        s.set_description(clean(body));
    }
    s
}

fn skipped(message: &str) -> TestCaseStatus {
    let mut s = TestCaseStatus::skipped();
    s.set_message(clean(message));
    s
}

fn cases(o: &Outcome, stacks: Option<&StackTable>) -> Vec<TestCase> {
    let mut v = Vec::new();
    if let Some(w) = &o.workload {
        let what = format!("workload `{}` {}", w.command, w.describe());
        v.push(if w.failed() {
            case(
                "workload",
                "tracer.setup",
                failure(&what, "workload", ""),
                None,
            )
        } else {
            case(
                "workload",
                "tracer.setup",
                TestCaseStatus::success(),
                Some(&what),
            )
        });
    }
    v.push(if o.hooks_missing.is_empty() {
        case("hooks", "tracer.setup", TestCaseStatus::success(), None)
    } else {
        let list: String = o
            .hooks_missing
            .iter()
            .map(|(h, r)| format!("{h}: {r}\n"))
            .collect();
        let message = format!(
            "{} hook(s) could not be attached: what they see was not checked",
            o.hooks_missing.len()
        );
        case("hooks", "tracer.setup", skipped(&message), Some(&list))
    });
    for kind in FindingKind::ALL {
        let classname = format!("tracer.{}", kind.id());
        let mine: Vec<_> = o.judged.iter().filter(|j| j.finding.id == kind).collect();
        if mine.is_empty() {
            v.push(case(kind.id(), &classname, TestCaseStatus::success(), None));
        }
        for j in mine {
            let f = &j.finding;
            let block = super::text::finding(f, stacks);
            let name = format!("{} at {}", kind.id(), f.location);
            v.push(match &j.status {
                Status::Failing => case(
                    &name,
                    &classname,
                    failure(&f.title, f.severity.as_str(), &block),
                    None,
                ),
                Status::Below => case(&name, &classname, TestCaseStatus::success(), Some(&block)),
                Status::Suppressed { reason, .. } => case(
                    &name,
                    &classname,
                    skipped(&format!("allowed: {reason}")),
                    Some(&block),
                ),
            });
        }
    }
    v
}

/// The JUnit document. quick-junit keeps the suite and report counts.
pub fn render(o: &Outcome, stacks: Option<&StackTable>) -> String {
    let time = o.workload.as_ref().map_or(Duration::ZERO, |w| w.elapsed);
    let mut suite = TestSuite::new("tracer");
    suite
        .set_time(time)
        .add_properties([
            Property::new("subject", clean(&o.subject)),
            Property::new("fail_on", o.fail_on.as_str()),
            Property::new("tracer_version", env!("CARGO_PKG_VERSION")),
        ])
        .add_test_cases(cases(o, stacks));
    let mut report = Report::new("tracer");
    report.set_time(time).add_test_suite(suite);
    // Writing into a String cannot fail.
    report.to_string().expect("in-memory write")
}

#[cfg(test)]
mod tests {
    use crate::analysis::Severity;
    use crate::gate::{judge, Outcome, Status};
    use quick_junit::{Report, TestCaseStatus};

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
        // Read back with quick-junit's own parser: the document is well-formed
        // JUnit and its counts match its cases.
        let report = Report::deserialize_from_str(&x).expect("well-formed JUnit");
        assert_eq!(report.test_suites.len(), 1);
        let suite = &report.test_suites[0];
        let cases = suite.test_cases.len();
        let count = |want: fn(&TestCaseStatus) -> bool| {
            suite.test_cases.iter().filter(|c| want(&c.status)).count()
        };
        let failures = count(|s| matches!(s, TestCaseStatus::NonSuccess { .. }));
        let skipped = count(|s| matches!(s, TestCaseStatus::Skipped { .. }));
        assert_eq!(
            (suite.tests, suite.failures, suite.skipped),
            (cases, failures, skipped)
        );
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

    #[test]
    fn control_characters_stay_visible() {
        let o = Outcome {
            judged: vec![],
            fail_on: Severity::Error,
            hooks_missing: vec![("h\u{1b}[1m".into(), "a\tb\u{85}c\u{ffff}\r\n".into())],
            workload: None,
            allow: None,
            subject: "s".into(),
        };
        let x = super::render(&o, None);
        Report::deserialize_from_str(&x).expect("well-formed JUnit");
        // Raw text: quick-junit's reader trims it.
        assert!(
            x.contains("<system-out>h\u{fffd}[1m: a b\u{fffd}c\u{fffd}\n\n</system-out>"),
            "{x}"
        );
    }
}
