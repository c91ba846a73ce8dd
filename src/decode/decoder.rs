//! One video stream's decoder: FFmpeg's decoder (hardware first, software fallback), the
//! scaler to packed 4:2:0, and the timing that turns packets into [`VideoFrame`]s.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ff::format::Pixel;
use ffmpeg_next as ff;
use tracing::{info, warn};

use super::audio::{AudioDecoder, Origin};
use super::frame::{ColorMatrix, FrameSender, MAX_TEXTURE_SIDE, Picture, VideoFrame};
use super::{DecodeError, FRAME_QUEUE, fit_video_size, frame, hwaccel};
use crate::error::{LucidError, Result};
use crate::redact::Redacted;
use crate::source::whep::AccessUnit;

/// Input format and size, output size: when any changes, the converter is rebuilt.
type ScalerKey = (Pixel, u32, u32, Pixel, u32, u32);

pub(super) struct VideoDecoder {
    source: Redacted,
    stream_index: usize,
    time_base: ff::Rational,
    decoder: ff::decoder::Video,
    codec_name: String,
    hw: Option<hwaccel::HwDecode>,
    /// Why hardware decode is not used, when it is not.
    no_hw_reason: Option<String>,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) frame_rate: Option<f64>,
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
    pub(super) index: u64,
    force_cpu: bool,
    /// Decoding a real-time stream (WebRTC): no frame threads.
    low_delay: bool,
    /// Timestamps of frames to decode but not show (the jitter buffer caught up).
    hidden: VecDeque<i64>,
}

impl VideoDecoder {
    pub(super) fn open(
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
    pub(super) fn for_access_units(source: &Redacted, force_cpu: bool) -> Result<Self> {
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

    pub(super) fn with_decoder(
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

    pub(super) fn make_decoder(
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
    pub(super) fn switch_timeline(
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

    pub(super) fn hw_failed(&self) -> bool {
        self.no_hw_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("it failed"))
    }

    pub(super) fn describe(&self) -> String {
        match &self.hw {
            Some(h) => format!("{} (hardware: {})", self.codec_name, h.device),
            None => match &self.no_hw_reason {
                Some(why) => format!("{} (software; no hardware decode: {why})", self.codec_name),
                None => format!("{} (software)", self.codec_name),
            },
        }
    }

    /// Where this timeline starts, for the sound: the first frame's source time and the
    /// stream time it was given. `None` until a frame of it was decoded.
    pub(super) fn origin(&self) -> Option<Origin> {
        self.first_ts
            .map(|ts| (ts as f64 * f64::from(self.time_base), self.pts_base))
    }

    /// Demuxes and decodes until the input ends, Lucid stops, or the renderer goes away.
    /// The sound's packets go to `audio`, when it is decoded too.
    pub(super) fn run(
        &mut self,
        demuxer: &mut ff::format::context::Input,
        tx: &FrameSender,
        mut audio: Option<&mut AudioDecoder>,
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
                if let Some(a) = audio.as_deref_mut()
                    && packet.stream() == a.stream_index()
                    && !a.decode(&packet, self.origin(), stop)
                {
                    return Ok(());
                }
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
        if let Some(a) = audio {
            a.finish(self.origin(), stop);
        }
        Ok(())
    }

    /// Decodes one WebRTC access unit; frames not to be shown are decoded and dropped.
    /// False when the renderer is gone.
    pub(super) fn decode_unit(
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

    pub(super) fn fall_back_to_software(&mut self, e: &ff::Error) -> Result<()> {
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
    pub(super) fn drain(
        &mut self,
        decoded: &mut ff::frame::Video,
        tx: &FrameSender,
    ) -> Result<bool> {
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
    pub(super) fn pack(&mut self, src: &ff::frame::Video) -> Result<VideoFrame> {
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

    pub(super) fn unplayable(&self, reason: String) -> LucidError {
        DecodeError::Unplayable {
            source_name: self.source.clone(),
            reason,
        }
        .into()
    }

    pub(super) fn pts_of(&mut self, f: &ff::frame::Video) -> Duration {
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

/// True for the Y'CbCr pixel formats (which keep their matrix and range through a scale);
/// false for RGB, palette and grey formats, which swscale converts.
pub(super) fn is_yuv(format: Pixel) -> bool {
    const YUV: &[&str] = &[
        "yuv", "yuvj", "nv", "p0", "p2", "p4", "yuyv", "uyvy", "yvyu", "ayuv", "vuya", "xv3",
        "y210", "y212", "v30x",
    ];
    format
        .descriptor()
        .is_some_and(|d| YUV.iter().any(|prefix| d.name().starts_with(prefix)))
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
