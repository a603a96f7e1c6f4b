//! Clip sampling and speed co-augmentation (design.md, "The method, made exact").
//!
//! A clip starts at `t0`. The original video view is `T` frames at stride 1 (times `t0 + j / fps`), the
//! augmented one `T` frames at stride `tau_v` source frames (times `t0 + j * tau_v / fps`), both at the dataset's
//! base `fps`. The original audio view is `D` seconds from `t0`; the augmented one is `tau_a * D` seconds from `t0`
//! resampled to `D` seconds ([`crate::audio::speed_audio_view`]). `tau_v` and `tau_a` are drawn independently and
//! uniformly from the speed set (or tied). `t0` is uniform over the positions where the longest window
//! (`max(T * max(1, tau_v) / fps, max(1, tau_a) * D)`) fits in the video.
//!
//! **Looping:** when a video is shorter than that window, `t0 = 0` and times past the end wrap around
//! (`t mod duration`) — the clip loops, as a short GIF would — instead of failing. Audio loops the same way.
//!
//! All randomness of a sample is drawn from [`sample_rng`]`(seed, epoch, index)` in a fixed order, so a sample
//! is a pure function of those three numbers and of the data config.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Domain tag mixed into the seed of per-sample generators.
const SAMPLE_STREAM: u64 = 0x5356_4143_4c52_0001;

/// The set speeds are drawn from.
///
/// JSON: `[lo, hi]` (or `{"range": [lo, hi]}`) is the integer set `{lo, ..., hi}`; `{"list": [1, 1.5, 2]}` is an
/// explicit set and may hold fractional speeds. `[1, 1]` (or `{"list": [1]}`) means no speed augmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SpeedSetRepr", into = "SpeedSetRepr")]
pub enum SpeedSet {
    /// `[lo, hi]`: every integer from `lo` to `hi` inclusive.
    Range([f64; 2]),
    /// An explicit list of speeds.
    List(Vec<f64>),
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum SpeedSetRepr {
    Plain([f64; 2]),
    Tagged(TaggedSpeedSet),
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum TaggedSpeedSet {
    Range([f64; 2]),
    List(Vec<f64>),
}

impl TryFrom<SpeedSetRepr> for SpeedSet {
    type Error = String;
    fn try_from(r: SpeedSetRepr) -> Result<Self, String> {
        Ok(match r {
            SpeedSetRepr::Plain(a) | SpeedSetRepr::Tagged(TaggedSpeedSet::Range(a)) => SpeedSet::Range(a),
            SpeedSetRepr::Tagged(TaggedSpeedSet::List(v)) => SpeedSet::List(v),
        })
    }
}

impl From<SpeedSet> for SpeedSetRepr {
    fn from(s: SpeedSet) -> Self {
        match s {
            SpeedSet::Range(a) => SpeedSetRepr::Plain(a),
            SpeedSet::List(v) => SpeedSetRepr::Tagged(TaggedSpeedSet::List(v)),
        }
    }
}

impl Default for SpeedSet {
    fn default() -> Self {
        SpeedSet::Range([1.0, 4.0])
    }
}

impl SpeedSet {
    /// Check the set: `lo <= hi`, integer bounds, speeds finite and > 0, a non-empty list.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |m: String| Err(DataError::Config(format!("speeds: {m}")));
        match self {
            SpeedSet::Range([lo, hi]) => {
                if !(lo.is_finite() && hi.is_finite()) || lo.fract() != 0.0 || hi.fract() != 0.0 {
                    return bad(format!(
                        "[lo, hi] must be integers, got [{lo}, {hi}] (use {{\"list\": [...]}} for fractional speeds)"
                    ));
                }
                if *lo < 1.0 {
                    return bad(format!("lo must be >= 1, got {lo}"));
                }
                if hi < lo {
                    return bad(format!("hi ({hi}) < lo ({lo})"));
                }
            }
            SpeedSet::List(v) => {
                if v.is_empty() {
                    return bad("empty list".into());
                }
                if let Some(s) = v.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                    return bad(format!("every speed must be finite and > 0, got {s}"));
                }
            }
        }
        Ok(())
    }

    /// The speeds in the set, in order.
    pub fn values(&self) -> Vec<f64> {
        match self {
            SpeedSet::Range([lo, hi]) => {
                let (lo, hi) = (*lo as i64, *hi as i64);
                (lo..=hi.max(lo)).map(|s| s as f64).collect()
            }
            SpeedSet::List(v) => v.clone(),
        }
    }

    /// Whether the set is `{1}`: no speed augmentation (one view per modality).
    pub fn is_identity(&self) -> bool {
        self.values().iter().all(|&s| s == 1.0)
    }

    /// The largest speed.
    pub fn max(&self) -> f64 {
        self.values().into_iter().fold(1.0, f64::max)
    }

    /// Draw one speed uniformly from the set.
    pub fn draw(&self, rng: &mut impl Rng) -> f64 {
        let v = self.values();
        if v.is_empty() {
            return 1.0;
        }
        v[rng.random_range(0..v.len())]
    }
}

/// What a sample is: travels with every sample (and batch) so runs can be inspected and replayed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipSpec {
    /// Manifest id of the video.
    pub video_id: String,
    /// Index of the clip in its dataset.
    pub index: usize,
    /// Clip start t0 in seconds.
    pub start_sec: f64,
    /// Speed of the augmented video view (1 without speed augmentation).
    pub speed_video: f64,
    /// Speed of the augmented audio view (1 without speed augmentation).
    pub speed_audio: f64,
    /// Epoch the sample was drawn for.
    pub epoch: u64,
    /// Run seed the sample was drawn with.
    pub seed: u64,
}

/// SplitMix64 finaliser: a bijective mix used to derive independent seeds.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of all randomness of sample `index` in `epoch` of a run seeded `seed`.
pub fn sample_rng(seed: u64, epoch: u64, index: usize) -> ChaCha8Rng {
    let s = mix64(mix64(mix64(seed ^ SAMPLE_STREAM) ^ epoch) ^ index as u64);
    ChaCha8Rng::seed_from_u64(s)
}

/// Seconds a video view covers: `frames * speed / fps`.
pub fn video_span(frames: usize, fps: f64, speed: f64) -> f64 {
    frames as f64 * speed / fps
}

/// The window both views of a clip need: `max(T * max(1, tau_v) / fps, max(1, tau_a) * D)`.
pub fn clip_window(frames: usize, fps: f64, audio_seconds: f64, speed_video: f64, speed_audio: f64) -> f64 {
    video_span(frames, fps, speed_video.max(1.0)).max(speed_audio.max(1.0) * audio_seconds)
}

/// Uniform start in `[0, duration - window]`; 0 when the window does not fit (the clip then loops).
pub fn draw_start(rng: &mut impl Rng, duration: f64, window: f64) -> f64 {
    let room = duration - window;
    if room > 0.0 { rng.random_range(0.0..=room) } else { 0.0 }
}

/// `clips` starts evenly spaced over `[0, duration - window]` (the centre for one clip; all 0 when the window
/// does not fit).
pub fn eval_starts(duration: f64, window: f64, clips: usize) -> Vec<f64> {
    let room = (duration - window).max(0.0);
    match clips {
        0 => Vec::new(),
        1 => vec![room / 2.0],
        n => (0..n).map(|k| room * k as f64 / (n - 1) as f64).collect(),
    }
}

/// Frame times of a video view: `t0 + j * speed / fps` for `j < frames`, wrapped into `[0, duration)` (looping).
pub fn video_frame_times(start_sec: f64, speed: f64, frames: usize, fps: f64, duration: f64) -> Vec<f64> {
    (0..frames)
        .map(|j| {
            let t = start_sec + j as f64 * speed / fps;
            if duration > 0.0 && t >= duration { t.rem_euclid(duration) } else { t }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_set_json_forms() {
        let r: SpeedSet = serde_json::from_str("[1, 4]").expect("plain");
        assert_eq!(r, SpeedSet::Range([1.0, 4.0]));
        assert_eq!(r.values(), vec![1.0, 2.0, 3.0, 4.0]);
        let t: SpeedSet = serde_json::from_str(r#"{"range": [2, 3]}"#).expect("tagged");
        assert_eq!(t.values(), vec![2.0, 3.0]);
        let l: SpeedSet = serde_json::from_str(r#"{"list": [1, 1.5]}"#).expect("list");
        assert_eq!(l.values(), vec![1.0, 1.5]);
        assert_eq!(serde_json::to_string(&l).expect("ser"), r#"{"list":[1.0,1.5]}"#);
        assert_eq!(serde_json::to_string(&r).expect("ser"), "[1.0,4.0]");
        assert!(serde_json::from_str::<SpeedSet>(r#"{"lost": [1]}"#).is_err());
    }

    #[test]
    fn speed_set_validation() {
        assert!(SpeedSet::Range([1.0, 1.0]).is_identity());
        assert!(SpeedSet::List(vec![1.0]).is_identity());
        assert!(!SpeedSet::Range([1.0, 2.0]).is_identity());
        assert!(SpeedSet::Range([4.0, 1.0]).validate().is_err());
        assert!(SpeedSet::Range([1.0, 2.5]).validate().is_err());
        assert!(SpeedSet::Range([0.0, 2.0]).validate().is_err());
        assert!(SpeedSet::List(vec![]).validate().is_err());
        assert!(SpeedSet::List(vec![1.0, -2.0]).validate().is_err());
        assert!(SpeedSet::List(vec![0.5, 2.0]).validate().is_ok());
    }

    #[test]
    fn draws_cover_the_set_uniformly() {
        let set = SpeedSet::Range([1.0, 4.0]);
        let mut rng = sample_rng(1, 0, 0);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[set.draw(&mut rng) as usize - 1] += 1;
        }
        assert!(counts.iter().all(|&c| (850..1150).contains(&c)), "{counts:?}");
    }

    #[test]
    fn rng_is_a_function_of_seed_epoch_index() {
        let a: u64 = sample_rng(7, 3, 11).random();
        assert_eq!(a, sample_rng(7, 3, 11).random::<u64>());
        assert_ne!(a, sample_rng(7, 4, 11).random::<u64>());
        assert_ne!(a, sample_rng(7, 3, 12).random::<u64>());
        assert_ne!(a, sample_rng(8, 3, 11).random::<u64>());
    }

    #[test]
    fn times_stride_and_loop() {
        let t = video_frame_times(0.5, 2.0, 4, 10.0, 1.0);
        let want = [0.5, 0.7, 0.9, 0.1];
        for (a, b) in t.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{t:?}");
        }
        assert_eq!(eval_starts(10.0, 2.0, 3), vec![0.0, 4.0, 8.0]);
        assert_eq!(eval_starts(1.0, 2.0, 2), vec![0.0, 0.0]);
        assert_eq!(clip_window(30, 30.0, 1.0, 4.0, 2.0), 4.0);
    }
}
