//! `lucid`: parse the command line, turn it into a checked configuration, run, and turn the
//! outcome into an exit code.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    lucid::app::session_env::settle();
    lucid::logging::init();
    // A panic is reported once, as an error, after the outputs were finalized (`app::run`
    // and every Lucid thread catch it); never as a backtrace that loses the recording.
    lucid::lifecycle::install_panic_hook();
    let args = lucid::cli::Args::parse();
    match lucid::config::Config::from_args(args).and_then(lucid::app::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Not eprintln!: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
