//! Remote control of the show: what a controller can ask ([`ControlAction`]) and how an
//! ask lands on the effect chain. OSC ([`osc`]), MIDI ([`midi`]) and the sound ([`audio`])
//! turn what they get into actions; the Bevy side
//! ([`plugin`]) applies them once a frame and sends changed values back. Pure logic here,
//! no Bevy.

pub mod audio;
pub mod midi;
pub mod osc;
pub mod plugin;

use crate::effects::EffectCatalog;
use crate::effects::chain::EffectInstance;
use crate::effects::definition::{ParamKind, ParamValue};

/// An OSC message from the HTTP API (`POST /api/osc`), applied like one from `--osc`, with
/// where its outcome goes: Ok once applied, or why it was not.
#[derive(Debug)]
pub struct RemoteOsc {
    /// The message.
    pub message: rosc::OscMessage,
    /// The answer.
    pub reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// An effect in the chain, by its place (from 0) or its effect's name (the first one).
#[derive(Debug, Clone, PartialEq)]
pub enum EffectRef {
    /// The chain's n-th effect, from 0.
    Index(usize),
    /// The first effect of this name.
    Name(String),
}

/// A value for a parameter: normalized (0..1 over the parameter's range, as Resolume maps
/// controllers) or in the parameter's own units.
#[derive(Debug, Clone, PartialEq)]
pub enum Amount {
    /// 0..1 over the range; colours and points take one 0..1 value per component.
    Normalized(Vec<f32>),
    /// The parameter's own units.
    Raw(Vec<f32>),
}

/// On, off, or the other of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Turn on.
    On,
    /// Turn off.
    Off,
    /// Flip.
    Toggle,
}

impl Switch {
    /// The new state from the current one.
    pub fn apply(self, current: bool) -> bool {
        match self {
            Switch::On => true,
            Switch::Off => false,
            Switch::Toggle => !current,
        }
    }
}

/// What a controller asks of the show.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlAction {
    /// Set an effect's parameter (or its `mix`).
    EffectParam {
        /// Which effect.
        effect: EffectRef,
        /// Parameter name, or `mix`.
        param: String,
        /// The value.
        amount: Amount,
    },
    /// Turn an effect on or off.
    EffectEnabled {
        /// Which effect.
        effect: EffectRef,
        /// On, off or flip.
        on: Switch,
    },
    /// Cut the output to black (on) or back (off).
    Blackout(Switch),
    /// Fade to black (on) or back in (off), over `--fade`.
    Fade(Switch),
    /// Hold the current picture.
    Freeze(Switch),
    /// The output level directly, 0..1.
    Level(f32),
    /// Send Daydream a new prompt.
    Prompt(String),
    /// The next cue of `--cues`.
    CueNext,
    /// The previous cue.
    CuePrevious,
    /// Cue n of `--cues`, counted from 1 (as the web remote's list shows them).
    CueGo(usize),
    /// A tap of the tempo.
    Tap,
    /// Set the tempo, beats per minute.
    Bpm(f64),
    /// Put the crossfader here, 0 (A) to 1 (B).
    Crossfade(f32),
    /// Crossfade to the other side over the crossfade time.
    CrossfadeGo,
    /// An [`ControlAction::EffectParam`] or [`ControlAction::EffectEnabled`] on a layer's
    /// own chain (layers from 1, bottom first).
    LayerEffect {
        /// The layer, from 1.
        layer: usize,
        /// What to do to its chain.
        action: Box<ControlAction>,
    },
    /// Set a `--layer`'s opacity (layers from 1, bottom first).
    LayerOpacity {
        /// The layer, from 1.
        layer: usize,
        /// 0..1.
        opacity: f32,
    },
}

impl ControlAction {
    /// Set the chain's `effect`-th effect's `param` to `value`, 0..1 of its range (what a
    /// MIDI CC or a sound mapping asks).
    pub fn param_at(effect: usize, param: &str, value: f32) -> ControlAction {
        ControlAction::EffectParam {
            effect: EffectRef::Index(effect),
            param: param.to_string(),
            amount: Amount::Normalized(vec![value]),
        }
    }
}

/// Why an action could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No such effect in the chain.
    #[error("no effect {0} in the chain")]
    NoEffect(String),
    /// The effect has no such parameter.
    #[error("{effect} has no parameter {param}")]
    NoParam {
        /// The effect's name.
        effect: String,
        /// The parameter asked for.
        param: String,
    },
    /// The value does not fit the parameter.
    #[error("{0}")]
    BadValue(String),
}

/// Sets a parameter of a chain (the master's or a layer's); returns whether anything
/// changed.
pub fn set_param(
    chain: &mut [EffectInstance],
    catalog: &EffectCatalog,
    effect: &EffectRef,
    param: &str,
    amount: &Amount,
) -> Result<bool, ControlError> {
    let instance = find(chain, effect)?;
    if param == "mix" {
        let v = single(amount)?;
        let mix = v.clamp(0.0, 1.0);
        let changed = instance.mix != mix;
        instance.mix = mix;
        return Ok(changed);
    }
    let def = catalog
        .get(&instance.effect)
        .ok_or_else(|| ControlError::NoEffect(instance.effect.clone()))?;
    let p = def.param(param).ok_or_else(|| ControlError::NoParam {
        effect: instance.effect.clone(),
        param: param.to_string(),
    })?;
    let value = value_for(p.kind, amount)?;
    let changed = instance.params.get(param) != Some(&value);
    instance.params.insert(param.to_string(), value);
    Ok(changed)
}

/// Turns an effect of a chain on or off; returns whether it changed.
pub fn set_enabled(
    chain: &mut [EffectInstance],
    effect: &EffectRef,
    on: Switch,
) -> Result<bool, ControlError> {
    let instance = find(chain, effect)?;
    let to = on.apply(instance.enabled);
    let changed = instance.enabled != to;
    instance.enabled = to;
    Ok(changed)
}

fn find<'a>(
    chain: &'a mut [EffectInstance],
    effect: &EffectRef,
) -> Result<&'a mut EffectInstance, ControlError> {
    let found = match effect {
        EffectRef::Index(i) => chain.get_mut(*i),
        EffectRef::Name(name) => chain.iter_mut().find(|e| &e.effect == name),
    };
    found.ok_or_else(|| {
        ControlError::NoEffect(match effect {
            EffectRef::Index(i) => i.to_string(),
            EffectRef::Name(n) => n.clone(),
        })
    })
}

fn single(amount: &Amount) -> Result<f32, ControlError> {
    match amount {
        Amount::Normalized(v) | Amount::Raw(v) if v.len() == 1 && v[0].is_finite() => Ok(v[0]),
        _ => Err(ControlError::BadValue("one number expected".into())),
    }
}

/// The value a controller's amount gives a parameter of `kind`, kept within its range.
pub fn value_for(kind: ParamKind, amount: &Amount) -> Result<ParamValue, ControlError> {
    let (values, normalized) = match amount {
        Amount::Normalized(v) => (v, true),
        Amount::Raw(v) => (v, false),
    };
    if values.iter().any(|v| !v.is_finite()) {
        return Err(ControlError::BadValue("not a number".into()));
    }
    let want = |n: &[usize]| {
        if n.contains(&values.len()) {
            Ok(())
        } else {
            Err(ControlError::BadValue(format!(
                "{} number(s) expected, got {}",
                n.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
                values.len()
            )))
        }
    };
    Ok(match kind {
        ParamKind::Float { min, max } => {
            want(&[1])?;
            let v = if normalized {
                min + values[0].clamp(0.0, 1.0) * (max - min)
            } else {
                values[0].clamp(min, max)
            };
            ParamValue::Float(v)
        }
        ParamKind::Bool => {
            want(&[1])?;
            ParamValue::Bool(values[0] >= 0.5)
        }
        ParamKind::Point => {
            want(&[2])?;
            ParamValue::Point([values[0], values[1]])
        }
        ParamKind::Color => {
            want(&[3, 4])?;
            let c = |i: usize| values.get(i).copied().unwrap_or(1.0).clamp(0.0, 1.0);
            ParamValue::Color([c(0), c(1), c(2), c(3)])
        }
    })
}

/// A parameter's value as a controller shows it: 0..1 over the range (what feedback
/// sends back).
pub fn normalized(kind: ParamKind, value: &ParamValue) -> Vec<f32> {
    match (kind, value) {
        (ParamKind::Float { min, max }, ParamValue::Float(v)) if max > min => {
            vec![((v - min) / (max - min)).clamp(0.0, 1.0)]
        }
        (_, ParamValue::Float(v)) => vec![*v],
        (_, ParamValue::Bool(b)) => vec![if *b { 1.0 } else { 0.0 }],
        (_, ParamValue::Point(p)) => p.to_vec(),
        (_, ParamValue::Color(c)) => c.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_values_span_the_range_and_raw_ones_are_kept_in_it() {
        let kind = ParamKind::Float {
            min: -180.0,
            max: 180.0,
        };
        assert_eq!(
            value_for(kind, &Amount::Normalized(vec![0.75])).unwrap(),
            ParamValue::Float(90.0)
        );
        assert_eq!(
            value_for(kind, &Amount::Normalized(vec![3.0])).unwrap(),
            ParamValue::Float(180.0)
        );
        assert_eq!(
            value_for(kind, &Amount::Raw(vec![-30.0])).unwrap(),
            ParamValue::Float(-30.0)
        );
        assert_eq!(
            value_for(kind, &Amount::Raw(vec![500.0])).unwrap(),
            ParamValue::Float(180.0)
        );
        assert_eq!(normalized(kind, &ParamValue::Float(90.0)), vec![0.75]);
        assert!(value_for(kind, &Amount::Normalized(vec![])).is_err());
        assert!(value_for(kind, &Amount::Normalized(vec![f32::NAN])).is_err());
        assert_eq!(
            value_for(ParamKind::Color, &Amount::Normalized(vec![1.0, 0.5, 0.0])).unwrap(),
            ParamValue::Color([1.0, 0.5, 0.0, 1.0])
        );
        assert_eq!(
            value_for(ParamKind::Bool, &Amount::Normalized(vec![0.6])).unwrap(),
            ParamValue::Bool(true)
        );
        assert!(value_for(ParamKind::Point, &Amount::Raw(vec![0.1])).is_err());
    }

    #[test]
    fn actions_find_effects_by_place_or_name() {
        let catalog = EffectCatalog::load(None);
        let mut chain = vec![EffectInstance::new("tint"), EffectInstance::new("color")];
        let by_name = EffectRef::Name("color".into());
        assert!(
            set_param(
                &mut chain,
                &catalog,
                &by_name,
                "hue",
                &Amount::Raw(vec![30.0])
            )
            .unwrap()
        );
        assert_eq!(chain[1].params.get("hue"), Some(&ParamValue::Float(30.0)));
        // The same value again is no change.
        assert!(
            !set_param(
                &mut chain,
                &catalog,
                &by_name,
                "hue",
                &Amount::Raw(vec![30.0])
            )
            .unwrap()
        );
        assert!(
            set_param(
                &mut chain,
                &catalog,
                &EffectRef::Index(0),
                "mix",
                &Amount::Normalized(vec![0.25])
            )
            .unwrap()
        );
        assert_eq!(chain[0].mix, 0.25);
        assert!(matches!(
            set_param(
                &mut chain,
                &catalog,
                &EffectRef::Index(5),
                "mix",
                &Amount::Raw(vec![1.0])
            ),
            Err(ControlError::NoEffect(_))
        ));
        assert!(matches!(
            set_param(
                &mut chain,
                &catalog,
                &by_name,
                "nope",
                &Amount::Raw(vec![1.0])
            ),
            Err(ControlError::NoParam { .. })
        ));
        assert!(set_enabled(&mut chain, &by_name, Switch::Toggle).unwrap());
        assert!(!chain[1].enabled);
        assert!(!set_enabled(&mut chain, &by_name, Switch::Off).unwrap());
    }
}
