//! `tracer doctor`: whether this machine can run the tracer, and for each thing missing,
//! what to enable. It attaches nothing: with privileges it loads the tracer's object and
//! one test program, as the tracer does at start-up, to see which function-hook
//! mechanism the kernel allows (`tracer probes` then attaches every hook).

use std::{io::Read, path::Path, process::ExitCode};

use anyhow::Result;

use crate::probes::loader;

/// One line of the report.
struct Check {
    what: &'static str,
    /// Ok(detail) or Err(what to do).
    result: Result<String, String>,
    /// Without it the tracer cannot run (else it sees less).
    required: bool,
}

/// Kernel options and what each gives the tracer.
const OPTIONS: &[(&str, bool, &str)] = &[
    ("CONFIG_BPF_SYSCALL", true, "eBPF programs at all"),
    (
        "CONFIG_DEBUG_INFO_BTF",
        true,
        "struct offsets (the programs read dma_buf fields)",
    ),
    (
        "CONFIG_BPF_EVENTS",
        true,
        "BPF programs on tracepoints and kprobes",
    ),
    ("CONFIG_DMA_SHARED_BUFFER", true, "dma-buf itself"),
    (
        "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
        false,
        "fentry/fexit hooks (cheapest; else kprobes)",
    ),
    (
        "CONFIG_KPROBES",
        false,
        "kprobe hooks (exporter callbacks; the fallback for fentry)",
    ),
];

/// `CONFIG_X=y` lines of a kernel config: (name, value).
pub fn config_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("CONFIG_"))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The running kernel's config: /proc/config.gz, else /boot/config-RELEASE.
fn kernel_config(release: &str) -> Option<(String, String)> {
    if let Ok(f) = std::fs::File::open("/proc/config.gz") {
        let mut s = String::new();
        if flate2::read::GzDecoder::new(f)
            .read_to_string(&mut s)
            .is_ok()
        {
            return Some(("/proc/config.gz".into(), s));
        }
    }
    let p = format!("/boot/config-{release}");
    std::fs::read_to_string(&p).ok().map(|s| (p, s))
}

/// Effective capabilities of this process (CapEff in /proc/self/status).
pub fn cap_eff(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

fn privileges() -> Check {
    const CAP_SYS_ADMIN: u64 = 21;
    const CAP_PERFMON: u64 = 38;
    const CAP_BPF: u64 = 39;
    let caps = cap_eff(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
    let has = |c: u64| caps & (1 << c) != 0;
    let result = if has(CAP_SYS_ADMIN) {
        Ok("CAP_SYS_ADMIN (root)".into())
    } else if has(CAP_BPF) && has(CAP_PERFMON) {
        Ok("CAP_BPF and CAP_PERFMON".into())
    } else {
        Err("run it with sudo (or give it CAP_BPF and CAP_PERFMON)".into())
    };
    Check {
        what: "privileges",
        result,
        required: true,
    }
}

fn btf() -> Check {
    let p = crate::probes::btf::VMLINUX_BTF;
    Check {
        what: "kernel BTF",
        result: if Path::new(p).exists() {
            Ok(p.to_string())
        } else {
            Err(format!(
                "{p} is missing: a kernel built with CONFIG_DEBUG_INFO_BTF=y"
            ))
        },
        required: true,
    }
}

fn kallsyms() -> Check {
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    let first = text.lines().next().unwrap_or("");
    let hidden = first.starts_with("0000000000000000");
    let dma_buf = text.lines().any(|l| l.ends_with(" dma_buf_export"));
    let result = match (first.is_empty(), hidden, dma_buf) {
        (true, _, _) => Err("/proc/kallsyms is unreadable".into()),
        (_, true, _) => Err(
            "/proc/kallsyms hides addresses from this user: run as root (or sysctl kernel.kptr_restrict=0)"
                .into(),
        ),
        (_, _, false) => Err("no dma_buf_export: this kernel has no dma-buf (CONFIG_DMA_SHARED_BUFFER)".into()),
        _ => Ok("addresses readable, dma-buf present".into()),
    };
    Check {
        what: "kernel symbols",
        result,
        required: true,
    }
}

fn preemption() -> Check {
    let result = match loader::preempt_mode() {
        loader::PreemptMode::Known(m) if loader::preemptible_bpf(&m) => Ok(format!(
            "preempt={m}: function hooks go on kprobes (fentry programs can be preempted here)"
        )),
        loader::PreemptMode::Known(m) => Ok(format!("preempt={m}: function hooks on fentry/fexit")),
        loader::PreemptMode::Unknown(why) => Err(format!(
            "{why}: the tracer then uses kprobes to be safe (mount -t debugfs none /sys/kernel/debug to let it tell)"
        )),
    };
    Check {
        what: "preemption model",
        result,
        required: false,
    }
}

/// What the kernel allows for function hooks, tried as the tracer's start-up tries it.
fn mechanisms() -> Check {
    let what = "function hooks";
    let t = match crate::probes::Tracer::load(&crate::probes::LoadOptions {
        ring_bytes: 1 << 20,
        quiet: true,
        ..Default::default()
    }) {
        Ok(t) => t,
        Err(e) => {
            return Check {
                what,
                result: Err(format!("not tried: {e:#}")),
                required: true,
            }
        }
    };
    let result = match t.mechanisms() {
        (Ok(()), _) => Ok("fentry/fexit available".to_string()),
        (Err(_), Ok(())) => Ok("kprobes available (fentry/fexit refused)".to_string()),
        (Err(f), Err(k)) => Err(format!(
            "neither fentry/fexit ({f}) nor kprobes ({k}): only tracepoints attach, and no \
             dma-buf call or ww_mutex lock can be seen; a kernel that allows BPF trampolines \
             (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS, no lockdown) or kprobes is needed"
        )),
    };
    Check {
        what,
        result,
        required: true,
    }
}

fn options(release: &str) -> Vec<Check> {
    let Some((from, text)) = kernel_config(release) else {
        return vec![Check {
            what: "kernel config",
            result: Err(format!(
                "neither /proc/config.gz nor /boot/config-{release}: the options below were not checked"
            )),
            required: false,
        }];
    };
    let values = config_values(&text);
    OPTIONS
        .iter()
        .map(|(name, required, gives)| {
            let v = values
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str());
            Check {
                what: name,
                result: match v {
                    Some("y") | Some("m") => Ok(format!("{} in {from}: {gives}", v.unwrap_or(""))),
                    _ => Err(format!("not set in {from}: without it, no {gives}")),
                },
                required: *required,
            }
        })
        .collect()
}

fn gpu_drivers() -> Check {
    let mut drivers: Vec<String> = std::fs::read_dir("/sys/class/drm")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("card") && !n.contains('-')
        })
        .filter_map(|e| std::fs::read_link(e.path().join("device/driver")).ok())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    drivers.sort();
    drivers.dedup();
    Check {
        what: "GPU drivers",
        result: if drivers.is_empty() {
            Err("no DRM card: nothing to trace here but udmabuf/dma-heap traffic (cargo xtask lab runs real drivers in qemu)".into())
        } else {
            Ok(drivers.join(", "))
        },
        required: false,
    }
}

pub fn doctor() -> Result<ExitCode> {
    let release = crate::session::kernel_release();
    println!("kernel {release}");
    let mut checks = vec![privileges(), btf(), kallsyms()];
    // Loading needs the three above; without them it would only repeat their message.
    if checks.iter().all(|c| c.result.is_ok()) {
        checks.push(mechanisms());
    }
    checks.push(preemption());
    checks.extend(options(&release));
    checks.push(gpu_drivers());
    let w = checks.iter().map(|c| c.what.len()).max().unwrap_or(10);
    let mut missing = 0;
    for c in &checks {
        let (mark, text) = match &c.result {
            Ok(d) => ("ok", d.as_str()),
            Err(fix) if c.required => {
                missing += 1;
                ("MISSING", fix.as_str())
            }
            Err(fix) => ("limited", fix.as_str()),
        };
        println!("  {:<w$}  {mark:<8} {text}", c.what);
    }
    if missing > 0 {
        println!("\n{missing} requirement(s) missing: until they are met the tracer cannot see dma-buf locking here");
        Ok(ExitCode::from(1))
    } else {
        println!("\nready: `sudo tracer probes` lists what each hook attaches to");
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_capabilities_are_read() {
        let v = config_values(
            "# comment\nCONFIG_BPF_SYSCALL=y\nCONFIG_KPROBES=m\n# CONFIG_X is not set\n",
        );
        assert_eq!(
            v,
            [
                ("CONFIG_BPF_SYSCALL".to_string(), "y".to_string()),
                ("CONFIG_KPROBES".to_string(), "m".to_string())
            ]
        );
        assert_eq!(
            cap_eff("Name:\tx\nCapEff:\t000001c000000000\n"),
            0x1c0_0000_0000
        );
        assert_eq!(cap_eff("nothing"), 0);
    }
}
