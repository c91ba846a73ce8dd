//! [`EffectCatalog`]: every effect Lucid can run, the built-ins compiled into the binary and
//! the effects folder's `.wgsl` files, rescanned while the show runs; and its listing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bevy::prelude::Resource;
use tracing::{info, warn};

use super::definition::{EffectDef, EffectError};

/// The built-in effects: name and WGSL source.
pub const BUILTIN: &[(&str, &str)] = &[
    ("color", include_str!("../../shaders/effects/color.wgsl")),
    (
        "rgb_split",
        include_str!("../../shaders/effects/rgb_split.wgsl"),
    ),
    (
        "kaleidoscope",
        include_str!("../../shaders/effects/kaleidoscope.wgsl"),
    ),
    ("mirror", include_str!("../../shaders/effects/mirror.wgsl")),
    (
        "pixelate",
        include_str!("../../shaders/effects/pixelate.wgsl"),
    ),
    (
        "feedback",
        include_str!("../../shaders/effects/feedback.wgsl"),
    ),
    (
        "edge_glow",
        include_str!("../../shaders/effects/edge_glow.wgsl"),
    ),
    (
        "scanlines",
        include_str!("../../shaders/effects/scanlines.wgsl"),
    ),
    ("blur", include_str!("../../shaders/effects/blur.wgsl")),
    ("tint", include_str!("../../shaders/effects/tint.wgsl")),
];

/// How often the effects folder is checked for saved files.
pub(super) const RESCAN_EVERY: Duration = Duration::from_millis(250);
/// Largest effect file read (the built-ins are 1-3 KiB).
pub const MAX_EFFECT_BYTES: u64 = 256 << 10;

/// One effect Lucid knows, with its current good version and its latest error.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The version that runs (the last one that compiled).
    pub def: Option<Arc<EffectDef>>,
    /// Why the newest version of the file does not run, if it does not.
    pub error: Option<EffectError>,
    /// True for built-in effects.
    pub builtin: bool,
    /// The file, for user effects.
    pub path: Option<PathBuf>,
}

/// Every effect Lucid can run: built-ins, then the effects folder's files.
#[derive(Resource, Debug, Clone, Default)]
pub struct EffectCatalog {
    /// By name.
    pub entries: BTreeMap<String, CatalogEntry>,
    /// The user effects folder.
    pub dir: Option<PathBuf>,
    /// Each user file seen, by path: its stamp when last read, so a file is read again only
    /// when it changes, whatever name it declares.
    files: BTreeMap<PathBuf, (SystemTime, u64)>,
}

/// What a rescan found.
#[derive(Debug, PartialEq, Eq)]
pub enum CatalogChange {
    /// A file compiled and its new version runs.
    Loaded(String),
    /// A file failed; the previous version (if any) keeps running.
    Failed(String),
}

impl EffectCatalog {
    /// The built-ins plus the `.wgsl` files in `dir` (a missing folder is fine: no user effects).
    pub fn load(dir: Option<&Path>) -> EffectCatalog {
        let mut catalog = EffectCatalog {
            entries: BTreeMap::new(),
            dir: dir.map(Path::to_path_buf),
            files: BTreeMap::new(),
        };
        for (name, text) in BUILTIN {
            let def = EffectDef::parse(name, &format!("builtin:{name}"), None, text)
                .unwrap_or_else(|e| panic!("built-in effect {name} is broken: {e}"));
            catalog.entries.insert(
                name.to_string(),
                CatalogEntry {
                    def: Some(Arc::new(def)),
                    error: None,
                    builtin: true,
                    path: None,
                },
            );
        }
        catalog.rescan();
        catalog
    }

    /// Logs each effect that does not compile (at the start of a show; `--check-effects`
    /// lists them instead).
    pub fn warn_failed(&self) {
        for (name, entry) in &self.entries {
            if let Some(e) = &entry.error {
                warn!("effect {name} does not compile: {e}");
            }
        }
    }

    /// Names of the effects that can run, for messages and the UI.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.def.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The runnable version of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<EffectDef>> {
        self.entries.get(name).and_then(|e| e.def.clone())
    }

    /// Looks at the folder again; (re)loads files that are new or changed since last time.
    pub fn rescan(&mut self) -> Vec<CatalogChange> {
        let Some(dir) = self.dir.clone() else {
            return Vec::new();
        };
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wgsl" || x == "fs"))
            .collect();
        files.sort();
        let mut changes = Vec::new();
        for path in files {
            let Some(stem) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            // Follows symlinks: what counts is what would be read.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            // An ISF filter's `.vs` is part of it: a change to either reloads it.
            let vs_path = path.with_extension("vs");
            let vs_meta = (path.extension().is_some_and(|x| x == "fs"))
                .then(|| std::fs::metadata(&vs_path).ok())
                .flatten();
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH).max(
                    vs_meta
                        .as_ref()
                        .and_then(|m| m.modified().ok())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                ),
                meta.len() + vs_meta.as_ref().map_or(0, |m| m.len()),
            );
            if self.files.get(&path) == Some(&stamp) {
                continue;
            }
            self.files.insert(path.clone(), stamp);
            let origin = path.display().to_string();
            let parsed = read_effect_file(&path, &meta).and_then(|text| match &vs_meta {
                _ if path.extension().is_some_and(|x| x == "fs") => {
                    let vs = vs_meta
                        .as_ref()
                        .map(|m| read_effect_file(&vs_path, m))
                        .transpose()?;
                    super::isf::parse(&stem, &origin, Some(&path), &text, vs.as_deref())
                }
                _ => EffectDef::parse(&stem, &origin, Some(&path), &text),
            });
            // The entry is found by path (the header may rename the effect).
            let owned = self
                .entries
                .iter()
                .find(|(_, e)| e.path.as_deref() == Some(path.as_path()))
                .map(|(n, _)| n.clone());
            let name = match &parsed {
                Ok(def) => def.name.clone(),
                Err(_) => owned.clone().unwrap_or(stem),
            };
            // Another user file already declares this name: one clear error naming both,
            // and the running version stays (no tug of war between the two files).
            let rival = self
                .entries
                .get(&name)
                .and_then(|e| e.path.clone())
                .filter(|other| *other != path && self.files.contains_key(other) && other.exists());
            if let (Ok(_), Some(other)) = (&parsed, rival) {
                let error = EffectError::Header {
                    path: origin.clone(),
                    reason: format!(
                        "declares the effect '{name}', as {} does; rename one of them",
                        other.display()
                    ),
                };
                warn!("{error}");
                if let Some(entry) = self.entries.get_mut(&name) {
                    entry.error = Some(error);
                }
                changes.push(CatalogChange::Failed(name));
                continue;
            }
            // A file that now declares another name gives up its old one.
            if let (Some(old), Ok(_)) = (&owned, &parsed)
                && *old != name
            {
                self.entries.remove(old);
            }
            let entry = self.entries.entry(name.clone()).or_insert(CatalogEntry {
                def: None,
                error: None,
                builtin: false,
                path: Some(path.clone()),
            });
            if entry.builtin {
                info!("{origin} replaces the built-in effect '{name}'");
                entry.builtin = false;
            }
            entry.path = Some(path.clone());
            match parsed {
                Ok(def) => {
                    entry.def = Some(Arc::new(def));
                    entry.error = None;
                    changes.push(CatalogChange::Loaded(name));
                }
                Err(e) => {
                    entry.error = Some(e);
                    changes.push(CatalogChange::Failed(name));
                }
            }
        }
        changes
    }
}

impl EffectCatalog {
    /// `--list-effects`: every effect with its parameters, ranges and defaults.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (name, entry) in &self.entries {
            let origin = if entry.builtin {
                "built-in".to_string()
            } else {
                entry
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            };
            let Some(def) = &entry.def else {
                let why = entry
                    .error
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                let _ = writeln!(out, "{name} ({origin}) - does not compile: {why}");
                continue;
            };
            let _ = writeln!(out, "{name} ({origin}) - {}", def.description);
            for p in &def.params {
                let _ = writeln!(out, "    {:<12} {}, default {}", p.name, p.kind, p.default);
            }
        }
        out
    }
}

/// Reads an effect file: a regular file (a FIFO, a device or a folder named `*.wgsl` is
/// refused, never opened) of at most [`MAX_EFFECT_BYTES`], read with that cap.
fn read_effect_file(path: &Path, meta: &std::fs::Metadata) -> Result<String, EffectError> {
    use std::io::Read as _;
    let fail = |reason: String| EffectError::Io {
        path: path.display().to_string(),
        reason,
    };
    if !meta.is_file() {
        return Err(fail("not a regular file; skipped".into()));
    }
    if meta.len() > MAX_EFFECT_BYTES {
        return Err(fail(format!("larger than {} KiB", MAX_EFFECT_BYTES >> 10)));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_EFFECT_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_EFFECT_BYTES {
        return Err(fail(format!("larger than {} KiB", MAX_EFFECT_BYTES >> 10)));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_compile_and_user_files_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = EffectCatalog::load(Some(dir.path()));
        assert_eq!(catalog.names().len(), BUILTIN.len());
        let file = dir.path().join("solid.wgsl");
        let good = "/*{ \"params\": [] }*/\nfn effect(uv: vec2<f32>) -> vec4<f32> { return vec4(1.0, 0.0, 0.0, 1.0); }\n";
        std::fs::write(&file, good).unwrap();
        assert_eq!(
            catalog.rescan(),
            vec![CatalogChange::Loaded("solid".into())]
        );
        assert!(
            catalog.rescan().is_empty(),
            "unchanged files are not reloaded"
        );
        let first = catalog.get("solid").unwrap();
        std::fs::write(
            &file,
            good.replace("1.0, 0.0, 0.0, 1.0)", "1.0, 0.0, 0.0 1.0)"),
        )
        .unwrap();
        assert_eq!(
            catalog.rescan(),
            vec![CatalogChange::Failed("solid".into())]
        );
        let entry = &catalog.entries["solid"];
        assert!(
            Arc::ptr_eq(entry.def.as_ref().unwrap(), &first),
            "the good version stays"
        );
        let err = entry.error.as_ref().unwrap().to_string();
        assert!(err.contains("solid.wgsl:2:"), "{err}");
    }

    #[test]
    fn isf_files_reload_with_their_vertex_shader_and_keep_the_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = EffectCatalog::load(Some(dir.path()));
        let fs = dir.path().join("Shift.fs");
        let good = "/*{ \"INPUTS\": [ { \"NAME\": \"inputImage\", \"TYPE\": \"image\" } ] }*/\nvarying vec2 shifted;\nvoid main() {\n    gl_FragColor = IMG_NORM_PIXEL(inputImage, shifted);\n}\n";
        std::fs::write(&fs, good).unwrap();
        std::fs::write(
            dir.path().join("Shift.vs"),
            "varying vec2 shifted;\nvoid main() {\n    isf_vertShaderInit();\n    shifted = isf_FragNormCoord + vec2(0.1, 0.0);\n}\n",
        )
        .unwrap();
        assert_eq!(
            catalog.rescan(),
            vec![CatalogChange::Loaded("Shift".into())]
        );
        let first = catalog.get("Shift").unwrap();
        assert!(first.wgsl.contains("lucid_fragment"));
        // An edit to the .vs alone reloads the effect; a broken one keeps the good version
        // and says where, in the .vs.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(
            dir.path().join("Shift.vs"),
            "varying vec2 shifted;\nvoid main() {\n    shifted = isf_FragNormCoord + nope;\n}\n",
        )
        .unwrap();
        assert_eq!(
            catalog.rescan(),
            vec![CatalogChange::Failed("Shift".into())]
        );
        let entry = &catalog.entries["Shift"];
        assert!(
            Arc::ptr_eq(entry.def.as_ref().unwrap(), &first),
            "the good version stays"
        );
        let err = entry.error.as_ref().unwrap().to_string();
        assert!(err.contains("Shift.vs:3:"), "{err}");
    }

    const SOLID: &str = "/*{ \"name\": \"solid\", \"params\": [] }*/\nfn effect(uv: vec2<f32>) -> vec4<f32> { return vec4(1.0); }\n";

    #[test]
    fn two_files_declaring_one_name_give_one_error_naming_both_and_settle() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wgsl"), SOLID).unwrap();
        std::fs::write(dir.path().join("b.wgsl"), SOLID).unwrap();
        let mut catalog = EffectCatalog::load(Some(dir.path()));
        let entry = &catalog.entries["solid"];
        assert!(
            entry.path.as_ref().unwrap().ends_with("a.wgsl"),
            "the first file wins"
        );
        let err = entry
            .error
            .as_ref()
            .expect("the clash is reported")
            .to_string();
        assert!(err.contains("a.wgsl") && err.contains("b.wgsl"), "{err}");
        for _ in 0..5 {
            assert!(
                catalog.rescan().is_empty(),
                "no reload loop between the two files"
            );
        }
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.wgsl");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.wgsl")).unwrap();
        let big = format!("{SOLID}//{}\n", "x".repeat(MAX_EFFECT_BYTES as usize));
        std::fs::write(dir.path().join("big.wgsl"), big).unwrap();
        // Reading the FIFO or /dev/zero would block or never end: the test would hang.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(EffectCatalog::load(Some(&path)));
        });
        let catalog = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("loading the folder returned");
        for name in ["fifo", "zero", "big"] {
            let err = catalog.entries[name].error.as_ref().unwrap().to_string();
            assert!(
                err.contains("not a regular file") || err.contains("larger than"),
                "{name}: {err}"
            );
        }
    }
}
