//! The window's Daydream controls: an overlay panel (stream, status, prompt editor, sliders,
//! seed dice, cue list, the state of each change) and the cue keys (`]`/PageDown next,
//! `[`/PageUp previous). Everything goes to the worker as [`SteerCommand`]s; the panel shows
//! what the worker reports, so a value Daydream refused snaps back to the last applied one.

use std::collections::BTreeMap;

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use serde_json::Value;
use tracing::info;

use super::api::param;
use super::cues::CueList;
use super::steer::{ChangeState, reloads_pipeline};
use super::{DaydreamState, Steer, SteerCommand};
use crate::show::state::{Cues, KeyboardCaptured, OverlayShown};

/// Adds the panel and the cue keys (window only; the cue list is a resource either way).
pub struct DaydreamPanelPlugin;

impl Plugin for DaydreamPanelPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PanelEdits>()
            .add_systems(Update, cue_keys)
            .add_systems(EguiPrimaryContextPass, panel);
    }
}

/// What the panel's widgets hold between frames.
#[derive(Resource, Debug, Default)]
struct PanelEdits {
    prompt: String,
    negative_prompt: String,
    morph_seconds: f32,
    numbers: BTreeMap<&'static str, f64>,
    seed: u64,
    t_index_list: String,
    t_index_error: Option<String>,
    loaded: bool,
    prompt_loaded: bool,
}

fn cue_keys(
    keys: Res<ButtonInput<KeyCode>>,
    captured: Res<KeyboardCaptured>,
    cues: Option<ResMut<Cues>>,
    steer: Option<Res<Steer>>,
) {
    let (Some(mut cues), Some(steer)) = (cues, steer) else {
        return;
    };
    if captured.0 || cues.0.cues.is_empty() {
        return;
    }
    let commands = if keys.any_just_pressed([KeyCode::BracketRight, KeyCode::PageDown]) {
        cues.0.go_next()
    } else if keys.any_just_pressed([KeyCode::BracketLeft, KeyCode::PageUp]) {
        cues.0.go_previous()
    } else {
        return;
    };
    announce(&cues.0);
    for c in commands {
        steer.send(c);
    }
}

fn announce(cues: &CueList) {
    if let Some(cue) = cues.current.and_then(|i| cues.cues.get(i)) {
        info!("cue {}: {}", cues.current.unwrap_or(0) + 1, cue.name);
    }
}

/// Slider parameters: wire name, label, range, integer.
const SLIDERS: &[(&str, &str, f64, f64, bool)] = &[
    (param::GUIDANCE, "guidance", 0.0, 20.0, false),
    (param::DELTA, "delta", 0.0, 1.0, false),
    (param::STEPS, "steps", 1.0, 100.0, true),
];

fn panel(
    mut contexts: EguiContexts,
    state: Option<Res<DaydreamState>>,
    steer: Option<Res<Steer>>,
    cues: Option<ResMut<Cues>>,
    mut edits: ResMut<PanelEdits>,
    overlay: Option<Res<OverlayShown>>,
) -> Result {
    let (Some(state), Some(steer)) = (state, steer) else {
        return Ok(());
    };
    // The panel is part of the overlay: F1 and --hide-ui hide it too.
    if overlay.is_some_and(|o| !o.0) {
        return Ok(());
    }
    let ctx = contexts.ctx_mut()?.clone();
    // Until the worker has reported, the widgets would start from made-up values.
    let Some(latest) = state.latest.clone() else {
        return Ok(());
    };
    let shown = |name: &str| latest.values.get(name);
    if !edits.loaded {
        edits.loaded = true;
        edits.morph_seconds = 3.0;
    }
    if !edits.prompt_loaded
        && let Some(v) = shown(param::PROMPT)
    {
        edits.prompt_loaded = true;
        edits.prompt = text_of(v);
    }
    // A refused value snaps back to what Daydream has.
    for (name, change) in &latest.states {
        if let ChangeState::Failed(_) = change
            && let Some(v) = shown(name)
        {
            match name.as_str() {
                param::PROMPT => edits.prompt = text_of(v),
                param::NEGATIVE_PROMPT => edits.negative_prompt = text_of(v),
                param::SEED => edits.seed = v.as_u64().unwrap_or(edits.seed),
                other => {
                    if let Some((key, ..)) = SLIDERS.iter().find(|s| s.0 == other)
                        && let Some(x) = v.as_f64()
                    {
                        edits.numbers.insert(key, x);
                    }
                }
            }
        }
    }
    egui::Window::new("Daydream")
        .id(egui::Id::new("lucid_daydream"))
        .default_pos([ctx.viewport_rect().width() - 372.0, 12.0])
        .default_width(360.0)
        .resizable(true)
        .show(&ctx, |ui| {
            ui.label(format!(
                "stream {} · model {}",
                state.stream_id, latest.model
            ));
            let status = &latest.status;
            let line = match (status.ready(), status.output_fps) {
                (true, Some(fps)) => format!("output live, {fps:.1} fps"),
                (true, None) => "output live".into(),
                (false, _) => "output warming up".into(),
            };
            ui.label(line);
            if let Some(e) = &status.last_error {
                ui.colored_label(egui::Color32::LIGHT_RED, format!("Daydream: {e}"));
            }
            if let Some(e) = &latest.status_error {
                ui.colored_label(egui::Color32::YELLOW, format!("status: {e}"));
            }
            ui.separator();
            ui.label("Prompt");
            let prompt = ui.add(egui::TextEdit::multiline(&mut edits.prompt).desired_rows(2));
            ui.horizontal(|ui| {
                let enter = prompt.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if ui.button("Send").clicked() || enter {
                    steer.send(SteerCommand::Set {
                        name: param::PROMPT.into(),
                        value: Value::String(edits.prompt.trim().to_string()),
                    });
                }
                if ui.button("Morph").clicked() {
                    steer.send(SteerCommand::Morph {
                        to: edits.prompt.trim().to_string(),
                        seconds: f64::from(edits.morph_seconds),
                    });
                }
                ui.add(egui::Slider::new(&mut edits.morph_seconds, 0.5..=30.0).suffix(" s"));
            });
            if let Some(m) = latest.morph {
                ui.add(egui::ProgressBar::new(m as f32).text("morph"));
            }
            ui.label("Negative prompt");
            if ui
                .add(egui::TextEdit::singleline(&mut edits.negative_prompt))
                .lost_focus()
            {
                steer.send(SteerCommand::Set {
                    name: param::NEGATIVE_PROMPT.into(),
                    value: Value::String(edits.negative_prompt.trim().to_string()),
                });
            }
            for &(name, label, lo, hi, integer) in SLIDERS {
                let initial = shown(name).and_then(Value::as_f64).unwrap_or(lo);
                let value = edits.numbers.entry(name).or_insert(initial);
                let mut slider = egui::Slider::new(value, lo..=hi).text(label);
                if integer {
                    slider = slider.integer();
                }
                if ui.add(slider).changed() {
                    let v = *value;
                    steer.send(SteerCommand::Set {
                        name: name.into(),
                        value: if integer {
                            Value::from(v.round() as u64)
                        } else {
                            Value::from(v)
                        },
                    });
                }
            }
            ui.horizontal(|ui| {
                ui.label("interpolation");
                let current = shown(param::PROMPT_INTERPOLATION)
                    .and_then(Value::as_str)
                    .unwrap_or("linear")
                    .to_string();
                for method in ["linear", "slerp"] {
                    if ui.selectable_label(current == method, method).clicked() && current != method
                    {
                        steer.send(SteerCommand::Set {
                            name: param::PROMPT_INTERPOLATION.into(),
                            value: Value::from(method),
                        });
                    }
                }
            });
            ui.horizontal(|ui| {
                ui.label("t_index_list");
                let field = ui.add(
                    egui::TextEdit::singleline(&mut edits.t_index_list)
                        .hint_text("e.g. 0, 16, 32")
                        .desired_width(120.0),
                );
                if field.lost_focus() {
                    let steps = edits
                        .numbers
                        .get(param::STEPS)
                        .copied()
                        .or_else(|| shown(param::STEPS).and_then(Value::as_f64))
                        .unwrap_or(50.0) as u64;
                    match parse_t_index_list(&edits.t_index_list, steps) {
                        Ok(list) => {
                            edits.t_index_error = None;
                            steer.send(SteerCommand::Set {
                                name: param::T_INDEX_LIST.into(),
                                value: Value::from(list),
                            });
                        }
                        Err(e) => edits.t_index_error = Some(e),
                    }
                }
            });
            if let Some(e) = &edits.t_index_error {
                ui.colored_label(egui::Color32::LIGHT_RED, e);
            }
            // Each ControlNet's conditioning scale applies live; the list is sent whole,
            // as Daydream takes it, with only that scale changed.
            if let Some(Value::Array(nets)) = shown(param::CONTROLNETS).cloned() {
                for (i, net) in nets.iter().enumerate() {
                    let name = net
                        .get("model_id")
                        .and_then(Value::as_str)
                        .unwrap_or("controlnet");
                    let mut scale = net
                        .get("conditioning_scale")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0);
                    let label = name.rsplit('/').next().unwrap_or(name).to_string();
                    if ui
                        .add(egui::Slider::new(&mut scale, 0.0..=1.0).text(label))
                        .changed()
                    {
                        let mut changed = nets.clone();
                        changed[i]["conditioning_scale"] = Value::from(scale);
                        steer.send(SteerCommand::Set {
                            name: param::CONTROLNETS.into(),
                            value: Value::Array(changed),
                        });
                    }
                }
            }
            ui.horizontal(|ui| {
                ui.label("seed");
                let seed = ui.add(egui::DragValue::new(&mut edits.seed));
                let dice = ui.button("🎲").on_hover_text("a random seed");
                if dice.clicked() {
                    edits.seed = random_seed();
                }
                if dice.clicked() || seed.lost_focus() {
                    steer.send(SteerCommand::Set {
                        name: param::SEED.into(),
                        value: Value::from(edits.seed),
                    });
                }
            });
            if let Some(mut cues) = cues
                && !cues.0.cues.is_empty()
            {
                ui.separator();
                ui.label("Cues ([ and ] or PageUp/PageDown)");
                let mut go = None;
                for (i, cue) in cues.0.cues.iter().enumerate() {
                    let current = cues.0.current == Some(i);
                    let label = format!("{}. {} ({:.1} s)", i + 1, cue.name, cue.transition);
                    if ui.selectable_label(current, label).clicked() {
                        go = Some(i);
                    }
                }
                if let Some(i) = go {
                    let commands = cues.0.go(i);
                    announce(&cues.0);
                    for c in commands {
                        steer.send(c);
                    }
                }
            }
            ui.separator();
            ui.label(format!("changes sent: {}", latest.patches_sent));
            for (name, change) in &latest.states {
                let reload = if reloads_pipeline(name) {
                    " (reloads the pipeline)"
                } else {
                    ""
                };
                let color = match change {
                    ChangeState::Applied => egui::Color32::LIGHT_GREEN,
                    ChangeState::Sending => egui::Color32::LIGHT_GRAY,
                    ChangeState::Retrying(_) => egui::Color32::YELLOW,
                    ChangeState::Failed(_) => egui::Color32::LIGHT_RED,
                };
                ui.colored_label(color, format!("{name}{reload}: {change}"));
            }
        });
    Ok(())
}

/// `0, 16, 32` → [0, 16, 32]: 1 to 4 steps, non-decreasing, each below `steps`.
fn parse_t_index_list(text: &str, steps: u64) -> Result<Vec<u64>, String> {
    let list: Vec<u64> = text
        .split([',', ' '])
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| format!("{t:?} is not a step number"))
        })
        .collect::<Result<_, _>>()?;
    if !(1..=4).contains(&list.len()) {
        return Err("t_index_list takes 1 to 4 steps".into());
    }
    if list.windows(2).any(|w| w[1] < w[0]) {
        return Err("t_index_list must not decrease".into());
    }
    if let Some(big) = list.iter().find(|&&t| t >= steps) {
        return Err(format!(
            "step {big} is not below the {steps} inference steps"
        ));
    }
    Ok(list)
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A seed from the clock: random enough for a dice button, and no extra crate.
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    // SplitMix64 scrambles the clock's low bits across the whole range.
    let mut z = nanos.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_index_lists_are_checked_as_daydream_documents() {
        assert_eq!(parse_t_index_list("0, 16, 32", 50), Ok(vec![0, 16, 32]));
        assert!(parse_t_index_list("", 50).is_err());
        assert!(parse_t_index_list("1,2,3,4,5", 50).is_err());
        assert!(
            parse_t_index_list("16, 8", 50)
                .unwrap_err()
                .contains("decrease")
        );
        assert!(parse_t_index_list("49, 50", 50).unwrap_err().contains("50"));
        assert!(parse_t_index_list("a", 50).is_err());
    }
}
