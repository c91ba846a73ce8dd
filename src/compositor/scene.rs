//! `--scene FILE`: a whole show in one RON file: the bottom source, the layers above it,
//! the crossfader, the master effect chain and the MIDI mappings. The overlay saves the
//! running show as one; the command line adds to it (`--url` replaces its source,
//! `--layer` and `--effect` add above and after its own).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Crossfader, LayerSpec, MAX_LAYERS};
use crate::effects::chain::{EffectInstance, check_chain_length};
use crate::error::{LucidError, Result};
use crate::midi_map::MidiMapping;

/// The bottom layer's source as given (`--url` or the scene's), for saving the show.
#[derive(bevy::prelude::Resource, Debug, Clone, Default)]
pub struct SceneSource(pub Option<String>);

fn version() -> u32 {
    1
}

/// A saved show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// Format version, for files written by later Lucids.
    #[serde(default = "version")]
    pub version: u32,
    /// The bottom layer's source (what `--url` takes); none: the test pattern.
    #[serde(default)]
    pub source: Option<String>,
    /// The layers above it, bottom first.
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
    /// The crossfader as the show starts.
    #[serde(default)]
    pub crossfader: Crossfader,
    /// The master effect chain, run on the composited picture.
    #[serde(default)]
    pub effects: Vec<EffectInstance>,
    /// MIDI mappings.
    #[serde(default)]
    pub midi: Vec<MidiMapping>,
    /// Sound mappings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audio: Vec<crate::audio_map::AudioMapping>,
}

impl Default for Scene {
    fn default() -> Self {
        Scene {
            version: version(),
            source: None,
            layers: Vec::new(),
            crossfader: Crossfader::default(),
            effects: Vec::new(),
            midi: Vec::new(),
            audio: Vec::new(),
        }
    }
}

impl Scene {
    /// Reads a scene file (a regular file of at most
    /// [`MAX_SHOW_FILE_BYTES`](crate::effects::chain::MAX_SHOW_FILE_BYTES)); errors name the
    /// file and, for bad RON, the line and column.
    pub fn load(path: &Path) -> Result<Scene> {
        let text = crate::effects::chain::read_show_file(path)
            .map_err(|e| LucidError::Usage(format!("cannot read scene {}: {e}", path.display())))?;
        Scene::from_ron(&text)
            .map_err(|e| LucidError::Usage(format!("scene {}: {e}", path.display())))
    }

    /// Parses RON text and checks what the types cannot: every number finite and in range,
    /// at most [`MAX_LAYERS`] layers and
    /// [`MAX_CHAIN_EFFECTS`](crate::effects::chain::MAX_CHAIN_EFFECTS) effects a chain. Unknown
    /// fields are refused by name and position, so a typo never silently does nothing.
    pub fn from_ron(text: &str) -> std::result::Result<Scene, String> {
        let scene: Scene = ron::from_str(text).map_err(|e| e.to_string())?;
        if scene.version > version() {
            return Err(format!(
                "written by a newer Lucid (version {}; this one reads {})",
                scene.version,
                version()
            ));
        }
        if scene.layers.len() > MAX_LAYERS {
            return Err(format!(
                "{} layers; a show holds at most {MAX_LAYERS}",
                scene.layers.len()
            ));
        }
        check_chain_length(scene.effects.len())?;
        for (i, layer) in scene.layers.iter().enumerate() {
            layer
                .check()
                .map_err(|what| format!("layer {} ({}): {what}", i + 1, layer.source))?;
        }
        let fader = &scene.crossfader;
        if !(0.0..=1.0).contains(&fader.position)
            || !(0.0..=1.0).contains(&fader.target)
            || !(0.0..=3600.0).contains(&fader.seconds)
        {
            return Err("crossfader: position and target 0 to 1, seconds 0 to 3600".into());
        }
        for mapping in &scene.audio {
            mapping.check()?;
        }
        Ok(scene)
    }

    /// RON text that [`Scene::from_ron`] reads back to an equal scene.
    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default())
            .expect("a scene always serializes")
    }

    /// Writes the scene atomically (a crash mid-write never leaves half a file).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::effects::chain::save_atomically(path, &self.to_ron())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compositor::{AtEnd, BlendMode, Bus, FaderCurve, Fit, Transform};

    #[test]
    fn a_scene_round_trips_exactly() {
        let scene = Scene {
            version: 1,
            source: Some("https://example.com/live/index.m3u8".into()),
            layers: vec![
                LayerSpec {
                    source: "/dev/video0".into(),
                    opacity: 0.75,
                    blend: BlendMode::SoftLight,
                    fit: Fit::Cover,
                    looped: false,
                    at_end: AtEnd::Fade,
                    bus: Bus::A,
                    transform: Transform {
                        x: 0.1,
                        y: -0.2,
                        scale: 0.5,
                        rotate: 12.5,
                    },
                    effects: vec![EffectInstance::new("blur"), {
                        let mut tint = EffectInstance::new("tint");
                        tint.mix = 0.5;
                        tint.params.insert(
                            "color".into(),
                            crate::effects::definition::ParamValue::Color([1.0, 0.0, 0.0, 1.0]),
                        );
                        tint
                    }],
                },
                LayerSpec::parse("logo.png:blend=screen,loop=true,bus=b").unwrap(),
            ],
            crossfader: Crossfader {
                position: 0.25,
                target: 1.0,
                seconds: 4.0,
                curve: FaderCurve::EqualPower,
            },
            effects: vec![EffectInstance::new("tint")],
            midi: Vec::new(),
            audio: vec![crate::audio_map::AudioMapping {
                input: crate::audio_map::AudioInput::Onset,
                target: crate::midi_map::MidiTarget::Tap,
                attack: 0.0,
                release: 0.0,
            }],
        };
        let text = scene.to_ron();
        assert_eq!(Scene::from_ron(&text).unwrap(), scene, "{text}");
        // Everything has a default: a scene of one layer is one line.
        let small = Scene::from_ron(r#"(layers: [(source: "a.png")])"#).unwrap();
        assert_eq!(small.layers[0].opacity, 1.0);
        assert_eq!(small.layers[0].blend, BlendMode::Normal);
        assert!(small.layers[0].effects.is_empty());
        // A layer without effects saves without an effects line (only the master's).
        let plain = Scene {
            layers: vec![LayerSpec::parse("a.png").unwrap()],
            ..Scene::default()
        };
        assert_eq!(plain.to_ron().matches("effects").count(), 1);
    }

    #[test]
    fn bad_scenes_say_what_and_where() {
        let err = Scene::from_ron("(layers: [(source: \"a.png\", blend: glow)])").unwrap_err();
        assert!(err.contains("1:"), "a position: {err}");
        let err = Scene::from_ron(r#"(layers: [(source: "a.png", opacity: 3.0)])"#).unwrap_err();
        assert!(err.contains("layer 1 (a.png): opacity 3"), "{err}");
        let err = Scene::from_ron("(version: 9)").unwrap_err();
        assert!(err.contains("newer Lucid"), "{err}");
        assert!(
            Scene::from_ron("(layers: [(opacity: 1.0)])").is_err(),
            "no source"
        );
    }
}
