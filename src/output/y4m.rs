//! `--pipe y4m`: YUV4MPEG2 on stdout, the simplest format every video tool reads.

use std::io::Write;

use ffmpeg_next as ff;

/// Writes YUV4MPEG2 4:2:0 frames to any writer.
pub struct Y4mWriter<W: Write> {
    out: W,
    header_written: bool,
    width: u32,
    height: u32,
    rate: (i32, i32),
}

impl<W: Write> Y4mWriter<W> {
    /// A writer for frames of the given size at the nominal frame rate.
    pub fn new(out: W, width: u32, height: u32, frame_rate: f64) -> Self {
        let r = ff::Rational::from(frame_rate);
        let rate = if r.numerator() > 0 && r.denominator() > 0 {
            (r.numerator(), r.denominator())
        } else {
            (30, 1)
        };
        Y4mWriter {
            out,
            header_written: false,
            width,
            height,
            rate,
        }
    }

    /// Writes one YUV420P frame (the header goes out with the first).
    pub fn write(&mut self, frame: &ff::frame::Video) -> std::io::Result<()> {
        if !self.header_written {
            writeln!(
                self.out,
                "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C420jpeg",
                self.width, self.height, self.rate.0, self.rate.1
            )?;
            self.header_written = true;
        }
        self.out.write_all(b"FRAME\n")?;
        let (cw, ch) = crate::decode::frame::chroma_size(self.width, self.height);
        for (plane, w, h) in [(0, self.width, self.height), (1, cw, ch), (2, cw, ch)] {
            let stride = frame.stride(plane);
            let data = frame.data(plane);
            for row in 0..h as usize {
                self.out
                    .write_all(&data[row * stride..row * stride + w as usize])?;
            }
        }
        // Readers see each frame as it is presented, not when a buffer fills.
        self.out.flush()
    }
}
