//! Weight files: torchvision checkpoints in and out, our own checkpoints, and plain tensor files.
//!
//! **Invariant:** this is the only module of svaclr-models that touches the file system.
//!
//! - torchvision import: `.pth`/`.pt` (a `state_dict`, read by burn-store's `PytorchStore`) or `.safetensors`
//!   (`SafetensorsStore` with `PyTorchToBurnAdapter`). Keys are renamed by [`TORCHVISION_TO_BURN`]; the adapter
//!   transposes Linear weights and renames BatchNorm `weight`/`bias` to `gamma`/`beta`. Every parameter must be
//!   found and every tensor of the file used, except `num_batches_tracked` (a training counter we do not keep) and,
//!   when only an encoder is loaded, the `fc`.
//! - torchvision export: `.safetensors` with torchvision's keys ([`BURN_TO_TORCHVISION`]), Linear weights `[out, in]`,
//!   BatchNorm `weight`/`bias`/`running_mean`/`running_var`. `num_batches_tracked` is not written: torch's
//!   `load_state_dict(strict=True)` fills it in for state dicts without version metadata, as `safetensors` files are.
//! - our checkpoints: Burn's burnpack format (`.bpk`), strict in both directions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::store::{
    ApplyResult, BurnToPyTorchAdapter, KeyRemapper, ModuleRecord, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};

use crate::ModelError;
use crate::audio_resnet::{AudioEncoder, AudioEncoderConfig};
use crate::av_model::{AvModel, ModelConfig};
use crate::preset::{SizePreset, VideoArch};
use crate::torchvision::{TorchvisionArch, TorchvisionNet};
use crate::video_resnet::{VideoEncoder, VideoEncoderConfig};

/// Extension of our own checkpoints (Burn's burnpack).
pub const CHECKPOINT_EXTENSION: &str = "bpk";

/// torchvision key -> our parameter path, one rule per line, applied in this order (burn-store's `KeyRemapper`
/// applies every rule that matches; these are written so that at most one rule matches any key). Keys not listed
/// (`layerK.J.conv1.weight`, `bn1.*`, `fc.*` of the 2D ResNet; `fc.*` of the video nets) are already our paths.
pub const TORCHVISION_TO_BURN: &[(&str, &str)] = &[
    // Video stems are nn.Sequential: R(2+1)D (conv(1,7,7), BN, ReLU, conv(3,1,1), BN, ReLU), R3D (conv(3,7,7), BN, ReLU).
    (r"^stem\.0\.", "stem.conv1."),
    (r"^stem\.1\.", "stem.bn1."),
    (r"^stem\.3\.", "stem.conv2."),
    (r"^stem\.4\.", "stem.bn2."),
    // A video block's convN is Sequential(builder, BN[, ReLU]); the R(2+1)D builder Conv2Plus1D is itself
    // Sequential(spatial conv, BN, ReLU, temporal conv).
    (r"^(layer[1-4]\.\d+\.conv[12])\.0\.0\.", "${1}.conv.spatial."),
    (r"^(layer[1-4]\.\d+\.conv[12])\.0\.1\.", "${1}.conv.bn."),
    (r"^(layer[1-4]\.\d+\.conv[12])\.0\.3\.", "${1}.conv.temporal."),
    // The R3D builder Conv3DSimple is the conv itself.
    (r"^(layer[1-4]\.\d+\.conv[12])\.0\.weight$", "${1}.conv.weight"),
    (r"^(layer[1-4]\.\d+\.conv[12])\.1\.", "${1}.bn."),
    // Shortcuts (video and 2D): Sequential(1x1 conv, BN).
    (r"^(layer[1-4]\.\d+\.downsample)\.0\.", "${1}.conv."),
    (r"^(layer[1-4]\.\d+\.downsample)\.1\.", "${1}.bn."),
];

/// Our parameter path -> torchvision key: the exact inverse of [`TORCHVISION_TO_BURN`], same order.
pub const BURN_TO_TORCHVISION: &[(&str, &str)] = &[
    (r"^stem\.conv1\.", "stem.0."),
    (r"^stem\.bn1\.", "stem.1."),
    (r"^stem\.conv2\.", "stem.3."),
    (r"^stem\.bn2\.", "stem.4."),
    (r"^(layer[1-4]\.\d+\.conv[12])\.conv\.spatial\.", "${1}.0.0."),
    (r"^(layer[1-4]\.\d+\.conv[12])\.conv\.bn\.", "${1}.0.1."),
    (r"^(layer[1-4]\.\d+\.conv[12])\.conv\.temporal\.", "${1}.0.3."),
    (r"^(layer[1-4]\.\d+\.conv[12])\.conv\.weight$", "${1}.0.weight"),
    (r"^(layer[1-4]\.\d+\.conv[12])\.bn\.", "${1}.1."),
    (r"^(layer[1-4]\.\d+\.downsample)\.conv\.", "${1}.0."),
    (r"^(layer[1-4]\.\d+\.downsample)\.bn\.", "${1}.1."),
];

/// Applied last on import into a network with an fc ([`crate::VideoResNet`], [`crate::AudioResNet`]), whose
/// backbone sits under `encoder.`.
const ADD_ENCODER_PREFIX: (&str, &str) = (r"^(stem|conv1|bn1|layer[1-4])\.", "encoder.${1}.");
/// Applied first on export of such a network.
const STRIP_ENCODER_PREFIX: (&str, &str) = (r"^encoder\.", "");

/// A torchvision tensor that we read but do not keep.
const IGNORED_SUFFIX: &str = ".num_batches_tracked";
/// torchvision's classifier, ignored when only an encoder is loaded.
const FC_PREFIX: &str = "fc.";

/// The rules of an import (`to_burn = true`) or export, with or without the `encoder.` level.
fn rules(to_burn: bool, with_fc: bool) -> Vec<(&'static str, &'static str)> {
    let table = if to_burn { TORCHVISION_TO_BURN } else { BURN_TO_TORCHVISION };
    match (to_burn, with_fc) {
        (_, false) => table.to_vec(),
        (true, true) => table.iter().copied().chain([ADD_ENCODER_PREFIX]).collect(),
        (false, true) => [STRIP_ENCODER_PREFIX].into_iter().chain(table.iter().copied()).collect(),
    }
}

fn remapper(to_burn: bool, with_fc: bool) -> KeyRemapper {
    // The rules are constants checked by the tests; a bad one is a bug of this crate, not a user error.
    #[allow(clippy::expect_used)]
    KeyRemapper::from_patterns(rules(to_burn, with_fc)).expect("the remap tables are valid regular expressions")
}

fn rename(key: &str, to_burn: bool, with_fc: bool) -> String {
    let mut key = key.to_string();
    for (re, replacement) in remapper(to_burn, with_fc).to_regex_pairs() {
        key = re.replace_all(&key, replacement.as_str()).into_owned();
    }
    key
}

/// Our parameter path for a torchvision key (`with_fc`: the target network has an fc, its backbone is under
/// `encoder.`). BatchNorm `weight`/`bias` keep torchvision's names here; the adapter maps them to `gamma`/`beta`.
pub fn torchvision_key_to_burn(key: &str, with_fc: bool) -> String {
    rename(key, true, with_fc)
}

/// The torchvision key for one of our parameter paths (BatchNorm `gamma`/`beta` already named `weight`/`bias`).
pub fn burn_key_to_torchvision(path: &str, with_fc: bool) -> String {
    rename(path, false, with_fc)
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// One line from a possibly multi-line library message.
fn one_line(msg: impl std::fmt::Display) -> String {
    msg.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Load a torchvision checkpoint into `module`, strictly.
fn apply_torchvision<M: Module>(
    module: &mut M,
    path: &Path,
    model: &'static str,
    with_fc: bool,
) -> Result<(), ModelError> {
    let read_err = |e: &dyn std::fmt::Display| ModelError::Read { path: path.to_path_buf(), cause: one_line(e) };
    let result: ApplyResult = match extension(path).as_str() {
        "pth" | "pt" => {
            let mut store = PytorchStore::from_file(path)
                .remap(remapper(true, with_fc))
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false);
            module.load_from(&mut store).map_err(|e| read_err(&e))?
        }
        "safetensors" => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .remap(remapper(true, with_fc))
                .skip_enum_variants(true)
                .allow_partial(true)
                .validate(false);
            module.load_from(&mut store).map_err(|e| read_err(&e))?
        }
        _ => {
            return Err(ModelError::UnsupportedFormat {
                path: path.to_path_buf(),
                expected: ".pth, .pt or .safetensors (torchvision state_dict)",
            });
        }
    };
    check_applied(result, path, model, with_fc)
}

/// Turn burn-store's report into our errors: shape/dtype errors, then missing, then unused tensors.
fn check_applied(result: ApplyResult, path: &Path, model: &'static str, with_fc: bool) -> Result<(), ModelError> {
    if !result.errors.is_empty() {
        let mut errors: Vec<String> = result.errors.iter().map(one_line).collect();
        errors.sort();
        return Err(ModelError::Mismatch { path: path.to_path_buf(), model, errors });
    }
    if !result.missing.is_empty() {
        let mut keys: Vec<String> = result.missing.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        return Err(ModelError::MissingTensors { path: path.to_path_buf(), model, keys });
    }
    let mut unused: Vec<String> = result
        .unused
        .into_iter()
        .filter(|k| !k.ends_with(IGNORED_SUFFIX) && (with_fc || !k.starts_with(FC_PREFIX)))
        .collect();
    unused.sort();
    if !unused.is_empty() {
        return Err(ModelError::UnusedTensors { path: path.to_path_buf(), model, keys: unused });
    }
    Ok(())
}

/// Load a torchvision checkpoint (`.pth`, `.pt`, `.safetensors`) of `arch` into a network with its fc.
///
/// `preset` and `num_classes` must match the file (torchvision's own are `full` and 400); a mismatch is reported
/// per tensor.
pub fn load_torchvision(
    arch: TorchvisionArch,
    path: &Path,
    preset: SizePreset,
    num_classes: usize,
    device: &Device,
) -> Result<TorchvisionNet, ModelError> {
    let mut net = TorchvisionNet::init(arch, preset, num_classes, device);
    let model = arch.name();
    match &mut net {
        TorchvisionNet::Video(v) => apply_torchvision(v, path, model, true)?,
        TorchvisionNet::Audio(a) => apply_torchvision(a, path, model, true)?,
    }
    Ok(net)
}

/// Load the backbone of a torchvision video checkpoint (its `fc` is ignored), e.g. to initialise pre-training.
pub fn load_torchvision_video_encoder(
    arch: VideoArch,
    path: &Path,
    preset: SizePreset,
    device: &Device,
) -> Result<VideoEncoder, ModelError> {
    let mut encoder = VideoEncoderConfig::new(arch, preset).init(device);
    apply_torchvision(&mut encoder, path, arch.name(), false)?;
    Ok(encoder)
}

/// Load the backbone of a torchvision-format audio ResNet-9 checkpoint (its `fc` is ignored).
pub fn load_torchvision_audio_encoder(
    path: &Path,
    preset: SizePreset,
    device: &Device,
) -> Result<AudioEncoder, ModelError> {
    let mut encoder = AudioEncoderConfig::new(preset).init(device);
    apply_torchvision(&mut encoder, path, TorchvisionArch::AudioResNet9.name(), false)?;
    Ok(encoder)
}

fn export_torchvision_module<M: Module>(module: &M, path: &Path, with_fc: bool) -> Result<(), ModelError> {
    if extension(path) != "safetensors" {
        return Err(ModelError::UnsupportedFormat { path: path.to_path_buf(), expected: ".safetensors" });
    }
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .remap(remapper(false, with_fc))
        .overwrite(true);
    module.save_into(&mut store).map_err(|e| ModelError::Write { path: path.to_path_buf(), cause: one_line(e) })
}

/// Write a network with its fc as a torchvision `state_dict` in `.safetensors`, loadable with
/// `model.load_state_dict(safetensors.torch.load_file(path), strict=True)`.
pub fn export_torchvision(net: &TorchvisionNet, path: &Path) -> Result<(), ModelError> {
    match net {
        TorchvisionNet::Video(v) => export_torchvision_module(v, path, true),
        TorchvisionNet::Audio(a) => export_torchvision_module(a, path, true),
    }
}

/// Write a video encoder with torchvision's keys and no `fc` (load it with `strict=True` after setting
/// `model.fc = torch.nn.Identity()`).
pub fn export_video_encoder(encoder: &VideoEncoder, path: &Path) -> Result<(), ModelError> {
    export_torchvision_module(encoder, path, false)
}

/// Write an audio encoder with torchvision's keys and no `fc`.
pub fn export_audio_encoder(encoder: &AudioEncoder, path: &Path) -> Result<(), ModelError> {
    export_torchvision_module(encoder, path, false)
}

/// `path`, with `.bpk` appended when it has no extension (Burn's writer does the same).
pub fn checkpoint_path(path: &Path) -> PathBuf {
    if path.extension().is_none() { path.with_extension(CHECKPOINT_EXTENSION) } else { path.to_path_buf() }
}

/// Save any module as a burnpack checkpoint; returns the path written.
pub fn save_module<M: Module + Clone>(module: &M, path: &Path) -> Result<PathBuf, ModelError> {
    let path = checkpoint_path(path);
    module.clone().save_file(&path).map_err(|e| ModelError::Write { path: path.clone(), cause: one_line(e) })?;
    Ok(path)
}

/// Load a burnpack checkpoint into `module` (same architecture), strictly: every parameter must be present and
/// every tensor used.
pub fn load_module<M: Module>(module: M, path: &Path) -> Result<M, ModelError> {
    let path = checkpoint_path(path);
    let record = ModuleRecord::load(&path).map_err(|e| ModelError::Read { path: path.clone(), cause: one_line(e) })?;
    module.try_load_record(record).map_err(|e| ModelError::Read { path: path.clone(), cause: one_line(e) })
}

/// Save the two-tower model (pre-training checkpoints); returns the path written.
pub fn save_model(model: &AvModel, path: &Path) -> Result<PathBuf, ModelError> {
    save_module(model, path)
}

/// Load a two-tower model saved by [`save_model`]; `cfg` must be the config it was built from.
pub fn load_model(cfg: &ModelConfig, path: &Path, device: &Device) -> Result<AvModel, ModelError> {
    load_module(cfg.init(device)?, path)
}

/// The video encoder of a [`save_model`] checkpoint, for fine-tuning.
pub fn load_video_encoder(cfg: &ModelConfig, path: &Path, device: &Device) -> Result<VideoEncoder, ModelError> {
    Ok(load_model(cfg, path, device)?.video)
}

/// A network with its fc from either a torchvision checkpoint (`.pth`, `.pt`, `.safetensors`) or our burnpack
/// (`.bpk`, as written by `svaclr import`).
pub fn load_net(
    arch: TorchvisionArch,
    path: &Path,
    preset: SizePreset,
    num_classes: usize,
    device: &Device,
) -> Result<TorchvisionNet, ModelError> {
    if extension(path) == CHECKPOINT_EXTENSION {
        return Ok(match TorchvisionNet::init(arch, preset, num_classes, device) {
            TorchvisionNet::Video(v) => TorchvisionNet::Video(load_module(v, path)?),
            TorchvisionNet::Audio(a) => TorchvisionNet::Audio(load_module(a, path)?),
        });
    }
    load_torchvision(arch, path, preset, num_classes, device)
}

/// Save a network with its fc as our burnpack checkpoint; returns the path written.
pub fn save_net(net: &TorchvisionNet, path: &Path) -> Result<PathBuf, ModelError> {
    match net {
        TorchvisionNet::Video(v) => save_module(v, path),
        TorchvisionNet::Audio(a) => save_module(a, path),
    }
}

/// Read one float tensor (f32, or f64/f16 converted to f32) from a `.safetensors` file.
pub fn read_tensor(path: &Path, name: &str) -> Result<TensorData, ModelError> {
    let read_err = |cause: String| ModelError::Read { path: path.to_path_buf(), cause };
    let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| read_err(one_line(e)))?;
    let view = file.tensor(name).map_err(|_| {
        let mut found: Vec<String> = file.names().into_iter().map(str::to_string).collect();
        found.sort();
        ModelError::TensorNotFound { path: path.to_path_buf(), name: name.to_string(), found }
    })?;
    let raw = view.data();
    let values: Vec<f32> = match view.dtype() {
        safetensors::Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        safetensors::Dtype::F64 => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        safetensors::Dtype::F16 => {
            raw.chunks_exact(2).map(|c| burn::tensor::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
        }
        other => {
            return Err(ModelError::BadTensor {
                path: path.to_path_buf(),
                name: name.to_string(),
                reason: format!("has dtype {other:?}; expected F32, F64 or F16"),
            });
        }
    };
    Ok(TensorData::new(values, view.shape().to_vec()))
}

/// Write float tensors (stored as f32) to a `.safetensors` file, replacing it.
pub fn write_tensors(path: &Path, tensors: &[(&str, TensorData)]) -> Result<(), ModelError> {
    let write_err = |cause: String| ModelError::Write { path: path.to_path_buf(), cause };
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, data) in tensors {
        let data = data.clone().convert::<f32>();
        let values = data.as_slice::<f32>().map_err(|e| write_err(format!("tensor '{name}': {e:?}")))?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((name.to_string(), data.shape().to_vec(), bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| write_err(one_line(e)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, None::<HashMap<String, String>>, path).map_err(|e| write_err(one_line(e)))
}
