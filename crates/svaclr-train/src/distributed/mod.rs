//! Data-parallel training: the few collective operations the trainer needs, behind [`Collective`], so that one loop
//! runs every launch mode: one device ([`Single`], every operation a no-op), several devices in one process
//! ([`local::LocalGroup`], one thread per device, the collectives through shared memory), and several processes
//! (`Mpi`, with the `mpi` cargo feature, over Open MPI through the `mpi` crate). See docs/distributed.md.
//!
//! What the trainer does with them (per optimiser step):
//! 1. every rank embeds its own B/P clips (pass 1 of gradient caching, no graph kept across micro-batches);
//! 2. [`Collective::all_gather`] of the projections (and, for SoftInfoNCE, of the cross-affinity inputs) in rank
//!    order, so that rank r's clips are clips `r*B/P..(r+1)*B/P` of the global batch;
//! 3. each rank's loss covers its own clips as anchors against every clip of the global batch as negatives; the
//!    gradient of that loss with respect to the gathered embeddings is summed over ranks with one
//!    [`Collective::all_reduce_sum`] (the exact backward of the gather), and each rank back-propagates its own slice;
//! 4. one more `all_reduce_sum` of every parameter gradient in one fused buffer, divided by P, before the optimiser
//!    step ([`average_gradients`]).
//!
//! Weights start identical ([`broadcast_module`] from rank 0) and are checked to stay identical ([`module_hash`],
//! compared across ranks by [`check_same_weights`]).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use sha2::Digest;

use crate::error::TrainError;

pub mod local;
#[cfg(feature = "mpi")]
mod mpi_world;

/// The collective operations of data-parallel training. Every rank must call the same operations in the same order
/// with buffers of the same length (as with MPI itself).
pub trait Collective {
    /// This process' rank, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// The concatenation of every rank's `local` in rank order (every rank passes the same length).
    fn all_gather(&self, local: &[f32]) -> Result<Vec<f32>, TrainError>;
    /// Every rank's `u64` in rank order (for hashes and positions).
    fn all_gather_u64(&self, local: u64) -> Result<Vec<u64>, TrainError>;
    /// Element-wise sum over ranks, in place.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<(), TrainError>;
    /// Replace `buf` by rank 0's.
    fn broadcast(&self, buf: &mut [f32]) -> Result<(), TrainError>;
    /// Wait for every rank.
    fn barrier(&self);
    /// End the whole job now with `code` (MPI_Abort on every rank); one process just exits.
    fn abort(&self, code: i32) -> !;
    /// "rank r of P" for messages.
    fn describe(&self) -> String {
        format!("rank {} of {}", self.rank(), self.size())
    }
}

/// One process: rank 0 of 1; every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&self, local: &[f32]) -> Result<Vec<f32>, TrainError> {
        Ok(local.to_vec())
    }
    fn all_gather_u64(&self, local: u64) -> Result<Vec<u64>, TrainError> {
        Ok(vec![local])
    }
    fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<(), TrainError> {
        Ok(())
    }
    fn broadcast(&self, _buf: &mut [f32]) -> Result<(), TrainError> {
        Ok(())
    }
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// How `svaclr pretrain --distributed` chooses the processes' collective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DistributedMode {
    /// MPI when the environment says this process was launched by mpirun/srun with more than one rank, else one
    /// process.
    #[default]
    Auto,
    /// One process, whatever the environment says.
    None,
    /// MPI (an error if the `mpi` feature is not compiled in).
    Mpi,
}

impl std::str::FromStr for DistributedMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::None),
            "mpi" => Ok(Self::Mpi),
            other => Err(format!("--distributed {other}: expected auto, none or mpi")),
        }
    }
}

/// Environment variables through which MPI launchers announce the job's size before MPI is initialised: Open MPI's
/// mpirun, and PMI launchers (MPICH's Hydra, Intel MPI). Other launchers need `--distributed mpi`.
pub const SIZE_VARIABLES: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// The job size the environment announces (the first of [`SIZE_VARIABLES`] that is set and parses), with the name of
/// the variable.
pub fn launcher_size() -> Option<(&'static str, usize)> {
    SIZE_VARIABLES.iter().find_map(|&v| std::env::var(v).ok()?.trim().parse().ok().map(|n| (v, n)))
}

/// Environment variables through which launchers give a process its rank on its own node (Open MPI, MPICH/Hydra,
/// SLURM).
pub const LOCAL_RANK_VARIABLES: &[&str] = &["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"];

/// This process' rank on its node, if the launcher says (a GPU node runs one process per device: device = local
/// rank).
pub fn local_rank() -> Option<usize> {
    LOCAL_RANK_VARIABLES.iter().find_map(|&v| std::env::var(v).ok()?.trim().parse().ok())
}

/// `--device` for this process of a multi-process job: a CUDA device named without an index (`cuda`, `tch-cuda`)
/// becomes the one of this process' local rank; anything else is kept.
pub fn device_for_local_rank(device: &str, local_rank: Option<usize>) -> String {
    match (device.trim(), local_rank) {
        (d @ ("cuda" | "tch-cuda"), Some(r)) => format!("{d}:{r}"),
        (d, _) => d.to_string(),
    }
}

/// The collective for `mode`: [`Single`], or MPI (initialised here; finalised when the returned value is dropped).
///
/// # Errors
/// MPI asked for (or announced by the environment with more than one rank) in a build without the `mpi` feature, or
/// MPI failing to initialise.
pub fn init(mode: DistributedMode) -> Result<Box<dyn Collective>, TrainError> {
    let want_mpi = match mode {
        DistributedMode::None => false,
        DistributedMode::Mpi => true,
        DistributedMode::Auto => launcher_size().is_some_and(|(_, n)| n > 1),
    };
    if !want_mpi {
        return Ok(Box::new(Single));
    }
    init_mpi(mode)
}

#[cfg(feature = "mpi")]
fn init_mpi(_mode: DistributedMode) -> Result<Box<dyn Collective>, TrainError> {
    Ok(Box::new(mpi_world::Mpi::init()?))
}

#[cfg(not(feature = "mpi"))]
fn init_mpi(mode: DistributedMode) -> Result<Box<dyn Collective>, TrainError> {
    let why = match launcher_size() {
        Some((var, n)) if mode == DistributedMode::Auto => format!("this process is one of {n} MPI ranks ({var}={n})"),
        _ => "--distributed mpi was asked for".to_string(),
    };
    Err(TrainError::Distributed(format!(
        "{why} but svaclr was built without the `mpi` feature (rebuild with `--features mpi`, see docs/distributed.md)"
    )))
}

/// Gather `[V, n, D]` per rank into `[V, P*n, D]`, rank r's clips at `r*n..(r+1)*n` (detached).
pub fn gather_clips(comm: &dyn Collective, local: Tensor<3>) -> Result<Tensor<3>, TrainError> {
    let [v, n, d] = local.dims();
    let p = comm.size();
    if p == 1 {
        return Ok(local.detach());
    }
    let device = local.device();
    let host = to_vec(local)?;
    let all = comm.all_gather(&host)?; // [P, V, n, D]
    Ok(Tensor::<4>::from_data(TensorData::new(all, [p, v, n, d]), &device).swap_dims(0, 1).reshape([v, p * n, d]))
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TrainError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Distributed(format!("tensor to host: {e:?}")))
}

/// Sum several tensors over ranks with ONE all-reduce (they are packed into one buffer and unpacked).
pub fn all_reduce_sum_tensors<const D: usize>(
    comm: &dyn Collective,
    tensors: Vec<Tensor<D>>,
) -> Result<Vec<Tensor<D>>, TrainError> {
    if comm.size() == 1 {
        return Ok(tensors);
    }
    let mut shapes = Vec::with_capacity(tensors.len());
    let mut buf = Vec::new();
    let mut devices = Vec::with_capacity(tensors.len());
    for t in tensors {
        shapes.push(t.shape());
        devices.push(t.device());
        buf.extend(to_vec(t)?);
    }
    comm.all_reduce_sum(&mut buf)?;
    let mut out = Vec::with_capacity(shapes.len());
    let mut at = 0;
    for (shape, device) in shapes.into_iter().zip(devices) {
        let len = shape.num_elements();
        out.push(Tensor::from_data(TensorData::new(buf[at..at + len].to_vec(), shape), &device));
        at += len;
    }
    Ok(out)
}

/// Packs the gradients of a module's parameters (visit order) into one buffer.
struct PackGrads<'a> {
    grads: &'a GradientsParams,
    buf: Vec<f32>,
    error: Option<TrainError>,
}

impl ModuleVisitor for PackGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            match to_vec(g) {
                Ok(v) => self.buf.extend(v),
                Err(e) => self.error = Some(e),
            }
        }
    }
}

/// Unpacks a buffer of [`PackGrads`] back into gradients (same visit order, same parameters).
struct UnpackGrads<'a> {
    old: &'a GradientsParams,
    new: GradientsParams,
    buf: &'a [f32],
    at: usize,
    scale: f32,
}

impl ModuleVisitor for UnpackGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.old.get::<D>(param.id) {
            let shape = g.shape();
            let len = shape.num_elements();
            let values: Vec<f32> = self.buf[self.at..self.at + len].iter().map(|x| x * self.scale).collect();
            self.at += len;
            self.new.register::<D>(param.id, Tensor::from_data(TensorData::new(values, shape), &g.device()));
        }
    }
}

/// Average the parameter gradients over ranks: one all-reduce (sum) of every gradient packed into one buffer, then
/// a division by P. Every rank has gradients for the same parameters (the ranks run the same graph).
pub fn average_gradients<M: Module>(
    comm: &dyn Collective,
    model: &M,
    grads: GradientsParams,
) -> Result<GradientsParams, TrainError> {
    if comm.size() == 1 {
        return Ok(grads);
    }
    let mut pack = PackGrads { grads: &grads, buf: Vec::new(), error: None };
    model.visit(&mut pack);
    if let Some(e) = pack.error {
        return Err(e);
    }
    let mut buf = pack.buf;
    comm.all_reduce_sum(&mut buf)?;
    let mut unpack =
        UnpackGrads { old: &grads, new: GradientsParams::new(), buf: &buf, at: 0, scale: 1.0 / comm.size() as f32 };
    model.visit(&mut unpack);
    Ok(unpack.new)
}

/// Every float tensor of a module (parameters and buffers such as BatchNorm's running statistics), in visit order.
struct PackAll {
    buf: Vec<f32>,
    hasher: sha2::Sha256,
    error: Option<TrainError>,
}

impl ModuleVisitor for PackAll {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        match to_vec(param.val()) {
            Ok(v) => {
                for x in &v {
                    self.hasher.update(x.to_le_bytes());
                }
                self.buf.extend(v);
            }
            Err(e) => self.error = Some(e),
        }
    }
}

/// Writes a buffer of [`PackAll`] back into the module (same visit order).
struct SetAll<'a> {
    buf: &'a [f32],
    at: usize,
}

impl ModuleMapper for SetAll<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (buf, at) = (self.buf, self.at);
        let len = param.val().shape().num_elements();
        self.at += len;
        param.map(|t| {
            let require_grad = t.is_require_grad();
            let values = buf[at..at + len].to_vec();
            Tensor::from_data(TensorData::new(values, t.shape()), &t.device()).set_require_grad(require_grad)
        })
    }
}

fn pack_all<M: Module>(model: &M) -> Result<(Vec<f32>, u64), TrainError> {
    let mut pack = PackAll { buf: Vec::new(), hasher: sha2::Sha256::new(), error: None };
    model.visit(&mut pack);
    if let Some(e) = pack.error {
        return Err(e);
    }
    let digest = pack.hasher.finalize();
    let mut h = [0u8; 8];
    h.copy_from_slice(&digest[..8]);
    Ok((pack.buf, u64::from_le_bytes(h)))
}

/// Give every rank rank 0's values of every float tensor of `model` (parameters and buffers), in one broadcast.
pub fn broadcast_module<M: Module>(comm: &dyn Collective, model: M) -> Result<M, TrainError> {
    if comm.size() == 1 {
        return Ok(model);
    }
    let (mut buf, _) = pack_all(&model)?;
    comm.broadcast(&mut buf)?;
    Ok(model.map(&mut SetAll { buf: &buf, at: 0 }))
}

/// Average the buffers that are not parameters (BatchNorm's running mean and variance) over ranks: each rank's
/// statistics come from its own clips; the average is what a checkpoint keeps. One all-reduce.
pub fn average_buffers<M: Module>(comm: &dyn Collective, model: M) -> Result<M, TrainError> {
    if comm.size() == 1 {
        return Ok(model);
    }
    let mut pack = BufferPack { buf: Vec::new(), error: None };
    model.visit(&mut pack);
    if let Some(e) = pack.error {
        return Err(e);
    }
    let mut buf = pack.buf;
    comm.all_reduce_sum(&mut buf)?;
    Ok(model.map(&mut SetBuffers { buf: &buf, at: 0, scale: 1.0 / comm.size() as f32 }))
}

struct BufferPack {
    buf: Vec<f32>,
    error: Option<TrainError>,
}

impl ModuleVisitor for BufferPack {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        if t.is_require_grad() {
            return;
        }
        match to_vec(t) {
            Ok(v) => self.buf.extend(v),
            Err(e) => self.error = Some(e),
        }
    }
}

struct SetBuffers<'a> {
    buf: &'a [f32],
    at: usize,
    scale: f32,
}

impl ModuleMapper for SetBuffers<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if param.val().is_require_grad() {
            return param;
        }
        let len = param.val().shape().num_elements();
        let (buf, at, scale) = (self.buf, self.at, self.scale);
        self.at += len;
        param.map(|t| {
            let values: Vec<f32> = buf[at..at + len].iter().map(|x| x * scale).collect();
            Tensor::from_data(TensorData::new(values, t.shape()), &t.device())
        })
    }
}

/// A 64-bit hash (SHA-256 prefix) of every float tensor of `model` (parameters and buffers), bit for bit.
pub fn module_hash<M: Module>(model: &M) -> Result<u64, TrainError> {
    Ok(pack_all(model)?.1)
}

/// Check that every rank holds the same weights (a hash of every float tensor); `after_step` names the step in the
/// error.
pub fn check_same_weights<M: Module>(comm: &dyn Collective, model: &M, after_step: usize) -> Result<(), TrainError> {
    if comm.size() == 1 {
        return Ok(());
    }
    let hashes = comm.all_gather_u64(module_hash(model)?)?;
    if let Some((r, h)) = hashes.iter().enumerate().find(|(_, h)| **h != hashes[0]) {
        return Err(TrainError::Distributed(format!(
            "the ranks' weights differ after step {after_step}: rank {r} has hash {h:016x}, rank 0 has {:016x}",
            hashes[0]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_and_rejects_unknown() {
        assert_eq!("auto".parse::<DistributedMode>(), Ok(DistributedMode::Auto));
        assert_eq!("mpi".parse::<DistributedMode>(), Ok(DistributedMode::Mpi));
        assert_eq!("none".parse::<DistributedMode>(), Ok(DistributedMode::None));
        assert!("nccl".parse::<DistributedMode>().is_err());
    }

    #[test]
    fn cuda_without_an_index_takes_the_local_rank() {
        assert_eq!(device_for_local_rank("cuda", Some(3)), "cuda:3");
        assert_eq!(device_for_local_rank("tch-cuda", Some(1)), "tch-cuda:1");
        assert_eq!(device_for_local_rank("cuda:0", Some(1)), "cuda:0");
        assert_eq!(device_for_local_rank("flex", Some(1)), "flex");
        assert_eq!(device_for_local_rank("cuda", None), "cuda");
    }

    #[test]
    fn single_is_the_identity() {
        let s = Single;
        assert_eq!((s.rank(), s.size()), (0, 1));
        assert_eq!(s.all_gather(&[1.0, 2.0]).ok(), Some(vec![1.0, 2.0]));
        let mut b = [3.0f32];
        assert!(s.all_reduce_sum(&mut b).is_ok());
        assert_eq!(b, [3.0]);
    }
}
