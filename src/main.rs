//! `lucid`: parse the command line, run, and turn the outcome into an exit code.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    lucid::logging::init();
    // A panic is reported once, as an error, after the outputs were finalized (`app::run`
    // and every Lucid thread catch it); never as a backtrace that loses the recording.
    lucid::lifecycle::install_panic_hook();
    let args = lucid::cli::Args::parse();
    match lucid::app::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Not eprintln!: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
