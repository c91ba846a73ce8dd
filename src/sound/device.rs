//! Sound devices through cpal (ALSA on Linux): `--list-audio`; the capture behind
//! `--audio-in DEVICE`: a `lucid-audio-in` thread owns the stream, turns what the device
//! gives (any rate, any channel count, f32/i16/i32) into 48 kHz stereo chunks for the
//! analysis; and the playback behind `--audio-out`: a `lucid-audio-out` thread feeds the
//! device the show's sound at the picture's position ([`super::playback`]). A device that
//! goes away mid-show is said once and opened again every two seconds while the picture
//! goes on.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use tracing::{info, warn};

use super::playback::{Cursor, Pacer, PresentationClock, SampleQueue};
use crate::decode::audio::{AudioCounters, AudioInfo, SAMPLE_RATE};
use crate::decode::{AudioChunk, AudioFeed};
use crate::error::{LucidError, Result};
use crate::lifecycle::Lifecycle;

/// How often a device that went away is looked for again.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Samples per chunk handed on (a little over 5 ms: a hit reaches the analysis soon).
const CHUNK: usize = 256;

/// The capture devices, by name, in cpal's order (`--audio-in N` counts from 0).
pub fn inputs() -> Vec<String> {
    let host = cpal::default_host();
    host.input_devices()
        .map(|devices| devices.filter_map(|d| d.name().ok()).collect())
        .unwrap_or_default()
}

/// The playback devices, by name.
pub fn outputs() -> Vec<String> {
    let host = cpal::default_host();
    host.output_devices()
        .map(|devices| devices.filter_map(|d| d.name().ok()).collect())
        .unwrap_or_default()
}

/// The playback device `wanted` names (`default`, a number in `--list-audio`, or part of
/// a name); a usage error listing them otherwise.
pub fn pick_output(wanted: &str) -> Result<String> {
    let names = outputs();
    pick(wanted, &names).ok_or_else(|| {
        LucidError::Usage(format!(
            "--audio-out {wanted}: no playback device by that name; the devices:{}",
            listing(&names)
        ))
    })
}

/// What `--audio-out` has done, for the stats.
#[derive(Debug, Clone, Default)]
pub struct PlaybackReport {
    /// The device's name.
    pub device: String,
    /// Samples played as silence because theirs had not come.
    pub underruns: Arc<AtomicU64>,
    /// Jumps made to follow the picture (a stall, a catch-up).
    pub jumps: Arc<AtomicU64>,
    /// Samples handed to the device.
    pub played: Arc<AtomicU64>,
    /// How far the sound is behind the picture it sounds with, in samples (negative:
    /// ahead), at the last buffer; `i64::MIN` before the first picture.
    pub offset: Arc<AtomicI64>,
}

impl PlaybackReport {
    /// How far the sound is behind the picture it sounds with, in milliseconds (negative:
    /// ahead), at the device's last buffer.
    pub fn av_offset_ms(&self) -> Option<f64> {
        let offset = self.offset.load(Ordering::Relaxed);
        (offset != i64::MIN).then(|| offset as f64 * 1000.0 / f64::from(SAMPLE_RATE))
    }
}

/// Plays `sound` (the bus's tap) on the device named `name`, each sample when the
/// picture `clock` says is on screen reaches its position, until Lucid stops.
pub fn play(
    name: String,
    sound: Receiver<Arc<AudioChunk>>,
    clock: Arc<PresentationClock>,
    lifecycle: &Lifecycle,
) -> PlaybackReport {
    let report = PlaybackReport {
        device: name.clone(),
        offset: Arc::new(AtomicI64::new(i64::MIN)),
        ..PlaybackReport::default()
    };
    let counters = report.clone();
    let stop = lifecycle.stop_flag();
    lifecycle.spawn("lucid-audio-out", move || {
        let shared = Arc::new(Mutex::new((SampleQueue::default(), Cursor::default())));
        let mut sound = Some(sound);
        keep_open("--audio-out", &name, &stop, |opened| {
            let (stream, failed, rate, channels) =
                open_output(&name, shared.clone(), clock.clone(), &counters)?;
            opened(rate, channels);
            feed_output(&stream, &failed, &shared, &mut sound, &stop);
            Ok(())
        });
    });
    report
}

type Shared = Arc<Mutex<(SampleQueue, Cursor)>>;

/// Opens `name` for playback at 48 kHz (stereo first) and starts it; the callback fills
/// each buffer from `shared` at the position the picture will be at when it sounds.
fn open_output(
    name: &str,
    shared: Shared,
    clock: Arc<PresentationClock>,
    counters: &PlaybackReport,
) -> std::result::Result<(cpal::Stream, Arc<AtomicBool>, u32, u16), String> {
    let device = find(name, Way::Playback)?;
    let config = device
        .supported_output_configs()
        .map_err(|e| e.to_string())?
        .filter(|r| {
            r.min_sample_rate().0 <= SAMPLE_RATE
                && r.max_sample_rate().0 >= SAMPLE_RATE
                && matches!(
                    r.sample_format(),
                    cpal::SampleFormat::F32 | cpal::SampleFormat::I16
                )
        })
        .min_by_key(|r| {
            (
                r.channels() != 2,
                r.sample_format() != cpal::SampleFormat::F32,
            )
        })
        .map(|r| r.with_sample_rate(cpal::SampleRate(SAMPLE_RATE)))
        .ok_or("it plays no 48 kHz f32 or i16 sound")?;
    let failed = Arc::new(AtomicBool::new(false));
    let raised = failed.clone();
    let on_error = move |e: cpal::StreamError| {
        if !raised.swap(true, Ordering::Relaxed) {
            warn!("sound device error: {e}");
        }
    };
    let stream_config = config.config();
    let channels = usize::from(stream_config.channels);
    let (underruns, jumps, played, offset) = (
        counters.underruns.clone(),
        counters.jumps.clone(),
        counters.played.clone(),
        counters.offset.clone(),
    );
    // Runs on the audio thread: a short lock, no allocation after the first buffer.
    let mut scratch: Vec<f32> = Vec::new();
    let mut pacer = Pacer::new(stream_config.sample_rate.0);
    let mut fill = move |out: &mut [f32], info: &cpal::OutputCallbackInfo| {
        pacer.pace(out.len() / channels.max(1));
        let t = info.timestamp();
        let latency = t.playback.duration_since(&t.callback).unwrap_or_default();
        let due = clock.position(std::time::Instant::now() + latency);
        let Ok(mut guard) = shared.lock() else {
            out.fill(0.0);
            return;
        };
        let (queue, cursor) = &mut *guard;
        cursor.fill(out, channels, queue, due);
        underruns.store(cursor.underruns, Ordering::Relaxed);
        jumps.store(cursor.jumps, Ordering::Relaxed);
        if let Some(o) = cursor.offset {
            offset.store(o, Ordering::Relaxed);
        }
        played.fetch_add((out.len() / channels.max(1)) as u64, Ordering::Relaxed);
    };
    let stream = match config.sample_format() {
        cpal::SampleFormat::F32 => device.build_output_stream(&stream_config, fill, on_error, None),
        _ => device.build_output_stream(
            &stream_config,
            move |out: &mut [i16], info: &cpal::OutputCallbackInfo| {
                scratch.resize(out.len(), 0.0);
                fill(&mut scratch, info);
                for (o, s) in out.iter_mut().zip(&scratch) {
                    *o = (s.clamp(-1.0, 1.0) * 32_767.0) as i16;
                }
            },
            on_error,
            None,
        ),
    }
    .map_err(|e| e.to_string())?;
    stream.play().map_err(|e| e.to_string())?;
    Ok((
        stream,
        failed,
        stream_config.sample_rate.0,
        stream_config.channels,
    ))
}

/// Moves the bus's chunks into the shared queue until the device fails or Lucid stops.
fn feed_output(
    _stream: &cpal::Stream,
    failed: &AtomicBool,
    shared: &Shared,
    sound: &mut Option<Receiver<Arc<AudioChunk>>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed) {
        let Some(rx) = sound.as_ref() else {
            // The show's sound has ended: the device plays out what it has.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => {
                if let Ok(mut guard) = shared.lock() {
                    guard.0.push(chunk.start_index(), &chunk.left, &chunk.right);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => *sound = None,
        }
    }
}

/// The capture device `wanted` names: `default`, its number in `--list-audio`, or its name
/// (exactly, else the only name that contains it, case-insensitively). A usage error that
/// lists the devices otherwise.
pub fn pick_input(wanted: &str) -> Result<String> {
    let names = inputs();
    pick(wanted, &names).ok_or_else(|| {
        LucidError::Usage(format!(
            "--audio-in {wanted}: no such file, and no capture device by that name; the devices:{}",
            listing(&names)
        ))
    })
}

/// Devices as a usage error lists them: numbered, a line each.
fn listing(names: &[String]) -> String {
    if names.is_empty() {
        return " (none found: is ALSA there, with /dev/snd?)".to_string();
    }
    names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("\n  {i}: {n}"))
        .collect()
}

fn pick(wanted: &str, names: &[String]) -> Option<String> {
    let wanted = wanted.trim();
    if wanted.eq_ignore_ascii_case("default") {
        return Some("default".into());
    }
    if let Ok(i) = wanted.parse::<usize>() {
        return names.get(i).cloned();
    }
    if let Some(exact) = names.iter().find(|n| n.as_str() == wanted) {
        return Some(exact.clone());
    }
    let lower = wanted.to_lowercase();
    let mut partial = names.iter().filter(|n| n.to_lowercase().contains(&lower));
    match (partial.next(), partial.next()) {
        (Some(only), None) => Some(only.clone()),
        _ => None,
    }
}

/// Captures from the device named `name` (as [`pick_input`] gave it) on the
/// `lucid-audio-in` thread until Lucid stops.
pub fn capture(name: String, lifecycle: &Lifecycle) -> AudioFeed {
    let (tx, rx) = bounded(crate::sound::bus::TAP_QUEUE);
    let counters = Arc::new(AudioCounters::default());
    let feed = AudioFeed {
        info: AudioInfo {
            codec: format!("pcm ({name})"),
            sample_rate: SAMPLE_RATE,
            channels: 2,
        },
        chunks: rx,
        counters: counters.clone(),
        live: true,
    };
    let stop = lifecycle.stop_flag();
    lifecycle.spawn("lucid-audio-in", move || {
        let mut converter = Converter::default();
        keep_open("--audio-in", &name, &stop, |opened| {
            let (stream, raw, failed, rate, channels) = open(&name)?;
            opened(rate, channels);
            converter.reset(rate, channels);
            run(
                &stream,
                &raw,
                &failed,
                &mut converter,
                &tx,
                &counters,
                &stop,
            );
            Ok(())
        });
    });
    feed
}

/// Keeps the device `name` open until Lucid stops: `session` opens it (saying so through
/// `opened` with its rate and channels) and runs until it fails or goes quiet; then it is
/// said once that the device went away (or could not open), and it is tried again every
/// [`RETRY_EVERY`] while the picture goes on.
fn keep_open(
    flag: &str,
    name: &str,
    stop: &AtomicBool,
    mut session: impl FnMut(&dyn Fn(u32, u16)) -> std::result::Result<(), String>,
) {
    let lost = std::cell::Cell::new(false);
    while !stop.load(Ordering::Relaxed) {
        let opened = |rate: u32, channels: u16| {
            if lost.get() {
                info!("{flag} {name}: the device is back");
            } else {
                info!("{flag} {name}: {rate} Hz, {channels} channel(s)");
            }
        };
        match session(&opened) {
            Ok(()) if stop.load(Ordering::Relaxed) => return,
            Ok(()) => {
                warn!(
                    "{flag} {name}: the device went away; the picture goes on, and it is tried again every {} s",
                    RETRY_EVERY.as_secs()
                );
                lost.set(true);
            }
            Err(e) if !lost.get() => {
                warn!(
                    "{flag} {name}: {e}; tried again every {} s",
                    RETRY_EVERY.as_secs()
                );
                lost.set(true);
            }
            Err(_) => {}
        }
        let until = std::time::Instant::now() + RETRY_EVERY;
        while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Which way a device moves sound.
#[derive(Clone, Copy)]
enum Way {
    Capture,
    Playback,
}

/// The device named `name` (`default`: the host's default), as it is now.
fn find(name: &str, way: Way) -> std::result::Result<cpal::Device, String> {
    let host = cpal::default_host();
    let device = match (name, way) {
        ("default", Way::Capture) => host.default_input_device(),
        ("default", Way::Playback) => host.default_output_device(),
        (_, Way::Capture) => host
            .input_devices()
            .map_err(|e| e.to_string())?
            .find(|d| d.name().is_ok_and(|n| n == name)),
        (_, Way::Playback) => host
            .output_devices()
            .map_err(|e| e.to_string())?
            .find(|d| d.name().is_ok_and(|n| n == name)),
    };
    device.ok_or_else(|| "the device is not there".to_string())
}

/// What a device's callback hands over: interleaved samples, converted to f32.
type Raw = Receiver<Vec<f32>>;

/// Opens `name` and starts its stream: the stream (dropping it closes the device), its
/// samples, a flag its error callback raises, its rate and channel count.
fn open(name: &str) -> std::result::Result<(cpal::Stream, Raw, Arc<AtomicBool>, u32, u16), String> {
    let device = find(name, Way::Capture)?;
    // 48 kHz where the device offers it (no resampling), stereo first, else its own
    // default.
    let config = device
        .supported_input_configs()
        .ok()
        .and_then(|ranges| {
            let usable: Vec<_> = ranges
                .filter(|r| {
                    r.min_sample_rate().0 <= SAMPLE_RATE
                        && r.max_sample_rate().0 >= SAMPLE_RATE
                        && matches!(
                            r.sample_format(),
                            cpal::SampleFormat::F32
                                | cpal::SampleFormat::I16
                                | cpal::SampleFormat::I32
                        )
                })
                .collect();
            let stereo = usable.iter().position(|r| r.channels() == 2);
            stereo
                .or((!usable.is_empty()).then_some(0))
                .map(|i| usable[i])
        })
        .map(|r| r.with_sample_rate(cpal::SampleRate(SAMPLE_RATE)))
        .map_or_else(|| device.default_input_config(), Ok)
        .map_err(|e| e.to_string())?;
    let (tx, rx) = bounded::<Vec<f32>>(256);
    let failed = Arc::new(AtomicBool::new(false));
    let raised = failed.clone();
    let on_error = move |e: cpal::StreamError| {
        if !raised.swap(true, Ordering::Relaxed) {
            warn!("sound device error: {e}");
        }
    };
    let format = config.sample_format();
    let stream_config = config.config();
    // The callback runs on the audio thread: it converts and hands over, never blocks
    // (but a device faster than real time is held to it).
    let channels = usize::from(stream_config.channels.max(1));
    let mut pacer = Pacer::new(stream_config.sample_rate.0);
    let mut hand_over = move |samples: Vec<f32>| {
        pacer.pace(samples.len() / channels);
        let _ = tx.try_send(samples);
    };
    let stream = match format {
        cpal::SampleFormat::F32 => device.build_input_stream(
            &stream_config,
            move |data: &[f32], _: &cpal::InputCallbackInfo| hand_over(data.to_vec()),
            on_error,
            None,
        ),
        cpal::SampleFormat::I16 => device.build_input_stream(
            &stream_config,
            move |data: &[i16], _: &cpal::InputCallbackInfo| {
                hand_over(data.iter().map(|s| f32::from(*s) / 32_768.0).collect());
            },
            on_error,
            None,
        ),
        cpal::SampleFormat::I32 => device.build_input_stream(
            &stream_config,
            move |data: &[i32], _: &cpal::InputCallbackInfo| {
                hand_over(data.iter().map(|s| *s as f32 / 2_147_483_648.0).collect());
            },
            on_error,
            None,
        ),
        other => {
            return Err(format!(
                "it gives {other:?} samples (Lucid takes f32, i16 or i32)"
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    stream.play().map_err(|e| e.to_string())?;
    Ok((
        stream,
        rx,
        failed,
        stream_config.sample_rate.0,
        stream_config.channels,
    ))
}

/// Hands on what the device gives until it fails, goes quiet for two seconds, or Lucid
/// stops.
fn run(
    _stream: &cpal::Stream,
    raw: &Raw,
    failed: &AtomicBool,
    converter: &mut Converter,
    tx: &Sender<AudioChunk>,
    counters: &AudioCounters,
    stop: &AtomicBool,
) {
    let mut quiet = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed) {
        match raw.recv_timeout(Duration::from_millis(100)) {
            Ok(samples) => {
                quiet = Duration::ZERO;
                for chunk in converter.push(&samples) {
                    match tx.try_send(chunk) {
                        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                        Err(TrySendError::Full(_)) => {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Err(_) => {
                quiet += Duration::from_millis(100);
                if quiet >= RETRY_EVERY {
                    return;
                }
            }
        }
    }
}

/// Interleaved samples at the device's rate and channel count into 48 kHz stereo chunks,
/// stamped by the count of samples made (the analysis places a device's sound by arrival).
/// Mono is doubled; beyond two channels the first two are taken. The rate changes by
/// linear interpolation: enough for measuring, and no filter delay.
#[derive(Debug, Default)]
pub struct Converter {
    channels: usize,
    /// Input samples a 48 kHz output sample advances.
    step: f64,
    /// Where the next output sample falls, in input samples after `previous`.
    position: f64,
    previous: Option<[f32; 2]>,
    made: u64,
    left: Vec<f32>,
    right: Vec<f32>,
}

impl Converter {
    /// Starts over for a device at `rate` Hz with `channels` channels.
    pub fn reset(&mut self, rate: u32, channels: u16) {
        self.channels = usize::from(channels.max(1));
        self.step = f64::from(rate.max(1)) / f64::from(SAMPLE_RATE);
        self.position = 0.0;
        self.previous = None;
    }

    /// Converts `interleaved`; returns the chunks completed.
    pub fn push(&mut self, interleaved: &[f32]) -> Vec<AudioChunk> {
        let mut out = Vec::new();
        for frame in interleaved.chunks_exact(self.channels.max(1)) {
            let now = [frame[0], *frame.get(1).unwrap_or(&frame[0])];
            let Some(before) = self.previous.replace(now) else {
                continue;
            };
            // Output samples between `before` (at 0) and `now` (at 1).
            while self.position < 1.0 {
                let t = self.position as f32;
                self.left.push(before[0] + (now[0] - before[0]) * t);
                self.right.push(before[1] + (now[1] - before[1]) * t);
                self.position += self.step;
                if self.left.len() == CHUNK {
                    out.push(self.take());
                }
            }
            self.position -= 1.0;
        }
        out
    }

    fn take(&mut self) -> AudioChunk {
        let pts = Duration::from_secs_f64(self.made as f64 / f64::from(SAMPLE_RATE));
        self.made += self.left.len() as u64;
        AudioChunk {
            pts,
            left: std::mem::take(&mut self.left),
            right: std::mem::take(&mut self.right),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_picked_by_number_name_or_the_one_name_that_contains_it() {
        let names: Vec<String> = ["null", "default", "USB Audio CODEC", "HDA Intel PCH"]
            .map(String::from)
            .to_vec();
        assert_eq!(pick("2", &names).as_deref(), Some("USB Audio CODEC"));
        assert_eq!(pick("usb", &names).as_deref(), Some("USB Audio CODEC"));
        assert_eq!(pick("null", &names).as_deref(), Some("null"));
        assert_eq!(pick("default", &[]).as_deref(), Some("default"));
        assert_eq!(pick("a", &names), None, "ambiguous");
        assert_eq!(pick("9", &names), None);
        assert_eq!(pick("firewire", &names), None);
    }

    #[test]
    fn mono_44100_becomes_stereo_48000_stamped_by_count() {
        let mut c = Converter::default();
        c.reset(44_100, 1);
        let second: Vec<f32> = (0..44_100)
            .map(|i| (i as f32 / 44_100.0) * 2.0 - 1.0)
            .collect();
        let chunks = c.push(&second);
        let made: usize = chunks.iter().map(AudioChunk::len).sum();
        // One second in, within a chunk of 48 000 out.
        assert!((48_000 - made as i64).abs() <= CHUNK as i64, "{made}");
        assert!(chunks.iter().all(|k| k.left == k.right));
        for pair in chunks.windows(2) {
            assert_eq!(
                pair[1].start_index(),
                pair[0].start_index() + pair[0].len() as i64
            );
        }
        // A ramp stays a ramp: interpolation, no jumps.
        let all: Vec<f32> = chunks.iter().flat_map(|k| k.left.clone()).collect();
        assert!(all.windows(2).all(|w| w[1] >= w[0] && w[1] - w[0] < 1e-4));
    }

    #[test]
    fn the_first_two_of_many_channels_are_taken() {
        let mut c = Converter::default();
        c.reset(48_000, 4);
        let frames: Vec<f32> = (0..(CHUNK + 1) * 4)
            .map(|i| [0.25, -0.5, 9.0, 9.0][i % 4])
            .collect();
        let chunks = c.push(&frames);
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].left.iter().all(|s| *s == 0.25));
        assert!(chunks[0].right.iter().all(|s| *s == -0.5));
    }
}
