//! Outputs of the rendered canvas: `--record` and `--pipe`.
//!
//! The render side reads back the canvas once per presented video frame (GPU readback on
//! the render path) and hands the pixels to a writer thread over a bounded channel. The
//! writer converts to YUV and encodes or writes. A full channel drops the frame (counted)
//! instead of blocking, so a slow disk never stalls the display.

pub mod record;
pub mod y4m;

use std::collections::BTreeMap;
use std::io::{BufWriter, ErrorKind, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use ffmpeg_next as ff;
use tracing::{info, warn};

use crate::cli::PipeFormat;
use crate::error::{LucidError, Result};
use crate::lifecycle::Lifecycle;
use crate::video::{FramePresented, OutputCanvas, StreamReady, VideoSystems};
use record::Recorder;
use y4m::Y4mWriter;

/// Memory the writer queue may hold, whatever the frame size.
const QUEUE_BYTES: usize = 256 << 20;

/// What to write and at which size.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// `--record` path.
    pub record: Option<PathBuf>,
    /// `--pipe` format.
    pub pipe: Option<PipeFormat>,
    /// Canvas size.
    pub width: u32,
    /// Canvas size.
    pub height: u32,
    /// Nominal frame rate for container headers.
    pub frame_rate: f64,
}

impl OutputConfig {
    /// True when any output is configured.
    pub fn any(&self) -> bool {
        self.record.is_some() || self.pipe.is_some()
    }
}

/// One rendered canvas frame as read back from the GPU (RGBA, rows padded to 256 bytes).
pub struct RenderedFrame {
    /// The presented frame number (see [`FramePresented`]).
    pub number: u64,
    /// Stream time of the video frame shown.
    pub pts: Duration,
    /// RGBA bytes with padded rows.
    pub rgba: Vec<u8>,
}

enum WriterMsg {
    Frame(RenderedFrame),
    Finish,
}

/// The writer thread. `finish` must be called to finalize files.
pub struct OutputWriter {
    tx: Sender<WriterMsg>,
    handle: JoinHandle<()>,
    dropped: Arc<AtomicU64>,
    pending: Arc<AtomicUsize>,
}

impl OutputWriter {
    /// Opens every output (so errors surface before playback) and starts the thread.
    pub fn spawn(config: OutputConfig, lifecycle: Lifecycle) -> Result<OutputWriter> {
        let recorder = match &config.record {
            Some(path) => Some(Recorder::create(
                path,
                config.width,
                config.height,
                config.frame_rate,
            )?),
            None => None,
        };
        let frame_bytes = (config.width * config.height * 4) as usize;
        let capacity = (QUEUE_BYTES / frame_bytes.max(1)).clamp(4, 120);
        let (tx, rx) = bounded(capacity);
        let mut sinks = Sinks {
            recorder,
            pipe: config.pipe.map(|format| {
                let out = BufWriter::with_capacity(1 << 20, std::io::stdout());
                match format {
                    PipeFormat::Y4m => Pipe::Y4m(Y4mWriter::new(
                        out,
                        config.width,
                        config.height,
                        config.frame_rate,
                    )),
                    PipeFormat::Rgba => Pipe::Rgba(out),
                }
            }),
            lifecycle: lifecycle.clone(),
            written: 0,
        };
        let (w, h) = (config.width, config.height);
        let handle = std::thread::Builder::new()
            .name("lucid-output".into())
            .spawn(move || {
                if let Err(e) = writer_main(rx, w, h, &mut sinks) {
                    lifecycle.fail(e);
                }
            })
            .expect("spawning a thread");
        Ok(OutputWriter {
            tx,
            handle,
            dropped: Arc::new(AtomicU64::new(0)),
            pending: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The render side's handle.
    pub fn sink(&self) -> FrameSink {
        FrameSink {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
            pending: self.pending.clone(),
        }
    }

    /// Writes what is queued, finalizes files and waits for the thread.
    pub fn finish(self) {
        let _ = self.tx.send(WriterMsg::Finish);
        let _ = self.handle.join();
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            warn!("{dropped} rendered frame(s) were not written: the output could not keep up");
        }
    }
}

/// The render side's end of the writer channel, plus readbacks still in flight.
#[derive(Resource, Clone)]
pub struct FrameSink {
    tx: Sender<WriterMsg>,
    dropped: Arc<AtomicU64>,
    pending: Arc<AtomicUsize>,
}

impl FrameSink {
    /// Readbacks requested but not yet delivered.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

/// Holds the writer thread once the stream's size is known, so `app::run` can finalize
/// it after the app has exited.
#[derive(Clone, Default)]
pub struct WriterSlot(Arc<std::sync::Mutex<Option<OutputWriter>>>);

impl WriterSlot {
    /// Takes the writer out (once).
    pub fn take(&self) -> Option<OutputWriter> {
        self.0.lock().ok()?.take()
    }
}

/// Starts the writer when the stream opens (its size and rate are needed), then reads back
/// the canvas for every presented frame and feeds the writer thread.
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
        app.insert_resource(PendingOutputs {
            config: self.config.clone(),
            slot: self.slot.clone(),
        })
        .add_systems(
            Update,
            (
                start_writer.run_if(resource_exists::<PendingOutputs>),
                request_readbacks.run_if(resource_exists::<FrameSink>),
            )
                .chain()
                .after(VideoSystems::Present),
        );
    }
}

fn start_writer(
    mut commands: Commands,
    mut ready: MessageReader<StreamReady>,
    pending: Res<PendingOutputs>,
    lifecycle: Res<Lifecycle>,
) {
    let Some(ready) = ready.read().last() else {
        return;
    };
    commands.remove_resource::<PendingOutputs>();
    let config = OutputConfig {
        width: ready.output_size.x,
        height: ready.output_size.y,
        frame_rate: ready.info.frame_rate.unwrap_or(30.0),
        ..pending.config.clone()
    };
    match OutputWriter::spawn(config, lifecycle.clone()) {
        Ok(writer) => {
            commands.insert_resource(writer.sink());
            if let Ok(mut slot) = pending.slot.0.lock() {
                *slot = Some(writer);
            }
        }
        Err(e) => lifecycle.fail(e),
    }
}

#[derive(Component)]
struct PendingReadback {
    number: u64,
    pts: Duration,
    /// A `Readback` component reads back every frame until its entity is despawned, and
    /// the despawn is deferred: two completions can reach the observer before it applies.
    /// Only the first one (the frame this entity was spawned for) is delivered.
    delivered: AtomicBool,
}

fn request_readbacks(
    mut commands: Commands,
    mut presented: MessageReader<FramePresented>,
    canvas: Option<Res<OutputCanvas>>,
    sink: Res<FrameSink>,
) {
    let Some(canvas) = canvas else { return };
    for ev in presented.read() {
        sink.pending.fetch_add(1, Ordering::SeqCst);
        commands
            .spawn((
                Readback::texture(canvas.image.clone()),
                PendingReadback {
                    number: ev.number,
                    pts: ev.pts,
                    delivered: AtomicBool::new(false),
                },
            ))
            .observe(deliver_readback);
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
    let frame = RenderedFrame {
        number: tag.number,
        pts: tag.pts,
        rgba: std::mem::take(&mut event.data),
    };
    match sink.tx.try_send(WriterMsg::Frame(frame)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            sink.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}

enum Pipe {
    Y4m(Y4mWriter<BufWriter<std::io::Stdout>>),
    Rgba(BufWriter<std::io::Stdout>),
}

struct Sinks {
    recorder: Option<Recorder>,
    pipe: Option<Pipe>,
    lifecycle: Lifecycle,
    written: u64,
}

impl Sinks {
    fn needs_yuv(&self) -> bool {
        self.recorder.is_some() || matches!(self.pipe, Some(Pipe::Y4m(_)))
    }

    fn write(
        &mut self,
        frame: &RenderedFrame,
        yuv: Option<&mut ff::frame::Video>,
        row_bytes: usize,
    ) -> Result<()> {
        let pts = frame.pts;
        let mut yuv = yuv;
        if let (Some(rec), Some(yuv)) = (&mut self.recorder, yuv.as_deref_mut()) {
            rec.write(yuv, pts)?;
        }
        let written = match &mut self.pipe {
            Some(Pipe::Y4m(pipe)) => match yuv {
                Some(yuv) => pipe.write(yuv),
                None => Ok(()),
            },
            Some(Pipe::Rgba(out)) => write_rgba(out, &frame.rgba, row_bytes),
            None => Ok(()),
        };
        if let Err(e) = written {
            if e.kind() == ErrorKind::BrokenPipe {
                info!("the reader closed stdout; stopping");
                self.pipe = None;
                self.lifecycle.request_stop();
            } else {
                return Err(LucidError::Output {
                    path: "stdout".into(),
                    reason: e.to_string(),
                });
            }
        }
        self.written += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(rec) = self.recorder.take() {
            let frames = rec.finish()?;
            info!("recording finalized: {frames} frames");
        }
        Ok(())
    }
}

/// Raw RGBA: the padded rows of the readback, without their padding.
fn write_rgba(out: &mut impl Write, padded: &[u8], row_bytes: usize) -> std::io::Result<()> {
    let padded_row = row_bytes.div_ceil(256) * 256;
    for row in padded.chunks(padded_row) {
        out.write_all(&row[..row_bytes.min(row.len())])?;
    }
    // Readers see each frame as it is presented, not when a buffer fills.
    out.flush()
}

/// Readbacks can complete out of order; frames are written strictly by number. A number
/// that never arrives (its readback dropped) is given up once this many later ones wait.
const REORDER_WINDOW: usize = 8;

/// Puts rendered frames back in presentation order: each number is released once, in
/// increasing order; a copy or a frame older than one already released is dropped.
#[derive(Default)]
struct FrameOrder {
    waiting: BTreeMap<u64, RenderedFrame>,
    next: u64,
}

impl FrameOrder {
    fn push(&mut self, frame: RenderedFrame) {
        if frame.number >= self.next {
            self.waiting.entry(frame.number).or_insert(frame);
        }
    }

    /// The next frame to write, if it is here, or if `flush` (finishing) or the window is
    /// full (the missing one is given up).
    fn pop(&mut self, flush: bool) -> Option<RenderedFrame> {
        let (&first, _) = self.waiting.first_key_value()?;
        if first != self.next && !flush && self.waiting.len() < REORDER_WINDOW {
            return None;
        }
        let frame = self.waiting.pop_first()?.1;
        self.next = frame.number + 1;
        Some(frame)
    }
}

fn writer_main(rx: Receiver<WriterMsg>, width: u32, height: u32, sinks: &mut Sinks) -> Result<()> {
    let mut convert = RgbaToYuv::new(width, height)?;
    let mut order = FrameOrder::default();
    let mut finishing = false;
    while !finishing {
        match rx.recv() {
            Ok(WriterMsg::Frame(f)) => order.push(f),
            Ok(WriterMsg::Finish) | Err(_) => finishing = true,
        }
        while let Some(frame) = order.pop(finishing) {
            let yuv = if sinks.needs_yuv() {
                Some(convert.convert(&frame.rgba)?)
            } else {
                None
            };
            sinks.write(&frame, yuv, width as usize * 4)?;
        }
    }
    sinks.finish()
}

/// RGBA with 256-byte-aligned rows (as wgpu copies textures) -> YUV420P.
struct RgbaToYuv {
    scaler: ff::software::scaling::Context,
    rgba: ff::frame::Video,
    yuv: ff::frame::Video,
    row_bytes: usize,
    padded_row: usize,
    height: usize,
}

impl RgbaToYuv {
    fn new(width: u32, height: u32) -> Result<Self> {
        let scaler = ff::software::scaling::Context::get(
            ff::format::Pixel::RGBA,
            width,
            height,
            ff::format::Pixel::YUV420P,
            width,
            height,
            ff::software::scaling::Flags::BILINEAR,
        )
        .map_err(|e| LucidError::Output {
            path: "output".into(),
            reason: format!("no RGBA -> YUV converter: {e}"),
        })?;
        let row_bytes = width as usize * 4;
        Ok(RgbaToYuv {
            scaler,
            rgba: ff::frame::Video::new(ff::format::Pixel::RGBA, width, height),
            yuv: ff::frame::Video::new(ff::format::Pixel::YUV420P, width, height),
            row_bytes,
            padded_row: row_bytes.div_ceil(256) * 256,
            height: height as usize,
        })
    }

    fn convert(&mut self, padded: &[u8]) -> Result<&mut ff::frame::Video> {
        let stride = self.rgba.stride(0);
        let dst = self.rgba.data_mut(0);
        for row in 0..self.height {
            let src = &padded[row * self.padded_row..row * self.padded_row + self.row_bytes];
            dst[row * stride..row * stride + self.row_bytes].copy_from_slice(src);
        }
        self.scaler
            .run(&self.rgba, &mut self.yuv)
            .map_err(|e| LucidError::Output {
                path: "output".into(),
                reason: format!("converting to YUV: {e}"),
            })?;
        Ok(&mut self.yuv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(number: u64) -> RenderedFrame {
        RenderedFrame {
            number,
            pts: Duration::ZERO,
            rgba: Vec::new(),
        }
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
