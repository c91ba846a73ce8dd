//! `lucid`: parse the command line, run, and turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    lucid::logging::init();
    // A panic is a bug; say so in one line instead of a backtrace, and never hang on a
    // panicked render thread.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("lucid: internal error: {info}");
        std::process::exit(70);
    }));
    let args = lucid::cli::Args::parse();
    match lucid::app::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
