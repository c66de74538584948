//! `tracer probes` and `tracer rules`: what this kernel lets the tracer hook, and the
//! convention's rule table for a kernel; the completions and man pages packages ship.

use std::{io::Write, process::ExitCode};

use anyhow::Result;
use tracer_core::{analysis::rules, events::record::Meta, kernel::ProbeState};

use crate::{
    probes::{kallsyms::Kallsyms, LoadOptions, Tracer},
    session::{kernel_release, meta_of},
};

pub fn probes(json: bool) -> Result<ExitCode> {
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

fn write_probe_table(out: &mut impl Write, meta: &Meta) -> Result<()> {
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

pub fn rules(kernel: Option<String>) -> Result<ExitCode> {
    let (release, conv) = match kernel {
        Some(r) => {
            let c = rules::detect(&r, |_| false);
            (r, c)
        }
        None => {
            let r = kernel_release();
            let ks = Kallsyms::load().ok();
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

/// `tracer completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "tracer", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `tracer manpages DIR`: tracer.1 and tracer-COMMAND.1 for each visible command.
pub fn manpages(dir: &std::path::Path) -> Result<ExitCode> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let write = |name: &str, c: clap::Command| -> Result<()> {
        let p = dir.join(format!("{name}.1"));
        let mut f =
            std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
        clap_mangen::Man::new(c)
            .render(&mut f)
            .with_context(|| format!("writing {}", p.display()))
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("tracer-{}", sub.get_name());
        write(&name, sub.clone().name(name.clone()))?;
    }
    write("tracer", cmd)?;
    Ok(ExitCode::SUCCESS)
}
