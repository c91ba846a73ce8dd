//! The overlay's chain editor: effects and their parameters, the master chain's and each
//! layer's, with MIDI learn on the master chain.

use std::time::Instant;

use bevy::prelude::*;
use bevy_egui::egui;

use super::*;
use crate::audio_map::{AudioInput, AudioMapping};
use crate::effects::chain::{EffectChain, EffectInstance};
use crate::effects::definition::{ParamKind, ParamValue};
use crate::effects::{EffectCatalog, EffectErrors};
use crate::midi_map::{Curve, MidiTarget};
use crate::show::state::{AudioMappings, MidiLearn, MidiMappings};

/// MIDI mappings and learn, present with `--midi`.
#[derive(bevy::ecs::system::SystemParam)]
pub(super) struct MidiParams<'w> {
    pub(super) mappings: Option<ResMut<'w, MidiMappings>>,
    pub(super) learn: Option<ResMut<'w, MidiLearn>>,
    /// Saved with presets beside the MIDI mappings.
    pub(super) audio: Option<ResMut<'w, AudioMappings>>,
}

pub(super) fn chain_section(
    ui: &mut egui::Ui,
    state: &mut OverlayState,
    chain: &mut EffectChain,
    catalog: &EffectCatalog,
    errors: &EffectErrors,
    midi: &mut MidiParams,
) {
    egui::CollapsingHeader::new("Effects")
        .default_open(true)
        .show(ui, |ui| {
            edit_effects(
                ui,
                &mut chain.effects,
                (catalog, errors),
                &mut state.add_choice,
                Some(midi),
            );
            // Errors of effects not in the chain (a user file being edited) show too.
            for (name, e) in &errors.0 {
                if !chain.effects.iter().any(|i| &i.effect == name) {
                    ui.colored_label(
                        egui::Color32::from_rgb(255, 90, 90),
                        format!("{name}: compile error"),
                    );
                    ui.add(egui::Label::new(egui::RichText::new(e).monospace().small()).wrap());
                }
            }
        });
}

/// An effect chain's editor: on/off, order, remove, mix and parameters of each effect, and
/// an effect to add (`choice`). MIDI learn buttons where `midi` is given (the master chain:
/// mappings name its effects by place).
pub(super) fn edit_effects(
    ui: &mut egui::Ui,
    effects: &mut Vec<EffectInstance>,
    (catalog, errors): (&EffectCatalog, &EffectErrors),
    choice: &mut String,
    mut midi: Option<&mut MidiParams>,
) {
    let mut action: Option<(usize, i32)> = None; // (index, -1 up / +1 down / 0 remove)
    let count = effects.len();
    for (i, inst) in effects.iter_mut().enumerate() {
        ui.push_id(i, |ui| {
            ui.horizontal(|ui| {
                ui.checkbox(&mut inst.enabled, format!("{}. {}", i + 1, inst.effect));
                if ui
                    .add_enabled(i > 0, egui::Button::new("^").small())
                    .clicked()
                {
                    action = Some((i, -1));
                }
                if ui
                    .add_enabled(i + 1 < count, egui::Button::new("v").small())
                    .clicked()
                {
                    action = Some((i, 1));
                }
                if ui.small_button("x").clicked() {
                    action = Some((i, 0));
                }
            });
            // Both buttons borrow the mappings: one cell lends them to each in turn.
            let cell = std::cell::RefCell::new(midi.as_deref_mut());
            let learn = |ui: &mut egui::Ui, target| {
                if let Some(midi) = cell.borrow_mut().as_deref_mut() {
                    learn_button(ui, midi, target);
                }
            };
            let audio = |ui: &mut egui::Ui, target| {
                if let Some(midi) = cell.borrow_mut().as_deref_mut() {
                    audio_pick(ui, midi, target);
                }
            };
            ui.horizontal(|ui| {
                ui.add(egui::Slider::new(&mut inst.mix, 0.0..=1.0).text("mix"));
                learn(ui, param_target(i, "mix"));
            });
            if let Some(def) = catalog.get(&inst.effect) {
                for p in &def.params {
                    let mut value = inst.value(&def, &p.name).unwrap_or(p.default);
                    if param_widget(ui, &p.name, p.kind, &mut value) {
                        inst.params.insert(p.name.clone(), value);
                    }
                    if let ParamKind::Float { .. } = p.kind {
                        ui.horizontal(|ui| {
                            learn(ui, param_target(i, &p.name));
                            audio(ui, param_target(i, &p.name));
                        });
                    }
                }
            }
            learn(ui, MidiTarget::Enabled { effect: i });
            if let Some(e) = errors.0.get(&inst.effect) {
                ui.colored_label(
                    egui::Color32::from_rgb(255, 90, 90),
                    "compile error (the last good version runs):",
                );
                ui.add(egui::Label::new(egui::RichText::new(e).monospace().small()).wrap());
            }
            ui.separator();
        });
    }
    if let Some((i, dir)) = action {
        match dir {
            0 => {
                effects.remove(i);
            }
            -1 => effects.swap(i, i - 1),
            _ => effects.swap(i, i + 1),
        }
    }
    ui.horizontal(|ui| {
        egui::ComboBox::from_id_salt("add_effect")
            .selected_text(if choice.is_empty() {
                "choose effect".to_string()
            } else {
                choice.clone()
            })
            .show_ui(ui, |ui| {
                for name in catalog.names() {
                    ui.selectable_value(choice, name.clone(), name);
                }
            });
        if ui
            .add_enabled(!choice.is_empty(), egui::Button::new("Add"))
            .clicked()
        {
            effects.push(EffectInstance::new(choice));
        }
    });
}

/// One parameter's widget; true when the user changed it.
pub(super) fn param_widget(
    ui: &mut egui::Ui,
    name: &str,
    kind: ParamKind,
    value: &mut ParamValue,
) -> bool {
    match (kind, value) {
        (ParamKind::Float { min, max }, ParamValue::Float(v)) => {
            ui.add(egui::Slider::new(v, min..=max).text(name)).changed()
        }
        (ParamKind::Bool, ParamValue::Bool(b)) => ui.checkbox(b, name).changed(),
        (ParamKind::Color, ParamValue::Color(c)) => {
            ui.horizontal(|ui| {
                let changed = ui.color_edit_button_rgba_unmultiplied(c).changed();
                ui.label(name);
                changed
            })
            .inner
        }
        (ParamKind::Point, ParamValue::Point(p)) => {
            ui.horizontal(|ui| {
                let a = ui
                    .add(
                        egui::DragValue::new(&mut p[0])
                            .speed(0.005)
                            .range(-1.0..=2.0),
                    )
                    .changed();
                let b = ui
                    .add(
                        egui::DragValue::new(&mut p[1])
                            .speed(0.005)
                            .range(-1.0..=2.0),
                    )
                    .changed();
                ui.label(name);
                a || b
            })
            .inner
        }
        _ => false,
    }
}

/// A MIDI target for an effect's parameter: the control's whole travel over the whole range.
pub(super) fn param_target(effect: usize, param: &str) -> MidiTarget {
    MidiTarget::Param {
        effect,
        param: param.to_string(),
        from: 0.0,
        to: 1.0,
        curve: Curve::Linear,
    }
}

/// "audio" beside a parameter: pick the measure of the sound that drives it (over its
/// whole range, linear; a preset can narrow and smooth it), or none.
fn audio_pick(ui: &mut egui::Ui, midi: &mut MidiParams, target: MidiTarget) {
    let Some(mappings) = midi.audio.as_mut() else {
        return;
    };
    let current = mappings
        .0
        .iter()
        .find(|m| m.target == target)
        .map(|m| m.input);
    let mut picked = current;
    egui::ComboBox::from_id_salt(("audio", format!("{target:?}")))
        .width(80.0)
        .selected_text(current.map_or("audio".into(), |i| format!("{i:?}")))
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut picked, None, "none");
            for input in AudioInput::ALL {
                ui.selectable_value(&mut picked, Some(input), format!("{input:?}"));
            }
        });
    if picked != current {
        // One input drives a parameter: a new pick replaces the old mapping.
        mappings.0.retain(|m| m.target != target);
        if let Some(input) = picked {
            info!("audio mapping: {input:?} -> {target:?}");
            mappings.0.push(AudioMapping {
                input,
                target,
                attack: 0.0,
                release: 0.0,
            });
        }
    }
}

/// "MIDI learn" for `target`: click, then move a control on the MIDI device.
pub(super) fn learn_button(ui: &mut egui::Ui, midi: &mut MidiParams, target: MidiTarget) {
    let Some(learn) = midi.learn.as_mut() else {
        return;
    };
    let waiting = learn.waiting.as_ref().is_some_and(|(t, _)| *t == target);
    let mapped = midi
        .mappings
        .as_ref()
        .and_then(|m| m.0.iter().find(|m| m.target == target))
        .map(|m| format!("{:?}", m.control));
    let what = match &target {
        MidiTarget::Param { param, .. } => format!("learn {param}"),
        MidiTarget::Enabled { .. } => "learn on/off".into(),
        other => format!("learn {other:?}"),
    };
    let label = if waiting {
        "move a control...".to_string()
    } else {
        what
    };
    let button = ui.small_button(label);
    let button = match mapped {
        Some(m) => button.on_hover_text(format!("mapped to {m}")),
        None => button,
    };
    if button.clicked() {
        learn.waiting = if waiting {
            None
        } else {
            Some((target, Instant::now()))
        };
    }
}
