//! Logging goes to stderr, always: stdout belongs to `--pipe`.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

/// stderr for one log line. On a terminal it first clears the line, where the status line
/// (the status line) may stand without a newline.
struct StderrLine {
    tty: bool,
}

impl Write for StderrLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = err.write_all(b"\r\x1b[2K");
            self.tty = false; // once per event
        }
        // A stderr whose reader went away (`lucid ... 2>&1 | head`, a dead log collector)
        // must not stop the show: the line is dropped, and the show goes on.
        let _ = err.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Default filter: Lucid at info, the GPU stack only when something is wrong. naga is off:
/// its validator logs an ERROR line of its own for a shader it then rejects, and every
/// rejection already reaches the user with its place in the file.
const DEFAULT_FILTER: &str = "info,wgpu=error,wgpu_core=error,wgpu_hal=error,naga=off,bevy_render=warn,bevy_winit=warn,bevy_app=warn,bevy_asset=warn";

/// Installs the stderr logger. `RUST_LOG` overrides the filter.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let tty = std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || StderrLine { tty })
        .with_ansi(tty)
        // Its own report of a failed write is an `eprintln!`, which panics on a closed
        // stderr.
        .log_internal_errors(false)
        .with_target(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .try_init();
}
