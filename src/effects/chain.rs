//! The effect chain as plain data: which effects run, in which order, with which parameters
//! and mix. The same data comes from `--effect`, from a `--preset` file and from the
//! overlay, and presets are this data written as RON.

use std::collections::BTreeMap;
use std::path::Path;

use bevy::prelude::Resource;
use serde::{Deserialize, Serialize};

use super::definition::{EffectDef, ParamValue};
use crate::error::{LucidError, Result};

/// One effect in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectInstance {
    /// The effect's name (built-in or user file stem).
    pub effect: String,
    /// Disabled effects stay in the chain (and in presets) but do not run.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// 0 shows the input, 1 the effect's full output.
    #[serde(default = "one")]
    pub mix: f32,
    /// Parameter values by name; a missing one takes the effect's default.
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
}

fn yes() -> bool {
    true
}

fn one() -> f32 {
    1.0
}

impl EffectInstance {
    /// The effect at full mix with its defaults.
    pub fn new(effect: &str) -> Self {
        EffectInstance {
            effect: effect.to_string(),
            enabled: true,
            mix: 1.0,
            params: BTreeMap::new(),
        }
    }

    /// The value the shader gets for `param`.
    pub fn value(&self, def: &EffectDef, param: &str) -> Option<ParamValue> {
        self.params
            .get(param)
            .copied()
            .or_else(|| def.param(param).map(|p| p.default))
    }

    /// Checks the instance against its effect: known parameters, right kinds, in range.
    pub fn check(&self, def: &EffectDef) -> std::result::Result<(), String> {
        if !(0.0..=1.0).contains(&self.mix) {
            return Err(format!("mix {} is outside 0..1", self.mix));
        }
        for (name, value) in &self.params {
            let Some(p) = def.param(name) else {
                return Err(format!(
                    "'{}' has no parameter '{name}' (it has: {})",
                    def.name,
                    param_names(def)
                ));
            };
            p.check(*value)
                .map_err(|e| format!("{}.{name}: {e}", def.name))?;
        }
        Ok(())
    }
}

fn param_names(def: &EffectDef) -> String {
    if def.params.is_empty() {
        return "none".into();
    }
    def.params
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The running chain, in order. Edited by the overlay; read every frame by the renderer.
#[derive(Resource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EffectChain {
    /// Effects, first applied first.
    pub effects: Vec<EffectInstance>,
}

/// A saved chain: the file `--preset` loads and the overlay saves (RON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Format version, for files written by later Lucids.
    #[serde(default = "version")]
    pub version: u32,
    /// The chain.
    pub effects: Vec<EffectInstance>,
    /// MIDI mappings of the chain's controls (effects by their place in the chain).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub midi: Vec<crate::midi_map::MidiMapping>,
    /// Sound mappings of the chain's controls (effects by their place in the chain).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audio: Vec<crate::audio_map::AudioMapping>,
}

fn version() -> u32 {
    1
}

impl Preset {
    /// Reads a preset file (a regular file of at most [`MAX_SHOW_FILE_BYTES`]).
    pub fn load(path: &Path) -> Result<Preset> {
        let text = read_show_file(path).map_err(|e| {
            LucidError::Usage(format!("cannot read preset {}: {e}", path.display()))
        })?;
        Preset::from_ron(&text)
            .map_err(|e| LucidError::Usage(format!("preset {}: {e}", path.display())))
    }

    /// Parses RON text; a chain longer than [`MAX_CHAIN_EFFECTS`] is refused.
    pub fn from_ron(text: &str) -> std::result::Result<Preset, String> {
        let preset: Preset = ron::from_str(text).map_err(|e| e.to_string())?;
        check_chain_length(preset.effects.len())?;
        for mapping in &preset.audio {
            mapping.check()?;
        }
        Ok(preset)
    }

    /// RON text that [`Preset::from_ron`] reads back to an equal preset.
    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default())
            .expect("a preset always serializes")
    }

    /// Writes the preset atomically (a crash mid-write never leaves half a file).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        save_atomically(path, &self.to_ron())
    }
}

/// The most effects one chain holds (the master chain, or a layer's own): each is a
/// fullscreen pass every frame, so a longer chain is a mistake, not a show.
pub const MAX_CHAIN_EFFECTS: usize = 32;

/// Refuses a chain of more than [`MAX_CHAIN_EFFECTS`] effects.
pub fn check_chain_length(len: usize) -> std::result::Result<(), String> {
    if len > MAX_CHAIN_EFFECTS {
        return Err(format!(
            "{len} effects in one chain; at most {MAX_CHAIN_EFFECTS}"
        ));
    }
    Ok(())
}

/// Largest scene or preset file read: one with every layer and effect at its cap is tens
/// of KiB.
pub const MAX_SHOW_FILE_BYTES: u64 = 1 << 20;

/// Reads a scene or preset: a regular file of at most [`MAX_SHOW_FILE_BYTES`], read with
/// that cap. The file is opened without blocking and checked through its own handle, so a
/// FIFO, a device (`/dev/zero`) or a folder is refused, never read or waited on.
pub fn read_show_file(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    /// `O_NONBLOCK` on Linux: opening a FIFO with no writer returns at once.
    const O_NONBLOCK: i32 = 0o4000;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    let too_large = || {
        Error::new(
            ErrorKind::InvalidData,
            format!("it is larger than {} KiB", MAX_SHOW_FILE_BYTES >> 10),
        )
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    if meta.len() > MAX_SHOW_FILE_BYTES {
        return Err(too_large());
    }
    let mut text = String::new();
    file.take(MAX_SHOW_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SHOW_FILE_BYTES {
        return Err(too_large());
    }
    Ok(text)
}

/// Writes `text` to `path` through a temporary file renamed into place, making the folder
/// first: a crash mid-write never leaves half a file (presets, scenes).
pub fn save_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("ron.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Parses one `--effect NAME[:param=value,...]`. `mix=` and `enabled=` set the mix and
/// the switch; everything else is a parameter of the effect.
pub fn parse_effect_arg(
    arg: &str,
    lookup: impl Fn(&str) -> Option<EffectDef>,
    known: &[String],
) -> Result<EffectInstance> {
    let (name, rest) = arg.split_once(':').unwrap_or((arg, ""));
    let name = name.trim();
    let def = lookup(name).ok_or_else(|| {
        LucidError::Usage(format!(
            "--effect {arg}: no effect '{name}' (available: {})",
            known.join(", ")
        ))
    })?;
    let mut inst = EffectInstance::new(&def.name);
    for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            LucidError::Usage(format!("--effect {arg}: '{pair}' is not param=value"))
        })?;
        let (key, value) = (key.trim(), value.trim());
        let bad = |e: String| LucidError::Usage(format!("--effect {arg}: {key}: {e}"));
        match key {
            "mix" => {
                inst.mix = value
                    .parse()
                    .ok()
                    .filter(|m| (0.0..=1.0).contains(m))
                    .ok_or_else(|| bad(format!("'{value}' is not a number in 0..1")))?;
            }
            "enabled" => {
                inst.enabled = matches!(value, "true" | "1" | "on" | "yes");
            }
            _ => {
                let p = def.param(key).ok_or_else(|| {
                    LucidError::Usage(format!(
                        "--effect {arg}: '{name}' has no parameter '{key}' (it has: {})",
                        param_names(&def)
                    ))
                })?;
                inst.params
                    .insert(key.to_string(), p.parse_value(value).map_err(bad)?);
            }
        }
    }
    Ok(inst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> EffectDef {
        EffectDef::parse(
            "tint",
            "builtin:tint",
            None,
            include_str!("../../shaders/effects/tint.wgsl"),
        )
        .unwrap()
    }

    #[test]
    fn effect_arguments() {
        let d = def();
        let known = vec!["tint".to_string()];
        let inst = parse_effect_arg(
            "tint:amount=0.25,color=#00ff00,mix=0.5",
            |n| (n == "tint").then(|| d.clone()),
            &known,
        )
        .unwrap();
        assert_eq!(inst.mix, 0.5);
        assert_eq!(inst.params["amount"], ParamValue::Float(0.25));
        assert_eq!(
            inst.params["color"],
            ParamValue::Color([0.0, 1.0, 0.0, 1.0])
        );
        for (bad, want) in [
            ("nope", "no effect 'nope' (available: tint)"),
            (
                "tint:size=3",
                "has no parameter 'size' (it has: color, amount)",
            ),
            ("tint:amount=7", "outside"),
            ("tint:amount", "is not param=value"),
            ("tint:mix=2", "0..1"),
        ] {
            let err = parse_effect_arg(bad, |n| (n == "tint").then(|| d.clone()), &known)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }

    #[test]
    fn presets_round_trip_exactly() {
        let mut a = EffectInstance::new("color");
        a.params
            .insert("hue".into(), ParamValue::Float(-33.333_336));
        a.params.insert("contrast".into(), ParamValue::Float(1.1));
        let mut b = EffectInstance::new("kaleidoscope");
        b.enabled = false;
        b.mix = 0.7;
        b.params
            .insert("center".into(), ParamValue::Point([0.1, 0.9]));
        let mut c = EffectInstance::new("edge_glow");
        c.params
            .insert("color".into(), ParamValue::Color([0.1, 0.2, 0.3, 1.0]));
        let mut d = EffectInstance::new("mirror");
        d.params.insert("vertical".into(), ParamValue::Bool(true));
        let preset = Preset {
            midi: Vec::new(),
            audio: vec![crate::audio_map::AudioMapping {
                input: crate::audio_map::AudioInput::Bass,
                target: crate::midi_map::MidiTarget::Param {
                    effect: 0,
                    param: "amount".into(),
                    from: 0.0,
                    to: 1.0,
                    curve: crate::midi_map::Curve::Exponential,
                },
                attack: 0.01,
                release: 0.3,
            }],
            version: 1,
            effects: vec![a, b, c, d],
        };
        let text = preset.to_ron();
        assert_eq!(Preset::from_ron(&text).unwrap(), preset, "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/show.ron");
        preset.save(&path).unwrap();
        assert_eq!(Preset::load(&path).unwrap(), preset);
        // Hand-written presets may leave out what has a default.
        let short = Preset::from_ron("(effects: [(effect: \"blur\")])").unwrap();
        assert_eq!(short.effects, vec![EffectInstance::new("blur")]);
        // A range in the parameter's own units is refused, saying what to write instead.
        let units = Preset::from_ron(
            "(effects: [(effect: \"color\")], audio: [(input: Level, target: Param(effect: 0, \
             param: \"brightness\", from: -0.5, to: 0.5, curve: Linear))])",
        )
        .unwrap_err();
        assert!(units.contains("from: 0.25, to: 0.75"), "{units}");
    }
}
