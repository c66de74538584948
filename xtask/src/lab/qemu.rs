//! Booting a guest under qemu (TCG) and getting its files back.
//!
//! Channel: the guest's second serial port (/dev/ttyS1) is a plain file on the host. The
//! guest writes each file as a frame
//!
//! ```text
//! ===LAB-BEGIN <name> <size> <sha256>
//! <base64 lines>
//! ===LAB-END <name>
//! ```
//!
//! and the host decodes the frames after qemu exits, checking size and checksum. A serial
//! port needs no driver module and no filesystem on either side, works on every kernel the
//! lab boots, and a frame cut short by a crash is detected rather than silently truncated.
//! The console (ttyS0) stays free for humans.

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Marker the init script prints as its last line before powering off.
pub const EXIT_MARKER: &str = "LAB-EXIT ";

pub struct BootConfig<'a> {
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    /// Directory for console.log, channel.raw and the decoded files (under `files/`).
    pub run_dir: &'a Path,
    pub timeout: Duration,
    /// Echo the guest console to our stdout as it arrives.
    pub echo_console: bool,
    pub emulator: &'a Emulator,
}

/// Which qemu runs the guest, and how TCG schedules its vCPUs.
#[derive(Debug, Clone, Default)]
pub struct Emulator {
    /// A qemu-system-x86_64 binary; None: the one on PATH.
    pub qemu: Option<PathBuf>,
    /// One host thread per vCPU (MTTCG) instead of one for all.
    pub multi_thread: bool,
}

impl Emulator {
    /// `-accel` value. Single-threaded by default: with a thread per vCPU, code one vCPU
    /// patches (text_poke_bp: int3, sync, rest) while the other runs it was sometimes run
    /// stale, and the kernel died of an `Oops: int3` it could not attribute (at boot in
    /// sched_clock_cpu, in ww_mutex_lock when a second tracer attached during traffic, and at
    /// static-key sites of the mmap_lock and sys_exit tracepoints while tracing started or
    /// stopped). `cargo xtask lab --cycles` measures it: docs/lab.md, "Guest crashes".
    pub fn accel(&self) -> &'static str {
        if self.multi_thread {
            "tcg,thread=multi"
        } else {
            "tcg,thread=single"
        }
    }

    pub fn binary(&self) -> Result<PathBuf> {
        match &self.qemu {
            Some(q) if q.is_file() => Ok(q.clone()),
            Some(q) => bail!("--qemu {}: no such file", q.display()),
            None => super::initramfs::find_tool("qemu-system-x86_64").context(
                "qemu-system-x86_64 not found; install qemu-system-x86 (`cargo xtask setup`)",
            ),
        }
    }

    /// `qemu-system-x86_64 --version`'s first line, for reports.
    pub fn version(&self) -> String {
        self.binary()
            .ok()
            .and_then(|q| Command::new(q).arg("--version").output().ok())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_else(|| "qemu (version unknown)".into())
    }
}

pub struct BootResult {
    pub elapsed: Duration,
    pub console_log: PathBuf,
    /// Exit status of the guest script, from the exit marker (None if the guest never got there).
    pub guest_status: Option<i32>,
    /// The guest was killed at the timeout; files shipped before that are still decoded.
    pub timed_out: bool,
    /// Where the files the guest shipped were decoded to.
    pub files_dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// Frames that could not be decoded (a transfer cut off by the timeout, a damaged frame).
    pub channel_errors: Vec<String>,
}

impl BootResult {
    /// A one-line account of how the guest ended, for error messages.
    pub fn describe_end(&self) -> String {
        if self.timed_out {
            format!(
                "the guest did not power off within {:.0}s and was killed",
                self.elapsed.as_secs_f64()
            )
        } else if let Some(rc) = self.guest_status {
            format!("the guest script exited {rc}")
        } else {
            "the guest stopped before its script finished (kernel panic or init died)".to_string()
        }
    }

    /// The guest kernel died before its init said anything (`LAB-INIT`, tests/lab/guest/init):
    /// nothing of the lab (modules, tracer, scenarios) had run. Under TCG that has been the
    /// kernel's own text patching at boot (`Oops: int3` in `sched_clock_cpu` 1.5 s in).
    pub fn died_before_init(&self) -> bool {
        !self.timed_out
            && self.guest_status.is_none()
            && !fs::read_to_string(&self.console_log)
                .map(|c| console_reached_init(&c))
                .unwrap_or(false)
    }

    /// `describe_end` plus the console's last lines, for when something went wrong.
    pub fn failure_report(&self) -> String {
        format!(
            "{}. Console {}:\n{}",
            self.describe_end(),
            self.console_log.display(),
            tail(&self.console_log, 25)
        )
    }
}

/// Whether the guest's init printed its first line.
fn console_reached_init(console: &str) -> bool {
    console.lines().any(|l| l.contains("LAB-INIT"))
}

pub fn boot(cfg: &BootConfig) -> Result<BootResult> {
    let qemu = cfg.emulator.binary()?;
    fs::create_dir_all(cfg.run_dir)?;
    let console_log = cfg.run_dir.join("console.log");
    let channel = cfg.run_dir.join("channel.raw");
    let _ = fs::remove_file(&channel);
    let mut child = Command::new(qemu)
        // /dev/kvm on these machines cannot run a stock guest; TCG is slower but works.
        // How TCG runs the vCPUs: [`Emulator::accel`].
        .args([
            "-accel",
            cfg.emulator.accel(),
            "-m",
            "2G",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        // qemu's standard VGA, so the bochs DRM driver has a device to modeset; a QXL and a
        // virtio GPU beside it for the qxl and virtio-gpu drivers (cirrus would be a second
        // VGA device, which qemu refuses).
        .args(["-vga", "std", "-device", "qxl", "-device", "virtio-gpu-pci"])
        .arg("-kernel")
        .arg(cfg.vmlinuz)
        .arg("-initrd")
        .arg(cfg.initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .args(["-monitor", "none", "-serial", "stdio"])
        .arg("-serial")
        .arg(format!("file:{}", channel.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu")?;
    let start = Instant::now();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<Option<i32>>();
    let log_path = console_log.clone();
    let echo = cfg.echo_console;
    // The reader ends when qemu closes its stdout, i.e. when qemu exits: that is the
    // completion signal, so the main thread can wait on it with a deadline.
    let reader = std::thread::spawn(move || -> Result<()> {
        let mut log = fs::File::create(&log_path)?;
        let mut status = None;
        for line in BufReader::new(stdout).split(b'\n') {
            let line = line?;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\r');
            writeln!(log, "{text}")?;
            if echo {
                println!("  | {text}");
            }
            if let Some(rc) = text
                .find(EXIT_MARKER)
                .map(|i| &text[i + EXIT_MARKER.len()..])
            {
                status = rc.trim().parse().ok();
            }
        }
        let _ = tx.send(status);
        Ok(())
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let (guest_status, timed_out) = match rx.recv_timeout(cfg.timeout) {
        Ok(s) => (s, false),
        Err(_) => {
            let _ = child.kill();
            (None, true)
        }
    };
    let _ = reader.join();
    let status = child.wait()?;
    let elapsed = start.elapsed();
    let qemu_err = err_reader.join().unwrap_or_default();
    if !timed_out && !status.success() {
        bail!(
            "qemu failed ({status}): {}\n{}",
            qemu_err.trim(),
            tail(&console_log, 25)
        );
    }
    // Decode whatever arrived even after a timeout: the scenarios that finished keep
    // their results.
    let files_dir = cfg.run_dir.join("files");
    let (files, channel_errors) = decode_channel(&channel, &files_dir);
    Ok(BootResult {
        elapsed,
        console_log,
        guest_status,
        timed_out,
        files_dir,
        files,
        channel_errors,
    })
}

pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Decode every complete frame of `raw` into `dir`. Returns the files written and one error
/// per frame that could not be used (damaged, or cut off when the guest died).
pub fn decode_channel(raw: &Path, dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let bytes = fs::read(raw).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut current: Option<(String, usize, String, String)> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("===LAB-BEGIN ") {
            if let Some((n, ..)) = current.take() {
                errors.push(format!("{n}: frame not terminated"));
            }
            let f: Vec<&str> = rest.split_whitespace().collect();
            match (f.len(), f.get(1).and_then(|s| s.parse::<usize>().ok())) {
                (3, Some(size)) => {
                    current = Some((f[0].to_string(), size, f[2].to_string(), String::new()))
                }
                _ => errors.push(format!("malformed frame header `{line}`")),
            }
        } else if let Some(name) = line.strip_prefix("===LAB-END ") {
            let Some((n, size, sum, b64)) = current.take() else {
                errors.push(format!("frame end without begin for {name}"));
                continue;
            };
            match write_frame(dir, &n, name.trim(), size, &sum, &b64) {
                Ok(p) => out.push(p),
                Err(e) => errors.push(format!("{n}: {e:#}")),
            }
        } else if let Some((_, _, _, b64)) = current.as_mut() {
            b64.push_str(line.trim());
        }
    }
    if let Some((n, ..)) = current {
        errors.push(format!(
            "{n}: transfer cut off (the guest died or was killed mid-file)"
        ));
    }
    (out, errors)
}

fn write_frame(
    dir: &Path,
    n: &str,
    end_name: &str,
    size: usize,
    sum: &str,
    b64: &str,
) -> Result<PathBuf> {
    if n != end_name {
        bail!("frame ended as {end_name}");
    }
    if n.split('/').any(|c| c == ".." || c.is_empty()) {
        bail!("refusing file name");
    }
    let data = base64_decode(b64)?;
    if data.len() != size {
        bail!("received {} bytes, guest sent {size}", data.len());
    }
    let path = dir.join(n);
    fs::create_dir_all(path.parent().unwrap())?;
    fs::write(&path, &data)?;
    let got = sha256(&path)?;
    if got != sum {
        let _ = fs::remove_file(&path);
        bail!("checksum mismatch (guest {sum}, host {got})");
    }
    Ok(path)
}

fn sha256(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string())
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let val = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("invalid base64 byte {c:#x}"),
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !bytes.len().is_multiple_of(4) {
        bail!("base64 length {} is not a multiple of 4", bytes.len());
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert!(base64_decode("aGk").is_err());
        assert_eq!(base64_decode("YWJj\nZGVm").unwrap(), b"abcdef");
        assert_eq!(base64_decode("").unwrap(), b"");
    }

    fn ended(console: &str, guest_status: Option<i32>, timed_out: bool) -> BootResult {
        let dir = std::env::temp_dir().join(format!("qemu-end-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("console-{}.log", console.len()));
        fs::write(&log, console).unwrap();
        BootResult {
            elapsed: Duration::from_secs(1),
            console_log: log,
            guest_status,
            timed_out,
            files_dir: dir,
            files: Vec::new(),
            channel_errors: Vec::new(),
        }
    }

    #[test]
    fn only_a_kernel_that_died_before_init_is_booted_again() {
        let early = "[    1.48] Oops: int3: 0000 [#2] PREEMPT SMP NOPTI\n[    1.49] Kernel panic - not syncing\n";
        assert!(ended(early, None, false).died_before_init());
        // Once init has spoken, a death is the lab's to judge (a module, the tracer).
        let late = "\x1b[2JLAB-INIT\r\nLAB-BOOTED 6.12\n[   20.1] Oops: int3\n";
        assert!(!ended(late, None, false).died_before_init());
        // A finished script or a timeout is not a death before init.
        assert!(!ended(early, Some(0), false).died_before_init());
        assert!(!ended(early, None, true).died_before_init());
    }
}
