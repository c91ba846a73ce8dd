//! The decode thread: demux and decode with FFmpeg (hardware first, software fallback),
//! convert to packed 4:2:0 and hand frames to the render side through a bounded queue.

pub mod frame;
pub mod hwaccel;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use ff::format::Pixel;
use ffmpeg_next as ff;
use tracing::{info, warn};

pub use frame::{
    ColorMatrix, FrameReceiver, FrameSender, MAX_TEXTURE_SIDE, Picture, QueuePolicy, VideoFrame,
    frame_queue,
};

use crate::error::{LucidError, Result};
use crate::lifecycle::Lifecycle;
use crate::redact::Redacted;
use crate::source::hls::{HlsStream, LiveEdge, SegmentReader};
use crate::source::whep::{AccessUnit, WhepStats, WhepStream};
use crate::source::{NetworkStream, SourceOptions, SourceSpec, open_network};

/// Demuxers allowed on HLS segment bytes: MPEG-TS and ISO BMFF (fMP4), nothing else. A
/// "segment" that is itself a playlist, an ffconcat list or an SDP file never gets a
/// demuxer that opens files or URLs of its choosing.
const SEGMENT_FORMATS: &str = "mpegts,mp4";
/// Protocols segment demuxers may open by themselves: none (the bytes come from Lucid's
/// HLS client through custom IO). FFmpeg has no protocol of this name.
const SEGMENT_PROTOCOLS: &str = "lucid-none";

/// Why the input cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// FFmpeg could not open an input (a file, a URL, the segment byte stream).
    #[error("cannot open {source_name}: {source}")]
    Open {
        /// The input as the user named it (credentials masked).
        source_name: Redacted,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// The input opened but cannot be played (no video, no decoder, a zero size, or the
    /// decoder keeps failing).
    #[error("cannot play {source_name}: {reason}")]
    Unplayable {
        /// The input as the user named it (credentials masked).
        source_name: Redacted,
        /// What is missing or unsupported.
        reason: String,
    },
    /// FFmpeg itself could not start.
    #[error("FFmpeg failed to initialise")]
    Init(#[source] ff::Error),
    /// Lucid was asked to stop while the input was being opened. Not a failure.
    #[error("stopped")]
    Stopped,
}

/// Frames buffered between decoder and renderer (about a quarter second at 30 fps).
pub const FRAME_QUEUE: usize = 8;

/// What the decode thread learned when it opened the stream.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The input as the user named it.
    pub source: String,
    /// Decoded width.
    pub width: u32,
    /// Decoded height.
    pub height: u32,
    /// Nominal frame rate, when the stream declares one.
    pub frame_rate: Option<f64>,
    /// How long the input is, when it is finite and says so (files).
    pub duration: Option<Duration>,
    /// Which decoder runs, e.g. `h264 (software)` or `h264 (hardware: cuda)`.
    pub decoder: String,
    /// True when frames come from a live source (drop rather than block when behind).
    pub live: bool,
    /// The HLS rendition, when the source is HLS.
    pub rendition: Option<String>,
    /// Where the live edge is, for live HLS.
    pub live_edge: Option<LiveEdge>,
    /// The HLS target duration (longest segment), for the default latency target.
    pub segment_duration: Option<Duration>,
    /// The network protocol playing ("webrtc", "hls"), for network sources.
    pub protocol: Option<&'static str>,
    /// Why that protocol, when it was not the first choice ("HLS: WebRTC answered 406").
    pub protocol_why: Option<String>,
    /// WebRTC figures (RTT, jitter, loss, keyframe requests, jitter buffer), over WebRTC.
    pub webrtc: Option<WhepStats>,
    /// True when the source releases frames at their presentation time itself (WebRTC's
    /// jitter buffer): the renderer shows them on arrival.
    pub paced_upstream: bool,
}

/// How the stream ended, sent once after the last frame.
#[derive(Debug)]
pub enum SourceEnd {
    /// The input ended normally (ENDLIST, end of file).
    Finished,
    /// The input failed and cannot continue.
    Failed(LucidError),
}

/// Options for the decode thread.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Never try hardware decode.
    pub force_cpu: bool,
    /// How network sources are opened (protocol, playback info, how long to wait).
    pub source: SourceOptions,
}

/// The running decode thread and its outputs.
pub struct DecodeThread {
    /// What the stream is.
    pub info: StreamInfo,
    /// Decoded frames, in order.
    pub frames: FrameReceiver,
    /// Receives exactly one message when the stream ends.
    pub end: Receiver<SourceEnd>,
    /// The thread itself, joined when this is dropped.
    pub handle: DecodeJoin,
}

/// How long dropping a [`DecodeJoin`] waits for its thread.
const DECODE_JOIN_GRACE: Duration = Duration::from_secs(3);

/// A decode thread that is waited for (up to [`DECODE_JOIN_GRACE`]) when this is dropped,
/// so the decoder and its hardware context are gone before the process exits. Left to run
/// into the exit, FFmpeg's CUDA context was destroyed after the driver's own exit handlers
/// (`cuCtxDestroy failed`), and on an H200 the exit then hung, 2 runs in 3. Whoever holds
/// the frame queue drops it first (declare this field after it): a thread blocked on a
/// full queue ends when its receiver goes.
#[derive(Debug)]
pub struct DecodeJoin(Option<JoinHandle<()>>);

impl Drop for DecodeJoin {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && !crate::lifecycle::join_by(handle, Instant::now() + DECODE_JOIN_GRACE)
        {
            warn!("a decode thread did not end in time; leaving it behind");
        }
    }
}

/// The lavfi graph behind the built-in test pattern: moving, colourful, and 4:2:0 so it
/// takes the same upload path as real video.
pub const TEST_PATTERN: &str = "testsrc2=size=1280x720:rate=30,format=yuv420p";

impl DecodeThread {
    /// Opens `spec` and starts decoding. Returns once the stream's format is known, or with
    /// the error that makes it unplayable; [`DecodeError::Stopped`] when a stop request cut
    /// the opening short (FFmpeg's probe is interrupted, whatever it then reports).
    pub fn spawn(
        spec: &SourceSpec,
        options: DecodeOptions,
        lifecycle: &Lifecycle,
    ) -> Result<DecodeThread> {
        match Self::open(spec, options, lifecycle) {
            Err(e) if lifecycle.stopping() && !matches!(e, LucidError::Internal { .. }) => {
                Err(DecodeError::Stopped.into())
            }
            opened => opened,
        }
    }

    fn open(
        spec: &SourceSpec,
        options: DecodeOptions,
        lifecycle: &Lifecycle,
    ) -> Result<DecodeThread> {
        ff::init().map_err(DecodeError::Init)?;
        ff::device::register_all();
        ff::util::log::set_level(ff::util::log::Level::Error);

        let source = spec.display_name();
        let mut protocol = (None, None);
        let input = match open_network(spec, &options.source, lifecycle)? {
            Some(opened) => {
                protocol = (Some(opened.protocol), opened.why);
                match opened.stream {
                    NetworkStream::Hls(s) => InputKind::Demux(DemuxInput::Hls(s)),
                    NetworkStream::Whep(s) => InputKind::Whep(s),
                }
            }
            None => match spec {
                SourceSpec::Ffmpeg(s) => InputKind::Demux(DemuxInput::Ffmpeg(s.clone())),
                _ => InputKind::Demux(DemuxInput::TestPattern),
            },
        };
        let (info_tx, info_rx) = bounded(1);
        let (end_tx, end_rx) = bounded(1);
        let stop = lifecycle.stop_flag();
        let handle = lifecycle.spawn("lucid-decode", move || match input {
            InputKind::Whep(stream) => {
                decode_whep(source, stream, &options, &stop, info_tx, end_tx)
            }
            InputKind::Demux(input) => decode_main(source, input, &options, stop, info_tx, end_tx),
        });
        match info_rx.recv() {
            Ok(Ok((mut info, frames))) => {
                (info.protocol, info.protocol_why) = protocol;
                Ok(DecodeThread {
                    info,
                    frames,
                    end: end_rx,
                    handle: DecodeJoin(Some(handle)),
                })
            }
            Ok(Err(e)) => Err(e),
            // The thread panicked before it said anything: its error is in the lifecycle.
            Err(_) => Err(lifecycle.take_error().unwrap_or(LucidError::Internal {
                thread: "lucid-decode".into(),
                message: "ended while opening the input".into(),
            })),
        }
    }
}

/// What the decode thread reads: a demuxer's packets, or WebRTC's access units.
enum InputKind {
    Demux(DemuxInput),
    Whep(WhepStream),
}

/// Inputs read through an FFmpeg demuxer.
enum DemuxInput {
    Hls(HlsStream),
    Ffmpeg(String),
    TestPattern,
}

type Opened = std::result::Result<(StreamInfo, FrameReceiver), LucidError>;

fn decode_main(
    source: Redacted,
    input: DemuxInput,
    options: &DecodeOptions,
    stop: Arc<AtomicBool>,
    info_tx: Sender<Opened>,
    end_tx: Sender<SourceEnd>,
) {
    let (edge, segment_duration) = match &input {
        DemuxInput::Hls(s) if s.live => (Some(s.edge.clone()), Some(s.target_duration)),
        _ => (None, None),
    };
    let (mut demuxer, live, rendition, hls) = match open_input(&source, input, &stop) {
        Ok(v) => v,
        Err(e) => {
            let _ = info_tx.send(Err(e));
            return;
        }
    };
    let mut decoder = match VideoDecoder::open(&source, &demuxer, options.force_cpu) {
        Ok(d) => d,
        Err(e) => {
            let _ = info_tx.send(Err(e));
            return;
        }
    };
    let policy = if live {
        QueuePolicy::DropOldest {
            patience: Duration::from_millis(500),
        }
    } else {
        QueuePolicy::Block
    };
    let (tx, rx) = frame_queue(FRAME_QUEUE, policy, stop.clone());
    // The container's duration (AV_TIME_BASE units), for progress; live inputs have none.
    let duration = (!live && demuxer.duration() > 0)
        .then(|| Duration::try_from_secs_f64(demuxer.duration() as f64 / 1e6).ok())
        .flatten();
    let info = StreamInfo {
        source: source.to_string(),
        width: decoder.width,
        height: decoder.height,
        frame_rate: decoder.frame_rate,
        duration,
        decoder: decoder.describe(),
        live,
        rendition,
        live_edge: edge,
        segment_duration,
        protocol: None,
        protocol_why: None,
        webrtc: None,
        paced_upstream: false,
    };
    info!("decoder: {}", info.decoder);
    if info_tx.send(Ok((info, rx))).is_err() {
        return;
    }
    let result = loop {
        if let Err(e) = decoder.run(&mut demuxer, &tx, &stop) {
            break Err(e);
        }
        // An HLS timeline break ends one demuxer's input; the stream goes on in a new one.
        let Some(next) = hls.as_ref().and_then(|h| h.next_timeline()) else {
            break Ok(());
        };
        let (next, gap) = next;
        info!(
            "timeline break (discontinuity, new session, skipped segments or a gap): reopening the demuxer"
        );
        match open_hls_demuxer(&source, next, hls_hint(&demuxer), &stop)
            .and_then(|d| decoder.switch_timeline(&d, gap).map(|()| d))
        {
            Ok(d) => demuxer = d,
            Err(e) => break Err(e),
        }
    };
    let end = match result {
        Err(e) => SourceEnd::Failed(e),
        Ok(()) => match hls.and_then(|h| h.take_failure()) {
            Some(e) => SourceEnd::Failed(e.into()),
            None => SourceEnd::Finished,
        },
    };
    if tx.dropped() > 0 {
        info!(
            "decoder dropped {} frame(s) the renderer did not take in time",
            tx.dropped()
        );
    }
    let _ = end_tx.send(end);
}

/// How long the WebRTC decode loop waits for a unit before looking at the stop flag.
const UNIT_POLL: Duration = Duration::from_millis(50);

/// Decodes WebRTC's access units. The picture size is known only once the first keyframe
/// is decoded, so the stream counts as open from then (or fails after `--wait`).
fn decode_whep(
    source: Redacted,
    stream: WhepStream,
    options: &DecodeOptions,
    stop: &Arc<AtomicBool>,
    info_tx: Sender<Opened>,
    end_tx: Sender<SourceEnd>,
) {
    let mut decoder = match VideoDecoder::for_access_units(&source, options.force_cpu) {
        Ok(d) => d,
        Err(e) => {
            let _ = info_tx.send(Err(e));
            return;
        }
    };
    // Frames go out as the jitter buffer releases them: the renderer never holds the
    // network back, it skips instead.
    let (tx, rx) = frame_queue(
        FRAME_QUEUE,
        QueuePolicy::DropOldest {
            patience: Duration::from_millis(100),
        },
        stop.clone(),
    );
    let mut opening = Some((info_tx, rx));
    let give_up = Instant::now() + options.source.wait;
    let mut decoded = ff::frame::Video::empty();
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let unit = match stream.units.recv_timeout(UNIT_POLL) {
            Ok(unit) => unit,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if opening.is_some() && Instant::now() > give_up {
                    break Err(decoder.unplayable(format!(
                        "no decodable picture arrived within {:.0} s",
                        options.source.wait.as_secs_f64()
                    )));
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                break stream.failure.try_recv().map_or(Ok(()), |e| Err(e.into()));
            }
        };
        match decoder.decode_unit(&unit, &mut decoded, &tx) {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
        if decoder.index > 0
            && let Some((info_tx, rx)) = opening.take()
        {
            let info = StreamInfo {
                source: source.to_string(),
                width: decoder.width,
                height: decoder.height,
                frame_rate: None,
                duration: None,
                decoder: decoder.describe(),
                live: true,
                rendition: None,
                live_edge: None,
                segment_duration: None,
                protocol: None,
                protocol_why: None,
                webrtc: Some(stream.stats.clone()),
                paced_upstream: true,
            };
            info!("decoder: {}", info.decoder);
            if info_tx.send(Ok((info, rx))).is_err() {
                return;
            }
        }
    };
    if let Some((info_tx, _)) = opening {
        let _ = info_tx.send(Err(result
            .err()
            .unwrap_or_else(|| DecodeError::Stopped.into())));
        return;
    }
    let end = match result {
        Ok(()) => SourceEnd::Finished,
        Err(e) => SourceEnd::Failed(e),
    };
    let _ = end_tx.send(end);
}

/// Opens a demuxer on the HLS byte stream, restricted to the segment formats HLS allows
/// and to no protocols at all. A network failure while probing explains more than
/// FFmpeg's end-of-file, so it wins.
fn open_hls_demuxer(
    source: &Redacted,
    reader: SegmentReader,
    hint: &str,
    stop: &Arc<AtomicBool>,
) -> Result<ff::format::context::Input> {
    let handle = reader.handle();
    let io = ff::format::context::StreamIo::from_read(reader).map_err(|e| DecodeError::Open {
        source_name: source.clone(),
        source: e,
    })?;
    let mut options = ff::Dictionary::new();
    options.set("format_whitelist", SEGMENT_FORMATS);
    options.set("protocol_whitelist", SEGMENT_PROTOCOLS);
    let stop = stop.clone();
    ff::format::input_from_stream_with_interrupt(io, Some(hint), Some(options), move || {
        stop.load(Ordering::Relaxed)
    })
    .map_err(|e| match handle.take_failure() {
        Some(failure) => failure.into(),
        None => DecodeError::Unplayable {
            source_name: source.clone(),
            reason: format!("segments could not be demuxed ({e})"),
        }
        .into(),
    })
}

/// The file name hint for FFmpeg's probe, matching the demuxer already in use.
fn hls_hint(demuxer: &ff::format::context::Input) -> &'static str {
    if demuxer.format().name().contains("mp4") {
        "stream.mp4"
    } else {
        "stream.ts"
    }
}

type OpenedInput = (
    ff::format::context::Input,
    bool,
    Option<String>,
    Option<SegmentReader>,
);

fn open_input(source: &Redacted, input: DemuxInput, stop: &Arc<AtomicBool>) -> Result<OpenedInput> {
    let open_err = |e: ff::Error| DecodeError::Open {
        source_name: source.clone(),
        source: e,
    };
    match input {
        DemuxInput::Hls(stream) => {
            let handle = stream.reader.handle();
            let hint = if stream.fmp4 {
                "stream.mp4"
            } else {
                "stream.ts"
            };
            let demuxer = open_hls_demuxer(source, stream.reader, hint, stop)?;
            let rendition = stream.rendition.map(|r| r.to_string());
            Ok((demuxer, stream.live, rendition, Some(handle)))
        }
        DemuxInput::Ffmpeg(url) => {
            let demuxer = ff::format::input(&url).map_err(open_err)?;
            let live = ["rtmp", "rtmps", "rtsp", "srt", "udp", "tcp", "rtp"]
                .iter()
                .any(|s| url.starts_with(&format!("{s}://")));
            Ok((demuxer, live, None, None))
        }
        DemuxInput::TestPattern => {
            let lavfi = ff::device::input::video()
                .find(|f| f.name() == "lavfi")
                .ok_or_else(|| open_err(ff::Error::DemuxerNotFound))?;
            let ctx = ff::format::open(TEST_PATTERN, &lavfi).map_err(open_err)?;
            Ok((ctx.input(), false, None, None))
        }
    }
}

/// Input format and size, output size: when any changes, the converter is rebuilt.
type ScalerKey = (Pixel, u32, u32, Pixel, u32, u32);

struct VideoDecoder {
    source: Redacted,
    stream_index: usize,
    time_base: ff::Rational,
    decoder: ff::decoder::Video,
    codec_name: String,
    hw: Option<hwaccel::HwDecode>,
    /// Why hardware decode is not used, when it is not.
    no_hw_reason: Option<String>,
    width: u32,
    height: u32,
    frame_rate: Option<f64>,
    /// Converter to YUV420P at the output size, keyed by input format and both sizes.
    scaler: Option<(ScalerKey, ff::software::scaling::Context)>,
    /// True once "scaled down" was logged.
    scaled_down: bool,
    /// Test hook for crash handling: panic after this many frames
    /// (`LUCID_TEST_PANIC_AFTER_FRAMES`), to check that a panic still finalizes outputs.
    panic_after: Option<u64>,
    first_ts: Option<i64>,
    /// Presentation time of the current timeline's first frame (breaks keep time going).
    pts_base: Duration,
    last_pts: Duration,
    index: u64,
    force_cpu: bool,
    /// Decoding a real-time stream (WebRTC): no frame threads.
    low_delay: bool,
    /// Timestamps of frames to decode but not show (the jitter buffer caught up).
    hidden: VecDeque<i64>,
}

impl VideoDecoder {
    fn open(
        source: &Redacted,
        demuxer: &ff::format::context::Input,
        force_cpu: bool,
    ) -> Result<Self> {
        let stream = demuxer
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| DecodeError::Unplayable {
                source_name: source.clone(),
                reason: "the stream has no video".into(),
            })?;
        let rate = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0)
            .map(f64::from)
            .filter(|r| *r > 0.0 && *r < 1000.0);
        let params = stream.parameters();
        let (decoder, hw, reason) = Self::make_decoder(source, &params, force_cpu, false)?;
        let Some((width, height)) = fit_video_size(decoder.width(), decoder.height()) else {
            return Err(DecodeError::Unplayable {
                source_name: source.clone(),
                reason: format!(
                    "the video reports a {}x{} picture",
                    decoder.width(),
                    decoder.height()
                ),
            }
            .into());
        };
        let mut this = Self::with_decoder(source, decoder, hw, reason, force_cpu, false);
        this.stream_index = stream.index();
        this.time_base = stream.time_base();
        this.width = width;
        this.height = height;
        this.frame_rate = rate;
        Ok(this)
    }

    /// A decoder for WebRTC's H.264 access units: no demuxer, parameters in band,
    /// timestamps in microseconds, and slice threads (frame threads hold frames back).
    fn for_access_units(source: &Redacted, force_cpu: bool) -> Result<Self> {
        let codec =
            ff::decoder::find(ff::codec::Id::H264).ok_or_else(|| DecodeError::Unplayable {
                source_name: source.clone(),
                reason: "this FFmpeg has no H.264 decoder".into(),
            })?;
        let params =
            ff::codec::Parameters::from(ff::codec::Context::new_with_codec(codec).decoder());
        let (decoder, hw, reason) = Self::make_decoder(source, &params, force_cpu, true)?;
        let mut this = Self::with_decoder(source, decoder, hw, reason, force_cpu, true);
        this.time_base = ff::Rational::new(1, 1_000_000);
        Ok(this)
    }

    fn with_decoder(
        source: &Redacted,
        decoder: ff::decoder::Video,
        hw: Option<hwaccel::HwDecode>,
        no_hw_reason: Option<String>,
        force_cpu: bool,
        low_delay: bool,
    ) -> Self {
        let codec_name = decoder
            .codec()
            .map(|c| c.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        VideoDecoder {
            source: source.clone(),
            stream_index: 0,
            time_base: ff::Rational::new(1, 90_000),
            width: 0,
            height: 0,
            decoder,
            codec_name,
            hw,
            no_hw_reason,
            frame_rate: None,
            scaler: None,
            scaled_down: false,
            panic_after: std::env::var("LUCID_TEST_PANIC_AFTER_FRAMES")
                .ok()
                .and_then(|v| v.parse().ok()),
            first_ts: None,
            pts_base: Duration::ZERO,
            last_pts: Duration::ZERO,
            index: 0,
            force_cpu,
            low_delay,
            hidden: VecDeque::new(),
        }
    }

    fn make_decoder(
        source: &Redacted,
        params: &ff::codec::Parameters,
        force_cpu: bool,
        low_delay: bool,
    ) -> Result<(
        ff::decoder::Video,
        Option<hwaccel::HwDecode>,
        Option<String>,
    )> {
        let unplayable = |e: ff::Error| DecodeError::Unplayable {
            source_name: source.clone(),
            reason: format!("no decoder for this video ({e})"),
        };
        let mut ctx = ff::codec::Context::from_parameters(params.clone()).map_err(unplayable)?;
        let codec =
            ff::decoder::find(ctx.id()).ok_or_else(|| unplayable(ff::Error::DecoderNotFound))?;
        let mut hw = None;
        let mut reason = None;
        if force_cpu {
            reason = Some("--force-cpu".to_string());
        } else {
            match hwaccel::HwDecode::attach(&mut ctx, codec) {
                Ok(h) => hw = Some(h),
                Err(why) => reason = Some(why),
            }
        }
        if low_delay {
            // Frame threads each hold a frame back: a real-time stream wants none of that.
            ctx.set_flags(ff::codec::Flags::LOW_DELAY);
        }
        if hw.is_none() {
            // Software decode uses every core; hardware decoders want one thread.
            ctx.set_threading(ff::threading::Config {
                kind: if low_delay {
                    ff::threading::Type::Slice
                } else {
                    ff::threading::Type::Frame
                },
                count: 0,
                ..Default::default()
            });
        }
        match ctx.decoder().open_as(codec).and_then(|o| o.video()) {
            Ok(d) => Ok((d, hw, reason)),
            Err(e) if hw.is_some() => {
                warn!("hardware decoder failed to open ({e}); using software");
                let (d, _, _) = Self::make_decoder(source, params, true, low_delay)?;
                Ok((d, None, Some(format!("open failed: {e}"))))
            }
            Err(e) => Err(unplayable(e).into()),
        }
    }

    /// Continues on a new demuxer after a timeline break: new stream index and time base,
    /// a fresh decoder (the codec or its parameters may have changed), and presentation
    /// time carried on from the last frame so playback neither waits nor jumps.
    /// `gap` is stream time with no media before what follows (HLS `EXT-X-GAP`).
    fn switch_timeline(
        &mut self,
        demuxer: &ff::format::context::Input,
        gap: Duration,
    ) -> Result<()> {
        let stream = demuxer
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| DecodeError::Unplayable {
                source_name: self.source.clone(),
                reason: "the stream has no video after a discontinuity".into(),
            })?;
        let (decoder, hw, reason) = Self::make_decoder(
            &self.source,
            &stream.parameters(),
            self.force_cpu || self.hw_failed(),
            false,
        )?;
        self.stream_index = stream.index();
        self.time_base = stream.time_base();
        self.decoder = decoder;
        self.hw = hw;
        self.no_hw_reason = reason;
        self.first_ts = None;
        let step = Duration::from_secs_f64(1.0 / self.frame_rate.unwrap_or(30.0));
        self.pts_base = self.last_pts + step + gap;
        Ok(())
    }

    fn hw_failed(&self) -> bool {
        self.no_hw_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("it failed"))
    }

    fn describe(&self) -> String {
        match &self.hw {
            Some(h) => format!("{} (hardware: {})", self.codec_name, h.device),
            None => match &self.no_hw_reason {
                Some(why) => format!("{} (software; no hardware decode: {why})", self.codec_name),
                None => format!("{} (software)", self.codec_name),
            },
        }
    }

    /// Demuxes and decodes until the input ends, Lucid stops, or the renderer goes away.
    fn run(
        &mut self,
        demuxer: &mut ff::format::context::Input,
        tx: &FrameSender,
        stop: &AtomicBool,
    ) -> Result<()> {
        let mut decoded = ff::frame::Video::empty();
        let mut errors_in_row = 0;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // A fresh packet each time: av_read_frame does not release what a reused
            // packet still references, which leaked every packet's data.
            let mut packet = ff::Packet::empty();
            match packet.read(demuxer) {
                Ok(()) => {}
                Err(ff::Error::Eof) => break,
                Err(ff::Error::InvalidData) => continue,
                Err(e) => {
                    // Custom IO reports the end of the HLS byte stream as an error on some
                    // paths; a genuine network failure is in the HLS failure slot.
                    warn!("demuxer stopped: {e}");
                    break;
                }
            }
            if packet.stream() != self.stream_index {
                continue;
            }
            if let Err(e) = self.decoder.send_packet(&packet) {
                errors_in_row += 1;
                if self.hw.is_some() && self.index == 0 {
                    self.fall_back_to_software(&e)?;
                    continue;
                }
                if errors_in_row > 200 {
                    return Err(self.unplayable(format!("the decoder keeps failing ({e})")));
                }
                continue;
            }
            errors_in_row = 0;
            if !self.drain(&mut decoded, tx)? {
                return Ok(());
            }
        }
        let _ = self.decoder.send_eof();
        self.drain(&mut decoded, tx)?;
        Ok(())
    }

    /// Decodes one WebRTC access unit; frames not to be shown are decoded and dropped.
    /// False when the renderer is gone.
    fn decode_unit(
        &mut self,
        unit: &AccessUnit,
        decoded: &mut ff::frame::Video,
        tx: &FrameSender,
    ) -> Result<bool> {
        let mut packet = ff::Packet::copy(&unit.data);
        let pts = i64::try_from(unit.pts.as_micros()).unwrap_or(i64::MAX);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(pts));
        if !unit.show {
            self.hidden.push_back(pts);
            if self.hidden.len() > FRAME_QUEUE * 4 {
                self.hidden.pop_front();
            }
        }
        if let Err(e) = self.decoder.send_packet(&packet) {
            if self.hw.is_some() && self.index == 0 {
                self.fall_back_to_software(&e)?;
                return Ok(true);
            }
            // A broken unit: the session asks for a keyframe on losses; this one is dropped.
            tracing::debug!("decoder refused a WebRTC frame: {e}");
            return Ok(true);
        }
        self.drain(decoded, tx)
    }

    fn fall_back_to_software(&mut self, e: &ff::Error) -> Result<()> {
        warn!("hardware decode failed ({e}); falling back to software");
        let params = ff::codec::Parameters::from(&self.decoder);
        let (d, _, _) = Self::make_decoder(&self.source, &params, true, self.low_delay)?;
        self.decoder = d;
        self.hw = None;
        self.no_hw_reason = Some(format!("it failed: {e}"));
        info!("decoder: {}", self.describe());
        Ok(())
    }

    /// Receives every frame the decoder has ready. False when the renderer is gone.
    fn drain(&mut self, decoded: &mut ff::frame::Video, tx: &FrameSender) -> Result<bool> {
        while self.decoder.receive_frame(decoded).is_ok() {
            if let Some(ts) = decoded.timestamp()
                && let Some(at) = self.hidden.iter().position(|h| *h == ts)
            {
                self.hidden.remove(at);
                continue;
            }
            let frame = match &self.hw {
                Some(hw) if hw.holds(decoded) => match hw.download(decoded) {
                    Ok(sw) => self.pack(&sw)?,
                    Err(e) => {
                        warn!(
                            "copying a frame from the GPU failed ({e}); falling back to software"
                        );
                        self.fall_back_to_software(&e)?;
                        return Ok(true);
                    }
                },
                _ => self.pack(decoded)?,
            };
            if self.panic_after.is_some_and(|n| self.index > n) {
                panic!("LUCID_TEST_PANIC_AFTER_FRAMES reached: a deliberate panic");
            }
            if !tx.send(frame) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Converts to packed 4:2:0 (Y'CbCr sources) or RGBA (RGB sources), scaled to fit
    /// [`MAX_TEXTURE_SIDE`] when larger, with a presentation time relative to the first
    /// frame.
    fn pack(&mut self, src: &ff::frame::Video) -> Result<VideoFrame> {
        let (sw, sh) = (src.width(), src.height());
        let Some((w, h)) = fit_video_size(sw, sh) else {
            return Err(self.unplayable(format!("a decoded picture is {sw}x{sh}")));
        };
        if (w, h) != (sw, sh) && !self.scaled_down {
            self.scaled_down = true;
            warn!(
                "the video is {sw}x{sh}, beyond the {MAX_TEXTURE_SIDE}-pixel texture limit; \
                 scaling it to {w}x{h} on decode"
            );
        }
        let yuv_source = is_yuv(src.format());
        // Y'CbCr becomes 4:2:0; RGB (and palette, grey) becomes RGBA, never 4:2:0.
        let target = if yuv_source {
            Pixel::YUV420P
        } else {
            Pixel::RGBA
        };
        let as_is = (w, h) == (sw, sh)
            && (src.format() == target || (yuv_source && src.format() == Pixel::YUVJ420P));
        let converted;
        let out = if as_is {
            src
        } else {
            let key = (src.format(), sw, sh, target, w, h);
            if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
                let ctx = ff::software::scaling::Context::get(
                    src.format(),
                    sw,
                    sh,
                    target,
                    w,
                    h,
                    ff::software::scaling::Flags::BILINEAR,
                )
                .map_err(|e| {
                    self.unplayable(format!("cannot convert {:?} frames ({e})", src.format()))
                })?;
                self.scaler = Some((key, ctx));
            }
            let mut out = ff::frame::Video::empty();
            if let Some((_, ctx)) = self.scaler.as_mut() {
                ctx.run(src, &mut out)
                    .map_err(|e| self.unplayable(format!("converting a frame failed ({e})")))?;
            }
            converted = out;
            &converted
        };
        (self.width, self.height) = (w, h);
        let picture = if yuv_source {
            let (cw, ch) = frame::chroma_size(w, h);
            let full_range =
                src.format() == Pixel::YUVJ420P || src.color_range() == ff::color::Range::JPEG;
            let matrix = match src.color_space() {
                ff::color::Space::BT709 => ColorMatrix::Bt709,
                ff::color::Space::BT470BG | ff::color::Space::SMPTE170M => ColorMatrix::Bt601,
                _ => ColorMatrix::conventional(h),
            };
            Picture::Yuv420 {
                y: packed_plane(out, 0, w, h),
                u: packed_plane(out, 1, cw, ch),
                v: packed_plane(out, 2, cw, ch),
                matrix,
                full_range,
            }
        } else {
            Picture::Rgba(packed_plane(out, 0, w * 4, h))
        };
        let pts = self.pts_of(src);
        let frame = VideoFrame {
            index: self.index,
            pts,
            width: w,
            height: h,
            picture,
        };
        self.index += 1;
        Ok(frame)
    }

    fn unplayable(&self, reason: String) -> LucidError {
        DecodeError::Unplayable {
            source_name: self.source.clone(),
            reason,
        }
        .into()
    }

    fn pts_of(&mut self, f: &ff::frame::Video) -> Duration {
        let step = Duration::from_secs_f64(1.0 / self.frame_rate.unwrap_or(30.0));
        let pts = match f.timestamp() {
            Some(ts) => {
                let first = *self.first_ts.get_or_insert(ts);
                // Timestamps come from the stream: saturate, and never let a nonsense one
                // (negative, or beyond what a Duration holds) reach the clock.
                let secs = ts.saturating_sub(first) as f64 * f64::from(self.time_base);
                match Duration::try_from_secs_f64(secs) {
                    Ok(d) => self.pts_base.saturating_add(d),
                    Err(_) => self.last_pts + step,
                }
            }
            None if self.first_ts.is_none() && self.index == 0 => self.pts_base,
            None => self.last_pts + step,
        };
        self.last_pts = pts;
        pts
    }
}

/// Copies one plane without FFmpeg's row padding.
/// True for the Y'CbCr pixel formats (which keep their matrix and range through a scale);
/// false for RGB, palette and grey formats, which swscale converts.
fn is_yuv(format: Pixel) -> bool {
    const YUV: &[&str] = &[
        "yuv", "yuvj", "nv", "p0", "p2", "p4", "yuyv", "uyvy", "yvyu", "ayuv", "vuya", "xv3",
        "y210", "y212", "v30x",
    ];
    format
        .descriptor()
        .is_some_and(|d| YUV.iter().any(|prefix| d.name().starts_with(prefix)))
}

fn packed_plane(frame: &ff::frame::Video, plane: usize, width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let stride = frame.stride(plane);
    let data = frame.data(plane);
    if stride == w {
        return data[..w * h].to_vec();
    }
    let mut out = Vec::with_capacity(w * h);
    for row in data.chunks(stride).take(h) {
        out.extend_from_slice(&row[..w]);
    }
    out
}

/// The size a decoded picture is uploaded at: its own, or scaled to fit [`MAX_TEXTURE_SIDE`]
/// keeping its aspect ratio (even sides, as 4:2:0 needs). `None` for an empty picture.
pub fn fit_video_size(width: u32, height: u32) -> Option<(u32, u32)> {
    if width == 0 || height == 0 {
        return None;
    }
    let longest = width.max(height);
    if longest <= MAX_TEXTURE_SIDE {
        return Some((width, height));
    }
    let scale = f64::from(MAX_TEXTURE_SIDE) / f64::from(longest);
    let side = |v: u32| frame::even_side(f64::from(v) * scale);
    Some((side(width), side(height)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_formats_are_told_from_rgb_ones() {
        for p in [
            Pixel::YUV420P,
            Pixel::YUVJ420P,
            Pixel::NV12,
            Pixel::YUYV422,
            Pixel::YUV444P,
        ] {
            assert!(is_yuv(p), "{p:?}");
        }
        for p in [
            Pixel::RGB24,
            Pixel::RGBA,
            Pixel::BGRA,
            Pixel::PAL8,
            Pixel::GRAY8,
            Pixel::GBRP,
        ] {
            assert!(!is_yuv(p), "{p:?}");
        }
    }

    #[test]
    fn oversized_and_empty_pictures() {
        assert_eq!(fit_video_size(0, 720), None);
        assert_eq!(fit_video_size(1280, 0), None);
        assert_eq!(fit_video_size(1280, 720), Some((1280, 720)));
        assert_eq!(fit_video_size(16448, 16), Some((8192, 8)));
        assert_eq!(fit_video_size(16, 100_000), Some((2, 8192)));
        assert_eq!(fit_video_size(u32::MAX, u32::MAX), Some((8192, 8192)));
    }
}
