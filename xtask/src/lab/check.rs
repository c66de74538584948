//! The tracer's judgement of a lab scenario: the host runs the same tracer
//! binary the guest ran (`tracer analyze --json`) over the recording the guest
//! shipped back and compares the finding kinds with the scenario's `expect`.
//! Where a scenario declares `expect_resv_link`, it also requires that some
//! dma-buf call locked its buffer's resv at the address the tracer read
//! in-kernel (`tracer dump --resv-links`): the proof that buffer and lock
//! identities agree on that kernel.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use super::scenarios::{compare_findings, Scenario, Status, Verdict};

pub struct TracerCheck {
    /// The tracer binary (the static one built for the guest runs here too).
    pub tracer: PathBuf,
    /// Kernel series of the run (expectations may differ per series).
    pub series: String,
}

impl TracerCheck {
    fn analyze(&self, recording: &Path) -> Result<(Vec<String>, serde_json::Value)> {
        let out = Command::new(&self.tracer)
            .arg("analyze")
            .arg("--json")
            .arg(recording)
            .output()
            .with_context(|| format!("running {}", self.tracer.display()))?;
        // 0 = clean, 1 = findings; anything else is the tracer failing.
        if !matches!(out.status.code(), Some(0) | Some(1)) {
            bail!(
                "tracer analyze failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("parsing tracer analyze --json")?;
        let kinds = doc["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok((kinds, doc))
    }

    fn resv_links(&self, recording: &Path) -> Result<usize> {
        let out = Command::new(&self.tracer)
            .args(["dump", "--resv-links", "--json"])
            .arg(recording)
            .output()
            .with_context(|| format!("running {}", self.tracer.display()))?;
        let n = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["locked"] == true)
            .count();
        Ok(n)
    }

    pub fn check(&self, scenario: &Scenario, recording: &Path) -> Result<Verdict> {
        let s = scenario.for_series(&self.series);
        let (kinds, doc) = self.analyze(recording)?;
        let mut v = compare_findings(&s, &kinds);
        // Keep the human report next to the recording for whoever reads the run.
        let _ = std::fs::write(recording.with_extension("findings.json"), doc.to_string());
        if v.status == Status::Pass && s.expect_resv_link {
            let n = self.resv_links(recording)?;
            if n == 0 {
                v = Verdict::fail(
                    "no dma-buf call locked its buffer's resv at the address read in-kernel",
                );
            } else {
                v = Verdict::pass(format!(
                    "{}; {n} calls locked their buffer's resv (same address)",
                    v.detail
                ));
            }
        }
        if v.status == Status::Pass {
            if let Some(want) = s.held_lock_stacks {
                v = held_lock_stacks(&doc, &s.expect, want, v);
            }
        }
        Ok(v)
    }
}

/// Judges `held_lock_stacks`: every held lock of the findings of the `expect`ed kinds has an
/// acquisition stack (`want`) or none has (`!want`); there must be held locks to judge.
fn held_lock_stacks(doc: &serde_json::Value, expect: &[String], want: bool, v: Verdict) -> Verdict {
    let held: Vec<&serde_json::Value> = doc["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| {
            f["id"]
                .as_str()
                .is_some_and(|id| expect.iter().any(|e| e == id))
        })
        .flat_map(|f| f["held_locks"].as_array().into_iter().flatten())
        .collect();
    if held.is_empty() {
        return Verdict::fail("no held locks in the expected findings");
    }
    let with = held.iter().filter(|l| !l["stack"].is_null()).count();
    let ok = if want { with == held.len() } else { with == 0 };
    let what = format!(
        "{with} of {} held locks with an acquisition stack",
        held.len()
    );
    if ok {
        Verdict::pass(format!("{}; {what}", v.detail))
    } else {
        Verdict::fail(format!(
            "{what}, expected {}",
            if want { "all" } else { "none" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(stacks: &[Option<u32>]) -> serde_json::Value {
        let held: Vec<serde_json::Value> = stacks
            .iter()
            .map(|s| serde_json::json!({ "addr": 1, "stack": s }))
            .collect();
        serde_json::json!({ "findings": [
            { "id": "held-at-return-to-user", "held_locks": held },
            // Not expected: its held lock is not judged.
            { "id": "ww-protocol", "held_locks": [ { "addr": 2, "stack": 9 } ] },
        ] })
    }

    fn expect() -> Vec<String> {
        vec!["held-at-return-to-user".to_string()]
    }

    #[test]
    fn held_lock_stacks_all_or_none() {
        let pass = || Verdict::pass("held-at-return-to-user");
        assert_eq!(
            held_lock_stacks(&doc(&[Some(3), Some(4)]), &expect(), true, pass()).status,
            Status::Pass
        );
        assert_eq!(
            held_lock_stacks(&doc(&[Some(3), None]), &expect(), true, pass()).status,
            Status::Fail
        );
        assert_eq!(
            held_lock_stacks(&doc(&[None, None]), &expect(), false, pass()).status,
            Status::Pass
        );
        let v = held_lock_stacks(&doc(&[None, Some(1)]), &expect(), false, pass());
        assert_eq!(v.status, Status::Fail);
        assert!(v.detail.contains("1 of 2 held locks"), "{}", v.detail);
        // A finding without held locks cannot show either.
        assert_eq!(
            held_lock_stacks(&doc(&[]), &expect(), false, pass()).status,
            Status::Fail
        );
    }
}
