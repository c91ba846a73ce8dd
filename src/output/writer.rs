//! The output threads: one per output, each with its own bounded queue, converting and
//! writing in presentation order, then finalizing.

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy::prelude::Resource;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded, select};
use ffmpeg_next as ff;
use tracing::{error, info, warn};

use super::convert::YuvLayout;
use super::encode::Picture;
use super::frame::{Pixels, RenderedFrame, WriterMsg};
use super::images::ImageSequence;
use super::interrupt::CutFlag;
#[cfg(feature = "ndi")]
use super::ndi;
use super::order::FrameOrder;
use super::record::Recorder;
use super::sink::{Sink, Written};
use super::state::{OutputPhase, OutputState, OutputStats};
use super::stream::StreamOutput;
use super::targets::{OutputConfig, OutputTarget, PipeFormat};
use super::v4l2::V4l2Output;
use super::y4m::Y4mWriter;
use crate::decode::{AudioChunk, ColorMatrix};
use crate::error::OutputError;
use crate::error::Result;
use crate::lifecycle::{Lifecycle, ended_by, join_by};
use crate::sound::SoundTap;
use crate::sound::bus::TAP_QUEUE;

/// Memory each output's queue may hold, whatever the frame size.
const QUEUE_BYTES: usize = 128 << 20;
/// How long a finishing run waits for a pipe whose reader stopped reading.
const PIPE_FINISH_GRACE: Duration = Duration::from_millis(500);
/// How long a finishing run waits for a network output to flush and close (SRT holds its
/// connection 0.5 s after the trailer) before cutting its I/O short.
const NETWORK_FINISH_GRACE: Duration = Duration::from_millis(550);
/// After the cut, how long FFmpeg gets to notice it (it polls every 100 ms) and the thread
/// to end, before it is left behind.
const AFTER_CUT: Duration = Duration::from_millis(300);

/// How long finishing waits for the sound still on its way from the decode thread.
const AUDIO_FINISH_GRACE: Duration = Duration::from_millis(500);

/// Offline rendering keeps at most this many readbacks in flight (each is a frame the
/// outputs will have to take).
const MAX_READBACKS_IN_FLIGHT: usize = 3;

/// The render side's end of the output queues, plus readbacks still in flight.
#[derive(Resource, Clone)]
pub struct FrameSink {
    pub(super) outputs: Vec<(Sender<WriterMsg>, Arc<OutputState>, Pixels)>,
    pub(super) pending: Arc<AtomicUsize>,
}

impl FrameSink {
    /// Readbacks requested but not yet delivered.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// The read-backs each presented frame needs.
    pub(super) fn wanted(&self) -> impl Iterator<Item = Pixels> + '_ {
        [Pixels::Yuv, Pixels::Rgba]
            .into_iter()
            .filter(|p| self.outputs.iter().any(|(_, _, q)| q == p))
    }

    /// True when another frame could not be taken without a drop: too many readbacks in
    /// flight, or an output queue that would be full once they land.
    pub(super) fn saturated(&self) -> bool {
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
    pub(super) fn deliver(&self, frame: RenderedFrame, pixels: Pixels) {
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

/// What every output thread of one run shares.
struct ThreadContext<'a> {
    /// The frames' size, rate and matrix.
    picture: Picture,
    /// The run's stop flag and error.
    lifecycle: &'a Lifecycle,
    /// Outputs still writing; one that fails takes itself off.
    live: Arc<AtomicUsize>,
    /// True with a window: the show goes on on screen when every output has failed.
    on_screen: bool,
}

/// One output's thread and queue.
struct OutputThread {
    name: String,
    tx: Sender<WriterMsg>,
    handle: JoinHandle<()>,
    counters: Arc<OutputState>,
    pixels: Pixels,
    finishing: Finishing,
    /// Where the sound goes to this output's thread, when it carries sound.
    audio: Option<Sender<Arc<AudioChunk>>>,
}

/// How [`OutputWriter::finish`] waits for one output's thread.
enum Finishing {
    /// Always waited for: a recording must get its trailer.
    Always,
    /// Waited for this long, then left behind (a pipe whose reader stopped reading).
    Grace(Duration),
    /// A network output: waited for this long, then its blocking I/O is cut, so a
    /// receiver that stopped reading cannot hold the stop for FFmpeg's 5 s timeout; left
    /// behind if it has still not ended [`AFTER_CUT`] later.
    Cut(Duration, CutFlag),
}

/// The output threads. `finish` must be called to finalize files.
pub struct OutputWriter {
    outputs: Vec<OutputThread>,
    pending: Arc<AtomicUsize>,
}

impl OutputWriter {
    /// Opens every output (so errors surface before the first frame) and starts a thread
    /// for each; with `sound`, the recording and network outputs carry the show's sound
    /// too, from the taps [`OutputWriter::sound_taps`] hands the sound bus.
    pub fn spawn(config: OutputConfig, sound: bool, lifecycle: &Lifecycle) -> Result<OutputWriter> {
        let (w, h) = (config.width, config.height);
        let picture = Picture {
            width: w,
            height: h,
            frame_rate: config.frame_rate,
            matrix: ColorMatrix::conventional(h),
        };
        let outputs_asked = usize::from(config.record.is_some())
            + usize::from(config.pipe.is_some())
            + config.targets.len();
        let context = ThreadContext {
            picture,
            lifecycle,
            live: Arc::new(AtomicUsize::new(outputs_asked)),
            on_screen: config.on_screen,
        };
        let mut outputs = Vec::new();
        if let Some(path) = &config.record {
            let recorder =
                Recorder::create(path, config.overwrite, picture, &config.encoding, sound)?;
            let state = Arc::new(OutputState::default());
            state.set_encoder(recorder.encoder());
            let sink = Sink::Record(recorder);
            outputs.push(OutputThread::start(
                "record".into(),
                sink,
                Finishing::Always,
                state,
                &context,
            ));
        }
        if let Some(format) = config.pipe {
            let out = BufWriter::with_capacity(1 << 20, std::io::stdout());
            let sink = match format {
                PipeFormat::Y4m => Sink::Y4m(Y4mWriter::new(out, w, h, config.frame_rate)),
                PipeFormat::Rgba => Sink::Rgba(out),
            };
            let state = Arc::default();
            outputs.push(OutputThread::start(
                "pipe".into(),
                sink,
                Finishing::Grace(PIPE_FINISH_GRACE),
                state,
                &context,
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
            let mut finishing = Finishing::Always;
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
                OutputTarget::Stream(target) => {
                    let cut = CutFlag::default();
                    finishing = Finishing::Cut(NETWORK_FINISH_GRACE, cut.clone());
                    Sink::Stream(StreamOutput::new(
                        target.clone(),
                        picture,
                        config.encoding,
                        state.clone(),
                        cut,
                        sound,
                    ))
                }
            };
            outputs.push(OutputThread::start(name, sink, finishing, state, &context));
        }
        Ok(OutputWriter {
            outputs,
            pending: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Where the sound bus hands each output that carries sound its chunks (taken once).
    pub fn sound_taps(&mut self) -> Vec<SoundTap> {
        self.outputs
            .iter_mut()
            .filter_map(|o| o.audio.take())
            .collect()
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
    /// [`PIPE_FINISH_GRACE`], then is left behind (its remaining frames count as dropped);
    /// a network output gets [`NETWORK_FINISH_GRACE`] to flush and close, then its I/O is
    /// cut and it gets [`AFTER_CUT`] to end.
    pub fn finish(self) {
        let start = Instant::now();
        // Every output is told first, so they finish side by side.
        for o in &self.outputs {
            // Blocking is safe without a grace: that thread drains its queue until Finish.
            let _ = match o.finishing {
                Finishing::Always => o.tx.send(WriterMsg::Finish).map_err(|_| ()),
                Finishing::Grace(grace) | Finishing::Cut(grace, _) => {
                    o.tx.send_deadline(WriterMsg::Finish, start + grace)
                        .map_err(|_| ())
                }
            };
        }
        for o in self.outputs {
            let ended = match &o.finishing {
                // Lucid's threads catch their own panics: joining always ends.
                Finishing::Always => {
                    let _ = o.handle.join();
                    true
                }
                Finishing::Grace(grace) => join_by(o.handle, start + *grace),
                Finishing::Cut(grace, cut) => {
                    if ended_by(&o.handle, start + *grace) {
                        join_by(o.handle, start)
                    } else {
                        info!("{}: the receiver takes no data; cutting it off", o.name);
                        cut.cut();
                        join_by(o.handle, Instant::now() + AFTER_CUT)
                    }
                }
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
        finishing: Finishing,
        counters: Arc<OutputState>,
        context: &ThreadContext,
    ) -> OutputThread {
        let (width, height) = (context.picture.width, context.picture.height);
        let pixels = sink.pixels();
        let frame_bytes =
            (f64::from(width) * f64::from(height) * pixels.bytes_per_pixel()) as usize;
        let capacity = (QUEUE_BYTES / frame_bytes.max(1)).clamp(4, 120);
        let (tx, rx) = bounded(capacity);
        let (audio_tx, audio_rx) = if sink.carries_audio() {
            let (t, r) = bounded(TAP_QUEUE);
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let c = counters.clone();
        let l = context.lifecycle.clone();
        let (live, on_screen) = (context.live.clone(), context.on_screen);
        let label = name.clone();
        let handle = context.lifecycle.spawn(&format!("lucid-{name}"), move || {
            let result = writer_main(rx, audio_rx, width, height, sink, &c, &l);
            let Err(e) = result else {
                c.set_phase(OutputPhase::Finished);
                return;
            };
            // Said as it happens, in the log and in this output's state; the run ends with
            // the error's exit code. The show plays on while anyone still sees it: a window,
            // or another output that is still writing.
            c.set_error(Some(e.to_string()));
            c.set_phase(OutputPhase::Failed);
            let left = live.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
            if left == 0 && !on_screen {
                error!("{label} failed: {e}; no output is left, stopping");
                l.fail(e);
            } else {
                error!("{label} failed: {e}; the show goes on without it");
                l.fail_at_exit(e);
            }
        });
        OutputThread {
            name,
            tx,
            handle,
            counters,
            finishing,
            pixels,
            audio: audio_tx,
        }
    }
}

/// One output's thread: frames in presentation order, converted when the output needs
/// YUV, written; then the output is finalized.
fn writer_main(
    rx: Receiver<WriterMsg>,
    sound: Option<Receiver<Arc<AudioChunk>>>,
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
    let mut audio = sound.clone().unwrap_or_else(crossbeam_channel::never);
    let mut finishing = false;
    let mut open = true;
    while !finishing {
        select! {
            recv(rx) -> msg => match msg {
                Ok(WriterMsg::Frame(f)) => order.push(f),
                Ok(WriterMsg::Finish) | Err(_) => finishing = true,
            },
            recv(audio) -> chunk => {
                match chunk {
                    Ok(chunk) if open => write_audio(&mut sink, &chunk, counters)?,
                    Ok(_) => {}
                    Err(_) => audio = crossbeam_channel::never(),
                }
                continue;
            },
            default(Duration::from_millis(100)) => continue,
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
    // The sound that came with the last pictures (finishing trims it to their end): all of
    // it has come when the bus lets go of this output's tap, which it does as the decode
    // thread's sound ends.
    if let Some(sound) = sound {
        let deadline = Instant::now() + AUDIO_FINISH_GRACE;
        loop {
            match sound.recv_deadline(deadline) {
                Ok(chunk) => write_audio(&mut sink, &chunk, counters)?,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    warn!("the sound's last chunks did not arrive in time; finishing without them");
                    break;
                }
            }
        }
    }
    sink.finish()
}

fn write_audio(sink: &mut Sink, chunk: &AudioChunk, counters: &OutputState) -> Result<()> {
    let bytes = sink.write_audio(chunk)?;
    counters.bytes.fetch_add(bytes, Ordering::Relaxed);
    counters
        .audio_filled
        .store(sink.audio_filled(), Ordering::Relaxed);
    Ok(())
}
