//! The window: shows the output canvas letterboxed into whatever size the window has, and
//! an egui overlay that says why there is no picture (waiting for the stream, an outage).
//! Only added when Lucid runs with a window (`--no-preview` leaves it out). The overlay is
//! drawn by the window's camera, never into the canvas, so outputs never contain it.

use std::time::Instant;

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::{
    EguiContexts, EguiGlobalSettings, EguiPlugin, EguiPrimaryContextPass, PrimaryEguiContext, egui,
};

use crate::daydream::DaydreamState;
use crate::lifecycle::Lifecycle;
use crate::video::{
    OutputCanvas, PendingStream, PlaybackStats, SourceClosed, StreamReady, letterbox,
};

/// No new frame for this long while playing shows the interruption notice.
const INTERRUPTED_AFTER: f64 = 2.0;

/// Draws the canvas into the primary window, with the status overlay.
pub struct PreviewPlugin {
    /// True when the user gave both `--width` and `--height`: the window keeps that size.
    pub fixed_size: bool,
}

#[derive(Component)]
struct CanvasSprite;

#[derive(Resource)]
struct FixedSize(bool);

impl Plugin for PreviewPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(EguiPlugin::default())
            .insert_resource(FixedSize(self.fixed_size))
            .add_systems(Startup, spawn_window_camera)
            .add_systems(Update, (show_canvas, fit_view_to_window).chain())
            .add_systems(EguiPrimaryContextPass, slate);
    }
}

fn spawn_window_camera(mut commands: Commands, mut egui: ResMut<EguiGlobalSettings>) {
    // egui goes on the window's camera only, where it is never part of the canvas (and so
    // of recordings), whatever cameras are added later.
    egui.auto_create_primary_context = false;
    commands.spawn((
        Camera2d,
        Camera {
            clear_color: ClearColorConfig::Custom(Color::BLACK),
            ..default()
        },
        Msaa::Off,
        PrimaryEguiContext,
    ));
}

fn show_canvas(
    mut commands: Commands,
    mut ready: MessageReader<StreamReady>,
    fixed: Res<FixedSize>,
    canvas: Option<Res<OutputCanvas>>,
    views: Query<(), With<CanvasSprite>>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
) {
    // A fullscreen window keeps the monitor's size.
    if let Some(ready) = ready.read().last()
        && !fixed.0
        && let Ok(mut window) = windows.single_mut()
        && window.mode == bevy::window::WindowMode::Windowed
    {
        window
            .resolution
            .set_physical_resolution(ready.output_size.x, ready.output_size.y);
    }
    // Keyed on the canvas resource itself, not on the message: the canvas is inserted by
    // deferred commands, and whether those are applied before this system's depends on the
    // schedule's order (a view spawned from the message alone could find no canvas yet and
    // never be spawned: a black window).
    if let Some(canvas) = canvas
        && views.is_empty()
    {
        commands.spawn((
            CanvasSprite,
            Sprite {
                image: canvas.image.clone(),
                custom_size: Some(canvas.size.as_vec2()),
                ..default()
            },
        ));
    }
}

fn fit_view_to_window(
    windows: Query<&Window, With<PrimaryWindow>>,
    canvas: Option<Res<OutputCanvas>>,
    mut views: Query<&mut Sprite, With<CanvasSprite>>,
) {
    let (Ok(window), Some(canvas)) = (windows.single(), canvas) else {
        return;
    };
    let size = letterbox(
        canvas.size,
        UVec2::new(window.physical_width(), window.physical_height()),
    ) / window.scale_factor();
    for mut sprite in &mut views {
        if sprite.custom_size != Some(size) {
            sprite.custom_size = Some(size);
        }
    }
}

/// The slate: a full notice while waiting for the stream, a banner over the held last
/// frame during an interruption. Nothing while the video plays.
fn slate(
    mut contexts: EguiContexts,
    pending: Option<Res<PendingStream>>,
    stats: Res<PlaybackStats>,
    lifecycle: Res<Lifecycle>,
    daydream: Option<Res<DaydreamState>>,
    closed: Option<Res<SourceClosed>>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let mut viewport = egui::Ui::new(
        ctx.clone(),
        "viewport".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    // Closed out of the schedule's hours, or opening again when they begin: the picture
    // is black on purpose, not waiting for anything.
    if closed.is_some() || pending.as_ref().is_some_and(|p| p.reopening) {
        return Ok(());
    }
    if let Some(pending) = pending {
        let waited = pending.since.elapsed().as_secs();
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE.fill(egui::Color32::from_rgb(12, 12, 18)))
            .show(&mut viewport, |ui| {
                ui.vertical_centered(|ui| {
                    ui.add_space(ui.available_height() * 0.4);
                    ui.label(
                        egui::RichText::new("Waiting for stream")
                            .size(40.0)
                            .color(egui::Color32::WHITE),
                    );
                    ui.label(
                        egui::RichText::new(format!("not live yet - retrying ({waited} s)"))
                            .size(20.0)
                            .color(egui::Color32::LIGHT_GRAY),
                    );
                    // Daydream's own view of its warm-up, which can take tens of seconds.
                    if let Some(report) = daydream.as_ref().and_then(|d| d.report()) {
                        let fps = report.output_fps.map_or("-".into(), |f| format!("{f:.1}"));
                        let mut line = format!(
                            "Daydream {}: {}, output {fps} fps",
                            report.stream,
                            if report.output_ready {
                                "live"
                            } else {
                                "warming up"
                            }
                        );
                        if let Some(e) = report.last_error.or(report.status_error) {
                            line.push_str(&format!(" - {e}"));
                        }
                        ui.label(
                            egui::RichText::new(line)
                                .size(18.0)
                                .color(egui::Color32::from_rgb(150, 200, 255)),
                        );
                    }
                });
            });
        return Ok(());
    }
    let silent = stats
        .last_frame_at
        .map(|t| (Instant::now() - t).as_secs_f64());
    if let Some(silent) = silent
        && silent > INTERRUPTED_AFTER
        && !lifecycle.stopping()
    {
        egui::Panel::bottom("interrupted")
            .frame(egui::Frame::NONE.fill(egui::Color32::from_black_alpha(200)).inner_margin(12.0))
            .show(&mut viewport, |ui| {
                ui.label(
                    egui::RichText::new(format!(
                        "Stream interrupted {silent:.0} s ago - holding the last frame, reconnecting"
                    ))
                    .size(20.0)
                    .color(egui::Color32::YELLOW),
                );
            });
    }
    Ok(())
}
