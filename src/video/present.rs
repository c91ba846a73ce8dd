//! Presenting: each update picks the due frame (the clock, or the `--fps` tick), uploads
//! it into the textures and tells the rest of the app; and watches for the stream's end.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::render::render_resource::TextureFormat;
use tracing::{info, warn};

use super::canvas::{letterbox_rect, video_image, video_planes};
use super::render::{CanvasFrame, video_params};
use super::ticks::OutputTicks;
use super::{
    Clock, FramePresented, Freeze, LiveEdgeSource, NextFrameDue, OutputCanvas, Pacing,
    PlaybackStats, RedrawCanvas, StreamTime, VideoFeed, VideoTexture,
};
use crate::decode::{Picture, SourceEnd, VideoFrame};
use crate::lifecycle::Lifecycle;
use crate::source::hls::LiveEdge;

/// App updates to run before the first frame is presented. The canvas passes' pipelines
/// and the planes' textures are created in the first frames; a frame presented before they
/// exist would render (and be recorded) black, and the clock would anchor on a frame that
/// took a shader compile to draw.
const WARMUP_UPDATES: u32 = 3;

#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
pub(super) fn present_due_frame(
    mut warmup: Local<u32>,
    mut uploaded_once: Local<bool>,
    lifecycle: Res<Lifecycle>,
    feed: Option<Res<VideoFeed>>,
    edge: Res<LiveEdgeSource>,
    mut clock: ResMut<Clock>,
    mut stats: ResMut<PlaybackStats>,
    texture: Option<ResMut<VideoTexture>>,
    canvas: Option<Res<OutputCanvas>>,
    mut images: ResMut<Assets<Image>>,
    mut canvas_frame: ResMut<CanvasFrame>,
    mut presented: MessageWriter<FramePresented>,
    freeze: Res<Freeze>,
    (mut redraw, pacing, ticks, mut time): (
        ResMut<RedrawCanvas>,
        Res<Pacing>,
        Option<ResMut<OutputTicks>>,
        ResMut<StreamTime>,
    ),
) {
    let (Some(mut texture), Some(canvas), Some(feed)) = (texture, canvas, feed) else {
        return;
    };
    // Warm-up updates render (compiling the pipelines); after that, only new frames do: the
    // canvas keeps its last image in between, and the GPU (or, without one, the CPU running
    // lavapipe) is not asked to redraw an unchanged frame hundreds of times a second.
    let warming = *warmup < WARMUP_UPDATES;
    canvas_frame.draw = warming;
    if lifecycle.stopping() {
        return;
    }
    if warming {
        *warmup += 1;
        return;
    }
    if pacing.effects_waiting && stats.presented == 0 {
        // Drawn, not presented: the render world keeps compiling the chain's pipelines.
        canvas_frame.draw = true;
        return;
    }
    if pacing.offline && (pacing.outputs_full || pacing.layers_waiting || pacing.sound_waiting) {
        // Offline, a full output queue waits (nothing may be dropped), and so does a layer
        // still decoding or sound still on its way (the frame must composite and measure
        // what it would on any machine).
        return;
    }
    let mut ticks = ticks;
    // The video frame due now, and, offline with `--fps`, the tick it is shown at.
    let (due, offline_tick) = match ticks.as_deref_mut() {
        Some(ticks) if pacing.offline => {
            // `--fps` offline: ticks on the video's own time, as fast as the machine allows.
            let ended = feed.ended.is_some() || !feed.end.is_empty();
            let Some((pts, newest)) = ticks.offline_tick(&feed.frames.rx, ended) else {
                return;
            };
            (newest, Some(pts))
        }
        _ => {
            if edge.0.as_ref().is_some_and(LiveEdge::retried) {
                clock.0.edge_load_retried();
            }
            let tick = clock.0.tick(
                Instant::now(),
                &feed.frames.rx,
                edge.0.as_ref().and_then(LiveEdge::now),
            );
            stats.skipped += tick.skipped;
            stats.latency = clock.0.latency();
            stats.latency_target = clock.0.target();
            if tick.catch_up {
                stats.catch_ups += 1;
                warn!(
                    "{:.2} s behind the live edge, target {:.2} s: dropping frames to catch up",
                    stats.latency.unwrap_or_default().as_secs_f64(),
                    stats.latency_target.unwrap_or_default().as_secs_f64()
                );
            }
            if let Some(late) = tick.stall {
                stats.stalls += 1;
                warn!(
                    "source stalled; playback resumes {} ms behind plan",
                    late.as_millis()
                );
            }
            (tick.show, None)
        }
    };
    // Frozen, a frame is dropped: the picture holds while time goes on. A show that starts
    // frozen (a restored `--state`) still takes its first picture, to hold that.
    let shown = due.map(|frame| {
        let pts = time.map(frame.pts);
        if !freeze.0 || !*uploaded_once {
            *uploaded_once = true;
            upload(
                frame,
                &mut texture,
                &mut images,
                &mut canvas_frame,
                canvas.size,
                &mut stats,
            );
        }
        pts
    });
    let pts = match (offline_tick, ticks) {
        (Some(pts), _) => Some(pts),
        // `--fps`: the video's frames are uploaded as they come due; the canvas is drawn
        // and the outputs get a frame on the output clock's ticks.
        (None, Some(mut ticks)) => {
            if let Some(pts) = shown {
                ticks.first_pts.get_or_insert(pts);
                ticks.start.get_or_insert_with(Instant::now);
            }
            ticks.due(Instant::now()).map(|number| {
                ticks.first_pts.unwrap_or_default() + ticks.period.mul_f64(number as f64)
            })
        }
        (None, None) => shown,
    };
    let Some(pts) = pts else {
        canvas_frame.draw = std::mem::take(&mut redraw.0);
        return;
    };
    redraw.0 = false;
    canvas_frame.draw = true;
    present(&mut stats, &mut presented, pts);
}

/// Counts a presented output frame and tells the outputs, effects and layers.
fn present(
    stats: &mut PlaybackStats,
    presented: &mut MessageWriter<FramePresented>,
    pts: Duration,
) {
    let number = stats.presented;
    stats.presented += 1;
    stats.first_frame_at.get_or_insert_with(Instant::now);
    stats.last_frame_at = Some(Instant::now());
    let first_pts = stats.pts_span.map_or(pts, |(first, _)| first);
    stats.pts_span = Some((first_pts, pts));
    presented.write(FramePresented { number, pts });
}

/// Moves the frame's planes into the existing textures; only a new resolution allocates.
fn upload(
    frame: VideoFrame,
    texture: &mut VideoTexture,
    images: &mut Assets<Image>,
    canvas_frame: &mut CanvasFrame,
    canvas: UVec2,
    stats: &mut PlaybackStats,
) {
    let size = UVec2::new(frame.width, frame.height);
    if size != texture.size {
        info!(
            "video size changed {}x{} -> {}x{}; resizing textures",
            texture.size.x, texture.size.y, size.x, size.y
        );
        let (y, u, v) = video_planes(images, size);
        texture.y = y;
        texture.u = u;
        texture.v = v;
        texture.size = size;
        texture.rgba = None;
        stats.texture_allocations += 1;
        canvas_frame.planes = Some([texture.y.clone(), texture.u.clone(), texture.v.clone()]);
        canvas_frame.rect = letterbox_rect(size, canvas);
    }
    match frame.picture {
        Picture::Yuv420 {
            y,
            u,
            v,
            matrix,
            full_range,
        } => {
            canvas_frame.params = video_params(matrix, full_range);
            canvas_frame.rgba = None;
            for (handle, plane) in [(&texture.y, y), (&texture.u, u), (&texture.v, v)] {
                if let Some(mut image) = images.get_mut(handle) {
                    image.data = Some(plane);
                }
            }
        }
        Picture::Rgba(pixels) => {
            let handle = texture
                .rgba
                .get_or_insert_with(|| {
                    stats.texture_allocations += 1;
                    images.add(video_image(
                        size.x,
                        size.y,
                        TextureFormat::Rgba8Unorm,
                        &[0, 0, 0, 255],
                    ))
                })
                .clone();
            if let Some(mut image) = images.get_mut(&handle) {
                image.data = Some(pixels);
            }
            canvas_frame.rgba = Some(handle);
        }
    }
}

pub(super) fn watch_source_end(
    feed: Option<ResMut<VideoFeed>>,
    clock: Res<Clock>,
    lifecycle: Res<Lifecycle>,
    mut next_due: ResMut<NextFrameDue>,
    pacing: Res<Pacing>,
    ticks: Option<Res<OutputTicks>>,
) {
    let Some(mut feed) = feed else { return };
    next_due.0 = clock.0.next_due();
    if let Some(tick) = ticks.as_ref().and_then(|t| t.next_due()) {
        next_due.0 = Some(next_due.0.map_or(tick, |due| due.min(tick)));
    }
    let holds_frame = ticks.as_ref().is_some_and(|t| t.holds_frame());
    if pacing.offline && !pacing.outputs_full && (!feed.frames.rx.is_empty() || holds_frame) {
        // Offline, the next frame is due as soon as this one is out.
        next_due.0 = Some(Instant::now());
    }
    if feed.ended.is_none()
        && let Ok(end) = feed.end.try_recv()
    {
        feed.ended = Some(end);
    }
    // The end message comes after the last frame was queued; play out the queue first.
    if feed.ended.is_some()
        && feed.frames.rx.is_empty()
        && !clock.0.has_pending()
        && !holds_frame
        && !lifecycle.stopping()
    {
        match feed.ended.take().expect("checked") {
            SourceEnd::Finished => {
                info!("end of stream");
                lifecycle.request_stop();
            }
            SourceEnd::Failed(e) => lifecycle.fail(e),
        }
    }
}
