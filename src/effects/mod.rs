//! The effect chain: WGSL post-effects run one after another over the rendered video, on
//! the canvas, so the window, recordings and pipes all show them (and never the UI).
//!
//! - [`catalog`]: the effects Lucid knows (built-ins and the effects folder), rescanned.
//! - [`definition`]: an effect file (JSON header + WGSL), validated with naga.
//! - [`chain`]: the chain as data, `--effect` parsing and RON presets.
//! - [`render`]: pipelines and the `Core2d` post-process system.
//!
//! Built-in effects are compiled into the binary from `shaders/effects/`; user effects are
//! `.wgsl` files in the effects folder, loaded at start and reloaded when saved. A file that
//! fails to compile keeps its last good version running and reports the error.

pub mod catalog;
pub mod chain;
pub mod definition;
pub mod isf;
pub mod params;
pub mod passes;
pub mod render;
pub mod shader;
pub mod tempo;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use tracing::{info, warn};

use crate::sound::{ShowSound, SoundSystems};
use crate::video::{FramePresented, OutputCanvas, Pacing, StreamReady, VideoSystems};
use chain::EffectChain;
use definition::{EffectDef, Globals, pack_globals};
use render::{ChainFrame, PassFrame, RenderEffectErrors};

use catalog::RESCAN_EVERY;
pub use catalog::{BUILTIN, CatalogChange, CatalogEntry, EffectCatalog, MAX_EFFECT_BYTES};

const MASTER: &str = include_str!("../../shaders/master.wgsl");

/// The time and frame number effects see.
#[derive(Resource, Debug, Clone, Copy)]
pub struct EffectClock {
    /// Seconds: wall time since start for live input, stream time for finite input (so the
    /// same file and preset render the same frames).
    pub time: f32,
    /// Presented frame number.
    pub frame: u32,
    /// True when `time` is wall time.
    pub live: bool,
    /// `time`'s step at the last presented frame (ISF's `TIMEDELTA`).
    pub delta: f32,
    /// Local year, month, day and seconds since midnight at the last frame (ISF's `DATE`).
    pub date: [f32; 4],
    start: Instant,
}

impl Default for EffectClock {
    fn default() -> Self {
        EffectClock {
            time: 0.0,
            frame: 0,
            live: true,
            delta: 0.0,
            date: [0.0; 4],
            start: Instant::now(),
        }
    }
}

/// The master level applied after the chain: 1 normal, 0 black. Fades move it.
#[derive(Resource, Debug, Clone, Copy)]
pub struct MasterLevel {
    /// Current level, as the show's controls set it (blackout, fades).
    pub level: f32,
    /// The schedule's own fade (`--schedule`), 0 out of hours: apart from `level`, so the
    /// show's blackout or fade is as it was when hours begin again.
    pub schedule: f32,
}

impl MasterLevel {
    /// The level the picture is shown at: the show's times the schedule's.
    pub fn shown(&self) -> f32 {
        self.level * self.schedule
    }
}

impl Default for MasterLevel {
    fn default() -> Self {
        MasterLevel {
            level: 1.0,
            schedule: 1.0,
        }
    }
}

/// How long the canvas passes take per frame, from Bevy's render diagnostics: GPU
/// timestamps where the device has them, CPU time recording the passes otherwise.
#[derive(Resource, Debug, Clone, Default)]
pub struct EffectTimings {
    /// The video pass (YUV planes to the canvas), milliseconds.
    pub video_ms: Option<f64>,
    /// The outputs' RGB to YUV pass, milliseconds; `None` without an encoding output.
    pub yuv_ms: Option<f64>,
    /// The whole chain, milliseconds (mean of recent frames); `None` when nothing runs.
    pub chain_ms: Option<f64>,
    /// Each pass: "index_name" and milliseconds.
    pub passes: Vec<(String, f64)>,
    /// True when the figures are GPU timestamps.
    pub gpu: bool,
}

/// The show's tempo: `bpm` and `beat` in every effect's prelude (`--bpm`, or tapped).
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct ShowTempo(pub tempo::Tempo);

/// Latest effect errors for the overlay: effect name -> message with line numbers.
#[derive(Resource, Debug, Clone, Default)]
pub struct EffectErrors(pub BTreeMap<String, String>);

/// Ordering for systems that build passes.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum EffectSystems {
    /// [`EffectClock`] is set for the frame being presented: build passes after it.
    Clock,
    /// What sets this frame's values from the frame just presented (the sound's measures
    /// and its mappings): build passes after it.
    Inputs,
}

/// Runs the chain on the canvas and keeps the catalog fresh.
pub struct EffectsPlugin {
    catalog: EffectCatalog,
    chain: EffectChain,
    tempo: tempo::TempoSource,
}

impl EffectsPlugin {
    /// The catalog loaded at start, the chain from `--preset`/`--effect`, and the tempo
    /// (`--bpm`: a number, or the sound's).
    pub fn new(catalog: EffectCatalog, chain: EffectChain, tempo: tempo::TempoSource) -> Self {
        EffectsPlugin {
            catalog,
            chain,
            tempo,
        }
    }
}

/// Shader assets of the effect versions in use, by name.
#[derive(Resource, Default)]
pub struct EffectShaders {
    by_name: BTreeMap<String, (Arc<EffectDef>, Handle<Shader>)>,
    /// A multi-pass ISF effect's passes' shaders, by effect and pass.
    by_pass: BTreeMap<(String, usize), (Arc<EffectDef>, Handle<Shader>)>,
    master: Option<(Arc<EffectDef>, Handle<Shader>)>,
}

#[derive(Resource)]
struct RescanTimer(Timer);

impl Plugin for EffectsPlugin {
    fn build(&self, app: &mut App) {
        let errors = RenderEffectErrors::default();
        let mut initial = EffectErrors::default();
        for (name, e) in &self.catalog.entries {
            if let Some(err) = &e.error {
                initial.0.insert(name.clone(), err.details());
            }
        }
        app.insert_resource(self.catalog.clone())
            .insert_resource(self.chain.clone())
            .insert_resource(errors.clone())
            .insert_resource(initial)
            .init_resource::<EffectShaders>()
            .init_resource::<EffectClock>()
            .init_resource::<MasterLevel>()
            .init_resource::<ChainFrame>()
            .init_resource::<EffectTimings>()
            .insert_resource(ShowTempo(tempo::Tempo {
                bpm: self.tempo.initial(),
                anchor: 0.0,
            }))
            .configure_sets(Update, SoundSystems::Analyze.in_set(EffectSystems::Inputs))
            .insert_resource(RescanTimer(Timer::new(RESCAN_EVERY, TimerMode::Repeating)))
            .add_systems(
                Update,
                (
                    rescan_effects,
                    collect_render_errors,
                    read_timings,
                    advance_clock
                        .in_set(EffectSystems::Clock)
                        .after(VideoSystems::Present),
                    build_chain_frame
                        .after(EffectSystems::Clock)
                        .after(EffectSystems::Inputs),
                    end_pulses.after(build_chain_frame),
                    hold_first_frame.before(VideoSystems::Present),
                ),
            );
        if self.tempo == tempo::TempoSource::Sound {
            app.add_systems(
                Update,
                follow_sound_tempo
                    .in_set(EffectSystems::Inputs)
                    .after(SoundSystems::Analyze)
                    .after(EffectSystems::Clock),
            );
        }
        let ready = render::ChainReady::default();
        app.insert_resource(ready.clone());
        render::build(app, errors, ready);
    }
}

/// `--bpm audio`: the tempo the sound's hits keep, beat 0 on the latest hit on the beat,
/// placed on the effect clock (stream time for files; live, the clock's now less how long
/// ago the hit was).
fn follow_sound_tempo(
    sound: Res<ShowSound>,
    clock: Res<EffectClock>,
    mut tempo: ResMut<ShowTempo>,
) {
    let (Some(bpm), Some(at)) = (sound.bpm, sound.beat_at) else {
        return;
    };
    let anchor = if clock.live {
        f64::from(clock.time) - (sound.time - at).max(0.0)
    } else {
        at
    };
    if (tempo.0.bpm - bpm).abs() > 0.05 || (tempo.0.anchor - anchor).abs() > 0.02 {
        tempo.0 = tempo::Tempo { bpm, anchor };
    }
}

fn rescan_effects(
    time: Res<Time<Real>>,
    mut timer: ResMut<RescanTimer>,
    mut catalog: ResMut<EffectCatalog>,
    mut errors: ResMut<EffectErrors>,
) {
    if !timer.0.tick(time.delta()).just_finished() {
        return;
    }
    for change in catalog.rescan() {
        match change {
            CatalogChange::Loaded(name) => {
                info!("effect {name} loaded");
                errors.0.remove(&name);
            }
            CatalogChange::Failed(name) => {
                let Some(entry) = catalog.entries.get(&name) else {
                    continue;
                };
                let Some(e) = &entry.error else { continue };
                let keeps = if entry.def.is_some() {
                    "; the last good version keeps running"
                } else {
                    ""
                };
                warn!("effect {name} does not compile: {e}{keeps}");
                errors.0.insert(name.clone(), e.details());
            }
        }
    }
}

fn collect_render_errors(render: Res<RenderEffectErrors>, mut errors: ResMut<EffectErrors>) {
    let Ok(mut found) = render.0.lock() else {
        return;
    };
    for (name, message) in found.drain(..) {
        warn!("effect {name}: the GPU rejected it: {message}");
        errors.0.insert(name, message);
    }
}

fn read_timings(
    store: Option<Res<bevy::diagnostic::DiagnosticsStore>>,
    frame: Res<ChainFrame>,
    mut timings: ResMut<EffectTimings>,
) {
    let Some(store) = store else { return };
    let span = |name: &str| {
        let value = |end: &str| {
            store
                .get(&bevy::diagnostic::DiagnosticPath::new(format!(
                    "render/{name}/{end}"
                )))
                .and_then(|d| d.average())
        };
        (value("elapsed_gpu"), value("elapsed_cpu"))
    };
    let (video, yuv) = (span("lucid_video"), span("lucid_yuv"));
    let device_pick = |(g, c): (Option<f64>, Option<f64>)| g.or(c);
    timings.video_ms = device_pick(video);
    timings.yuv_ms = device_pick(yuv);
    if frame.passes.is_empty() && frame.master.is_none() {
        timings.chain_ms = None;
        timings.passes.clear();
        timings.gpu = video.0.is_some();
        return;
    }
    let mut chain = (None, None);
    let mut passes: BTreeMap<String, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for d in store.iter() {
        let path = d.path().as_str();
        let Some(rest) = path.strip_prefix("render/lucid_effects/") else {
            continue;
        };
        let (Some(value), gpu) = (d.average(), path.ends_with("/elapsed_gpu")) else {
            continue;
        };
        if !gpu && !path.ends_with("/elapsed_cpu") {
            continue;
        }
        let slot = match rest.strip_prefix("lucid_effect/") {
            Some(pass) => {
                let name = pass.rsplit_once('/').map_or(pass, |(n, _)| n).to_string();
                passes.entry(name).or_default()
            }
            None => &mut chain,
        };
        if gpu {
            slot.0 = Some(value);
        } else {
            slot.1 = Some(value);
        }
    }
    let gpu = chain.0.is_some();
    let pick = |(g, c): (Option<f64>, Option<f64>)| if gpu { g } else { c };
    let live: Vec<String> = frame
        .passes
        .iter()
        .chain(frame.master.iter())
        .enumerate()
        .map(|(i, p)| format!("{i}_{}", p.key))
        .collect();
    *timings = EffectTimings {
        video_ms: pick(video),
        yuv_ms: pick(yuv),
        chain_ms: pick(chain),
        passes: live
            .into_iter()
            .filter_map(|name| {
                let v = passes.get(&name).copied().and_then(pick)?;
                Some((name, v))
            })
            .collect(),
        gpu,
    };
}

fn advance_clock(
    mut ready: MessageReader<StreamReady>,
    mut presented: MessageReader<FramePresented>,
    mut clock: ResMut<EffectClock>,
) {
    if let Some(ready) = ready.read().last() {
        clock.live = ready.info.live;
    }
    if let Some(frame) = presented.read().last() {
        clock.frame = frame.number as u32;
        let time = if clock.live {
            clock.start.elapsed().as_secs_f32()
        } else {
            frame.pts.as_secs_f32()
        };
        clock.delta = if clock.frame == 0 {
            0.0
        } else {
            (time - clock.time).max(0.0)
        };
        clock.time = time;
        let now = jiff::Zoned::now();
        let midnight = now.start_of_day().map_or(0.0, |m| {
            (now.timestamp().as_millisecond() - m.timestamp().as_millisecond()) as f32 / 1000.0
        });
        clock.date = [
            f32::from(now.year()),
            f32::from(now.month()),
            f32::from(now.day()),
            midnight,
        ];
    }
}

/// Turns a chain of [`EffectInstance`](chain::EffectInstance)s into this frame's passes:
/// the master chain here, and each compositor layer's own chain.
#[derive(bevy::ecs::system::SystemParam)]
pub struct ChainPasses<'w> {
    catalog: Res<'w, EffectCatalog>,
    clock: Res<'w, EffectClock>,
    tempo: Res<'w, ShowTempo>,
    sound: Option<Res<'w, ShowSound>>,
    shaders: ResMut<'w, EffectShaders>,
    assets: ResMut<'w, Assets<Shader>>,
}

impl ChainPasses<'_> {
    /// The globals block for a pass over a `size` picture at `mix`.
    fn globals(&self, size: UVec2, mix: f32, layer: bool) -> [u8; definition::GLOBALS_BYTES] {
        pack_globals(&Globals {
            resolution: size.as_vec2().to_array(),
            time: self.clock.time,
            frame: self.clock.frame,
            mix,
            bpm: self.tempo.0.bpm as f32,
            beat: self.tempo.0.beat(f64::from(self.clock.time)) as f32,
            layer,
            audio_bands: self.sound.as_ref().map_or([0.0; 4], |s| s.bands),
            audio_level: self.sound.as_ref().map_or(0.0, |s| s.level),
            audio_onset: self.sound.as_ref().map_or(0.0, |s| s.pulse),
            time_delta: self.clock.delta,
            date: self.clock.date,
        })
    }

    /// The passes of `effects` over a `size` picture (disabled, silent and unknown effects
    /// left out), and whether one of them reads the previous output. `layer`: a compositor
    /// layer's chain, whose results keep their alpha.
    pub fn build(
        &mut self,
        effects: &[chain::EffectInstance],
        size: UVec2,
        layer: bool,
    ) -> (Vec<PassFrame>, bool) {
        let mut passes = Vec::new();
        let mut keep_output = false;
        for inst in effects.iter().filter(|e| e.enabled && e.mix > 0.0) {
            let Some(def) = self.catalog.get(&inst.effect) else {
                continue;
            };
            // The same version keeps its shader (and so its pipeline); a new one compiles.
            let handle = match self.shaders.by_name.get(&inst.effect) {
                Some((d, h)) if Arc::ptr_eq(d, &def) => h.clone(),
                _ => self
                    .assets
                    .add(Shader::from_wgsl(def.wgsl.clone(), def.origin.clone())),
            };
            self.shaders
                .by_name
                .insert(inst.effect.clone(), (def.clone(), handle.clone()));
            keep_output |= def.uses_previous;
            let isf = def
                .passes
                .as_ref()
                .map(|multi| self.isf_frame(inst, &def, multi, size, layer));
            passes.push(PassFrame {
                key: inst.effect.clone(),
                shader: handle,
                globals: self.globals(size, inst.mix, layer),
                params: def.pack(|name| inst.value(&def, name)),
                isf,
            });
        }
        (passes, keep_output)
    }

    /// A multi-pass ISF effect's passes over a `size` picture: each pass's shader, size
    /// (its `WIDTH`/`HEIGHT`, which may use the inputs) and globals.
    fn isf_frame(
        &mut self,
        inst: &chain::EffectInstance,
        def: &Arc<EffectDef>,
        multi: &passes::Passes,
        size: UVec2,
        layer: bool,
    ) -> render::IsfFrame {
        let param = |name: &str| match inst.value(def, name) {
            Some(definition::ParamValue::Float(f)) => Some(f64::from(f)),
            Some(definition::ParamValue::Bool(b)) => Some(f64::from(u8::from(b))),
            _ => None,
        };
        let canvas = (size.x, size.y);
        let passes = multi
            .passes
            .iter()
            .enumerate()
            .map(|(i, pass)| {
                let pass_size = UVec2::new(
                    passes::SizeExpr::pixels(pass.width.as_ref(), canvas, size.x, &param),
                    passes::SizeExpr::pixels(pass.height.as_ref(), canvas, size.y, &param),
                );
                let key = (inst.effect.clone(), i);
                let shader = match self.shaders.by_pass.get(&key) {
                    Some((d, h)) if Arc::ptr_eq(d, def) => h.clone(),
                    _ => self.assets.add(Shader::from_wgsl(
                        pass.wgsl.clone(),
                        format!("{}#{i}", def.origin),
                    )),
                };
                self.shaders
                    .by_pass
                    .insert(key, (def.clone(), shader.clone()));
                render::SubPassFrame {
                    shader,
                    globals: self.globals(pass_size, inst.mix, layer),
                    out_globals: self.globals(size, inst.mix, layer),
                    size: pass_size,
                    target: pass.target,
                }
            })
            .collect();
        render::IsfFrame {
            passes,
            float: multi.targets.iter().map(|t| t.float).collect(),
            imported: multi.imported.clone(),
        }
    }

    /// The sound's spectrum as the renderer takes it (a byte a bin); empty when it has not
    /// changed since the last frame (or there is no sound), so the texture is left as is.
    fn spectrum(&self) -> Vec<u8> {
        match &self.sound {
            Some(s) if s.is_changed() => s
                .spectrum
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The blackout/fade pass at `level` over a `size` canvas.
    fn master(&mut self, level: f32, size: UVec2) -> PassFrame {
        let globals = self.globals(size, 1.0, false);
        let (def, handle) = self.shaders.master.get_or_insert_with(|| {
            let def = Arc::new(
                EffectDef::parse("lucid_master", "builtin:lucid_master", None, MASTER)
                    .expect("the master shader is valid"),
            );
            let handle = self
                .assets
                .add(Shader::from_wgsl(def.wgsl.clone(), def.origin.clone()));
            (def, handle)
        });
        PassFrame {
            key: "lucid_master".into(),
            shader: handle.clone(),
            globals,
            params: def.pack(|_| Some(definition::ParamValue::Float(level.max(0.0)))),
            isf: None,
        }
    }
}

/// How long the first frame waits for the chain's pipelines (a shader compiling cold on a
/// CPU renderer takes seconds; a pipeline that never builds must not hold the show).
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(15);

/// Holds the first frame until every effect in the chain can run.
fn hold_first_frame(
    ready: Res<render::ChainReady>,
    chain: Res<EffectChain>,
    pacing: Option<ResMut<Pacing>>,
    mut since: Local<Option<Instant>>,
) {
    let Some(mut pacing) = pacing else { return };
    let started = *since.get_or_insert_with(Instant::now);
    let waiting = !chain.effects.is_empty()
        && !ready.0.load(std::sync::atomic::Ordering::Relaxed)
        && started.elapsed() < FIRST_FRAME_WAIT;
    if pacing.effects_waiting != waiting {
        pacing.effects_waiting = waiting;
    }
}

/// ISF `event` inputs are pulses: true for the one frame drawn after they were set, then
/// false again (in the master chain).
fn end_pulses(
    mut presented: MessageReader<FramePresented>,
    mut chain: ResMut<EffectChain>,
    catalog: Res<EffectCatalog>,
) {
    if presented.read().count() == 0 {
        return;
    }
    let on = definition::ParamValue::Bool(true);
    let mut fired = Vec::new();
    for (i, inst) in chain.effects.iter().enumerate() {
        let Some(def) = catalog.get(&inst.effect) else {
            continue;
        };
        for name in def
            .pulses
            .iter()
            .filter(|n| inst.params.get(*n) == Some(&on))
        {
            fired.push((i, name.clone()));
        }
    }
    for (i, name) in fired {
        chain.effects[i]
            .params
            .insert(name, definition::ParamValue::Bool(false));
    }
}

fn build_chain_frame(
    chain: Res<EffectChain>,
    master: Res<MasterLevel>,
    canvas: Option<Res<OutputCanvas>>,
    mut passes: ChainPasses,
    mut frame: ResMut<ChainFrame>,
) {
    let Some(canvas) = canvas else { return };
    let (chain_passes, keep_output) = passes.build(&chain.effects, canvas.size, false);
    let spectrum = passes.spectrum();
    *frame = ChainFrame {
        passes: chain_passes,
        keep_output,
        master: (master.shown() < 1.0).then(|| passes.master(master.shown(), canvas.size)),
        spectrum,
    };
}
