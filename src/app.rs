//! Builds and runs the Bevy app for one invocation: opens the source, starts the outputs,
//! picks the windowed or headless schedule, and reports how it ended.

use std::time::{Duration, Instant};

use bevy::app::TerminalCtrlCHandlerPlugin;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::window::{ExitCondition, PresentMode, WindowCloseRequested, WindowResolution};
use bevy::winit::WinitPlugin;
use tracing::{info, warn};

use crate::cli::{Args, output_size};
use crate::decode::{DecodeOptions, DecodeThread};
use crate::error::{LucidError, Result};
use crate::headless::HeadlessRunnerPlugin;
use crate::lifecycle::Lifecycle;
use crate::output::{FrameSink, OutputConfig, OutputPlugin, WriterSlot, record};
use crate::preview::PreviewPlugin;
use crate::source::SourceSpec;
use crate::status::StatusPlugin;
use crate::video::{PlaybackStats, VideoFeed, VideoPlugin};

/// How long a stop waits for frames already rendered to reach the outputs.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs Lucid with parsed arguments until the stream ends, the duration passes, a signal
/// arrives or something fails.
pub fn run(args: Args) -> Result<()> {
    args.validate()?;
    let lifecycle = Lifecycle::default();
    install_signal_handler(&lifecycle)?;
    if let Some(path) = &args.record {
        record::check_writable(path)?;
    }
    let status = StatusPlugin::new(args.stats_json.as_deref())?;

    let spec = SourceSpec::resolve(args.url.as_deref());
    info!("source: {}", spec.display_name());
    // Open the stream in the background: the app (and a window with its waiting slate)
    // runs while a stream that is not live yet is polled for.
    let (connected_tx, connected_rx) = crossbeam_channel::bounded(1);
    let options = DecodeOptions {
        force_cpu: args.force_cpu,
        wait: Duration::from_secs_f64(args.wait),
    };
    let stop = lifecycle.stop_flag();
    let source_name = spec.display_name();
    if args.no_preview {
        // Headless there is no slate to show: open first, so bad input fails before the
        // renderer starts, with nothing but its one error line.
        connected_tx
            .send(Ok(DecodeThread::spawn(&spec, options, stop)?))
            .expect("the channel has room");
    } else {
        std::thread::Builder::new()
            .name("lucid-connect".into())
            .spawn(move || {
                let _ = connected_tx.send(DecodeThread::spawn(&spec, options, stop));
            })
            .expect("spawning a thread");
    }

    let outputs = OutputConfig {
        record: args.record.clone(),
        pipe: args.pipe,
        width: 0,
        height: 0,
        frame_rate: 30.0,
    };
    let writer = WriterSlot::default();
    // Until the stream says its size, the window takes the user's or a 16:9 default.
    let (width, height) = output_size(args.width, args.height, (1280, 720));

    let mut app = App::new();
    let plugins = DefaultPlugins
        .build()
        .disable::<bevy::log::LogPlugin>()
        // Lucid's own handler stops cleanly (finalizing recordings) instead of exiting.
        .disable::<TerminalCtrlCHandlerPlugin>()
        .set(RenderPlugin {
            // A frame must never be rendered with its pipeline still compiling: it would be
            // recorded black.
            synchronous_pipeline_compilation: true,
            ..default()
        });
    if args.no_preview {
        app.add_plugins(
            plugins
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    close_when_requested: false,
                    ..default()
                })
                .disable::<WinitPlugin>(),
        )
        .add_plugins(HeadlessRunnerPlugin);
    } else {
        app.add_plugins(plugins.set(WindowPlugin {
            primary_window: Some(Window {
                title: format!("Lucid - {source_name}"),
                resolution: WindowResolution::new(width, height),
                present_mode: PresentMode::AutoVsync,
                ..default()
            }),
            exit_condition: ExitCondition::DontExit,
            close_when_requested: false,
            ..default()
        }))
        .add_plugins(PreviewPlugin {
            fixed_size: args.width.is_some() && args.height.is_some(),
        })
        .add_systems(Update, stop_on_close_or_key);
    }
    app.insert_resource(lifecycle.clone())
        .insert_resource(RunLimit(args.duration.map(Duration::from_secs_f64)))
        .add_plugins(VideoPlugin::new(
            connected_rx,
            (args.width, args.height),
            args.latency.map(Duration::from_secs_f64),
        ))
        .add_plugins(status)
        .add_systems(Last, drive_shutdown);
    if outputs.any() {
        app.add_plugins(OutputPlugin::new(outputs, writer.clone()));
    }

    let exit = app.run();
    lifecycle.request_stop();
    if let Some(writer) = writer.take() {
        writer.finish();
    }
    if let Some(err) = lifecycle.take_error() {
        return Err(err);
    }
    match exit {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => Err(LucidError::Render(format!("Bevy exited with code {code}"))),
    }
}

fn install_signal_handler(lifecycle: &Lifecycle) -> Result<()> {
    let l = lifecycle.clone();
    ctrlc::set_handler(move || {
        if l.stopping() {
            // A second signal means the user does not want to wait for the drain.
            std::process::exit(130);
        }
        info!("stop requested; finishing outputs");
        l.request_stop();
    })
    .map_err(|e| LucidError::Render(format!("cannot install the signal handler: {e}")))
}

#[derive(Resource)]
struct RunLimit(Option<Duration>);

fn stop_on_close_or_key(
    mut closes: MessageReader<WindowCloseRequested>,
    keys: Res<ButtonInput<KeyCode>>,
    lifecycle: Res<Lifecycle>,
) {
    let key = keys.any_just_pressed([KeyCode::KeyQ, KeyCode::Escape]);
    if closes.read().count() > 0 || key {
        lifecycle.request_stop();
    }
}

/// Turns a stop request into an exit once the outputs have every frame rendered so far.
fn drive_shutdown(
    lifecycle: Res<Lifecycle>,
    stats: Res<PlaybackStats>,
    feed: Option<Res<VideoFeed>>,
    limit: Res<RunLimit>,
    sink: Option<Res<FrameSink>>,
    mut stop_seen: Local<Option<Instant>>,
    mut exit: MessageWriter<AppExit>,
) {
    if let (Some(limit), Some(first)) = (limit.0, stats.first_frame_at)
        && first.elapsed() >= limit
        && !lifecycle.stopping()
    {
        info!("--duration reached");
        lifecycle.request_stop();
    }
    if !lifecycle.stopping() {
        return;
    }
    // Exit one update after the stop is seen at the earliest, so every system (the status
    // line's final report, readback requests) sees the stopping state once.
    let Some(since) = *stop_seen else {
        *stop_seen = Some(Instant::now());
        return;
    };
    let pending = sink.map(|s| s.pending()).unwrap_or(0);
    if pending == 0 || since.elapsed() > DRAIN_TIMEOUT {
        if pending > 0 {
            warn!("{pending} rendered frame(s) did not reach the outputs in time");
        }
        let Some(feed) = feed else {
            exit.write(AppExit::Success); // the stream never opened: nothing to sum up
            return;
        };
        info!(
            "played {} frames ({} skipped by the clock, {} dropped in the queue, {} stalls, \
             {} catch-ups); {} texture set(s) allocated",
            stats.presented,
            stats.skipped,
            feed.dropped(),
            stats.stalls,
            stats.catch_ups,
            stats.texture_allocations
        );
        exit.write(AppExit::Success);
    }
}
