//! The commands: thin shells wiring a source (a live `session::Session`, or a recording
//! through `tracer_core::replay`) to a sink (the terminal, files, an exit status).
//! Programs and links are owned by the session and detached when it drops, on every
//! exit path (return, error, signal).

mod analyze;
mod doctor;
mod dump;
mod info;
mod live;
mod record;
mod run;

use std::process::ExitCode;

use anyhow::Result;

use crate::{
    cli::{Cli, Command},
    session::runtime,
};

pub use tracer_core::gate::{EXIT_FAILURE, EXIT_FINDINGS};

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => {
            // On a terminal the interactive view; piped, the streaming text
            // (or `tracer analyze`'s report for a replay).
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
            match cli.replay {
                Some(file) if tty => crate::tui::replay(&file, cli.speed),
                Some(file) => analyze::expect(&file, cli.live.json, None),
                None if tty && !cli.live.json => crate::tui::live(cli.live),
                None => runtime()?.block_on(live::live(cli.live)),
            }
        }
        Some(c) => run_command(c),
    }
}

fn run_command(c: Command) -> Result<ExitCode> {
    match c {
        Command::Live(args) => runtime()?.block_on(live::live(args)),
        Command::Analyze {
            file,
            json,
            expect: None,
            gate,
        } => analyze::gated(&file, json, &gate),
        Command::Analyze {
            file,
            json,
            expect: Some(expect),
            ..
        } => analyze::expect(&file, json, Some(&expect)),
        Command::Run(args) => runtime()?.block_on(run::run(args)),
        Command::Graph(args) => analyze::graph(&args),
        Command::Rules { kernel } => info::rules(kernel),
        Command::Probes { json } => info::probes(json),
        Command::Record(args) => runtime()?.block_on(record::record(args)),
        Command::Doctor => doctor::doctor(),
        Command::Completions { shell } => info::completions(shell),
        Command::Manpages { dir } => info::manpages(&dir),
        Command::Dump {
            file,
            json,
            limit,
            no_stacks,
            resv_links,
        } => {
            if resv_links {
                dump::resv_links(&file, json)
            } else {
                dump::dump(&file, json, limit, !no_stacks)
            }
        }
    }
}
