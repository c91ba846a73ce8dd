//! The overlay (bevy_egui): stats, the effect chain editor, presets, show controls and the
//! keyboard help. It is drawn by the window's camera on top of the canvas, never into it,
//! so `--record`, `--pipe` and screenshots never contain it. F1 (or `--hide-ui`) hides it.
//!
//! The UI works on the same resources the command line fills ([`EffectChain`],
//! [`ShowState`], ...), so everything it does can also be done headless. Its own CPU time
//! is measured every frame and shown, as is the effect chain's GPU time.
//!
//! - this file: the plugin, its state and the frame's layout; the show controls.
//! - [`stats`]: the read-outs; [`layers`]: the compositor; [`chain`]: the chain editor;
//!   [`presets`]: presets and scenes.

mod chain;
mod layers;
mod presets;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};

use crate::effects::chain::EffectChain;
use crate::effects::{EffectCatalog, EffectErrors, EffectTimings, MasterLevel};
use crate::show::state::{KeyboardCaptured, OverlayShown, UiTiming};
use crate::show::{SHORTCUTS, ShowState};
use crate::sound::{ShowSound, SoundReport};
use crate::status::LatestStatus;
use crate::video::{Freeze, StreamDescription};
use chain::{MidiParams, chain_section};
use layers::{CompositorParams, layers_section};
use presets::{list_presets, preset_section};
use stats::{stats_section, timing_section};

/// Overlay settings from the command line.
pub struct OverlayPlugin {
    /// Shown at start (no `--hide-ui`).
    pub visible: bool,
    /// Where presets are listed and saved.
    pub presets_dir: Option<PathBuf>,
}

/// The overlay's editing state (whether it is shown is [`OverlayShown`]).
#[derive(Resource, Debug)]
pub struct OverlayState {
    presets_dir: Option<PathBuf>,
    presets: Vec<PathBuf>,
    presets_listed: Option<Instant>,
    preset_name: String,
    message: Option<String>,
    add_choice: String,
    scene_name: String,
    scene_message: Option<String>,
    layer_source: String,
    /// The effect picked to add to a layer's chain.
    layer_add_choice: String,
    scenes: Vec<PathBuf>,
}

impl Plugin for OverlayPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(OverlayShown(self.visible))
            .insert_resource(OverlayState {
                presets_dir: self.presets_dir.clone(),
                presets: Vec::new(),
                presets_listed: None,
                preset_name: "show".into(),
                message: None,
                add_choice: String::new(),
                scene_name: "show".into(),
                scene_message: None,
                layer_source: String::new(),
                layer_add_choice: String::new(),
                scenes: Vec::new(),
            })
            .init_resource::<UiTiming>()
            .add_systems(Update, toggle_overlay)
            .add_systems(EguiPrimaryContextPass, overlay);
    }
}

fn toggle_overlay(
    keys: Res<ButtonInput<KeyCode>>,
    captured: Res<KeyboardCaptured>,
    mut shown: ResMut<OverlayShown>,
) {
    if keys.just_pressed(KeyCode::F1) && !captured.0 {
        shown.0 = !shown.0;
    }
}

/// What the overlay reads and edits, bundled to keep the system's signature readable.
#[derive(bevy::ecs::system::SystemParam)]
struct ShowParams<'w> {
    show: ResMut<'w, ShowState>,
    master: Res<'w, MasterLevel>,
    freeze: ResMut<'w, Freeze>,
    captured: ResMut<'w, KeyboardCaptured>,
}

#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn overlay(
    mut contexts: EguiContexts,
    mut state: ResMut<OverlayState>,
    shown: Res<OverlayShown>,
    mut timing: ResMut<UiTiming>,
    mut chain: ResMut<EffectChain>,
    catalog: Res<EffectCatalog>,
    errors: Res<EffectErrors>,
    effect_timings: Res<EffectTimings>,
    status: Res<LatestStatus>,
    stream: Option<Res<StreamDescription>>,
    sound: (Option<Res<SoundReport>>, Res<ShowSound>),
    time: Res<Time<Real>>,
    mut show: ShowParams,
    mut midi: MidiParams,
    mut compositor: CompositorParams,
) -> Result {
    let started = Instant::now();
    let ctx = contexts.ctx_mut()?.clone();
    show.captured.0 = ctx.egui_wants_keyboard_input();
    if !shown.0 {
        return Ok(());
    }
    if state
        .presets_listed
        .is_none_or(|t| t.elapsed() > Duration::from_secs(2))
    {
        state.presets = list_presets(state.presets_dir.as_deref());
        state.scenes = list_presets(
            state
                .presets_dir
                .as_ref()
                .map(|d| d.join("scenes"))
                .as_deref(),
        );
        state.presets_listed = Some(Instant::now());
    }
    let render_fps = 1.0 / time.delta_secs_f64().max(1e-6);
    egui::Window::new("Lucid")
        .id(egui::Id::new("lucid_overlay"))
        .default_pos([12.0, 12.0])
        .default_width(340.0)
        .max_width(420.0)
        .default_height(ctx.viewport_rect().height() - 24.0)
        .resizable(true)
        .show(&ctx, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                let heard = sound.0.as_deref().map(|report| (report, &*sound.1));
                stats_section(ui, &status, stream.as_deref(), heard, render_fps);
                timing_section(ui, &effect_timings, &timing, stream.as_deref());
                show_section(ui, &mut show);
                layers_section(
                    ui,
                    &mut state,
                    (&mut compositor, &mut midi),
                    (&mut chain, &catalog, &errors),
                    &status,
                );
                chain_section(ui, &mut state, &mut chain, &catalog, &errors, &mut midi);
                preset_section(ui, &mut state, &mut chain, &catalog, &mut midi);
                egui::CollapsingHeader::new("Keys")
                    .default_open(false)
                    .show(ui, |ui| {
                        egui::Grid::new("keys").show(ui, |ui| {
                            for (key, what) in SHORTCUTS {
                                ui.monospace(*key);
                                ui.label(*what);
                                ui.end_row();
                            }
                        });
                    });
            });
        });
    let ms = started.elapsed().as_secs_f64() * 1e3;
    timing.last_ms = ms;
    timing.max_ms = timing.max_ms.max(ms);
    timing.mean_ms = if timing.frames == 0 {
        ms
    } else {
        timing.mean_ms * 0.95 + ms * 0.05
    };
    timing.frames += 1;
    Ok(())
}

fn show_section(ui: &mut egui::Ui, show: &mut ShowParams) {
    egui::CollapsingHeader::new("Show")
        .default_open(true)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                let black = show.show.target == 0.0;
                if ui.selectable_label(black, "Blackout (B)").clicked() {
                    show.show.target = if black { 1.0 } else { 0.0 };
                }
                if ui
                    .selectable_label(show.freeze.0, "Freeze (Space)")
                    .clicked()
                {
                    show.freeze.0 = !show.freeze.0;
                }
            });
            ui.label(format!("output level {:.0} %", show.master.level * 100.0));
            if let Some(path) = &show.show.last_screenshot {
                ui.label(format!("last screenshot: {path}"));
            }
        });
}
