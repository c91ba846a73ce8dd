//! The compositor: layers over the `--url` video, each any source Lucid plays, with an
//! opacity, a blend mode and a fit. `--url` is the bottom layer; `--layer` adds layers above
//! it. The master effect chain runs on the composited picture.
//!
//! Blend modes follow W3C "Compositing and Blending Level 1" on sRGB-encoded colour, the way
//! browsers apply them, with the layer's own alpha times its opacity as the source alpha
//! over an opaque backdrop: `result = (1 - a) * backdrop + a * B(backdrop, source)`.
//! [`blend`] is the reference the shader (`shaders/layer.wgsl`) is tested against.
//!
//! Pure logic here (specs, modes, fits, the formulas); the Bevy side is [`layers`] (sources,
//! clocks, textures) and [`render`] (one pass per layer).

pub mod layers;
pub mod render;
pub mod scene;

use bevy::math::{UVec2, Vec4};
use std::ops::RangeInclusive;

/// A W3C blend mode, plus `add` (linear dodge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlendMode {
    /// The source over the backdrop.
    #[default]
    Normal,
    /// `Cb * Cs`.
    Multiply,
    /// `Cb + Cs - Cb * Cs`.
    Screen,
    /// Hard light with the layers swapped.
    Overlay,
    /// `min(Cb, Cs)`.
    Darken,
    /// `max(Cb, Cs)`.
    Lighten,
    /// Brightens the backdrop towards the source.
    ColorDodge,
    /// Darkens the backdrop towards the source.
    ColorBurn,
    /// Multiply or screen, by the source.
    HardLight,
    /// A softer hard light.
    SoftLight,
    /// `|Cb - Cs|`.
    Difference,
    /// `Cb + Cs - 2 * Cb * Cs`.
    Exclusion,
    /// `min(1, Cb + Cs)` (linear dodge; not in the W3C list).
    Add,
}

impl BlendMode {
    /// Every mode, in the order the shader numbers them.
    pub const ALL: [BlendMode; 13] = [
        BlendMode::Normal,
        BlendMode::Multiply,
        BlendMode::Screen,
        BlendMode::Overlay,
        BlendMode::Darken,
        BlendMode::Lighten,
        BlendMode::ColorDodge,
        BlendMode::ColorBurn,
        BlendMode::HardLight,
        BlendMode::SoftLight,
        BlendMode::Difference,
        BlendMode::Exclusion,
        BlendMode::Add,
    ];

    /// The name on the command line (`color-dodge`).
    pub fn name(self) -> &'static str {
        match self {
            BlendMode::Normal => "normal",
            BlendMode::Multiply => "multiply",
            BlendMode::Screen => "screen",
            BlendMode::Overlay => "overlay",
            BlendMode::Darken => "darken",
            BlendMode::Lighten => "lighten",
            BlendMode::ColorDodge => "color-dodge",
            BlendMode::ColorBurn => "color-burn",
            BlendMode::HardLight => "hard-light",
            BlendMode::SoftLight => "soft-light",
            BlendMode::Difference => "difference",
            BlendMode::Exclusion => "exclusion",
            BlendMode::Add => "add",
        }
    }

    /// The shader's number for the mode.
    pub fn index(self) -> u32 {
        BlendMode::ALL.iter().position(|m| *m == self).unwrap_or(0) as u32
    }

    fn parse(text: &str) -> Option<BlendMode> {
        BlendMode::ALL.into_iter().find(|m| m.name() == text)
    }
}

/// W3C's separable blend function `B(Cb, Cs)` for one channel, values 0..1.
pub fn blend_channel(mode: BlendMode, cb: f64, cs: f64) -> f64 {
    let multiply = |a: f64, b: f64| a * b;
    let screen = |a: f64, b: f64| a + b - a * b;
    let hard_light = |cb: f64, cs: f64| {
        if cs <= 0.5 {
            multiply(cb, 2.0 * cs)
        } else {
            screen(cb, 2.0 * cs - 1.0)
        }
    };
    match mode {
        BlendMode::Normal => cs,
        BlendMode::Multiply => multiply(cb, cs),
        BlendMode::Screen => screen(cb, cs),
        BlendMode::Overlay => hard_light(cs, cb),
        BlendMode::Darken => cb.min(cs),
        BlendMode::Lighten => cb.max(cs),
        BlendMode::ColorDodge => {
            if cb == 0.0 {
                0.0
            } else if cs >= 1.0 {
                1.0
            } else {
                (cb / (1.0 - cs)).min(1.0)
            }
        }
        BlendMode::ColorBurn => {
            if cb >= 1.0 {
                1.0
            } else if cs <= 0.0 {
                0.0
            } else {
                1.0 - ((1.0 - cb) / cs).min(1.0)
            }
        }
        BlendMode::HardLight => hard_light(cb, cs),
        BlendMode::SoftLight => {
            if cs <= 0.5 {
                cb - (1.0 - 2.0 * cs) * cb * (1.0 - cb)
            } else {
                let d = if cb <= 0.25 {
                    ((16.0 * cb - 12.0) * cb + 4.0) * cb
                } else {
                    cb.sqrt()
                };
                cb + (2.0 * cs - 1.0) * (d - cb)
            }
        }
        BlendMode::Difference => (cb - cs).abs(),
        BlendMode::Exclusion => cb + cs - 2.0 * cb * cs,
        BlendMode::Add => (cb + cs).min(1.0),
    }
}

/// A layer pixel `source` (RGB 0..1, with its alpha) over an opaque `backdrop` at `opacity`:
/// W3C's `(1 - as) * Cb + as * B(Cb, Cs)` with `as` = alpha x opacity.
pub fn blend(mode: BlendMode, backdrop: [f64; 3], source: [f64; 4], opacity: f64) -> [f64; 3] {
    let a = source[3] * opacity;
    std::array::from_fn(|i| {
        (1.0 - a) * backdrop[i] + a * blend_channel(mode, backdrop[i], source[i])
    })
}

/// How a layer's picture fits the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// All of the picture, aspect kept; the rest of the canvas shows the layers below.
    #[default]
    Contain,
    /// The whole canvas, aspect kept, the picture cropped.
    Cover,
    /// The whole canvas, aspect not kept.
    Stretch,
}

impl Fit {
    /// Where a `content`-sized picture goes in `canvas`: x, y, width, height in pixels.
    pub fn rect(self, content: UVec2, canvas: UVec2) -> Vec4 {
        let c = content.max(UVec2::ONE).as_vec2();
        let k = canvas.as_vec2();
        let scale = match self {
            Fit::Contain => (k.x / c.x).min(k.y / c.y),
            Fit::Cover => (k.x / c.x).max(k.y / c.y),
            Fit::Stretch => return Vec4::new(0.0, 0.0, k.x, k.y),
        };
        let size = c * scale;
        let offset = (k - size) / 2.0;
        Vec4::new(offset.x, offset.y, size.x, size.y)
    }
}

/// Which side of the A/B crossfader a layer is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bus {
    /// Shown as the fader is towards A.
    A,
    /// Shown as the fader is towards B.
    B,
    /// Always shown, whatever the fader.
    #[default]
    Both,
}

/// The crossfader's curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaderCurve {
    /// A's weight `1 - x`, B's `x`.
    #[default]
    Linear,
    /// A's weight `cos(x * pi/2)`, B's `sin(x * pi/2)`: no dip in the middle.
    EqualPower,
}

/// The A/B crossfader: a position 0 (A) ..1 (B), moving towards a target over a set time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Crossfader {
    /// Where it is, 0 (A) to 1 (B).
    pub position: f32,
    /// Where it is heading.
    pub target: f32,
    /// How long a whole A-to-B move takes, seconds.
    pub seconds: f32,
    /// The curve.
    pub curve: FaderCurve,
}

impl Default for Crossfader {
    fn default() -> Self {
        Crossfader {
            position: 0.0,
            target: 0.0,
            seconds: 2.0,
            curve: FaderCurve::Linear,
        }
    }
}

impl Crossfader {
    /// Moves towards the target by `dt` seconds' worth.
    pub fn advance(&mut self, dt: f64) {
        let step = if self.seconds <= 0.0 {
            1.0
        } else {
            (dt / f64::from(self.seconds)) as f32
        };
        self.position = if self.position < self.target {
            (self.position + step).min(self.target)
        } else {
            (self.position - step).max(self.target)
        };
    }

    /// Starts a move to the other side (A if it is at or heading to B, else B).
    pub fn go_other_side(&mut self) {
        self.target = if self.target >= 0.5 { 0.0 } else { 1.0 };
    }

    /// Sets the position at once (a fader moved by hand).
    pub fn set(&mut self, position: f32) {
        self.position = position.clamp(0.0, 1.0);
        self.target = self.position;
    }

    /// The weight of a layer on `bus`.
    pub fn weight(&self, bus: Bus) -> f32 {
        let x = self.position.clamp(0.0, 1.0);
        let (a, b) = match self.curve {
            FaderCurve::Linear => (1.0 - x, x),
            FaderCurve::EqualPower => {
                let angle = x * std::f32::consts::FRAC_PI_2;
                (angle.cos(), angle.sin())
            }
        };
        match bus {
            Bus::A => a,
            Bus::B => b,
            Bus::Both => 1.0,
        }
    }
}

/// A layer's placement after its fit: an offset (fractions of the canvas), a scale and a
/// rotation about the picture's centre.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Transform {
    /// Offset right, as a fraction of the canvas width.
    pub x: f32,
    /// Offset down, as a fraction of the canvas height.
    pub y: f32,
    /// Size, 1 = as fitted.
    pub scale: f32,
    /// Clockwise, degrees.
    pub rotate: f32,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            x: 0.0,
            y: 0.0,
            scale: 1.0,
            rotate: 0.0,
        }
    }
}

/// What a layer does when its source ends or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AtEnd {
    /// Keep showing the last frame.
    #[default]
    Hold,
    /// Fade the layer out over a second.
    Fade,
}

/// The most layers a show holds (the scene's and `--layer`'s together): each is a source
/// with its own decode threads and a pass every frame.
pub const MAX_LAYERS: usize = 32;

/// What a layer's numbers may be, in `--layer` options and in scenes alike.
const OPACITY: RangeInclusive<f32> = 0.0..=1.0;
/// Offsets, fractions of the canvas.
const OFFSET: RangeInclusive<f32> = -2.0..=2.0;
/// Scale, 1 = as fitted.
const SCALE: RangeInclusive<f32> = 0.01..=10.0;
/// Rotation, degrees.
const ROTATE: RangeInclusive<f32> = -360.0..=360.0;

/// The option names of `--layer SOURCE:...`.
const OPTIONS: [&str; 10] = [
    "opacity", "blend", "fit", "loop", "end", "bus", "x", "y", "scale", "rotate",
];

/// One `--layer` (or a scene's layer): a source and how it is composited.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayerSpec {
    /// What to play: any `--url` form.
    pub source: String,
    /// 0..1.
    pub opacity: f32,
    /// How it combines with the layers below.
    pub blend: BlendMode,
    /// How it fits the canvas.
    pub fit: Fit,
    /// Play a file again from the start when it ends.
    #[serde(rename = "loop")]
    pub looped: bool,
    /// When the source ends or fails: hold the last frame or fade out.
    #[serde(rename = "end")]
    pub at_end: AtEnd,
    /// Its side of the crossfader.
    pub bus: Bus,
    /// Position, scale and rotation after the fit.
    pub transform: Transform,
    /// The layer's own effect chain, run on its picture before it is placed and blended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<crate::effects::chain::EffectInstance>,
}

impl Default for LayerSpec {
    fn default() -> Self {
        LayerSpec {
            source: String::new(),
            opacity: 1.0,
            blend: BlendMode::Normal,
            fit: Fit::Contain,
            looped: false,
            at_end: AtEnd::Hold,
            bus: Bus::Both,
            transform: Transform::default(),
            effects: Vec::new(),
        }
    }
}

impl std::str::FromStr for LayerSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<LayerSpec, String> {
        LayerSpec::parse(text)
    }
}

impl LayerSpec {
    /// Parses `SOURCE[:opacity=0.5,blend=screen,fit=cover,loop=true,end=fade]`. The options
    /// follow the last `:` only when it is followed by `name=value` pairs, so URLs with
    /// ports and schemes pass through whole.
    pub fn parse(text: &str) -> Result<LayerSpec, String> {
        let text = text.trim();
        let (source, options) = match text.rsplit_once(':') {
            Some((source, opts))
                if !opts.is_empty()
                    && opts.split(',').all(|kv| {
                        kv.split_once('=')
                            .is_some_and(|(k, _)| OPTIONS.contains(&k.trim()))
                    }) =>
            {
                (source, Some(opts))
            }
            _ => (text, None),
        };
        if source.is_empty() {
            return Err("a layer needs a source (a file, URL or playback id)".into());
        }
        let mut spec = LayerSpec {
            source: source.to_string(),
            ..LayerSpec::default()
        };
        let number = |key: &str, value: &str, range: std::ops::RangeInclusive<f32>| {
            value
                .parse::<f32>()
                .ok()
                .filter(|v| range.contains(v))
                .ok_or_else(|| format!("{key}={value}: use {} to {}", range.start(), range.end()))
        };
        for kv in options.into_iter().flat_map(|o| o.split(',')) {
            let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
            let value = value.trim();
            match key.trim() {
                "opacity" => spec.opacity = number("opacity", value, OPACITY)?,
                "blend" => {
                    spec.blend = BlendMode::parse(value).ok_or_else(|| {
                        let names: Vec<&str> = BlendMode::ALL.iter().map(|m| m.name()).collect();
                        format!("blend={value}: one of {}", names.join(", "))
                    })?;
                }
                "fit" => {
                    spec.fit = match value {
                        "contain" => Fit::Contain,
                        "cover" => Fit::Cover,
                        "stretch" => Fit::Stretch,
                        _ => return Err(format!("fit={value}: contain, cover or stretch")),
                    };
                }
                "loop" => {
                    spec.looped = match value {
                        "true" | "yes" | "1" => true,
                        "false" | "no" | "0" => false,
                        _ => return Err(format!("loop={value}: true or false")),
                    };
                }
                "end" => {
                    spec.at_end = match value {
                        "hold" => AtEnd::Hold,
                        "fade" => AtEnd::Fade,
                        _ => return Err(format!("end={value}: hold or fade")),
                    };
                }
                "bus" => {
                    spec.bus = match value {
                        "a" | "A" => Bus::A,
                        "b" | "B" => Bus::B,
                        "ab" | "both" => Bus::Both,
                        _ => return Err(format!("bus={value}: a, b or both")),
                    };
                }
                "x" => spec.transform.x = number("x", value, OFFSET)?,
                "y" => spec.transform.y = number("y", value, OFFSET)?,
                "scale" => spec.transform.scale = number("scale", value, SCALE)?,
                "rotate" => spec.transform.rotate = number("rotate", value, ROTATE)?,
                _ => unreachable!("checked above"),
            }
        }
        Ok(spec)
    }

    /// Checks what the types cannot, for a layer read from a scene: a source, every number
    /// finite and in the range `--layer` takes, a chain no longer than its cap.
    pub fn check(&self) -> Result<(), String> {
        if self.source.trim().is_empty() {
            return Err("no source".into());
        }
        let t = &self.transform;
        for (name, value, range) in [
            ("opacity", self.opacity, OPACITY),
            ("x", t.x, OFFSET),
            ("y", t.y, OFFSET),
            ("scale", t.scale, SCALE),
            ("rotate", t.rotate, ROTATE),
        ] {
            // NaN is in no range.
            if !range.contains(&value) {
                return Err(format!(
                    "{name} {value} is not {} to {}",
                    range.start(),
                    range.end()
                ));
            }
        }
        crate::effects::chain::check_chain_length(self.effects.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_options_parse_and_urls_pass_whole() {
        let l = LayerSpec::parse("logo.png:opacity=0.5,blend=screen,fit=cover,loop=true").unwrap();
        assert_eq!(l.source, "logo.png");
        assert_eq!(l.opacity, 0.5);
        assert_eq!(l.blend, BlendMode::Screen);
        assert_eq!(l.fit, Fit::Cover);
        assert!(l.looped);
        let l = LayerSpec::parse("https://cdn.example/hls/abc/index.m3u8").unwrap();
        assert_eq!(l.source, "https://cdn.example/hls/abc/index.m3u8");
        assert_eq!(l.blend, BlendMode::Normal);
        let l = LayerSpec::parse("srt://10.0.0.2:9000:blend=color-dodge,end=fade").unwrap();
        assert_eq!(l.source, "srt://10.0.0.2:9000");
        assert_eq!(l.blend, BlendMode::ColorDodge);
        assert_eq!(l.at_end, AtEnd::Fade);
        assert!(
            LayerSpec::parse("x.mp4:opacity=2")
                .unwrap_err()
                .contains("0 to 1")
        );
        assert!(
            LayerSpec::parse("x.mp4:blend=glow")
                .unwrap_err()
                .contains("soft-light")
        );
        assert!(LayerSpec::parse(":opacity=1").is_err());
    }

    #[test]
    fn w3c_formulas_at_known_points() {
        use BlendMode::*;
        let b = |m, cb, cs| blend_channel(m, cb, cs);
        assert_eq!(b(Multiply, 0.5, 0.5), 0.25);
        assert_eq!(b(Screen, 0.5, 0.5), 0.75);
        assert_eq!(b(Overlay, 0.25, 0.8), 2.0 * 0.25 * 0.8);
        assert_eq!(b(HardLight, 0.8, 0.25), 2.0 * 0.25 * 0.8);
        assert_eq!(b(ColorDodge, 0.0, 1.0), 0.0);
        assert_eq!(b(ColorDodge, 0.4, 0.5), 0.8);
        assert_eq!(b(ColorBurn, 1.0, 0.0), 1.0);
        assert!((b(ColorBurn, 0.6, 0.8) - 0.5).abs() < 1e-12);
        assert!(
            (b(SoftLight, 0.16, 1.0) - (0.16 + ((16.0 * 0.16 - 12.0) * 0.16 + 4.0) * 0.16 - 0.16))
                .abs()
                < 1e-12
        );
        assert_eq!(b(Difference, 0.2, 0.7), 0.49999999999999994);
        assert_eq!(b(Exclusion, 0.5, 0.5), 0.5);
        assert_eq!(b(Add, 0.7, 0.6), 1.0);
        // Opacity and alpha: half a multiply is half way from the backdrop.
        let out = blend(Multiply, [1.0, 0.5, 0.0], [0.5, 0.5, 0.5, 1.0], 0.5);
        assert_eq!(out, [0.75, 0.375, 0.0]);
        let out = blend(Normal, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.5], 0.5);
        assert_eq!(out, [0.75, 0.75, 0.75]);
    }

    #[test]
    fn the_crossfader_moves_in_its_time_along_its_curve() {
        let mut f = Crossfader {
            seconds: 2.0,
            ..Crossfader::default()
        };
        assert_eq!((f.weight(Bus::A), f.weight(Bus::B)), (1.0, 0.0));
        f.go_other_side();
        f.advance(0.5);
        assert_eq!(f.position, 0.25);
        assert_eq!(
            (f.weight(Bus::A), f.weight(Bus::B), f.weight(Bus::Both)),
            (0.75, 0.25, 1.0)
        );
        f.advance(10.0);
        assert_eq!(f.position, 1.0, "stops at B");
        f.curve = FaderCurve::EqualPower;
        f.set(0.5);
        let (a, b) = (f.weight(Bus::A), f.weight(Bus::B));
        assert!(
            (a - b).abs() < 1e-6 && (a * a + b * b - 1.0).abs() < 1e-6,
            "{a} {b}"
        );
        f.go_other_side();
        assert_eq!(
            f.target, 0.0,
            "from the middle, heading to B before: back to A"
        );
        let l = LayerSpec::parse("b.mp4:bus=b,x=0.25,scale=0.5,rotate=90").unwrap();
        assert_eq!(l.bus, Bus::B);
        assert_eq!(
            l.transform,
            Transform {
                x: 0.25,
                y: 0.0,
                scale: 0.5,
                rotate: 90.0
            }
        );
        assert!(
            LayerSpec::parse("b.mp4:scale=0")
                .unwrap_err()
                .contains("scale=0")
        );
    }

    #[test]
    fn fits_place_the_picture() {
        let canvas = UVec2::new(1280, 720);
        let square = UVec2::new(100, 100);
        assert_eq!(
            Fit::Contain.rect(square, canvas),
            Vec4::new(280.0, 0.0, 720.0, 720.0)
        );
        assert_eq!(
            Fit::Cover.rect(square, canvas),
            Vec4::new(0.0, -280.0, 1280.0, 1280.0)
        );
        assert_eq!(
            Fit::Stretch.rect(square, canvas),
            Vec4::new(0.0, 0.0, 1280.0, 720.0)
        );
        assert_eq!(BlendMode::Add.index(), 12);
    }
}
