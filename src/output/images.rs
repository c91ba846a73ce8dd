//! `--output frames/%06d.png`: every rendered frame as a numbered PNG, for post-production,
//! with the canvas's RGB exactly. Numbers start at 1, as FFmpeg's image2 muxer numbers them.
//! (JPEG sequences are not built: FFmpeg's mjpeg encoder takes only full-range Y'CbCr.)

use std::path::PathBuf;

use ffmpeg_next as ff;

use super::{OutputError, readback_rows};
use crate::error::{LucidError, Result};

/// An image file pattern: one `%d` or `%0Nd`, and a `.png` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern {
    prefix: String,
    digits: usize,
    suffix: String,
}

impl ImagePattern {
    /// Parses `frames/%06d.png`; errors say what is wrong.
    pub fn parse(text: &str) -> std::result::Result<ImagePattern, String> {
        let Some(at) = text.find('%') else {
            return Err("an image sequence needs %d or %0Nd in its name (frames/%06d.png)".into());
        };
        let (prefix, rest) = text.split_at(at);
        let rest = &rest[1..];
        let digits_end = rest.find('d').ok_or("%... must end with d (%06d)")?;
        let spec = &rest[..digits_end];
        let digits = if spec.is_empty() {
            0
        } else if spec.starts_with('0')
            && spec.len() > 1
            && spec.chars().all(|c| c.is_ascii_digit())
        {
            spec[1..].parse::<usize>().map_err(|_| "bad %0Nd width")?
        } else {
            return Err(format!("%{spec}d: use %d or %0Nd"));
        };
        if digits > 12 {
            return Err(format!("%0{digits}d: at most 12 digits"));
        }
        let suffix = &rest[digits_end + 1..];
        if suffix.contains('%') || prefix.contains('%') {
            return Err("only one %d in an image sequence name".into());
        }
        // Not `Path::extension`: a suffix of just ".png" is a hidden name to it.
        let ext = suffix.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("png") => {}
            Some("jpg") | Some("jpeg") => {
                return Err("JPEG sequences are not built yet: use .png".into());
            }
            _ => return Err("an image sequence is a .png name".into()),
        }
        Ok(ImagePattern {
            prefix: prefix.to_string(),
            digits,
            suffix: suffix.to_string(),
        })
    }

    /// The file of frame `n` (from 1).
    pub fn path(&self, n: u64) -> PathBuf {
        PathBuf::from(format!(
            "{}{:0width$}{}",
            self.prefix,
            n,
            self.suffix,
            width = self.digits
        ))
    }

    /// The folder the images go to (it must exist).
    pub fn folder(&self) -> PathBuf {
        match self.path(1).parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Fails before anything starts when the folder is missing, or when the first image
    /// exists and `overwrite` was not given.
    pub fn check(&self, overwrite: bool) -> Result<()> {
        let first = self.path(1);
        if !self.folder().is_dir() {
            return Err(OutputError::plain(first, "its folder does not exist").into());
        }
        if !overwrite && std::fs::symlink_metadata(&first).is_ok() {
            return Err(OutputError::plain(
                first,
                "the file exists (pass --overwrite to replace it)",
            )
            .into());
        }
        Ok(())
    }
}

/// Writes frames (RGBA rows padded to 256 bytes, as read back) as numbered images.
pub struct ImageSequence {
    pattern: ImagePattern,
    overwrite: bool,
    encoder: ff::encoder::Video,
    rgba: ff::frame::Video,
    width: u32,
    height: u32,
    next: u64,
}

impl ImageSequence {
    /// The encoder for `pattern`'s format at the canvas size.
    pub fn create(
        pattern: ImagePattern,
        overwrite: bool,
        width: u32,
        height: u32,
    ) -> Result<ImageSequence> {
        let first = pattern.path(1);
        let fail = |what: &str, e: ff::Error| LucidError::from(OutputError::new(&first, what, e));
        let codec = ff::encoder::find_by_name("png")
            .ok_or_else(|| OutputError::plain(&first, "this FFmpeg has no PNG encoder"))?;
        let mut encoder = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| fail("creating the encoder", e))?;
        encoder.set_width(width);
        encoder.set_height(height);
        encoder.set_format(ff::format::Pixel::RGBA);
        encoder.set_time_base(ff::Rational(1, 30));
        let encoder = encoder
            .open_as(codec)
            .map_err(|e| fail("opening the encoder", e))?;
        Ok(ImageSequence {
            pattern,
            overwrite,
            encoder,
            rgba: ff::frame::Video::new(ff::format::Pixel::RGBA, width, height),
            width,
            height,
            next: 1,
        })
    }

    /// Encodes one frame into the next numbered file.
    pub fn write(&mut self, padded: &[u8]) -> Result<()> {
        let path = self.pattern.path(self.next);
        let row = self.width as usize * 4;
        let stride = self.rgba.stride(0);
        let rows: Vec<&[u8]> = readback_rows(padded, row)
            .take(self.height as usize)
            .collect();
        if rows.len() < self.height as usize || rows.iter().any(|r| r.len() < row) {
            return Err(OutputError::plain(&path, "a read-back frame had the wrong size").into());
        }
        for (dst, src) in self.rgba.data_mut(0).chunks_mut(stride).zip(rows) {
            dst[..row].copy_from_slice(src);
        }
        let fail = |what: &str, e: ff::Error| LucidError::from(OutputError::new(&path, what, e));
        self.encoder
            .send_frame(&self.rgba)
            .map_err(|e| fail("encoding", e))?;
        let mut packet = ff::Packet::empty();
        self.encoder
            .receive_packet(&mut packet)
            .map_err(|e| fail("encoding", e))?;
        let bytes = packet.data().unwrap_or_default();
        use std::io::Write;
        super::record::create_file(&path, self.overwrite)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| OutputError::new(&path, "writing the image", e))?;
        self.next += 1;
        Ok(())
    }

    /// Images written.
    pub fn written(&self) -> u64 {
        self.next - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_number_frames_as_ffmpeg_does() {
        let p = ImagePattern::parse("out/frames_%06d.png").unwrap();
        assert_eq!(p.path(1), PathBuf::from("out/frames_000001.png"));
        assert_eq!(p.folder(), PathBuf::from("out"));
        let p = ImagePattern::parse("shot-%d.PNG").unwrap();
        assert_eq!(p.path(12), PathBuf::from("shot-12.PNG"));
        assert_eq!(p.folder(), PathBuf::from("."));
        assert!(
            ImagePattern::parse("f%04d.jpg")
                .unwrap_err()
                .contains("JPEG")
        );
        assert!(
            ImagePattern::parse("frames.png")
                .unwrap_err()
                .contains("%d")
        );
        assert!(ImagePattern::parse("f%06d.gif").is_err());
        assert!(ImagePattern::parse("f%6d.png").is_err());
        assert!(ImagePattern::parse("f%d_%d.png").is_err());
        assert!(ImagePattern::parse("f%013d.png").is_err());
    }
}
