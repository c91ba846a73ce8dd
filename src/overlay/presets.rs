//! The overlay's presets and scenes: listed from the presets folder, saved and loaded into
//! the running show.

use std::path::{Path, PathBuf};

use bevy::prelude::*;
use bevy_egui::egui;
use tracing::{info, warn};

use super::*;
use crate::compositor::layers::LayerRequest;
use crate::effects::EffectCatalog;
use crate::effects::chain::{EffectChain, Preset};

pub(super) fn preset_section(
    ui: &mut egui::Ui,
    state: &mut OverlayState,
    chain: &mut EffectChain,
    catalog: &EffectCatalog,
    midi: &mut MidiParams,
) {
    egui::CollapsingHeader::new("Presets")
        .default_open(true)
        .show(ui, |ui| {
            let Some(dir) = state.presets_dir.clone() else {
                ui.label("no presets folder (set --presets-dir or HOME)");
                return;
            };
            let mut load = None;
            for path in &state.presets {
                let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
                if ui.button(format!("load {name}")).clicked() {
                    load = Some(path.clone());
                }
            }
            if let Some(path) = load {
                state.message = Some(match Preset::load(&path) {
                    Ok(preset) => {
                        let unknown = load_chain(chain, catalog, preset.effects);
                        if let Some(m) = midi.mappings.as_mut() {
                            m.0 = preset.midi;
                        }
                        if let Some(a) = midi.audio.as_mut() {
                            a.0 = preset.audio;
                        }
                        info!("preset {} loaded", path.display());
                        loaded_words(&path, &unknown)
                    }
                    Err(e) => {
                        warn!("{e}");
                        e.to_string()
                    }
                });
            }
            ui.horizontal(|ui| {
                ui.text_edit_singleline(&mut state.preset_name);
                let name = state.preset_name.trim().to_string();
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || "-_ ".contains(c));
                if ui.add_enabled(valid, egui::Button::new("Save")).clicked() {
                    let path = dir.join(format!("{name}.ron"));
                    let preset = Preset {
                        midi: midi
                            .mappings
                            .as_ref()
                            .map(|m| m.0.clone())
                            .unwrap_or_default(),
                        audio: midi.audio.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
                        version: 1,
                        effects: chain.effects.clone(),
                    };
                    state.message = Some(match preset.save(&path) {
                        Ok(()) => {
                            info!("preset saved: {}", path.display());
                            state.presets_listed = None;
                            format!("saved {}", path.display())
                        }
                        Err(e) => {
                            warn!("preset {}: {e}", path.display());
                            format!("cannot save {}: {e}", path.display())
                        }
                    });
                }
            });
            if let Some(m) = &state.message {
                ui.label(m);
            }
        });
}

/// Replaces the chain with a loaded one; returns the effects this catalog does not know.
pub(super) fn load_chain(
    chain: &mut EffectChain,
    catalog: &EffectCatalog,
    effects: Vec<crate::effects::chain::EffectInstance>,
) -> Vec<String> {
    let unknown: Vec<String> = effects
        .iter()
        .filter(|e| catalog.get(&e.effect).is_none())
        .map(|e| e.effect.clone())
        .collect();
    chain.effects = effects;
    unknown
}

/// What the overlay says after loading a preset or a scene.
pub(super) fn loaded_words(path: &Path, unknown: &[String]) -> String {
    if unknown.is_empty() {
        format!("loaded {}", path.display())
    } else {
        format!("loaded; unknown effects skipped: {}", unknown.join(", "))
    }
}

/// Loads a scene into the running show: its layers replace the layers, its crossfader,
/// chain and MIDI mappings replace theirs. The bottom source cannot change while playing.
pub(super) fn load_scene(
    path: &Path,
    compositor: &mut CompositorParams,
    chain: &mut EffectChain,
    catalog: &EffectCatalog,
    midi: &mut MidiParams,
) -> String {
    let scene = match crate::compositor::scene::Scene::load(path) {
        Ok(scene) => scene,
        Err(e) => {
            warn!("{e}");
            return e.to_string();
        }
    };
    if let Some(layers) = compositor.layers.as_mut() {
        for i in (0..layers.len()).rev() {
            layers.request(LayerRequest::Remove(i));
        }
        for spec in scene.layers {
            layers.request(LayerRequest::Add(spec));
        }
    }
    if let Some(fader) = compositor.fader.as_mut() {
        fader.0 = scene.crossfader;
    }
    let unknown = load_chain(chain, catalog, scene.effects);
    if let Some(m) = midi.mappings.as_mut() {
        m.0 = scene.midi;
    }
    if let Some(a) = midi.audio.as_mut() {
        a.0 = scene.audio;
    }
    info!("scene {} loaded", path.display());
    let current = compositor.source.as_ref().and_then(|s| s.0.clone());
    match scene.source {
        Some(source) if Some(&source) != current.as_ref() => format!(
            "{}; its bottom source ({source}) plays with --scene, the current one stays",
            loaded_words(path, &unknown)
        ),
        _ => loaded_words(path, &unknown),
    }
}

pub(super) fn list_presets(dir: Option<&Path>) -> Vec<PathBuf> {
    let Some(Ok(listing)) = dir.map(std::fs::read_dir) else {
        return Vec::new();
    };
    let mut presets: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    presets.sort();
    presets
}
