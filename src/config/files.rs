//! The files a run starts from, checked against the effect catalog: the scene (`--scene`),
//! the preset (`--preset`), the user's effects folder, and the chains built from them and
//! from `--effect`/`--layer-effect`. A typo fails here, with the list of what exists, not
//! silently on stage.

use std::path::{Path, PathBuf};

use tracing::info;

use super::config_dir;
use crate::compositor::scene::Scene;
use crate::compositor::{LayerSpec, MAX_LAYERS};
use crate::effects::EffectCatalog;
use crate::effects::chain::{
    EffectChain, EffectInstance, Preset, check_chain_length, parse_effect_arg,
};
use crate::error::{LucidError, Result};

/// `--scene`, loaded (or an empty scene without one).
pub(super) struct ShowScene {
    /// The scene file, when there is one.
    pub path: Option<PathBuf>,
    /// What it holds.
    pub scene: Scene,
}

impl ShowScene {
    /// Loads `path`, or an empty scene.
    pub fn load(path: Option<&Path>) -> Result<ShowScene> {
        Ok(match path {
            Some(path) => ShowScene {
                scene: Scene::load(path)?,
                path: Some(path.to_path_buf()),
            },
            None => ShowScene {
                path: None,
                scene: Default::default(),
            },
        })
    }
}

/// The built-in effects and the user's effects folder (`--effects-dir`, else the config
/// folder's `effects`).
pub(super) fn load_catalog(dir: Option<&Path>) -> Result<EffectCatalog> {
    if let Some(dir) = dir
        && !dir.is_dir()
    {
        return Err(LucidError::Usage(format!(
            "--effects-dir {}: no such folder",
            dir.display()
        )));
    }
    let dir = dir.map(Path::to_path_buf).or_else(|| config_dir("effects"));
    Ok(EffectCatalog::load(dir.as_deref()))
}

/// An effect that exists but does not compile (and has no good version to run).
fn broken_effect(catalog: &EffectCatalog, name: &str) -> Option<LucidError> {
    catalog
        .entries
        .get(name)
        .filter(|e| e.def.is_none())
        .and_then(|e| e.error.as_ref())
        .map(|e| LucidError::Usage(format!("effect {name} does not compile: {e}")))
}

/// Checks effects read from a file (`what`: "scene FILE", "preset FILE") against the
/// catalog.
fn check_saved_effects(
    catalog: &EffectCatalog,
    what: &str,
    effects: &[EffectInstance],
) -> Result<()> {
    for inst in effects {
        if let Some(e) = broken_effect(catalog, &inst.effect) {
            return Err(e);
        }
        let def = catalog.get(&inst.effect).ok_or_else(|| {
            LucidError::Usage(format!(
                "{what}: no effect '{}' (available: {})",
                inst.effect,
                catalog.names().join(", ")
            ))
        })?;
        inst.check(&def)
            .map_err(|e| LucidError::Usage(format!("{what}: {e}")))?;
    }
    Ok(())
}

/// How a source names an ISF generator: `isf:NAME[:PARAM=VALUE,...]`.
pub(super) const GENERATOR_PREFIX: &str = "isf:";

/// An ISF generator as a source: the black canvas it draws on (`canvas:WxH@FPS`) and the
/// generator, with its parameters, to run first in that source's chain.
pub(super) fn generator_source(
    catalog: &EffectCatalog,
    source: &str,
    (width, height, rate): (u32, u32, u32),
) -> Result<(String, EffectInstance)> {
    let arg = source.strip_prefix(GENERATOR_PREFIX).unwrap_or(source);
    let effect = parse_effect(catalog, arg)
        .map_err(|e| LucidError::Usage(e.to_string().replace("--effect ", source)))?;
    let generator = catalog.get(&effect.effect).is_some_and(|d| d.generator);
    if !generator {
        return Err(LucidError::Usage(format!(
            "{source}: '{}' is not an ISF generator (it has an inputImage: use it with --effect)",
            effect.effect
        )));
    }
    Ok((format!("canvas:{width}x{height}@{rate}"), effect))
}

/// One `--effect`/`--layer-effect` effect, checked against the catalog.
fn parse_effect(catalog: &EffectCatalog, arg: &str) -> Result<EffectInstance> {
    let inst = parse_any_effect(catalog, arg)?;
    if catalog.get(&inst.effect).is_some_and(|d| d.transition) {
        return Err(LucidError::Usage(format!(
            "--effect {arg}: '{}' is an ISF transition: the crossfader plays it (--transition)",
            inst.effect
        )));
    }
    Ok(inst)
}

fn parse_any_effect(catalog: &EffectCatalog, arg: &str) -> Result<EffectInstance> {
    let name = arg.split(':').next().unwrap_or_default().trim();
    if let Some(e) = broken_effect(catalog, name) {
        return Err(e);
    }
    parse_effect_arg(
        arg,
        |n| catalog.get(n).map(|d| (*d).clone()),
        &catalog.names(),
    )
}

/// `--transition NAME[:PARAM=VALUE,...]`: an ISF transition, checked against the catalog.
pub(super) fn transition(catalog: &EffectCatalog, arg: &str) -> Result<EffectInstance> {
    let inst = parse_any_effect(catalog, arg)
        .map_err(|e| LucidError::Usage(e.to_string().replace("--effect ", "--transition ")))?;
    if !catalog.get(&inst.effect).is_some_and(|d| d.transition) {
        return Err(LucidError::Usage(format!(
            "--transition {arg}: '{}' is not an ISF transition (startImage, endImage, progress)",
            inst.effect
        )));
    }
    Ok(inst)
}

/// The scene's layers, then `--layer`'s (`extra`), with their effect chains (the scene's,
/// then each `--layer-effect N:...`) checked against the catalog.
pub(super) fn layer_specs(
    catalog: &EffectCatalog,
    scene: &ShowScene,
    extra: Vec<LayerSpec>,
    layer_effects: &[String],
    canvas: (u32, u32, u32),
) -> Result<Vec<LayerSpec>> {
    let mut specs: Vec<_> = scene.scene.layers.clone();
    if let Some(path) = &scene.path {
        for (i, layer) in specs.iter().enumerate() {
            let what = format!("scene {} layer {}", path.display(), i + 1);
            check_saved_effects(catalog, &what, &layer.effects)?;
        }
    }
    for mut spec in extra {
        if spec.source.starts_with(GENERATOR_PREFIX) {
            let (source, generator) = generator_source(catalog, &spec.source, canvas)?;
            spec.source = source;
            spec.effects.insert(0, generator);
        }
        specs.push(spec);
    }
    if specs.len() > MAX_LAYERS {
        return Err(LucidError::Usage(format!(
            "{} layers (the scene's and --layer's); a show holds at most {MAX_LAYERS}",
            specs.len()
        )));
    }
    for arg in layer_effects {
        let bad = |why: String| LucidError::Usage(format!("--layer-effect {arg}: {why}"));
        let (number, effect) = arg
            .split_once(':')
            .ok_or_else(|| bad("use N:NAME[:param=value,...], N the layer from 1".into()))?;
        let layer = number
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=specs.len()).contains(n))
            .ok_or_else(|| match specs.len() {
                0 => bad("there are no layers (add one with --layer)".into()),
                n => bad(format!("'{number}' is not a layer: 1 to {n}")),
            })?;
        let inst = parse_effect(catalog, effect)
            .map_err(|e| bad(e.to_string().replace(&format!("--effect {effect}: "), "")))?;
        specs[layer - 1].effects.push(inst);
    }
    for (i, spec) in specs.iter().enumerate() {
        check_chain_length(spec.effects.len())
            .map_err(|e| LucidError::Usage(format!("layer {}: {e}", i + 1)))?;
    }
    for (i, spec) in specs
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.effects.is_empty())
    {
        let names: Vec<_> = spec.effects.iter().map(|e| e.effect.as_str()).collect();
        info!("layer {} effects: {}", i + 1, names.join(" -> "));
    }
    Ok(specs)
}

/// The master chain: the scene's, then the preset's (`preset`, loaded from
/// `preset_path`), then each `--effect`, checked against the catalog.
pub(super) fn master_chain(
    catalog: &EffectCatalog,
    scene: &ShowScene,
    preset_path: Option<&Path>,
    preset: Option<&Preset>,
    effects: &[String],
) -> Result<EffectChain> {
    let mut chain = EffectChain::default();
    let saved = scene
        .path
        .as_deref()
        .map(|p| (p, "scene", &scene.scene.effects))
        .into_iter()
        .chain(
            preset_path
                .zip(preset)
                .map(|(p, preset)| (p, "preset", &preset.effects)),
        );
    for (path, kind, effects) in saved {
        check_saved_effects(catalog, &format!("{kind} {}", path.display()), effects)?;
        info!("{kind} {}: {} effect(s)", path.display(), effects.len());
        chain.effects.extend(effects.iter().cloned());
    }
    for arg in effects {
        chain.effects.push(parse_effect(catalog, arg)?);
    }
    check_chain_length(chain.effects.len()).map_err(|e| {
        LucidError::Usage(format!("the master chain (scene, preset, --effect): {e}"))
    })?;
    if !chain.effects.is_empty() {
        let names: Vec<_> = chain.effects.iter().map(|e| e.effect.as_str()).collect();
        info!("effect chain: {}", names.join(" -> "));
    }
    Ok(chain)
}
