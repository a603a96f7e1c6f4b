//! Several devices in one process: one thread per device, each running the same training loop as one rank of a
//! [`LocalGroup`], whose collective operations meet through shared memory. This is how `--device cuda:0,1` (or
//! `flex,flex` in the tests) trains: the same loop, gathered negatives and averaged gradients as over MPI.
//!
//! Every operation is a rendezvous of all members: each writes its buffer into its slot, waits for the others,
//! reads what it needs (sums in rank order, so every member computes bit-identical results), and waits again before
//! the slots can be reused. A member that leaves with an error breaks the group: the others' waits return an error
//! instead of hanging.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::Collective;
use crate::error::TrainError;

/// A reusable barrier that can be broken.
struct Gate {
    size: usize,
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    arrived: usize,
    generation: u64,
    broken: bool,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait(&self) -> Result<(), TrainError> {
        let mut s = self.lock();
        if s.broken {
            return Err(broken());
        }
        s.arrived += 1;
        if s.arrived == self.size {
            s.arrived = 0;
            s.generation += 1;
            self.cv.notify_all();
            return Ok(());
        }
        let generation = s.generation;
        while s.generation == generation && !s.broken {
            s = self.cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.generation == generation { Err(broken()) } else { Ok(()) }
    }

    fn break_all(&self) {
        self.lock().broken = true;
        self.cv.notify_all();
    }
}

fn broken() -> TrainError {
    TrainError::Distributed("another device of this process failed (its error is reported above)".into())
}

struct Shared {
    gate: Gate,
    slots: Mutex<Vec<Vec<f32>>>,
}

/// A group of `size` members in one process; [`LocalGroup::members`] hands out one [`Collective`] per thread.
pub struct LocalGroup {
    shared: Arc<Shared>,
}

impl LocalGroup {
    /// A group of `size` (>= 1) members.
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        Self {
            shared: Arc::new(Shared {
                gate: Gate { size, state: Mutex::new(GateState::default()), cv: Condvar::new() },
                slots: Mutex::new(vec![Vec::new(); size]),
            }),
        }
    }

    /// One member per rank, to be moved into one thread each.
    pub fn members(&self) -> Vec<Member> {
        (0..self.shared.gate.size).map(|rank| Member { rank, shared: Arc::clone(&self.shared) }).collect()
    }
}

/// Rank `rank` of a [`LocalGroup`]. Dropping a member during a panic, or calling [`Member::fail`], breaks the group.
pub struct Member {
    rank: usize,
    shared: Arc<Shared>,
}

impl Member {
    /// Tell the other members that this one is leaving with an error: their pending and future operations fail.
    pub fn fail(&self) {
        self.shared.gate.break_all();
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Vec<f32>>> {
        self.shared.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Put `local` in this member's slot, wait for all, compute from every slot, wait again (the slots are then
    /// free for the next operation).
    fn exchange<T>(&self, local: &[f32], read: impl FnOnce(&[Vec<f32>]) -> T) -> Result<T, TrainError> {
        self.slots()[self.rank] = local.to_vec();
        self.shared.gate.wait()?;
        let out = read(&self.slots());
        self.shared.gate.wait()?;
        Ok(out)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.fail();
        }
    }
}

impl Collective for Member {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.gate.size
    }
    fn all_gather(&self, local: &[f32]) -> Result<Vec<f32>, TrainError> {
        let n = local.len();
        let out = self.exchange(local, |slots| {
            if slots.iter().any(|s| s.len() != n) {
                return None;
            }
            Some(slots.concat())
        })?;
        out.ok_or_else(|| TrainError::Distributed("all_gather: members passed buffers of different lengths".into()))
    }
    fn all_gather_u64(&self, local: u64) -> Result<Vec<u64>, TrainError> {
        // Two exact f32 halves of 32 bits each would lose bits; pass the value's bytes as f32 bit patterns.
        let halves = [f32::from_bits(local as u32), f32::from_bits((local >> 32) as u32)];
        let all = self.all_gather(&halves)?;
        Ok(all.chunks(2).map(|h| u64::from(h[0].to_bits()) | (u64::from(h[1].to_bits()) << 32)).collect())
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<(), TrainError> {
        let n = buf.len();
        let sum = self.exchange(buf, |slots| {
            if slots.iter().any(|s| s.len() != n) {
                return None;
            }
            // In rank order, so every member gets the same bits.
            let mut acc = slots[0].clone();
            for s in &slots[1..] {
                for (a, b) in acc.iter_mut().zip(s) {
                    *a += b;
                }
            }
            Some(acc)
        })?;
        let sum = sum
            .ok_or_else(|| TrainError::Distributed("all_reduce: members passed buffers of different lengths".into()))?;
        buf.copy_from_slice(&sum);
        Ok(())
    }
    fn broadcast(&self, buf: &mut [f32]) -> Result<(), TrainError> {
        let root = self.exchange(buf, |slots| slots[0].clone())?;
        if root.len() != buf.len() {
            return Err(TrainError::Distributed("broadcast: members passed buffers of different lengths".into()));
        }
        buf.copy_from_slice(&root);
        Ok(())
    }
    fn barrier(&self) {
        // A broken group has nothing left to wait for; the member's next operation reports it.
        let _ = self.shared.gate.wait();
    }
    fn abort(&self, code: i32) -> ! {
        self.fail();
        std::process::exit(code)
    }
    fn describe(&self) -> String {
        format!("device {} of {}", self.rank, self.size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_gather_sum_and_broadcast_in_rank_order() {
        let group = LocalGroup::new(3);
        let handles: Vec<_> = group
            .members()
            .into_iter()
            .map(|m| {
                std::thread::spawn(move || {
                    let r = m.rank() as f32;
                    let gathered = m.all_gather(&[r, 10.0 + r]).expect("gather");
                    let mut sum = vec![r, 1.0];
                    m.all_reduce_sum(&mut sum).expect("sum");
                    let mut b = vec![r + 5.0];
                    m.broadcast(&mut b).expect("broadcast");
                    let ids = m.all_gather_u64(u64::MAX - m.rank() as u64).expect("u64");
                    (gathered, sum, b, ids)
                })
            })
            .collect();
        for h in handles {
            let (gathered, sum, b, ids) = h.join().expect("thread");
            assert_eq!(gathered, vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
            assert_eq!(sum, vec![3.0, 3.0]);
            assert_eq!(b, vec![5.0]);
            assert_eq!(ids, vec![u64::MAX, u64::MAX - 1, u64::MAX - 2]);
        }
    }

    #[test]
    fn a_failing_member_releases_the_others() {
        let group = LocalGroup::new(2);
        let mut members = group.members().into_iter();
        let (a, b) = (members.next().expect("a"), members.next().expect("b"));
        let waiting = std::thread::spawn(move || a.all_reduce_sum(&mut [1.0]));
        std::thread::sleep(std::time::Duration::from_millis(50));
        b.fail();
        let e = waiting.join().expect("thread").expect_err("must fail, not hang");
        assert!(e.to_string().contains("another device"), "{e}");
    }
}
