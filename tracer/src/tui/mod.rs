//! The interactive terminal view (`tracer` on a terminal, `tracer --replay`).
//!
//! - `app`: the state and the keys (no terminal; tested directly),
//! - `ui`: drawing, a function of the state,
//! - this module: the terminal shell. Raw mode and the alternate screen are
//!   undone on every way out: quit, error (the guard's drop) and panic (a
//!   hook that restores the terminal before the panic message is printed,
//!   so the message is readable and the shell usable).

pub mod app;
pub mod ui;

use std::{
    io::{stdout, Stdout, Write},
    path::Path,
    process::ExitCode,
    sync::Once,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use ratatui::{
    backend::CrosstermBackend,
    crossterm::{
        cursor::{Hide, Show},
        event::{self, Event as TermEvent, KeyEvent},
        execute,
        terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen},
    },
    Terminal,
};
use tokio::sync::mpsc;

pub use app::{Action, App, SourceInfo, View};

use tracer_core::{
    events::{record::Recording, Event, Frame, StackTable},
    gate::EXIT_FINDINGS,
    replay, report,
};

use crate::session::{self, Consumer, Session, Stop};

/// Puts the terminal back: main screen, cooked mode, cursor shown. Safe to
/// call more than once (the panic hook and the guard may both run).
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            prev(info);
        }));
    });
}

/// The terminal in raw mode on the alternate screen for as long as it lives.
struct TermGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TermGuard {
    fn enter() -> Result<Self> {
        install_panic_hook();
        enable_raw_mode().context("switching the terminal to raw mode")?;
        if let Err(e) = execute!(stdout(), EnterAlternateScreen, Hide) {
            restore();
            return Err(e).context("entering the alternate screen");
        }
        match Terminal::new(CrosstermBackend::new(stdout())) {
            Ok(terminal) => Ok(TermGuard { terminal }),
            Err(e) => {
                restore();
                Err(e).context("opening the terminal")
            }
        }
    }

    fn draw(&mut self, app: &App) -> Result<()> {
        self.terminal
            .draw(|f| ui::draw(f, app))
            .context("drawing")?;
        Ok(())
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Keys (and resizes) from a thread blocked on the terminal, so the async
/// loop can wait on keys, events and signals together.
fn key_reader() -> mpsc::UnboundedReceiver<Option<KeyEvent>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || loop {
        let msg = match event::read() {
            Ok(TermEvent::Key(k)) => {
                // Tests: a panic on a thread other than the session's.
                #[cfg(feature = "failpoints")]
                fail::fail_point!("tui-key");
                Some(k)
            }
            Ok(TermEvent::Resize(..)) => None,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(msg).is_err() {
            return;
        }
    });
    rx
}

/// A name for saved reports that does not collide between saves.
fn stamp() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{:03}", d.as_secs(), d.subsec_millis())
}

/// Applies a key; true when the user quit.
fn handle_key(app: &mut App, k: KeyEvent) -> bool {
    match app.on_key(k) {
        Action::Quit => return true,
        Action::Save => {
            let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
            if let Err(e) = app.save(&dir, &stamp()) {
                app.message = Some(format!("save failed: {e:#}"));
            }
        }
        Action::None => {}
    }
    false
}

/// The summary printed on the main screen after the view closes, and the
/// exit status (as `tracer live`: 1 when there are findings).
fn finish(app: &App) -> Result<ExitCode> {
    let mut out = stdout().lock();
    write!(out, "{}", report::text::summary(app.engine.findings()))?;
    out.flush()?;
    Ok(if app.engine.findings().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}

/// An engine and view for a recording, and its events in the one replay order
/// (`tracer_core::replay`: `analyze` judges the same events in the same order).
pub fn replay_app(rec: &Recording, label: &str) -> (App, Vec<Event>) {
    let (events, caveats) = replay::events(rec);
    let engine = replay::engine_for(&rec.meta, rec.stacks.clone());
    let mut app = App::new(engine, SourceInfo::from_meta(label, &rec.meta));
    app.decode_errors = caveats.undecodable;
    app.lost = caveats.lost;
    app.progress = Some((0, events.len() as u64));
    (app, events)
}

/// `tracer --replay FILE --speed X` on a terminal: the recording's events fed
/// to the engine paced by their timestamps divided by `speed` (0: at once).
pub fn replay(file: &Path, speed: f64) -> Result<ExitCode> {
    if !speed.is_finite() || speed < 0.0 {
        bail!("--speed {speed}: must be 0 (as fast as possible) or a positive factor");
    }
    let rec = session::read_recording(file)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    let (mut app, events) = replay_app(&rec, &format!("replay {name}"));
    session::runtime()?.block_on(replay_loop(&mut app, &events, speed))?;
    finish(&app)
}

async fn replay_loop(app: &mut App, events: &[Event], speed: f64) -> Result<()> {
    let mut stop = Stop::install()?;
    let mut keys = key_reader();
    let mut tui = TermGuard::enter()?;
    let start = Instant::now();
    let t0 = events.first().map(|e| e.ts_ns).unwrap_or(0);
    let due = |e: &Event| Duration::from_secs_f64((e.ts_ns - t0) as f64 / 1e9 / speed);
    let mut i = 0;
    loop {
        // Feed what is due, in slices, so keys stay responsive on big files.
        let slice_end = Instant::now() + Duration::from_millis(20);
        while i < events.len() {
            if speed > 0.0 && due(&events[i]) > start.elapsed() {
                break;
            }
            app.feed(&events[i]);
            i += 1;
            if i % 256 == 0 && Instant::now() > slice_end {
                break;
            }
        }
        app.progress = Some((i as u64, events.len() as u64));
        app.tick(start.elapsed().as_millis() as u64, 0);
        tui.draw(app)?;
        let wait = if i >= events.len() {
            Duration::from_millis(500)
        } else if speed == 0.0 {
            Duration::ZERO
        } else {
            due(&events[i])
                .saturating_sub(start.elapsed())
                .min(Duration::from_millis(200))
        };
        tokio::select! {
            k = keys.recv() => match k {
                Some(Some(k)) => if handle_key(app, k) { break },
                Some(None) => {}
                // The terminal is gone: nobody to show anything to.
                None => break,
            },
            _ = tokio::time::sleep(wait) => {}
            _ = stop.requested() => break,
        }
    }
    drop(tui);
    Ok(())
}

/// Kernel monotonic time, the clock of event timestamps (held-for of locks
/// still held is measured against it between events).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The view takes a live session's stacks and events.
impl Consumer for App {
    fn stack(&mut self, id: u32, frames: Vec<Frame>) {
        self.engine.stacks_mut().insert(id, frames);
    }

    fn event(&mut self, ev: &Event) -> Result<()> {
        self.feed(ev);
        Ok(())
    }
}

/// `sudo tracer` on a terminal: the same view fed from the kernel.
pub fn live(args: crate::cli::LiveCmd) -> Result<ExitCode> {
    // The view owns the screen: no attach line under it.
    let opts = args
        .live
        .session(args.duration, args.record.clone(), false)?;
    session::runtime()?.block_on(live_async(opts))
}

async fn live_async(opts: session::Options) -> Result<ExitCode> {
    let mut s = Session::attach(Stop::install()?, &opts)?;
    let engine = replay::engine_for(&s.source.meta, StackTable::new());
    let mut app = App::new(engine, SourceInfo::from_meta("live", &s.source.meta));
    s.begin()?;
    let mut keys = key_reader();
    let mut tui = TermGuard::enter()?;
    let start = Instant::now();
    let mut redraw = tokio::time::interval(Duration::from_millis(250));
    let mut stop = false;
    while !stop {
        let mut draw = false;
        tokio::select! {
            r = s.source.wait() => r?,
            k = keys.recv() => match k {
                Some(Some(k)) => { stop = handle_key(&mut app, k); draw = true }
                Some(None) => draw = true,
                None => stop = true,
            },
            _ = redraw.tick() => draw = true,
            _ = s.stop.requested() => stop = true,
        }
        s.source.pump(stop, Some(&mut app))?;
        app.decode_errors = s.source.undecodable;
        if draw && !stop {
            app.lost = s.source.live.lost_per_cpu().iter().sum();
            app.tick(start.elapsed().as_millis() as u64, monotonic_ns());
            tui.draw(&app)?;
        }
    }
    drop(tui);
    let end = s.finish()?;
    let code = finish(&app)?;
    end.warn_losses(true);
    Ok(code)
}
