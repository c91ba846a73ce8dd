//! `--output /dev/videoN`: the show as a virtual camera (Linux v4l2loopback) for OBS, Zoom
//! or a browser, as raw YUV 4:2:0 frames through FFmpeg's video4linux2 output device.
//!
//! The device must exist and be a character device before anything opens it: FFmpeg would
//! otherwise create a plain file of that name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ffmpeg_next as ff;

use super::OutputError;
use super::encode::TIME_BASE;
use crate::error::{LucidError, Result};

/// What to do when there is no such device.
const HOW_TO: &str = "load the v4l2loopback module first: \
    `sudo modprobe v4l2loopback devices=1 video_nr=10 card_label=Lucid exclusive_caps=1` \
    makes /dev/video10 (exclusive_caps=1 lets browsers see it)";

/// True when `text` names a V4L2 device path.
pub fn is_device(text: &str) -> bool {
    text.starts_with("/dev/video")
}

/// Checks that `path` is a character device, before anything starts.
pub fn check_device(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_char_device() => Ok(()),
        Ok(_) => Err(OutputError::plain(path, "it is not a video device").into()),
        Err(e) => Err(OutputError::new(path, format!("no such device; {HOW_TO}"), e).into()),
    }
}

/// An open virtual camera.
pub struct V4l2Output {
    path: PathBuf,
    output: ff::format::context::Output,
    encoder: ff::encoder::Video,
    stream_time_base: ff::Rational,
    last_pts: Option<i64>,
}

impl V4l2Output {
    /// Opens the device for frames of this size.
    pub fn open(path: &Path, width: u32, height: u32, frame_rate: f64) -> Result<V4l2Output> {
        check_device(path)?;
        let fail = |what: &str, e: ff::Error| LucidError::from(OutputError::new(path, what, e));
        let mut output =
            ff::format::output_as(path, "video4linux2").map_err(|e| fail("opening", e))?;
        let codec = ff::encoder::find(ff::codec::Id::RAWVIDEO)
            .ok_or_else(|| OutputError::plain(path, "this FFmpeg has no rawvideo encoder"))?;
        let mut encoder = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| fail("creating the encoder", e))?;
        encoder.set_width(width);
        encoder.set_height(height);
        encoder.set_format(ff::format::Pixel::YUV420P);
        encoder.set_time_base(TIME_BASE);
        let rate = if frame_rate.is_finite() && frame_rate >= 1.0 {
            frame_rate
        } else {
            30.0
        };
        encoder.set_frame_rate(Some(ff::Rational::from(rate)));
        let encoder = encoder
            .open_as(codec)
            .map_err(|e| fail("opening the encoder", e))?;
        let mut stream = output
            .add_stream(codec)
            .map_err(|e| fail("adding a stream", e))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(TIME_BASE);
        output
            .write_header()
            .map_err(|e| fail("starting the device", e))?;
        let stream_time_base = output
            .stream(0)
            .map(|s| s.time_base())
            .unwrap_or(ff::Rational::from(TIME_BASE));
        Ok(V4l2Output {
            path: path.to_path_buf(),
            output,
            encoder,
            stream_time_base,
            last_pts: None,
        })
    }

    /// Sends one frame; returns its size in bytes.
    pub fn write(&mut self, frame: &mut ff::frame::Video, pts: Duration) -> Result<u64> {
        let ts = super::encode::timestamp(pts, self.last_pts);
        self.last_pts = Some(ts);
        frame.set_pts(Some(ts));
        let fail =
            |what: &str, e: ff::Error| LucidError::from(OutputError::new(&self.path, what, e));
        self.encoder
            .send_frame(frame)
            .map_err(|e| fail("encoding", e))?;
        let mut packet = ff::Packet::empty();
        let mut bytes = 0;
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(TIME_BASE, self.stream_time_base);
            bytes += packet.size() as u64;
            packet
                .write(&mut self.output)
                .map_err(|e| fail("writing", e))?;
        }
        Ok(bytes)
    }

    /// Closes the device.
    pub fn finish(mut self) -> Result<()> {
        self.output
            .write_trailer()
            .map_err(|e| OutputError::new(&self.path, "closing", e).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_character_device_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("video42");
        let err = check_device(&missing).unwrap_err().to_string();
        assert!(err.contains("modprobe v4l2loopback"), "{err}");
        assert!(!missing.exists(), "nothing was created");
        let plain = dir.path().join("video7");
        std::fs::write(&plain, b"").unwrap();
        assert!(
            check_device(&plain)
                .unwrap_err()
                .to_string()
                .contains("not a video device")
        );
        // /dev/null is a character device: the check lets it through.
        assert!(check_device(Path::new("/dev/null")).is_ok());
        assert!(is_device("/dev/video0") && !is_device("frames/%d.png"));
    }
}
