//! Builds and runs the Bevy app for one invocation: opens the source, starts the outputs,
//! picks the windowed or headless schedule, and reports how it ended.

use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bevy::app::{PluginsState, TerminalCtrlCHandlerPlugin};
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::diagnostic::RenderDiagnosticsPlugin;
use bevy::window::{
    ExitCondition, PresentMode, WindowCloseRequested, WindowMode, WindowResolution,
};
use bevy::winit::WinitPlugin;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use tracing::{info, warn};

use crate::cli::{Args, PipeFormat, output_size};
use crate::compositor::layers::LayersPlugin;
use crate::control::osc::Feedback;
use crate::control::plugin::ControlPlugin;
use crate::daydream::cues::CueList;
use crate::daydream::panel::{Cues, DaydreamPanelPlugin};
use crate::daydream::{DaydreamLink, DaydreamPlugin};
use crate::decode::{DecodeOptions, DecodeThread};
use crate::effects::chain::{EffectChain, Preset, parse_effect_arg};
use crate::effects::{EffectCatalog, EffectsPlugin};
use crate::error::{EXIT_OK, EXIT_SECOND_SIGNAL, LucidError, Result};
use crate::headless::HeadlessRunnerPlugin;
use crate::lifecycle::{Lifecycle, panic_message};
use crate::output::{FrameSink, OutputConfig, OutputPlugin, WriterSlot};
use crate::overlay::OverlayPlugin;
use crate::preview::PreviewPlugin;
use crate::show::{KeyboardCaptured, Screenshots, ShowPlugin};
use crate::source::{SourceOptions, SourceSpec};
use crate::status::{StatsFile, StatusPlugin};
use crate::video::render::CanvasReaders;
use crate::video::{Pacing, PlaybackStats, VideoFeed, VideoPlugin};

/// How long a stop waits for frames already rendered to reach the outputs.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(600);
/// After SIGINT/SIGTERM, how long the render loop gets to wind down before the stop
/// watchdog finalizes the outputs itself and exits (a frame stuck in a shader compile, a
/// blocked driver call): a signal always ends Lucid within about a second.
const SIGNAL_DEADLINE: Duration = Duration::from_millis(800);
/// How often a wait on the main thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Writes a `--list-*` listing to stdout. Not `print!`: it panics when the reader has
/// gone (`lucid --list-effects | head`).
fn print_listing(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Runs Lucid with parsed arguments until the stream ends, the duration passes, a signal
/// arrives or something fails.
pub fn run(args: Args) -> Result<()> {
    args.validate()?;
    if args.list_osc {
        print_listing(&crate::control::osc::listing());
        return Ok(());
    }
    if args.list_midi {
        let ports = crate::control::midi::ports()?;
        let mut text = String::new();
        if ports.is_empty() {
            text.push_str("no MIDI inputs\n");
        }
        for (i, name) in ports.iter().enumerate() {
            text.push_str(&format!("{i}: {name}\n"));
        }
        print_listing(&text);
        return Ok(());
    }
    let cues = args
        .cues
        .as_deref()
        .map(CueList::load)
        .transpose()
        .map_err(|e| LucidError::Usage(format!("--cues {e}")))?;
    let scene = ShowScene::load(&args)?;
    // A Daydream stream says what to play; creating one prints its id and WHIP URL first.
    let daydream = args.daydream()?.map(crate::daydream::attach).transpose()?;
    let spec = match &daydream {
        Some(attached) => attached.source.clone(),
        None => SourceSpec::resolve(scene.source(&args), args.protocol.into())?,
    };
    let catalog = load_catalog(&args)?;
    if args.list_effects {
        print_listing(&describe_effects(&catalog));
        return Ok(());
    }
    let chain = build_chain(&args, &catalog, &scene)?;
    if !args.no_preview {
        check_display()?;
    }
    let lifecycle = Lifecycle::default();
    let writer = WriterSlot::default();
    let stats_file = args
        .stats_json
        .as_deref()
        .map(|p| StatsFile::open(p, &lifecycle))
        .transpose()?;
    // Bound before anything plays: a port in use is a clear error, not a silent show.
    let osc = args
        .osc
        .map(|port| crate::control::osc::listen(port, &lifecycle))
        .transpose()?;
    // The MIDI connection lives as long as this function: dropping it closes the port.
    let midi = args
        .midi
        .as_deref()
        .map(crate::control::midi::MidiInput::open)
        .transpose()?;
    let control = (osc.is_some() || midi.is_some())
        .then(|| -> Result<ControlPlugin> {
            Ok(ControlPlugin {
                osc,
                feedback: args
                    .osc_feedback()?
                    .map(|to| Feedback::start(to, &lifecycle))
                    .transpose()?,
                midi: midi.as_ref().map(|(_, rx)| rx.clone()),
                mappings: {
                    let mut m = scene.scene.midi.clone();
                    if let Some(path) = &args.preset {
                        m.extend(Preset::load(path)?.midi);
                    }
                    m
                },
            })
        })
        .transpose()?;
    let app_done = Arc::new(AtomicBool::new(false));
    install_signal_handler(&lifecycle, &writer, &app_done)?;
    let daydream = daydream.map(|attached| (DaydreamLink::start(attached, &lifecycle), cues));

    let source_name = spec.display_name();
    let outputs = OutputConfig {
        record: args.record.clone(),
        overwrite: args.overwrite,
        pipe: args.pipe,
        width: 0,
        height: 0,
        frame_rate: 30.0,
        targets: args.output_targets()?,
        encoding: args.encoding()?,
    };
    // A finite input into files only renders every frame as fast as the machine allows;
    // a window, a pipe, a network output, a live source or --realtime keep real-time
    // pacing (the video side confirms the input is finite once it opens).
    let offline = args.no_preview
        && !args.realtime
        && args.pipe.is_none()
        && outputs.any()
        && outputs.files_only()
        && matches!(
            spec,
            SourceSpec::Ffmpeg(_) | SourceSpec::Hls(_) | SourceSpec::Playback { .. }
        );
    info!("source: {source_name}");
    // Open the stream in the background: the app (and a window with its waiting slate)
    // runs while a stream that is not live yet is polled for, and a stop is seen at once
    // whatever the network is doing.
    let options = DecodeOptions {
        force_cpu: args.force_cpu,
        source: SourceOptions {
            protocol: args.protocol.into(),
            livepeer_api: args.livepeer_api()?,
            wait: Duration::from_secs_f64(args.wait),
            ice_servers: args.ice_servers()?,
        },
    };
    // The scene's layers, then --layer's above them; --crossfade overrides its fader.
    let specs = layer_specs(&args, &catalog, &scene)?;
    // Always there, even without layers: the overlay can add them.
    let layers = LayersPlugin {
        specs,
        options: options.clone(),
        protocol: args.protocol.into(),
        fader: match (&scene.path, args.crossfade) {
            (Some(_), None) => scene.scene.crossfader,
            _ => args.crossfader()?,
        },
    };
    let (connected_tx, mut connected_rx) = crossbeam_channel::bounded(1);
    let opener = lifecycle.clone();
    lifecycle.spawn("lucid-connect", move || {
        let _ = connected_tx.send(DecodeThread::spawn(&spec, options, &opener));
    });
    if args.no_preview {
        // Headless there is no slate to show: wait here, so bad input fails before the
        // renderer starts, with nothing but its one error line.
        match wait_for_open(&connected_rx, &lifecycle) {
            Ok(Some(decode)) => {
                let (tx, rx) = crossbeam_channel::bounded(1);
                let _ = tx.send(Ok(decode));
                connected_rx = rx;
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
        let mut app = build_app(
            &args,
            source_name.as_str(),
            &lifecycle,
            connected_rx,
            catalog,
            &chain,
            stats_file.as_ref(),
            &outputs,
            &writer,
            offline,
            daydream,
        );
        if let Some(control) = control {
            app.add_plugins(control);
        }
        app.add_plugins(layers);
        if let Some(fps) = args.fps {
            app.insert_resource(crate::video::OutputRate(fps));
        }
        app.insert_resource(crate::compositor::scene::SceneSource(
            scene.source(&args).map(String::from),
        ));
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

/// `--scene`, loaded (or an empty scene without one).
struct ShowScene {
    path: Option<std::path::PathBuf>,
    scene: crate::compositor::scene::Scene,
}

impl ShowScene {
    fn load(args: &Args) -> Result<ShowScene> {
        Ok(match &args.scene {
            Some(path) => ShowScene {
                scene: crate::compositor::scene::Scene::load(path)?,
                path: Some(path.clone()),
            },
            None => ShowScene {
                path: None,
                scene: Default::default(),
            },
        })
    }

    /// The bottom layer's source: `--url`, else the scene's.
    fn source<'a>(&'a self, args: &'a Args) -> Option<&'a str> {
        args.url.as_deref().or(self.scene.source.as_deref())
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

/// A named X display that nobody answers on fails here, in one clear line, instead of
/// deep inside the window system's setup.
fn check_display() -> Result<()> {
    let display = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
    let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some_and(|w| !w.is_empty());
    match display {
        None if wayland => Ok(()),
        None => Err(LucidError::Render(
            "cannot open a window: no display (DISPLAY and WAYLAND_DISPLAY are unset); \
             run headless with --no-preview"
                .into(),
        )),
        Some(d) if wayland || x11_reachable(&d) => Ok(()),
        Some(d) => Err(LucidError::Render(format!(
            "cannot open a window: the display server is not reachable (DISPLAY={d}); check \
             DISPLAY, or run headless with --no-preview"
        ))),
    }
}

/// True when an X server listens where `DISPLAY` says (`:N` or `unix:N` on its socket,
/// `host:N` on TCP port 6000+N).
fn x11_reachable(display: &str) -> bool {
    let Some((host, rest)) = display.rsplit_once(':') else {
        return false;
    };
    let Ok(number) = rest.split('.').next().unwrap_or("").parse::<u16>() else {
        return false;
    };
    if host.is_empty() || host == "unix" {
        let socket = format!("/tmp/.X11-unix/X{number}");
        return std::os::unix::net::UnixStream::connect(socket).is_ok();
    }
    use std::net::ToSocketAddrs;
    let Some(port) = 6000u16.checked_add(number) else {
        return false;
    };
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}

/// The Bevy app for this run: windowed or headless, with the plugins the flags ask for.
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces `run` prepared, handed over once"
)]
fn build_app(
    args: &Args,
    source_name: &str,
    lifecycle: &Lifecycle,
    connected_rx: Receiver<Result<DecodeThread>>,
    catalog: EffectCatalog,
    chain: &EffectChain,
    stats_file: Option<&StatsFile>,
    outputs: &OutputConfig,
    writer: &WriterSlot,
    offline: bool,
    daydream: Option<(DaydreamLink, Option<CueList>)>,
) -> App {
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
            offline,
        ))
        .add_plugins(StatusPlugin::new(stats_file))
        .add_plugins(EffectsPlugin::new(catalog, chain.clone(), args.bpm))
        .add_systems(Last, drive_shutdown);
    // Per-pass GPU timing reads timestamps back every frame: only where someone looks at
    // it (the overlay, --stats-json) or there are effects to time (the log).
    if !args.no_preview || !chain.effects.is_empty() || stats_file.is_some() {
        app.add_plugins(RenderDiagnosticsPlugin);
    }
    if outputs.any() {
        app.add_plugins(OutputPlugin::new(outputs.clone(), writer.clone()));
    }
    if let Some((link, cues)) = daydream {
        app.add_plugins(DaydreamPlugin(link))
            .insert_resource(Cues(cues.unwrap_or_default()));
        if !args.no_preview {
            app.add_plugins(DaydreamPanelPlugin);
        }
    }
    // Headless with no raw RGBA pipe, no one looks at the canvas's RGB: the encoders may take
    // the video planes directly when the canvas would only pass them through.
    app.insert_resource(CanvasReaders {
        rgba: !args.no_preview || outputs.pipe == Some(PipeFormat::Rgba),
    });
    app
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

/// An effect that exists but does not compile (and has no good version to run).
fn broken_effect(catalog: &EffectCatalog, name: &str) -> Option<LucidError> {
    catalog
        .entries
        .get(name)
        .filter(|e| e.def.is_none())
        .and_then(|e| e.error.as_ref())
        .map(|e| LucidError::Usage(format!("effect {name} does not compile: {e}")))
}

/// Checks effects read from a file (`what`: "scene FILE", "preset FILE") against the
/// catalog.
fn check_saved_effects(
    catalog: &EffectCatalog,
    what: &str,
    effects: &[crate::effects::chain::EffectInstance],
) -> Result<()> {
    for inst in effects {
        if let Some(e) = broken_effect(catalog, &inst.effect) {
            return Err(e);
        }
        let def = catalog.get(&inst.effect).ok_or_else(|| {
            LucidError::Usage(format!(
                "{what}: no effect '{}' (available: {})",
                inst.effect,
                catalog.names().join(", ")
            ))
        })?;
        inst.check(&def)
            .map_err(|e| LucidError::Usage(format!("{what}: {e}")))?;
    }
    Ok(())
}

/// One `--effect`/`--layer-effect` effect, checked against the catalog.
fn parse_effect(
    catalog: &EffectCatalog,
    arg: &str,
) -> Result<crate::effects::chain::EffectInstance> {
    let name = arg.split(':').next().unwrap_or_default().trim();
    if let Some(e) = broken_effect(catalog, name) {
        return Err(e);
    }
    parse_effect_arg(
        arg,
        |n| catalog.get(n).map(|d| (*d).clone()),
        &catalog.names(),
    )
}

/// The scene's layers, then `--layer`'s, with their effect chains (the scene's, then each
/// `--layer-effect N:...`) checked against the catalog.
fn layer_specs(
    args: &Args,
    catalog: &EffectCatalog,
    scene: &ShowScene,
) -> Result<Vec<crate::compositor::LayerSpec>> {
    let mut specs: Vec<_> = scene.scene.layers.clone();
    if let Some(path) = &scene.path {
        for (i, layer) in specs.iter().enumerate() {
            let what = format!("scene {} layer {}", path.display(), i + 1);
            check_saved_effects(catalog, &what, &layer.effects)?;
        }
    }
    specs.extend(args.layers()?);
    for arg in &args.layer_effect {
        let bad = |why: String| LucidError::Usage(format!("--layer-effect {arg}: {why}"));
        let (number, effect) = arg
            .split_once(':')
            .ok_or_else(|| bad("use N:NAME[:param=value,...], N the layer from 1".into()))?;
        let layer = number
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=specs.len()).contains(n))
            .ok_or_else(|| match specs.len() {
                0 => bad("there are no layers (add one with --layer)".into()),
                n => bad(format!("'{number}' is not a layer: 1 to {n}")),
            })?;
        let inst = parse_effect(catalog, effect)
            .map_err(|e| bad(e.to_string().replace(&format!("--effect {effect}: "), "")))?;
        specs[layer - 1].effects.push(inst);
    }
    for (i, spec) in specs
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.effects.is_empty())
    {
        let names: Vec<_> = spec.effects.iter().map(|e| e.effect.as_str()).collect();
        info!("layer {} effects: {}", i + 1, names.join(" -> "));
    }
    Ok(specs)
}

/// `--preset` then each `--effect`, checked against the catalog: a typo fails here, with
/// the list of what exists, not silently on stage.
fn build_chain(args: &Args, catalog: &EffectCatalog, scene: &ShowScene) -> Result<EffectChain> {
    let mut chain = EffectChain::default();
    // The scene's chain first, then the preset's, then --effect's.
    let saved = scene
        .path
        .as_ref()
        .map(|p| Ok((p.clone(), "scene", scene.scene.effects.clone())))
        .into_iter()
        .chain(
            args.preset
                .iter()
                .map(|p| Preset::load(p).map(|preset| (p.clone(), "preset", preset.effects))),
        )
        .collect::<Result<Vec<_>>>()?;
    for (path, kind, effects) in saved {
        check_saved_effects(catalog, &format!("{kind} {}", path.display()), &effects)?;
        info!("{kind} {}: {} effect(s)", path.display(), effects.len());
        chain.effects.extend(effects);
    }
    for arg in &args.effect {
        chain.effects.push(parse_effect(catalog, arg)?);
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

/// SIGINT/SIGTERM: a clean stop; a second signal exits at once (130). A watchdog makes
/// sure the first one ends Lucid within about a second even when the render loop is stuck:
/// it finalizes the outputs itself and exits.
fn install_signal_handler(
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
#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn drive_shutdown(
    lifecycle: Res<Lifecycle>,
    stats: Res<PlaybackStats>,
    feed: Option<Res<VideoFeed>>,
    limit: Res<RunLimit>,
    sink: Option<Res<FrameSink>>,
    screenshots: Option<Res<Screenshots>>,
    mut stop_seen: Local<Option<Instant>>,
    mut exit: MessageWriter<AppExit>,
    pacing: Res<Pacing>,
) {
    // Offline, --duration is stream time: the render runs faster (or slower) than the clock.
    let played = if pacing.offline {
        stats
            .pts_span
            .map(|(first, last)| last.saturating_sub(first))
    } else {
        stats.first_frame_at.map(|t| t.elapsed())
    };
    if let (Some(limit), Some(played)) = (limit.0, played)
        && played >= limit
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
    // Frames already rendered, and screenshots on their way to disk, are waited for.
    let pending = sink.as_ref().map_or(0, |s| s.pending()) + screenshots.map_or(0, |s| s.pending());
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
        if let (true, Some(start), Some((first, last))) =
            (pacing.offline, stats.first_frame_at, stats.pts_span)
        {
            let wall = start.elapsed().as_secs_f64().max(1e-3);
            let video = (last - first).as_secs_f64();
            info!(
                "rendered offline: {} frames, {video:.1} s of video in {wall:.1} s ({:.1} fps, {:.2}x real time)",
                stats.presented,
                stats.presented as f64 / wall,
                video / wall
            );
        } else if sink.is_some() && stats.skipped > 0 {
            warn!(
                "{} frame(s) were skipped because rendering fell behind real time: they are not in \
                 the outputs (a finite input into files renders every frame without --realtime)",
                stats.skipped
            );
        }
        exit.write(AppExit::Success);
    }
}
