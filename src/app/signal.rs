//! SIGINT/SIGTERM: a clean stop that always ends Lucid within about a second, and a second
//! signal that exits at once.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::error::{EXIT_OK, EXIT_SECOND_SIGNAL, LucidError, Result};
use crate::lifecycle::Lifecycle;
use crate::output::WriterSlot;

/// After SIGINT/SIGTERM, how long the render loop gets to wind down before the stop
/// watchdog finalizes the outputs itself and exits (a frame stuck in a shader compile, a
/// blocked driver call): a signal always ends Lucid within about a second.
const SIGNAL_DEADLINE: Duration = Duration::from_millis(800);
/// How often the watchdog looks whether `run` has taken over.
const STOP_POLL: Duration = Duration::from_millis(20);

/// SIGINT/SIGTERM: a clean stop; a second signal exits at once (130). A watchdog makes
/// sure the first one ends Lucid within about a second even when the render loop is stuck:
/// it finalizes the outputs itself and exits.
pub(super) fn install_signal_handler(
    lifecycle: &Lifecycle,
    writer: &WriterSlot,
    app_done: &Arc<AtomicBool>,
) -> Result<()> {
    let l = lifecycle.clone();
    let writer = writer.clone();
    let app_done = app_done.clone();
    let signalled = AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if signalled.swap(true, Ordering::SeqCst) {
            // A second signal means the user does not want to wait for the drain.
            std::process::exit(EXIT_SECOND_SIGNAL.into());
        }
        info!("stop requested; finishing outputs");
        l.request_stop();
        let (l, writer, app_done) = (l.clone(), writer.clone(), app_done.clone());
        crate::lifecycle::spawn_thread("lucid-stop-watchdog", move || {
            let deadline = Instant::now() + SIGNAL_DEADLINE;
            while Instant::now() < deadline {
                if app_done.load(Ordering::SeqCst) {
                    return; // `run` is finalizing the outputs itself
                }
                std::thread::sleep(STOP_POLL);
            }
            warn!("the render loop did not stop in time; finalizing outputs and exiting");
            if let Some(w) = writer.take() {
                w.finish();
            }
            let code = match l.take_error() {
                Some(e) => {
                    let _ = writeln!(std::io::stderr(), "error: {e}");
                    e.exit_code()
                }
                None => EXIT_OK,
            };
            std::process::exit(code.into());
        });
    })
    .map_err(|e| LucidError::Render(format!("cannot install the signal handler: {e}")))
}
