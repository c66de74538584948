//! Lockdep-style text: one block per finding (the "=====" header, the title,
//! the task line, the locks with symbolized stacks, the chains of an
//! inversion, "what to do"), then a summary table.

use std::fmt::Write;

use crate::analysis::{Finding, LockRef};
use crate::events::{LockFn, StackId, StackTable};
use crate::gate::{Judged, Outcome, Status};

const RULE: &str = "======================================================";
const SUBRULE: &str = "------------------------------------------------------";

fn lock_fn(f: Option<LockFn>) -> &'static str {
    f.map_or("lock", LockFn::kernel_name)
}

/// The frames of `id`, indented, innermost first (as lockdep prints them).
fn write_stack(out: &mut String, indent: &str, id: Option<StackId>, stacks: Option<&StackTable>) {
    match (id, stacks) {
        (None, _) => {
            // A lone lock kept back without its call site (docs/probes.md,
            // `--lone-sites`), or a stack walk that failed.
            let _ = writeln!(out, "{indent}(no stack taken)");
        }
        (Some(id), Some(t)) => match t.get(id) {
            Some(frames) if !frames.is_empty() => {
                for f in frames {
                    let _ = writeln!(out, "{indent}{}", f.display());
                }
            }
            _ => {
                let _ = writeln!(out, "{indent}(stack #{id} not resolved)");
            }
        },
        (Some(id), None) => {
            let _ = writeln!(out, "{indent}(stack #{id}; no stack table)");
        }
    }
}

/// A held lock's acquisition stack; a missing one is mostly a lone lock kept
/// back without its call site (docs/probes.md), which the reader is told.
fn write_acquired(
    out: &mut String,
    indent: &str,
    id: Option<StackId>,
    stacks: Option<&StackTable>,
) {
    if id.is_some() {
        write_stack(out, indent, id, stacks);
    } else {
        let _ = writeln!(
            out,
            "{indent}(no stack taken: most likely an un-nested lock past its thread's first {}, \
             none of which had been needed, docs/probes.md; --lone-sites records every one; \
             otherwise a stack walk that failed)",
            tracer_common::LONE_SITE_BUDGET
        );
    }
}

fn write_lock(out: &mut String, l: &LockRef) {
    let _ = write!(out, "{} {:#x}", l.class, l.addr);
    if l.generation != 0 {
        let _ = write!(out, " (object #{})", l.generation);
    }
    let _ = write!(out, ", ctx {:#x}, {}", l.ctx, lock_fn(l.func));
    if let Some(t) = l.since_ns {
        let _ = write!(out, ", since {}", super::secs(t, 9));
    }
    out.push('\n');
}

/// One finding as a lockdep-style block.
pub fn finding(f: &Finding, stacks: Option<&StackTable>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{RULE}");
    let _ = writeln!(o, "WARNING: {}", f.title);
    let _ = writeln!(o, "{SUBRULE}");
    let _ = writeln!(
        o,
        "[{}] {} at {} (seen {} time{} in {} task{}{}, first {} s, last {} s)",
        f.severity.as_str(),
        f.id.id(),
        f.location,
        f.count,
        if f.count == 1 { "" } else { "s" },
        f.tasks.len(),
        if f.tasks.len() == 1 { "" } else { "s" },
        if f.tasks_truncated { "+" } else { "" },
        super::secs(f.first_ts_ns, 9),
        super::secs(f.last_ts_ns, 9)
    );
    let _ = writeln!(
        o,
        "task: {}/{} (tgid {})",
        f.task.comm, f.task.pid, f.task.tgid
    );
    if f.tasks.len() > 1 {
        let others: Vec<String> = f
            .tasks
            .iter()
            .skip(1)
            .map(|t| format!("{}/{}", t.comm, t.pid))
            .collect();
        let _ = writeln!(o, "also: {}", others.join(", "));
    }
    o.push('\n');
    let _ = writeln!(o, "{}", f.explanation.trim_end());
    if f.buffer.is_some() || f.function.is_some() || f.callback.is_some() {
        o.push('\n');
    }
    if let Some(b) = &f.buffer {
        let _ = writeln!(
            o,
            "buffer: dma-buf {:#x} exported by \"{}\", resv {:#x}",
            b.dmabuf, b.exp_name, b.resv
        );
    }
    if let Some(func) = &f.function {
        let _ = writeln!(o, "in: {func}()");
    }
    if let Some(cb) = &f.callback {
        let _ = writeln!(o, "callback: dma_buf_ops.{} = {}", cb.member, cb.symbol);
    }
    if let Some(l) = &f.lock {
        o.push_str("\nlock:\n ");
        write_lock(&mut o, l);
        let _ = writeln!(o, " at:");
        match f.stack {
            Some(_) => write_stack(&mut o, "  ", f.stack, stacks),
            None if l.since_ns.is_some() => write_acquired(&mut o, "  ", l.stack, stacks),
            None => write_stack(&mut o, "  ", l.stack, stacks),
        }
    } else if f.stack.is_some() {
        let _ = writeln!(o, "\nat:");
        write_stack(&mut o, "  ", f.stack, stacks);
    }
    if !f.held_locks.is_empty() {
        let n = f.held_locks.len();
        let _ = writeln!(
            o,
            "\n{n} lock{} held by {}/{}:",
            if n == 1 { "" } else { "s" },
            f.task.comm,
            f.task.pid
        );
        for (i, l) in f.held_locks.iter().enumerate() {
            let _ = write!(o, " #{i}: ");
            write_lock(&mut o, l);
            let _ = writeln!(o, "   acquired at:");
            write_acquired(&mut o, "    ", l.stack, stacks);
        }
    }
    for (i, c) in f.chains.iter().enumerate() {
        let _ = writeln!(
            o,
            "\n{}",
            if i == 0 {
                "the new dependency:"
            } else {
                "the existing dependency chain (in reverse order is the other path):"
            }
        );
        for l in &c.links {
            if l.primed {
                let _ = writeln!(
                    o,
                    " -> {} -> {}: primed at boot by dma_resv_lockdep()",
                    l.from, l.to
                );
                continue;
            }
            let who = l
                .task
                .as_ref()
                .map(|t| format!("{}/{}", t.comm, t.pid))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                " -> {} -> {}: {who} at {} s",
                l.from,
                l.to,
                super::secs(l.ts_ns, 9)
            );
            let _ = writeln!(o, "    holding {:#x}, acquired at:", l.from_lock);
            write_stack(&mut o, "      ", l.from_stack, stacks);
            let _ = writeln!(o, "    acquiring {:#x} at:", l.to_lock);
            write_stack(&mut o, "      ", l.to_stack, stacks);
        }
    }
    let _ = writeln!(o, "\nwhat to do: {}", f.advice);
    o
}

/// One line per finding: severity, id, count, tasks, location, title.
pub fn summary(findings: &[Finding]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "SEVERITY".into(),
        "KIND".into(),
        "COUNT".into(),
        "TASKS".into(),
        "LOCATION".into(),
        "TITLE".into(),
    ]];
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    // Worst first, then most frequent: what to look at first.
    sorted.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.count.cmp(&a.count))
            .then(a.location.cmp(&b.location))
    });
    for f in sorted {
        rows.push([
            f.severity.as_str().into(),
            f.id.id().into(),
            f.count.to_string(),
            format!(
                "{}{}",
                f.tasks.len(),
                if f.tasks_truncated { "+" } else { "" }
            ),
            f.location.clone(),
            f.title.clone(),
        ]);
    }
    let mut w = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut o = String::new();
    for r in &rows {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:<w4$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4]
        );
        let _ = writeln!(o, "{}", line.trim_end());
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == crate::analysis::Severity::Error)
        .count();
    let _ = writeln!(
        o,
        "{} finding{} ({} error{})",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        errors,
        if errors == 1 { "" } else { "s" }
    );
    o
}

/// Every finding block, then the summary table.
pub fn report(findings: &[Finding], stacks: Option<&StackTable>) -> String {
    if findings.is_empty() {
        return "no findings\n".to_string();
    }
    let mut o = String::new();
    for f in findings {
        o.push_str(&finding(f, stacks));
        o.push('\n');
    }
    o.push_str(&summary(findings));
    o
}

/// The text report: every finding not allowed as a lockdep block, the
/// summary table, the allowed ones in one line each, the verdict.
pub fn gate_report(o: &Outcome, stacks: Option<&StackTable>) -> String {
    let active = o.active();
    let sup: Vec<&Judged> = o
        .judged
        .iter()
        .filter(|j| matches!(j.status, Status::Suppressed { .. }))
        .collect();
    let mut s = if active.is_empty() && !sup.is_empty() {
        "no findings besides the suppressed ones\n".to_string()
    } else {
        report(&active, stacks)
    };
    if !sup.is_empty() {
        let file = o
            .allow
            .as_ref()
            .map(|a| a.path.display().to_string())
            .unwrap_or_default();
        s.push_str(&format!("\nsuppressed by {file}:\n"));
        for j in sup {
            if let Status::Suppressed { entry, reason } = &j.status {
                let line = o
                    .allow
                    .as_ref()
                    .map(|a| a.entries[*entry].line)
                    .unwrap_or(0);
                s.push_str(&format!(
                    "  [{}] {} at {} (seen {}): allowed at line {line}: {reason}\n",
                    j.finding.severity.as_str(),
                    j.finding.id.id(),
                    j.finding.location,
                    j.finding.count
                ));
            }
        }
    }
    s.push_str(&o.verdict_line());
    s.push('\n');
    s
}
