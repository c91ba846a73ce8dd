//! The H.264 encoder every encoding output opens (`--record`, `rtmp://`, `srt://`,
//! `udp://`): which encoder (`--encoder`), its rate control (`--bitrate`) and keyframe
//! interval (`--gop`), tuned for live (no B-frames, no lookahead: a frame is out as soon as
//! it is in, so a stop loses nothing and a viewer waits for nothing).

use std::time::Duration;

use ffmpeg_next as ff;
use tracing::info;

use crate::decode::ColorMatrix;
use crate::decode::hwaccel::VaapiUpload;

/// Time base of encoded timestamps: fine enough for any frame rate.
pub const TIME_BASE: (i32, i32) = (1, 90_000);

/// `--encoder`: which H.264 encoder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderChoice {
    /// NVENC where an NVIDIA driver takes it, else VAAPI where a VAAPI device opens, else
    /// libx264 (with a log line saying why).
    #[default]
    Auto,
    /// libx264, the CPU encoder.
    X264,
    /// NVIDIA's NVENC; an error where it cannot open.
    Nvenc,
    /// VAAPI (Intel, AMD); an error where it cannot open.
    Vaapi,
}

impl EncoderChoice {
    /// The FFmpeg encoders to try, in order.
    fn candidates(self) -> &'static [&'static str] {
        match self {
            EncoderChoice::Auto => &["h264_nvenc", "h264_vaapi", "libx264"],
            EncoderChoice::X264 => &["libx264"],
            EncoderChoice::Nvenc => &["h264_nvenc"],
            EncoderChoice::Vaapi => &["h264_vaapi"],
        }
    }
}

/// How every H.264 output encodes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EncoderSettings {
    /// Which encoder.
    pub choice: EncoderChoice,
    /// `--bitrate` in bits per second; without it files use constant quality and network
    /// outputs [`STREAM_BITRATE`].
    pub bitrate: Option<u64>,
    /// `--gop` in frames; without it a keyframe every two seconds.
    pub gop: Option<u32>,
}

/// Network outputs' bitrate when `--bitrate` is not given: what streaming platforms
/// suggest for 1080p30.
pub const STREAM_BITRATE: u64 = 6_000_000;

/// What the encoder writes into: a file keeps quality constant, a network output keeps
/// its bitrate within what the link was sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateGoal {
    /// A file: constant quality unless `--bitrate`.
    File,
    /// A network output: capped bitrate (VBV), so the link never sees bursts it cannot carry.
    Stream,
}

/// An opened H.264 encoder, with what the muxer needs to know about it.
pub struct H264Encoder {
    /// The encoder.
    pub encoder: ff::encoder::Video,
    /// The codec, for the muxer's stream.
    pub codec: ff::Codec,
    /// The FFmpeg encoder's name (`libx264`, `h264_nvenc`), for logs and stats.
    pub name: &'static str,
    /// A frame's duration in [`TIME_BASE`] units.
    pub frame_duration: i64,
    /// VAAPI: the surfaces frames are copied into, and an NV12 frame to convert through.
    vaapi: Option<(VaapiUpload, ff::frame::Video)>,
}

impl H264Encoder {
    /// Hands one YUV420P frame to the encoder (through a VAAPI surface for `h264_vaapi`).
    pub fn send_frame(&mut self, frame: &ff::frame::Video) -> Result<(), ff::Error> {
        match &mut self.vaapi {
            None => self.encoder.send_frame(frame),
            Some((upload, nv12)) => {
                to_nv12(frame, nv12);
                nv12.set_pts(frame.pts());
                let surface = upload.upload(nv12)?;
                self.encoder.send_frame(&surface)
            }
        }
    }
}

/// YUV420P into NV12 (the chroma planes interleaved), the format VAAPI surfaces take.
fn to_nv12(src: &ff::frame::Video, dst: &mut ff::frame::Video) {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (sy, dy) = (src.stride(0), dst.stride(0));
    for row in 0..h {
        dst.data_mut(0)[row * dy..row * dy + w]
            .copy_from_slice(&src.data(0)[row * sy..row * sy + w]);
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (su, sv, duv) = (src.stride(1), src.stride(2), dst.stride(1));
    for row in 0..ch {
        let u = &src.data(1)[row * su..row * su + cw];
        let v = &src.data(2)[row * sv..row * sv + cw];
        let out = &mut dst.data_mut(1)[row * duv..row * duv + 2 * cw];
        for (i, pair) in out.chunks_exact_mut(2).enumerate() {
            pair[0] = u[i];
            pair[1] = v[i];
        }
    }
}

/// Why no encoder could be opened: each candidate and its error.
#[derive(Debug)]
pub struct NoEncoder(pub Vec<(&'static str, String)>);

impl std::fmt::Display for NoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tried: Vec<String> = self.0.iter().map(|(n, e)| format!("{n}: {e}")).collect();
        write!(f, "no H.264 encoder opened ({})", tried.join("; "))
    }
}

impl std::error::Error for NoEncoder {}

/// The shape of the frames an encoder is opened for.
#[derive(Debug, Clone, Copy)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames a second (container headers, GOP length).
    pub frame_rate: f64,
    /// The matrix the YUV was converted with (limited range).
    pub matrix: ColorMatrix,
}

impl H264Encoder {
    /// Opens the first encoder of `settings.choice` that opens; an automatic choice that
    /// falls back says so in the log.
    pub fn open(
        settings: &EncoderSettings,
        picture: Picture,
        goal: RateGoal,
        global_header: bool,
    ) -> Result<H264Encoder, NoEncoder> {
        let mut failures = Vec::new();
        for &name in settings.choice.candidates() {
            match open_one(name, settings, picture, goal, global_header) {
                Ok(encoder) => {
                    if !failures.is_empty() {
                        let tried: Vec<String> = failures
                            .iter()
                            .map(|(n, e): &(&str, String)| format!("{n} ({e})"))
                            .collect();
                        info!("encoder: {name}; not available: {}", tried.join(", "));
                    }
                    return Ok(encoder);
                }
                Err(e) => failures.push((name, e)),
            }
        }
        Err(NoEncoder(failures))
    }
}

fn open_one(
    name: &'static str,
    settings: &EncoderSettings,
    picture: Picture,
    goal: RateGoal,
    global_header: bool,
) -> Result<H264Encoder, String> {
    // Without the device there is nothing to try: FFmpeg would only print its own error
    // lines (`Cannot load libcuda.so.1`) before failing the same way.
    match name {
        "h264_nvenc" if !std::path::Path::new("/dev/nvidiactl").exists() => {
            return Err("no NVIDIA device (/dev/nvidiactl)".into());
        }
        "h264_vaapi" if !has_render_node() => {
            return Err("no VAAPI device (no /dev/dri/renderD* node)".into());
        }
        _ => {}
    }
    let codec = ff::encoder::find_by_name(name).ok_or("not in this FFmpeg")?;
    let mut encoder = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| e.to_string())?;
    let rate = if picture.frame_rate.is_finite() && picture.frame_rate >= 1.0 {
        picture.frame_rate
    } else {
        30.0
    };
    encoder.set_width(picture.width);
    encoder.set_height(picture.height);
    encoder.set_format(ff::format::Pixel::YUV420P);
    encoder.set_time_base(TIME_BASE);
    encoder.set_frame_rate(Some(ff::Rational::from(rate)));
    // A keyframe every two seconds by default: each fragment of a killed recording
    // decodes, and a viewer joining a stream waits at most that long.
    encoder.set_gop(settings.gop.unwrap_or((rate * 2.0).round() as u32).max(1));
    encoder.set_max_b_frames(0);
    // The GPU's RGB -> YUV pass (shaders/rgb_to_yuv.wgsl) writes this matrix, limited
    // range; say so.
    encoder.set_colorspace(match picture.matrix {
        ColorMatrix::Bt601 => ff::color::Space::BT470BG,
        ColorMatrix::Bt709 => ff::color::Space::BT709,
    });
    encoder.set_color_range(ff::color::Range::MPEG);
    if global_header {
        encoder.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let vaapi = if name == "h264_vaapi" {
        let ctx: &mut ff::codec::Context = &mut encoder;
        let upload = VaapiUpload::attach(ctx, picture.width, picture.height)?;
        let nv12 = ff::frame::Video::new(ff::format::Pixel::NV12, picture.width, picture.height);
        Some((upload, nv12))
    } else {
        None
    };
    let bitrate = match goal {
        RateGoal::File => settings.bitrate,
        RateGoal::Stream => Some(settings.bitrate.unwrap_or(STREAM_BITRATE)),
    };
    let mut opts = ff::Dictionary::new();
    if let Some(bits) = bitrate {
        encoder.set_bit_rate(bits as usize);
        encoder.set_max_bit_rate(bits as usize);
        // A one-second buffer: the bitrate holds over any second, as platforms ask.
        opts.set("bufsize", &bits.to_string());
    }
    match name {
        "libx264" => {
            opts.set("preset", "veryfast");
            if bitrate.is_none() {
                opts.set("crf", "18");
            }
            opts.set("tune", "zerolatency");
        }
        "h264_vaapi" => {
            // Constant quality where no bitrate is set (quantiser 20, near x264's CRF 18).
            if bitrate.is_none() {
                opts.set("rc_mode", "CQP");
                opts.set("qp", "20");
            } else {
                opts.set("rc_mode", "CBR");
            }
        }
        "h264_nvenc" => {
            // Low-latency preset, no lookahead; constant quality where no bitrate is set.
            opts.set("preset", "p4");
            opts.set("tune", "ll");
            if bitrate.is_none() {
                opts.set("rc", "vbr");
                opts.set("cq", "19");
            } else {
                opts.set("rc", "cbr");
            }
        }
        _ => {}
    }
    let encoder = encoder.open_with(opts).map_err(|e| e.to_string())?;
    Ok(H264Encoder {
        encoder,
        codec,
        name,
        frame_duration: (TIME_BASE.1 as f64 / rate).round() as i64,
        vaapi,
    })
}

/// True when there is a DRM render node (what VAAPI opens).
fn has_render_node() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|dir| {
        dir.filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// `pts` in [`TIME_BASE`] units, strictly after `last` (muxers need increasing timestamps).
pub fn timestamp(pts: Duration, last: Option<i64>) -> i64 {
    let ts = (pts.as_secs_f64() * TIME_BASE.1 as f64).round() as i64;
    last.map_or(ts, |last| ts.max(last + 1))
}

/// `--bitrate`: bits per second, written with an optional `k` or `M` (`6M`, `4500k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitrate(pub u64);

impl std::str::FromStr for Bitrate {
    type Err = String;

    fn from_str(text: &str) -> Result<Bitrate, String> {
        parse_bitrate(text).map(Bitrate)
    }
}

/// Parses a bitrate; the error says what is wrong.
fn parse_bitrate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        _ => (t, 1.0),
    };
    let bits = digits
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(|v| (v * scale).round() as u64)
        .ok_or_else(|| "a number of bits a second, like 6M or 4500k".to_string())?;
    if !(100_000..=200_000_000).contains(&bits) {
        return Err("use 100k to 200M".into());
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_read_like_ffmpeg_writes_them() {
        assert_eq!("6M".parse::<Bitrate>().unwrap(), Bitrate(6_000_000));
        assert_eq!("4500k".parse::<Bitrate>().unwrap(), Bitrate(4_500_000));
        assert_eq!("2.5M".parse::<Bitrate>().unwrap(), Bitrate(2_500_000));
        assert_eq!("800000".parse::<Bitrate>().unwrap(), Bitrate(800_000));
        assert!("fast".parse::<Bitrate>().is_err());
        assert!(
            "10".parse::<Bitrate>().is_err(),
            "10 bits a second is a typo"
        );
        assert!("-3M".parse::<Bitrate>().is_err());
    }

    #[test]
    fn timestamps_never_go_back() {
        assert_eq!(timestamp(Duration::from_secs(1), None), 90_000);
        assert_eq!(timestamp(Duration::from_secs(1), Some(90_000)), 90_001);
        assert_eq!(timestamp(Duration::from_secs(2), Some(90_000)), 180_000);
    }

    #[test]
    fn auto_falls_back_to_x264_and_an_explicit_choice_does_not() {
        ff::init().expect("ffmpeg");
        let picture = Picture {
            width: 64,
            height: 48,
            frame_rate: 30.0,
            matrix: ColorMatrix::Bt601,
        };
        let auto = EncoderSettings::default();
        let enc = H264Encoder::open(&auto, picture, RateGoal::Stream, false).unwrap();
        // With an NVIDIA driver NVENC opens, with a VAAPI device VAAPI; elsewhere libx264.
        assert!(
            ["h264_nvenc", "h264_vaapi", "libx264"].contains(&enc.name),
            "{}",
            enc.name
        );
        assert_eq!(enc.frame_duration, 3000);
        let x264 = EncoderSettings {
            choice: EncoderChoice::X264,
            bitrate: Some(1_000_000),
            gop: Some(15),
        };
        let enc = H264Encoder::open(&x264, picture, RateGoal::File, false).unwrap();
        assert_eq!(enc.name, "libx264");
        if !std::path::Path::new("/dev/nvidiactl").exists() {
            let nvenc = EncoderSettings {
                choice: EncoderChoice::Nvenc,
                ..auto
            };
            let err = H264Encoder::open(&nvenc, picture, RateGoal::Stream, false)
                .err()
                .expect("no NVIDIA device here");
            assert_eq!(err.0.len(), 1);
            assert!(err.to_string().contains("h264_nvenc"), "{err}");
        }
        if !std::path::Path::new("/dev/dri").exists() {
            let vaapi = EncoderSettings {
                choice: EncoderChoice::Vaapi,
                ..auto
            };
            let err = H264Encoder::open(&vaapi, picture, RateGoal::Stream, false)
                .err()
                .expect("no VAAPI device here");
            assert!(
                err.to_string().contains("h264_vaapi: no VAAPI device"),
                "{err}"
            );
        }
    }

    #[test]
    fn nv12_interleaves_the_chroma_planes() {
        ff::init().expect("ffmpeg");
        let mut src = ff::frame::Video::new(ff::format::Pixel::YUV420P, 4, 2);
        src.data_mut(0)[..4].copy_from_slice(&[1, 2, 3, 4]);
        src.data_mut(1)[..2].copy_from_slice(&[10, 11]);
        src.data_mut(2)[..2].copy_from_slice(&[20, 21]);
        let mut dst = ff::frame::Video::new(ff::format::Pixel::NV12, 4, 2);
        to_nv12(&src, &mut dst);
        assert_eq!(&dst.data(0)[..4], &[1, 2, 3, 4]);
        assert_eq!(&dst.data(1)[..4], &[10, 20, 11, 21]);
    }
}
