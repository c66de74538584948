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
        Ok(v)
    }
}
