//! The overlay's compositor section: layers (add, remove, raise, solo, blend, fit, their
//! own chains) and the crossfader.

use bevy::prelude::*;
use bevy_egui::egui;
use tracing::info;

use super::chain::edit_effects;
use super::presets::load_scene;
use super::*;
use crate::compositor::layers::{Fader, LayerRequest, Layers};
use crate::compositor::scene::SceneSource;
use crate::compositor::{BlendMode, Fit};
use crate::effects::chain::EffectChain;
use crate::effects::{EffectCatalog, EffectErrors};
use crate::status::LatestStatus;

/// The compositor's layers and crossfader (present with layers), and what a scene saves.
#[derive(bevy::ecs::system::SystemParam)]
pub(super) struct CompositorParams<'w> {
    pub(super) layers: Option<ResMut<'w, Layers>>,
    pub(super) fader: Option<ResMut<'w, Fader>>,
    pub(super) source: Option<Res<'w, SceneSource>>,
}

/// Layers (state, opacity, blend, fit, mute, solo, order, own effects), the crossfader,
/// and Save scene.
pub(super) fn layers_section(
    ui: &mut egui::Ui,
    state: &mut OverlayState,
    (compositor, midi): (&mut CompositorParams, &mut MidiParams),
    (chain, catalog, errors): (&mut EffectChain, &EffectCatalog, &EffectErrors),
    status: &LatestStatus,
) {
    let Some(layers) = compositor.layers.as_mut() else {
        return;
    };
    // A scene to load, picked in the list below; loaded once the section is drawn.
    let mut load = None;
    egui::CollapsingHeader::new("Layers")
        .default_open(true)
        .show(ui, |ui| {
            let reports = status
                .0
                .as_ref()
                .map(|s| s.layers.clone())
                .unwrap_or_default();
            let specs = layers.specs();
            let count = specs.len();
            for (i, (spec, muted)) in specs.iter().cloned().enumerate() {
                ui.horizontal(|ui| {
                    let state = reports
                        .get(i)
                        .map(|r| format!("{:?}", r.state).to_lowercase())
                        .unwrap_or_default();
                    ui.add(
                        egui::Label::new(format!("{}. {} ({state})", i + 1, spec.source))
                            .truncate(),
                    )
                    .on_hover_text(format!(
                        "{} · {:?} · bus {:?}",
                        spec.blend.name(),
                        spec.fit,
                        spec.bus
                    ));
                });
                ui.horizontal(|ui| {
                    let mut opacity = spec.opacity;
                    if ui
                        .add(egui::Slider::new(&mut opacity, 0.0..=1.0).text("opacity"))
                        .changed()
                    {
                        layers.set_opacity(i, opacity);
                    }
                    let mut mute = muted;
                    if ui.checkbox(&mut mute, "mute").changed() {
                        layers.set_muted(i, mute);
                    }
                    if ui.small_button("solo").clicked() {
                        let alone = !muted && (0..count).all(|j| j == i || specs[j].1);
                        layers.solo(if alone { None } else { Some(i) });
                    }
                    if ui
                        .add_enabled(i + 1 < count, egui::Button::new("^").small())
                        .clicked()
                    {
                        layers.request(LayerRequest::Raise(i));
                    }
                    if ui.small_button("x").clicked() {
                        layers.request(LayerRequest::Remove(i));
                    }
                });
                ui.horizontal(|ui| {
                    let mut blend = spec.blend;
                    egui::ComboBox::from_id_salt(("layer_blend", i))
                        .selected_text(blend.name())
                        .show_ui(ui, |ui| {
                            for mode in BlendMode::ALL {
                                ui.selectable_value(&mut blend, mode, mode.name());
                            }
                        });
                    if blend != spec.blend {
                        layers.set_blend(i, blend);
                    }
                    let mut fit = spec.fit;
                    egui::ComboBox::from_id_salt(("layer_fit", i))
                        .selected_text(format!("{fit:?}").to_lowercase())
                        .show_ui(ui, |ui| {
                            for f in [Fit::Contain, Fit::Cover, Fit::Stretch] {
                                ui.selectable_value(&mut fit, f, format!("{f:?}").to_lowercase());
                            }
                        });
                    if fit != spec.fit {
                        layers.set_fit(i, fit);
                    }
                });
                egui::CollapsingHeader::new(format!(
                    "layer {} effects ({})",
                    i + 1,
                    spec.effects.len()
                ))
                .id_salt(("layer_effects", i))
                .default_open(false)
                .show(ui, |ui| {
                    if let Some(effects) = layers.effects_mut(i) {
                        edit_effects(
                            ui,
                            effects,
                            (catalog, errors),
                            &mut state.layer_add_choice,
                            None,
                        );
                    }
                });
            }
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut state.layer_source)
                        .hint_text("file, URL or id[:blend=screen,...]")
                        .desired_width(200.0),
                );
                let parsed = crate::compositor::LayerSpec::parse(&state.layer_source);
                if ui
                    .add_enabled(parsed.is_ok(), egui::Button::new("Add layer"))
                    .on_disabled_hover_text(parsed.as_ref().err().cloned().unwrap_or_default())
                    .clicked()
                    && let Ok(spec) = parsed
                {
                    layers.request(LayerRequest::Add(spec));
                    state.layer_source.clear();
                }
            });
            if let Some(fader) = compositor.fader.as_mut() {
                ui.horizontal(|ui| {
                    let mut x = fader.0.position;
                    if ui
                        .add(egui::Slider::new(&mut x, 0.0..=1.0).text("A / B"))
                        .changed()
                    {
                        fader.0.set(x);
                    }
                    if ui
                        .button("X")
                        .on_hover_text("crossfade to the other side")
                        .clicked()
                    {
                        fader.0.go_other_side();
                    }
                });
            }
            let Some(dir) = state.presets_dir.as_ref().map(|d| d.join("scenes")) else {
                return;
            };
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut state.scene_name).desired_width(120.0));
                let name = state.scene_name.trim().to_string();
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || "-_ ".contains(c));
                if ui
                    .add_enabled(valid, egui::Button::new("Save scene"))
                    .clicked()
                {
                    let path = dir.join(format!("{name}.ron"));
                    let scene = crate::compositor::scene::Scene {
                        source: compositor.source.as_ref().and_then(|s| s.0.clone()),
                        layers: layers
                            .specs()
                            .into_iter()
                            .filter(|(_, muted)| !muted)
                            .map(|(spec, _)| spec)
                            .collect(),
                        crossfader: compositor.fader.as_ref().map(|f| f.0).unwrap_or_default(),
                        effects: chain.effects.clone(),
                        midi: midi
                            .mappings
                            .as_ref()
                            .map(|m| m.0.clone())
                            .unwrap_or_default(),
                        audio: midi.audio.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
                        ..Default::default()
                    };
                    state.scene_message = Some(match scene.save(&path) {
                        Ok(()) => {
                            info!("scene saved: {}", path.display());
                            format!("saved {} (--scene loads it)", path.display())
                        }
                        Err(e) => format!("could not save {}: {e}", path.display()),
                    });
                }
            });
            ui.horizontal_wrapped(|ui| {
                for path in &state.scenes {
                    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
                    if ui.button(format!("load {name}")).clicked() {
                        load = Some(path.clone());
                    }
                }
            });
            if let Some(m) = &state.scene_message {
                ui.label(m);
            }
        });
    if let Some(path) = load {
        state.scene_message = Some(load_scene(&path, compositor, chain, catalog, midi));
    }
}
