//! Sound (issue 22): the source's sound carried into `--record` and the network outputs,
//! in sync with the picture and sample for sample the same on two offline runs. Measured in
//! what Lucid wrote: clicks the ffmpeg CLI put on known frames of a marked clip, against the
//! time of the frame that carries each one's marker.

mod support;

use std::path::Path;
use std::time::Duration;

use ffmpeg_next as ff;
use support::sound::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(120);
/// Offline, samples are placed by their timestamps and counted on: a click lands within
/// the resampler's filter delay of its frame (measured 0.06-0.4 ms). The requirement is
/// one frame; this catches a regression of a few milliseconds.
const OFFLINE: f64 = 0.002;

fn record(input: &Path, out: &Path, extra: &[&str]) -> String {
    let run = run_with_limit(
        lucid()
            .args(["--no-preview", "--url"])
            .arg(input)
            .arg("--record")
            .arg(out)
            .args(extra),
        LIMIT,
    );
    let err = stderr_of(&run);
    assert!(run.status.success(), "{err}");
    err
}

#[test]
fn a_file_renders_with_its_sound_in_sync_and_the_same_on_two_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_clicks(dir.path(), 6.0, "mp4", None);
    for ext in ["mp4", "mkv"] {
        let first = dir.path().join(format!("first.{ext}"));
        let second = dir.path().join(format!("second.{ext}"));
        let err = record(&input, &first, &[]);
        assert!(err.contains("sound: aac 44100 Hz"), "{err}");
        record(&input, &second, &[]);
        let found = offsets(&first);
        if ext == "mp4" {
            // Fragmented MP4 has no edit list: AAC's priming frame moves the click on the
            // very first frame up to 21 ms; the requirement is one frame.
            assert_in_sync(&found[..1], &[0], FRAME, ext);
            assert_in_sync(&found[1..], &[45, 90, 135], OFFLINE, ext);
        } else {
            assert_in_sync(&found, &[0, 45, 90, 135], OFFLINE, ext);
        }
        // As long as the picture (to the end of its last frame), within one frame.
        let sound = sound_of(&first);
        let frames = frames_of(&first);
        let picture_end = frames.last().unwrap().0 + FRAME;
        let sound_end = sound.last().unwrap().0;
        assert!(
            (sound_end - picture_end).abs() <= FRAME,
            "{ext}: sound ends at {sound_end:.3} s, picture at {picture_end:.3} s"
        );
        assert_eq!(frames.len(), 180, "{ext}: every frame");
        // Sample for sample the same on a second run.
        let again = sound_of(&second);
        assert_eq!(sound.len(), again.len(), "{ext}");
        assert!(
            sound.iter().zip(&again).all(|(a, b)| a == b),
            "{ext}: two runs wrote different sound"
        );
        eprintln!("{ext}: offsets {found:?}");
    }
}

#[test]
fn a_gap_in_the_sound_is_silence_and_the_clicks_after_it_stay_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    // No sound from 2.0 s to 3.4 s: the click at 3.0 s is gone; the one at 4.5 s must land
    // on its frame, not 1.4 s early.
    let input = clip_with_clicks(dir.path(), 6.0, "mkv", Some((2.0, 3.4)));
    let out = dir.path().join("gap.mkv");
    record(&input, &out, &[]);
    let found = offsets(&out);
    assert_in_sync(&found, &[0, 45, 135], OFFLINE, "after a gap");
    // The gap is there, as silence.
    let sound = sound_of(&out);
    let in_gap: Vec<f32> = sound
        .iter()
        .filter(|(t, _)| (2.1..3.3).contains(t))
        .map(|s| s.1)
        .collect();
    assert!(
        in_gap.len() > 40_000,
        "the gap is kept: {} samples",
        in_gap.len()
    );
    assert!(in_gap.iter().all(|s| s.abs() < 0.01), "silence in the gap");
}

#[test]
fn no_sound_goes_out_where_there_is_none_or_none_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_clicks(dir.path(), 2.0, "mp4", None);
    let out = dir.path().join("none.mp4");
    record(&input, &out, &["--audio-from", "none"]);
    let has_sound = |p: &Path| {
        ff::init().unwrap();
        let input = ff::format::input(&p).unwrap();
        input.streams().best(ff::media::Type::Audio).is_some()
    };
    assert!(!has_sound(&out), "--audio-from none");
    // The test pattern has no sound: the recording has none either.
    let pattern = dir.path().join("pattern.mp4");
    run_with_limit(
        lucid()
            .args(["--no-preview", "--duration", "1", "--record"])
            .arg(&pattern),
        LIMIT,
    );
    assert!(!has_sound(&pattern), "no sound where the show has none");
    // A layer that is not there: said at once, exit 2.
    let run = run_with_limit(
        lucid()
            .args(["--no-preview", "--audio-from", "1", "--url"])
            .arg(&input)
            .arg("--record")
            .arg(dir.path().join("x.mp4")),
        LIMIT,
    );
    assert_one_clear_error(&run, 2, "--audio-from 1: there is no layer");
    let run = run_with_limit(
        lucid()
            .args(["--no-preview", "--audio-from", "2", "--url"])
            .arg(&input)
            .arg("--layer")
            .arg(&input)
            .arg("--record")
            .arg(dir.path().join("x.mp4")),
        LIMIT,
    );
    assert_one_clear_error(&run, 2, "--audio-from 2: there are 1 layer(s)");
}

#[test]
fn a_layer_s_sound_is_the_show_s_on_the_layer_s_pictures() {
    // The --url clip clicks every 1.5 s; the layer above it (covering it) every 1.0 s, on
    // its frames 0, 30, 60, ... With --audio-from 1 the recording carries the layer's
    // clicks, each on the frame that shows its marker; a click of the --url source's
    // would land half a second off any of them.
    let dir = tempfile::tempdir().unwrap();
    let base = clip_with_clicks(dir.path(), 6.0, "mp4", None);
    let layer_dir = dir.path().join("layer");
    std::fs::create_dir(&layer_dir).unwrap();
    let layer = clip_with_clicks_every(&layer_dir, 6.0, "mkv", None, 1.0);
    let out = dir.path().join("show.mkv");
    let stats = dir.path().join("stats.jsonl");
    record(
        &base,
        &out,
        &[
            "--layer",
            layer.to_str().unwrap(),
            "--audio-from",
            "1",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    assert_eq!(last_stats(&stats)["audio"]["source"], "layer 1");
    let frames = frames_of(&out);
    let found: Vec<(u64, f64)> = clicks(&sound_of(&out))
        .into_iter()
        .filter_map(|t| {
            let nearest = frames
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))?;
            let marker = (nearest.1 as f64 / 30.0).round() as u64 * 30;
            let (at, _) = frames.iter().find(|f| f.1 == marker)?;
            Some((marker, t - at))
        })
        .collect();
    assert_in_sync(
        &found,
        &[0, 30, 60, 90, 120, 150],
        OFFLINE,
        "the layer's sound",
    );
}

#[test]
fn hls_sound_reaches_the_recording_in_sync_finished_and_live() {
    // A finished HLS stream (AAC in the TS segments) renders offline: within a frame.
    let vod = LiveOrigin::start(OriginOptions {
        vod_seconds: Some(6.0),
        audio: true,
        ..OriginOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vod.mkv");
    let run = run_with_limit(
        lucid()
            .args(["--no-preview", "--url", &vod.master_url(), "--record"])
            .arg(&out),
        LIMIT,
    );
    assert!(run.status.success(), "{}", stderr_of(&run));
    let found = offsets(&out);
    assert_in_sync(&found, &[0, 45, 90, 135], OFFLINE, "finished HLS");
    // Live, in real time, through latency steering: within 40 ms.
    let live = LiveOrigin::start(OriginOptions {
        audio: true,
        ..OriginOptions::default()
    });
    let out = dir.path().join("live.mkv");
    let run = run_with_limit(
        lucid()
            .args([
                "--no-preview",
                "--duration",
                "8",
                "--url",
                &live.master_url(),
                "--record",
            ])
            .arg(&out),
        LIMIT,
    );
    assert!(run.status.success(), "{}", stderr_of(&run));
    let found = offsets(&out);
    // Where a live recording starts depends on the live edge: every click from there on.
    let markers: Vec<u64> = found.iter().map(|f| f.0).collect();
    assert!(
        markers.len() >= 4 && markers.windows(2).all(|w| w[1] == w[0] + 45),
        "the clicks of 8 s, none missing: {found:?}"
    );
    assert_in_sync(&found, &markers, 0.040, "live HLS");
    eprintln!("live offsets {found:?}");
}

#[test]
fn a_corrupt_sound_track_never_stops_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clip_with_clicks(dir.path(), 6.0, "mkv", None);
    // FFmpeg's `noise` bitstream filter damages the AAC packets alone.
    let corrupt = dir.path().join("corrupt.mkv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&clean)
        .args(["-map", "0", "-c", "copy", "-bsf:a", "noise=amount=20"])
        .arg(&corrupt)
        .status()
        .unwrap();
    assert!(status.success());
    let out = dir.path().join("out.mkv");
    let stats = dir.path().join("stats.jsonl");
    let err = record(&corrupt, &out, &["--stats-json", stats.to_str().unwrap()]);
    // Every picture, in order.
    let markers: Vec<u64> = frames_of(&out).iter().map(|f| f.1).collect();
    assert_eq!(markers, (0..180).collect::<Vec<_>>());
    // Said once, counted.
    assert_eq!(
        err.matches("an audio packet did not decode").count(),
        1,
        "{err}"
    );
    let s = last_stats(&stats);
    assert!(s["audio"]["lost"].as_u64().unwrap() > 0, "{s}");
}

/// Each frame of a recording: its time and the mean of its luma plane, and a hash of the
/// plane (to compare two runs frame by frame).
fn luma_means(path: &Path) -> Vec<(f64, f64, u64)> {
    use std::hash::{Hash, Hasher};
    let mut frames = Vec::new();
    decode_timed(path, |t, f| {
        let (w, h, stride) = (f.width() as usize, f.height() as usize, f.stride(0));
        let rows = (0..h).map(|y| &f.data(0)[y * stride..y * stride + w]);
        let mut hash = std::collections::hash_map::DefaultHasher::new();
        let mut sum = 0u64;
        for row in rows {
            row.hash(&mut hash);
            sum += row.iter().map(|v| u64::from(*v)).sum::<u64>();
        }
        frames.push((t, sum as f64 / (w * h) as f64, hash.finish()));
    });
    frames
}

/// Where the clicks are, in the clip's stream time (the first, at 0, has no silence
/// before it to stand out from and is not a hit).
const HITS: [f64; 3] = [CLICK_EVERY, 2.0 * CLICK_EVERY, 3.0 * CLICK_EVERY];
/// "Within one frame plus the analysis window."
const REACTION: f64 = FRAME + 0.025;

/// A flash on the first frame after each hit (within one frame and an analysis window,
/// never before it), gone again 0.2 s later.
fn assert_flashes_on_the_hits(frames: &[(f64, f64, u64)]) {
    let quiet = frames[30].1;
    // Times from the first frame: a recording's own timeline may start a little later.
    let first = frames[0].0;
    let lit: Vec<f64> = frames
        .windows(2)
        .filter(|w| w[1].1 > quiet + 60.0 && w[0].1 < quiet + 60.0)
        .map(|w| w[1].0 - first)
        .collect();
    assert_eq!(lit.len(), HITS.len(), "one flash a hit: {lit:?}");
    let after: Vec<f64> = lit
        .iter()
        .zip(HITS)
        .map(|(shown, hit)| shown - hit)
        .collect();
    eprintln!("flashes after their hits (s): {after:.3?}");
    for (late, hit) in after.iter().zip(HITS) {
        assert!(
            *late > 0.0 && *late <= REACTION,
            "the hit at {hit} s showed {late:.3} s after it"
        );
    }
    // The release: 0.2 s later the flash has mostly gone.
    let fallen = frames
        .iter()
        .find(|f| f.0 - first > lit[0] + 0.2)
        .unwrap()
        .1;
    assert!(fallen < quiet + 25.0, "{fallen} vs {quiet}");
}

/// A 6 s marked clip without sound, and its clicks apart in a 16-bit PCM WAV (which gives
/// only its channel count, no layout).
fn silent_clip_and_clicks(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let clip = marked_clip(dir, 320, 180, 6.0, "mp4", &X264_FAST);
    let clicks = lavfi_file(&dir.join("clicks.wav"), &clicks_source(Some(6.0)), &[]);
    (clip, clicks)
}

/// Records `input` twice with `extra` flags: each run's frames (see [`luma_means`]).
fn render_twice(input: &Path, dir: &Path, extra: &[&str]) -> [Vec<(f64, f64, u64)>; 2] {
    ["first.mkv", "second.mkv"].map(|name| {
        let out = dir.join(name);
        record(input, &out, extra);
        luma_means(&out)
    })
}

/// The preset of the flash tests: each hit lifts the colour effect's brightness.
fn flash_preset(dir: &Path) -> std::path::PathBuf {
    let preset = dir.join("hits.ron");
    std::fs::write(
        &preset,
        r#"(effects: [(effect: "color")],
            audio: [(input: Onset,
                     target: Param(effect: 0, param: "brightness", from: 0.5, to: 1.0, curve: Linear),
                     release: 0.1)])"#,
    )
    .unwrap();
    preset
}

/// An audio mapping from the issue's example: each hit lifts the colour effect's
/// brightness, falling back over its release; the frame it shows on is within one frame
/// and an analysis window of the click, never before it; and the same file renders the
/// same frames twice.
#[test]
fn a_hit_in_the_sound_drives_an_effect_within_a_frame_the_same_on_two_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_clicks(dir.path(), 6.0, "mp4", None);
    let preset = flash_preset(dir.path());
    let stats = dir.path().join("stats.json");
    let stats_arg = stats.to_str().unwrap();
    let runs = render_twice(
        &input,
        dir.path(),
        &[
            "--preset",
            preset.to_str().unwrap(),
            "--stats-json",
            stats_arg,
        ],
    );
    let frames = &runs[0];
    assert_eq!(frames.len(), 180);
    assert_flashes_on_the_hits(frames);
    assert!(
        runs[0].iter().zip(&runs[1]).all(|(a, b)| a.2 == b.2),
        "two runs rendered different frames"
    );
    let s = last_stats(&stats);
    assert_eq!(s["audio"]["analysis"]["onsets"], HITS.len(), "{s}");
}

/// Effects read the sound: `lucid.audio_onset`, `lucid.audio_level` and
/// `audio_spectrum(f)` (a 2 kHz click lights 2 kHz, not 100 Hz), in a user effect.
#[test]
fn an_effect_reads_the_sounds_onset_level_and_spectrum() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_clicks(dir.path(), 3.0, "mkv", None);
    let effects = dir.path().join("fx");
    std::fs::create_dir(&effects).unwrap();
    // log position of f over 20 Hz..20 kHz: ln(f / 20) / ln(1000).
    std::fs::write(
        effects.join("meter.wgsl"),
        r#"/*{ "description": "the sound as colour", "params": [] }*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let at = select(0.6667, 0.2, uv.x > 0.5);
    return vec4(lucid.audio_onset, audio_spectrum(at), lucid.audio_level, 1.0);
}
"#,
    )
    .unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let run = run_with_limit(
        lucid()
            .args(["--no-preview", "--url"])
            .arg(&input)
            .args(["--width", "320", "--height", "180", "--effects-dir"])
            .arg(&effects)
            .args(["--effect", "meter", "--output"])
            .arg(frames.join("%06d.png")),
        LIMIT,
    );
    assert!(run.status.success(), "{}", stderr_of(&run));
    let rgb = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(frames.join("%06d.png"))
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(rgb.status.success());
    let size = 320 * 180 * 3;
    let pixel = |frame: usize, x: usize| {
        let at = frame * size + (90 * 320 + x) * 3;
        [rgb.stdout[at], rgb.stdout[at + 1], rgb.stdout[at + 2]]
    };
    // Frame 46 is the first after the click at 1.5 s; frame 60 is half a second later.
    let (hit, left, right) = (46, 80, 240);
    let [onset, two_khz, level] = pixel(hit, left);
    assert!(onset > 200, "the onset pulse at the hit: {onset}");
    assert!(two_khz > 100, "2 kHz in the spectrum at the hit: {two_khz}");
    assert!(level > 100, "the level at the hit: {level}");
    let [_, hundred_hz, _] = pixel(hit, right);
    assert!(
        hundred_hz + 60 < two_khz,
        "100 Hz {hundred_hz} vs 2 kHz {two_khz}"
    );
    let [onset, two_khz, level] = pixel(60, left);
    assert!(
        onset < 10 && two_khz < 10 && level < 10,
        "silence: {onset} {two_khz} {level}"
    );
}

/// `--bpm audio`: a click every half second sets the show's tempo to 120 bpm, and
/// `--osc-feedback` sends the analysis (level, bands, onset pulse, tempo) as it changes.
#[test]
fn the_tempo_follows_the_hits_and_osc_feedback_sends_the_analysis() {
    use std::net::UdpSocket;
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_clicks_every(dir.path(), 6.0, "mkv", None, 0.5);
    let feedback = UdpSocket::bind("127.0.0.1:0").unwrap();
    feedback
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let osc_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stats = dir.path().join("stats.json");
    let mut cmd = lucid();
    cmd.args(["--no-preview", "--pipe", "y4m", "--bpm", "audio", "--url"])
        .arg(&input)
        .args(["--osc", &osc_port.to_string(), "--osc-feedback"])
        .arg(feedback.local_addr().unwrap().to_string())
        .arg("--stats-json")
        .arg(&stats);
    let (mut child, out, err) = spawn_piped(&mut cmd);
    let mut heard: std::collections::BTreeMap<String, Vec<Vec<f32>>> = Default::default();
    let mut buf = [0u8; 1536];
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < until && matches!(child.try_wait(), Ok(None)) {
        let Ok(n) = feedback.recv(&mut buf) else {
            continue;
        };
        let (_, packet) = rosc::decoder::decode_udp(&buf[..n]).unwrap();
        if let rosc::OscPacket::Message(m) = packet
            && m.addr.starts_with("/lucid/audio/")
        {
            let values = m
                .args
                .iter()
                .filter_map(|a| match a {
                    rosc::OscType::Float(f) => Some(*f),
                    _ => None,
                })
                .collect();
            heard.entry(m.addr).or_default().push(values);
        }
    }
    let status = wait_with_limit(&mut child, Duration::from_secs(60));
    let _ = out.join();
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
    let s = last_stats(&stats);
    let bpm = s["bpm"].as_f64().unwrap();
    assert!((bpm - 120.0).abs() < 1.0, "the show's tempo: {bpm}\n{s}");
    let measured = s["audio"]["analysis"]["bpm"].as_f64().unwrap();
    assert!((measured - 120.0).abs() < 1.0, "{s}");
    let level = &heard["/lucid/audio/level"];
    assert!(level.iter().any(|v| v[0] > 0.5), "{level:?}");
    assert!(heard["/lucid/audio/bands"].iter().all(|v| v.len() == 4));
    assert!(heard["/lucid/audio/onset"].iter().any(|v| v[0] > 0.5));
    let fed_bpm = heard["/lucid/audio/bpm"].last().unwrap()[0];
    assert!((fed_bpm - 120.0).abs() < 1.0, "{fed_bpm}");
}

/// A scene (`--scene`) carries sound mappings like a preset does.
#[test]
fn a_scene_carries_its_audio_mappings() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_clicks(dir.path(), 6.0, "mp4", None);
    let scene = dir.path().join("show.ron");
    std::fs::write(
        &scene,
        format!(
            r#"(source: Some("{}"),
                effects: [(effect: "color")],
                audio: [(input: Onset,
                         target: Param(effect: 0, param: "brightness", from: 0.5, to: 1.0, curve: Linear),
                         release: 0.1)])"#,
            input.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("scene.mkv");
    let run = run_with_limit(
        lucid()
            .args(["--no-preview", "--scene"])
            .arg(&scene)
            .arg("--record")
            .arg(&out),
        LIMIT,
    );
    assert!(run.status.success(), "{}", stderr_of(&run));
    assert_flashes_on_the_hits(&luma_means(&out));
}

/// `--audio-in FILE`: a silent clip flashes on the hits of a separate sound file, placed
/// from the first frame on the show's clock, the same on two runs; the recording still
/// carries the show's sound (none here).
#[test]
fn audio_in_a_file_drives_a_silent_clip_from_its_first_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, clicks) = silent_clip_and_clicks(dir.path());
    let preset = flash_preset(dir.path());
    let runs = render_twice(
        &clip,
        dir.path(),
        &[
            "--preset",
            preset.to_str().unwrap(),
            "--audio-in",
            clicks.to_str().unwrap(),
        ],
    );
    assert_eq!(runs[0].len(), 180);
    assert_flashes_on_the_hits(&runs[0]);
    assert!(
        runs[0].iter().zip(&runs[1]).all(|(a, b)| a.2 == b.2),
        "two runs rendered different frames"
    );
    ff::init().unwrap();
    let written = ff::format::input(&dir.path().join("first.mkv")).unwrap();
    assert!(written.streams().best(ff::media::Type::Audio).is_none());
}

/// PCM sound that gives only its channel count (16-bit PCM in MKV, as WAV has it) is
/// carried in sync too: such frames once crashed the resampler.
#[test]
fn pcm_sound_without_a_channel_layout_is_carried_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, clicks) = silent_clip_and_clicks(dir.path());
    let input = dir.path().join("pcm.mkv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&clip)
        .arg("-i")
        .arg(&clicks)
        .args(["-c:v", "copy", "-c:a", "pcm_s16le"])
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());
    let out = dir.path().join("out.mkv");
    let err = record(&input, &out, &[]);
    assert!(
        err.contains("sound: pcm_s16le 44100 Hz, 1 channel"),
        "{err}"
    );
    assert_in_sync(&offsets(&out), &[0, 45, 90, 135], OFFLINE, "pcm");
}

/// `--audio-in` that is neither a file with sound nor a device: exit 2, saying why and
/// listing the devices; `--list-audio` lists them.
#[test]
fn audio_in_names_a_file_with_sound_or_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_limit(
        lucid().args(["--no-preview", "--audio-in", "no-such-device-or-file"]),
        LIMIT,
    );
    assert_one_clear_error(&run, 2, "--audio-in no-such-device-or-file");
    assert!(
        stderr_of(&run).contains("the devices"),
        "{}",
        stderr_of(&run)
    );
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not sound").unwrap();
    let run = run_with_limit(
        lucid().args(["--no-preview", "--audio-in"]).arg(&text),
        LIMIT,
    );
    assert_one_clear_error(&run, 2, "--audio-in");
    let clip = marked_clip(dir.path(), 320, 180, 1.0, "mp4", &X264_FAST);
    let run = run_with_limit(
        lucid().args(["--no-preview", "--audio-in"]).arg(&clip),
        LIMIT,
    );
    assert_one_clear_error(&run, 2, "no sound");
    let listed = run_with_limit(lucid().arg("--list-audio"), LIMIT);
    assert!(listed.status.success());
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(out.contains("capture") && out.contains("playback"), "{out}");
}

/// An ALSA configuration with the system's and one more device, `name`, whose body is
/// `body` (a `file` plugin over the `null` device: there is no sound card here), listed
/// with a hint as cpal wants.
fn alsa_config(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let config = dir.join(format!("{name}.conf"));
    std::fs::write(
        &config,
        format!(
            "</usr/share/alsa/alsa.conf>\npcm.{name} {{\n    type file\n    slave.pcm null\n{body}\n    hint {{ show on description \"Lucid test device\" }}\n}}\n"
        ),
    )
    .unwrap();
    config
}

/// `--audio-in DEVICE` through ALSA: a capture device defined in an ALSA configuration
/// (the `file` plugin reading noise, as there is no sound card here) is listed by
/// `--list-audio`, picked by part of its name, captured and measured while the show
/// plays, at real time (ALSA's `null` slave runs as fast as it is read; Lucid holds it to
/// real time).
#[test]
fn audio_in_a_device_is_listed_picked_captured_and_measured() {
    let dir = tempfile::tempdir().unwrap();
    let config = alsa_config(
        dir.path(),
        "lucidnoise",
        "    file \"/dev/null\"\n    infile \"/dev/urandom\"\n    format \"raw\"",
    );
    let listed = run_with_limit(
        lucid().env("ALSA_CONFIG_PATH", &config).arg("--list-audio"),
        LIMIT,
    );
    let out = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(out.contains("0: lucidnoise"), "{out}");
    let stats = dir.path().join("stats.json");
    let run = run_with_limit(
        lucid()
            .env("ALSA_CONFIG_PATH", &config)
            .args([
                "--no-preview",
                "--width",
                "320",
                "--height",
                "180",
                "--duration",
                "3",
                "--audio-in",
                "NOISE",
                "--stats-json",
            ])
            .arg(&stats),
        LIMIT,
    );
    assert!(run.status.success(), "{}", stderr_of(&run));
    let s = last_stats(&stats);
    assert_eq!(s["audio"]["source"], "audio-in", "{s}");
    assert_eq!(s["audio"]["codec"], "pcm (lucidnoise)", "{s}");
    assert_eq!(s["audio"]["analysis"]["source"], "device", "{s}");
    // Full-scale noise: loud in every band.
    let level = s["audio"]["analysis"]["level"].as_f64().unwrap();
    assert!(level > 0.8, "{s}");
}

/// `--audio-out` through ALSA: a playback device defined in an ALSA configuration (the
/// `file` plugin, writing what it plays to a file; no sound card here) is picked by part of
/// its name and gets the show's sound: the clicks reach the file, at the pace of the
/// picture (ALSA's `null` slave runs as fast as it is fed; Lucid holds such a device to
/// real time). The timing against the picture is pinned by the playback module's unit
/// tests.
#[test]
fn audio_out_plays_the_shows_sound_on_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_clicks(dir.path(), 4.0, "mkv", None);
    let played = dir.path().join("played.raw");
    let config = alsa_config(
        dir.path(),
        "lucidspeaker",
        &format!("    file \"{}\"\n    format \"raw\"", played.display()),
    );
    let stats = dir.path().join("stats.json");
    let run = run_with_limit(
        lucid()
            .env("ALSA_CONFIG_PATH", &config)
            .args([
                "--no-preview",
                "--pipe",
                "y4m",
                "--audio-out",
                "speaker",
                "--url",
            ])
            .arg(&input)
            .arg("--stats-json")
            .arg(&stats)
            .stdout(std::process::Stdio::null()),
        LIMIT,
    );
    assert!(run.status.success(), "{}", stderr_of(&run));
    let s = last_stats(&stats);
    assert_eq!(s["audio"]["out"]["device"], "lucidspeaker", "{s}");
    assert!(
        s["audio"]["out"]["played_ms"].as_f64().unwrap() > 1000.0,
        "{s}"
    );
    // Where the sound it plays is against the picture on screen: within the 40 ms goal.
    let offset = s["audio"]["av_offset_ms"].as_f64().expect("av_offset_ms");
    assert!(offset.abs() <= 40.0, "{s}");
    // What the device got: interleaved samples with the clicks in them (loud, 2 kHz).
    let bytes = std::fs::read(&played).unwrap();
    let loud = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .filter(|v| v.is_finite() && v.abs() > 0.3)
        .count();
    let loud16 = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .filter(|v| v.unsigned_abs() > 10_000)
        .count();
    assert!(
        loud > 100 || loud16 > 100,
        "no clicks in what was played ({} bytes)",
        bytes.len()
    );
}
