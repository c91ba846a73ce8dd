//! Each presented frame: every layer shows its newest due frame (uploaded into its own
//! textures), ends as it was told to, and reports its pass time; X moves the crossfader.

use bevy::prelude::*;
use bevy::render::render_resource::TextureFormat;
use tracing::{info, warn};

use super::*;
use crate::compositor::AtEnd;
use crate::compositor::render::{LayerDraw, LayerDraws, TransitionDraw};
use crate::decode::SourceEnd;
use crate::decode::frame::{Picture, VideoFrame};
use crate::effects::ChainPasses;
use crate::lifecycle::Lifecycle;
use crate::video::render::video_params;
use crate::video::{FramePresented, OutputCanvas};

/// On each presented video frame, every layer shows its newest due frame.
#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
pub(super) fn advance_layers(
    mut presented: MessageReader<FramePresented>,
    mut layers: ResMut<Layers>,
    mut images: ResMut<Assets<Image>>,
    mut draws: ResMut<LayerDraws>,
    canvas: Option<Res<OutputCanvas>>,
    mut last: Local<f64>,
    mut fader: ResMut<Fader>,
    mut chains: ChainPasses,
    (transition, mut transition_draw): (Option<Res<FaderTransition>>, ResMut<TransitionDraw>),
) {
    let Some(canvas) = canvas else { return };
    let Some(tick) = presented.read().last().copied() else {
        return;
    };
    // The video's stream time since its first frame, and the step since the last tick.
    let first = *layers.origin.get_or_insert(tick.pts);
    let now = tick.pts.saturating_sub(first).as_secs_f64();
    let step = (now - *last).max(0.0);
    *last = now;
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
        // With a transition, each side is drawn whole and the transition mixes them.
        let weight = match transition {
            Some(_) => 1.0,
            None => fader.0.weight(layer.spec.bus),
        };
        let opacity = layer.opacity * layer.fade * weight;
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
            bus: if transition.is_some() {
                layer.spec.bus
            } else {
                crate::compositor::Bus::Both
            },
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
    transition_draw.0 = transition.and_then(|t| {
        let mut inst = t.0.clone();
        // `progress` is the crossfader's position after its curve.
        inst.params.insert(
            "progress".into(),
            crate::effects::definition::ParamValue::Float(
                fader.0.weight(crate::compositor::Bus::B),
            ),
        );
        chains
            .build(std::slice::from_ref(&inst), canvas.size, false)
            .0
            .into_iter()
            .next()
    });
}

/// Each layer's pass time, from Bevy's render diagnostics (present with `--stats-json`, a
/// window or effects): GPU timestamps where the device has them, else CPU time.
pub(super) fn read_timings(
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
pub(super) fn crossfade_key(
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
pub(super) fn newest_due(layer: &mut Layer, now: f64) -> Option<VideoFrame> {
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

pub(super) fn finished(
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
            layer.opening = Some(open(index, layer, opening, lifecycle));
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

pub(super) fn end_words(at_end: AtEnd) -> &'static str {
    match at_end {
        AtEnd::Hold => "holding its last frame",
        AtEnd::Fade => "fading it out",
    }
}

pub(super) fn upload(layer: &mut Layer, frame: VideoFrame, images: &mut Assets<Image>) {
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
