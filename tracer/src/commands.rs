//! The commands: thin shells wiring a source (live kernel or recording) to a
//! sink. Programs and links are owned by `Live`/`Tracer` and detached when
//! they drop, on every exit path (return, error, signal).

use std::{
    fs::File,
    io::{BufWriter, Write},
    process::ExitCode,
    time::Instant,
};

use anyhow::{Context, Result};

use crate::{
    analysis::{rules, Convention, Engine, EngineConfig, FindingKind},
    cli::{Cli, Command, LiveArgs, LiveCmd, RecordArgs},
    events::{
        live::Live,
        record::{Meta, Recording, Summary, Writer},
        Event, EventKind, StackTable,
    },
    probes::{btf, LoadOptions, ProbeState, ProbeStatus, Tracer},
    report,
};

/// Exit status when the tracer itself failed.
pub const EXIT_FAILURE: u8 = 2;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => {
            // On a terminal the interactive view; piped, the streaming text
            // (or `tracer analyze`'s report for a replay).
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
            match cli.replay {
                Some(file) if tty => crate::tui::replay(&file, cli.speed),
                Some(file) => analyze(&file, cli.live.json, None),
                None if tty && !cli.live.json => crate::tui::live(cli.live),
                None => runtime()?.block_on(live(cli.live)),
            }
        }
        Some(c) => run_command(c),
    }
}

fn run_command(c: Command) -> Result<ExitCode> {
    match c {
        Command::Live(args) => runtime()?.block_on(live(args)),
        Command::Analyze {
            file,
            json,
            expect: None,
            gate,
        } => crate::ci::analyze(&file, json, &gate),
        Command::Analyze {
            file,
            json,
            expect: Some(expect),
            ..
        } => analyze(&file, json, Some(&expect)),
        Command::Run(args) => runtime()?.block_on(crate::ci::run(args)),
        Command::Graph(args) => crate::ci::graph(&args),
        Command::Rules { kernel } => rules(kernel),
        Command::Probes { json } => probes(json),
        Command::Record(args) => runtime()?.block_on(record(args)),
        Command::Dump {
            file,
            json,
            limit,
            no_stacks,
            resv_links,
        } => {
            if resv_links {
                dump_resv_links(&file, json)
            } else {
                dump(&file, json, limit, !no_stacks)
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn load_options(a: &LiveArgs) -> Result<LoadOptions> {
    let bytes = a
        .ring_mib
        .checked_mul(1 << 20)
        .filter(|b| b.is_power_of_two())
        .with_context(|| {
            format!(
                "--ring-mib {}: must be a power of two between 1 and 2048",
                a.ring_mib
            )
        })?;
    Ok(LoadOptions {
        ring_bytes: bytes,
        full_stream: a.all_events,
        stack_all: a.all_stacks,
        lone_sites: a.lone_sites,
        floor: a.floor,
        lock_kprobes: a.lock_kprobes,
        hooks: a.hooks,
        owner_check: a.owner_check,
    })
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The dma-buf symbols whose presence tells the convention era.
pub const CONVENTION_SYMBOLS: &[&str] = &[
    "dma_buf_map_attachment_unlocked",
    "dma_buf_vmap_unlocked",
    "dma_buf_move_notify",
    "dma_buf_invalidate_mappings",
    "dma_buf_pin",
    "dma_buf_vmap",
];

/// The rule era of a recording (or the running kernel).
pub fn convention_of(meta: &Meta) -> Convention {
    rules::detect(&meta.kernel_release, |s| {
        meta.kernel_symbols.iter().any(|k| k == s)
    })
}

pub(crate) fn meta_of(t: &Tracer, full_stream: bool) -> Meta {
    Meta {
        tracer_version: env!("CARGO_PKG_VERSION").into(),
        kernel_release: kernel_release(),
        kernel_symbols: CONVENTION_SYMBOLS
            .iter()
            .filter(|s| t.kallsyms.has(s))
            .map(|s| s.to_string())
            .collect(),
        offsets: btf::FIELDS
            .iter()
            .filter_map(|(s, m)| {
                t.btf
                    .member_offset(s, m)
                    .ok()
                    .map(|o| (format!("{s}.{m}"), o))
            })
            .collect(),
        hooks: t.hooks.clone(),
        probes: t.status.clone(),
        mechanisms: t.mechanism_summary(),
        full_stream,
        init_mm: t
            .kallsyms
            .get("init_mm")
            .map(|s| s.addr)
            .filter(|&a| a != 0),
    }
}

/// The engine's configuration for the kernel a recording or live session
/// describes: its convention, and the static locks it knows by address.
pub fn engine_config(meta: &Meta) -> EngineConfig {
    EngineConfig {
        convention: convention_of(meta),
        init_mm: meta.init_mm.unwrap_or(0),
        ..Default::default()
    }
}

fn probes(json: bool) -> Result<ExitCode> {
    let mut t = Tracer::load(&LoadOptions {
        ring_bytes: 1 << 20,
        ..Default::default()
    })?;
    t.attach_all()?;
    let meta = meta_of(&t, false);
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &meta)?;
        writeln!(out)?;
    } else {
        write_probe_table(&mut out, &meta)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn write_probe_table(out: &mut impl Write, meta: &Meta) -> Result<()> {
    writeln!(out, "kernel {}", meta.kernel_release)?;
    for m in &meta.mechanisms {
        writeln!(out, "  {m}")?;
    }
    writeln!(out, "  tracepoints: raw_tp")?;
    let w = meta
        .probes
        .iter()
        .map(|p| p.hook.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    writeln!(out)?;
    writeln!(
        out,
        "{:<w$}  {:<10}  {:<17}  {:<8}  REASON",
        "HOOK", "FAMILY", "MECHANISM", "STATUS"
    )?;
    for p in &meta.probes {
        let state = match p.state {
            ProbeState::Attached => "attached",
            ProbeState::Absent => "absent",
            ProbeState::Failed => "FAILED",
        };
        writeln!(
            out,
            "{:<w$}  {:<10}  {:<17}  {:<8}  {}",
            p.hook, p.family, p.mechanism, state, p.reason
        )?;
    }
    let count = |s: ProbeState| meta.probes.iter().filter(|p| p.state == s).count();
    writeln!(
        out,
        "\n{} attached, {} absent from this kernel, {} failed",
        count(ProbeState::Attached),
        count(ProbeState::Absent),
        count(ProbeState::Failed)
    )?;
    Ok(())
}

/// `--prog-stats`: the kernel counts program runs and run time while the
/// returned descriptor is open.
pub(crate) fn enable_prog_stats(on: bool) -> Result<Option<std::os::fd::OwnedFd>> {
    if !on {
        return Ok(None);
    }
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map(Some)
        .map_err(|e| {
            anyhow::anyhow!(
                "--prog-stats: the kernel refused BPF_ENABLE_STATS ({e}); it needs Linux 5.8+"
            )
        })
}

/// `--prog-stats` output: one stderr line per program that ran.
pub(crate) fn print_prog_stats(t: &Tracer) {
    let stats = t.program_stats();
    if stats.is_empty() {
        eprintln!("tracer: prog-stats: no program ran");
    }
    for s in stats {
        eprintln!(
            "tracer: prog-stats: {:<24} {:>10} runs {:>8} ns/run {:>10.3} ms total",
            s.name,
            s.runs,
            s.run_time.as_nanos() as u64 / s.runs.max(1),
            s.run_time.as_secs_f64() * 1e3
        );
    }
}

/// One line on stderr: what is hooked and what cannot be seen.
pub(crate) fn announce(statuses: &[ProbeStatus], startup: std::time::Duration, floor: bool) {
    if floor {
        eprintln!(
            "tracer: floor mode: every hook runs a program that only returns; nothing is recorded"
        );
    }
    let attached = statuses
        .iter()
        .filter(|p| p.state == ProbeState::Attached)
        .count();
    let failed: Vec<&ProbeStatus> = statuses
        .iter()
        .filter(|p| p.state == ProbeState::Failed)
        .collect();
    eprintln!(
        "tracer: {attached} hooks attached in {:.2} s (load, verify, attach), {} unavailable{}",
        startup.as_secs_f64(),
        failed.len(),
        absent_summary(statuses)
    );
    if let Some(first) = failed.first() {
        let funcs = failed
            .iter()
            .filter(|p| p.family == "function" || p.family == "callback")
            .count();
        eprintln!(
            "tracer: cannot see {} hook(s), e.g. {}: {} (`tracer probes` lists them)",
            failed.len(),
            first.hook,
            first.reason
        );
        if funcs > 0 && attached > 0 && failed.iter().all(|p| p.reason == first.reason) {
            eprintln!("tracer: without function hooks no dma-buf or ww_mutex event can be seen; tracepoint events only");
        }
    }
}

/// What the attach line says of hooks whose function or tracepoint this
/// kernel does not have: those the hook table says exist only on other
/// kernels (renamed, added or removed: expected), and those it says should
/// be here (a rename the table does not know yet: the tracer is blind there).
fn absent_summary(statuses: &[ProbeStatus]) -> String {
    let absent: Vec<&ProbeStatus> = statuses
        .iter()
        .filter(|p| p.state == ProbeState::Absent)
        .collect();
    if absent.is_empty() {
        return String::new();
    }
    let (tracepoints, functions): (Vec<&ProbeStatus>, Vec<&ProbeStatus>) =
        absent.iter().partition(|p| p.family == "tracepoint");
    let (unexpected, expected): (Vec<&ProbeStatus>, Vec<&ProbeStatus>) =
        functions.iter().partition(|p| {
            crate::probes::table::FUNC_HOOKS
                .iter()
                .any(|h| h.func == p.hook && h.exists == "all")
        });
    let names = |v: &[&ProbeStatus]| {
        v.iter()
            .map(|p| p.hook.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !expected.is_empty() {
        parts.push(format!(
            "{} renamed or of other kernel versions: {}",
            expected.len(),
            names(&expected)
        ));
    }
    if !tracepoints.is_empty() {
        parts.push(format!(
            "{} tracepoint(s): {}",
            tracepoints.len(),
            names(&tracepoints)
        ));
    }
    let mut s = format!(
        ", {} not in this kernel ({}",
        absent.len(),
        parts.join("; ")
    );
    if !unexpected.is_empty() {
        s.push_str(&format!(
            "{}{} expected on every kernel, missing here (renamed?), not seen: {}",
            if parts.is_empty() { "" } else { "; " },
            unexpected.len(),
            names(&unexpected)
        ));
    }
    s.push(')');
    s
}

/// One recording being written, and the stacks it already holds (a stack
/// is written once per file, before the first event that uses it).
pub(crate) struct RecFile {
    path: std::path::PathBuf,
    w: Writer<BufWriter<File>>,
    stacks: std::collections::HashSet<u32>,
    first_ts: Option<u64>,
    last_ts: u64,
}

/// One raw record through the live side, for `live`, `run` and the live view:
/// its new hooks and stack are fetched, it goes to the recording if there is
/// one, and a new stack reaches the engine's stack table.
pub(crate) fn take_record(
    live: &mut Live,
    r: &mut tracer_common::RawEvent,
    writer: Option<&mut RecFile>,
    stacks: &mut StackTable,
) -> Result<()> {
    let x = live.process(r);
    if let Some(w) = writer {
        w.write(r, &x.new_hooks, &live.stacks)?;
    }
    if let Some((id, frames)) = x.new_stack {
        stacks.insert(id, frames);
    }
    Ok(())
}

impl RecFile {
    pub(crate) fn create(path: &std::path::Path, meta: &Meta) -> Result<Self> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let w = Writer::new(BufWriter::new(f), meta)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            w,
            stacks: Default::default(),
            first_ts: None,
            last_ts: 0,
        })
    }

    pub(crate) fn write(
        &mut self,
        r: &tracer_common::RawEvent,
        new_hooks: &[crate::probes::HookInfo],
        stacks: &StackTable,
    ) -> Result<()> {
        let ctx = || format!("writing {}", self.path.display());
        for h in new_hooks {
            self.w.hook(h).with_context(ctx)?;
        }
        if r.stack_id >= 0 {
            let id = r.stack_id as u32;
            if self.stacks.insert(id) {
                if let Some(frames) = stacks.get(id) {
                    self.w.stack(id, frames).with_context(ctx)?;
                }
            }
        }
        self.w.event(r).with_context(ctx)?;
        self.first_ts.get_or_insert(r.ts_ns);
        self.last_ts = r.ts_ns;
        Ok(())
    }

    pub(crate) fn finish(self, lost: Vec<u64>, decode_errors: u64) -> Result<u64> {
        let events = self.w.events;
        let summary = Summary {
            events,
            lost_per_cpu: lost,
            decode_errors,
            duration_ns: self
                .first_ts
                .map(|f| self.last_ts.saturating_sub(f))
                .unwrap_or(0),
        };
        self.w
            .end(&summary)
            .with_context(|| format!("finishing {}", self.path.display()))?;
        Ok(events)
    }
}

/// Control FIFO commands for segmented recording.
enum Control {
    Start(String),
    Stop,
    /// Answered once every event the kernel queued before the command was
    /// read has been processed: a script that loaded a module can wait until
    /// its callbacks are hooked.
    Sync,
}

fn parse_control(line: &str) -> Result<Control, String> {
    let line = line.trim();
    match line.split_once(' ') {
        Some(("start", name)) if valid_segment_name(name.trim()) => {
            Ok(Control::Start(name.trim().to_string()))
        }
        Some(("start", name)) => Err(format!(
            "bad segment name `{name}` (letters, digits, - _ . only)"
        )),
        None if line == "stop" => Ok(Control::Stop),
        None if line == "sync" => Ok(Control::Sync),
        _ => Err(format!(
            "unknown command `{line}` (expected `start NAME`, `stop` or `sync`)"
        )),
    }
}

fn valid_segment_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn make_fifo(path: &std::path::Path) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).context("FIFO path")?;
    // SAFETY: mkfifo with a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("creating FIFO {}", path.display()));
    }
    Ok(())
}

async fn record(args: RecordArgs) -> Result<ExitCode> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let opts = load_options(&args.live)?;
    // Installed first and kept for the whole run: a signal that arrives while
    // hooks are attached or a batch is written is kept by the stream (and the
    // loop then stops), never lost between two select!s.
    let mut stop_signals = crate::stop::StopSignals::install()?;
    // Control FIFOs exist before the (slow) attach so a script can open them.
    let mut control = None;
    let mut ack = None;
    if let (Some(ctl), Some(ackp), Some(dir)) = (&args.control, &args.ack, &args.segments) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        make_fifo(ctl)?;
        make_fifo(ackp)?;
        // Read-write opens never block and never see EOF when a writer leaves.
        let rx = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(ctl)
            .with_context(|| format!("opening {}", ctl.display()))?;
        let tx = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(ackp)
            .with_context(|| format!("opening {}", ackp.display()))?;
        control = Some(tokio::io::BufReader::new(rx).lines());
        ack = Some(tx);
    }
    let _stats = enable_prog_stats(args.live.prog_stats)?;
    let mut live = Live::start(&opts)?;
    announce(&live.tracer.status, live.startup, live.tracer.is_floor());
    let mut whole = match &args.output {
        Some(p) => Some(RecFile::create(
            p,
            &meta_of(&live.tracer, opts.full_stream),
        )?),
        None => None,
    };
    let mut segment: Option<(String, RecFile)> = None;
    if let Some(p) = &args.live.ready_file {
        File::create(p).with_context(|| format!("creating ready file {}", p.display()))?;
    }
    if let Some(a) = ack.as_mut() {
        a.write_all(b"ready\n")
            .await
            .context("writing the ack FIFO")?;
    }
    match &args.output {
        Some(p) => eprintln!("tracer: recording to {} (Ctrl-C to stop)", p.display()),
        None => eprintln!("tracer: recording segments (Ctrl-C to stop)"),
    }
    let started = Instant::now();
    let deadline = crate::stop::deadline(args.duration);
    tokio::pin!(deadline);
    let mut batch = Vec::with_capacity(1024);
    let mut stop = false;
    while !stop {
        let mut cmd = None;
        tokio::select! {
            r = live.next_batch(&mut batch) => r?,
            _ = stop_signals.recv() => stop = true,
            _ = &mut deadline => stop = true,
            l = async { control.as_mut().unwrap().next_line().await }, if control.is_some() => {
                cmd = Some(l.context("reading the control FIFO")?.unwrap_or_default());
            }
        }
        if stop || cmd.is_some() {
            // Everything the kernel queued before this point belongs before it.
            live.drain(&mut batch);
        }
        for mut r in batch.drain(..) {
            let x = live.process(&mut r);
            if let Some(f) = whole.as_mut() {
                f.write(&r, &x.new_hooks, &live.stacks)?;
            }
            if let Some((_, f)) = segment.as_mut() {
                f.write(&r, &x.new_hooks, &live.stacks)?;
            }
        }
        if let Some(line) = cmd {
            let reply = match parse_control(&line) {
                Err(e) => format!("error: {e}"),
                Ok(Control::Start(name)) => {
                    if let Some((old, f)) = segment.take() {
                        f.finish(live.lost_per_cpu(), live.short_records)?;
                        eprintln!("tracer: segment {old} closed by the start of {name}");
                    }
                    let dir = args.segments.as_ref().expect("control requires segments");
                    let f = RecFile::create(
                        &dir.join(format!("{name}.rec")),
                        &meta_of(&live.tracer, opts.full_stream),
                    )?;
                    segment = Some((name.clone(), f));
                    format!("started {name}")
                }
                Ok(Control::Stop) => match segment.take() {
                    Some((name, f)) => {
                        let n = f.finish(live.lost_per_cpu(), live.short_records)?;
                        format!("stopped {name} {n}")
                    }
                    None => "error: no segment started".into(),
                },
                Ok(Control::Sync) => "synced".into(),
            };
            if let Some(a) = ack.as_mut() {
                a.write_all(format!("{reply}\n").as_bytes())
                    .await
                    .context("writing the ack FIFO")?;
            }
        } else if let Some(f) = whole.as_mut() {
            f.w.flush()
                .with_context(|| format!("writing {}", f.path.display()))?;
        }
    }
    let lost = live.lost_per_cpu();
    if let Some((_, f)) = segment.take() {
        f.finish(lost.clone(), live.short_records)?;
    }
    let events = match whole {
        Some(f) => f.finish(lost.clone(), live.short_records)?,
        None => 0,
    };
    if args.live.prog_stats {
        print_prog_stats(&live.tracer);
    }
    let lost_total: u64 = lost.iter().sum();
    eprintln!(
        "tracer: {events} events in {:.1}s, {} stacks, {lost_total} lost{}",
        started.elapsed().as_secs_f64(),
        live.stacks.len(),
        if lost_total > 0 {
            " (ring buffer full: raise --ring-mib)"
        } else {
            ""
        }
    );
    // Lost events are in the line above; this adds untracked threads' calls.
    live.warn_kernel_losses(&[]);
    Ok(ExitCode::SUCCESS)
}

fn dump(
    file: &std::path::Path,
    json: bool,
    limit: Option<usize>,
    stacks: bool,
) -> Result<ExitCode> {
    let rec = Recording::read(file)?;
    let (events, errors) = rec.events();
    let mut out = std::io::stdout().lock();
    let n = limit.unwrap_or(usize::MAX);
    if json {
        for e in events.iter().take(n) {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        }
    } else {
        let m = &rec.meta;
        writeln!(
            out,
            "recording {} (tracer {}, kernel {})",
            file.display(),
            m.tracer_version,
            m.kernel_release
        )?;
        writeln!(out, "convention symbols: {}", m.kernel_symbols.join(", "))?;
        let attached = m
            .probes
            .iter()
            .filter(|p| p.state == ProbeState::Attached)
            .count();
        writeln!(
            out,
            "hooks: {attached} attached of {}; stream: {}",
            m.probes.len(),
            if m.full_stream {
                "full"
            } else {
                "filtered (lock entries only while nested)"
            }
        )?;
        match &rec.summary {
            Some(s) => writeln!(
                out,
                "events: {} in {:.3}s, lost {} (per cpu {:?}), undecodable {}",
                s.events,
                s.duration_ns as f64 / 1e9,
                s.lost_per_cpu.iter().sum::<u64>(),
                s.lost_per_cpu,
                s.decode_errors + errors
            )?,
            None => writeln!(
                out,
                "events: {} (no end marker: the tracer did not stop cleanly)",
                rec.raw.len()
            )?,
        }
        writeln!(out)?;
        let t0 = events.first().map(|e| e.ts_ns).unwrap_or(0);
        for e in events.iter().take(n) {
            writeln!(out, "{}", format_event(e, t0))?;
            if stacks {
                write_stack(&mut out, &rec.stacks, e)?;
            }
        }
    }
    if rec.summary.is_none() {
        eprintln!(
            "tracer: {}: no end marker (recording was cut short); showing what was recorded",
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn write_stack(out: &mut impl Write, stacks: &StackTable, e: &Event) -> Result<()> {
    if let Some(frames) = e.stack.and_then(|id| stacks.get(id)) {
        for f in frames {
            writeln!(out, "        {}", f.display())?;
        }
    }
    Ok(())
}

/// One line per event: relative time, cpu, task, what happened.
pub fn format_event(e: &Event, t0: u64) -> String {
    let what = match &e.kind {
        EventKind::LockAttempt { lock, ctx, func } => {
            format!("lock-attempt {func:?} lock={lock:#x} ctx={ctx:#x}")
        }
        EventKind::LockReturn {
            lock,
            ctx,
            func,
            ret,
        } => format!("lock-return  {func:?} lock={lock:#x} ctx={ctx:#x} ret={ret}"),
        EventKind::Unlock { lock } => format!("unlock       lock={lock:#x}"),
        EventKind::LockGone { locks } => {
            let l: Vec<String> = locks.iter().map(|l| format!("{l:#x}")).collect();
            format!("lock-gone    locks={} (released unseen)", l.join(","))
        }
        EventKind::ResvInit { resv } => format!("resv-init    resv={resv:#x}"),
        EventKind::ResvFini { resv } => format!("resv-fini    resv={resv:#x}"),
        EventKind::DmaBufCall {
            func,
            phase,
            buf,
            ret,
        } => format!(
            "{:<12} {} dmabuf={:#x} resv={:#x} exp={}{}",
            format!("{phase:?}").to_lowercase(),
            func.kernel_name(),
            buf.dmabuf,
            buf.resv,
            buf.exp_name,
            ret.map(|r| format!(" ret={r:#x}")).unwrap_or_default()
        ),
        EventKind::Callback {
            cb,
            phase,
            symbol,
            buf,
            ret,
        } => format!(
            "{:<12} callback {}={} dmabuf={:#x} resv={:#x} exp={}{}",
            format!("{phase:?}").to_lowercase(),
            cb.member(),
            symbol,
            buf.dmabuf,
            buf.resv,
            buf.exp_name,
            ret.map(|r| format!(" ret={r}")).unwrap_or_default()
        ),
        EventKind::FenceWaitStart { fence } => format!("fence-wait-start fence={fence:#x}"),
        EventKind::FenceWaitEnd { fence } => format!("fence-wait-end   fence={fence:#x}"),
        EventKind::MmapLock {
            mm,
            write,
            acquired,
        } => match acquired {
            None => format!("mmap-lock-start mm={mm:#x} write={write}"),
            Some(ok) => format!("mmap-lock-acquired mm={mm:#x} write={write} success={ok}"),
        },
        EventKind::MmapUnlock { mm, write } => {
            format!("mmap-lock-released mm={mm:#x} write={write}")
        }
        EventKind::ContentionBegin { lock, flags } => {
            format!("contention-begin lock={lock:#x} flags={flags:#x}")
        }
        EventKind::ContentionEnd { lock, ret } => {
            format!("contention-end   lock={lock:#x} ret={ret}")
        }
        EventKind::SyscallExit { nr, held } => format!("syscall-exit nr={nr} holding={held}"),
        EventKind::ModuleLoad { name } => format!("module-load {name}"),
        EventKind::ModuleFree { name } => format!("module-free {name}"),
        EventKind::ThreadExit { held, lone_locks } => {
            format!("thread-exit holding={held} lone-locks={lone_locks}")
        }
    };
    format!(
        "{:>12.6} cpu{:<2} {:>7} {:<16} {}{}",
        e.ts_ns.saturating_sub(t0) as f64 / 1e9,
        e.cpu,
        e.pid,
        e.comm,
        what,
        e.stack.map(|s| format!(" [stack {s}]")).unwrap_or_default()
    )
}

/// Exit status: findings were reported.
pub const EXIT_FINDINGS: u8 = 1;

pub(crate) fn engine_for(meta: &Meta, stacks: StackTable) -> Engine {
    Engine::with_stacks(engine_config(meta), stacks)
}

fn analyze(file: &std::path::Path, json: bool, expect: Option<&str>) -> Result<ExitCode> {
    let rec = Recording::read(file)?;
    if rec.summary.is_none() {
        eprintln!(
            "tracer: {}: no end marker (recording was cut short); analysing what was recorded",
            file.display()
        );
    }
    let (events, errors) = rec.events();
    if errors > 0 {
        eprintln!("tracer: {errors} undecodable events skipped");
    }
    let mut engine = engine_for(&rec.meta, rec.stacks.clone());
    for e in &events {
        engine.feed(e);
    }
    let findings = engine.findings();
    let mut out = std::io::stdout().lock();
    if json {
        let doc = report::json::document(
            findings,
            Some(engine.config().convention),
            Some((engine.graph(), engine.classes())),
            engine.stacks(),
            Some(&engine.stats()),
        );
        writeln!(out, "{}", report::json::document_string(&doc))?;
    } else {
        write!(out, "{}", report::text::report(findings, engine.stacks()))?;
    }
    for n in engine.stats().notes() {
        eprintln!("tracer: {n}");
    }
    if let Some(s) = &rec.summary {
        let lost: u64 = s.lost_per_cpu.iter().sum();
        if lost > 0 {
            eprintln!("tracer: the recording lost {lost} events in the kernel (ring buffer full): findings may be missing");
        }
    }
    match expect {
        Some(exp) => {
            let want = parse_kinds(exp)?;
            let mut got: Vec<&str> = findings.iter().map(|f| f.id.id()).collect();
            got.sort_unstable();
            got.dedup();
            if got == want {
                eprintln!(
                    "tracer: expectation met: {}",
                    if want.is_empty() {
                        "no findings".into()
                    } else {
                        want.join(", ")
                    }
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "tracer: expectation NOT met: expected [{}], found [{}]",
                    want.join(", "),
                    got.join(", ")
                );
                Ok(ExitCode::from(EXIT_FINDINGS))
            }
        }
        None if findings.is_empty() => Ok(ExitCode::SUCCESS),
        None => Ok(ExitCode::from(EXIT_FINDINGS)),
    }
}

/// `none` or a comma list of finding ids, validated, sorted.
fn parse_kinds(s: &str) -> Result<Vec<&'static str>> {
    if s.trim() == "none" || s.trim().is_empty() {
        return Ok(vec![]);
    }
    let mut v = Vec::new();
    for k in s.split(',').map(str::trim) {
        let kind = FindingKind::ALL
            .iter()
            .find(|f| f.id() == k)
            .with_context(|| {
                let ids: Vec<&str> = FindingKind::ALL.iter().map(|f| f.id()).collect();
                format!(
                    "--expect: unknown finding kind `{k}` (known: {}, or none)",
                    ids.join(", ")
                )
            })?;
        v.push(kind.id());
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

fn rules(kernel: Option<String>) -> Result<ExitCode> {
    let (release, conv) = match kernel {
        Some(r) => {
            let c = rules::detect(&r, |_| false);
            (r, c)
        }
        None => {
            let r = kernel_release();
            let ks = crate::probes::kallsyms::Kallsyms::load().ok();
            let c = rules::detect(&r, |s| ks.as_ref().is_some_and(|k| k.has(s)));
            (r, c)
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "kernel {release}: convention era {} ({:?})",
        conv.era.range(),
        conv.era
    )?;
    writeln!(out)?;
    let rows = rules::table(conv);
    let w = rows.iter().map(|r| r.item.len()).max().unwrap_or(10);
    let wr = rows.iter().map(|r| r.requirement.len()).max().unwrap_or(10);
    writeln!(
        out,
        "{:<8}  {:<w$}  {:<wr$}  {:<12}  NOTE",
        "KIND", "FUNCTION / CALLBACK", "REQUIREMENT", "KERNELS"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<8}  {:<w$}  {:<wr$}  {:<12}  {}",
            r.kind, r.item, r.requirement, r.kernels, r.note
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn live(args: LiveCmd) -> Result<ExitCode> {
    let opts = load_options(&args.live)?;
    let mut stop_signals = crate::stop::StopSignals::install()?;
    let _stats = enable_prog_stats(args.live.prog_stats)?;
    let mut live = Live::start(&opts)?;
    announce(&live.tracer.status, live.startup, live.tracer.is_floor());
    let meta = meta_of(&live.tracer, opts.full_stream);
    let conv = convention_of(&meta);
    eprintln!(
        "tracer: kernel {} follows the {} dma-buf convention",
        meta.kernel_release,
        conv.era.range()
    );
    let mut writer = match &args.record {
        Some(p) => Some(RecFile::create(p, &meta)?),
        None => None,
    };
    if let Some(p) = &args.live.ready_file {
        File::create(p).with_context(|| format!("creating ready file {}", p.display()))?;
    }
    eprintln!("tracer: tracing (Ctrl-C to stop)");
    let mut engine = Engine::with_stacks(engine_config(&meta), StackTable::new());
    let deadline = crate::stop::deadline(args.duration);
    tokio::pin!(deadline);
    let mut batch = Vec::with_capacity(1024);
    let mut out = std::io::stdout();
    let mut decode_errors = 0u64;
    let mut stop = false;
    while !stop {
        tokio::select! {
            r = live.next_batch(&mut batch) => r?,
            _ = stop_signals.recv() => stop = true,
            _ = &mut deadline => stop = true,
        }
        if stop {
            live.drain(&mut batch);
        }
        for mut r in batch.drain(..) {
            take_record(&mut live, &mut r, writer.as_mut(), engine.stacks_mut())?;
            let ev = match live.decoder.decode(&r) {
                Ok(e) => e,
                Err(_) => {
                    decode_errors += 1;
                    continue;
                }
            };
            for f in engine.feed(&ev) {
                if args.json {
                    writeln!(out, "{}", report::json::finding_line(&f))?;
                } else {
                    write!(out, "{}", report::text::finding(&f, engine.stacks()))?;
                }
            }
        }
        out.flush()?;
    }
    if args.live.prog_stats {
        print_prog_stats(&live.tracer);
    }
    let lost = live.lost_per_cpu();
    if let Some(w) = writer {
        w.finish(lost.clone(), decode_errors + live.short_records)?;
    }
    if !args.json {
        write!(out, "{}", report::text::summary(engine.findings()))?;
    }
    live.warn_kernel_losses(&lost);
    Ok(if engine.findings().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}

fn dump_resv_links(file: &std::path::Path, json: bool) -> Result<ExitCode> {
    let rec = Recording::read(file)?;
    let (events, _) = rec.events();
    let links = crate::events::links::resv_links(&events);
    let mut out = std::io::stdout().lock();
    for l in &links {
        if json {
            serde_json::to_writer(&mut out, l)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{:>7} {:<34} exp={:<20} resv={:#x} {}",
                l.pid,
                l.func.kernel_name(),
                l.exp_name,
                l.resv,
                if l.locked {
                    "locked by the same task during the call"
                } else {
                    "-"
                }
            )?;
        }
    }
    let locked = links.iter().filter(|l| l.locked).count();
    eprintln!("tracer: {} dma-buf calls, {locked} locked their buffer's resv (same address) during the call", links.len());
    Ok(if locked > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(hook: &str, state: ProbeState) -> ProbeStatus {
        ProbeStatus {
            hook: hook.into(),
            family: "function".into(),
            mechanism: "-".into(),
            state,
            reason: String::new(),
        }
    }

    #[test]
    fn the_attach_line_counts_renamed_and_unexpectedly_missing_hooks() {
        assert_eq!(
            absent_summary(&[st("ww_mutex_lock", ProbeState::Attached)]),
            ""
        );
        let s = absent_summary(&[
            st("ww_mutex_lock", ProbeState::Attached),
            st("dma_buf_move_notify", ProbeState::Absent),
            st("dma_buf_vmap_unlocked", ProbeState::Absent),
        ]);
        assert_eq!(
            s,
            ", 2 not in this kernel (2 renamed or of other kernel versions: \
             dma_buf_move_notify, dma_buf_vmap_unlocked)"
        );
        let mut tp = st("module:module_load", ProbeState::Absent);
        tp.family = "tracepoint".into();
        assert_eq!(
            absent_summary(&[tp]),
            ", 1 not in this kernel (1 tracepoint(s): module:module_load)"
        );
        let s = absent_summary(&[st("dma_buf_pin", ProbeState::Absent)]);
        assert!(
            s.contains(
                "1 expected on every kernel, missing here (renamed?), not seen: dma_buf_pin"
            ),
            "{s}"
        );
    }
}
