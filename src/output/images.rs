//! `--output frames/%06d.png` (or `.jpg`): every rendered frame as a numbered image, for
//! post-production. PNG keeps the canvas's RGB exactly; JPEG is full-range BT.601 Y'CbCr
//! 4:2:0 (JFIF's convention, the only input FFmpeg's mjpeg encoder takes) at high quality.
//! Numbers start at 1, as FFmpeg's image2 muxer numbers them.

use std::path::PathBuf;

use ffmpeg_next as ff;

use super::{OutputError, readback_rows};
use crate::error::{LucidError, Result};

/// An image file pattern: one `%d` or `%0Nd`, and a `.png` or `.jpg` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern {
    prefix: String,
    digits: usize,
    suffix: String,
    jpeg: bool,
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
        let jpeg = match ext.as_deref() {
            Some("png") => false,
            Some("jpg") | Some("jpeg") => true,
            _ => return Err("an image sequence is a .png or .jpg name".into()),
        };
        Ok(ImagePattern {
            prefix: prefix.to_string(),
            digits,
            suffix: suffix.to_string(),
            jpeg,
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
    /// The frame handed to the encoder: RGBA (PNG) or YUVJ420P (JPEG).
    picture: ff::frame::Video,
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
        let (name, format) = if pattern.jpeg {
            ("mjpeg", ff::format::Pixel::YUVJ420P)
        } else {
            ("png", ff::format::Pixel::RGBA)
        };
        let codec = ff::encoder::find_by_name(name).ok_or_else(|| {
            OutputError::plain(&first, format!("this FFmpeg has no {name} encoder"))
        })?;
        let mut encoder = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| fail("creating the encoder", e))?;
        encoder.set_width(width);
        encoder.set_height(height);
        encoder.set_format(format);
        encoder.set_time_base(ff::Rational(1, 30));
        if pattern.jpeg {
            encoder.set_color_range(ff::color::Range::JPEG);
            // Fixed quality 2 (of 2-31, lower is better): images for post-production.
            encoder.set_flags(ff::codec::Flags::QSCALE);
            encoder.set_global_quality(2 * FF_QP2LAMBDA);
        }
        let encoder = encoder
            .open_as(codec)
            .map_err(|e| fail("opening the encoder", e))?;
        Ok(ImageSequence {
            pattern,
            overwrite,
            encoder,
            picture: ff::frame::Video::new(format, width, height),
            width,
            height,
            next: 1,
        })
    }

    /// Encodes one frame into the next numbered file.
    pub fn write(&mut self, padded: &[u8]) -> Result<()> {
        let path = self.pattern.path(self.next);
        let row = self.width as usize * 4;
        let rows: Vec<&[u8]> = readback_rows(padded, row)
            .take(self.height as usize)
            .collect();
        if rows.len() < self.height as usize || rows.iter().any(|r| r.len() < row) {
            return Err(OutputError::plain(&path, "a read-back frame had the wrong size").into());
        }
        if self.pattern.jpeg {
            rgba_to_jpeg_yuv(&rows, self.width as usize, &mut self.picture);
        } else {
            let stride = self.picture.stride(0);
            for (dst, src) in self.picture.data_mut(0).chunks_mut(stride).zip(rows) {
                dst[..row].copy_from_slice(src);
            }
        }
        let fail = |what: &str, e: ff::Error| LucidError::from(OutputError::new(&path, what, e));
        self.picture.set_pts(Some(self.next as i64));
        self.encoder
            .send_frame(&self.picture)
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

/// One RGBA picture (`width * 4` bytes a row, tightly packed) as a JPEG file's bytes, at
/// good quality (quantizer 4): the HTTP API's snapshot.
pub fn jpeg_bytes(rgba: &[u8], width: u32, height: u32) -> std::result::Result<Vec<u8>, String> {
    let row = width as usize * 4;
    if width == 0 || height == 0 || rgba.len() < row * height as usize {
        return Err("the picture is empty or short".into());
    }
    let rows: Vec<&[u8]> = rgba.chunks(row).take(height as usize).collect();
    let codec = ff::encoder::find_by_name("mjpeg").ok_or("this FFmpeg has no mjpeg encoder")?;
    let mut encoder = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| e.to_string())?;
    encoder.set_width(width);
    encoder.set_height(height);
    encoder.set_format(ff::format::Pixel::YUVJ420P);
    encoder.set_time_base(ff::Rational(1, 30));
    encoder.set_color_range(ff::color::Range::JPEG);
    encoder.set_flags(ff::codec::Flags::QSCALE);
    encoder.set_global_quality(4 * FF_QP2LAMBDA);
    let mut encoder = encoder.open_as(codec).map_err(|e| e.to_string())?;
    let mut picture = ff::frame::Video::new(ff::format::Pixel::YUVJ420P, width, height);
    rgba_to_jpeg_yuv(&rows, width as usize, &mut picture);
    picture.set_pts(Some(0));
    encoder.send_frame(&picture).map_err(|e| e.to_string())?;
    let mut packet = ff::Packet::empty();
    encoder
        .receive_packet(&mut packet)
        .map_err(|e| e.to_string())?;
    Ok(packet.data().unwrap_or_default().to_vec())
}

/// FFmpeg's `FF_QP2LAMBDA`: quantizer to lambda units.
const FF_QP2LAMBDA: i32 = 118;

/// RGBA rows into full-range BT.601 Y'CbCr 4:2:0 (JFIF), chroma the mean of each 2x2
/// block. Alpha is dropped (the canvas is opaque).
fn rgba_to_jpeg_yuv(rows: &[&[u8]], width: usize, out: &mut ff::frame::Video) {
    let (ys, us, vs) = (out.stride(0), out.stride(1), out.stride(2));
    for (y, row) in rows.iter().enumerate() {
        let luma = &mut out.data_mut(0)[y * ys..];
        for (x, l) in luma[..width].iter_mut().enumerate() {
            let [r, g, b] = rgb(row, x);
            *l = clamp(0.299 * r + 0.587 * g + 0.114 * b);
        }
    }
    for cy in 0..rows.len().div_ceil(2) {
        for cx in 0..width.div_ceil(2) {
            let mut sum = [0.0f32; 3];
            let mut n = 0.0;
            for row in rows.iter().skip(cy * 2).take(2) {
                for x in (cx * 2)..(cx * 2 + 2).min(width) {
                    let p = rgb(row, x);
                    sum.iter_mut().zip(p).for_each(|(s, v)| *s += v);
                    n += 1.0;
                }
            }
            let [r, g, b] = sum.map(|s| s / n);
            out.data_mut(1)[cy * us + cx] = clamp(128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b);
            out.data_mut(2)[cy * vs + cx] = clamp(128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b);
        }
    }
}

fn rgb(row: &[u8], x: usize) -> [f32; 3] {
    [row[x * 4], row[x * 4 + 1], row[x * 4 + 2]].map(f32::from)
}

fn clamp(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
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
        assert!(ImagePattern::parse("f%04d.jpg").unwrap().jpeg);
        assert!(ImagePattern::parse("f%04d.JPEG").unwrap().jpeg);
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

    #[test]
    fn jpeg_colours_follow_jfif() {
        ff::init().unwrap();
        // Two columns: white | (51,102,204), two rows.
        let row: Vec<u8> = [255, 255, 255, 255, 51, 102, 204, 255].to_vec();
        let rows = [row.as_slice(), row.as_slice()];
        let mut out = ff::frame::Video::new(ff::format::Pixel::YUVJ420P, 2, 2);
        rgba_to_jpeg_yuv(&rows, 2, &mut out);
        assert_eq!(out.data(0)[0], 255);
        // Y = 0.299*51 + 0.587*102 + 0.114*204 = 98.3
        assert_eq!(out.data(0)[1], 98);
        // Chroma of the block's mean colour (153, 178.5, 229.5):
        // Cb = 128 - 0.168736*153 - 0.331264*178.5 + 0.5*229.5 = 157.8
        // Cr = 128 + 0.5*153 - 0.418688*178.5 - 0.081312*229.5 = 111.1
        let (cb, cr) = (out.data(1)[0], out.data(2)[0]);
        assert_eq!((cb, cr), (158, 111));
    }
}
