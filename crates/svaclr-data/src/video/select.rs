//! The frame rule, in one place: which decoded frame each requested time takes.
//!
//! Frames are offered in decode (presentation) order with their times; each requested time takes the frame whose
//! time is nearest, ties to the earlier frame; a time before the first frame takes the first; a time at or after
//! the last frame takes it, unless it lies more than max(one frame period, [`TRUNCATION_TOLERANCE_SECONDS`]) past
//! it (a truncated file). [`super::decode_frames_at`] feeds the frames it decodes (converting only the chosen ones)
//! and the decoded-frame cache feeds the frames it holds ([`super::VideoFrames::select`]), so both choose the same
//! frame for every time.

use std::path::Path;

use super::{TRUNCATION_TOLERANCE_SECONDS, decode_err};
use crate::error::DataError;

/// Which of the two frames around a requested time it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The frame offered before the current one.
    Previous,
    /// The frame just offered.
    Current,
}

/// Requested times, served in time order as frames are offered in decode order.
pub(crate) struct NearestFrames {
    /// Request indices in time order (stable: equal times keep request order).
    order: Vec<usize>,
    /// The requested times in that order.
    sorted: Vec<f64>,
    /// `order[..next]` have their frame.
    next: usize,
}

impl NearestFrames {
    /// Requests for `times` (any order, repeats allowed; finite).
    pub(crate) fn new(times: &[f64]) -> Self {
        let mut order: Vec<usize> = (0..times.len()).collect();
        order.sort_by(|&a, &b| times[a].total_cmp(&times[b]));
        let sorted = order.iter().map(|&i| times[i]).collect();
        Self { order, sorted, next: 0 }
    }

    /// The earliest requested time.
    pub(crate) fn first(&self) -> Option<f64> {
        self.sorted.first().copied()
    }

    /// Whether every request has its frame.
    pub(crate) fn is_done(&self) -> bool {
        self.next == self.sorted.len()
    }

    /// A frame at time `t` is offered after one at `prev` (`None`: it is the first). Every open request earlier
    /// than `t` now has its frame: `take(request, pick)` gets the previous frame when it is at least as near (ties
    /// to the earlier frame), else this one.
    pub(crate) fn offer<E>(
        &mut self,
        prev: Option<f64>,
        t: f64,
        mut take: impl FnMut(usize, Pick) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.next < self.sorted.len() && self.sorted[self.next] < t {
            let req = self.sorted[self.next];
            let pick = match prev {
                Some(p) if req - p <= t - req => Pick::Previous,
                _ => Pick::Current,
            };
            take(self.order[self.next], pick)?;
            self.next += 1;
        }
        Ok(())
    }

    /// After the last frame (at `last`, of a stream with frame period `frame_period`): the open requests, which all
    /// take that frame, or the truncation error naming `path` when the latest lies clearly past it.
    pub(crate) fn finish(&mut self, path: &Path, last: f64, frame_period: f64) -> Result<&[usize], DataError> {
        let open = &self.order[self.next..];
        if let Some(&needed) = self.sorted.last()
            && !open.is_empty()
            && needed > last + frame_period.max(TRUNCATION_TOLERANCE_SECONDS)
        {
            return Err(decode_err(
                path,
                format!("stream ends at {last:.3} s but {needed:.3} s was requested (truncated file?)"),
            ));
        }
        self.next = self.sorted.len();
        Ok(open)
    }
}

/// Seconds from the first frame of a decoded frame with timestamp `ts` (in units of `tb` seconds, the stream
/// starting at `origin`); a frame without one follows the previous frame (at `prev`) by `frame_period`.
pub(crate) fn frame_time(ts: Option<i64>, tb: f64, origin: f64, prev: Option<f64>, frame_period: f64) -> f64 {
    match ts {
        Some(ts) => ts as f64 * tb - origin,
        None => prev.map_or(0.0, |p| p + frame_period),
    }
}

/// The period used for frames without timestamps and for the truncation tolerance: one native frame, or 40 ms
/// when the stream states no rate.
pub(crate) fn frame_period(native_fps: f64) -> f64 {
    if native_fps > 0.0 { 1.0 / native_fps } else { 0.04 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame index each time takes among frames at `ts`.
    fn pick(ts: &[f64], times: &[f64]) -> Result<Vec<usize>, DataError> {
        let mut sel = NearestFrames::new(times);
        let mut out = vec![usize::MAX; times.len()];
        for (k, &t) in ts.iter().enumerate() {
            let prev = k.checked_sub(1).map(|j| ts[j]);
            sel.offer(prev, t, |r, p| {
                out[r] = if p == Pick::Previous { k - 1 } else { k };
                Ok::<_, DataError>(())
            })?;
        }
        let last = ts.len() - 1;
        for &r in sel.finish(Path::new("v.mkv"), ts[last], 0.1)? {
            out[r] = last;
        }
        Ok(out)
    }

    #[test]
    fn nearest_frame_ties_to_the_earlier() {
        let ts = [0.0, 0.1, 0.2, 0.3];
        assert_eq!(pick(&ts, &[0.05, 0.06, 0.04, -1.0, 0.3, 0.2]).expect("pick"), vec![0, 1, 0, 0, 3, 2]);
        // Past the last frame: within the tolerance it takes the last, beyond it is an error naming the file.
        assert_eq!(pick(&ts, &[0.5]).expect("pick"), vec![3]);
        let e = pick(&ts, &[0.1, 0.6]).expect_err("truncated");
        assert_eq!(
            e.to_string(),
            "v.mkv: cannot decode video: stream ends at 0.300 s but 0.600 s was requested (truncated file?)"
        );
    }
}
