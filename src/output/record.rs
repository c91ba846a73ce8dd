//! `--record`: H.264 (libx264) in MP4 or Matroska, written by FFmpeg's muxers.

use std::path::Path;
use std::time::Duration;

use ffmpeg_next as ff;

use crate::error::{LucidError, Result};

/// Time base of recorded timestamps: fine enough for any frame rate.
const TIME_BASE: (i32, i32) = (1, 90_000);

/// The FFmpeg muxer for a record path, chosen by its extension.
pub fn container_for(path: &Path) -> Result<&'static str> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("mp4") | Some("m4v") | Some("mov") => Ok("mp4"),
        Some("mkv") => Ok("matroska"),
        _ => Err(LucidError::Usage(format!(
            "--record {}: use a .mp4 or .mkv file name",
            path.display()
        ))),
    }
}

/// Checks that the record path can be written before anything starts, so a typo in the
/// path fails in a second, not after the stream warmed up.
pub fn check_writable(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map(drop)
        .map_err(|e| LucidError::Output {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// An open recording. Frames must be YUV420P at the configured size.
pub struct Recorder {
    path: std::path::PathBuf,
    output: ff::format::context::Output,
    encoder: ff::encoder::Video,
    stream_time_base: ff::Rational,
    last_pts: Option<i64>,
    frame_duration: i64,
    frames: u64,
}

impl Recorder {
    /// Opens the file and the encoder and writes the container header.
    pub fn create(path: &Path, width: u32, height: u32, frame_rate: f64) -> Result<Recorder> {
        let fail = |what: &str, e: ff::Error| LucidError::Output {
            path: path.to_path_buf(),
            reason: format!("{what}: {e}"),
        };
        let container = container_for(path)?;
        let mut output = ff::format::output_as(&path, container).map_err(|e| fail("opening", e))?;
        let global_header = output
            .format()
            .flags()
            .contains(ff::format::Flags::GLOBAL_HEADER);
        let codec = ff::encoder::find_by_name("libx264")
            .or_else(|| ff::encoder::find(ff::codec::Id::H264))
            .ok_or_else(|| LucidError::Output {
                path: path.to_path_buf(),
                reason: "this FFmpeg has no H.264 encoder".into(),
            })?;
        let mut encoder = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| fail("creating the encoder", e))?;
        encoder.set_width(width);
        encoder.set_height(height);
        encoder.set_format(ff::format::Pixel::YUV420P);
        encoder.set_time_base(TIME_BASE);
        encoder.set_frame_rate(Some(ff::Rational::from(frame_rate)));
        // RGB -> YUV in the writer uses swscale's default BT.601 limited range; say so.
        encoder.set_colorspace(ff::color::Space::BT470BG);
        encoder.set_color_range(ff::color::Range::MPEG);
        if global_header {
            encoder.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        let mut opts = ff::Dictionary::new();
        opts.set("preset", "veryfast");
        opts.set("crf", "18");
        // No B-frames or lookahead: each frame is written as it comes, so a stop loses nothing.
        opts.set("tune", "zerolatency");
        let encoder = encoder
            .open_with(opts)
            .map_err(|e| fail("opening the encoder", e))?;
        let mut stream = output
            .add_stream(codec)
            .map_err(|e| fail("adding a stream", e))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(TIME_BASE);
        output
            .write_header()
            .map_err(|e| fail("writing the header", e))?;
        let stream_time_base = output.stream(0).expect("added above").time_base();
        Ok(Recorder {
            path: path.to_path_buf(),
            output,
            encoder,
            stream_time_base,
            last_pts: None,
            frame_duration: (TIME_BASE.1 as f64 / frame_rate.max(1.0)).round() as i64,
            frames: 0,
        })
    }

    /// Encodes one frame at `pts` (stream time of the presented frame).
    pub fn write(&mut self, frame: &mut ff::frame::Video, pts: Duration) -> Result<()> {
        let mut ts = (pts.as_secs_f64() * TIME_BASE.1 as f64).round() as i64;
        if let Some(last) = self.last_pts {
            ts = ts.max(last + 1); // the muxer needs strictly increasing timestamps
        }
        self.last_pts = Some(ts);
        frame.set_pts(Some(ts));
        frame.set_kind(ff::picture::Type::None);
        self.encoder
            .send_frame(frame)
            .map_err(|e| self.error("encoding", e))?;
        self.frames += 1;
        self.write_packets()
    }

    fn write_packets(&mut self) -> Result<()> {
        let mut packet = ff::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            // Without a duration the MP4 muxer gives the last frame none, and players
            // (FFmpeg's edit-list handling included) then drop it.
            if packet.duration() <= 0 {
                packet.set_duration(self.frame_duration);
            }
            packet.rescale_ts(TIME_BASE, self.stream_time_base);
            packet
                .write_interleaved(&mut self.output)
                .map_err(|e| self.error("writing", e))?;
        }
        Ok(())
    }

    /// Flushes the encoder and writes the trailer (MP4's index): without it the file does
    /// not play. Returns the number of frames recorded.
    pub fn finish(mut self) -> Result<u64> {
        self.encoder
            .send_eof()
            .map_err(|e| self.error("flushing", e))?;
        self.write_packets()?;
        self.output
            .write_trailer()
            .map_err(|e| self.error("finalizing", e))?;
        Ok(self.frames)
    }

    fn error(&self, what: &str, e: ff::Error) -> LucidError {
        LucidError::Output {
            path: self.path.clone(),
            reason: format!("{what}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_follows_extension() {
        assert_eq!(container_for(Path::new("a.MP4")).unwrap(), "mp4");
        assert_eq!(container_for(Path::new("a.mkv")).unwrap(), "matroska");
        assert!(container_for(Path::new("a.webm")).is_err());
        assert!(container_for(Path::new("noext")).is_err());
    }
}
