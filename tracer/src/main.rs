use std::process::ExitCode;

use clap::Parser;
use tracer::{cli::Cli, commands, session};

fn main() -> ExitCode {
    // Before anything can panic: a panic on any thread ends the process with one line.
    session::crash::install();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // Fail points from FAILPOINTS (test builds only), kept for the whole run.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        // `tracer dump FILE | head`: the reader left; not a failure.
        Err(e)
            if e.root_cause()
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Everything (programs, links, maps) was dropped, i.e. detached,
            // on the way out of `run`.
            eprintln!("tracer: {e:#}");
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}
