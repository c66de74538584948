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
        if v.status == Status::Pass {
            v = match specifics(&doc, &s) {
                Ok(d) if d.is_empty() => v,
                Ok(d) => Verdict::pass(format!("{}; {d}", v.detail)),
                Err(e) => Verdict::fail(e),
            };
        }
        Ok(v)
    }
}

/// Judges what a scenario says beyond the kinds: for each expected kind, that some finding of
/// it has the expected location, callback (`member=symbol`) and variant; and that the tracer
/// saw at least `expect_min` of each call, callback, acquisition or fence wait.
fn specifics(doc: &serde_json::Value, s: &Scenario) -> Result<String, String> {
    let findings: Vec<&serde_json::Value> =
        doc["findings"].as_array().into_iter().flatten().collect();
    for kind in &s.expect {
        let of_kind: Vec<&&serde_json::Value> = findings
            .iter()
            .filter(|f| f["id"] == kind.as_str())
            .collect();
        let field = |f: &serde_json::Value, what: &str| -> String {
            match what {
                "location" => f["location"].as_str().unwrap_or("").to_string(),
                "variant" => f["variant"].as_str().unwrap_or("").to_string(),
                _ => match (
                    f["callback"]["member"].as_str(),
                    f["callback"]["symbol"].as_str(),
                ) {
                    (Some(m), Some(sym)) => format!("{m}={sym}"),
                    _ => "(none)".to_string(),
                },
            }
        };
        for (what, want) in [
            ("location", s.expect_location.get(kind)),
            ("callback", s.expect_callback.get(kind)),
            ("variant", s.expect_variant.get(kind)),
        ] {
            let Some(want) = want else { continue };
            // `a|b`: either (a callback renamed between kernels).
            if !of_kind
                .iter()
                .any(|f| want.split('|').any(|w| field(f, what) == w))
            {
                let got: Vec<String> = of_kind.iter().map(|f| field(f, what)).collect();
                return Err(format!(
                    "{kind}: expected {what} {want}, found {}",
                    got.join(", ")
                ));
            }
        }
    }
    let stats = &doc["stats"];
    let mut seen = Vec::new();
    for (what, min) in &s.expect_min {
        let n = match what.as_str() {
            "acquisitions" | "fence_waits" | "mmap_locks" | "callbacks" | "api_calls"
            | "locks_gone" | "module_loads" => stats[what.as_str()].as_u64().unwrap_or(0),
            // Every ww_mutex acquisition, sent or kept back in the kernel (lone ones, and
            // repeats the novelty filter kept; counted per thread and reported at its exit).
            "locks" => {
                stats["acquisitions"].as_u64().unwrap_or(0)
                    + stats["lone_acquisitions"].as_u64().unwrap_or(0)
                    + stats["summarised_acquisitions"].as_u64().unwrap_or(0)
            }
            // Calls sent, and calls the kernel's call filter counted and left unsent.
            call => {
                stats["calls"][call].as_u64().unwrap_or(0)
                    + stats["calls_summarised"][call].as_u64().unwrap_or(0)
            }
        };
        if n < *min {
            return Err(format!("saw {n} {what}, expected at least {min}"));
        }
        seen.push(format!("{what} {n}"));
    }
    Ok(if seen.is_empty() {
        String::new()
    } else {
        format!("saw {}", seen.join(", "))
    })
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

    fn scenario(expect: &[&str]) -> Scenario {
        let mut s: Scenario =
            toml::from_str("name = \"x\"\ndescription = \"\"\ntrigger = \"true\"").unwrap();
        s.expect = expect.iter().map(|k| k.to_string()).collect();
        s
    }

    #[test]
    fn specifics_compare_location_callback_variant_and_counts() {
        let doc = serde_json::json!({
            "findings": [
                { "id": "ww-protocol", "location": "tsc_helper", "variant": "second-ctx",
                  "callback": null },
                { "id": "exporter-relock", "location": "tsc_relock_pin",
                  "callback": { "member": "pin", "symbol": "tsc_relock_pin" } },
            ],
            "stats": { "acquisitions": 4, "fence_waits": 0,
                       "calls": { "dma_buf_attach": 2, "dma_buf_ops.pin": 1 } }
        });
        let mut s = scenario(&["ww-protocol", "exporter-relock"]);
        s.expect_location
            .insert("ww-protocol".into(), "tsc_helper".into());
        s.expect_variant
            .insert("ww-protocol".into(), "second-ctx".into());
        s.expect_callback
            .insert("exporter-relock".into(), "pin=tsc_relock_pin".into());
        s.expect_min.insert("dma_buf_attach".into(), 2);
        s.expect_min.insert("acquisitions".into(), 3);
        assert!(specifics(&doc, &s).is_ok());
        // Each mismatch fails, naming what it found.
        let mut bad = s.clone();
        bad.expect_variant
            .insert("ww-protocol".into(), "no-backoff".into());
        let e = specifics(&doc, &bad).unwrap_err();
        assert!(e.contains("second-ctx"), "{e}");
        let mut bad = s.clone();
        bad.expect_location
            .insert("exporter-relock".into(), "elsewhere".into());
        assert!(specifics(&doc, &bad).is_err());
        let mut bad = s.clone();
        bad.expect_callback
            .insert("exporter-relock".into(), "map_dma_buf=x".into());
        assert!(specifics(&doc, &bad).is_err());
        let mut bad = s.clone();
        bad.expect_min.insert("dma_buf_ops.map_dma_buf".into(), 1);
        assert!(specifics(&doc, &bad).unwrap_err().contains("saw 0"));
        let mut bad = s;
        bad.expect_min.insert("fence_waits".into(), 1);
        assert!(specifics(&doc, &bad).is_err());
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
