//! Cues (pure): named sets of Daydream parameters from a `--cues` RON file, and the show's
//! position in them. Going to a cue sets its parameters; its prompt morphs from the current
//! one over the cue's `transition` seconds (weighted prompt lists, see
//! [`super::steer::PromptMorph`]).
//!
//! ```ron
//! (cues: [
//!     (name: "forest", prompt: "a misty forest at dawn", transition: 4.0,
//!      params: {"guidance_scale": 1.2, "seed": 42}),
//!     (name: "city", prompt: "a neon city at night", transition: 2.0),
//! ])
//! ```

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::api::param;
use super::worker::SteerCommand;

/// Parameters a cue may set besides its prompt.
const CUE_PARAMS: &[&str] = &[
    param::NEGATIVE_PROMPT,
    param::SEED,
    param::STEPS,
    param::T_INDEX_LIST,
    param::GUIDANCE,
    param::DELTA,
    param::PROMPT_INTERPOLATION,
    param::CONTROLNETS,
    param::MODEL_ID,
];

/// One cue.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cue {
    /// Shown in the overlay and the log.
    pub name: String,
    /// The prompt it goes to.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Seconds the prompt takes to morph there (0: at once).
    #[serde(default)]
    pub transition: f64,
    /// Other parameters, by Daydream's names, set at once.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, ron::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CueFile {
    cues: Vec<Cue>,
}

/// The cues and where the show is in them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CueList {
    /// In file order.
    pub cues: Vec<Cue>,
    /// The cue last gone to.
    pub current: Option<usize>,
}

impl CueList {
    /// Reads and checks a cue file (read as scenes and presets are: a regular file of at
    /// most 1 MiB); errors name the file and what is wrong.
    pub fn load(path: &Path) -> Result<CueList, String> {
        let text = crate::effects::chain::read_show_file(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        CueList::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses cue RON.
    pub fn parse(text: &str) -> Result<CueList, String> {
        // `prompt: "..."` rather than `prompt: Some("...")`.
        let file: CueFile = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str(text)
            .map_err(|e| e.to_string())?;
        if file.cues.is_empty() {
            return Err("no cues in the file".into());
        }
        for cue in &file.cues {
            if !(cue.transition.is_finite() && (0.0..=600.0).contains(&cue.transition)) {
                return Err(format!(
                    "cue {:?}: transition must be 0 to 600 seconds, got {}",
                    cue.name, cue.transition
                ));
            }
            if let Some(bad) = cue
                .params
                .keys()
                .find(|k| !CUE_PARAMS.contains(&k.as_str()))
            {
                return Err(format!(
                    "cue {:?}: unknown parameter {bad:?} (known: prompt, {})",
                    cue.name,
                    CUE_PARAMS.join(", ")
                ));
            }
        }
        Ok(CueList {
            cues: file.cues,
            current: None,
        })
    }

    /// Goes to cue `index`: the commands that take the stream there.
    pub fn go(&mut self, index: usize) -> Vec<SteerCommand> {
        let Some(cue) = self.cues.get(index) else {
            return Vec::new();
        };
        self.current = Some(index);
        let mut commands: Vec<SteerCommand> = cue
            .params
            .iter()
            .map(|(name, value)| SteerCommand::Set {
                name: name.clone(),
                value: ron_to_json(value),
            })
            .collect();
        if let Some(prompt) = &cue.prompt {
            commands.push(if cue.transition > 0.0 {
                SteerCommand::Morph {
                    to: prompt.clone(),
                    seconds: cue.transition,
                }
            } else {
                SteerCommand::Set {
                    name: param::PROMPT.into(),
                    value: Value::String(prompt.clone()),
                }
            });
        }
        commands
    }

    /// The next cue (the first before any).
    pub fn go_next(&mut self) -> Vec<SteerCommand> {
        let i = self.current.map_or(0, |c| (c + 1).min(self.cues.len() - 1));
        self.go(i)
    }

    /// The previous cue (the first before any).
    pub fn go_previous(&mut self) -> Vec<SteerCommand> {
        let i = self.current.map_or(0, |c| c.saturating_sub(1));
        self.go(i)
    }
}

fn ron_to_json(value: &ron::Value) -> Value {
    match value {
        ron::Value::Bool(b) => Value::Bool(*b),
        ron::Value::Number(n) => match n {
            ron::Number::F32(f) => serde_json::json!(f.get()),
            ron::Number::F64(f) => serde_json::json!(f.get()),
            other => {
                let text = ron::to_string(other).unwrap_or_default();
                text.parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| text.parse::<u64>().map(Value::from))
                    .unwrap_or(Value::Null)
            }
        },
        ron::Value::String(s) => Value::String(s.clone()),
        ron::Value::Char(c) => Value::String(c.to_string()),
        ron::Value::Seq(items) => Value::Array(items.iter().map(ron_to_json).collect()),
        ron::Value::Map(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter() {
                let key = match k {
                    ron::Value::String(s) => s.clone(),
                    other => ron::to_string(other).unwrap_or_default(),
                };
                out.insert(key, ron_to_json(v));
            }
            Value::Object(out)
        }
        ron::Value::Option(Some(v)) => ron_to_json(v),
        ron::Value::Option(None) | ron::Value::Unit => Value::Null,
        ron::Value::Bytes(b) => Value::Array(b.iter().map(|x| Value::from(*x)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CUES: &str = r#"(cues: [
        (name: "forest", prompt: "a misty forest", transition: 4.0,
         params: {"guidance_scale": 1.5, "seed": 42}),
        (name: "city", prompt: "a neon city"),
    ])"#;

    #[test]
    fn going_to_a_cue_sets_its_params_and_morphs_its_prompt() {
        let mut cues = CueList::parse(CUES).unwrap();
        let commands = cues.go_next();
        assert_eq!(cues.current, Some(0));
        assert!(commands.contains(&SteerCommand::Set {
            name: "guidance_scale".into(),
            value: json!(1.5)
        }));
        assert!(commands.contains(&SteerCommand::Set {
            name: "seed".into(),
            value: json!(42)
        }));
        assert_eq!(
            commands.last(),
            Some(&SteerCommand::Morph {
                to: "a misty forest".into(),
                seconds: 4.0
            })
        );
        let commands = cues.go_next();
        assert_eq!(
            commands,
            vec![SteerCommand::Set {
                name: "prompt".into(),
                value: json!("a neon city")
            }]
        );
        cues.go_next();
        assert_eq!(cues.current, Some(1), "stays on the last cue");
        cues.go_previous();
        assert_eq!(cues.current, Some(0));
    }

    #[test]
    fn bad_cue_files_say_what_is_wrong() {
        assert!(
            CueList::parse("(cues: [])")
                .unwrap_err()
                .contains("no cues")
        );
        let err = CueList::parse(r#"(cues: [(name: "x", params: {"sharpness": 1})])"#).unwrap_err();
        assert!(
            err.contains("sharpness") && err.contains("guidance_scale"),
            "{err}"
        );
        let err = CueList::parse(r#"(cues: [(name: "x", transition: -1.0)])"#).unwrap_err();
        assert!(err.contains("transition"), "{err}");
        assert!(CueList::parse("(cues: [(name: 3)])").is_err());
    }
}
