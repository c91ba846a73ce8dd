//! The video stage on the Bevy side: takes decoded frames from the queue at their
//! presentation time, uploads them into textures that persist across frames, and draws
//! them letterboxed onto the output canvas, the offscreen image every output reads.

pub mod clock;
pub mod pass;
pub mod render;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat, TextureUsages};
use bevy::render::renderer::RenderDevice;
use crossbeam_channel::Receiver;
use tracing::{info, warn};

use crate::decode::{
    DecodeThread, FrameReceiver, Picture, SourceEnd, StreamInfo, VideoFrame, frame::chroma_size,
};
use crate::lifecycle::Lifecycle;
use crate::source::hls::LiveEdge;
use clock::{LatencyPolicy, PresentationClock};
use render::{CANVAS_FORMAT, CANVAS_RAW_FORMAT, CanvasFrame, CanvasReaders, video_params};

/// System sets other plugins order themselves against.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum VideoSystems {
    /// Picks the due frame, uploads it and sends [`FramePresented`].
    Present,
}

/// Sent in the frame a new video frame is uploaded, so outputs capture exactly the rendered
/// frames that carry new video (one output frame per presented input frame).
#[derive(Message, Debug, Clone, Copy)]
pub struct FramePresented {
    /// Count of presented frames, from 0, without gaps.
    pub number: u64,
    /// The frame's presentation time in stream time.
    pub pts: Duration,
}

/// The offscreen image the video (and later the effect chain) is rendered into, at the
/// configured output size. Recording, piping and the window all read this one image.
#[derive(Resource, Debug, Clone)]
pub struct OutputCanvas {
    /// The render target.
    pub image: Handle<Image>,
    /// Its size in pixels.
    pub size: UVec2,
}

/// Where decoded frames and the end-of-stream message come from.
#[derive(Resource)]
pub struct VideoFeed {
    frames: FrameReceiver,
    end: Receiver<SourceEnd>,
    ended: Option<SourceEnd>,
    /// Last: dropped after the queue, so a thread blocked on it can end.
    _thread: crate::decode::DecodeJoin,
}

impl VideoFeed {
    /// Frames the decode thread dropped because presentation did not keep up.
    pub fn dropped(&self) -> u64 {
        self.frames.dropped()
    }
}

/// What the stream is, as the decode thread described it when it opened.
#[derive(Resource, Debug, Clone)]
pub struct StreamDescription(pub StreamInfo);

/// The textures the current frame lives in. Replaced only when the resolution changes.
#[derive(Resource, Debug)]
pub struct VideoTexture {
    /// Luma texture (R8Unorm).
    pub y: Handle<Image>,
    /// Cb texture (R8Unorm).
    pub u: Handle<Image>,
    /// Cr texture (R8Unorm).
    pub v: Handle<Image>,
    /// Size of the video in pixels.
    pub size: UVec2,
    /// The RGBA texture of RGB sources (Rgba8Unorm), made at their first frame.
    pub rgba: Option<Handle<Image>>,
}

/// Freeze frame: while set, frames keep being paced and presented (outputs and effects
/// keep running, live latency stays put) but the picture is not replaced.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct Freeze(pub bool);

/// Asks for one canvas render without a new video frame (a fade moving while the stream
/// is stalled or frozen). Not sent to the outputs: they get one frame per video frame.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct RedrawCanvas(pub bool);

/// Counters for logs and the status line.
#[derive(Resource, Debug, Default)]
pub struct PlaybackStats {
    /// When the first frame was presented.
    pub first_frame_at: Option<Instant>,
    /// Frames presented.
    pub presented: u64,
    /// Frames skipped by the presentation clock (renderer too slow).
    pub skipped: u64,
    /// Times the source stalled and the clock re-anchored.
    pub stalls: u64,
    /// Texture sets created (1 + resolution changes).
    pub texture_allocations: u64,
    /// Latency behind the live edge at the last update (live HLS).
    pub latency: Option<Duration>,
    /// The latency the clock steers toward.
    pub latency_target: Option<Duration>,
    /// Times the clock dropped frames to catch up with the live edge.
    pub catch_ups: u64,
    /// When the last frame was presented.
    pub last_frame_at: Option<Instant>,
    /// Stream time of the first and the last frame presented.
    pub pts_span: Option<(Duration, Duration)>,
}

#[derive(Resource, Default)]
struct Clock(PresentationClock);

/// How frames are paced. Real time (a window, a live source, a pipe, `--realtime`): the
/// clock skips frames the renderer cannot show in time. Offline (a finite input into files
/// only): every frame is shown, as fast as the renderer and the outputs go.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct Pacing {
    /// Rendering offline.
    pub offline: bool,
    /// Set by the outputs while their queues are full: offline rendering waits for them
    /// instead of dropping frames.
    pub outputs_full: bool,
    /// Set by the compositor while a layer's next frames are still being decoded: offline
    /// rendering waits, so every frame composites the same whatever the machine's speed.
    pub layers_waiting: bool,
}

/// The live edge of a live HLS stream, for latency steering.
#[derive(Resource, Default)]
struct LiveEdgeSource(Option<LiveEdge>);

/// When the next video frame is due, for runners that sleep between frames
/// (see [`crate::headless`]). `None` while the decoder has not delivered it yet.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct NextFrameDue(pub Option<Instant>);

/// The stream being opened in the background (connecting, waiting for it to go live).
#[derive(Resource)]
pub struct PendingStream {
    rx: Receiver<crate::Result<DecodeThread>>,
    /// When Lucid started waiting.
    pub since: Instant,
}

/// Sent once, in the update the stream opened and the canvas was created.
#[derive(Message, Debug, Clone)]
pub struct StreamReady {
    /// What the stream is.
    pub info: StreamInfo,
    /// The canvas (output) size chosen for it.
    pub output_size: UVec2,
}

/// Plays the decode thread's frames onto the output canvas. The stream is opened in the
/// background, so the app (and its window, with a waiting slate) runs while the stream
/// is not live yet; the canvas is created when it opens.
pub struct VideoPlugin {
    connection: Mutex<Option<Receiver<crate::Result<DecodeThread>>>>,
    requested: (Option<u32>, Option<u32>),
    latency: Option<Duration>,
    offline: bool,
}

impl VideoPlugin {
    /// `connection` delivers the opened stream (or why it failed); `requested` is the
    /// user's `--width`/`--height`; `latency` overrides the latency target (live HLS);
    /// `offline` asks for offline pacing, which applies if the stream turns out finite.
    pub fn new(
        connection: Receiver<crate::Result<DecodeThread>>,
        requested: (Option<u32>, Option<u32>),
        latency: Option<Duration>,
        offline: bool,
    ) -> Self {
        VideoPlugin {
            connection: Mutex::new(Some(connection)),
            requested,
            latency,
            offline,
        }
    }
}

#[derive(Resource, Clone, Copy)]
struct VideoSettings {
    requested: (Option<u32>, Option<u32>),
    latency: Option<Duration>,
    offline: bool,
}

/// `--fps`, when given: the output's own frame rate.
#[derive(Resource, Clone, Copy, Debug)]
pub struct OutputRate(pub f64);

impl Plugin for VideoPlugin {
    fn build(&self, app: &mut App) {
        let rx = self
            .connection
            .lock()
            .expect("plugin mutex")
            .take()
            .expect("VideoPlugin is added once");
        render::build(app);
        app.add_message::<FramePresented>()
            .add_message::<StreamReady>()
            .insert_resource(PendingStream {
                rx,
                since: Instant::now(),
            })
            .insert_resource(VideoSettings {
                requested: self.requested,
                latency: self.latency,
                offline: self.offline,
            })
            .init_resource::<Clock>()
            .init_resource::<Pacing>()
            .init_resource::<LiveEdgeSource>()
            .init_resource::<NextFrameDue>()
            .init_resource::<PlaybackStats>()
            .init_resource::<Freeze>()
            .init_resource::<RedrawCanvas>()
            .add_systems(
                Update,
                (
                    attach_stream.run_if(resource_exists::<PendingStream>),
                    present_due_frame.in_set(VideoSystems::Present),
                    watch_source_end,
                )
                    .chain(),
            );
    }
}

/// Takes the opened stream: feed, clock, canvas and textures, then announces it.
#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn attach_stream(
    mut commands: Commands,
    pending: Res<PendingStream>,
    settings: Res<VideoSettings>,
    lifecycle: Res<Lifecycle>,
    device: Res<RenderDevice>,
    mut images: ResMut<Assets<Image>>,
    mut canvas_frame: ResMut<CanvasFrame>,
    readers: Option<Res<CanvasReaders>>,
    mut ready: MessageWriter<StreamReady>,
    rate: Option<Res<OutputRate>>,
) {
    let decode = match pending.rx.try_recv() {
        Ok(Ok(decode)) => decode,
        Ok(Err(e)) => {
            commands.remove_resource::<PendingStream>();
            if !e.is_stop() {
                lifecycle.fail(e);
            }
            return;
        }
        Err(crossbeam_channel::TryRecvError::Empty) => return,
        Err(crossbeam_channel::TryRecvError::Disconnected) => {
            // Only a panic ends the opener without an answer, and `Lifecycle::spawn`
            // records that panic as the run's error.
            commands.remove_resource::<PendingStream>();
            lifecycle.request_stop();
            return;
        }
    };
    commands.remove_resource::<PendingStream>();
    let info = decode.info;
    let (w, h) = crate::cli::output_size(
        settings.requested.0,
        settings.requested.1,
        (info.width, info.height),
    );
    let output_size = UVec2::new(w, h);
    // Decode and outputs stay within MAX_TEXTURE_SIDE, which every desktop GPU supports; a
    // GPU with smaller textures gets a clear error instead of a failed texture creation.
    let limit = device.limits().max_texture_dimension_2d;
    if info.width.max(info.height).max(w).max(h) > limit {
        lifecycle.fail(crate::LucidError::Render(format!(
            "this GPU's textures go up to {limit} pixels: the video is {}x{} and the output \
             {w}x{h} (a smaller --width/--height helps the output)",
            info.width, info.height
        )));
        return;
    }
    let policy = info.live_edge.as_ref().map(|_| {
        LatencyPolicy::for_segments(
            info.segment_duration.unwrap_or(Duration::from_secs(2)),
            settings.latency,
        )
    });
    info!(
        "stream {}x{}{}, output {w}x{h}",
        info.width,
        info.height,
        info.frame_rate
            .map(|r| format!(" @ {r:.2} fps"))
            .unwrap_or_default(),
    );
    commands.insert_resource(VideoFeed {
        frames: decode.frames,
        end: decode.end,
        ended: None,
        _thread: decode.handle,
    });
    let offline = settings.offline && !info.live;
    if offline {
        info!(
            "rendering offline: every frame, as fast as the machine allows (--realtime paces it)"
        );
    }
    commands.insert_resource(Pacing {
        offline,
        ..default()
    });
    commands.insert_resource(Clock(if offline {
        PresentationClock::every_frame()
    } else if info.paced_upstream {
        PresentationClock::on_arrival()
    } else {
        PresentationClock::new(policy)
    }));
    commands.insert_resource(LiveEdgeSource(info.live_edge.clone()));
    if let Some(rate) = rate {
        info!("output at {:.2} fps (--fps)", rate.0);
        commands.insert_resource(OutputTicks::new(rate.0));
    }
    commands.insert_resource(StreamDescription(info.clone()));
    setup_canvas(
        &mut commands,
        &mut images,
        &mut canvas_frame,
        UVec2::new(info.width, info.height),
        output_size,
        readers.is_none_or(|r| r.rgba),
    );
    ready.write(StreamReady { info, output_size });
}

/// The size at which `content` fits inside `container` with its aspect ratio kept.
pub fn letterbox(content: UVec2, container: UVec2) -> Vec2 {
    let c = content.max(UVec2::ONE).as_vec2();
    let k = container.as_vec2();
    let scale = (k.x / c.x).min(k.y / c.y);
    c * scale
}

fn plane_image(width: u32, height: u32, fill: u8) -> Image {
    video_image(width, height, TextureFormat::R8Unorm, &[fill])
}

/// A texture the decoded pixels are written into each frame.
pub(crate) fn video_image(width: u32, height: u32, format: TextureFormat, fill: &[u8]) -> Image {
    let mut image = Image::new_fill(
        Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        fill,
        format,
        // Render world only: the pixels move to the GPU instead of being cloned each frame.
        RenderAssetUsages::RENDER_WORLD,
    );
    image.texture_descriptor.usage |= TextureUsages::COPY_DST;
    image
}

/// Y, Cb and Cr textures for a 4:2:0 picture of `size`, filled black.
pub(crate) fn video_planes(
    images: &mut Assets<Image>,
    size: UVec2,
) -> (Handle<Image>, Handle<Image>, Handle<Image>) {
    let (cw, ch) = chroma_size(size.x, size.y);
    (
        images.add(plane_image(size.x, size.y, 16)),
        images.add(plane_image(cw, ch, 128)),
        images.add(plane_image(cw, ch, 128)),
    )
}

fn setup_canvas(
    commands: &mut Commands,
    images: &mut Assets<Image>,
    canvas_frame: &mut CanvasFrame,
    stream: UVec2,
    size: UVec2,
    rgba_read: bool,
) {
    let mut target = Image::new_target_texture(size.x, size.y, CANVAS_FORMAT, None);
    target.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    // The video pass writes, and the YUV pass reads, the encoded bytes (render::CanvasView).
    target.texture_descriptor.view_formats = &[CANVAS_RAW_FORMAT];
    // Nothing on the CPU reads the canvas's initial pixels: the render world takes them.
    target.asset_usage = RenderAssetUsages::RENDER_WORLD;
    let target = images.add(target);
    commands.insert_resource(OutputCanvas {
        image: target.clone(),
        size,
    });

    // The textures exist before the first frame, so the first presented frame is drawn.
    let (y, u, v) = video_planes(images, stream);
    *canvas_frame = CanvasFrame {
        draw: false,
        canvas: Some((target, size)),
        planes: Some([y.clone(), u.clone(), v.clone()]),
        params: video_params(crate::decode::ColorMatrix::Bt709, false),
        rect: letterbox_rect(stream, size),
        rgba_read,
        rgba: None,
    };
    commands.insert_resource(VideoTexture {
        y,
        u,
        v,
        size: stream,
        rgba: None,
    });
    commands.insert_resource(PlaybackStats {
        texture_allocations: 1,
        ..default()
    });
}

/// The rectangle (x, y, width, height) where `content` sits in `container`, letterboxed
/// and centred.
pub fn letterbox_rect(content: UVec2, container: UVec2) -> Vec4 {
    let fitted = letterbox(content, container);
    let offset = (container.as_vec2() - fitted) / 2.0;
    Vec4::new(offset.x, offset.y, fitted.x, fitted.y)
}

/// App updates to run before the first frame is presented. The canvas passes' pipelines
/// and the planes' textures are created in the first frames; a frame presented before they
/// exist would render (and be recorded) black, and the clock would anchor on a frame that
/// took a shader compile to draw.
const WARMUP_UPDATES: u32 = 3;

#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn present_due_frame(
    mut warmup: Local<u32>,
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
    (mut redraw, pacing, ticks): (
        ResMut<RedrawCanvas>,
        Res<Pacing>,
        Option<ResMut<OutputTicks>>,
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
    if pacing.offline && (pacing.outputs_full || pacing.layers_waiting) {
        // Offline, a full output queue waits (nothing may be dropped), and so does a layer
        // still decoding (the frame must composite what it would on any machine).
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
                warn!("more than a segment behind the live edge; dropping frames to catch up");
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
    // Frozen, a frame is dropped: the picture holds while time goes on.
    let shown = due.map(|frame| {
        let pts = frame.pts;
        if !freeze.0 {
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

/// `--fps`: the output clock. Ticks start at the video's first frame and come every
/// `period`; a tick the app was too late for is skipped (not made up), so the output keeps
/// its rate against the wall clock. Offline (files only), ticks run on the video's own
/// time instead ([`OutputTicks::offline_tick`]): every tick is rendered, none missed.
#[derive(Resource, Debug)]
pub struct OutputTicks {
    /// Time between output frames.
    pub period: Duration,
    /// When the first tick was (the video's first frame).
    start: Option<Instant>,
    /// The video's first frame's timestamp: output timestamps count from it.
    first_pts: Option<Duration>,
    /// The next tick's number.
    next: u64,
    /// Ticks skipped because the app came too late for them.
    pub missed: u64,
    /// Offline: the video's next frame, decoded but not yet due.
    held: Option<VideoFrame>,
    /// Offline: the newest frame due by the next tick, shown once that tick is complete.
    due: Option<VideoFrame>,
}

impl OutputTicks {
    /// An output clock at `fps` frames a second.
    pub fn new(fps: f64) -> OutputTicks {
        OutputTicks {
            period: Duration::from_secs_f64(1.0 / fps),
            start: None,
            first_pts: None,
            next: 0,
            missed: 0,
            held: None,
            due: None,
        }
    }

    /// Output frames a second.
    pub fn fps(&self) -> f64 {
        1.0 / self.period.as_secs_f64()
    }

    /// True while a decoded video frame waits for its tick (offline).
    pub fn holds_frame(&self) -> bool {
        self.held.is_some() || self.due.is_some()
    }

    /// Offline: the next tick's output time, once the video's frames due by then are known
    /// (the first one after it is decoded), with the newest of them (older ones due in the
    /// same tick would only be overwritten). `None` while the decoder has not caught up,
    /// and once the video `ended` and its last frame was shown: the last tick is the one
    /// that shows the last frame.
    pub fn offline_tick(
        &mut self,
        frames: &Receiver<VideoFrame>,
        ended: bool,
    ) -> Option<(Duration, Option<VideoFrame>)> {
        loop {
            if self.held.is_none() {
                self.held = frames.try_recv().ok();
            }
            let Some(frame) = &self.held else {
                // Wait for the decoder; at the end, the frames shown close the last tick.
                if ended && self.due.is_some() {
                    break;
                }
                return None;
            };
            let first = *self.first_pts.get_or_insert(frame.pts);
            let due = first + self.period.mul_f64(self.next as f64);
            // A microsecond's grace: 25 fps frames land exactly on 30 fps ticks at times.
            if frame.pts > due + Duration::from_micros(1) {
                break;
            }
            self.due = self.held.take();
        }
        let pts = self.first_pts? + self.period.mul_f64(self.next as f64);
        self.next += 1;
        Some((pts, self.due.take()))
    }

    /// When the next tick is due (`None` before the video's first frame).
    pub fn next_due(&self) -> Option<Instant> {
        Some(self.start? + self.period.mul_f64(self.next as f64))
    }

    /// The number of the tick due at `now`, if one is; ticks passed meanwhile are missed.
    fn due(&mut self, now: Instant) -> Option<u64> {
        let start = self.start?;
        if now < self.next_due()? {
            return None;
        }
        let elapsed = now.duration_since(start).as_secs_f64();
        let current = (elapsed / self.period.as_secs_f64()).floor() as u64;
        self.missed += current.saturating_sub(self.next);
        self.next = current + 1;
        Some(current)
    }
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

fn watch_source_end(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_keeps_aspect_ratio() {
        assert_eq!(
            letterbox(UVec2::new(1280, 720), UVec2::new(640, 360)),
            Vec2::new(640.0, 360.0)
        );
        assert_eq!(
            letterbox(UVec2::new(1280, 720), UVec2::new(400, 400)),
            Vec2::new(400.0, 225.0)
        );
        assert_eq!(
            letterbox(UVec2::new(720, 1280), UVec2::new(640, 360)),
            Vec2::new(202.5, 360.0)
        );
    }

    fn frame_at(index: u64, ms: u64) -> VideoFrame {
        VideoFrame {
            index,
            pts: Duration::from_millis(ms),
            width: 2,
            height: 2,
            picture: Picture::Rgba(vec![0; 16]),
        }
    }

    /// One offline tick: its time and the index of the frame it shows.
    fn tick(
        ticks: &mut OutputTicks,
        rx: &Receiver<VideoFrame>,
        ended: bool,
    ) -> Option<(Duration, Option<u64>)> {
        ticks
            .offline_tick(rx, ended)
            .map(|(pts, frame)| (pts, frame.map(|f| f.index)))
    }

    #[test]
    fn offline_ticks_show_each_frame_on_the_tick_it_falls_due() {
        // 50 frames at 25 fps, ticked at 30: the decoder has them all queued.
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut ticks = OutputTicks::new(30.0);
        // Nothing decoded yet: no tick.
        assert_eq!(tick(&mut ticks, &rx, false), None);
        for n in 0..50 {
            tx.send(frame_at(n, 1000 + n * 40)).unwrap();
        }
        let mut pts = Vec::new();
        let mut shown_at = Vec::new();
        while let Some((t, shown)) = tick(&mut ticks, &rx, true) {
            if let Some(index) = shown {
                shown_at.push((index, pts.len()));
            }
            pts.push(t);
        }
        // Two seconds of video at 30 fps: 60 ticks, the last one shows the last frame.
        assert_eq!(pts.len(), 60, "{pts:?}");
        assert_eq!(pts[0], Duration::from_millis(1000));
        assert!(!ticks.holds_frame());
        // Every frame shown once, in order, on the first tick at or after its time.
        assert_eq!(shown_at.len(), 50);
        for (i, (index, tick)) in shown_at.iter().enumerate() {
            assert_eq!(*index, i as u64);
            let due = (*index as f64 * 0.040 * 30.0 - 1e-6).ceil() as usize;
            assert_eq!(*tick, due, "frame {index}");
        }
    }

    #[test]
    fn offline_ticks_wait_for_the_decoder_and_show_the_newest_due() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut ticks = OutputTicks::new(10.0);
        tx.send(frame_at(0, 0)).unwrap();
        // Frame 0 is shown at tick 0, but whether tick 0 is complete needs the next frame.
        assert_eq!(tick(&mut ticks, &rx, false), None);
        tx.send(frame_at(1, 250)).unwrap();
        assert_eq!(
            tick(&mut ticks, &rx, false),
            Some((Duration::ZERO, Some(0)))
        );
        // 100 and 200 ms: the held frame (250) is not due yet; the picture holds.
        assert_eq!(
            tick(&mut ticks, &rx, false),
            Some((Duration::from_millis(100), None))
        );
        assert_eq!(
            tick(&mut ticks, &rx, false),
            Some((Duration::from_millis(200), None))
        );
        assert!(ticks.holds_frame());
        // 260 and 280 ms fall due at 300 with 250: the newest of the three is shown.
        tx.send(frame_at(2, 260)).unwrap();
        tx.send(frame_at(3, 280)).unwrap();
        assert_eq!(
            tick(&mut ticks, &rx, true),
            Some((Duration::from_millis(300), Some(3)))
        );
        assert_eq!(tick(&mut ticks, &rx, true), None, "the end");
    }
}
