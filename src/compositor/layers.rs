//! The main-world half of the compositor: each `--layer` opens its own source (its own
//! source and decode threads, as `--url` does) in the background, keeps its own clock, and
//! on every presented frame of the `--url` video shows its newest due frame. A layer whose
//! source ends loops (`loop=true`), holds its last frame, or fades out (`end=fade`); one
//! that fails does the same and says why; the show goes on either way.
//!
//! Clock: a layer's timestamps are aligned on the video's stream time when its first frame
//! is shown, so two files composite the same on any machine (offline rendering waits for a
//! layer still decoding) and live layers advance at their own rates.
//!
//! - this file: the layers' state, opening them and taking requests from the overlay.
//! - [`advance`]: each presented frame, per layer; [`rate`]: who sets the pace;
//!   [`sound`]: a layer's sound as the show's (`--audio-from N`).

mod advance;
mod rate;
mod sound;

use std::time::Duration;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, TryRecvError, bounded};
use tracing::{info, warn};

use super::{Crossfader, LayerSpec, MAX_LAYERS};
use crate::decode::frame::VideoFrame;
use crate::decode::{DecodeOptions, DecodeThread};
use crate::effects::EffectSystems;
use crate::effects::chain::EffectInstance;
use crate::error::Result;
use crate::lifecycle::Lifecycle;
use crate::source::{Protocol, SourceSpec};
use crate::video::VideoSystems;
use advance::{advance_layers, crossfade_key, finished, read_timings};
use rate::{hold_offline, pick_display_rate, pick_output_rate};
use sound::{LayerSound, forward_layer_sound};

/// A live layer plays this much more than one segment behind its first frame's arrival.
const LIVE_MARGIN: Duration = Duration::from_millis(500);

/// How long a layer ending with `end=fade` takes to fade out.
const FADE_OUT: Duration = Duration::from_secs(1);

/// Where a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerState {
    /// Its source is opening.
    Connecting,
    /// Showing its frames.
    Playing,
    /// Open, but no new frame for over a second of video: holding the last one.
    Stalled,
    /// Its source ended: holding the last frame, or faded out.
    Ended,
    /// Its source failed: holding the last frame (or faded out); `error` says why.
    Failed,
    /// Its source is closed on purpose (out of the schedule's hours).
    Closed,
}

/// One layer as the status line and stats JSON show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerReport {
    /// The source, with any credentials masked.
    pub source: String,
    /// Where it is.
    pub state: LayerState,
    /// Frames of it shown.
    pub shown: u64,
    /// Times a looping layer started again.
    pub loops: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// Its pass per frame, milliseconds (GPU timestamps where the device has them).
    pub pass_ms: Option<f64>,
}

/// The layers' textures and state, bottom first (above the `--url` video).
#[derive(Resource, Default)]
pub struct Layers {
    layers: Vec<Layer>,
    /// The video's stream time at the last presented frame, seconds.
    now: f64,
    /// The video's first presented frame's time: `now` counts from it.
    origin: Option<Duration>,
    /// Changes asked for by the overlay, applied before the next frame.
    requests: Vec<LayerRequest>,
}

/// A change to the layer list.
#[derive(Debug, Clone)]
pub enum LayerRequest {
    /// Open this source as a new top layer.
    Add(LayerSpec),
    /// Remove layer `index` (from 0), stopping its source.
    Remove(usize),
    /// Swap layer `index` with the one above it.
    Raise(usize),
    /// Close every layer's source (out of the schedule's hours): no request reaches them.
    CloseSources,
    /// Open every closed layer's source again, as at start.
    ReopenSources,
}

/// How long a playing layer may go without a new frame (in video time) before it counts as
/// stalled.
const STALLED_AFTER: f64 = 1.0;

/// The A/B crossfader, moved by the X key, the overlay, OSC and `--crossfade`.
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct Fader(pub Crossfader);

impl Layers {
    /// How many layers there are.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True without layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Each layer's opacity, bottom first.
    pub fn opacities(&self) -> Vec<f32> {
        self.layers.iter().map(|l| l.opacity).collect()
    }

    /// Sets layer `index`'s opacity (from 0, bottom first); false when there is no such
    /// layer.
    pub fn set_opacity(&mut self, index: usize, opacity: f32) -> bool {
        match self.layers.get_mut(index) {
            Some(layer) => {
                layer.opacity = opacity.clamp(0.0, 1.0);
                true
            }
            None => false,
        }
    }

    /// Each layer's spec with its current opacity and mute, for the overlay and scenes.
    pub fn specs(&self) -> Vec<(LayerSpec, bool)> {
        self.layers
            .iter()
            .map(|l| {
                let mut spec = l.spec.clone();
                spec.opacity = l.opacity;
                (spec, l.muted)
            })
            .collect()
    }

    /// Sets layer `index`'s blend mode.
    pub fn set_blend(&mut self, index: usize, blend: super::BlendMode) {
        if let Some(layer) = self.layers.get_mut(index) {
            layer.spec.blend = blend;
        }
    }

    /// Sets how layer `index` fits the canvas.
    pub fn set_fit(&mut self, index: usize, fit: super::Fit) {
        if let Some(layer) = self.layers.get_mut(index) {
            layer.spec.fit = fit;
        }
    }

    /// Layer `index`'s own effect chain, to edit (from 0, bottom first).
    pub fn effects_mut(&mut self, index: usize) -> Option<&mut Vec<EffectInstance>> {
        self.layers.get_mut(index).map(|l| &mut l.spec.effects)
    }

    /// Mutes or unmutes layer `index`.
    pub fn set_muted(&mut self, index: usize, muted: bool) {
        if let Some(layer) = self.layers.get_mut(index) {
            layer.muted = muted;
        }
    }

    /// Asks for a change to the layer list (applied before the next frame).
    pub fn request(&mut self, request: LayerRequest) {
        self.requests.push(request);
    }

    /// Solo: only layer `index` shows (the others muted); `None` unmutes every layer.
    pub fn solo(&mut self, index: Option<usize>) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.muted = index.is_some_and(|s| s != i);
        }
    }

    /// Each layer's report.
    pub fn reports(&self) -> Vec<LayerReport> {
        self.layers
            .iter()
            .map(|l| LayerReport {
                source: l.shown_name.clone(),
                state: match (l.state, l.last_shown) {
                    (LayerState::Playing, Some(t)) if self.now - t > STALLED_AFTER => {
                        LayerState::Stalled
                    }
                    (state, _) => state,
                },
                shown: l.shown,
                loops: l.loops,
                error: l.error.clone(),
                pass_ms: l.pass_ms,
            })
            .collect()
    }
}

struct Layer {
    spec: LayerSpec,
    /// The opacity now (the spec's, moved by the overlay or OSC).
    opacity: f32,
    /// Hidden by the overlay.
    muted: bool,
    shown_name: String,
    state: LayerState,
    opening: Option<Receiver<Result<DecodeThread>>>,
    decode: Option<DecodeThread>,
    /// The next frame, not yet due.
    pending: Option<VideoFrame>,
    /// Added to the layer's timestamps to put them on the video's stream time.
    offset: Option<f64>,
    /// Its sound is the show's (`--audio-from N`): its source decodes it.
    sound: bool,
    textures: Option<LayerTextures>,
    shown: u64,
    loops: u64,
    error: Option<String>,
    /// 1 while playing; falls to 0 over [`FADE_OUT`] once ended with `end=fade`.
    fade: f32,
    /// Its pass per frame, from the render diagnostics.
    pass_ms: Option<f64>,
    /// The video's stream time when it last showed a new frame.
    last_shown: Option<f64>,
    /// Its source's frame rate, when known.
    rate: Option<f64>,
    /// How far behind its first frame's arrival a layer plays, seconds: a live source's
    /// frames come a segment at a time, and a layer shown as they arrive stalls at each
    /// segment's end and then skips the frames that came late (0 for files).
    buffer: f64,
}

impl Layer {
    fn new(spec: &LayerSpec) -> Layer {
        Layer {
            opacity: spec.opacity,
            muted: false,
            shown_name: crate::redact::Redacted::text(&spec.source).to_string(),
            spec: spec.clone(),
            state: LayerState::Connecting,
            opening: None,
            decode: None,
            pending: None,
            offset: None,
            sound: false,
            textures: None,
            shown: 0,
            loops: 0,
            error: None,
            fade: 1.0,
            pass_ms: None,
            last_shown: None,
            rate: None,
            buffer: 0.0,
        }
    }
}

struct LayerTextures {
    planes: [Handle<Image>; 3],
    rgba: Option<Handle<Image>>,
    size: UVec2,
    video: Vec4,
}

/// Opens the layers and composites them.
pub struct LayersPlugin {
    /// The layers, bottom first.
    pub specs: Vec<LayerSpec>,
    /// How their sources are opened (the same as `--url`'s).
    pub options: DecodeOptions,
    /// `--protocol`.
    pub protocol: Protocol,
    /// The crossfader as it starts.
    pub fader: Crossfader,
    /// The layer whose sound is the show's (`--audio-from N`, 0-based), if one.
    pub sound: Option<usize>,
    /// Open their sources at start; false out of the schedule's hours (they start
    /// closed, and [`LayerRequest::ReopenSources`] opens them).
    pub open_at_start: bool,
    /// `--transition`: the ISF transition the crossfader plays instead of its mix.
    pub transition: Option<crate::effects::chain::EffectInstance>,
}

/// The crossfader's transition (`--transition`), when one is set.
#[derive(Resource, Debug, Clone)]
pub struct FaderTransition(pub crate::effects::chain::EffectInstance);

#[derive(Resource, Clone)]
struct LayerOpening {
    options: DecodeOptions,
    protocol: Protocol,
}

impl Plugin for LayersPlugin {
    fn build(&self, app: &mut App) {
        super::render::build(app);
        if let Some(t) = &self.transition {
            app.insert_resource(FaderTransition(t.clone()));
        }
        let mut layers: Vec<Layer> = self.specs.iter().map(Layer::new).collect();
        if !self.open_at_start {
            for layer in &mut layers {
                layer.state = LayerState::Closed;
            }
        }
        if let Some((i, layer)) = self.sound.and_then(|i| Some((i, layers.get_mut(i)?))) {
            layer.sound = true;
            sound::build(app, i);
        }
        app.insert_resource(Layers {
            layers,
            ..default()
        })
        .insert_resource(Fader(self.fader))
        .insert_resource(crate::compositor::render::TransitionDraw::default())
        .insert_resource(LayerOpening {
            options: self.options.clone(),
            protocol: self.protocol,
        })
        .add_systems(Startup, open_layers)
        .add_systems(PreUpdate, pick_display_rate)
        .add_systems(
            Update,
            (
                apply_requests.before(handle_ends),
                handle_ends.before(take_opened),
                take_opened.before(VideoSystems::Present),
                hold_offline
                    .before(VideoSystems::Present)
                    .after(take_opened),
                pick_output_rate
                    .before(VideoSystems::Present)
                    .after(hold_offline),
                advance_layers
                    .after(VideoSystems::Present)
                    .after(EffectSystems::Clock)
                    .after(EffectSystems::Inputs),
                forward_layer_sound
                    .run_if(resource_exists::<LayerSound>)
                    .after(advance_layers)
                    .after(take_opened),
                crossfade_key,
                read_timings,
            ),
        );
    }
}

fn open_layers(mut layers: ResMut<Layers>, opening: Res<LayerOpening>, lifecycle: Res<Lifecycle>) {
    for (i, layer) in layers.layers.iter_mut().enumerate() {
        if layer.state != LayerState::Closed {
            layer.opening = Some(open(i, layer, &opening, &lifecycle));
        }
    }
}

/// Opens a layer's source on a thread of its own (connecting can take seconds); its sound
/// is decoded when it is the show's.
fn open(
    index: usize,
    layer: &Layer,
    opening: &LayerOpening,
    lifecycle: &Lifecycle,
) -> Receiver<Result<DecodeThread>> {
    let (tx, rx) = bounded(1);
    let (source, protocol) = (layer.spec.source.clone(), opening.protocol);
    let options = DecodeOptions {
        audio: layer.sound,
        ..opening.options.clone()
    };
    let l = lifecycle.clone();
    lifecycle.spawn(&format!("lucid-layer{}-open", index + 1), move || {
        let opened = SourceSpec::resolve(Some(&source), protocol)
            .and_then(|spec| DecodeThread::spawn(&spec, options, &l));
        let _ = tx.send(opened);
    });
    rx
}

/// Applies the overlay's changes: new layers open in the background; a removed layer's
/// decode thread ends when its queue is dropped.
fn apply_requests(
    mut layers: ResMut<Layers>,
    opening: Res<LayerOpening>,
    lifecycle: Res<Lifecycle>,
) {
    for request in std::mem::take(&mut layers.requests) {
        match request {
            LayerRequest::Add(_) if layers.layers.len() >= MAX_LAYERS => {
                warn!("a show holds at most {MAX_LAYERS} layers: remove one to add another");
            }
            LayerRequest::Add(spec) => {
                let mut layer = Layer::new(&spec);
                layer.opening = Some(open(layers.layers.len(), &layer, &opening, &lifecycle));
                info!(
                    "layer {}: {} added",
                    layers.layers.len() + 1,
                    layer.shown_name
                );
                layers.layers.push(layer);
            }
            LayerRequest::Remove(i) if i < layers.layers.len() => {
                let layer = layers.layers.remove(i);
                info!("layer {}: {} removed", i + 1, layer.shown_name);
                // Its decode thread is waited for when dropped (see DecodeJoin): a live
                // source blocked on the network must not hold up the next frame.
                crate::lifecycle::spawn_thread("lucid-layer-remove", move || drop(layer));
            }
            LayerRequest::Raise(i) if i + 1 < layers.layers.len() => layers.layers.swap(i, i + 1),
            LayerRequest::CloseSources => {
                for layer in &mut layers.layers {
                    let (decode, opening) = (layer.decode.take(), layer.opening.take());
                    layer.pending = None;
                    // Hidden until its source shows a new frame: not hours-old pictures.
                    layer.textures = None;
                    layer.state = LayerState::Closed;
                    crate::lifecycle::spawn_thread("lucid-layer-close", move || {
                        drop((decode, opening))
                    });
                }
            }
            LayerRequest::ReopenSources => {
                for i in 0..layers.layers.len() {
                    if layers.layers[i].state != LayerState::Closed {
                        continue;
                    }
                    let layer = &mut layers.layers[i];
                    layer.state = LayerState::Connecting;
                    // Its timestamps start anew: aligned again at its first frame.
                    layer.offset = None;
                    layer.last_shown = None;
                    layer.fade = 1.0;
                    layer.error = None;
                    let rx = open(i, &layers.layers[i], &opening, &lifecycle);
                    layers.layers[i].opening = Some(rx);
                }
            }
            LayerRequest::Remove(_) | LayerRequest::Raise(_) => {}
        }
    }
}

/// Acts on a source's end once every frame before it is out of its queue, before the next
/// frame is presented: a looping layer is opened again at once (and offline rendering
/// waits for its first frame, so the loop is seamless in files).
fn handle_ends(mut layers: ResMut<Layers>, opening: Res<LayerOpening>, lifecycle: Res<Lifecycle>) {
    for (i, layer) in layers.layers.iter_mut().enumerate() {
        if let Some(ended) = layer
            .decode
            .as_ref()
            .filter(|d| d.frames.rx.is_empty() && layer.pending.is_none())
            .and_then(|d| d.end.try_recv().ok())
        {
            finished(i, layer, ended, &opening, &lifecycle);
        }
    }
}

fn take_opened(mut layers: ResMut<Layers>) {
    for (i, layer) in layers.layers.iter_mut().enumerate() {
        let Some(rx) = &layer.opening else { continue };
        match rx.try_recv() {
            Ok(Ok(decode)) => {
                info!(
                    "layer {}: {} {}x{}",
                    i + 1,
                    layer.shown_name,
                    decode.info.width,
                    decode.info.height
                );
                layer.rate = decode.info.frame_rate;
                // The bottom video's default latency target, for the same reason.
                layer.buffer = match (decode.info.live, decode.info.segment_duration) {
                    (true, Some(segment)) => (segment + LIVE_MARGIN).as_secs_f64(),
                    _ => 0.0,
                };
                layer.decode = Some(decode);
                layer.state = LayerState::Playing;
                layer.opening = None;
            }
            Ok(Err(e)) => {
                if !e.is_stop() {
                    warn!("layer {}: {e}; the show goes on without it", i + 1);
                    layer.error = Some(e.to_string());
                    layer.state = LayerState::Failed;
                }
                layer.opening = None;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => layer.opening = None,
        }
    }
}
