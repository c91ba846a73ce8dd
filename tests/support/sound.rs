//! Sound in what Lucid writes: clips whose clicks sit on known frames (made by the ffmpeg
//! CLI), a file's sound decoded with its timestamps, click onsets, and how far each click
//! lands from the frame that carries its marker.

use std::path::{Path, PathBuf};
use std::process::Command;

use ffmpeg_next as ff;

use super::{FPS, X264_FAST, decode_timed, marked_source_args, read_marker};

/// A click every this many seconds: on frames 0, 45, 90, ... at 30 fps.
pub const CLICK_EVERY: f64 = 1.5;
/// One frame at 30 fps: "within one frame of sync".
pub const FRAME: f64 = 1.0 / FPS as f64;

/// The lavfi source of the clicks: 4 ms of 2 kHz every [`CLICK_EVERY`] s, at 44.1 kHz
/// (Lucid resamples to 48 kHz).
pub fn clicks_source(seconds: Option<f64>) -> String {
    clicks_every(CLICK_EVERY, seconds)
}

/// The lavfi source of 4 ms 2 kHz clicks every `every` seconds.
pub fn clicks_every(every: f64, seconds: Option<f64>) -> String {
    let duration = seconds.map(|s| format!(":d={s}")).unwrap_or_default();
    format!(
        "aevalsrc=exprs='if(lt(mod(t\\,{every})\\,0.004)\\,0.8*sin(2*PI*2000*t)\\,0)':s=44100{duration}"
    )
}

/// A marked clip (each frame's number in its marker) of `seconds` with a sound track of
/// 4 ms 2 kHz clicks every [`CLICK_EVERY`] s at 44.1 kHz (Lucid resamples to 48 kHz). With
/// `gap`, the sound between those two times is taken out, timestamps kept (a gap in the
/// source's sound).
pub fn clip_with_clicks(dir: &Path, seconds: f64, ext: &str, gap: Option<(f64, f64)>) -> PathBuf {
    clip_with_clicks_every(dir, seconds, ext, gap, CLICK_EVERY)
}

/// A marked clip with a click every `every` seconds.
pub fn clip_with_clicks_every(
    dir: &Path,
    seconds: f64,
    ext: &str,
    gap: Option<(f64, f64)>,
    every: f64,
) -> PathBuf {
    let path = dir.join(format!("clicks.{ext}"));
    let clicks = clicks_every(every, Some(seconds));
    let mut audio_filter = "anull".to_string();
    if let Some((from, to)) = gap {
        audio_filter = format!("aselect='not(between(t\\,{from}\\,{to}))'");
    }
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(marked_source_args(320, 180, Some(seconds)))
        .args(["-f", "lavfi", "-i", &clicks])
        .args(["-map", "[hi]", "-map", "2:a", "-af", &audio_filter])
        .args(X264_FAST)
        .args(["-c:a", "aac", "-b:a", "192k"])
        .arg(&path)
        .args(["-map", "[lo]", "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make the clip");
    path
}

/// A file's sound, decoded: each sample of the left channel with its time in seconds.
pub fn sound_of(path: &Path) -> Vec<(f64, f32)> {
    ff::init().unwrap();
    let mut input = ff::format::input(&path).expect("the file opens");
    let stream = input
        .streams()
        .best(ff::media::Type::Audio)
        .expect("a sound track");
    let (idx, tb) = (stream.index(), f64::from(stream.time_base()));
    let ctx = ff::codec::Context::from_parameters(stream.parameters()).unwrap();
    let mut dec = ctx.decoder().audio().unwrap();
    let mut samples = Vec::new();
    let mut frame = ff::frame::Audio::empty();
    let mut take = |dec: &mut ff::decoder::Audio, samples: &mut Vec<(f64, f32)>| {
        while dec.receive_frame(&mut frame).is_ok() {
            let t0 = frame.timestamp().expect("timestamps") as f64 * tb;
            let rate = f64::from(frame.rate());
            let n = frame.samples();
            let left: &[f32] = &frame.plane::<f32>(0)[..n];
            samples.extend(
                left.iter()
                    .enumerate()
                    .map(|(i, s)| (t0 + i as f64 / rate, *s)),
            );
        }
    };
    for (s, packet) in input.packets() {
        if s.index() == idx {
            dec.send_packet(&packet).unwrap();
            take(&mut dec, &mut samples);
        }
    }
    dec.send_eof().unwrap();
    take(&mut dec, &mut samples);
    samples
}

/// When each click starts: a sample over 0.3 with none in the 100 ms before it.
pub fn clicks(sound: &[(f64, f32)]) -> Vec<f64> {
    let mut last_loud = f64::NEG_INFINITY;
    let mut found = Vec::new();
    for &(t, s) in sound {
        if s.abs() > 0.3 {
            if t - last_loud > 0.1 {
                found.push(t);
            }
            last_loud = t;
        }
    }
    found
}

/// Each frame of a file: its time in seconds and its marker.
pub fn frames_of(path: &Path) -> Vec<(f64, u64)> {
    let mut frames = Vec::new();
    decode_timed(path, |t, f| {
        frames.push((
            t,
            read_marker(f.data(0), f.stride(0), f.width(), f.height()),
        ));
    });
    frames
}

/// How far each click lands from the frame that carries its marker (frame 45 for the
/// click at 1.5 s, ...), in seconds; the clicks found, in order.
pub fn offsets(path: &Path) -> Vec<(u64, f64)> {
    let frames = frames_of(path);
    clicks(&sound_of(path))
        .into_iter()
        .filter_map(|t| {
            // The click's source time is a multiple of CLICK_EVERY: its frame's number.
            let marker = frames
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))?
                .1;
            let k = (marker as f64 / (CLICK_EVERY * FPS as f64)).round();
            let marker = (k * CLICK_EVERY * FPS as f64) as u64;
            let (at, _) = frames.iter().find(|f| f.1 == marker)?;
            Some((marker, t - at))
        })
        .collect()
}

/// Asserts that the clicks found are those on `markers`, each within `tolerance` seconds of
/// its frame.
pub fn assert_in_sync(found: &[(u64, f64)], markers: &[u64], tolerance: f64, label: &str) {
    let got: Vec<u64> = found.iter().map(|f| f.0).collect();
    assert_eq!(got, markers, "{label}: the clicks found: {found:?}");
    for (marker, off) in found {
        assert!(
            off.abs() <= tolerance,
            "{label}: the click on frame {marker} is {:.1} ms off its frame",
            off * 1000.0
        );
    }
}
