//! The main-world half of the compositor: each `--layer` opens its own source (its own
//! source and decode threads, as `--url` does) in the background, keeps its own clock, and
//! on every presented frame of the `--url` video shows its newest due frame. A layer whose
//! source ends loops (`loop=true`), holds its last frame, or fades out (`end=fade`); one
//! that fails does the same and says why; the show goes on either way.
//!
//! Clock: a layer's timestamps are aligned on the video's stream time when its first frame
//! is shown, so two files composite the same on any machine (offline rendering waits for a
//! layer still decoding) and live layers advance at their own rates.

use std::time::Duration;

use bevy::prelude::*;
use bevy::render::render_resource::TextureFormat;
use crossbeam_channel::{Receiver, TryRecvError, bounded};
use tracing::{info, warn};

use super::render::{LayerDraw, LayerDraws};
use super::{AtEnd, Crossfader, LayerSpec};
use crate::decode::frame::{Picture, VideoFrame};
use crate::decode::{DecodeOptions, DecodeThread, SourceEnd};
use crate::effects::chain::EffectInstance;
use crate::effects::{ChainPasses, EffectSystems};
use crate::error::Result;
use crate::lifecycle::Lifecycle;
use crate::source::{Protocol, SourceSpec};
use crate::video::render::video_params;
use crate::video::{
    FramePresented, OutputCanvas, OutputTicks, Pacing, PlaybackStats, StreamDescription,
    VideoSystems,
};

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
}

#[derive(Resource, Clone)]
struct LayerOpening {
    options: DecodeOptions,
    protocol: Protocol,
}

impl Plugin for LayersPlugin {
    fn build(&self, app: &mut App) {
        super::render::build(app);
        let layers = self.specs.iter().map(Layer::new).collect();
        app.insert_resource(Layers {
            layers,
            ..default()
        })
        .insert_resource(Fader(self.fader))
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
                    .after(EffectSystems::Clock),
                crossfade_key,
                read_timings,
            ),
        );
    }
}

fn open_layers(mut layers: ResMut<Layers>, opening: Res<LayerOpening>, lifecycle: Res<Lifecycle>) {
    for (i, layer) in layers.layers.iter_mut().enumerate() {
        layer.opening = Some(open(i, &layer.spec, &opening, &lifecycle));
    }
}

/// Opens a layer's source on a thread of its own (connecting can take seconds).
fn open(
    index: usize,
    spec: &LayerSpec,
    opening: &LayerOpening,
    lifecycle: &Lifecycle,
) -> Receiver<Result<DecodeThread>> {
    let (tx, rx) = bounded(1);
    let (source, options, protocol) = (
        spec.source.clone(),
        opening.options.clone(),
        opening.protocol,
    );
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
            LayerRequest::Add(spec) => {
                let mut layer = Layer::new(&spec);
                layer.opening = Some(open(layers.layers.len(), &spec, &opening, &lifecycle));
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

/// Offline, the video waits for a layer that is opening or has not decoded its next frame,
/// so what each frame composites does not depend on the machine's speed.
fn hold_offline(layers: Res<Layers>, pacing: Option<ResMut<Pacing>>) {
    let Some(mut pacing) = pacing else { return };
    let waiting = pacing.offline
        && layers.layers.iter().any(|l| match l.state {
            // Opening, or opening again to loop.
            _ if l.opening.is_some() => true,
            LayerState::Connecting => true,
            LayerState::Playing => {
                l.pending.is_none()
                    && l.decode
                        .as_ref()
                        .is_some_and(|d| d.frames.rx.is_empty() && d.end.is_empty())
            }
            LayerState::Stalled | LayerState::Ended | LayerState::Failed => false,
        });
    if pacing.layers_waiting != waiting {
        pacing.layers_waiting = waiting;
    }
}

/// In a window, a show with layers runs at the display's refresh rate (without `--fps`):
/// each layer then shows its frames at its own rate, however the `--url` video's compare.
/// Decided once, before the video opens (its clock starts with the rate); without layers,
/// or where the display does not say its rate (Xvfb), the video's frames keep setting the
/// pace.
fn pick_display_rate(
    mut commands: Commands,
    layers: Res<Layers>,
    rate: Option<Res<crate::video::OutputRate>>,
    opened: Option<Res<StreamDescription>>,
    monitors: Query<&bevy::window::Monitor, With<bevy::window::PrimaryMonitor>>,
    mut decided: Local<bool>,
) {
    if *decided || rate.is_some() || opened.is_some() {
        *decided = true;
        return;
    }
    let Ok(monitor) = monitors.single() else {
        return;
    };
    *decided = true;
    let Some(hz) = monitor
        .refresh_rate_millihertz
        .map(|mhz| f64::from(mhz) / 1000.0)
        .filter(|hz| (1.0..=240.0).contains(hz))
    else {
        return;
    };
    if !layers.is_empty() {
        info!("output at {hz:.2} fps, the display's refresh rate (--fps sets one)");
        commands.insert_resource(crate::video::OutputRate(hz));
    }
}

/// Offline without `--fps`, the output runs at the fastest source's rate: when a layer is
/// faster than the `--url` video, an output clock at the layer's rate is started before
/// the first frame (offline, every layer has opened by then), so each of its frames is
/// shown. Live, the `--url` video keeps setting the pace (layers open after it starts).
fn pick_output_rate(
    mut commands: Commands,
    layers: Res<Layers>,
    pacing: Option<Res<Pacing>>,
    stream: Option<Res<StreamDescription>>,
    ticks: Option<Res<OutputTicks>>,
    stats: Res<PlaybackStats>,
    mut decided: Local<bool>,
) {
    let (Some(pacing), Some(stream)) = (pacing, stream) else {
        return;
    };
    if *decided || !pacing.offline || pacing.layers_waiting || layers.is_empty() {
        return;
    }
    *decided = true;
    if ticks.is_some() || stats.presented > 0 {
        return;
    }
    let Some(video) = stream.0.frame_rate else {
        return;
    };
    let fastest = layers
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Some((i, l.rate?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((i, rate)) = fastest.filter(|(_, rate)| *rate > video + 0.01) {
        info!(
            "output at {rate:.2} fps, layer {}'s rate (the fastest source; --fps sets one)",
            i + 1
        );
        commands.insert_resource(OutputTicks::new(rate));
    }
}

/// On each presented video frame, every layer shows its newest due frame.
#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn advance_layers(
    mut presented: MessageReader<FramePresented>,
    mut layers: ResMut<Layers>,
    mut images: ResMut<Assets<Image>>,
    mut draws: ResMut<LayerDraws>,
    canvas: Option<Res<OutputCanvas>>,
    mut clock: Local<Option<(Duration, f64)>>,
    mut fader: ResMut<Fader>,
    mut chains: ChainPasses,
) {
    let Some(canvas) = canvas else { return };
    let Some(tick) = presented.read().last().copied() else {
        return;
    };
    // The video's stream time since its first frame, and the step since the last tick.
    let (first, last) = *clock.get_or_insert((tick.pts, 0.0));
    let now = tick.pts.saturating_sub(first).as_secs_f64();
    let step = (now - last).max(0.0);
    *clock = Some((first, now));
    // On the video's stream time, like the layers: a timed crossfade renders the same
    // offline as live.
    fader.0.advance(step);
    draws.0.clear();
    layers.now = now;
    for (i, layer) in layers.layers.iter_mut().enumerate() {
        if let Some(frame) = newest_due(layer, now) {
            upload(layer, frame, &mut images);
            layer.shown += 1;
            layer.last_shown = Some(now);
        }
        if matches!(layer.state, LayerState::Ended | LayerState::Failed)
            && layer.spec.at_end == AtEnd::Fade
            && layer.pending.is_none()
        {
            layer.fade = (layer.fade - step as f32 / FADE_OUT.as_secs_f32()).max(0.0);
        }
        let Some(textures) = &layer.textures else {
            continue;
        };
        let opacity = layer.opacity * layer.fade * fader.0.weight(layer.spec.bus);
        if opacity <= 0.0 || layer.muted {
            continue;
        }
        let t = layer.spec.transform;
        let (effects, keep_output) = chains.build(&layer.spec.effects, textures.size, true);
        draws.0.push(LayerDraw {
            size: textures.size,
            effects,
            keep_output,
            number: i + 1,
            planes: textures.planes.clone(),
            rgba: textures.rgba.clone(),
            video: textures.video,
            rect: layer.spec.fit.rect(textures.size, canvas.size),
            mix: Vec4::new(opacity, layer.spec.blend.index() as f32, 0.0, 0.0),
            transform: Vec4::new(
                t.x * canvas.size.x as f32,
                t.y * canvas.size.y as f32,
                t.scale,
                t.rotate.to_radians(),
            ),
        });
    }
}

/// Each layer's pass time, from Bevy's render diagnostics (present with `--stats-json`, a
/// window or effects): GPU timestamps where the device has them, else CPU time.
fn read_timings(
    store: Option<Res<bevy::diagnostic::DiagnosticsStore>>,
    mut layers: ResMut<Layers>,
) {
    let Some(store) = store else { return };
    for (i, layer) in layers.layers.iter_mut().enumerate() {
        let value = |end: &str| {
            store
                .get(&bevy::diagnostic::DiagnosticPath::new(format!(
                    "render/lucid_layer/{}/{end}",
                    i + 1
                )))
                .and_then(|d| d.average())
        };
        layer.pass_ms = value("elapsed_gpu").or_else(|| value("elapsed_cpu"));
    }
}

/// X moves the crossfader to the other side over its time.
fn crossfade_key(
    keys: Option<Res<ButtonInput<KeyCode>>>,
    captured: Option<Res<crate::show::KeyboardCaptured>>,
    mut fader: ResMut<Fader>,
) {
    let Some(keys) = keys else { return };
    if captured.is_some_and(|c| c.0) || !keys.just_pressed(KeyCode::KeyX) {
        return;
    }
    fader.0.go_other_side();
    info!(
        "crossfading to {} over {:.1} s",
        if fader.0.target > 0.5 { "B" } else { "A" },
        fader.0.seconds
    );
}

/// Takes the layer's frames that are due at `now` (the video's stream time); returns the
/// newest, keeping the first one not yet due.
fn newest_due(layer: &mut Layer, now: f64) -> Option<VideoFrame> {
    let mut newest = None;
    loop {
        let next = layer
            .pending
            .take()
            .or_else(|| layer.decode.as_ref()?.frames.rx.try_recv().ok());
        let Some(frame) = next else { break };
        let pts = frame.pts.as_secs_f64();
        let offset = *layer.offset.get_or_insert(now - pts + layer.buffer);
        if pts + offset <= now + 1e-6 {
            newest = Some(frame);
        } else {
            layer.pending = Some(frame);
            break;
        }
    }
    newest
}

fn finished(
    index: usize,
    layer: &mut Layer,
    end: SourceEnd,
    opening: &LayerOpening,
    lifecycle: &Lifecycle,
) {
    // Frames still queued are shown first; the end is acted on once they are out.
    layer.decode = None;
    match end {
        SourceEnd::Finished if layer.spec.looped && !lifecycle.stopping() => {
            layer.loops += 1;
            layer.offset = None;
            layer.opening = Some(open(index, &layer.spec, opening, lifecycle));
        }
        SourceEnd::Finished => {
            info!(
                "layer {}: ended; {}",
                index + 1,
                end_words(layer.spec.at_end)
            );
            layer.state = LayerState::Ended;
        }
        SourceEnd::Failed(e) => {
            warn!("layer {}: {e}; {}", index + 1, end_words(layer.spec.at_end));
            layer.error = Some(e.to_string());
            layer.state = LayerState::Failed;
        }
    }
}

fn end_words(at_end: AtEnd) -> &'static str {
    match at_end {
        AtEnd::Hold => "holding its last frame",
        AtEnd::Fade => "fading it out",
    }
}

fn upload(layer: &mut Layer, frame: VideoFrame, images: &mut Assets<Image>) {
    let size = UVec2::new(frame.width, frame.height);
    let textures = match &mut layer.textures {
        Some(t) if t.size == size => t,
        slot => {
            let (y, u, v) = crate::video::video_planes(images, size);
            slot.insert(LayerTextures {
                planes: [y, u, v],
                rgba: None,
                size,
                video: Vec4::ZERO,
            })
        }
    };
    match frame.picture {
        Picture::Yuv420 {
            y,
            u,
            v,
            matrix,
            full_range,
        } => {
            textures.video = video_params(matrix, full_range);
            textures.rgba = None;
            for (handle, plane) in textures.planes.iter().zip([y, u, v]) {
                if let Some(mut image) = images.get_mut(handle) {
                    image.data = Some(plane);
                }
            }
        }
        Picture::Rgba(pixels) => {
            textures.video = Vec4::new(0.0, 0.0, 1.0, 0.0);
            let handle = textures
                .rgba
                .get_or_insert_with(|| {
                    images.add(crate::video::video_image(
                        size.x,
                        size.y,
                        TextureFormat::Rgba8Unorm,
                        &[0, 0, 0, 0],
                    ))
                })
                .clone();
            if let Some(mut image) = images.get_mut(&handle) {
                image.data = Some(pixels);
            }
        }
    }
}
