//! [`Config::from_args`]: the command line, checked and typed, plus the files it names.
//! Checks run in the order a user meets them: the flags' own values first, then the
//! listings (which need nothing else), then the files.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::files::{
    GENERATOR_PREFIX, ShowScene, generator_source, layer_specs, load_catalog, master_chain,
    transition,
};
use super::{
    Config, ControlConfig, EffectsConfig, Invocation, LayersConfig, PlaybackConfig, SoundFrom,
    SourceChoice, WindowConfig, config_dir, config_root,
};
use crate::cli::Args;
use crate::compositor::Crossfader;
use crate::daydream::api::param;
use crate::daydream::cues::CueList;
use crate::daydream::{DaydreamOptions, StreamChoice};
use crate::decode::{DecodeOptions, MAX_TEXTURE_SIDE};
use crate::effects::chain::Preset;
use crate::error::{LucidError, Result};
use crate::output::encode::EncoderSettings;
use crate::output::{OutputConfig, OutputTarget, record, v4l2};
use crate::sound::AnalysisInput;
use crate::source::{SourceOptions, SourceSpec};

impl Config {
    /// Checks the arguments, loads the files they name and says what this invocation does.
    /// Every error here is a usage error (exit 2) or a file that cannot be read.
    pub fn from_args(args: Args) -> Result<Invocation> {
        check_values(&args)?;
        let daydream = daydream(&args)?;
        let feedback = osc_feedback(&args)?;
        let encoding = encoding(&args)?;
        let fader = crossfader(&args)?;
        check_outputs(&args)?;
        if args.list_osc {
            return Ok(Invocation::ListOsc);
        }
        if args.list_midi {
            return Ok(Invocation::ListMidi);
        }
        if args.list_audio {
            return Ok(Invocation::ListAudio);
        }
        let analysis_input = args.audio_in.as_deref().map(analysis_input).transpose()?;
        let audio_out = args
            .audio_out
            .as_deref()
            .map(crate::sound::device::pick_output)
            .transpose()?;
        let cues = args
            .cues
            .as_deref()
            .map(CueList::load)
            .transpose()
            .map_err(|e| LucidError::Usage(format!("--cues {e}")))?;
        let scene = ShowScene::load(args.scene.as_deref())?;
        let scene_source = args.url.clone().or(scene.scene.source.clone());
        let protocol = args.protocol.into();
        let catalog = load_catalog(args.effects_dir.as_deref())?;
        if args.list_effects {
            return Ok(Invocation::ListEffects(catalog));
        }
        if args.check_effects {
            return Ok(Invocation::CheckEffects(catalog));
        }
        catalog.warn_failed();
        // An ISF generator (`isf:NAME`) plays as a black canvas with it first in the chain.
        let canvas = (
            args.width.unwrap_or(1280),
            args.height.unwrap_or(720),
            args.fps.map_or(30, |f| f.round().clamp(1.0, 240.0) as u32),
        );
        let generator = scene_source
            .as_deref()
            .filter(|s| s.starts_with(GENERATOR_PREFIX))
            .map(|s| generator_source(&catalog, s, canvas))
            .transpose()?;
        // A Daydream stream says what to play once it is attached.
        let source = match (daydream, &generator) {
            (Some(options), _) => SourceChoice::Daydream(options),
            (None, Some((canvas, _))) => {
                SourceChoice::Play(SourceSpec::resolve(Some(canvas), protocol)?)
            }
            (None, None) => {
                SourceChoice::Play(SourceSpec::resolve(scene_source.as_deref(), protocol)?)
            }
        };
        let preset = args.preset.as_deref().map(Preset::load).transpose()?;
        let mut chain = master_chain(
            &catalog,
            &scene,
            args.preset.as_deref(),
            preset.as_ref(),
            &args.effect,
        )?;
        if let Some((_, effect)) = generator {
            chain.effects.insert(0, effect);
        }
        let fader_transition = args
            .transition
            .as_deref()
            .map(|t| transition(&catalog, t))
            .transpose()?;
        let specs = layer_specs(
            &catalog,
            &scene,
            args.layer.clone(),
            &args.layer_effect,
            canvas,
        )?;
        let sound = sound_from(&args, specs.len())?;
        let mut mappings = scene.scene.midi.clone();
        let mut audio_mappings = scene.scene.audio.clone();
        audio_mappings.extend(preset.as_ref().map(|p| p.audio.clone()).unwrap_or_default());
        mappings.extend(preset.map(|p| p.midi).unwrap_or_default());
        if args.kiosk && args.no_preview {
            return Err(LucidError::Usage(
                "--kiosk shows the picture fullscreen: it needs the window (drop --no-preview)"
                    .into(),
            ));
        }
        let window = (!args.no_preview).then(|| WindowConfig {
            overlay_visible: !args.hide_ui && !args.kiosk,
            fullscreen: args.fullscreen || args.kiosk,
            kiosk: args.kiosk,
            monitor: args.monitor,
            fade: Duration::from_secs_f64(args.fade),
            screenshot_dir: args.screenshot_dir.clone().unwrap_or_else(|| ".".into()),
            presets_dir: args.presets_dir.clone().or_else(|| config_dir("presets")),
        });
        Ok(Invocation::Run(Box::new(Config {
            source,
            decode: DecodeOptions {
                audio: sound == SoundFrom::Url,
                force_cpu: args.force_cpu,
                source: SourceOptions {
                    protocol,
                    livepeer_api: livepeer_api(&args.livepeer_api)?,
                    wait: Duration::from_secs_f64(args.wait),
                    ice_servers: args.ice_server.clone(),
                },
            },
            playback: PlaybackConfig {
                requested: (args.width, args.height),
                latency: args.latency.map(Duration::from_secs_f64),
                duration: args.duration.map(Duration::from_secs_f64),
                realtime: args.realtime,
                fps: args.fps,
            },
            effects: EffectsConfig {
                catalog,
                chain,
                tempo: args.bpm,
            },
            layers: LayersConfig {
                specs,
                // A scene's crossfader, unless --crossfade says otherwise.
                fader: match (&scene.path, args.crossfade) {
                    (Some(_), None) => scene.scene.crossfader,
                    _ => fader,
                },
                scene_source,
                sound: match sound {
                    SoundFrom::Layer(i) => Some(i),
                    _ => None,
                },
                transition: fader_transition,
            },
            outputs: OutputConfig {
                record: args.record.clone(),
                overwrite: args.overwrite,
                pipe: args.pipe.map(Into::into),
                width: 0,
                height: 0,
                frame_rate: 30.0,
                targets: args.output.clone(),
                encoding,
                on_screen: !args.no_preview,
            },
            control: ControlConfig {
                osc: osc_listen(&args)?,
                feedback,
                midi: args.midi.clone(),
                mappings,
                audio: audio_mappings,
            },
            cues,
            window,
            stats_json: args.stats_json.clone(),
            service: crate::service::ServiceConfig::from_env(),
            state: args.state.clone(),
            schedule: schedule(&args)?,
            remote: remote(&args)?,
            analysis_input,
            audio_out,
        })))
    }
}

/// `--schedule`, parsed; a bad part is named.
fn schedule(args: &Args) -> Result<Option<crate::schedule::ScheduleConfig>> {
    let Some(text) = &args.schedule else {
        return Ok(None);
    };
    let hours = crate::schedule::Schedule::parse(text)
        .map_err(|e| LucidError::Usage(format!("--schedule \"{text}\": {e}")))?;
    Ok(Some(crate::schedule::ScheduleConfig {
        hours,
        fade: Duration::from_secs_f64(args.fade),
    }))
}

/// Sizes, durations, rates and ranges that parse but make no sense.
fn check_values(args: &Args) -> Result<()> {
    for (name, v) in [("--width", args.width), ("--height", args.height)] {
        if let Some(v) = v
            && !(16..=MAX_TEXTURE_SIDE).contains(&v)
        {
            return Err(LucidError::Usage(format!(
                "{name} must be between 16 and {MAX_TEXTURE_SIDE} pixels, got {v}"
            )));
        }
    }
    for (name, v) in [
        ("--fade", Some(args.fade)),
        ("--duration", args.duration),
        ("--latency", args.latency),
        ("--wait", Some(args.wait)),
    ] {
        if let Some(d) = v
            && !(d.is_finite() && d > 0.0 && d < 3600.0)
        {
            return Err(LucidError::Usage(format!(
                "{name} must be a positive number of seconds, got {d}"
            )));
        }
    }
    livepeer_api(&args.livepeer_api)?;
    if let Some(fps) = args.fps
        && !(fps.is_finite() && (1.0..=240.0).contains(&fps))
    {
        return Err(LucidError::Usage(format!(
            "--fps must be 1 to 240, got {fps}"
        )));
    }
    Ok(())
}

/// `--record` and `--output`: containers, files that exist, devices that are there.
fn check_outputs(args: &Args) -> Result<()> {
    if let Some(path) = &args.record {
        record::container_for(path)?;
        record::check_path(path, args.overwrite)?;
    }
    for target in &args.output {
        match target {
            OutputTarget::Images(pattern) => pattern.check(args.overwrite)?,
            OutputTarget::V4l2(path) => v4l2::check_device(path)?,
            #[cfg(feature = "ndi")]
            OutputTarget::Ndi(name) => crate::output::ndi::check_runtime(name)?,
            #[cfg(not(feature = "ndi"))]
            OutputTarget::Ndi(_) => {}
            OutputTarget::Stream(_) => {}
        }
    }
    Ok(())
}

/// Whose sound the show has (`--audio-from`): the `--url` source's (the default), a
/// layer's (1 = the first `--layer`, or the scene's first), or none. The analysis
/// (effects' `lucid.audio_*`, audio mappings, `--bpm audio`) always listens to it, and the
/// outputs that carry sound (`--record`, a network `--output`) take it too.
fn sound_from(args: &Args, layers: usize) -> Result<SoundFrom> {
    let usage = |m: String| Err(LucidError::Usage(m));
    match args.audio_from.as_deref().map(str::trim) {
        None | Some("0") => Ok(SoundFrom::Url),
        Some(n) if n.eq_ignore_ascii_case("none") => Ok(SoundFrom::None),
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=layers).contains(&n) => Ok(SoundFrom::Layer(n - 1)),
            Ok(n) if layers == 0 => usage(format!(
                "--audio-from {n}: there is no layer; the show has only the --url source (0)"
            )),
            Ok(n) => usage(format!(
                "--audio-from {n}: there are {layers} layer(s); use 0 (the --url source), 1..={layers} or none"
            )),
            Err(_) => usage(format!(
                "--audio-from takes 0 (the --url source), a layer's number or none, got {n:?}"
            )),
        },
    }
}

/// `--audio-in`: a file that exists and has sound that decodes, else a capture device by
/// that name (a usage error listing the devices when there is none).
fn analysis_input(wanted: &str) -> Result<AnalysisInput> {
    let path = std::path::Path::new(wanted);
    if path.is_file() {
        crate::decode::audio::probe_file(path)
            .map_err(|e| LucidError::Usage(format!("--audio-in {wanted}: {e}")))?;
        return Ok(AnalysisInput::File(path.to_path_buf()));
    }
    crate::sound::device::pick_input(wanted).map(AnalysisInput::Device)
}

/// The crossfader as the show starts (`--crossfade`, `--crossfade-curve`).
fn crossfader(args: &Args) -> Result<Crossfader> {
    if let Some(s) = args.crossfade
        && !(s.is_finite() && (0.0..=3600.0).contains(&s))
    {
        return Err(LucidError::Usage(format!(
            "--crossfade must be 0 to 3600 seconds, got {s}"
        )));
    }
    Ok(Crossfader {
        position: 0.0,
        target: if args.crossfade.is_some() { 1.0 } else { 0.0 },
        seconds: args.crossfade.unwrap_or(2.0) as f32,
        curve: args.crossfade_curve.into(),
    })
}

/// `--http` and `--http-token-file`, checked (the token read now).
fn remote(args: &Args) -> Result<Option<crate::remote::RemoteConfig>> {
    match (&args.http, &args.http_token_file) {
        (None, Some(_)) => Err(LucidError::Usage(
            "--http-token-file guards the remote API: add --http ADDR:PORT".into(),
        )),
        (None, None) => Ok(None),
        (Some(http), token) => crate::remote::RemoteConfig::parse(http, token.as_deref())
            .map(Some)
            .map_err(LucidError::Usage),
    }
}

/// `--osc` and `--osc-allow`, checked.
fn osc_listen(args: &Args) -> Result<Option<crate::control::osc::OscListen>> {
    match &args.osc {
        None if !args.osc_allow.is_empty() => Err(LucidError::Usage(
            "--osc-allow says whom OSC hears: add --osc PORT".into(),
        )),
        None => Ok(None),
        Some(osc) => crate::control::osc::OscListen::parse(osc, &args.osc_allow)
            .map(Some)
            .map_err(LucidError::Usage),
    }
}

/// `--osc-feedback`, resolved to an address.
fn osc_feedback(args: &Args) -> Result<Option<SocketAddr>> {
    let Some(text) = &args.osc_feedback else {
        return Ok(None);
    };
    if args.osc.is_none() {
        return Err(LucidError::Usage(
            "--osc-feedback answers a controller: add --osc PORT".into(),
        ));
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(Some)
        .ok_or_else(|| {
            LucidError::Usage(format!(
                "--osc-feedback {text}: use HOST:PORT, e.g. 192.168.1.20:9000"
            ))
        })
}

/// `--encoder`, `--bitrate` and `--gop`, checked.
fn encoding(args: &Args) -> Result<EncoderSettings> {
    if let Some(gop) = args.gop
        && !(1..=1000).contains(&gop)
    {
        return Err(LucidError::Usage(format!(
            "--gop must be 1 to 1000 frames, got {gop}"
        )));
    }
    Ok(EncoderSettings {
        choice: args.encoder.into(),
        bitrate: args.bitrate.map(|b| b.0),
        gop: args.gop,
    })
}

/// The Daydream options, when `--daydream-stream` or `--daydream-create` asks for them.
fn daydream(args: &Args) -> Result<Option<DaydreamOptions>> {
    let stream = match (&args.daydream_stream, args.daydream_create) {
        (Some(id), _) if id.trim().is_empty() => {
            return Err(LucidError::Usage(
                "--daydream-stream needs a stream id".into(),
            ));
        }
        (Some(id), _) => StreamChoice::Attach(id.trim().to_string()),
        (None, true) => StreamChoice::Create,
        (None, false) => {
            let steering = [
                ("--model", args.model.is_some()),
                ("--prompt", args.prompt.is_some()),
                ("--negative-prompt", args.negative_prompt.is_some()),
                ("--seed", args.seed.is_some()),
                ("--steps", args.steps.is_some()),
                ("--guidance", args.guidance.is_some()),
                ("--cues", args.cues.is_some()),
            ];
            if let Some((flag, _)) = steering.iter().find(|(_, given)| *given) {
                return Err(LucidError::Usage(format!(
                    "{flag} steers a Daydream stream: add --daydream-stream ID or --daydream-create"
                )));
            }
            return Ok(None);
        }
    };
    if let Some(steps) = args.steps
        && !(1..=100).contains(&steps)
    {
        return Err(LucidError::Usage(format!(
            "--steps must be 1 to 100, got {steps}"
        )));
    }
    if let Some(g) = args.guidance
        && !(g.is_finite() && (0.0..=100.0).contains(&g))
    {
        return Err(LucidError::Usage(format!(
            "--guidance must be 0 to 100, got {g}"
        )));
    }
    let mut params = serde_json::Map::new();
    let mut put = |name: &str, value: Option<serde_json::Value>| {
        if let Some(v) = value {
            params.insert(name.to_string(), v);
        }
    };
    put(param::PROMPT, args.prompt.clone().map(Into::into));
    put(
        param::NEGATIVE_PROMPT,
        args.negative_prompt.clone().map(Into::into),
    );
    put(param::SEED, args.seed.map(Into::into));
    put(param::STEPS, args.steps.map(Into::into));
    put(param::GUIDANCE, args.guidance.map(Into::into));
    Ok(Some(DaydreamOptions {
        stream,
        api: args.daydream_api.trim().to_string(),
        model: args.model.clone(),
        params,
        config_dir: config_root(),
    }))
}

/// `--livepeer-api` as a URL (with a trailing slash, so paths join under it).
fn livepeer_api(text: &str) -> Result<url::Url> {
    let mut raw = text.trim().to_string();
    if !raw.ends_with('/') {
        raw.push('/');
    }
    url::Url::parse(&raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            LucidError::Usage(format!(
                "--livepeer-api must be an http(s) URL, got {text:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn check(argv: &[&str]) -> Result<Invocation> {
        Config::from_args(Args::try_parse_from(argv).expect("clap parses these"))
    }

    #[test]
    fn rejects_nonsense_sizes_and_durations() {
        assert!(check(&["lucid", "--width", "0"]).is_err());
        assert!(check(&["lucid", "--duration=-1"]).is_err());
        assert!(check(&["lucid", "--record", "out.avi"]).is_err());
        assert!(check(&["lucid", "--livepeer-api", "ftp://x"]).is_err());
        assert_eq!(
            livepeer_api("http://127.0.0.1:9/sub").unwrap().as_str(),
            "http://127.0.0.1:9/sub/"
        );
    }
}
