//! The overlay (bevy_egui): stats, the effect chain editor, presets, show controls and the
//! keyboard help. It is drawn by the window's camera on top of the canvas, never into it,
//! so `--record`, `--pipe` and screenshots never contain it. F1 (or `--hide-ui`) hides it.
//!
//! The UI works on the same resources the command line fills ([`EffectChain`],
//! [`ShowState`], ...), so everything it does can also be done headless. Its own CPU time
//! is measured every frame and shown, as is the effect chain's GPU time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use tracing::{info, warn};

use crate::compositor::layers::{Fader, LayerRequest, Layers};
use crate::compositor::scene::SceneSource;
use crate::compositor::{BlendMode, Fit};
use crate::control::midi::{Curve, MidiTarget};
use crate::control::plugin::{MidiLearn, MidiMappings};
use crate::effects::chain::{EffectChain, EffectInstance, Preset};
use crate::effects::definition::{ParamKind, ParamValue};
use crate::effects::{EffectCatalog, EffectErrors, EffectTimings, MasterLevel};
use crate::output::OutputPhase;
use crate::show::{KeyboardCaptured, SHORTCUTS, ShowState};
use crate::status::LatestStatus;
use crate::video::{Freeze, StreamDescription};

/// Overlay settings from the command line.
pub struct OverlayPlugin {
    /// Shown at start (no `--hide-ui`).
    pub visible: bool,
    /// Where presets are listed and saved.
    pub presets_dir: Option<PathBuf>,
}

/// Whether the overlay is shown, and its editing state.
#[derive(Resource, Debug)]
pub struct OverlayState {
    /// Shown or hidden (F1).
    pub visible: bool,
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

/// CPU time spent building the overlay, per frame.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct UiTiming {
    /// Last frame, milliseconds.
    pub last_ms: f64,
    /// Exponential mean, milliseconds.
    pub mean_ms: f64,
    /// Worst frame so far, milliseconds.
    pub max_ms: f64,
    /// Frames measured.
    pub frames: u64,
}

impl Plugin for OverlayPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(OverlayState {
            visible: self.visible,
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
    mut state: ResMut<OverlayState>,
) {
    if keys.just_pressed(KeyCode::F1) && !captured.0 {
        state.visible = !state.visible;
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
    mut timing: ResMut<UiTiming>,
    mut chain: ResMut<EffectChain>,
    catalog: Res<EffectCatalog>,
    errors: Res<EffectErrors>,
    effect_timings: Res<EffectTimings>,
    status: Res<LatestStatus>,
    stream: Option<Res<StreamDescription>>,
    time: Res<Time<Real>>,
    mut show: ShowParams,
    mut midi: MidiParams,
    mut compositor: CompositorParams,
) -> Result {
    let started = Instant::now();
    let ctx = contexts.ctx_mut()?.clone();
    show.captured.0 = ctx.egui_wants_keyboard_input();
    if !state.visible {
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
                stats_section(ui, &status, stream.as_deref(), render_fps);
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

fn stats_section(
    ui: &mut egui::Ui,
    status: &LatestStatus,
    stream: Option<&StreamDescription>,
    render_fps: f64,
) {
    egui::CollapsingHeader::new("Stream")
        .default_open(true)
        .show(ui, |ui| {
            let Some(s) = &status.0 else {
                ui.label("connecting...");
                return;
            };
            egui::Grid::new("stats").num_columns(2).show(ui, |ui| {
                let mut row = |k: &str, v: String| {
                    ui.label(k);
                    // Long values (decoder reasons, URLs) are cut, not allowed to widen the
                    // overlay over the picture; hovering shows them whole.
                    ui.add(egui::Label::new(&v).truncate()).on_hover_text(v);
                    ui.end_row();
                };
                row("state", format!("{:?}", s.state).to_lowercase());
                row("source", s.source.clone());
                match (&s.protocol, &s.protocol_why) {
                    (_, Some(why)) => row("protocol", why.clone()),
                    (Some(p), None) => row("protocol", p.clone()),
                    _ => {}
                }
                if let Some(w) = &s.webrtc {
                    let rtt = w.rtt_ms.map_or("-".into(), |r| format!("{r:.0} ms"));
                    row(
                        "webrtc",
                        format!(
                            "rtt {rtt}, jitter {:.0} ms, loss {:.1}%, buffer {:.0} ms, {} PLI, {} reconnects",
                            w.jitter_ms,
                            w.packet_loss * 100.0,
                            w.jitter_buffer_ms,
                            w.keyframe_requests,
                            w.reconnects
                        ),
                    );
                }
                if let Some(r) = &s.rendition {
                    row("rendition", r.clone());
                }
                row("resolution", format!("{}x{}", s.width, s.height));
                let nominal = stream
                    .and_then(|d| d.0.frame_rate)
                    .map(|r| format!(" (stream {r:.2})"))
                    .unwrap_or_default();
                row("input fps", format!("{:.1}{nominal}", s.fps));
                row("render fps", format!("{render_fps:.0}"));
                row(
                    "dropped",
                    format!("{} queue, {} late", s.dropped, s.skipped),
                );
                row("decode", s.decoder.clone());
                if let Some(l) = s.latency_s {
                    let target = s
                        .latency_target_s
                        .map(|t| format!(" (target {t:.1} s)"))
                        .unwrap_or_default();
                    row("latency", format!("{l:.2} s{target}"));
                }
                for (name, o) in &s.outputs {
                    let mut text = format!(
                        "{}, {} written, {} dropped",
                        format!("{:?}", o.state).to_lowercase(),
                        o.written,
                        o.dropped
                    );
                    if o.bitrate > 0.0 {
                        text += &format!(", {:.1} Mb/s", o.bitrate / 1e6);
                    }
                    if let Some(e) = o.encoder {
                        text += &format!(", {e}");
                    }
                    if o.reconnects > 0 {
                        text += &format!(", {} reconnects", o.reconnects);
                    }
                    if let Some(err) = o.error.as_ref().filter(|_| o.state != OutputPhase::Live) {
                        text += &format!(" ({err})");
                    }
                    row(&format!("output {name}"), text);
                }
            });
        });
}

fn timing_section(
    ui: &mut egui::Ui,
    effects: &EffectTimings,
    ui_timing: &UiTiming,
    stream: Option<&StreamDescription>,
) {
    egui::CollapsingHeader::new("Timing")
        .default_open(true)
        .show(ui, |ui| {
            let budget = 1e3 / stream.and_then(|s| s.0.frame_rate).unwrap_or(30.0);
            let clock = if effects.gpu { "GPU" } else { "CPU" };
            match effects.chain_ms {
                Some(ms) => {
                    let text = format!("effects: {ms:.2} ms {clock} (frame budget {budget:.1} ms)");
                    if ms > budget {
                        ui.colored_label(
                            egui::Color32::from_rgb(255, 90, 90),
                            format!("{text} - TOO SLOW"),
                        );
                    } else {
                        ui.label(text);
                    }
                }
                None => {
                    ui.label("effects: none running");
                }
            }
            for (name, ms) in &effects.passes {
                ui.monospace(format!("  {name:<18} {ms:7.2} ms"));
            }
            ui.label(format!(
                "overlay: {:.2} ms CPU (max {:.2})",
                ui_timing.mean_ms, ui_timing.max_ms
            ));
        });
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

/// The compositor's layers and crossfader (present with layers), and what a scene saves.
#[derive(bevy::ecs::system::SystemParam)]
struct CompositorParams<'w> {
    layers: Option<ResMut<'w, Layers>>,
    fader: Option<ResMut<'w, Fader>>,
    source: Option<Res<'w, SceneSource>>,
}

/// Layers (state, opacity, blend, fit, mute, solo, order, own effects), the crossfader,
/// and Save scene.
fn layers_section(
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

/// MIDI mappings and learn, present with `--midi`.
#[derive(bevy::ecs::system::SystemParam)]
struct MidiParams<'w> {
    mappings: Option<ResMut<'w, MidiMappings>>,
    learn: Option<ResMut<'w, MidiLearn>>,
}

fn chain_section(
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
fn edit_effects(
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
            let mut learn = |ui: &mut egui::Ui, target| {
                if let Some(midi) = midi.as_deref_mut() {
                    learn_button(ui, midi, target);
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
                        learn(ui, param_target(i, &p.name));
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
fn param_widget(ui: &mut egui::Ui, name: &str, kind: ParamKind, value: &mut ParamValue) -> bool {
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
fn param_target(effect: usize, param: &str) -> MidiTarget {
    MidiTarget::Param {
        effect,
        param: param.to_string(),
        from: 0.0,
        to: 1.0,
        curve: Curve::Linear,
    }
}

/// "MIDI learn" for `target`: click, then move a control on the MIDI device.
fn learn_button(ui: &mut egui::Ui, midi: &mut MidiParams, target: MidiTarget) {
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

fn preset_section(
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
fn load_chain(
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
fn loaded_words(path: &Path, unknown: &[String]) -> String {
    if unknown.is_empty() {
        format!("loaded {}", path.display())
    } else {
        format!("loaded; unknown effects skipped: {}", unknown.join(", "))
    }
}

/// Loads a scene into the running show: its layers replace the layers, its crossfader,
/// chain and MIDI mappings replace theirs. The bottom source cannot change while playing.
fn load_scene(
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

fn list_presets(dir: Option<&Path>) -> Vec<PathBuf> {
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
