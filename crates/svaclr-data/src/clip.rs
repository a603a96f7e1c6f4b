//! The clip plan and the one function that renders plans into samples.
//!
//! Every way of reading a clip — a training sample with speed co-augmentation, the evaluation grid of temporal
//! positions x spatial crops, the speed probe of Fig. 3 — is a planner that returns [`ClipPlan`]s: where the clip
//! starts, the speed of each video and audio view, and how each view is cropped. [`ClipDataset::render`] is the
//! only code that turns plans into tensors: one decode of every frame the plans need (or their choice from the
//! decoded-frame cache, [`crate::cache`]), then the crops and normalisation of each video view and the log-mel of
//! each audio view.
//!
//! **Draw order:** a training plan draws from [`sample_rng`] the video speed, the audio speed (skipped when tied),
//! t0 — in the planner — then one [`crate::augment::ViewTransform`] per video view in view order — in
//! [`ClipDataset::render`], which receives the generator inside [`Crops::Random`]. A sample is therefore a pure
//! function of (seed, epoch, index) and the data config.

use rand_chacha::ChaCha8Rng;

use crate::audio::{self, AudioClip};
use crate::augment::{draw_view_transform, eval_transform, render_view};
use crate::dataset::{AvSample, ClipDataset, ClipItem};
use crate::error::DataError;
use crate::sampler::{ClipSpec, clip_window, draw_start, eval_starts, sample_rng, video_frame_times};

/// How the video views of a plan are cropped.
#[derive(Clone, Debug)]
pub enum Crops {
    /// One random transform per video view (training augmentation), drawn in view order from this generator.
    Random(ChaCha8Rng),
    /// `n` deterministic crops (1 = centre, 3 = left/centre/right along the long side): the plan renders to `n`
    /// samples, sample `c` holding crop `c` of every video view.
    Grid(usize),
}

/// One clip to render: its start and speeds (in [`ClipPlan::spec`]), the speed of each view and its crops.
#[derive(Clone, Debug)]
pub struct ClipPlan {
    /// What is sampled; `spec.start_sec` is the clip's t0 for every view.
    pub spec: ClipSpec,
    /// Speed of each video view, in view order (the original, speed 1, first).
    pub video_speeds: Vec<f64>,
    /// Speed of each audio view, in view order.
    pub audio_speeds: Vec<f64>,
    /// How the video views are cropped.
    pub crops: Crops,
}

impl ClipPlan {
    /// Samples this plan renders to.
    fn samples(&self) -> usize {
        match self.crops {
            Crops::Random(_) => 1,
            Crops::Grid(n) => n,
        }
    }
}

/// `spec` of a deterministic (evaluation or probe) plan: epoch and seed 0.
fn fixed_spec(item: &ClipItem, index: usize, start_sec: f64, speed_video: f64, speed_audio: f64) -> ClipSpec {
    ClipSpec { video_id: item.id.clone(), index, start_sec, speed_video, speed_audio, epoch: 0, seed: 0 }
}

/// The largest of `speeds` and 1.
fn top_speed(speeds: &[f64]) -> f64 {
    speeds.iter().fold(1.0f64, |m, &s| m.max(s))
}

impl ClipDataset {
    /// The training plan of clip `i` in `epoch` of a run seeded `seed`: speeds drawn from the speed set (view 0
    /// is the original, view 1 the speed-augmented one when [`crate::DataConfig::views`] is 2), t0 uniform where
    /// the longest window fits, random crops.
    pub fn train_plan(&self, i: usize, epoch: u64, seed: u64) -> Result<ClipPlan, DataError> {
        let item = self.item(i)?;
        let cfg = self.config();
        let mut rng = sample_rng(seed, epoch, i);
        let (speed_video, speed_audio) = if cfg.views() == 2 {
            let v = cfg.speeds.draw(&mut rng);
            let a = if cfg.tie_speeds { v } else { cfg.speeds.draw(&mut rng) };
            (v, a)
        } else {
            (1.0, 1.0)
        };
        let window = clip_window(cfg.frames, cfg.fps, cfg.audio_seconds, speed_video, speed_audio);
        let start_sec = draw_start(&mut rng, item.duration, window);
        let (video_speeds, audio_speeds) =
            if cfg.views() == 2 { (vec![1.0, speed_video], vec![1.0, speed_audio]) } else { (vec![1.0], vec![1.0]) };
        Ok(ClipPlan {
            spec: ClipSpec { video_id: item.id.clone(), index: i, start_sec, speed_video, speed_audio, epoch, seed },
            video_speeds,
            audio_speeds,
            crops: Crops::Random(rng),
        })
    }

    /// The evaluation plans of clip `i`: `clips` temporal positions evenly spaced, each with `crops` spatial crops
    /// (1 = centre, 3 = l/c/r), speed 1.
    pub fn eval_plans(&self, i: usize, clips: usize, crops: usize) -> Result<Vec<ClipPlan>, DataError> {
        let item = self.item(i)?;
        let cfg = self.config();
        if clips == 0 || !(crops == 1 || crops == 3) {
            return Err(DataError::Config(format!("eval needs clips >= 1 and crops 1 or 3, got {clips} x {crops}")));
        }
        let window = clip_window(cfg.frames, cfg.fps, cfg.audio_seconds, 1.0, 1.0);
        Ok(eval_starts(item.duration, window, clips)
            .into_iter()
            .map(|start| ClipPlan {
                spec: fixed_spec(item, i, start, 1.0, 1.0),
                video_speeds: vec![1.0],
                audio_speeds: vec![1.0],
                crops: Crops::Grid(crops),
            })
            .collect())
    }

    /// The speed-probe plan of clip `i`: one centre-cropped video view per entry of `video_speeds` and one audio
    /// view per entry of `audio_speeds`, all from one t0 (the middle of the room for the longest window). `spec`
    /// carries the largest speed of each list.
    pub fn speed_plan(&self, i: usize, video_speeds: &[f64], audio_speeds: &[f64]) -> Result<ClipPlan, DataError> {
        let item = self.item(i)?;
        let cfg = self.config();
        let valid = |v: &[f64]| !v.is_empty() && v.iter().all(|s| s.is_finite() && *s > 0.0);
        if !valid(video_speeds) || !valid(audio_speeds) {
            return Err(DataError::Config(format!(
                "speed views need positive speeds, got video {video_speeds:?}, audio {audio_speeds:?}"
            )));
        }
        let (top_video, top_audio) = (top_speed(video_speeds), top_speed(audio_speeds));
        let window = clip_window(cfg.frames, cfg.fps, cfg.audio_seconds, top_video, top_audio);
        let start = eval_starts(item.duration, window, 1)[0];
        Ok(ClipPlan {
            spec: fixed_spec(item, i, start, top_video, top_audio),
            video_speeds: video_speeds.to_vec(),
            audio_speeds: audio_speeds.to_vec(),
            crops: Crops::Grid(1),
        })
    }

    /// Render plans of clip `i` into samples, in plan order (a [`Crops::Grid`] plan gives one sample per crop).
    /// Every frame of every plan is decoded in one pass over the file, or chosen from the decoded-frame cache
    /// (the same bytes; [`crate::cache`]).
    ///
    /// # Shapes
    /// Each sample: per video view `[3, T, crop, crop]`, per audio view `[1, n_mels, mel_frames]`, row-major.
    pub fn render(&self, i: usize, plans: Vec<ClipPlan>) -> Result<Vec<AvSample>, DataError> {
        let item = self.item(i)?;
        let cfg = self.config();
        let times: Vec<f64> = plans
            .iter()
            .flat_map(|p| p.video_speeds.iter().map(move |&s| (p.spec.start_sec, s)))
            .flat_map(|(start, s)| video_frame_times(start, s, cfg.frames, cfg.fps, item.duration))
            .collect();
        let decoded = self.frames_at(i, &times)?;
        let (height, width) = decoded.size();
        let slices = decoded.slices();
        let mut views = slices.chunks(cfg.frames);
        let (mean, std) = (cfg.augment.mean, cfg.augment.std);
        let mut out = Vec::with_capacity(plans.iter().map(ClipPlan::samples).sum());
        for plan in plans {
            let frames: Vec<&[&[u8]]> = views.by_ref().take(plan.video_speeds.len()).collect();
            let source =
                self.audio_window(item, plan.spec.start_sec, top_speed(&plan.audio_speeds) * cfg.audio_seconds)?;
            let audio: Vec<Vec<f32>> =
                plan.audio_speeds.iter().map(|&s| self.audio_view(&source, s)).collect::<Result<_, _>>()?;
            let sample = |video| AvSample { video, audio: audio.clone(), spec: plan.spec.clone(), label: item.label };
            match plan.crops {
                Crops::Random(mut rng) => {
                    let video = frames
                        .iter()
                        .map(|f| {
                            let tf = draw_view_transform(&mut rng, &cfg.augment, height, width);
                            render_view(f, height, width, cfg.crop, &tf, mean, std)
                        })
                        .collect();
                    out.push(sample(video));
                }
                Crops::Grid(n) => {
                    for c in 0..n {
                        let tf = eval_transform(height, width, cfg.crop, n, c);
                        out.push(sample(
                            frames.iter().map(|f| render_view(f, height, width, cfg.crop, &tf, mean, std)).collect(),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Training sample with speed co-augmentation ([`Self::train_plan`], rendered); all randomness is a pure
    /// function of (seed, epoch, i) so runs replay and resume exactly.
    pub fn train_sample(&self, i: usize, epoch: u64, seed: u64) -> Result<AvSample, DataError> {
        let plan = self.train_plan(i, epoch, seed)?;
        self.render(i, vec![plan])?.pop().ok_or(DataError::Index { index: i, len: self.len() })
    }

    /// Deterministic evaluation views ([`Self::eval_plans`], rendered): clip-major, `clips * crops` samples of one
    /// view each; `spec.epoch` and `spec.seed` are 0.
    pub fn eval_samples(&self, i: usize, clips: usize, crops: usize) -> Result<Vec<AvSample>, DataError> {
        let plans = self.eval_plans(i, clips, crops)?;
        self.render(i, plans)
    }

    /// Deterministic views of clip `i` at chosen speeds ([`Self::speed_plan`], rendered), no random augmentation:
    /// a probe of what a model makes of speed (the Fig. 3 figure of `svaclr reproduce`).
    pub fn speed_views(&self, i: usize, video_speeds: &[f64], audio_speeds: &[f64]) -> Result<AvSample, DataError> {
        let plan = self.speed_plan(i, video_speeds, audio_speeds)?;
        self.render(i, vec![plan])?.pop().ok_or(DataError::Index { index: i, len: self.len() })
    }

    /// The source audio from `start_sec`, `seconds` long (looping), at the file's rate.
    fn audio_window(&self, item: &ClipItem, start_sec: f64, seconds: f64) -> Result<AudioClip, DataError> {
        let cfg = self.config();
        match &item.audio {
            Some(wav) => audio::read_wav_window(wav, start_sec, seconds),
            None => match audio::decode_container_audio(&item.video) {
                Ok(audio::ContainerAudio { clip, .. }) => {
                    let rate = f64::from(clip.sample_rate);
                    let start = (start_sec.max(0.0) * rate).round() as usize;
                    let n = (seconds * rate).ceil() as usize + 1;
                    Ok(AudioClip {
                        samples: audio::loop_segment(&clip.samples, start, n),
                        sample_rate: clip.sample_rate,
                    })
                }
                Err(DataError::NoAudioStream { .. }) if cfg.allow_missing_audio => {
                    let rate = cfg.mel.sample_rate;
                    Ok(AudioClip {
                        samples: vec![0.0; (seconds * f64::from(rate)).ceil() as usize + 1],
                        sample_rate: rate,
                    })
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Log-mel of the audio view at `speed` from a window that starts at the clip's t0.
    fn audio_view(&self, window: &AudioClip, speed: f64) -> Result<Vec<f32>, DataError> {
        let cfg = self.config();
        let wave = audio::speed_audio_view(
            &window.samples,
            window.sample_rate,
            speed,
            cfg.audio_seconds,
            cfg.mel.sample_rate,
        )?;
        Ok(self.logmel().compute(&wave))
    }
}
