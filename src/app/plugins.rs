//! The Bevy app for one show: Bevy's own plugins (windowed or headless), then one plugin
//! per feature, in the order data flows (video, effects, layers, outputs, status, control,
//! Daydream, then the window's show controls and overlay), each given its part of the
//! [`Config`].

use bevy::app::TerminalCtrlCHandlerPlugin;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::diagnostic::RenderDiagnosticsPlugin;
use bevy::window::{CursorOptions, ExitCondition, PresentMode, WindowMode, WindowResolution};
use bevy::winit::WinitPlugin;
use crossbeam_channel::{Receiver, Sender};

use super::shutdown::ShutdownPlugin;
use crate::compositor::layers::LayersPlugin;
use crate::compositor::scene::SceneSource;
use crate::config::{Config, WindowConfig};
use crate::control::plugin::{AudioMappingPlugin, ControlPlugin};
use crate::daydream::DaydreamLink;
use crate::daydream::DaydreamPlugin;
use crate::daydream::cues::CueList;
use crate::daydream::panel::DaydreamPanelPlugin;
use crate::decode::{DecodeOptions, DecodeThread};
use crate::effects::EffectsPlugin;
use crate::error::Result;
use crate::headless::HeadlessRunnerPlugin;
use crate::lifecycle::Lifecycle;
use crate::output::{OutputPlugin, OutputWriter, PipeFormat};
use crate::overlay::OverlayPlugin;
use crate::persist::{PersistPlugin, ShowSnapshot};
use crate::preview::PreviewPlugin;
use crate::service::ServicePlugin;
use crate::show::ShowPlugin;
use crate::show::state::{Cues, KeyboardCaptured};
use crate::sound::SoundPlugin;
use crate::source::SourceSpec;
use crate::status::{StatsFile, StatusPlugin};
use crate::video::render::CanvasReaders;
use crate::video::{OutputRate, VideoPlugin, output_size};

/// What `run` prepared for the app: the config, and what was opened from it.
pub(super) struct Show<'a> {
    /// The run's configuration.
    pub config: Config,
    /// The source as the window title names it.
    pub source_name: &'a str,
    /// The run's stop flag and error.
    pub lifecycle: &'a Lifecycle,
    /// Opens the bottom source (again, after the schedule closed it).
    pub connector: crate::video::SourceConnector,
    /// Delivers the opened stream (or why it failed); `None` when it starts closed (out
    /// of the schedule's hours).
    pub connection: Option<Receiver<Result<DecodeThread>>>,
    /// The source was opened at start (in the schedule's hours, or no schedule).
    pub opened: bool,
    /// `--stats-json`, opened.
    pub stats_file: Option<&'a StatsFile>,
    /// Where the output plugin hands its writer, once started.
    pub writer_started: Sender<OutputWriter>,
    /// Render every frame as fast as the machine allows (see [`renders_offline`]).
    pub offline: bool,
    /// The attached Daydream stream and its cues.
    pub daydream: Option<(DaydreamLink, Option<CueList>)>,
    /// OSC and MIDI, opened.
    pub control: Option<ControlPlugin>,
    /// The HTTP API's server, started.
    pub remote: Option<crate::remote::RemoteLink>,
    /// The sound's bus and analysis, with `--audio-in` opened.
    pub sound: SoundPlugin,
}

/// A finite input into files only renders every frame as fast as the machine allows; a
/// window, a pipe, a network output, a live source or `--realtime` keep real-time pacing
/// (the video side confirms the input is finite once it opens).
pub(super) fn renders_offline(config: &Config, spec: &SourceSpec) -> bool {
    let outputs = &config.outputs;
    config.window.is_none()
        && !config.playback.realtime
        // Hours are wall-clock time.
        && config.schedule.is_none()
        && outputs.pipe.is_none()
        && outputs.any()
        && outputs.files_only()
        && matches!(
            spec,
            SourceSpec::Ffmpeg(_) | SourceSpec::Hls(_) | SourceSpec::Playback { .. }
        )
}

/// The Bevy app for this show.
pub(super) fn build_app(show: Show) -> App {
    let Show {
        config,
        source_name,
        lifecycle,
        connector,
        connection,
        opened,
        stats_file,
        writer_started,
        offline,
        daydream,
        control,
        remote,
        sound,
    } = show;
    let audio_mappings = config.control.audio.clone();
    let playback = config.playback;
    let mut app = App::new();
    app.add_plugins(bevy_plugins(
        config.window.as_ref(),
        source_name,
        playback.requested,
    ));
    if let Some(window) = &config.window {
        app.add_plugins((
            PreviewPlugin {
                fixed_size: playback.requested.0.is_some() && playback.requested.1.is_some(),
            },
            ShowPlugin {
                fade: window.fade,
                screenshot_dir: window.screenshot_dir.clone(),
                monitor: window.monitor,
            },
        ));
        if window.kiosk {
            // Nothing a visitor does reaches the show: every shortcut reads this, and no
            // overlay is there to clear it.
            app.insert_resource(KeyboardCaptured(true));
        } else {
            app.add_plugins(OverlayPlugin {
                visible: window.overlay_visible,
                presets_dir: window.presets_dir.clone(),
            });
        }
    } else {
        app.add_plugins(HeadlessRunnerPlugin);
    }
    // Per-pass GPU timing reads timestamps back every frame: only where someone looks at
    // it (the overlay, --stats-json) or there are effects to time (the log).
    let timed =
        config.window.is_some() || !config.effects.chain.effects.is_empty() || stats_file.is_some();
    // Headless with no raw RGBA pipe, no one looks at the canvas's RGB: the encoders may take
    // the video planes directly when the canvas would only pass them through.
    let rgba = config.window.is_some() || config.outputs.pipe == Some(PipeFormat::Rgba);
    app.insert_resource(lifecycle.clone())
        .add_plugins(VideoPlugin::new(
            connector,
            connection,
            playback.requested,
            playback.latency,
            offline,
        ))
        .add_plugins(StatusPlugin::new(stats_file))
        .add_plugins(EffectsPlugin::new(
            config.effects.catalog,
            config.effects.chain,
            config.effects.tempo,
        ))
        .add_plugins(sound)
        .add_plugins(ShutdownPlugin {
            limit: playback.duration,
            window: config.window.as_ref().is_some_and(|w| !w.kiosk),
        })
        .insert_resource(CanvasReaders { rgba });
    if let Some(path) = config.state.clone() {
        let restored = match ShowSnapshot::load(&path) {
            Ok(kept) => kept,
            Err(why) => {
                warn!(
                    "--state {}: {why}; starting as the command line says",
                    path.display()
                );
                None
            }
        };
        app.add_plugins(PersistPlugin { path, restored });
    }
    if let Some(schedule) = config.schedule.clone() {
        app.add_plugins(crate::schedule::plugin::SchedulePlugin {
            config: schedule,
            opened,
        });
    }
    if let Some(service) = config.service.clone() {
        app.add_plugins(ServicePlugin {
            config: service,
            windowed: config.window.is_some(),
        });
    }
    if timed {
        app.add_plugins(RenderDiagnosticsPlugin);
    }
    if config.outputs.any() {
        app.add_plugins(OutputPlugin::new(config.outputs, writer_started));
    }
    if let Some((link, cues)) = daydream {
        app.add_plugins(DaydreamPlugin(link))
            .insert_resource(Cues(cues.unwrap_or_default()));
        if config.window.as_ref().is_some_and(|w| !w.kiosk) {
            app.add_plugins(DaydreamPanelPlugin);
        }
    }
    app.add_plugins(AudioMappingPlugin(audio_mappings));
    if let Some(control) = control {
        app.add_plugins(control);
    }
    if let Some(remote) = remote {
        app.add_plugins(crate::remote::RemotePlugin(remote));
    }
    // Always there, even without layers: the overlay can add them.
    app.add_plugins(LayersPlugin {
        specs: config.layers.specs,
        // Only the layer that gives the show's sound decodes it (`sound`).
        options: DecodeOptions {
            audio: false,
            ..config.decode.clone()
        },
        sound: config.layers.sound,
        protocol: config.decode.source.protocol,
        fader: config.layers.fader,
        open_at_start: opened,
        transition: config.layers.transition,
    });
    if let Some(fps) = playback.fps {
        app.insert_resource(OutputRate(fps));
    }
    app.insert_resource(SceneSource(config.layers.scene_source));
    app
}

/// Bevy's plugins without its log (Lucid's own) and Ctrl-C handler (Lucid's stops cleanly,
/// finalizing recordings): with the window, or headless.
fn bevy_plugins(
    window: Option<&WindowConfig>,
    source_name: &str,
    requested: (Option<u32>, Option<u32>),
) -> bevy::app::PluginGroupBuilder {
    let plugins = DefaultPlugins
        .build()
        .disable::<bevy::log::LogPlugin>()
        .disable::<TerminalCtrlCHandlerPlugin>()
        .set(RenderPlugin {
            // A frame must never be rendered with its pipeline still compiling: it would be
            // recorded black.
            synchronous_pipeline_compilation: true,
            ..default()
        });
    let Some(window) = window else {
        return plugins
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                close_when_requested: false,
                ..default()
            })
            .disable::<WinitPlugin>();
    };
    // Until the stream says its size, the window takes the user's or a 16:9 default.
    let (width, height) = output_size(requested.0, requested.1, (1280, 720));
    let mode = if window.fullscreen {
        WindowMode::BorderlessFullscreen(crate::show::monitor_selection(window.monitor))
    } else {
        WindowMode::Windowed
    };
    plugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: format!("Lucid - {source_name}"),
            resolution: WindowResolution::new(width, height),
            present_mode: PresentMode::AutoVsync,
            mode,
            ..default()
        }),
        // Kiosk: no pointer over the picture.
        primary_cursor_options: Some(CursorOptions {
            visible: !window.kiosk,
            ..default()
        }),
        exit_condition: ExitCondition::DontExit,
        close_when_requested: false,
    })
}
