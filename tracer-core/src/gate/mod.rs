//! The CI verdict, shared by `tracer run` and `tracer analyze`: each finding judged
//! against the severity threshold and the allow list, the workload's end, missing hooks,
//! and the exit status a job gates on. Pure: the shells print and write what it returns.
//!
//! Exit status (both commands): 0 nothing at or above `--fail-on` (findings below it and
//! allowed ones are reported, not failing); 1 findings at or above it; 2 the tracer
//! failed (cannot load, bad options or allow file, the workload could not be started, a
//! required hook missing); 3 (run only) no failing finding but the workload failed:
//! non-zero exit, killed by a signal, or stopped at `--timeout`. Findings win over a
//! failed workload: the tracer's verdict is about locking, the workload's own failures
//! are its test runner's to report.

pub mod allow;

use std::time::Duration;

use crate::{
    analysis::{Finding, Severity},
    events::StackTable,
    kernel::{ProbeState, ProbeStatus},
};

pub use allow::AllowList;

/// Exit status: findings were reported (at or above the threshold).
pub const EXIT_FINDINGS: u8 = 1;
/// Exit status when the tracer itself failed.
pub const EXIT_FAILURE: u8 = 2;
/// Exit status: no failing finding, but the workload failed or timed out.
pub const EXIT_WORKLOAD: u8 = 3;

/// What the gate decided for one finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// At or above `--fail-on`, not allowed.
    Failing,
    /// Below `--fail-on`: reported, not failing.
    Below,
    /// Allowed by entry `entry` (0-based) of the allow file.
    Suppressed { entry: usize, reason: String },
}

#[derive(Clone, Debug)]
pub struct Judged {
    pub finding: Finding,
    pub status: Status,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadEnd {
    Exited(i32),
    Signaled(i32),
    TimedOut(Duration),
    /// The tracer was asked to stop (Ctrl-C, SIGTERM) and stopped the workload.
    Interrupted,
}

#[derive(Clone, Debug)]
pub struct Workload {
    /// The command line as typed (for messages).
    pub command: String,
    pub end: WorkloadEnd,
    pub elapsed: Duration,
}

impl Workload {
    pub fn failed(&self) -> bool {
        self.end != WorkloadEnd::Exited(0)
    }

    /// `exited with status 0 after 0.004 s`, ...
    pub fn describe(&self) -> String {
        let after = format!("after {:.3} s", self.elapsed.as_secs_f64());
        match &self.end {
            WorkloadEnd::Exited(c) => format!("exited with status {c} {after}"),
            WorkloadEnd::Signaled(s) => format!("was killed by signal {s} {after}"),
            WorkloadEnd::TimedOut(d) => format!(
                "timed out after {} and was stopped ({after})",
                humantime::format_duration(*d)
            ),
            WorkloadEnd::Interrupted => {
                format!("was stopped: the tracer was interrupted ({after})")
            }
        }
    }
}

/// Everything the reports need besides the stacks.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub judged: Vec<Judged>,
    pub fail_on: Severity,
    /// Hooks that could not be attached (state FAILED), with the kernel's reason.
    pub hooks_missing: Vec<(String, String)>,
    pub workload: Option<Workload>,
    pub allow: Option<AllowList>,
    /// What was analysed: the recording, or `run: CMD`.
    pub subject: String,
}

impl Outcome {
    pub fn count(&self, want: fn(&Status) -> bool) -> usize {
        self.judged.iter().filter(|j| want(&j.status)).count()
    }

    pub fn failing(&self) -> usize {
        self.count(|s| *s == Status::Failing)
    }

    /// The findings not allowed by the allow list (failing or below the threshold), in
    /// order: what the reports show as findings.
    pub fn active(&self) -> Vec<Finding> {
        self.judged
            .iter()
            .filter(|j| !matches!(j.status, Status::Suppressed { .. }))
            .map(|j| j.finding.clone())
            .collect()
    }

    pub fn suppressed(&self) -> usize {
        self.count(|s| matches!(s, Status::Suppressed { .. }))
    }

    pub fn exit_code(&self) -> u8 {
        if self.failing() > 0 {
            EXIT_FINDINGS
        } else if self.workload.as_ref().is_some_and(Workload::failed) {
            EXIT_WORKLOAD
        } else {
            0
        }
    }

    /// The last line of a report: the verdict and why.
    pub fn verdict_line(&self) -> String {
        let code = self.exit_code();
        let mut s = format!(
            "verdict: {} (exit {code}): {} finding{} at or above {}, {} below, {} suppressed",
            if code == 0 { "pass" } else { "FAIL" },
            self.failing(),
            if self.failing() == 1 { "" } else { "s" },
            self.fail_on.as_str(),
            self.count(|s| *s == Status::Below),
            self.suppressed()
        );
        if let Some(w) = &self.workload {
            s.push_str(&format!("; workload {}", w.describe()));
        }
        if !self.hooks_missing.is_empty() {
            s.push_str(&format!(
                "; {} hook{} unavailable",
                self.hooks_missing.len(),
                if self.hooks_missing.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ));
        }
        s
    }
}

/// Severity threshold and allow list applied to findings, in order.
pub fn judge(
    findings: &[Finding],
    fail_on: Severity,
    allow: Option<&AllowList>,
    stacks: Option<&StackTable>,
) -> Vec<Judged> {
    findings
        .iter()
        .map(|f| {
            let status = match allow.and_then(|a| a.matches(f, stacks).map(|i| (i, a))) {
                Some((entry, a)) => Status::Suppressed {
                    entry,
                    reason: a.entries[entry].reason.clone(),
                },
                None if f.severity >= fail_on => Status::Failing,
                None => Status::Below,
            };
            Judged {
                finding: f.clone(),
                status,
            }
        })
        .collect()
}

/// Hooks that could not be attached (state FAILED), with the kernel's reason.
pub fn missing_hooks(probes: &[ProbeStatus]) -> Vec<(String, String)> {
    probes
        .iter()
        .filter(|p| p.state == ProbeState::Failed)
        .map(|p| (p.hook.clone(), p.reason.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::FindingKind;
    use std::path::Path;

    /// A lab recording (6.12, scenario return-to-user-holding): two error
    /// findings, held-at-return-to-user and lock-order-inversion.
    pub(crate) fn lab() -> (Vec<Finding>, Option<StackTable>) {
        let e = crate::replay::tests::lab_recording("return-to-user-holding.rec").engine;
        (e.findings().to_vec(), e.stacks().cloned())
    }

    fn mk(judged: Vec<Judged>, workload: Option<Workload>) -> Outcome {
        Outcome {
            judged,
            fail_on: Severity::Error,
            hooks_missing: vec![],
            workload,
            allow: None,
            subject: "t".into(),
        }
    }

    #[test]
    fn threshold_and_allow_decide_the_exit_code() {
        let (fs, st) = lab();
        assert!(fs.iter().any(|f| f.id == FindingKind::HeldAtReturnToUser));
        let o = mk(judge(&fs, Severity::Error, None, st.as_ref()), None);
        assert_eq!(o.exit_code(), 1);
        assert_eq!(o.failing(), fs.len());
        // One by a stack symbol glob, one by kind.
        let allow = AllowList::parse(
            "[[allow]]\nkind = \"held-at-return-to-user\"\nsymbol = \"tsc_return_*\"\nreason = \"scenario\"\n[[allow]]\nkind = \"lock-order-inversion\"\nreason = \"scenario too\"\n",
            Path::new("a.toml"),
        )
        .unwrap();
        let mut o = mk(judge(&fs, Severity::Error, Some(&allow), st.as_ref()), None);
        o.allow = Some(allow);
        assert_eq!(o.failing(), 0);
        assert_eq!(o.suppressed(), 2);
        assert_eq!(o.exit_code(), 0);
        let text = crate::report::text::gate_report(&o, st.as_ref());
        assert!(text.contains("suppressed by a.toml:"), "{text}");
        assert!(text.contains("allowed at line 5: scenario too"), "{text}");
        assert!(text.ends_with("suppressed\n"), "{text}");
        let failed = Workload {
            command: "w".into(),
            end: WorkloadEnd::Exited(4),
            elapsed: Duration::from_millis(5),
        };
        let o = mk(vec![], Some(failed.clone()));
        assert_eq!(o.exit_code(), EXIT_WORKLOAD);
        assert!(o.verdict_line().contains("workload exited with status 4"));
        // Findings win over the workload's failure.
        let o = mk(judge(&fs, Severity::Error, None, st.as_ref()), Some(failed));
        assert_eq!(o.exit_code(), 1);
    }

    #[test]
    fn below_threshold_is_reported_not_failing() {
        let (mut fs, st) = lab();
        for f in &mut fs {
            f.severity = Severity::Warning;
        }
        let j = judge(&fs, Severity::Error, None, st.as_ref());
        assert!(j.iter().all(|j| j.status == Status::Below));
        assert_eq!(mk(j, None).exit_code(), 0);
        let j = judge(&fs, Severity::Warning, None, st.as_ref());
        assert!(j.iter().all(|j| j.status == Status::Failing));
        let j = judge(&fs, Severity::Info, None, st.as_ref());
        assert!(j.iter().all(|j| j.status == Status::Failing));
    }
}
