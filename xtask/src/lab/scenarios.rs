//! Scenarios (data in tests/lab/scenarios.toml), the guest script that runs them under the
//! tracer, and the verdicts.
//!
//! Per scenario the guest starts `tracer record -o /out/<name>.rec --ready-file
//! /tmp/ready.<name>`, waits until the tracer created the ready file, runs the trigger, stops
//! the tracer with SIGINT and ships the recording, the tracer's stderr, the trigger's output
//! and a status file. On the host they land in `<run>/files/<name>/`:
//!
//! | file | what |
//! |---|---|
//! | `<name>.rec` | the recording (absent with `--no-tracer`) |
//! | `tracer.stderr` | the tracer's stderr |
//! | `trigger.out` | stdout+stderr of the trigger |
//! | `status` | `key=value` lines: `ready` (ok/failed), `trigger`, `tracer` (exit codes), `sigint=ignored` (killed after 30 s; thread stacks in `tracer.stuck`), and seconds: `ready_after`, `trigger_took`, `stop_after`, `elapsed` |

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::repo_root;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Shell command run in the guest as the trigger (workload binaries are in PATH).
    #[serde(default)]
    pub trigger: Option<String>,
    /// Name of a lab module the scenario needs (built for the kernel, in the guest). Without
    /// `trigger` its debugfs file triggers the scenario: `echo 1 >
    /// /sys/kernel/debug/<module>/<name>`.
    #[serde(default)]
    pub module: Option<String>,
    /// Shell command run in the guest after the tracer stopped (cleanup).
    #[serde(default)]
    pub after: Option<String>,
    /// Kernel series (`6.1`, `6.12`, `7.3`) on which the scenario cannot exist, with why.
    #[serde(default)]
    pub unavailable: BTreeMap<String, String>,
    /// Finding kinds the tracer must report; empty means the run must be clean.
    #[serde(default)]
    pub expect: Vec<String>,
    /// Per-series override of `expect`.
    #[serde(default)]
    pub expect_on: BTreeMap<String, Vec<String>>,
    /// Real driver traffic: some dma-buf call must lock its buffer's resv at the address the
    /// tracer read in-kernel (`tracer dump --resv-links`).
    #[serde(default)]
    pub expect_resv_link: bool,
    /// Whether the held locks of the findings come with their acquisition stack (true) or
    /// without it (false: kept back without their call site, docs/probes.md).
    #[serde(default)]
    pub held_lock_stacks: Option<bool>,
    /// Per expected kind: the location (dedup key: the innermost driver frame) some finding of
    /// that kind must have. Required for every expected kind (a test keeps it so).
    #[serde(default)]
    pub expect_location: BTreeMap<String, String>,
    /// Per expected kind: the callback (`member=symbol`) some finding of that kind must name.
    #[serde(default)]
    pub expect_callback: BTreeMap<String, String>,
    /// Per expected kind: the rule variant (`second-ctx`, `convention`, ...) some finding of
    /// that kind must have. Required for ww-protocol.
    #[serde(default)]
    pub expect_variant: BTreeMap<String, String>,
    /// What the tracer must have seen, at least: entries per dma-buf function (kernel name) or
    /// callback (`dma_buf_ops.<member>`), `acquisitions` (ww_mutex locks taken) and
    /// `fence_waits`. Required for every clean scenario: a broken hook must not pass as clean.
    #[serde(default)]
    pub expect_min: BTreeMap<String, u64>,
    /// Per-series override of `expect_min` (a path that does not exist on that kernel).
    #[serde(default)]
    pub expect_min_on: BTreeMap<String, BTreeMap<String, u64>>,
    /// The trigger runs a tracer of its own and writes its recording to
    /// `/tmp/own-recording.rec`: that recording, not the boot tracer's segment, is judged.
    #[serde(default)]
    pub own_recording: bool,
}

impl Scenario {
    pub fn trigger_command(&self) -> String {
        match (&self.trigger, &self.module) {
            (Some(t), _) => t.clone(),
            (None, Some(m)) => format!("echo 1 > /sys/kernel/debug/{m}/{}", self.name),
            (None, None) => "false".into(),
        }
    }

    /// This scenario as it applies to a kernel of `series` (`expect` resolved).
    pub fn for_series(&self, series: &str) -> Scenario {
        let mut s = self.clone();
        if let Some(e) = self.expect_on.get(series) {
            s.expect = e.clone();
        }
        if let Some(m) = self.expect_min_on.get(series) {
            s.expect_min = m.clone();
        }
        s
    }

    /// Why the scenario cannot run on a kernel of `series`, if it cannot.
    pub fn unavailable_on(&self, series: &str) -> Option<&str> {
        self.unavailable.get(series).map(String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scenario: Vec<Scenario>,
}

pub fn scenarios_file() -> PathBuf {
    repo_root().join("tests/lab/scenarios.toml")
}

pub fn load() -> Result<Vec<Scenario>> {
    let path = scenarios_file();
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: File =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    for s in &file.scenario {
        if s.trigger.is_none() && s.module.is_none() {
            anyhow::bail!("scenario {}: set `trigger`, `module` or both", s.name);
        }
    }
    Ok(file.scenario)
}

/// `6.12.95+deb12-amd64` -> `6.12`: the key `unavailable` uses.
pub fn series(kver: &str) -> String {
    kver.split(|c: char| !c.is_ascii_digit())
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

/// The guest script for a list of scenarios. `tracer` says whether /bin/tracer is present.
///
/// With the tracer, one tracer serves the whole boot: it attaches once (seconds under TCG),
/// records the whole boot (`boot.rec`, what the demo replays) and cuts its stream into one
/// recording per scenario through its control FIFO
/// (`tracer record --segments`), each command acknowledged on a second FIFO, so the guest
/// waits on the tracer's answers, not on time. A scenario's recording is closed only after
/// the tracer drained every event the kernel queued before the `stop` command.
/// `tracer_args` go to every `tracer record` of the guest (`$TRACER_ARGS`).
pub fn guest_script(list: &[&Scenario], tracer: bool, tracer_args: &str) -> String {
    let mut s = String::from(". /lab/lib.sh\n");
    // Single-quoted for the shell: a ' in the arguments closes and reopens.
    s.push_str(&format!(
        "export TRACER_ARGS='{}'\n",
        tracer_args.replace('\'', "'\\''")
    ));
    s.push_str(RUN_SCENARIO);
    if tracer {
        s.push_str("start_tracer\n");
    }
    for sc in list {
        s.push_str(&format!(
            "cat > /tmp/trigger.{name} <<'LAB_TRIGGER_EOF'\n{cmd}\nLAB_TRIGGER_EOF\n\
             cat > /tmp/after.{name} <<'LAB_TRIGGER_EOF'\n{after}\nLAB_TRIGGER_EOF\n\
             run_scenario {name} {tracer}\n",
            name = sc.name,
            cmd = sc.trigger_command(),
            after = sc.after.as_deref().unwrap_or("true"),
            tracer = if tracer { 1 } else { 0 },
        ));
    }
    if tracer {
        s.push_str("stop_tracer\n");
    }
    s
}

const RUN_SCENARIO: &str = r#"
uptime_s() { cut -d' ' -f1 /proc/uptime; }
tp=

start_tracer() {
	mkdir -p /out/recs
	t0=$(uptime_s)
	/bin/tracer record $TRACER_ARGS -o /out/boot.rec --segments /out/recs --control $LAB_CTL --ack $LAB_ACK 2> /out/tracer.stderr &
	tp=$!
	if ! tracer_ready $tp; then
		cat /out/tracer.stderr; tp=; return 1
	fi
	echo "LAB: tracer ready after $(awk "BEGIN{print $(uptime_s) - $t0}") s"
	echo "ready_after=$(awk "BEGIN{print $(uptime_s) - $t0}")" > /out/tracer.status
}

# run_scenario NAME WITH_TRACER
run_scenario() {
	name=$1
	d=/out/$name
	mkdir -p "$d"
	echo "LAB-SCENARIO $name"
	t0=$(uptime_s)
	if [ "$2" = 1 ]; then
		if [ -z "$tp" ] || ! kill -0 $tp 2>/dev/null; then
			echo "ready=failed" >> "$d/status"
			ship_tree "$d" "$name"
			return
		fi
		a=$(ask "start $name")
		echo "ready=$([ "$a" = "started $name" ] && echo ok || echo "failed: $a")" >> "$d/status"
	fi
	tt=$(uptime_s)
	sh /tmp/trigger.$name > "$d/trigger.out" 2>&1
	echo "trigger=$?" >> "$d/status"
	echo "trigger_took=$(awk "BEGIN{print $(uptime_s) - $tt}")" >> "$d/status"
	if [ "$2" = 1 ]; then
		a=$(ask stop)
		echo "stopped=$a" >> "$d/status"
		echo "tracer=0" >> "$d/status"
		mv /out/recs/$name.rec "$d/$name.rec" 2>/dev/null
		# A scenario that ran a tracer of its own is judged on that tracer's recording.
		if [ -f /tmp/own-recording.rec ]; then
			mv /tmp/own-recording.rec "$d/$name.rec"
			echo "recording=own" >> "$d/status"
		fi
	fi
	echo "elapsed=$(awk "BEGIN{print $(uptime_s) - $t0}")" >> "$d/status"
	sh /tmp/after.$name >> "$d/trigger.out" 2>&1
	ship_tree "$d" "$name"
}

# stop_tracer: SIGINT, then wait (bounded: 300 x 0.1 s) before SIGKILL. Every scenario's
# recording is already closed; this only checks that the tracer stops cleanly.
stop_tracer() {
	[ -n "$tp" ] || return 0
	kill -INT $tp 2>/dev/null
	ts=$(uptime_s)
	i=0
	while kill -0 $tp 2>/dev/null && [ "$i" -lt 300 ]; do
		i=$((i + 1))
		sleep 0.1
	done
	if kill -0 $tp 2>/dev/null; then
		echo "LAB: tracer still running 30 s after SIGINT; killing it"
		echo "sigint=ignored" >> /out/tracer.status
		kill -KILL $tp
	fi
	wait $tp
	echo "tracer=$?" >> /out/tracer.status
	echo "stop_after=$(awk "BEGIN{print $(uptime_s) - $ts}")" >> /out/tracer.status
	ship /out/tracer.stderr tracer.stderr
	ship /out/tracer.status tracer.status
	ship /out/boot.rec boot.rec
	tp=
}
"#;

/// Outcome of one scenario on one kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// The scenario cannot exist on this kernel (from `unavailable`), or was not run.
    Skip,
    /// No tracer in the guest: only the trigger ran (and succeeded).
    TriggerOnly,
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub status: Status,
    pub detail: String,
}

impl Verdict {
    pub fn pass(d: impl Into<String>) -> Self {
        Verdict {
            status: Status::Pass,
            detail: d.into(),
        }
    }
    pub fn fail(d: impl Into<String>) -> Self {
        Verdict {
            status: Status::Fail,
            detail: d.into(),
        }
    }
    pub fn skip(d: impl Into<String>) -> Self {
        Verdict {
            status: Status::Skip,
            detail: d.into(),
        }
    }
}

/// The per-scenario judgement the tracer plugs in: given the scenario (with its `expect`
/// list) and the recording, say whether the tracer's findings match. It is only called
/// when the tracer was ready, the trigger exited 0 and the recording was shipped; files
/// next to the recording (see the module docs) are available too.
pub trait Check {
    fn check(&self, scenario: &Scenario, recording: &Path) -> Result<Verdict>;
}

impl<F: Fn(&Scenario, &Path) -> Result<Verdict>> Check for F {
    fn check(&self, scenario: &Scenario, recording: &Path) -> Result<Verdict> {
        self(scenario, recording)
    }
}

/// Until the tracer's analysis is wired in: the recording must exist and be non-empty.
pub fn default_check(_scenario: &Scenario, recording: &Path) -> Result<Verdict> {
    let len = fs::metadata(recording).map(|m| m.len()).unwrap_or(0);
    Ok(if len > 0 {
        Verdict::pass(format!("recording {len} bytes (findings not analysed yet)"))
    } else {
        Verdict::fail("recording empty")
    })
}

/// Compare the finding kinds a checker extracted with the scenario's expectation (as sets),
/// for checkers that only need that.
pub fn compare_findings(scenario: &Scenario, found: &[String]) -> Verdict {
    let mut want: Vec<&str> = scenario.expect.iter().map(String::as_str).collect();
    let mut got: Vec<&str> = found.iter().map(String::as_str).collect();
    want.sort();
    want.dedup();
    got.sort();
    got.dedup();
    let show = |v: &[&str]| {
        if v.is_empty() {
            "clean".to_string()
        } else {
            v.join(",")
        }
    };
    if want == got {
        Verdict::pass(show(&got))
    } else {
        Verdict::fail(format!("expected {}, found {}", show(&want), show(&got)))
    }
}

/// What one scenario produced on one kernel.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    pub scenario: Scenario,
    pub kernel: String,
    /// `<run>/files/<name>/`: recording, tracer.stderr, trigger.out, status.
    pub dir: PathBuf,
    /// `<dir>/<name>.rec`.
    pub recording: PathBuf,
    pub status: BTreeMap<String, String>,
    pub verdict: Verdict,
}

/// Judge one scenario from the files the guest shipped.
pub fn judge(
    scenario: &Scenario,
    kernel: &str,
    files_dir: &Path,
    tracer: bool,
    check: &dyn Check,
) -> ScenarioRun {
    let scenario = &scenario.for_series(kernel);
    let dir = files_dir.join(&scenario.name);
    let recording = dir.join(format!("{}.rec", scenario.name));
    let status: BTreeMap<String, String> = fs::read_to_string(dir.join("status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let last_line = |f: &str| {
        fs::read_to_string(dir.join(f))
            .unwrap_or_default()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    };
    let verdict = if status.is_empty() {
        Verdict::fail("no results shipped from the guest")
    } else if status.get("ready").is_some_and(|r| r != "ok") {
        Verdict::fail(format!("tracer not ready: {}", last_tracer_line(files_dir)))
    } else if status.get("trigger").map(String::as_str) != Some("0") {
        Verdict::fail(format!(
            "trigger exited {}: {}",
            status.get("trigger").map(String::as_str).unwrap_or("?"),
            last_line("trigger.out")
        ))
    } else if !tracer {
        Verdict {
            status: Status::TriggerOnly,
            detail: last_line("trigger.out"),
        }
    } else if !recording.exists() {
        Verdict::fail(format!(
            "no recording ({}): {}",
            status
                .get("stopped")
                .map(String::as_str)
                .unwrap_or("tracer gave no answer"),
            last_tracer_line(files_dir)
        ))
    } else if scenario.own_recording && status.get("recording").map(String::as_str) != Some("own") {
        Verdict::fail("the trigger's own tracer left no recording (/tmp/own-recording.rec)")
    } else {
        check
            .check(scenario, &recording)
            .unwrap_or_else(|e| Verdict::fail(format!("check failed: {e:#}")))
    };
    ScenarioRun {
        scenario: scenario.clone(),
        kernel: kernel.to_string(),
        dir,
        recording,
        status,
        verdict,
    }
}

/// The last line the boot's tracer wrote on stderr (one tracer serves every scenario).
fn last_tracer_line(files_dir: &Path) -> String {
    fs::read_to_string(files_dir.join("tracer.stderr"))
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no tracer output shipped)")
        .to_string()
}

/// Print the verdict table.
pub fn print_table(runs: &[ScenarioRun]) {
    let w = runs
        .iter()
        .map(|r| r.scenario.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:<7} {:<w$} {:<14} {:>7}  detail",
        "kernel", "scenario", "verdict", "time"
    );
    for r in runs {
        let v = match r.verdict.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
            Status::TriggerOnly => "ran(no-tracer)",
        };
        let t = r
            .status
            .get("elapsed")
            .map(|e| format!("{e}s"))
            .unwrap_or_default();
        println!(
            "{:<7} {:<w$} {:<14} {:>7}  {}",
            r.kernel, r.scenario.name, v, t, r.verdict.detail
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_toml_parses() {
        let list = load().unwrap();
        assert!(list.iter().any(|s| s.name == "udmabuf-vgem-import"));
        let mut names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), list.len(), "duplicate scenario names");
    }

    /// The lab is mostly other people's code: on every kernel, scenarios that run real
    /// drivers alone (no module of ours) outnumber those that need our scenario module, and
    /// there are at least 12 of them, so a clean matrix says something about the drivers
    /// users run.
    #[test]
    fn real_drivers_are_the_majority_on_every_kernel() {
        let list = load().unwrap();
        for series in ["6.1", "6.12", "7.3"] {
            let runs: Vec<&Scenario> = list
                .iter()
                .filter(|s| s.unavailable_on(series).is_none())
                .collect();
            let real = runs.iter().filter(|s| s.module.is_none()).count();
            assert!(
                real * 2 > runs.len() && real >= 12,
                "{series}: {real} of {} scenarios run real drivers only",
                runs.len()
            );
        }
    }

    /// Every scenario that expects a finding says where, and (ww-protocol) which rule; every
    /// clean scenario says what it drove. Checked for every series a scenario runs on.
    #[test]
    fn expectations_are_specific() {
        for s in load().unwrap() {
            for series in ["6.1", "6.12", "7.3"] {
                if s.unavailable_on(series).is_some() {
                    continue;
                }
                let r = s.for_series(series);
                for k in &r.expect {
                    assert!(
                        r.expect_location.contains_key(k),
                        "{} on {series}: expects {k} but gives no expect_location for it",
                        s.name
                    );
                    if k == "ww-protocol" {
                        assert!(
                            r.expect_variant.contains_key(k),
                            "{}: ww-protocol without expect_variant",
                            s.name
                        );
                    }
                }
                if r.expect.is_empty() {
                    assert!(
                        !r.expect_min.is_empty(),
                        "{} on {series}: a clean scenario must say what the tracer saw (expect_min)",
                        s.name
                    );
                }
            }
            for k in s
                .expect_location
                .keys()
                .chain(s.expect_callback.keys())
                .chain(s.expect_variant.keys())
            {
                let anywhere = s.expect.contains(k) || s.expect_on.values().any(|e| e.contains(k));
                assert!(
                    anywhere,
                    "{}: detail for {k}, which it never expects",
                    s.name
                );
            }
        }
    }

    #[test]
    fn series_of_kver() {
        assert_eq!(series("6.12.95+deb12-amd64"), "6.12");
        assert_eq!(series("6.1.0-50-amd64"), "6.1");
        assert_eq!(series("7.3.4+deb13-amd64"), "7.3");
    }

    #[test]
    fn findings() {
        let s = Scenario {
            name: "x".into(),
            description: String::new(),
            trigger: Some("true".into()),
            module: None,
            after: None,
            unavailable: BTreeMap::new(),
            expect: vec!["exporter-relock".into()],
            expect_on: BTreeMap::new(),
            expect_resv_link: false,
            held_lock_stacks: None,
            expect_location: BTreeMap::new(),
            expect_callback: BTreeMap::new(),
            expect_variant: BTreeMap::new(),
            expect_min: BTreeMap::new(),
            expect_min_on: BTreeMap::new(),
            own_recording: false,
        };
        assert_eq!(
            compare_findings(&s, &["exporter-relock".into()]).status,
            Status::Pass
        );
        assert_eq!(compare_findings(&s, &[]).status, Status::Fail);
    }
}
