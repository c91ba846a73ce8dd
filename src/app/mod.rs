//! Runs one invocation from its [`Config`]: a listing, or a show. A show opens its source
//! in the background, builds the Bevy app from one plugin per feature ([`plugins`]), runs
//! it windowed or headless, and reports how it ended.
//!
//! - [`plugins`]: the app, one plugin per feature, each taking its part of the config.
//! - [`check`]: `--check-effects`, one headless show per effect.
//! - [`shutdown`]: how a show ends (duration, window, stop requests, draining outputs).
//! - [`signal`]: SIGINT/SIGTERM and the stop watchdog.
//! - [`display`]: the window's display, checked before the renderer starts; [`x11`]: the
//!   Xlib calls that check makes (unsafe: FFI).
//! - [`session_env`]: the environment fixed before any thread starts (Mesa's device-select
//!   layer off where there is no Wayland session to ask).

mod check;
mod display;
mod plugins;
pub mod session_env;
mod shutdown;
mod signal;
mod x11;

use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bevy::app::PluginsState;
use bevy::prelude::*;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use tracing::info;

use crate::config::{Config, Invocation, SourceChoice};
use crate::control::plugin::ControlPlugin;
use crate::daydream::DaydreamLink;
use crate::decode::DecodeThread;
use crate::error::{LucidError, Result};
use crate::lifecycle::{Lifecycle, panic_message};
use crate::output::WriterSlot;
use crate::source::SourceSpec;
use crate::status::StatsFile;
use crate::video::SourceConnector;
use plugins::Show;

/// How often a wait on the main thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Writes a `--list-*` listing to stdout. Not `print!`: it panics when the reader has
/// gone (`lucid --list-effects | head`).
fn print_listing(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Runs one invocation: prints a listing, or plays until the stream ends, the duration
/// passes, a signal arrives or something fails.
pub fn run(invocation: Invocation) -> Result<()> {
    match invocation {
        Invocation::ListOsc => print_listing(&crate::control::osc::listing()),
        Invocation::ListMidi => {
            let ports = crate::control::midi::ports()?;
            let mut text = String::new();
            if ports.is_empty() {
                text.push_str("no MIDI inputs\n");
            }
            for (i, name) in ports.iter().enumerate() {
                text.push_str(&format!("{i}: {name}\n"));
            }
            print_listing(&text);
        }
        Invocation::ListAudio => {
            let mut text = String::from("capture (--audio-in):\n");
            let (inputs, outputs) = (
                crate::sound::device::inputs(),
                crate::sound::device::outputs(),
            );
            for (list, heading) in [(inputs, ""), (outputs, "playback (--audio-out):\n")] {
                text.push_str(heading);
                if list.is_empty() {
                    text.push_str("  none found (is ALSA there, with /dev/snd?)\n");
                }
                for (i, name) in list.iter().enumerate() {
                    text.push_str(&format!("  {i}: {name}\n"));
                }
            }
            print_listing(&text);
        }
        Invocation::ListEffects(catalog) => print_listing(&catalog.describe()),
        Invocation::CheckEffects(catalog) => {
            let (report, failed) = check::check_effects(&catalog, &mut |line| {
                tracing::info!("{line}");
            });
            print_listing(&report);
            if failed > 0 {
                return Err(LucidError::EffectsFailed(failed));
            }
        }
        Invocation::Run(config) => return play(*config),
    }
    Ok(())
}

/// Plays the show `config` describes.
fn play(mut config: Config) -> Result<()> {
    // A Daydream stream says what to play; creating one prints its id and WHIP URL first.
    let (spec, daydream) = match std::mem::replace(
        &mut config.source,
        SourceChoice::Play(SourceSpec::TestPattern),
    ) {
        SourceChoice::Play(spec) => (spec, None),
        SourceChoice::Daydream(options) => {
            let attached = crate::daydream::attach(options)?;
            (attached.source.clone(), Some(attached))
        }
    };
    if config.window.is_some() {
        display::check_display()?;
    }
    let lifecycle = Lifecycle::default();
    let (writer_started, writer) = WriterSlot::channel();
    let stats_file = config
        .stats_json
        .as_deref()
        .map(|p| StatsFile::open(p, &lifecycle))
        .transpose()?;
    // Bound before anything plays: a port in use is a clear error, not a silent show. The
    // MIDI connection lives as long as this function: dropping it closes the port.
    let remote = config
        .remote
        .as_ref()
        .map(|r| crate::remote::server::start(r, &lifecycle))
        .transpose()?;
    let (control, _midi) = ControlPlugin::open(
        &config.control,
        remote.as_ref().map(|r| r.requests.clone()),
        &lifecycle,
    )?;
    let sound = crate::sound::SoundPlugin::open(
        config.analysis_input.as_ref(),
        config.audio_out.as_deref(),
        &lifecycle,
    )?;
    let app_done = Arc::new(AtomicBool::new(false));
    signal::install_signal_handler(&lifecycle, &writer, &app_done)?;
    let daydream = daydream.map(|attached| {
        (
            DaydreamLink::start(attached, &lifecycle),
            config.cues.take(),
        )
    });
    let source_name = spec.display_name();
    info!("source: {source_name}");
    // Open the stream in the background: the app (and a window with its waiting slate)
    // runs while a stream that is not live yet is polled for, and a stop is seen at once
    // whatever the network is doing.
    let offline = plugins::renders_offline(&config, &spec);
    let connector = SourceConnector::new(spec, config.decode.clone());
    // Out of the schedule's hours nothing is opened: the schedule opens it when they begin.
    let open_now = config
        .schedule
        .as_ref()
        .is_none_or(crate::schedule::plugin::starts_open);
    let mut connection = open_now.then(|| connector.connect(&lifecycle));
    if let Some(connected_rx) = connection.as_mut().filter(|_| config.window.is_none()) {
        // Headless there is no slate to show: wait here, so bad input fails before the
        // renderer starts, with nothing but its one error line.
        match wait_for_open(connected_rx, &lifecycle) {
            Ok(Some(decode)) => {
                let (tx, rx) = crossbeam_channel::bounded(1);
                let _ = tx.send(Ok(decode));
                *connected_rx = rx;
            }
            Ok(None) => {
                finish_side_outputs(&writer, stats_file);
                return lifecycle.take_error().map_or(Ok(()), Err);
            }
            Err(e) => {
                finish_side_outputs(&writer, stats_file);
                return Err(e);
            }
        }
    }

    // Building the app starts the renderer (and the window's event loop): a panic there
    // is a setup problem (no GPU adapter, a display that refuses us), reported as such.
    let setup = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut app = plugins::build_app(Show {
            config,
            source_name: source_name.as_str(),
            lifecycle: &lifecycle,
            connector,
            connection,
            opened: open_now,
            stats_file: stats_file.as_ref(),
            writer_started,
            offline,
            daydream,
            control,
            remote,
            sound,
        });
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        if app.plugins_state() == PluginsState::Ready {
            app.finish();
            app.cleanup();
        }
        app
    }));
    let mut app = match setup {
        Ok(app) => app,
        Err(payload) => {
            finish_side_outputs(&writer, stats_file);
            return Err(LucidError::Render(format!(
                "the renderer could not start ({}); is a Vulkan driver installed? (Debian/Ubuntu \
                 without a GPU: mesa-vulkan-drivers)",
                panic_message(payload.as_ref())
            )));
        }
    };
    let exit = match std::panic::catch_unwind(AssertUnwindSafe(|| app.run())) {
        Ok(exit) => {
            // Dropping the app closes the channels its resources held (the stats lines).
            drop(app);
            exit
        }
        Err(payload) => {
            lifecycle.fail(LucidError::Internal {
                thread: "main".into(),
                message: panic_message(payload.as_ref()),
            });
            // Its state is whatever the panic left: never run its destructors.
            std::mem::forget(app);
            AppExit::error()
        }
    };
    app_done.store(true, Ordering::SeqCst);
    lifecycle.request_stop();
    finish_side_outputs(&writer, stats_file);
    if let Some(err) = lifecycle.take_error() {
        return Err(err);
    }
    match exit {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => Err(LucidError::Render(format!("Bevy exited with code {code}"))),
    }
}

/// Finalizes the recording and pipe (if they started) and the stats file.
fn finish_side_outputs(writer: &WriterSlot, stats: Option<StatsFile>) {
    if let Some(writer) = writer.take() {
        writer.finish();
    }
    if let Some(stats) = stats {
        stats.finish();
    }
}

/// Waits for the stream to open, looking at the stop flag between polls. `None` when Lucid
/// was asked to stop first.
fn wait_for_open(
    rx: &Receiver<Result<DecodeThread>>,
    lifecycle: &Lifecycle,
) -> Result<Option<DecodeThread>> {
    loop {
        match rx.recv_timeout(STOP_POLL) {
            Ok(Ok(decode)) => return Ok(Some(decode)),
            Ok(Err(e)) if e.is_stop() => return Ok(None),
            Ok(Err(e)) => return Err(e),
            Err(RecvTimeoutError::Timeout) if lifecycle.stopping() => return Ok(None),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
        }
    }
}
