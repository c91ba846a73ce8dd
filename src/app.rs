//! Builds and runs the Bevy app for one invocation: opens the source, starts the outputs,
//! picks the windowed or headless schedule, and reports how it ended.

use std::time::{Duration, Instant};

use bevy::app::TerminalCtrlCHandlerPlugin;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::diagnostic::RenderDiagnosticsPlugin;
use bevy::window::{
    ExitCondition, PresentMode, WindowCloseRequested, WindowMode, WindowResolution,
};
use bevy::winit::WinitPlugin;
use tracing::{info, warn};

use crate::cli::{Args, output_size};
use crate::decode::{DecodeOptions, DecodeThread};
use crate::effects::chain::{EffectChain, Preset, parse_effect_arg};
use crate::effects::{EffectCatalog, EffectsPlugin};
use crate::error::{LucidError, Result};
use crate::headless::HeadlessRunnerPlugin;
use crate::lifecycle::Lifecycle;
use crate::output::{FrameSink, OutputConfig, OutputPlugin, WriterSlot, record};
use crate::overlay::OverlayPlugin;
use crate::preview::PreviewPlugin;
use crate::show::{KeyboardCaptured, ShowPlugin};
use crate::source::SourceSpec;
use crate::status::StatusPlugin;
use crate::video::{PlaybackStats, VideoFeed, VideoPlugin};

/// How long a stop waits for frames already rendered to reach the outputs.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs Lucid with parsed arguments until the stream ends, the duration passes, a signal
/// arrives or something fails.
pub fn run(args: Args) -> Result<()> {
    args.validate()?;
    let catalog = load_catalog(&args)?;
    if args.list_effects {
        print!("{}", describe_effects(&catalog));
        return Ok(());
    }
    let chain = build_chain(&args, &catalog)?;
    if !args.no_preview
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        return Err(LucidError::Render(
            "cannot open a window: no display (DISPLAY and WAYLAND_DISPLAY are unset); \
             run headless with --no-preview"
                .into(),
        ));
    }
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
        let mode = if args.fullscreen {
            WindowMode::BorderlessFullscreen(crate::show::monitor_selection(args.monitor))
        } else {
            WindowMode::Windowed
        };
        app.add_plugins(plugins.set(WindowPlugin {
            primary_window: Some(Window {
                title: format!("Lucid - {source_name}"),
                resolution: WindowResolution::new(width, height),
                present_mode: PresentMode::AutoVsync,
                mode,
                ..default()
            }),
            exit_condition: ExitCondition::DontExit,
            close_when_requested: false,
            ..default()
        }))
        .add_plugins(PreviewPlugin {
            fixed_size: args.width.is_some() && args.height.is_some(),
        })
        .add_plugins((
            ShowPlugin {
                fade: Duration::from_secs_f64(args.fade),
                screenshot_dir: args.screenshot_dir.clone().unwrap_or_else(|| ".".into()),
                monitor: args.monitor,
            },
            OverlayPlugin {
                visible: !args.hide_ui,
                presets_dir: args
                    .presets_dir
                    .clone()
                    .or_else(|| crate::cli::config_dir("presets")),
            },
        ))
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
        .add_plugins(EffectsPlugin::new(catalog, chain.clone()))
        .add_systems(Last, drive_shutdown);
    // Per-pass GPU timing reads timestamps back every frame: only where someone looks at
    // it (the overlay) or there are effects to time (--stats-json, the log).
    if !args.no_preview || !chain.effects.is_empty() {
        app.add_plugins(RenderDiagnosticsPlugin);
    }
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

/// The built-in effects and the user's effects folder.
fn load_catalog(args: &Args) -> Result<EffectCatalog> {
    if let Some(dir) = &args.effects_dir
        && !dir.is_dir()
    {
        return Err(LucidError::Usage(format!(
            "--effects-dir {}: no such folder",
            dir.display()
        )));
    }
    let dir = args
        .effects_dir
        .clone()
        .or_else(|| crate::cli::config_dir("effects"));
    Ok(EffectCatalog::load(dir.as_deref()))
}

/// `--preset` then each `--effect`, checked against the catalog: a typo fails here, with
/// the list of what exists, not silently on stage.
fn build_chain(args: &Args, catalog: &EffectCatalog) -> Result<EffectChain> {
    let broken = |name: &str| {
        catalog
            .entries
            .get(name)
            .filter(|e| e.def.is_none())
            .and_then(|e| e.error.as_ref())
            .map(|e| LucidError::Usage(format!("effect {name} does not compile: {e}")))
    };
    let mut chain = EffectChain::default();
    if let Some(path) = &args.preset {
        let preset = Preset::load(path)?;
        for inst in preset.effects {
            if let Some(e) = broken(&inst.effect) {
                return Err(e);
            }
            let def = catalog.get(&inst.effect).ok_or_else(|| {
                LucidError::Usage(format!(
                    "preset {}: no effect '{}' (available: {})",
                    path.display(),
                    inst.effect,
                    catalog.names().join(", ")
                ))
            })?;
            inst.check(&def)
                .map_err(|e| LucidError::Usage(format!("preset {}: {e}", path.display())))?;
            chain.effects.push(inst);
        }
        info!(
            "preset {}: {} effect(s)",
            path.display(),
            chain.effects.len()
        );
    }
    for arg in &args.effect {
        let name = arg.split(':').next().unwrap_or_default().trim();
        if let Some(e) = broken(name) {
            return Err(e);
        }
        let inst = parse_effect_arg(
            arg,
            |n| catalog.get(n).map(|d| (*d).clone()),
            &catalog.names(),
        )?;
        chain.effects.push(inst);
    }
    if !chain.effects.is_empty() {
        let names: Vec<_> = chain.effects.iter().map(|e| e.effect.as_str()).collect();
        info!("effect chain: {}", names.join(" -> "));
    }
    Ok(chain)
}

/// `--list-effects`: every effect with its parameters, ranges and defaults.
fn describe_effects(catalog: &EffectCatalog) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (name, entry) in &catalog.entries {
        let origin = if entry.builtin {
            "built-in".to_string()
        } else {
            entry
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let Some(def) = &entry.def else {
            let why = entry
                .error
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let _ = writeln!(out, "{name} ({origin}) - does not compile: {why}");
            continue;
        };
        let _ = writeln!(out, "{name} ({origin}) - {}", def.description);
        for p in &def.params {
            let _ = writeln!(out, "    {:<12} {}, default {}", p.name, p.kind, p.default);
        }
    }
    out
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
    captured: Res<KeyboardCaptured>,
    lifecycle: Res<Lifecycle>,
) {
    // Typing a preset name must not quit the show.
    let key = !captured.0 && keys.any_just_pressed([KeyCode::KeyQ, KeyCode::Escape]);
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
