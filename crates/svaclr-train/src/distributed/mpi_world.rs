//! The collective over MPI processes (`mpi` feature): MPI_COMM_WORLD through the `mpi` crate and the system's Open
//! MPI.

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::Collective;
use crate::error::TrainError;

/// MPI_COMM_WORLD of an initialised MPI environment (the `mpi` crate over the system's Open MPI). MPI's default
/// error handler (MPI_ERRORS_ARE_FATAL) stays in place: a failed collective or a dead peer ends the job.
pub struct Mpi {
    world: SimpleCommunicator,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

impl Mpi {
    pub fn init() -> Result<Self, TrainError> {
        let universe = mpi::initialize()
            .ok_or_else(|| TrainError::Distributed("MPI was already initialised in this process".into()))?;
        let world = universe.world();
        Ok(Self { world, _universe: universe })
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn all_gather(&self, local: &[f32]) -> Result<Vec<f32>, TrainError> {
        let mut out = vec![0f32; local.len() * self.size()];
        self.world.all_gather_into(local, &mut out[..]);
        Ok(out)
    }
    fn all_gather_u64(&self, local: u64) -> Result<Vec<u64>, TrainError> {
        let mut out = vec![0u64; self.size()];
        self.world.all_gather_into(&local, &mut out[..]);
        Ok(out)
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<(), TrainError> {
        let send = buf.to_vec();
        self.world.all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }
    fn broadcast(&self, buf: &mut [f32]) -> Result<(), TrainError> {
        self.world.process_at_rank(0).broadcast_into(buf);
        Ok(())
    }
    fn barrier(&self) {
        self.world.barrier();
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
