//! The source's sound: the best audio stream of a demuxed input (a file, `rtmp://`,
//! `srt://`, HLS's AAC in TS or fMP4), decoded on the decode thread, resampled to Lucid's one
//! format (48 kHz stereo, 32-bit float planes, what AAC encodes) and stamped in the stream
//! time the video frames carry, so that the outputs place it by time and it stays in sync
//! whatever the picture does (speed steering, drops, catch-ups, stalls).
//!
//! Samples follow each other by count, not by each frame's rounded timestamp, so a file's
//! sound comes out sample for sample; a timestamp that jumps (a gap, a discontinuity)
//! starts a new run there, and the outputs fill the gap with silence. A corrupt or
//! undecodable audio track never stops the picture: it is logged once and counted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use ffmpeg_next as ff;
use tracing::warn;

/// The sample rate every output's sound is in.
pub const SAMPLE_RATE: u32 = 48_000;
/// Chunks queued between the decode thread and the outputs: about 5 s of typical
/// 1024-sample frames, so HLS's segment bursts fit.
const AUDIO_QUEUE: usize = 256;
/// A source timestamp this far from where the last frame ended starts a new run.
const JUMP: f64 = 0.02;
/// The same for WebRTC's sound, whose timestamps are playout times: a step in the jitter
/// buffer's delay (10 or 20 ms) moves them, and the sound must move with the picture
/// rather than be absorbed into the sample count.
const PLAYOUT_JUMP: f64 = 0.004;

/// Stereo samples at [`SAMPLE_RATE`], starting at `pts`.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioChunk {
    /// Stream time of the first sample (the clock the video frames carry).
    pub pts: Duration,
    /// Left channel.
    pub left: Vec<f32>,
    /// Right channel, as long as the left.
    pub right: Vec<f32>,
}

impl AudioChunk {
    /// Samples per channel.
    pub fn len(&self) -> usize {
        self.left.len()
    }

    /// True when it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.left.is_empty()
    }

    /// The index of its first sample on the stream's timeline (stream time x 48 kHz).
    pub fn start_index(&self) -> i64 {
        sample_index(self.pts)
    }
}

/// Stream time as a sample index at [`SAMPLE_RATE`].
pub fn sample_index(t: Duration) -> i64 {
    (t.as_secs_f64() * f64::from(SAMPLE_RATE)).round() as i64
}

/// What the source's sound is, for the status and stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// The source's codec (`aac`, `opus`, `mp3`, ...).
    pub codec: String,
    /// The source's sample rate.
    pub sample_rate: u32,
    /// The source's channels.
    pub channels: u16,
}

/// The decode thread's sound, for the outputs.
#[derive(Debug, Clone)]
pub struct AudioFeed {
    /// What it is.
    pub info: AudioInfo,
    /// The chunks, in order.
    pub chunks: Receiver<AudioChunk>,
    /// Chunks the decode thread dropped because the outputs did not take them in time
    /// (live sources only), and audio packets that failed to decode.
    pub counters: Arc<AudioCounters>,
    /// A live source: what the outputs cannot take is dropped, not waited for.
    pub live: bool,
}

/// What went wrong with the sound, counted.
#[derive(Debug, Default)]
pub struct AudioCounters {
    /// Chunks dropped: the outputs were behind (live sources only).
    pub dropped: AtomicU64,
    /// Packets that did not decode.
    pub errors: AtomicU64,
}

/// The audio half of the decode thread.
pub(super) struct AudioDecoder {
    stream_index: usize,
    time_base: f64,
    decoder: ff::decoder::Audio,
    resampler: Option<(ResamplerKey, ff::software::resampling::Context)>,
    tx: Sender<AudioChunk>,
    counters: Arc<AudioCounters>,
    /// Live sources drop what the outputs do not take; files block.
    live: bool,
    /// Where the current run started (stream time) and how many samples it has had.
    run: Option<(Duration, u64)>,
    /// The source time (seconds) at which the next decoded frame should start.
    expected: Option<f64>,
    /// Chunks decoded before the first video frame fixed the timeline, with their source
    /// time and duration in seconds.
    early: VecDeque<(f64, f64, AudioChunk)>,
    /// True once a decode error was logged.
    logged: bool,
    /// How far a timestamp may stray from the sample count before it starts a new run.
    jump: f64,
}

/// The source format a resampler was made for.
type ResamplerKey = (ff::format::Sample, u64, u32);

/// Where the video's timeline starts: the first video frame's source time in seconds, and
/// the stream time it was given.
pub(super) type Origin = (f64, Duration);

impl AudioDecoder {
    /// The best audio stream of `demuxer`, opened; `None` when it has none or its decoder
    /// cannot open (logged: the picture plays on).
    pub(super) fn open(
        demuxer: &ff::format::context::Input,
        live: bool,
    ) -> Option<(AudioDecoder, AudioFeed)> {
        let stream = demuxer.streams().best(ff::media::Type::Audio)?;
        let opened = ff::codec::context::Context::from_parameters(stream.parameters())
            .and_then(|c| c.decoder().audio());
        let decoder = match opened {
            Ok(d) => d,
            Err(e) => {
                warn!("the source's sound cannot be decoded ({e}); playing without it");
                return None;
            }
        };
        Some(Self::with_decoder(
            decoder,
            stream.index(),
            f64::from(stream.time_base()),
            live,
        ))
    }

    /// An Opus decoder for WebRTC's packets, whose timestamps are in samples at 48 kHz
    /// (packets carry no demuxer stream; Opus without a header is stereo at 48 kHz).
    pub(super) fn opus() -> Option<(AudioDecoder, AudioFeed)> {
        let opened = ff::decoder::find(ff::codec::Id::OPUS)
            .ok_or(ff::Error::DecoderNotFound)
            .and_then(|codec| {
                ff::codec::context::Context::new_with_codec(codec)
                    .decoder()
                    .audio()
            });
        match opened {
            Ok(decoder) => {
                let (mut audio, feed) =
                    Self::with_decoder(decoder, 0, 1.0 / f64::from(SAMPLE_RATE), true);
                audio.jump = PLAYOUT_JUMP;
                Some((audio, feed))
            }
            Err(e) => {
                warn!("WebRTC's sound cannot be decoded ({e}); playing without it");
                None
            }
        }
    }

    fn with_decoder(
        decoder: ff::decoder::Audio,
        stream_index: usize,
        time_base: f64,
        live: bool,
    ) -> (AudioDecoder, AudioFeed) {
        let info = AudioInfo {
            codec: decoder
                .codec()
                .map_or_else(|| "unknown".into(), |c| c.name().to_string()),
            sample_rate: decoder.rate(),
            channels: decoder.channels(),
        };
        let (tx, rx) = bounded(AUDIO_QUEUE);
        let counters = Arc::new(AudioCounters::default());
        let audio = AudioDecoder {
            stream_index,
            time_base,
            decoder,
            resampler: None,
            tx,
            counters: counters.clone(),
            live,
            run: None,
            expected: None,
            early: VecDeque::new(),
            logged: false,
            jump: JUMP,
        };
        let feed = AudioFeed {
            info,
            chunks: rx,
            counters,
            live,
        };
        (audio, feed)
    }

    /// Follows the audio stream of a new demuxer after a timeline break; the timestamps
    /// start over, so the next frame starts a new run.
    pub(super) fn switch_timeline(&mut self, demuxer: &ff::format::context::Input) {
        let Some(stream) = demuxer.streams().best(ff::media::Type::Audio) else {
            return;
        };
        let opened = ff::codec::context::Context::from_parameters(stream.parameters())
            .and_then(|c| c.decoder().audio());
        if let Ok(decoder) = opened {
            self.stream_index = stream.index();
            self.time_base = f64::from(stream.time_base());
            self.decoder = decoder;
            self.expected = None;
        }
    }

    /// The stream this decoder reads.
    pub(super) fn stream_index(&self) -> usize {
        self.stream_index
    }

    /// Decodes one packet; `origin` once the video's timeline is known. Returns false when
    /// the outputs are gone or Lucid is stopping.
    pub(super) fn decode(
        &mut self,
        packet: &ff::Packet,
        origin: Option<Origin>,
        stop: &AtomicBool,
    ) -> bool {
        if let Err(e) = self.decoder.send_packet(packet) {
            self.failed(&e);
            return true;
        }
        self.hand_over(origin, stop)
    }

    /// At the end of the input: what the decoder still holds goes out too.
    pub(super) fn finish(&mut self, origin: Option<Origin>, stop: &AtomicBool) -> bool {
        let _ = self.decoder.send_eof();
        self.hand_over(origin, stop)
    }

    /// Takes what the decoder has decoded, resamples it, and sends it on once the video's
    /// timeline is known.
    fn hand_over(&mut self, origin: Option<Origin>, stop: &AtomicBool) -> bool {
        let mut frame = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            if let Some(converted) = self.convert(&frame) {
                self.early.push_back(converted);
            }
        }
        let Some(origin) = origin else {
            // Before the first picture, keep a few seconds; the oldest go first.
            while self.early.len() > AUDIO_QUEUE {
                self.early.pop_front();
            }
            return true;
        };
        while let Some((secs, duration, chunk)) = self.early.pop_front() {
            if let Some(chunk) = self.place(secs, duration, chunk, origin)
                && !self.send(chunk, stop)
            {
                return false;
            }
        }
        true
    }

    fn failed(&mut self, e: &ff::Error) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(&mut self.logged, true) {
            warn!("an audio packet did not decode ({e}); the picture goes on (counted from now)");
        }
    }

    /// Resamples one decoded frame; returns its source time and duration and its samples,
    /// not yet placed on the stream's timeline ([`AudioDecoder::place`] does that).
    fn convert(&mut self, frame: &ff::frame::Audio) -> Option<(f64, f64, AudioChunk)> {
        let secs = frame.timestamp().map(|ts| ts as f64 * self.time_base);
        let duration = frame.samples() as f64 / f64::from(frame.rate().max(1));
        let layout = if frame.channel_layout().is_empty() {
            ff::ChannelLayout::default(i32::from(frame.channels()))
        } else {
            frame.channel_layout()
        };
        let key = (frame.format(), layout.bits(), frame.rate());
        if self.resampler.as_ref().is_none_or(|(k, _)| *k != key) {
            match ff::software::resampling::Context::get(
                frame.format(),
                layout,
                frame.rate(),
                ff::format::Sample::F32(ff::format::sample::Type::Planar),
                ff::ChannelLayout::STEREO,
                SAMPLE_RATE,
            ) {
                Ok(r) => self.resampler = Some((key, r)),
                Err(e) => {
                    self.failed(&e);
                    return None;
                }
            }
        }
        let (_, resampler) = self.resampler.as_mut()?;
        // Room for everything this frame can make at the output rate, so nothing waits
        // inside the resampler for a later call.
        let room = frame.samples() * SAMPLE_RATE as usize / frame.rate().max(1) as usize + 64;
        let mut out = ff::frame::Audio::new(
            ff::format::Sample::F32(ff::format::sample::Type::Planar),
            room,
            ff::ChannelLayout::STEREO,
        );
        let converted = if frame.channel_layout().is_empty() {
            // A stream that gives only its channel count (PCM in WAV, MKV, FLV): the same
            // samples in a frame that says which layout that means. Not `frame.clone()`:
            // that allocates for the empty layout's zero channels, and the resampler then
            // reads planes that are not there (a crash on the first PCM frame).
            let mut input = ff::frame::Audio::new(frame.format(), frame.samples(), layout);
            input.set_rate(frame.rate());
            for plane in 0..input.planes().min(frame.planes()) {
                let n = input.data(plane).len().min(frame.data(plane).len());
                input.data_mut(plane)[..n].copy_from_slice(&frame.data(plane)[..n]);
            }
            resampler.run(&input, &mut out)
        } else {
            resampler.run(frame, &mut out)
        };
        if let Err(e) = converted {
            self.failed(&e);
            return None;
        }
        let n = out.samples();
        let chunk = AudioChunk {
            pts: Duration::ZERO,
            left: out.plane::<f32>(0)[..n].to_vec(),
            right: out.plane::<f32>(1)[..n].to_vec(),
        };
        let secs = secs.or(self.expected).unwrap_or(0.0);
        Some((secs, duration, chunk))
    }

    /// Gives `chunk` (made from the source frame at `secs`, `duration` long) its stream
    /// time: on from the last one, sample for sample, when it follows it; else a new run at
    /// its own time. Samples before the video's first frame are cut. `None` when nothing is
    /// left.
    fn place(
        &mut self,
        secs: f64,
        duration: f64,
        mut chunk: AudioChunk,
        origin: Origin,
    ) -> Option<AudioChunk> {
        let follows = self.expected.is_some_and(|e| (secs - e).abs() <= self.jump);
        self.expected = Some(secs + duration);
        let rate = f64::from(SAMPLE_RATE);
        let (start, count) = match self.run {
            Some(run) if follows => run,
            _ => {
                let (first_video, base) = origin;
                let offset = secs - first_video;
                if offset < 0.0 {
                    // Before the first picture: cut what the recording cannot hold.
                    let cut = ((-offset * rate).round() as usize).min(chunk.len());
                    chunk.left.drain(..cut);
                    chunk.right.drain(..cut);
                }
                (base + Duration::from_secs_f64(offset.max(0.0)), 0)
            }
        };
        chunk.pts = start + Duration::from_secs_f64(count as f64 / rate);
        self.run = Some((start, count + chunk.len() as u64));
        (!chunk.is_empty()).then_some(chunk)
    }

    /// Hands a chunk to the outputs: a live source drops it when they are behind (counted),
    /// a file waits. False when the outputs are gone or Lucid is stopping.
    fn send(&self, chunk: AudioChunk, stop: &AtomicBool) -> bool {
        if self.live {
            return match self.tx.try_send(chunk) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                // Nobody takes the sound (no output carries it): the picture goes on.
                Err(TrySendError::Disconnected(_)) => true,
            };
        }
        crate::lifecycle::send_until_stop(&self.tx, chunk, stop)
    }
}

/// Whether `path` opens and has sound that decodes (`--audio-in FILE`, checked before
/// anything starts).
pub fn probe_file(path: &std::path::Path) -> Result<(), String> {
    let demuxer = ff::format::input(&path).map_err(|e| e.to_string())?;
    AudioDecoder::open(&demuxer, false)
        .map(|_| ())
        .ok_or_else(|| "it has no sound that decodes".to_string())
}

/// A sound file for the analysis (`--audio-in FILE`): its best audio stream, checked to
/// open and decode here (a usage error otherwise), then decoded on the `lucid-audio-in`
/// thread from its time 0, as fast as its reader takes it (a file blocks, it never drops).
pub fn read_file(
    path: &std::path::Path,
    lifecycle: &crate::lifecycle::Lifecycle,
) -> Result<AudioFeed, String> {
    let mut demuxer = ff::format::input(&path).map_err(|e| e.to_string())?;
    let (mut audio, feed) =
        AudioDecoder::open(&demuxer, false).ok_or("it has no sound that decodes")?;
    let stop = lifecycle.stop_flag();
    let label = path.display().to_string();
    lifecycle.spawn("lucid-audio-in", move || {
        let origin = Some((0.0, Duration::ZERO));
        let index = audio.stream_index();
        for (stream, packet) in demuxer.packets() {
            if stream.index() == index && !audio.decode(&packet, origin, &stop) {
                return;
            }
        }
        audio.finish(origin, &stop);
        tracing::info!("--audio-in {label}: the sound has ended; the analysis hears silence");
    });
    Ok(feed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_indices_round_to_the_nearest_sample() {
        assert_eq!(sample_index(Duration::from_secs(1)), 48_000);
        assert_eq!(sample_index(Duration::from_micros(20_833)), 1000);
        let chunk = AudioChunk {
            pts: Duration::from_millis(500),
            left: vec![0.0; 4],
            right: vec![0.0; 4],
        };
        assert_eq!(chunk.start_index(), 24_000);
        assert_eq!(chunk.len(), 4);
    }
}
