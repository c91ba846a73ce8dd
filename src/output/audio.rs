//! The sound of an encoding output (`--record`, RTMP/SRT/UDP): an AAC track beside the
//! H.264 one, its samples placed by their stream time, the clock the pictures carry.
//!
//! Placing by time is what keeps the two together: whatever the picture does (speed
//! steering, drops, catch-ups), each sample lands where its timestamp says. A gap in the
//! source's sound is filled with silence, never closed up; what overlaps what is already
//! queued is cut. The track starts with the first picture and ends with the last: sound
//! from before or after the picture is not kept, missing sound at the end is silence.
//! AAC's first frame primes the decoder: FLV (RTMP) receivers and fragmented MP4 (which
//! has no edit list) lose its 21 ms; Matroska and MPEG-TS keep it.
//!
//! [`SampleLine`] is the placement alone, free of FFmpeg, so it can be tested on its own;
//! [`AudioTrack`] adds the encoder and the muxer's stream.

use std::collections::VecDeque;
use std::time::Duration;

use ffmpeg_next as ff;

use crate::decode::AudioChunk;
use crate::decode::audio::{SAMPLE_RATE, sample_index};

/// AAC's bitrate: transparent for stereo music at 48 kHz.
const AAC_BITRATE: usize = 160_000;
/// A chunk this close to where the queue ends follows it (timestamps rounded to a sample).
const SLACK: i64 = 2;
/// Sound queued before the first picture fixes where the track starts: a few seconds.
const EARLY_CHUNKS: usize = 512;

/// Stereo samples queued on the stream's timeline, in 48 kHz sample indices.
#[derive(Debug, Default)]
pub struct SampleLine {
    /// The index of the first queued sample; `None` until the first picture.
    start: Option<i64>,
    left: VecDeque<f32>,
    right: VecDeque<f32>,
    /// Chunks that came before the first picture.
    early: VecDeque<AudioChunk>,
    /// Samples of silence put in gaps.
    filled: u64,
}

impl SampleLine {
    /// The first picture's time, less `preroll` samples: the track starts there (earlier
    /// sound is cut).
    pub fn start(&mut self, at: Duration, preroll: usize) {
        if self.start.is_some() {
            return;
        }
        self.start = Some(sample_index(at) - preroll as i64);
        for chunk in std::mem::take(&mut self.early) {
            self.push(&chunk);
        }
    }

    /// True once the first picture came.
    pub fn started(&self) -> bool {
        self.start.is_some()
    }

    /// The index just past the last queued sample.
    pub fn end(&self) -> Option<i64> {
        self.start.map(|s| s + self.left.len() as i64)
    }

    /// Silence put in gaps so far, in samples.
    pub fn filled(&self) -> u64 {
        self.filled
    }

    /// Places a chunk by its time: silence before it if it starts after the queue's end,
    /// its first samples cut if it starts before.
    pub fn push(&mut self, chunk: &AudioChunk) {
        let Some(end) = self.end() else {
            if self.early.len() == EARLY_CHUNKS {
                self.early.pop_front();
            }
            self.early.push_back(chunk.clone());
            return;
        };
        let mut at = chunk.start_index();
        if (at - end).abs() <= SLACK {
            // Rounding, not a gap or an overlap: it follows.
            at = end;
        }
        if at > end {
            self.fill_to(at);
        }
        let skip = (end - at).clamp(0, chunk.len() as i64) as usize;
        self.left.extend(&chunk.left[skip..]);
        self.right.extend(&chunk.right[skip..]);
    }

    /// Silence up to `index` (nothing if the queue already reaches it).
    pub fn fill_to(&mut self, index: i64) {
        let Some(end) = self.end() else { return };
        let missing = (index - end).max(0) as usize;
        self.left.extend(std::iter::repeat_n(0.0, missing));
        self.right.extend(std::iter::repeat_n(0.0, missing));
        self.filled += missing as u64;
    }

    /// Cuts everything from `index` on.
    pub fn cut_at(&mut self, index: i64) {
        if let Some(start) = self.start {
            let keep = (index - start).clamp(0, self.left.len() as i64) as usize;
            self.left.truncate(keep);
            self.right.truncate(keep);
        }
    }

    /// Takes `n` samples from the front (fewer if fewer are queued), with the index of the
    /// first.
    pub fn take(&mut self, n: usize) -> Option<(i64, Vec<f32>, Vec<f32>)> {
        let start = self.start?;
        let n = n.min(self.left.len());
        if n == 0 {
            return None;
        }
        let left: Vec<f32> = self.left.drain(..n).collect();
        let right: Vec<f32> = self.right.drain(..n).collect();
        self.start = Some(start + n as i64);
        Some((start, left, right))
    }

    /// Samples queued.
    pub fn queued(&self) -> usize {
        self.left.len()
    }
}

/// An AAC track in a muxer.
pub struct AudioTrack {
    encoder: ff::encoder::Audio,
    stream_index: usize,
    stream_time_base: ff::Rational,
    frame_size: usize,
    line: SampleLine,
}

impl AudioTrack {
    /// Opens the AAC encoder and adds its stream to `output` (before the header is written).
    pub fn add(
        output: &mut ff::format::context::Output,
        global_header: bool,
    ) -> Result<AudioTrack, ff::Error> {
        let codec = ff::encoder::find(ff::codec::Id::AAC).ok_or(ff::Error::EncoderNotFound)?;
        let mut encoder = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()?;
        encoder.set_rate(SAMPLE_RATE as i32);
        encoder.set_channel_layout(ff::ChannelLayout::STEREO);
        encoder.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
        encoder.set_bit_rate(AAC_BITRATE);
        encoder.set_time_base((1, SAMPLE_RATE as i32));
        if global_header {
            encoder.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        let encoder = encoder.open_as(codec)?;
        let mut stream = output.add_stream(codec)?;
        stream.set_parameters(&encoder);
        stream.set_time_base((1, SAMPLE_RATE as i32));
        let frame_size = (encoder.frame_size() as usize).max(1);
        Ok(AudioTrack {
            encoder,
            stream_index: stream.index(),
            stream_time_base: ff::Rational::new(1, SAMPLE_RATE as i32),
            frame_size,
            line: SampleLine::default(),
        })
    }

    /// After the header: the time base the muxer chose for the stream.
    pub fn header_written(&mut self, output: &ff::format::context::Output) {
        if let Some(s) = output.stream(self.stream_index) {
            self.stream_time_base = s.time_base();
        }
    }

    /// The samples' timeline.
    pub fn line(&mut self) -> &mut SampleLine {
        &mut self.line
    }

    /// Starts the track with the first picture (`at`). Starting it a frame earlier, so that
    /// AAC's priming frame holds none of the picture's sound, was tried: negative timestamps
    /// then displaced the first frames in fragmented MP4 and HLS-fed recordings.
    pub fn start(&mut self, at: Duration) {
        self.line.start(at, 0);
    }

    /// Silence put in gaps so far, in samples.
    pub fn filled(&self) -> u64 {
        self.line.filled()
    }

    /// Encodes every whole frame queued; returns the bytes written.
    pub fn write_ready(
        &mut self,
        output: &mut ff::format::context::Output,
    ) -> Result<u64, ff::Error> {
        let mut bytes = 0;
        while self.line.queued() >= self.frame_size {
            bytes += self.encode_next(output)?;
        }
        Ok(bytes)
    }

    /// Ends the track at `end` (the picture's end): silence up to it, nothing past it;
    /// then the encoder is flushed.
    pub fn finish(
        &mut self,
        end: Duration,
        output: &mut ff::format::context::Output,
    ) -> Result<u64, ff::Error> {
        let end = sample_index(end);
        self.line.fill_to(end);
        self.line.cut_at(end);
        let mut bytes = self.write_ready(output)?;
        while self.line.queued() > 0 {
            bytes += self.encode_next(output)?;
        }
        self.encoder.send_eof()?;
        bytes += self.drain(output)?;
        Ok(bytes)
    }

    fn encode_next(&mut self, output: &mut ff::format::context::Output) -> Result<u64, ff::Error> {
        let Some((index, left, right)) = self.line.take(self.frame_size) else {
            return Ok(0);
        };
        let mut frame = ff::frame::Audio::new(
            ff::format::Sample::F32(ff::format::sample::Type::Planar),
            left.len(),
            ff::ChannelLayout::STEREO,
        );
        frame.set_rate(SAMPLE_RATE);
        frame.plane_mut::<f32>(0)[..left.len()].copy_from_slice(&left);
        frame.plane_mut::<f32>(1)[..right.len()].copy_from_slice(&right);
        frame.set_pts(Some(index));
        self.encoder.send_frame(&frame)?;
        self.drain(output)
    }

    fn drain(&mut self, output: &mut ff::format::context::Output) -> Result<u64, ff::Error> {
        let mut packet = ff::Packet::empty();
        let mut bytes = 0;
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(self.stream_index);
            packet.rescale_ts((1, SAMPLE_RATE as i32), self.stream_time_base);
            bytes += packet.size() as u64;
            packet.write_interleaved(output)?;
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(at: i64, n: usize, value: f32) -> AudioChunk {
        AudioChunk {
            pts: Duration::from_secs_f64(at as f64 / f64::from(SAMPLE_RATE)),
            left: vec![value; n],
            right: vec![-value; n],
        }
    }

    #[test]
    fn sound_before_the_first_picture_is_cut_and_the_rest_kept_in_place() {
        let mut line = SampleLine::default();
        line.push(&chunk(0, 1000, 0.1));
        line.push(&chunk(1000, 1000, 0.2));
        assert!(!line.started());
        line.start(Duration::from_secs_f64(1500.0 / 48_000.0), 0);
        assert_eq!(line.end(), Some(2000));
        let (at, left, right) = line.take(10_000).unwrap();
        assert_eq!((at, left.len()), (1500, 500));
        assert!(left.iter().all(|s| *s == 0.2) && right.iter().all(|s| *s == -0.2));
        // With a pre-roll, the sound before the picture is kept for that long.
        let mut line = SampleLine::default();
        line.push(&chunk(0, 2000, 0.1));
        line.start(Duration::from_secs_f64(1500.0 / 48_000.0), 1024);
        assert_eq!(line.take(10_000).unwrap().0, 476);
    }

    #[test]
    fn a_gap_is_filled_with_silence_and_an_overlap_cut() {
        let mut line = SampleLine::default();
        line.start(Duration::ZERO, 0);
        line.push(&chunk(0, 100, 0.5));
        // 50 samples missing: silence, never closed up.
        line.push(&chunk(150, 100, 0.5));
        assert_eq!(line.filled(), 50);
        assert_eq!(line.end(), Some(250));
        // Starts 30 samples early: the 30 are cut.
        line.push(&chunk(220, 100, 0.7));
        assert_eq!(line.end(), Some(320));
        // One sample off is rounding: it follows.
        line.push(&chunk(321, 10, 0.9));
        assert_eq!(line.end(), Some(330));
        assert_eq!(line.filled(), 50);
        let (_, left, _) = line.take(1000).unwrap();
        assert_eq!(
            &left[95..105],
            &[0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(left[250], 0.7);
    }

    #[test]
    fn the_track_ends_with_the_picture() {
        let mut line = SampleLine::default();
        line.start(Duration::ZERO, 0);
        line.push(&chunk(0, 100, 0.5));
        line.fill_to(160);
        line.cut_at(150);
        assert_eq!(line.end(), Some(150));
        line.cut_at(40);
        assert_eq!(line.queued(), 40);
    }
}
