//! The video stage on the Bevy side: takes decoded frames from the queue at their
//! presentation time, uploads them into textures that persist across frames, and draws
//! them letterboxed onto the output canvas, the offscreen image every output reads.

//!
//! - this file: the resources other stages read, the plugin, and attaching the opened stream.
//! - [`present`]: picking the due frame, uploading it, the end of the stream.
//! - [`clock`]: the presentation clock (pure logic); [`ticks`]: the `--fps` output clock.
//! - [`canvas`]: sizes and the images the planes and the canvas live in.
//! - [`render`] and [`pass`]: the canvas's render passes (YUV->RGB, letterbox).

pub mod canvas;
pub mod clock;
pub mod pass;
mod present;
pub mod render;
pub mod ticks;

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::render::renderer::RenderDevice;
use crossbeam_channel::Receiver;
use tracing::info;

pub use canvas::{letterbox, letterbox_rect, output_size, video_image, video_planes};
pub use ticks::OutputTicks;

use crate::decode::{DecodeOptions, DecodeThread, FrameReceiver, SourceEnd, StreamInfo};
use crate::lifecycle::Lifecycle;
use crate::source::SourceSpec;
use crate::source::hls::LiveEdge;
use canvas::setup_canvas;
use clock::{LatencyPolicy, PresentationClock};
use present::{present_due_frame, watch_source_end};
use render::{CanvasFrame, CanvasReaders};

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
    /// True when the decode thread cannot hand over another frame until one is shown.
    pub fn queue_full(&self) -> bool {
        self.frames.rx.is_full()
    }

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
    /// Set by the sound while it has not reached past the next frame: offline rendering
    /// waits, so every frame is measured on the same sound whatever the machine's speed.
    pub sound_waiting: bool,
    /// Set by the effects while a chain effect's pipeline is still compiling before the
    /// first frame: that frame waits for it (a recording's first frames carry the chain),
    /// for a bounded time.
    pub effects_waiting: bool,
}

/// The live edge of a live HLS stream, for latency steering.
#[derive(Resource, Default)]
struct LiveEdgeSource(Option<LiveEdge>);

/// When the next video frame is due, for runners that sleep between frames
/// (the headless runner). `None` while the decoder has not delivered it yet.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct NextFrameDue(pub Option<Instant>);

/// The stream being opened in the background (connecting, waiting for it to go live).
#[derive(Resource)]
pub struct PendingStream {
    rx: Receiver<crate::Result<DecodeThread>>,
    /// When Lucid started waiting.
    pub since: Instant,
    /// Opened again after a [`SourceSwitch::Close`] (the schedule's hours began): the
    /// canvas and the outputs are there already.
    pub reopening: bool,
}

/// Opens the bottom source (`--url`, or what Daydream said to play) on a thread of its
/// own: at start, and again when the schedule reopens it.
#[derive(Resource, Clone)]
pub struct SourceConnector {
    spec: SourceSpec,
    options: DecodeOptions,
}

impl SourceConnector {
    /// Opens `spec` with `options` each time [`connect`](Self::connect) is called.
    pub fn new(spec: SourceSpec, options: DecodeOptions) -> Self {
        SourceConnector { spec, options }
    }

    /// Starts opening the source; the receiver gets the decode thread, or why it failed.
    pub fn connect(&self, lifecycle: &Lifecycle) -> Receiver<crate::Result<DecodeThread>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (spec, options, opener) = (self.spec.clone(), self.options.clone(), lifecycle.clone());
        lifecycle.spawn("lucid-connect", move || {
            let _ = tx.send(DecodeThread::spawn(&spec, options, &opener));
        });
        rx
    }
}

/// Closes the bottom source, or opens it again (the schedule's hours). Closed, no request
/// reaches the source; the canvas keeps its last picture, and nothing is presented.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceSwitch {
    /// Stop the source and its decode thread.
    Close,
    /// Open it again, as at start.
    Reopen,
}

/// Present while the bottom source is closed on purpose ([`SourceSwitch::Close`]).
#[derive(Resource, Debug, Clone, Copy)]
pub struct SourceClosed {
    /// When it closed.
    pub since: Instant,
}

/// Keeps stream time going on across a reopen: a reopened source's timestamps start
/// anew, and the outputs need them to go on from where they were (by the time closed).
#[derive(Resource, Debug, Default, Clone, Copy)]
struct StreamTime {
    /// The source's timestamp that maps to `base`.
    first: Duration,
    /// Stream time of `first`.
    base: Duration,
    /// Set by a reopen: the stream time to go on from, and when the source closed; taken
    /// by the first frame after it.
    resume: Option<(Duration, Instant)>,
}

impl StreamTime {
    /// The stream time of a frame with timestamp `pts`.
    fn map(&mut self, pts: Duration) -> Duration {
        if let Some((last, closed)) = self.resume.take() {
            self.first = pts;
            self.base = last + closed.elapsed();
        }
        self.base + pts.saturating_sub(self.first)
    }
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
    connector: SourceConnector,
    connection: Option<Receiver<crate::Result<DecodeThread>>>,
    requested: (Option<u32>, Option<u32>),
    latency: Option<Duration>,
    offline: bool,
}

impl VideoPlugin {
    /// `connection` delivers the opened stream (or why it failed), `None` when the show
    /// starts closed (out of the schedule's hours); `connector` opens it again;
    /// `requested` is the user's `--width`/`--height`; `latency` overrides the latency
    /// target (live HLS); `offline` asks for offline pacing, which applies if the stream
    /// turns out finite.
    pub fn new(
        connector: SourceConnector,
        connection: Option<Receiver<crate::Result<DecodeThread>>>,
        requested: (Option<u32>, Option<u32>),
        latency: Option<Duration>,
        offline: bool,
    ) -> Self {
        VideoPlugin {
            connector,
            connection,
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
        render::build(app);
        match self.connection.clone() {
            Some(rx) => app.insert_resource(PendingStream {
                rx,
                since: Instant::now(),
                reopening: false,
            }),
            None => app.insert_resource(SourceClosed {
                since: Instant::now(),
            }),
        };
        app.add_message::<FramePresented>()
            .add_message::<StreamReady>()
            .add_message::<SourceSwitch>()
            .insert_resource(self.connector.clone())
            .init_resource::<StreamTime>()
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
                    switch_source,
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
    canvas: Option<Res<OutputCanvas>>,
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
    let reopened = canvas.filter(|_| pending.reopening);
    // A reopened stream draws on the canvas there is; a first one sizes it.
    let output_size = match &reopened {
        Some(canvas) => canvas.size,
        None => UVec2::from(output_size(
            settings.requested.0,
            settings.requested.1,
            (info.width, info.height),
        )),
    };
    let (w, h) = (output_size.x, output_size.y);
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
    info!(
        "stream {}{}x{}{}, output {w}x{h}",
        if reopened.is_some() {
            "open again: "
        } else {
            ""
        },
        info.width,
        info.height,
        info.frame_rate
            .map(|r| format!(" @ {r:.2} fps"))
            .unwrap_or_default(),
    );
    let offline = settings.offline && !info.live;
    if offline && reopened.is_none() {
        info!(
            "rendering offline: every frame, as fast as the machine allows (--realtime paces it)"
        );
    }
    attach_feed(
        &mut commands,
        decode.frames,
        decode.end,
        decode.handle,
        &info,
        offline,
        &settings,
    );
    if reopened.is_some() {
        commands.insert_resource(StreamDescription(info));
        return;
    }
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

/// The opened stream's feed, pacing, clock and live edge.
fn attach_feed(
    commands: &mut Commands,
    frames: FrameReceiver,
    end: Receiver<SourceEnd>,
    thread: crate::decode::DecodeJoin,
    info: &StreamInfo,
    offline: bool,
    settings: &VideoSettings,
) {
    let policy = info.live_edge.as_ref().map(|_| {
        LatencyPolicy::for_segments(
            info.segment_duration.unwrap_or(Duration::from_secs(2)),
            settings.latency,
        )
    });
    commands.insert_resource(VideoFeed {
        frames,
        end,
        ended: None,
        _thread: thread,
    });
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
}

/// Closes the bottom source or opens it again ([`SourceSwitch`]).
#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn switch_source(
    mut commands: Commands,
    mut switches: MessageReader<SourceSwitch>,
    connector: Res<SourceConnector>,
    lifecycle: Res<Lifecycle>,
    closed: Option<Res<SourceClosed>>,
    stats: Res<PlaybackStats>,
    mut time: ResMut<StreamTime>,
    mut next_due: ResMut<NextFrameDue>,
    canvas: Option<Res<OutputCanvas>>,
) {
    let Some(&switch) = switches.read().last() else {
        return;
    };
    match (switch, closed) {
        (SourceSwitch::Close, None) => {
            info!("closing the source");
            commands.insert_resource(SourceClosed {
                since: Instant::now(),
            });
            commands.remove_resource::<PendingStream>();
            commands.insert_resource(LiveEdgeSource(None));
            next_due.0 = None;
            // The decode thread is waited for when its feed drops (see DecodeJoin): not on
            // the frame loop, where a source blocked on the network would hold up a frame.
            commands.queue(|world: &mut World| {
                if let Some(feed) = world.remove_resource::<VideoFeed>() {
                    crate::lifecycle::spawn_thread("lucid-source-close", move || drop(feed));
                }
            });
        }
        (SourceSwitch::Reopen, Some(closed)) => {
            info!("opening the source again");
            commands.remove_resource::<SourceClosed>();
            if let Some((_, last)) = stats.pts_span {
                time.resume = Some((last, closed.since));
            }
            commands.insert_resource(PendingStream {
                rx: connector.connect(&lifecycle),
                since: Instant::now(),
                reopening: canvas.is_some(),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Picture, VideoFrame};

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
