//! `cargo xtask lab`: boot real Debian kernels in qemu with real dma-buf drivers, run
//! scenarios under the tracer and bring the recordings back. See docs/lab.md.
//!
//! Entry points for other code (the tracer's integration tests):
//! - [`run_scenarios`] boots one kernel, runs scenarios and judges each with a [`Check`].
//! - [`boot_guest`] boots one kernel with any guest script and returns the shipped files.

// Parts of this module are API for the tracer's checks and unused by the CLI itself.
#![allow(dead_code)]

mod bench;
pub mod bpftrace;
pub mod check;
mod cycles;
mod initramfs;
pub mod kernels;
pub mod modules;
pub mod payload;
pub mod qemu;
pub mod scenarios;
mod soak;

use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// Re-exported for the checks the tracer plugs in; not all are used by the CLI itself.
#[allow(unused_imports)]
pub use scenarios::{
    compare_findings, default_check, Check, Scenario, ScenarioRun, Status, Verdict,
};

#[derive(Args, Debug, Clone)]
pub struct LabArgs {
    /// Kernel: a short name (6.1, 6.12, 7.3) or the Debian package version of a kernel image.
    #[arg(long, default_value = kernels::DEFAULT_KERNEL)]
    pub kernel: String,
    /// Run on every kernel of the table (6.1, 6.12, 7.3) instead of --kernel.
    #[arg(long)]
    pub matrix: bool,
    /// Scenarios to run: names from tests/lab/scenarios.toml, comma-separated, or `all`.
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Keep the initramfs and its staging tree (results are always kept).
    #[arg(long)]
    pub keep: bool,
    /// Build this out-of-tree module against the kernel and load it in the guest (before the
    /// script runs, under the tracer). Needs --run or --payload.
    #[arg(long)]
    pub module: Option<PathBuf>,
    /// With --module: guest shell script to run while the tracer records.
    #[arg(long, requires = "module", conflicts_with = "payload")]
    pub run: Option<PathBuf>,
    /// Your own user space in the guest: every file of DIR goes to /lab/user/, with the shared
    /// libraries its programs need (from DIR or the host) and the dynamic loader, and
    /// DIR/run.sh runs (in /lab/user) while the tracer records; with or without --module. The
    /// guest is given 30 minutes unless --timeout says otherwise (TCG runs code 10-50x slower
    /// than the host). docs/lab.md, "Bring your own suite".
    #[arg(long, value_name = "DIR")]
    pub payload: Option<PathBuf>,
    /// With --module or --payload: write the report here instead of stdout.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Boot and run this shell command in the guest instead of scenarios; files it writes
    /// under /out come back to the host.
    #[arg(long, conflicts_with_all = ["module", "payload"])]
    pub shell_cmd: Option<String>,
    /// With --shell-cmd: put Debian's bpftrace and its libraries into the guest
    /// (/usr/bin/bpftrace; fetched once into lab-cache/bpftrace/).
    #[arg(long, requires = "shell_cmd")]
    pub with_bpftrace: bool,
    /// Do not build or use the tracer: only the triggers run (to test the lab itself).
    #[arg(long)]
    pub no_tracer: bool,
    /// Use this prebuilt static tracer binary instead of building one.
    #[arg(long, conflicts_with = "no_tracer")]
    pub tracer: Option<PathBuf>,
    /// Extra options for every `tracer record` the scenarios start (the boot's tracer and
    /// the ones scenarios start by hand), e.g. `--tracer-args "--hooks fentry"` to run the
    /// scenarios on fentry hooks on a kernel where the tracer would choose kprobes.
    #[arg(
        long,
        value_name = "ARGS",
        conflicts_with = "no_tracer",
        allow_hyphen_values = true
    )]
    pub tracer_args: Option<String>,
    /// Kill the guest after this many seconds (default: scaled to the number of scenarios).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Run guests with this qemu-system-x86_64 (a binary, or a wrapper script that sets its
    /// library path and passes its arguments on) instead of the one on PATH.
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,
    /// Run TCG with one host thread per vCPU (MTTCG) instead of one thread for both: faster,
    /// but it has crashed guests that patch their code (docs/lab.md, "Guest crashes").
    #[arg(long)]
    pub tcg_multi_thread: bool,
    /// Instead of scenarios: start the tracer, run real-driver traffic under it and stop it,
    /// N times in one boot of each kernel, with other processes busy on the other vCPU all
    /// along (what switches the kernel's static keys and patches its code most often); every
    /// guest crash is reported with its Oops line. docs/lab.md, "Guest crashes".
    #[arg(long, value_name = "N", conflicts_with_all = ["no_tracer", "module", "shell_cmd", "bench"])]
    pub cycles: Option<u32>,
    /// Instead of scenarios: one tracer for MINUTES of mixed real-driver traffic and the test
    /// module's bug patterns, asked for its memory, map fill and losses after every round;
    /// passes if they stay flat after warm-up, nothing is lost and the run finds exactly what
    /// its first round found (docs/results.md, "Long runs").
    #[arg(long, value_name = "MINUTES", conflicts_with_all = ["no_tracer", "module", "shell_cmd", "bench", "matrix", "cycles"])]
    pub soak: Option<u32>,
    /// Show the guest console as it runs.
    #[arg(long, short)]
    pub verbose: bool,
    /// Refresh the cached apt lists (to pick up a newer kernel of the suite).
    #[arg(long)]
    pub refresh: bool,
    /// Only fetch and extract the kernel(s).
    #[arg(long)]
    pub fetch_only: bool,
    /// After the verdict table, print the tracer's report of every scenario
    /// that produced findings.
    #[arg(long)]
    pub show_findings: bool,
    /// At the end, open the tracer's live view over the whole boot's recording
    /// (the demo does when stdout is a terminal).
    #[arg(long)]
    pub interactive: bool,
    /// Measure the tracer's overhead instead of running scenarios: one boot of --kernel
    /// times the tracer_bench loops with and without the tracer (docs/overhead.md).
    #[arg(long, conflicts_with_all = ["no_tracer", "module", "shell_cmd", "matrix"])]
    pub bench: bool,
    /// With --bench: iterations of each loop per run (200000 would record ~1 GB per run
    /// into the guest's RAM under the tracer; see docs/overhead.md).
    #[arg(long, default_value_t = 20_000, requires = "bench")]
    pub bench_iters: u32,
    /// With --bench: repetitions of each configuration (medians are taken over them); 0 makes
    /// only the extra runs (where the kernel time goes, losses at a small ring).
    #[arg(long, default_value_t = 5, requires = "bench")]
    pub bench_reps: u32,
    /// With --bench: only these configurations (comma-separated, from none, floor, tracer,
    /// bpftrace, floor_kprobe, tracer_kprobe), e.g. `none,floor,tracer` for a quick comparison.
    #[arg(long, value_delimiter = ',', requires = "bench")]
    pub bench_configs: Vec<String>,
}

pub fn run(args: LabArgs) -> Result<()> {
    let keys: Vec<String> = if args.matrix {
        kernels::SUITES.iter().map(|s| s.key.to_string()).collect()
    } else {
        vec![args.kernel.clone()]
    };
    let mut kernels_ = Vec::new();
    for key in &keys {
        let t = Instant::now();
        let k = kernels::fetch(key, args.refresh)?;
        eprintln!(
            "lab: kernel {} = {} ({}, {}) ready in {:.1}s",
            key,
            k.kver,
            k.version,
            k.suite,
            t.elapsed().as_secs_f64()
        );
        kernels_.push(k);
    }
    if args.fetch_only {
        return Ok(());
    }
    let tracer = if args.no_tracer {
        None
    } else if let Some(p) = &args.tracer {
        Some(p.clone())
    } else {
        Some(modules::build_static_tracer()?)
    };
    let opts = |k: &kernels::Kernel| GuestOptions {
        kernel: k.clone(),
        tracer: tracer.clone(),
        tracer_args: args.tracer_args.clone().unwrap_or_default(),
        keep: args.keep,
        timeout: args.timeout.map(Duration::from_secs),
        verbose: args.verbose,
        emulator: qemu::Emulator {
            qemu: args.qemu.clone(),
            multi_thread: args.tcg_multi_thread,
        },
    };

    if let Some(n) = args.cycles {
        let all: Vec<GuestOptions> = kernels_.iter().map(opts).collect();
        return cycles::run(&all, n);
    }
    if let Some(m) = args.soak {
        return soak::run(&opts(&kernels_[0]), m);
    }

    if args.bench {
        let configs = bench::select_configs(&args.bench_configs)?;
        return bench::run(
            &opts(&kernels_[0]),
            args.bench_iters,
            args.bench_reps,
            &configs,
        );
    }

    if let Some(cmd) = &args.shell_cmd {
        let files = if args.with_bpftrace {
            let t = Instant::now();
            let files = bpftrace::bundle()?;
            eprintln!(
                "lab: bpftrace bundle: {} files, {} MiB, ready in {:.1}s",
                files.len(),
                bpftrace::size(&files) >> 20,
                t.elapsed().as_secs_f64()
            );
            files
        } else {
            Vec::new()
        };
        for k in &kernels_ {
            let script = format!(". /lab/lib.sh\n{cmd}\nrc=$?\nship_tree /out out\nexit $rc\n");
            // The console is the point of a shell command: always show it.
            let r = boot_guest(
                &GuestOptions {
                    verbose: true,
                    ..opts(k)
                },
                &script,
                &[],
                &files,
                0,
            )?;
            println!(
                "lab: {} guest exit {:?} in {:.1}s; files from the guest in {}:",
                k.kver,
                r.guest_status,
                r.elapsed.as_secs_f64(),
                r.files_dir.display()
            );
            for f in &r.files {
                println!(
                    "  {} ({} bytes)",
                    f.display(),
                    fs::metadata(f).map(|m| m.len()).unwrap_or(0)
                );
            }
            if r.guest_status != Some(0) {
                bail!("{}", r.failure_report());
            }
        }
        return Ok(());
    }

    if args.module.is_some() || args.payload.is_some() {
        let k = &kernels_[0];
        if kernels_.len() > 1 {
            bail!("--module and --payload run on one kernel; drop --matrix");
        }
        let script = match (&args.payload, &args.run) {
            (Some(_), _) => None,
            (None, Some(run)) => Some(run.as_path()),
            (None, None) => bail!(
                "--module needs what to run: --run SCRIPT (a guest shell script) or --payload DIR"
            ),
        };
        let o = GuestOptions {
            timeout: Some(
                args.timeout
                    .map(Duration::from_secs)
                    .unwrap_or(USER_RUN_TIMEOUT),
            ),
            ..opts(k)
        };
        return run_user(
            &o,
            args.module.as_deref(),
            script,
            args.payload.as_deref(),
            args.report.as_deref(),
        );
    }

    let all = scenarios::load()?;
    let selected: Vec<Scenario> = if args.scenario == "all" {
        all
    } else {
        let mut picked = Vec::new();
        for name in args
            .scenario
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let s = all.iter().find(|s| s.name == name).with_context(|| {
                format!(
                    "no scenario `{name}` in {}",
                    scenarios::scenarios_file().display()
                )
            })?;
            picked.push(s.clone());
        }
        if picked.is_empty() {
            bail!("--scenario names no scenario (give names, comma-separated, or `all`)");
        }
        picked
    };
    let mut runs = Vec::new();
    for k in &kernels_ {
        // With a tracer, its own analysis judges each scenario; without, the trigger only.
        let runs_k = match &tracer {
            Some(t) => {
                let check = check::TracerCheck {
                    tracer: t.clone(),
                    series: scenarios::series(&k.kver),
                };
                run_scenarios(&opts(k), &selected, &|s: &Scenario, r: &Path| {
                    check.check(s, r)
                })?
            }
            None => run_scenarios(&opts(k), &selected, &default_check)?,
        };
        runs.extend(runs_k);
    }
    if args.show_findings {
        if let Some(t) = &tracer {
            show_findings(t, &runs);
        }
    }
    let boot_recordings: Vec<PathBuf> = runs
        .iter()
        .filter_map(|r| r.dir.parent().map(|p| p.join("boot.rec")))
        .filter(|p| p.exists())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    println!();
    scenarios::print_table(&runs);
    let failed = runs
        .iter()
        .filter(|r| r.verdict.status == Status::Fail)
        .count();
    let passed = runs
        .iter()
        .filter(|r| r.verdict.status == Status::Pass)
        .count();
    let real = selected.iter().filter(|s| s.module.is_none()).count();
    println!(
        "lab: {real} of {} scenario(s) run real drivers only (no module of ours)",
        selected.len()
    );
    let reboots = REBOOTS.load(std::sync::atomic::Ordering::Relaxed);
    if reboots > 0 {
        println!("lab: {reboots} guest(s) died before their init ran and were booted again (an emulator hiccup: docs/lab.md, \"Guest crashes\")");
    }
    // A closing line test summaries understand.
    println!("lab: {passed} passed, {failed} failed");
    for b in &boot_recordings {
        println!(
            "lab: the whole boot's recording: {} (tracer --replay {} opens the live view over it)",
            b.display(),
            b.display()
        );
    }
    if args.interactive {
        if let (Some(t), Some(b)) = (&tracer, boot_recordings.last()) {
            // The live view over what the tracer saw in the guest, at 20x speed.
            let status = std::process::Command::new(t)
                .arg("--replay")
                .arg(b)
                .args(["--speed", "20"])
                .status();
            if let Err(e) = status {
                eprintln!("lab: could not start the live view: {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} scenario(s) failed");
    }
    Ok(())
}

/// Prints the tracer's own report (lockdep-style text) for every scenario that
/// produced findings: what a user of the tracer would see.
fn show_findings(tracer: &Path, runs: &[ScenarioRun]) {
    for r in runs.iter().filter(|r| r.recording.exists()) {
        let out = std::process::Command::new(tracer)
            .arg("analyze")
            .arg(&r.recording)
            .output();
        let Ok(out) = out else { continue };
        if out.status.code() != Some(1) {
            continue;
        }
        println!(
            "\n#### scenario {} ({}): {}",
            r.scenario.name, r.kernel, r.scenario.description
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// Boots run again because the guest kernel died before its init ran.
static REBOOTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// What a boot needs besides the guest script.
#[derive(Clone)]
pub struct GuestOptions {
    pub kernel: kernels::Kernel,
    /// Static tracer binary to install as /bin/tracer, or None to run without a tracer.
    pub tracer: Option<PathBuf>,
    /// Extra options for every `tracer record` of the scenarios (`--tracer-args`).
    pub tracer_args: String,
    pub keep: bool,
    /// None: [`default_timeout`] for what the guest runs.
    pub timeout: Option<Duration>,
    pub verbose: bool,
    pub emulator: qemu::Emulator,
}

/// Time for a boot running `scenarios` recordings (0 for a plain command). Under TCG a kernel
/// boots in about 4 s; a tracer with ~80 hooks needs seconds to attach and seconds to stop,
/// and the guest waits up to about 40 s for a stop before killing it.
pub fn default_timeout(scenarios: usize, tracer: bool) -> Duration {
    let per = if tracer { 60 } else { 5 };
    Duration::from_secs(60 + per * scenarios as u64)
}

/// Kernel modules the lab puts into every guest: (name, load at boot). The KMS drivers of
/// qemu's devices (bochs, qxl, virtio-gpu) are loaded by the scenarios that use them, so
/// their own load happens under the tracer; so are the GPU drivers of machines the lab has
/// no device for (i915, xe, amdgpu, nouveau, radeon): they load, register their dma-buf ops,
/// and the tracer must hook every callback. A driver a kernel lacks is skipped (said once).
const KERNEL_MODULES: &[(&str, bool)] = &[
    ("vgem", true),
    // virtio's PCI transport: a module on 6.1 (built in from 6.12), without which the
    // virtio GPU is never probed and makes no DRM card.
    ("virtio_pci", true),
    ("bochs", false),
    ("qxl", false),
    ("virtio-gpu", false),
    ("i915", false),
    ("xe", false),
    ("amdgpu", false),
    ("nouveau", false),
    ("radeon", false),
];

/// Boot `opts.kernel` with `script` as /lab/guest.sh. `extra_modules` are .ko files loaded by
/// init after the kernel's own modules; `files` are (host path, guest path) pairs. Everything
/// the script ships (see tests/lab/guest/lib.sh) is decoded under the returned `files_dir`.
pub fn boot_guest(
    opts: &GuestOptions,
    script: &str,
    extra_modules: &[PathBuf],
    files: &[(PathBuf, String)],
    recordings: usize,
) -> Result<qemu::BootResult> {
    let k = &opts.kernel;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let run_dir = cache_dir().join("runs").join(format!("{}-{stamp}", k.kver));
    fs::create_dir_all(&run_dir)?;
    let t = Instant::now();
    let mut b = initramfs::Builder::new(&run_dir.join("initramfs.d"))?;
    for (name, at_boot) in KERNEL_MODULES {
        if !b.add_kernel_module(k, name, *at_boot)? {
            eprintln!("lab: {} has no module {name} (built in or absent)", k.kver);
        }
    }
    let guest_dir = repo_root().join("tests/lab/guest");
    b.add_file(&guest_dir.join("lib.sh"), "/lab/lib.sh", 0o644)?;
    if let Some(t) = &opts.tracer {
        b.add_file(t, "/bin/tracer", 0o755)?;
    }
    for (name, bin) in modules::build_workloads()? {
        b.add_file(&bin, &format!("/bin/{name}"), 0o755)?;
    }
    for m in extra_modules {
        let name = m.file_name().unwrap().to_string_lossy();
        // `*_late.ko`: loaded by its scenarios after the tracer started, not by init.
        let dir = if name.ends_with("_late.ko") {
            "late"
        } else {
            "extra"
        };
        b.add_file(
            m,
            &format!("{}/{dir}/{name}", initramfs::GUEST_MODULES),
            0o644,
        )?;
    }
    for (src, dest) in files {
        b.add_file(src, dest, 0o755)?;
    }
    b.add_bytes("/lab/guest.sh", script.as_bytes(), 0o755)?;
    let init = fs::read_to_string(guest_dir.join("init"))?;
    let initrd = run_dir.join("initramfs.cpio");
    b.finish(&init, &initrd)?;
    eprintln!(
        "lab: initramfs {} MiB built in {:.1}s; booting {} (run dir {})",
        fs::metadata(&initrd)?.len() >> 20,
        t.elapsed().as_secs_f64(),
        k.kver,
        run_dir.display()
    );
    let result = qemu::boot(&qemu::BootConfig {
        vmlinuz: &k.vmlinuz,
        initrd: &initrd,
        run_dir: &run_dir,
        timeout: opts
            .timeout
            .unwrap_or_else(|| default_timeout(recordings, opts.tracer.is_some())),
        echo_console: opts.verbose,
        emulator: &opts.emulator,
    });
    if !opts.keep {
        let _ = fs::remove_dir_all(run_dir.join("initramfs.d"));
        let _ = fs::remove_file(&initrd);
    }
    let r = result?;
    if r.guest_status.is_some() {
        eprintln!(
            "lab: {} booted, ran and powered off in {:.1}s",
            k.kver,
            r.elapsed.as_secs_f64()
        );
    } else {
        eprintln!("lab: {}", r.failure_report());
    }
    for e in &r.channel_errors {
        eprintln!("lab: file channel: {e}");
    }
    Ok(r)
}

/// Modules the scenarios need, built against `kernel`: every directory under
/// tests/lab/modules/ named by a scenario's `module`. Returns the .ko files and, per module
/// that could not be built, why (its scenarios then fail with that reason instead of booting).
fn scenario_modules(
    kernel: &kernels::Kernel,
    list: &[&Scenario],
) -> (Vec<PathBuf>, BTreeMap<String, String>) {
    let mut names: Vec<&str> = list.iter().filter_map(|s| s.module.as_deref()).collect();
    names.sort();
    names.dedup();
    let mut kos = Vec::new();
    let mut failed = BTreeMap::new();
    for name in names {
        let dir = repo_root().join("tests/lab/modules").join(name);
        if !dir.join("Makefile").exists() && !dir.join("Kbuild").exists() {
            failed.insert(
                name.to_string(),
                format!("module {name} not found at {}", dir.display()),
            );
            continue;
        }
        let t = Instant::now();
        match modules::build_module(kernel, &dir) {
            Ok(k) => {
                eprintln!(
                    "lab: built {name} for {} in {:.1}s",
                    kernel.kver,
                    t.elapsed().as_secs_f64()
                );
                kos.extend(k);
            }
            Err(e) => {
                eprintln!("lab: {e:#}");
                let first = format!("{e:#}")
                    .lines()
                    .find(|l| l.contains("error"))
                    .unwrap_or("see the build log above")
                    .trim()
                    .replace(
                        &format!(
                            "{}/",
                            cache_dir()
                                .join("build")
                                .join(&kernel.kver)
                                .join(name)
                                .display()
                        ),
                        "",
                    );
                failed.insert(
                    name.to_string(),
                    format!("module {name} did not build for {}: {first}", kernel.kver),
                );
            }
        }
    }
    (kos, failed)
}

/// Boot `opts.kernel` once, run every scenario of `list` that can exist on it (under the
/// tracer unless `opts.tracer` is None), and judge each with `check`. Recordings land in
/// `<run>/files/<scenario>/<scenario>.rec` ([`ScenarioRun::recording`]).
pub fn run_scenarios(
    opts: &GuestOptions,
    list: &[Scenario],
    check: &dyn Check,
) -> Result<Vec<ScenarioRun>> {
    let k = &opts.kernel;
    let series = scenarios::series(&k.kver);
    let (runnable, skipped): (Vec<&Scenario>, Vec<&Scenario>) = list
        .iter()
        .partition(|s| s.unavailable_on(&series).is_none());
    let mut runs: Vec<ScenarioRun> = Vec::new();
    let (kos, failed) = scenario_modules(k, &runnable);
    let (runnable, unbuilt): (Vec<&Scenario>, Vec<&Scenario>) = runnable
        .into_iter()
        .partition(|s| s.module.as_ref().is_none_or(|m| !failed.contains_key(m)));
    for s in unbuilt {
        runs.push(not_run(
            s,
            &series,
            Verdict::fail(&failed[s.module.as_ref().unwrap()]),
        ));
    }
    if !runnable.is_empty() {
        let script = scenarios::guest_script(&runnable, opts.tracer.is_some(), &opts.tracer_args);
        let mut r = boot_guest(opts, &script, &kos, &[], runnable.len())?;
        if r.died_before_init() {
            // Nothing of the lab ran: not a verdict on anything, so one more boot (counted:
            // the closing lines say how many).
            REBOOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            eprintln!(
                "lab: the {} guest kernel died before its init ran ({}); booting it again",
                k.kver,
                r.failure_report().lines().next().unwrap_or("")
            );
            r = boot_guest(opts, &script, &kos, &[], runnable.len())?;
        }
        let end = r.describe_end();
        for s in &runnable {
            let mut run = scenarios::judge(s, &series, &r.files_dir, opts.tracer.is_some(), check);
            if run.status.is_empty() && r.guest_status.is_none() {
                run.verdict = Verdict::fail(format!("no results: {end}"));
            }
            runs.push(run);
        }
    }
    for s in skipped {
        runs.push(not_run(
            s,
            &series,
            Verdict::skip(s.unavailable_on(&series).unwrap()),
        ));
    }
    // Keep the table in the order of the scenario file.
    runs.sort_by_key(|r| list.iter().position(|s| s.name == r.scenario.name));
    Ok(runs)
}

fn not_run(s: &Scenario, series: &str, verdict: Verdict) -> ScenarioRun {
    ScenarioRun {
        scenario: s.for_series(series),
        kernel: series.to_string(),
        dir: PathBuf::new(),
        recording: PathBuf::new(),
        status: Default::default(),
        verdict,
    }
}

/// The guest's time for a user's own run (`--module`/`--payload`) unless --timeout is given:
/// a suite of a few minutes on the host takes many times that under TCG.
const USER_RUN_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `--module DIR` and/or `--payload DIR` (or `--run SCRIPT`): build the module against the
/// kernel; in the guest start the tracer, insmod the module (so its init is traced too), run
/// the payload's run.sh (or SCRIPT), stop the tracer, and ask it for a JSON report
/// (`tracer analyze --json`) when it has that command. The report (or, from a tracer without
/// `analyze`, the recording's path) goes to `report` or stdout.
fn run_user(
    opts: &GuestOptions,
    module: Option<&Path>,
    script: Option<&Path>,
    payload: Option<&Path>,
    report: Option<&Path>,
) -> Result<()> {
    let kos = match module {
        Some(dir) => modules::build_module(&opts.kernel, dir)?,
        None => Vec::new(),
    };
    let mut files: Vec<(PathBuf, String)> = match (payload, script) {
        (Some(dir), _) => {
            let f = payload::bundle(dir)?;
            eprintln!(
                "lab: payload {}: {} file(s) with their libraries",
                dir.display(),
                f.len()
            );
            f
        }
        (None, Some(s)) => vec![(s.to_path_buf(), "/lab/user/run.sh".to_string())],
        (None, None) => bail!("nothing to run: give --run SCRIPT or --payload DIR"),
    };
    for ko in &kos {
        files.push((
            ko.clone(),
            format!("/lab/user/{}", ko.file_name().unwrap().to_string_lossy()),
        ));
    }
    let tracer = opts.tracer.is_some();
    let guest = format!(
        r#". /lab/lib.sh
d=/out/user
mkdir -p $d
tp=
if [ {tracer} = 1 ]; then
	/bin/tracer record -o $d/user.rec --ready-file /tmp/ready.user 2> $d/tracer.stderr &
	tp=$!
	wait_ready /tmp/ready.user $tp || {{ ship_tree $d user; exit 1; }}
fi
for m in /lab/user/*.ko; do [ -e "$m" ] || continue; insmod $m || echo "LAB: insmod $m failed"; done
(cd /lab/user && sh ./run.sh) > $d/run.out 2>&1
rc=$?
echo "script=$rc" >> $d/status
echo "LAB: script exited $rc"
if [ -n "$tp" ]; then
	kill -INT $tp
	wait $tp
	echo "tracer=$?" >> $d/status
	if /bin/tracer analyze --help > /dev/null 2>&1; then
		/bin/tracer analyze --json $d/user.rec > $d/report.json 2> $d/analyze.stderr
		echo "analyze=$?" >> $d/status
	fi
fi
ship_tree $d user
exit $rc
"#,
        tracer = if tracer { 1 } else { 0 }
    );
    let r = boot_guest(opts, &guest, &[], &files, 1)?;
    let out = r.files_dir.join("user");
    let run_out = fs::read_to_string(out.join("run.out")).unwrap_or_default();
    eprintln!("lab: script output:\n{run_out}");
    let report_json = out.join("report.json");
    let text = if report_json.exists() {
        fs::read_to_string(&report_json)?
    } else if out.join("user.rec").exists() {
        format!("{{\"recording\": \"{}\", \"note\": \"this tracer has no `analyze --json`; the raw recording was shipped\"}}\n", out.join("user.rec").display())
    } else {
        format!(
            "{{\"recording\": null, \"note\": \"no recording (tracer {}); see {}\"}}\n",
            if tracer { "failed" } else { "disabled" },
            out.display()
        )
    };
    match report {
        Some(p) => fs::write(p, &text)?,
        None => print!("{text}"),
    }
    if r.guest_status != Some(0) {
        bail!(
            "{} (script output above; files in {})",
            r.failure_report(),
            out.display()
        );
    }
    Ok(())
}

/// `$TRACER_LAB_CACHE`, or `lab-cache/` at the repository root (ignored by git).
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("TRACER_LAB_CACHE") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("lab-cache"),
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Run a command, failing with its command line when it does not exit 0.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed: {status}", cmd);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::repo_root;

    /// The guest's fixed scripts (init, lib.sh, the cycles and soak sides) parse as shell.
    #[test]
    fn every_guest_script_is_valid_shell() {
        let dir = repo_root().join("tests/lab/guest");
        let mut checked = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !(name.ends_with(".sh") || name == "init") {
                continue;
            }
            let st = std::process::Command::new("sh")
                .arg("-n")
                .arg(&path)
                .status()
                .unwrap();
            assert!(st.success(), "sh -n {}", path.display());
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} scripts in {}", dir.display());
    }
}
