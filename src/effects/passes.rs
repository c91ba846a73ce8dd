//! A multi-pass ISF effect as the renderer takes it: its passes, their render targets and
//! imported images, and the `WIDTH`/`HEIGHT` expressions that size the passes (pure: the
//! expression evaluator). [`super::isf`] fills it in; [`super::render`] runs it.

use std::sync::Arc;

/// Most render targets an ISF effect's `PASSES` may name (each is a texture binding).
pub const MAX_TARGETS: usize = 12;

/// The target slot a transition's start image (the crossfader's A side) is bound in.
pub const START_SLOT: usize = MAX_TARGETS - 1;

/// A multi-pass ISF effect: its passes in order and the targets they render into.
#[derive(Debug)]
pub struct Passes {
    /// In order; the last one's output is the effect's.
    pub passes: Vec<Pass>,
    /// The named targets, in order of first use (image `2 + index` in the shaders).
    pub targets: Vec<Target>,
    /// `IMPORTED` images, bound after the targets.
    pub imported: Vec<Arc<ImportedImage>>,
}

/// An image file an ISF effect imports (`IMPORTED`), decoded.
#[derive(Debug)]
pub struct ImportedImage {
    /// Its name in the shader.
    pub name: String,
    /// Width and height.
    pub size: (u32, u32),
    /// RGBA, 8 bits a channel, rows from the top.
    pub rgba: Vec<u8>,
}

/// One pass.
#[derive(Debug)]
pub struct Pass {
    /// Its shader (`PASSINDEX` set; the last mixes with the input like any effect).
    pub wgsl: String,
    /// The target it renders into (the last pass also renders the output).
    pub target: Option<usize>,
    /// `WIDTH`, `HEIGHT`: the canvas's when absent.
    pub width: Option<SizeExpr>,
    /// See `width`.
    pub height: Option<SizeExpr>,
}

/// A render target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Its name in the shader.
    pub name: String,
    /// Keeps its content from frame to frame (feedback).
    pub persistent: bool,
    /// 16-bit float texels instead of 8-bit.
    pub float: bool,
}

/// A pass's `WIDTH` or `HEIGHT`: an expression of `$WIDTH`, `$HEIGHT` and the inputs
/// (`floor($WIDTH/4.0)`, `$WIDTH*min(0.5,1.0)`).
#[derive(Debug, Clone, PartialEq)]
pub struct SizeExpr(pub String);

impl SizeExpr {
    /// Parses `text` once with made-up values, so a bad expression fails at load.
    pub(super) fn check(text: &str) -> Result<(), String> {
        SizeExpr(text.to_string()).eval(&|_| Some(1.0)).map(|_| ())
    }

    /// The value, with `var` giving `$NAME`'s.
    pub fn eval(&self, var: &dyn Fn(&str) -> Option<f64>) -> Result<f64, String> {
        let tokens = tokenize(&self.0)?;
        let mut p = ExprParser {
            tokens: &tokens,
            at: 0,
            var,
        };
        let v = p.sum()?;
        if p.at != tokens.len() {
            return Err(format!("unexpected '{}'", tokens[p.at]));
        }
        Ok(v)
    }

    /// The size in pixels for a `canvas` side, `canvas`/`other` being `$WIDTH`/`$HEIGHT`
    /// as the pass's side is a width or a height, and `param` an input's value.
    pub fn pixels(
        expr: Option<&SizeExpr>,
        (width, height): (u32, u32),
        canvas_side: u32,
        param: &dyn Fn(&str) -> Option<f64>,
    ) -> u32 {
        let Some(expr) = expr else {
            return canvas_side;
        };
        let var = |name: &str| match name {
            "WIDTH" => Some(f64::from(width)),
            "HEIGHT" => Some(f64::from(height)),
            other => param(other),
        };
        expr.eval(&var)
            .ok()
            .filter(|v| v.is_finite())
            .map_or(canvas_side, |v| v.round().clamp(1.0, 8192.0) as u32)
    }
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/(),".contains(c) {
            tokens.push(c.to_string());
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == '$' || c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else {
            return Err(format!("'{c}' is not part of a size expression"));
        }
    }
    Ok(tokens)
}

struct ExprParser<'a> {
    tokens: &'a [String],
    at: usize,
    var: &'a dyn Fn(&str) -> Option<f64>,
}

impl ExprParser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        while let Some(op) = self.peek().filter(|t| *t == "+" || *t == "-") {
            let plus = op == "+";
            self.at += 1;
            let r = self.product()?;
            v = if plus { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(op) = self.peek().filter(|t| *t == "*" || *t == "/") {
            let times = op == "*";
            self.at += 1;
            let r = self.unary()?;
            v = if times { v * r } else { v / r };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.peek() == Some("-") {
            self.at += 1;
            return Ok(-self.unary()?);
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<f64, String> {
        let token = self.next().ok_or("the expression ends too soon")?;
        if token == "(" {
            let v = self.sum()?;
            return match self.next().as_deref() {
                Some(")") => Ok(v),
                _ => Err("a '(' is not closed".into()),
            };
        }
        if let Some(name) = token.strip_prefix('$') {
            return (self.var)(name).ok_or_else(|| format!("${name} is not known"));
        }
        if let Ok(v) = token.parse::<f64>() {
            return Ok(v);
        }
        // A function: floor, ceil, round, abs, min, max, pow, sqrt.
        if self.next().as_deref() != Some("(") {
            return Err(format!("'{token}' is not a number, $VARIABLE or function"));
        }
        let mut args = vec![self.sum()?];
        while self.peek() == Some(",") {
            self.at += 1;
            args.push(self.sum()?);
        }
        if self.next().as_deref() != Some(")") {
            return Err(format!("{token}( is not closed"));
        }
        let one = |f: fn(f64) -> f64| match args.as_slice() {
            [a] => Ok(f(*a)),
            _ => Err(format!("{token} takes one value")),
        };
        let two = |f: fn(f64, f64) -> f64| match args.as_slice() {
            [a, b] => Ok(f(*a, *b)),
            _ => Err(format!("{token} takes two values")),
        };
        match token.as_str() {
            "floor" => one(f64::floor),
            "ceil" => one(f64::ceil),
            "round" => one(f64::round),
            "abs" => one(f64::abs),
            "sqrt" => one(f64::sqrt),
            "min" => two(f64::min),
            "max" => two(f64::max),
            "pow" => two(f64::powf),
            other => Err(format!("'{other}' is not a function of size expressions")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_expressions_take_the_canvas_and_the_inputs() {
        let var = |name: &str| match name {
            "WIDTH" => Some(1280.0),
            "HEIGHT" => Some(720.0),
            "blur" => Some(3.0),
            _ => None,
        };
        let eval = |text: &str| SizeExpr(text.into()).eval(&var);
        assert_eq!(eval("floor($WIDTH/3.0)"), Ok(426.0));
        assert_eq!(eval("$HEIGHT*min((0.5),1.0)"), Ok(360.0));
        assert_eq!(eval("max($WIDTH/$blur, 2.0) + 1"), Ok(1280.0 / 3.0 + 1.0));
        assert_eq!(eval("-(2) * -3"), Ok(6.0));
        assert!(eval("$NOPE").unwrap_err().contains("$NOPE"));
        assert!(eval("floor($WIDTH").is_err());
        assert!(eval("sin(1)").unwrap_err().contains("sin"));
        assert!(eval("1 +").is_err());
        assert_eq!(
            SizeExpr::pixels(Some(&SizeExpr("$WIDTH/0".into())), (320, 180), 320, &|_| {
                None
            }),
            320,
            "a size that is not a number falls back to the canvas's"
        );
    }
}
