//! Outputs of the rendered canvas: `--record`, `--pipe` and `--output` image sequences.
//!
//! The render side reads back the canvas once per presented video frame (GPU readback on
//! the render path) and hands the pixels to each output: planar YUV converted on the GPU
//! ([`convert`]) for the encoders, RGBA for a raw pipe. Every output has its own thread
//! and its own bounded queue, and counts its own drops: a full queue drops the frame for
//! that output only, so a stalled `--pipe` reader never costs `--record` a frame, and a
//! slow disk never stalls the display. Each output converts and writes in presentation
//! order.

pub mod convert;
pub mod encode;
pub mod images;
#[cfg(feature = "ndi")]
#[allow(
    unsafe_code,
    reason = "FFI to the NDI runtime: the one module besides decode::hwaccel allowed unsafe code"
)]
pub mod ndi;
pub mod record;
pub mod stream;
pub mod v4l2;
pub mod y4m;

use std::collections::BTreeMap;
use std::io::{BufWriter, ErrorKind, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use ffmpeg_next as ff;
use tracing::{info, warn};

use crate::cli::PipeFormat;
use crate::decode::ColorMatrix;
use crate::error::Result;
use crate::lifecycle::Lifecycle;
use crate::video::{FramePresented, OutputCanvas, Pacing, StreamReady, VideoSystems};
use convert::{YuvLayout, YuvTarget};
use encode::{EncoderSettings, Picture};
use images::{ImagePattern, ImageSequence};
use record::Recorder;
use stream::{StreamOutput, StreamTarget};
use v4l2::V4l2Output;
use y4m::Y4mWriter;

/// Memory each output's queue may hold, whatever the frame size.
const QUEUE_BYTES: usize = 128 << 20;
/// How long a finishing run waits for a pipe whose reader stopped reading.
const PIPE_FINISH_GRACE: Duration = Duration::from_millis(500);

/// A cause kept behind an output error.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An output (record file, pipe, stats file, screenshot) that cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {what}{}", path.display(), because(cause))]
pub struct OutputError {
    /// The file, or `stdout`.
    pub path: PathBuf,
    /// What failed, in a few words.
    pub what: String,
    /// The underlying error, when there is one.
    #[source]
    pub cause: Option<Cause>,
}

/// The cause, as the message's tail: a user reads the whole story on one line.
fn because(cause: &Option<Cause>) -> String {
    cause
        .as_ref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default()
}

impl OutputError {
    /// An error with its cause kept.
    pub fn new(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> OutputError {
        OutputError {
            path: path.into(),
            what: what.into(),
            cause: Some(cause.into()),
        }
    }

    /// An error that is only a sentence.
    pub fn plain(path: impl Into<PathBuf>, what: impl Into<String>) -> OutputError {
        OutputError {
            path: path.into(),
            what: what.into(),
            cause: None,
        }
    }
}

/// What to write and at which size.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// `--record` path.
    pub record: Option<PathBuf>,
    /// `--overwrite`: replace an existing record file.
    pub overwrite: bool,
    /// `--pipe` format.
    pub pipe: Option<PipeFormat>,
    /// Canvas size.
    pub width: u32,
    /// Canvas size.
    pub height: u32,
    /// Nominal frame rate for container headers.
    pub frame_rate: f64,
    /// `--output` targets.
    pub targets: Vec<OutputTarget>,
    /// How the H.264 outputs encode (`--encoder`, `--bitrate`, `--gop`).
    pub encoding: EncoderSettings,
}

impl OutputConfig {
    /// True when any output is configured.
    pub fn any(&self) -> bool {
        self.record.is_some() || self.pipe.is_some() || !self.targets.is_empty()
    }

    /// True when every `--output` is a file (a network output plays in real time).
    pub fn files_only(&self) -> bool {
        self.targets
            .iter()
            .all(|t| matches!(t, OutputTarget::Images(_)))
    }
}

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// `frames/%06d.png`.
    Images(ImagePattern),
    /// `rtmp://`, `rtmps://`, `srt://`, `udp://`.
    Stream(StreamTarget),
    /// `/dev/videoN`: a v4l2loopback virtual camera.
    V4l2(PathBuf),
    /// `ndi://NAME`: an NDI source (cargo feature `ndi`).
    Ndi(String),
}

impl OutputTarget {
    /// Parses one `--output` value; the error says which forms there are.
    pub fn parse(text: &str) -> std::result::Result<OutputTarget, String> {
        let text = text.trim();
        if let Some(stream) = StreamTarget::parse(text) {
            return stream.map(OutputTarget::Stream);
        }
        if v4l2::is_device(text) {
            return Ok(OutputTarget::V4l2(PathBuf::from(text)));
        }
        if let Some(name) = text.strip_prefix("ndi://") {
            if name.is_empty() {
                return Err("ndi:// needs a source name (ndi://Lucid)".into());
            }
            if !cfg!(feature = "ndi") {
                return Err(
                    "this build has no NDI: build with `cargo build --features ndi`".into(),
                );
            }
            return Ok(OutputTarget::Ndi(name.to_string()));
        }
        if text.contains("://") {
            return Err(
                "network outputs are rtmp://, rtmps://, srt://host:port and udp://host:port".into(),
            );
        }
        ImagePattern::parse(text).map(OutputTarget::Images)
    }

    /// The output's kind, naming it in the status line and stats.
    fn kind(&self) -> &'static str {
        match self {
            OutputTarget::Images(_) => "images",
            OutputTarget::Stream(s) => s.protocol.name(),
            OutputTarget::V4l2(_) => "v4l2",
            OutputTarget::Ndi(_) => "ndi",
        }
    }
}

/// Which read-back of the canvas an output takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixels {
    /// Planar 4:2:0 converted on the GPU ([`convert::YuvLayout`]): encoders, YUV4MPEG2.
    Yuv,
    /// The canvas as it is: raw RGBA pipes.
    Rgba,
}

impl Pixels {
    /// Bytes a pixel of the read-back.
    fn bytes_per_pixel(self) -> f64 {
        match self {
            Pixels::Yuv => 1.5,
            Pixels::Rgba => 4.0,
        }
    }
}

/// One rendered canvas frame as read back from the GPU (rows padded to 256 bytes).
pub struct RenderedFrame {
    /// The presented frame number (see [`FramePresented`]).
    pub number: u64,
    /// Stream time of the video frame shown.
    pub pts: Duration,
    /// The bytes, laid out as the output's [`Pixels`] say.
    pub pixels: Vec<u8>,
}

enum WriterMsg {
    Frame(Arc<RenderedFrame>),
    Finish,
}

/// Where an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputPhase {
    /// Writing.
    Live,
    /// A network output opening its first connection.
    Connecting,
    /// A network output whose connection failed or dropped: trying again.
    Reconnecting,
    /// Finalized.
    Finished,
}

/// One output's state as its thread reports it: frames written and dropped (a full queue,
/// or a network output that is down), bytes, phase, encoder and last error.
#[derive(Debug, Default)]
pub struct OutputState {
    /// Frames written.
    pub written: AtomicU64,
    /// Frames this output dropped: it did not keep up, or its connection was down.
    pub dropped: AtomicU64,
    /// Bytes written (encoded outputs).
    pub bytes: AtomicU64,
    reconnects: AtomicU64,
    phase: AtomicU8,
    encoder: Mutex<Option<&'static str>>,
    error: Mutex<Option<String>>,
    meter: Mutex<Option<(Instant, u64, f64)>>,
}

impl OutputState {
    /// The output's phase.
    pub fn phase(&self) -> OutputPhase {
        match self.phase.load(Ordering::Relaxed) {
            1 => OutputPhase::Connecting,
            2 => OutputPhase::Reconnecting,
            3 => OutputPhase::Finished,
            _ => OutputPhase::Live,
        }
    }

    fn set_phase(&self, phase: OutputPhase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    fn set_encoder(&self, name: &'static str) {
        if let Ok(mut e) = self.encoder.lock() {
            *e = Some(name);
        }
    }

    /// The FFmpeg encoder this output uses, when it encodes.
    pub fn encoder(&self) -> Option<&'static str> {
        self.encoder.lock().ok().and_then(|e| *e)
    }

    fn set_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.error.lock() {
            *e = error;
        }
    }

    /// Why a network output is down, or last went down.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Times a network output connected again after a failure.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Bits a second written over the last second or more (0 until it has been measured
    /// over a second); call it about once a second.
    pub fn bitrate(&self, now: Instant) -> f64 {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let Ok(mut meter) = self.meter.lock() else {
            return 0.0;
        };
        let (since, before, rate) = meter.get_or_insert((now, bytes, 0.0));
        let span = now.saturating_duration_since(*since).as_secs_f64();
        if span >= 0.9 {
            *rate = (bytes.saturating_sub(*before) as f64 * 8.0) / span;
            *since = now;
            *before = bytes;
        }
        *rate
    }
}

/// Each output's state by name (`record`, `pipe`, `rtmp`), for the status line, stats
/// JSON and overlay.
#[derive(Resource, Clone, Default)]
pub struct OutputStats(pub Vec<(String, Arc<OutputState>)>);

/// One output's thread and queue.
struct OutputThread {
    name: String,
    tx: Sender<WriterMsg>,
    handle: JoinHandle<()>,
    counters: Arc<OutputState>,
    pixels: Pixels,
    /// How long finishing waits before leaving the thread behind; `None`: always waited
    /// for (a recording must get its trailer).
    finish_grace: Option<Duration>,
}

/// The output threads. `finish` must be called to finalize files.
pub struct OutputWriter {
    outputs: Vec<OutputThread>,
    pending: Arc<AtomicUsize>,
}

impl OutputWriter {
    /// Opens every output (so errors surface before the first frame) and starts a thread
    /// for each.
    pub fn spawn(config: OutputConfig, lifecycle: &Lifecycle) -> Result<OutputWriter> {
        let (w, h) = (config.width, config.height);
        let picture = Picture {
            width: w,
            height: h,
            frame_rate: config.frame_rate,
            matrix: ColorMatrix::conventional(h),
        };
        let mut outputs = Vec::new();
        if let Some(path) = &config.record {
            let recorder = Recorder::create(path, config.overwrite, picture, &config.encoding)?;
            let state = Arc::new(OutputState::default());
            state.set_encoder(recorder.encoder());
            let sink = Sink::Record(recorder);
            outputs.push(OutputThread::start(
                "record".into(),
                sink,
                None,
                state,
                picture,
                lifecycle,
            ));
        }
        if let Some(format) = config.pipe {
            let out = BufWriter::with_capacity(1 << 20, std::io::stdout());
            let sink = match format {
                PipeFormat::Y4m => Sink::Y4m(Y4mWriter::new(out, w, h, config.frame_rate)),
                PipeFormat::Rgba => Sink::Rgba(out),
            };
            let grace = Some(PIPE_FINISH_GRACE);
            let state = Arc::default();
            outputs.push(OutputThread::start(
                "pipe".into(),
                sink,
                grace,
                state,
                picture,
                lifecycle,
            ));
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for target in &config.targets {
            let kind = target.kind();
            let count = config.targets.iter().filter(|t| t.kind() == kind).count();
            let nth = seen.entry(kind).or_default();
            *nth += 1;
            // `rtmp`, or `rtmp1`, `rtmp2` when there are several.
            let name = if count == 1 {
                kind.to_string()
            } else {
                format!("{kind}{nth}")
            };
            let state = Arc::new(OutputState::default());
            let sink = match target {
                OutputTarget::Images(pattern) => Sink::Images(ImageSequence::create(
                    pattern.clone(),
                    config.overwrite,
                    w,
                    h,
                )?),
                OutputTarget::V4l2(path) => {
                    Sink::V4l2(V4l2Output::open(path, w, h, config.frame_rate)?)
                }
                #[cfg(feature = "ndi")]
                OutputTarget::Ndi(name) => {
                    Sink::Ndi(ndi::NdiOutput::open(name, w, h, config.frame_rate)?)
                }
                #[cfg(not(feature = "ndi"))]
                OutputTarget::Ndi(_) => unreachable!("parsing refuses ndi:// without the feature"),
                OutputTarget::Stream(target) => Sink::Stream(StreamOutput::new(
                    target.clone(),
                    picture,
                    config.encoding,
                    state.clone(),
                )),
            };
            outputs.push(OutputThread::start(
                name, sink, None, state, picture, lifecycle,
            ));
        }
        Ok(OutputWriter {
            outputs,
            pending: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The render side's handle.
    pub fn sink(&self) -> FrameSink {
        FrameSink {
            outputs: self
                .outputs
                .iter()
                .map(|o| (o.tx.clone(), o.counters.clone(), o.pixels))
                .collect(),
            pending: self.pending.clone(),
        }
    }

    /// Each output's counters.
    pub fn stats(&self) -> OutputStats {
        OutputStats(
            self.outputs
                .iter()
                .map(|o| (o.name.clone(), o.counters.clone()))
                .collect(),
        )
    }

    /// Writes what is queued and finalizes every output. The recording is always waited
    /// for (its trailer must be written); a pipe whose reader stopped reading gets
    /// [`PIPE_FINISH_GRACE`], then is left behind (its remaining frames count as dropped).
    pub fn finish(self) {
        let start = Instant::now();
        // Every output is told first, so they finish side by side.
        for o in &self.outputs {
            // Blocking is safe without a grace: that thread drains its queue until Finish.
            let _ = match o.finish_grace {
                None => o.tx.send(WriterMsg::Finish).map_err(|_| ()),
                Some(grace) => {
                    o.tx.send_deadline(WriterMsg::Finish, start + grace)
                        .map_err(|_| ())
                }
            };
        }
        for o in self.outputs {
            let ended = match o.finish_grace {
                // Lucid's threads catch their own panics: joining always ends.
                None => {
                    let _ = o.handle.join();
                    true
                }
                Some(grace) => crate::lifecycle::join_by(o.handle, start + grace),
            };
            if !ended {
                warn!("{}: its reader stopped reading; leaving it behind", o.name);
                o.counters
                    .dropped
                    .fetch_add(o.tx.len() as u64, Ordering::Relaxed);
            }
            report_drops(&o.name, &o.counters);
        }
    }
}

fn report_drops(name: &str, counters: &OutputState) {
    let dropped = counters.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        warn!("{name}: {dropped} rendered frame(s) were not written: the output could not keep up");
    }
}

impl OutputThread {
    fn start(
        name: String,
        sink: Sink,
        finish_grace: Option<Duration>,
        counters: Arc<OutputState>,
        picture: Picture,
        lifecycle: &Lifecycle,
    ) -> OutputThread {
        let (width, height) = (picture.width, picture.height);
        let pixels = sink.pixels();
        let frame_bytes =
            (f64::from(width) * f64::from(height) * pixels.bytes_per_pixel()) as usize;
        let capacity = (QUEUE_BYTES / frame_bytes.max(1)).clamp(4, 120);
        let (tx, rx) = bounded(capacity);
        let c = counters.clone();
        let l = lifecycle.clone();
        let handle = lifecycle.spawn(&format!("lucid-{name}"), move || {
            let result = writer_main(rx, width, height, sink, &c, &l);
            c.set_phase(OutputPhase::Finished);
            if let Err(e) = result {
                l.fail(e);
            }
        });
        OutputThread {
            name,
            tx,
            handle,
            counters,
            finish_grace,
            pixels,
        }
    }
}

/// The render side's end of the output queues, plus readbacks still in flight.
#[derive(Resource, Clone)]
pub struct FrameSink {
    outputs: Vec<(Sender<WriterMsg>, Arc<OutputState>, Pixels)>,
    pending: Arc<AtomicUsize>,
}

impl FrameSink {
    /// Readbacks requested but not yet delivered.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// The read-backs each presented frame needs.
    fn wanted(&self) -> impl Iterator<Item = Pixels> + '_ {
        [Pixels::Yuv, Pixels::Rgba]
            .into_iter()
            .filter(|p| self.outputs.iter().any(|(_, _, q)| q == p))
    }

    /// True when another frame could not be taken without a drop: too many readbacks in
    /// flight, or an output queue that would be full once they land.
    fn saturated(&self) -> bool {
        let kinds = self.wanted().count().max(1);
        // Read-backs in flight, counted in frames.
        let pending = self.pending().div_ceil(kinds);
        pending >= MAX_READBACKS_IN_FLIGHT
            || self.outputs.iter().any(|(tx, _, _)| {
                tx.capacity()
                    .is_some_and(|cap| tx.len() + pending + 1 >= cap)
            })
    }

    /// Offers a frame to every output that takes these pixels; an output whose queue is
    /// full drops it (counted).
    fn deliver(&self, frame: RenderedFrame, pixels: Pixels) {
        let frame = Arc::new(frame);
        for (tx, counters, _) in self.outputs.iter().filter(|o| o.2 == pixels) {
            match tx.try_send(WriterMsg::Frame(frame.clone())) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Holds the output threads once the stream's size is known, so `app::run` can finalize
/// them after the app has exited (or from the stop watchdog).
#[derive(Clone, Default)]
pub struct WriterSlot(Arc<std::sync::Mutex<Option<OutputWriter>>>);

impl WriterSlot {
    /// Takes the writer out (once).
    pub fn take(&self) -> Option<OutputWriter> {
        self.0.lock().ok()?.take()
    }
}

/// Starts the writer when the stream opens (its size and rate are needed), then reads back
/// the canvas for every presented frame and feeds the output threads.
pub struct OutputPlugin {
    config: OutputConfig,
    slot: WriterSlot,
}

impl OutputPlugin {
    /// Outputs as configured; the size and rate in `config` are filled in from the stream.
    pub fn new(config: OutputConfig, slot: WriterSlot) -> Self {
        OutputPlugin { config, slot }
    }
}

#[derive(Resource)]
struct PendingOutputs {
    config: OutputConfig,
    slot: WriterSlot,
}

impl Plugin for OutputPlugin {
    fn build(&self, app: &mut App) {
        convert::build(app);
        app.insert_resource(PendingOutputs {
            config: self.config.clone(),
            slot: self.slot.clone(),
        })
        .init_resource::<OutputStats>()
        .add_systems(
            Update,
            (
                start_writer.run_if(resource_exists::<PendingOutputs>),
                request_readbacks.run_if(resource_exists::<FrameSink>),
            )
                .chain()
                .after(VideoSystems::Present),
        )
        .add_systems(
            Update,
            report_backpressure
                .run_if(resource_exists::<FrameSink>)
                .before(VideoSystems::Present),
        );
    }
}

fn start_writer(
    mut commands: Commands,
    mut ready: MessageReader<StreamReady>,
    pending: Res<PendingOutputs>,
    lifecycle: Res<Lifecycle>,
    mut images: ResMut<Assets<Image>>,
    rate: Option<Res<crate::video::OutputRate>>,
) {
    let Some(ready) = ready.read().last() else {
        return;
    };
    commands.remove_resource::<PendingOutputs>();
    let config = OutputConfig {
        width: ready.output_size.x,
        height: ready.output_size.y,
        frame_rate: rate.map(|r| r.0).or(ready.info.frame_rate).unwrap_or(30.0),
        ..pending.config.clone()
    };
    match OutputWriter::spawn(config.clone(), &lifecycle) {
        Ok(writer) => {
            let sink = writer.sink();
            if sink.wanted().any(|p| p == Pixels::Yuv) {
                let (w, h) = (config.width, config.height);
                let target = YuvTarget::new(&mut images, w, h, ColorMatrix::conventional(h));
                commands.insert_resource(target);
            }
            commands.insert_resource(sink);
            commands.insert_resource(writer.stats());
            if let Ok(mut slot) = pending.slot.0.lock() {
                *slot = Some(writer);
            }
        }
        Err(e) => lifecycle.fail(e),
    }
}

/// Offline rendering keeps at most this many readbacks in flight (each is a frame the
/// outputs will have to take).
const MAX_READBACKS_IN_FLIGHT: usize = 3;

/// Tells offline pacing whether the outputs can take another frame.
fn report_backpressure(sink: Res<FrameSink>, mut pacing: ResMut<Pacing>) {
    let full = sink.saturated();
    if pacing.outputs_full != full {
        pacing.outputs_full = full;
    }
}

#[derive(Component)]
struct PendingReadback {
    number: u64,
    pts: Duration,
    pixels: Pixels,
    /// A `Readback` component reads back every frame until its entity is despawned, and
    /// the despawn is deferred: two completions can reach the observer before it applies.
    /// Only the first one (the frame this entity was spawned for) is delivered.
    delivered: AtomicBool,
}

fn request_readbacks(
    mut commands: Commands,
    mut presented: MessageReader<FramePresented>,
    canvas: Option<Res<OutputCanvas>>,
    yuv: Option<Res<YuvTarget>>,
    sink: Res<FrameSink>,
) {
    let Some(canvas) = canvas else { return };
    for ev in presented.read() {
        for pixels in sink.wanted() {
            let image = match (pixels, yuv.as_ref()) {
                (Pixels::Yuv, Some(yuv)) => yuv.image.clone(),
                (Pixels::Rgba, _) => canvas.image.clone(),
                (Pixels::Yuv, None) => continue,
            };
            sink.pending.fetch_add(1, Ordering::SeqCst);
            commands
                .spawn((
                    Readback::texture(image),
                    PendingReadback {
                        number: ev.number,
                        pts: ev.pts,
                        pixels,
                        delivered: AtomicBool::new(false),
                    },
                ))
                .observe(deliver_readback);
        }
    }
}

fn deliver_readback(
    mut event: On<ReadbackComplete>,
    tags: Query<&PendingReadback>,
    sink: Res<FrameSink>,
    mut commands: Commands,
) {
    let entity = event.entity;
    let Ok(tag) = tags.get(entity) else { return };
    if tag.delivered.swap(true, Ordering::SeqCst) {
        return;
    }
    // One readback per presented frame: the component would read back every frame.
    commands.entity(entity).despawn();
    sink.pending.fetch_sub(1, Ordering::SeqCst);
    sink.deliver(
        RenderedFrame {
            number: tag.number,
            pts: tag.pts,
            pixels: std::mem::take(&mut event.data),
        },
        tag.pixels,
    );
}

/// Where one output thread writes.
enum Sink {
    Record(Recorder),
    Y4m(Y4mWriter<BufWriter<std::io::Stdout>>),
    Rgba(BufWriter<std::io::Stdout>),
    Images(ImageSequence),
    Stream(StreamOutput),
    V4l2(V4l2Output),
    #[cfg(feature = "ndi")]
    Ndi(ndi::NdiOutput),
}

/// What became of one frame handed to a [`Sink`].
enum Written {
    /// Written: this many bytes (0 where not counted).
    Bytes(u64),
    /// Not written: a network output that is down (counted as a drop).
    Dropped,
    /// The pipe's reader is gone: a clean stop.
    Closed,
}

impl Sink {
    fn pixels(&self) -> Pixels {
        match self {
            Sink::Rgba(_) | Sink::Images(_) => Pixels::Rgba,
            #[cfg(feature = "ndi")]
            Sink::Ndi(_) => Pixels::Rgba,
            Sink::Record(_) | Sink::Y4m(_) | Sink::Stream(_) | Sink::V4l2(_) => Pixels::Yuv,
        }
    }

    /// Writes one frame.
    fn write(
        &mut self,
        frame: &RenderedFrame,
        yuv: Option<&mut ff::frame::Video>,
        row_bytes: usize,
    ) -> Result<Written> {
        let written = match (self, yuv) {
            (Sink::Record(rec), Some(yuv)) => return rec.write(yuv, frame.pts).map(Written::Bytes),
            (Sink::Stream(out), Some(yuv)) => {
                return Ok(out
                    .write(yuv, frame.pts)?
                    .map_or(Written::Dropped, Written::Bytes));
            }
            (Sink::V4l2(cam), Some(yuv)) => {
                return cam.write(yuv, frame.pts).map(Written::Bytes);
            }
            (Sink::Y4m(pipe), Some(yuv)) => pipe.write(yuv),
            (Sink::Rgba(out), _) => write_rgba(out, &frame.pixels, row_bytes),
            #[cfg(feature = "ndi")]
            (Sink::Ndi(ndi), _) => return ndi.write(&frame.pixels).map(Written::Bytes),
            (Sink::Images(images), _) => {
                images.write(&frame.pixels)?;
                return Ok(Written::Bytes(0));
            }
            (_, None) => Ok(()),
        };
        match written {
            Ok(()) => Ok(Written::Bytes(0)),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(Written::Closed),
            Err(e) => Err(OutputError::new("stdout", "writing the pipe", e).into()),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Record(rec) => {
                let frames = rec.finish()?;
                info!("recording finalized: {frames} frames");
            }
            Sink::Images(images) => info!("image sequence: {} images written", images.written()),
            Sink::Stream(out) => out.finish()?,
            Sink::V4l2(cam) => cam.finish()?,
            #[cfg(feature = "ndi")]
            Sink::Ndi(_) => {}
            Sink::Y4m(_) | Sink::Rgba(_) => {}
        }
        Ok(())
    }
}

/// Raw RGBA: the padded rows of the readback, without their padding.
fn write_rgba(out: &mut impl Write, padded: &[u8], row_bytes: usize) -> std::io::Result<()> {
    for row in readback_rows(padded, row_bytes) {
        out.write_all(row)?;
    }
    // Readers see each frame as it is presented, not when a buffer fills.
    out.flush()
}

/// The rows of a read-back texture without wgpu's padding (rows are copied into buffers
/// 256-byte aligned): `row_bytes` of each.
pub fn readback_rows(padded: &[u8], row_bytes: usize) -> impl Iterator<Item = &[u8]> {
    padded
        .chunks(row_bytes.div_ceil(256) * 256)
        .map(move |row| &row[..row_bytes.min(row.len())])
}

/// Readbacks can complete out of order; frames are written strictly by number. A number
/// that never arrives (its readback dropped) is given up once this many later ones wait.
const REORDER_WINDOW: usize = 8;

/// Puts rendered frames back in presentation order: each number is released once, in
/// increasing order; a copy or a frame older than one already released is dropped.
#[derive(Default)]
struct FrameOrder {
    waiting: BTreeMap<u64, Arc<RenderedFrame>>,
    next: u64,
}

impl FrameOrder {
    fn push(&mut self, frame: Arc<RenderedFrame>) {
        if frame.number >= self.next {
            self.waiting.entry(frame.number).or_insert(frame);
        }
    }

    /// The next frame to write, if it is here, or if `flush` (finishing) or the window is
    /// full (the missing one is given up).
    fn pop(&mut self, flush: bool) -> Option<Arc<RenderedFrame>> {
        let (&first, _) = self.waiting.first_key_value()?;
        if first != self.next && !flush && self.waiting.len() < REORDER_WINDOW {
            return None;
        }
        let frame = self.waiting.pop_first()?.1;
        self.next = frame.number + 1;
        Some(frame)
    }
}

/// One output's thread: frames in presentation order, converted when the output needs
/// YUV, written; then the output is finalized.
fn writer_main(
    rx: Receiver<WriterMsg>,
    width: u32,
    height: u32,
    mut sink: Sink,
    counters: &OutputState,
    lifecycle: &Lifecycle,
) -> Result<()> {
    let layout = YuvLayout::new(width, height);
    let mut yuv = match sink.pixels() {
        Pixels::Yuv => Some(ff::frame::Video::new(
            ff::format::Pixel::YUV420P,
            width,
            height,
        )),
        Pixels::Rgba => None,
    };
    let mut order = FrameOrder::default();
    let mut finishing = false;
    let mut open = true;
    while !finishing {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(WriterMsg::Frame(f)) => order.push(f),
            Ok(WriterMsg::Finish) | Err(RecvTimeoutError::Disconnected) => finishing = true,
            Err(RecvTimeoutError::Timeout) => continue,
        }
        while let Some(frame) = order.pop(finishing) {
            if !open {
                continue;
            }
            if let Some(yuv) = yuv.as_mut()
                && !layout.unpack(&frame.pixels, yuv)
            {
                return Err(
                    OutputError::plain("output", "a read-back frame had the wrong size").into(),
                );
            }
            match sink.write(&frame, yuv.as_mut(), width as usize * 4)? {
                Written::Bytes(bytes) => {
                    counters.written.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                Written::Dropped => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Written::Closed => {
                    info!("the reader closed stdout; stopping");
                    open = false;
                    lifecycle.request_stop();
                }
            }
        }
    }
    sink.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(number: u64) -> Arc<RenderedFrame> {
        Arc::new(RenderedFrame {
            number,
            pts: Duration::ZERO,
            pixels: Vec::new(),
        })
    }

    fn drain(order: &mut FrameOrder, flush: bool) -> Vec<u64> {
        std::iter::from_fn(|| order.pop(flush))
            .map(|f| f.number)
            .collect()
    }

    #[test]
    fn frames_come_out_in_order_once_each() {
        let mut order = FrameOrder::default();
        order.push(frame(1));
        assert!(drain(&mut order, false).is_empty(), "0 is still expected");
        order.push(frame(0));
        assert_eq!(drain(&mut order, false), vec![0, 1]);
        // A second readback of an already written frame is not written again.
        order.push(frame(1));
        order.push(frame(2));
        order.push(frame(2));
        assert_eq!(drain(&mut order, false), vec![2]);
    }

    #[test]
    fn a_frame_that_never_arrives_is_given_up() {
        let mut order = FrameOrder::default();
        for n in 1..=REORDER_WINDOW as u64 {
            order.push(frame(n));
        }
        assert_eq!(
            drain(&mut order, false),
            (1..=REORDER_WINDOW as u64).collect::<Vec<_>>()
        );
        order.push(frame(0));
        assert!(
            drain(&mut order, true).is_empty(),
            "too late once later frames went out"
        );
    }
}
