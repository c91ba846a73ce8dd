//! `lucid`: parse the command line, run, and turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    lucid::logging::init();
    // A panic is a bug; say so in one line instead of a backtrace, and never hang on a
    // panicked render thread.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        // Bevy panics when no adapter exists; that is a setup problem, not a bug.
        if msg.contains("Unable to find a GPU") {
            let err = lucid::LucidError::Render(
                "no GPU adapter found; install Vulkan drivers (Debian/Ubuntu without a GPU: \
                 mesa-vulkan-drivers)"
                    .into(),
            );
            eprintln!("error: {err}");
            std::process::exit(err.exit_code().into());
        }
        // winit cannot reach the display server (DISPLAY set but dead, no permission).
        if msg.contains("Failed to build event loop") {
            let err = lucid::LucidError::Render(format!(
                "cannot open a window: the display server is not reachable ({}); check \
                 DISPLAY / WAYLAND_DISPLAY, or run headless with --no-preview",
                msg.rsplit("error: ")
                    .next()
                    .unwrap_or(&msg)
                    .trim_end_matches([')', ' '])
            ));
            eprintln!("error: {err}");
            std::process::exit(err.exit_code().into());
        }
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
