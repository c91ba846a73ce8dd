//! The decode thread: demux and decode with FFmpeg (hardware first, software fallback),
//! convert to packed 4:2:0 and hand frames to the render side through a bounded queue.

pub mod frame;
mod hwaccel;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use ff::format::Pixel;
use ffmpeg_next as ff;
use tracing::{info, warn};

pub use frame::{ColorMatrix, FrameReceiver, FrameSender, QueuePolicy, VideoFrame, frame_queue};

use crate::error::{LucidError, Result};
use crate::source::SourceSpec;
use crate::source::hls::{HlsSource, HlsStream, LiveEdge, SegmentReader};

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
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Never try hardware decode.
    pub force_cpu: bool,
    /// How long to wait for a stream that is not live yet.
    pub wait: Duration,
}

/// The running decode thread and its outputs.
pub struct DecodeThread {
    /// What the stream is.
    pub info: StreamInfo,
    /// Decoded frames, in order.
    pub frames: FrameReceiver,
    /// Receives exactly one message when the stream ends.
    pub end: Receiver<SourceEnd>,
    /// The thread itself.
    pub handle: JoinHandle<()>,
}

/// The lavfi graph behind the built-in test pattern: moving, colourful, and 4:2:0 so it
/// takes the same upload path as real video.
pub const TEST_PATTERN: &str = "testsrc2=size=1280x720:rate=30,format=yuv420p";

impl DecodeThread {
    /// Opens `spec` and starts decoding. Returns once the stream's format is known, or with
    /// the error that makes it unplayable.
    pub fn spawn(
        spec: &SourceSpec,
        options: DecodeOptions,
        stop: Arc<AtomicBool>,
    ) -> Result<DecodeThread> {
        ff::init().map_err(|e| LucidError::Render(format!("FFmpeg failed to initialise: {e}")))?;
        ff::device::register_all();
        ff::util::log::set_level(ff::util::log::Level::Error);

        let source = spec.display_name();
        let input = match spec {
            SourceSpec::Hls(url) => {
                InputKind::Hls(HlsSource::new().open(url, options.wait, stop.clone())?)
            }
            SourceSpec::Ffmpeg(s) => InputKind::Ffmpeg(s.clone()),
            SourceSpec::TestPattern => InputKind::TestPattern,
        };
        let (info_tx, info_rx) = bounded(1);
        let (end_tx, end_rx) = bounded(1);
        let handle = std::thread::Builder::new()
            .name("lucid-decode".into())
            .spawn(move || decode_main(source, input, options, stop, info_tx, end_tx))
            .expect("spawning a thread");
        match info_rx.recv() {
            Ok(Ok((info, frames))) => Ok(DecodeThread {
                info,
                frames,
                end: end_rx,
                handle,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LucidError::Render(
                "the decode thread died while opening the input".into(),
            )),
        }
    }
}

enum InputKind {
    Hls(HlsStream),
    Ffmpeg(String),
    TestPattern,
}

type Opened = std::result::Result<(StreamInfo, FrameReceiver), LucidError>;

fn decode_main(
    source: String,
    input: InputKind,
    options: DecodeOptions,
    stop: Arc<AtomicBool>,
    info_tx: Sender<Opened>,
    end_tx: Sender<SourceEnd>,
) {
    let (edge, segment_duration) = match &input {
        InputKind::Hls(s) if s.live => (Some(s.edge.clone()), Some(s.target_duration)),
        _ => (None, None),
    };
    let (mut demuxer, live, rendition, hls) = match open_input(&source, input) {
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
    let info = StreamInfo {
        source: source.clone(),
        width: decoder.width,
        height: decoder.height,
        frame_rate: decoder.frame_rate,
        decoder: decoder.describe(),
        live,
        rendition,
        live_edge: edge,
        segment_duration,
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
        info!(
            "timeline break (discontinuity, new session or skipped segments): reopening the demuxer"
        );
        match open_hls_demuxer(&source, next, hls_hint(&demuxer))
            .and_then(|d| decoder.switch_timeline(&d).map(|()| d))
        {
            Ok(d) => demuxer = d,
            Err(e) => break Err(e),
        }
    };
    let end = match result {
        Err(e) => SourceEnd::Failed(e),
        Ok(()) => match hls.and_then(|h| h.take_failure()) {
            Some(e) => SourceEnd::Failed(e),
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

/// Opens a demuxer on the HLS byte stream. A network failure while probing explains more
/// than FFmpeg's end-of-file, so it wins.
fn open_hls_demuxer(
    source: &str,
    reader: SegmentReader,
    hint: &str,
) -> Result<ff::format::context::Input> {
    let handle = reader.handle();
    let io =
        ff::format::context::StreamIo::from_read(reader).map_err(|e| LucidError::InputOpen {
            source_name: source.to_string(),
            reason: e.to_string(),
        })?;
    ff::format::input_from_stream(io, Some(hint), None).map_err(|e| {
        handle.take_failure().unwrap_or(LucidError::Unplayable {
            source_name: source.to_string(),
            reason: format!("segments could not be demuxed ({e})"),
        })
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

fn open_input(source: &str, input: InputKind) -> Result<OpenedInput> {
    let open_err = |e: ff::Error| LucidError::InputOpen {
        source_name: source.to_string(),
        reason: e.to_string(),
    };
    match input {
        InputKind::Hls(stream) => {
            let handle = stream.reader.handle();
            let hint = if stream.fmp4 {
                "stream.mp4"
            } else {
                "stream.ts"
            };
            let demuxer = open_hls_demuxer(source, stream.reader, hint)?;
            let rendition = stream.rendition.map(|r| r.to_string());
            Ok((demuxer, stream.live, rendition, Some(handle)))
        }
        InputKind::Ffmpeg(url) => {
            let demuxer = ff::format::input(&url).map_err(open_err)?;
            let live = ["rtmp", "rtmps", "rtsp", "srt", "udp", "tcp", "rtp"]
                .iter()
                .any(|s| url.starts_with(&format!("{s}://")));
            Ok((demuxer, live, None, None))
        }
        InputKind::TestPattern => {
            let lavfi = ff::device::input::video()
                .find(|f| f.name() == "lavfi")
                .ok_or_else(|| LucidError::InputOpen {
                    source_name: source.to_string(),
                    reason: "this FFmpeg has no lavfi input device".into(),
                })?;
            let ctx = ff::format::open(TEST_PATTERN, &lavfi).map_err(open_err)?;
            Ok((ctx.input(), false, None, None))
        }
    }
}

struct VideoDecoder {
    source: String,
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
    scaler: Option<(Pixel, u32, u32, ff::software::scaling::Context)>,
    first_ts: Option<i64>,
    /// Presentation time of the current timeline's first frame (breaks keep time going).
    pts_base: Duration,
    last_pts: Duration,
    index: u64,
    force_cpu: bool,
}

impl VideoDecoder {
    fn open(source: &str, demuxer: &ff::format::context::Input, force_cpu: bool) -> Result<Self> {
        let stream = demuxer
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| LucidError::Unplayable {
                source_name: source.to_string(),
                reason: "the stream has no video".into(),
            })?;
        let rate = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0)
            .map(f64::from)
            .filter(|r| *r > 0.0 && *r < 1000.0);
        let params = stream.parameters();
        let (decoder, hw, reason) = Self::make_decoder(source, &params, force_cpu)?;
        let codec_name = decoder
            .codec()
            .map(|c| c.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        Ok(VideoDecoder {
            source: source.to_string(),
            stream_index: stream.index(),
            time_base: stream.time_base(),
            width: decoder.width(),
            height: decoder.height(),
            decoder,
            codec_name,
            hw,
            no_hw_reason: reason,
            frame_rate: rate,
            scaler: None,
            first_ts: None,
            pts_base: Duration::ZERO,
            last_pts: Duration::ZERO,
            index: 0,
            force_cpu,
        })
    }

    fn make_decoder(
        source: &str,
        params: &ff::codec::Parameters,
        force_cpu: bool,
    ) -> Result<(
        ff::decoder::Video,
        Option<hwaccel::HwDecode>,
        Option<String>,
    )> {
        let unplayable = |e: ff::Error| LucidError::Unplayable {
            source_name: source.to_string(),
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
            // SAFETY: ctx is a fresh, unopened context for `codec`.
            match unsafe { hwaccel::attach(ctx.as_mut_ptr(), codec.as_ptr()) } {
                Ok(h) => hw = Some(h),
                Err(why) => reason = Some(why),
            }
        }
        if hw.is_none() {
            // Software decode uses every core; hardware decoders want one thread.
            ctx.set_threading(ff::threading::Config {
                kind: ff::threading::Type::Frame,
                count: 0,
                ..Default::default()
            });
        }
        match ctx.decoder().open_as(codec).and_then(|o| o.video()) {
            Ok(d) => Ok((d, hw, reason)),
            Err(e) if hw.is_some() => {
                warn!("hardware decoder failed to open ({e}); using software");
                let (d, _, _) = Self::make_decoder(source, params, true)?;
                Ok((d, None, Some(format!("open failed: {e}"))))
            }
            Err(e) => Err(unplayable(e)),
        }
    }

    /// Continues on a new demuxer after a timeline break: new stream index and time base,
    /// a fresh decoder (the codec or its parameters may have changed), and presentation
    /// time carried on from the last frame so playback neither waits nor jumps.
    fn switch_timeline(&mut self, demuxer: &ff::format::context::Input) -> Result<()> {
        let stream = demuxer
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| LucidError::Unplayable {
                source_name: self.source.clone(),
                reason: "the stream has no video after a discontinuity".into(),
            })?;
        let (decoder, hw, reason) = Self::make_decoder(
            &self.source,
            &stream.parameters(),
            self.force_cpu || self.hw_failed(),
        )?;
        self.stream_index = stream.index();
        self.time_base = stream.time_base();
        self.decoder = decoder;
        self.hw = hw;
        self.no_hw_reason = reason;
        self.first_ts = None;
        let step = Duration::from_secs_f64(1.0 / self.frame_rate.unwrap_or(30.0));
        self.pts_base = self.last_pts + step;
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
                    return Err(LucidError::Unplayable {
                        source_name: self.source.clone(),
                        reason: format!("the decoder keeps failing ({e})"),
                    });
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

    fn fall_back_to_software(&mut self, e: &ff::Error) -> Result<()> {
        warn!("hardware decode failed ({e}); falling back to software");
        let params = ff::codec::Parameters::from(&self.decoder);
        let (d, _, _) = Self::make_decoder(&self.source, &params, true)?;
        self.decoder = d;
        self.hw = None;
        self.no_hw_reason = Some(format!("it failed: {e}"));
        info!("decoder: {}", self.describe());
        Ok(())
    }

    /// Receives every frame the decoder has ready. False when the renderer is gone.
    fn drain(&mut self, decoded: &mut ff::frame::Video, tx: &FrameSender) -> Result<bool> {
        while self.decoder.receive_frame(decoded).is_ok() {
            let frame = match &self.hw {
                Some(hw) if decoded.format() == Pixel::from(hw.pix_fmt) => {
                    let mut sw = ff::frame::Video::empty();
                    // SAFETY: both frames are valid; `decoded` holds a hardware frame.
                    if let Err(e) = unsafe { hwaccel::download(decoded.as_ptr(), sw.as_mut_ptr()) }
                    {
                        warn!(
                            "copying a frame from the GPU failed ({e}); falling back to software"
                        );
                        self.fall_back_to_software(&e)?;
                        return Ok(true);
                    }
                    self.pack(&sw)
                }
                _ => self.pack(decoded),
            };
            if !tx.send(frame) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Converts to packed 4:2:0 with a presentation time relative to the first frame.
    fn pack(&mut self, src: &ff::frame::Video) -> VideoFrame {
        let (w, h) = (src.width(), src.height());
        let converted;
        let yuv = if matches!(src.format(), Pixel::YUV420P | Pixel::YUVJ420P) {
            src
        } else {
            let stale = match &self.scaler {
                Some((f, sw, sh, _)) => *f != src.format() || *sw != w || *sh != h,
                None => true,
            };
            if stale {
                let ctx = ff::software::scaling::Context::get(
                    src.format(),
                    w,
                    h,
                    Pixel::YUV420P,
                    w,
                    h,
                    ff::software::scaling::Flags::BILINEAR,
                )
                .expect("swscale converts every decodable format to yuv420p");
                self.scaler = Some((src.format(), w, h, ctx));
            }
            let mut out = ff::frame::Video::empty();
            let (_, _, _, ctx) = self.scaler.as_mut().expect("set above");
            ctx.run(src, &mut out)
                .expect("scaling to a same-size yuv420p frame");
            converted = out;
            &converted
        };
        let (cw, ch) = frame::chroma_size(w, h);
        let full_range =
            src.format() == Pixel::YUVJ420P || src.color_range() == ff::color::Range::JPEG;
        let matrix = match src.color_space() {
            ff::color::Space::BT709 => ColorMatrix::Bt709,
            ff::color::Space::BT470BG | ff::color::Space::SMPTE170M => ColorMatrix::Bt601,
            _ if h >= 720 => ColorMatrix::Bt709,
            _ => ColorMatrix::Bt601,
        };
        let pts = self.pts_of(src);
        let frame = VideoFrame {
            index: self.index,
            pts,
            width: w,
            height: h,
            y: packed_plane(yuv, 0, w, h),
            u: packed_plane(yuv, 1, cw, ch),
            v: packed_plane(yuv, 2, cw, ch),
            matrix,
            full_range,
        };
        self.index += 1;
        frame
    }

    fn pts_of(&mut self, f: &ff::frame::Video) -> Duration {
        let step = Duration::from_secs_f64(1.0 / self.frame_rate.unwrap_or(30.0));
        let pts = match f.timestamp() {
            Some(ts) => {
                let first = *self.first_ts.get_or_insert(ts);
                let secs = (ts - first) as f64 * f64::from(self.time_base);
                if secs >= 0.0 {
                    self.pts_base + Duration::from_secs_f64(secs)
                } else {
                    self.last_pts + step
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
