//! The audio front end: log-mel spectrogram, computed on the host with realfft and our own mel filterbank.
//!
//! Matches `torchaudio.transforms.MelSpectrogram(window_fn=torch.hann_window, center=True, pad_mode="reflect",
//! power=2.0, mel_scale="htk", norm=None)` followed by `log(x + log_eps)` (checked against
//! `tests/fixtures/logmel_torchaudio.json` to 1e-4): periodic Hann window of `win_length` zero-padded to
//! `n_fft` (centred, as `torch.stft` does), frames every `hop_length` samples after reflect-padding `n_fft / 2`
//! on both sides, power spectrum, triangular HTK-mel filters without area normalisation. Arithmetic is f64.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Log-mel parameters (the defaults follow GDT's audio front end: 24 kHz, 20 ms windows, 10 ms hop, 40 bands).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MelConfig {
    /// Sample rate the clip is resampled to before the transform.
    pub sample_rate: u32,
    /// FFT size (any size; realfft is not limited to powers of two).
    pub n_fft: usize,
    /// Hann window length, at most `n_fft`.
    pub win_length: usize,
    /// Samples between frames.
    pub hop_length: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest filter edge in Hz.
    pub f_min: f64,
    /// Highest filter edge in Hz, at most `sample_rate / 2`.
    pub f_max: f64,
    /// Added before the logarithm.
    pub log_eps: f64,
}

impl Default for MelConfig {
    fn default() -> Self {
        Self {
            sample_rate: 24_000,
            n_fft: 1024,
            win_length: 480,
            hop_length: 240,
            n_mels: 40,
            f_min: 0.0,
            f_max: 12_000.0,
            log_eps: 1e-6,
        }
    }
}

impl MelConfig {
    /// Check the parameters; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |m: String| Err(DataError::Config(format!("mel: {m}")));
        if self.sample_rate == 0 {
            return bad("sample_rate must be > 0".into());
        }
        if self.n_fft < 2 {
            return bad(format!("n_fft must be >= 2, got {}", self.n_fft));
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return bad(format!("win_length must be in 1..=n_fft ({}), got {}", self.n_fft, self.win_length));
        }
        if self.hop_length == 0 {
            return bad("hop_length must be > 0".into());
        }
        if self.n_mels == 0 {
            return bad("n_mels must be > 0".into());
        }
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if !(self.f_min >= 0.0 && self.f_min < self.f_max && self.f_max <= nyquist) {
            return bad(format!(
                "need 0 <= f_min < f_max <= sample_rate/2 ({nyquist}), got {} and {}",
                self.f_min, self.f_max
            ));
        }
        if !(self.log_eps > 0.0 && self.log_eps.is_finite()) {
            return bad(format!("log_eps must be > 0, got {}", self.log_eps));
        }
        Ok(())
    }

    /// Frequency bins of the one-sided spectrum.
    pub fn n_freqs(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Spectrogram frames for a signal of `n_samples` (centre padding): `n_samples / hop_length + 1`.
    pub fn frames(&self, n_samples: usize) -> usize {
        n_samples / self.hop_length + 1
    }
}

/// HTK mel scale: `2595 * log10(1 + f / 700)`.
pub fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

/// Inverse of [`hz_to_mel`].
pub fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// The triangular filterbank as `[n_freqs][n_mels]` (torchaudio's `melscale_fbanks` with `norm=None`,
/// `mel_scale="htk"`).
pub fn mel_filterbank(cfg: &MelConfig) -> Vec<Vec<f64>> {
    let n_freqs = cfg.n_freqs();
    let nyquist = f64::from(cfg.sample_rate) / 2.0;
    let all_freqs: Vec<f64> =
        (0..n_freqs).map(|i| if n_freqs > 1 { nyquist * i as f64 / (n_freqs - 1) as f64 } else { 0.0 }).collect();
    let (m_min, m_max) = (hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max));
    let n_pts = cfg.n_mels + 2;
    let f_pts: Vec<f64> =
        (0..n_pts).map(|i| mel_to_hz(m_min + (m_max - m_min) * i as f64 / (n_pts - 1) as f64)).collect();
    let f_diff: Vec<f64> = f_pts.windows(2).map(|w| w[1] - w[0]).collect();
    all_freqs
        .iter()
        .map(|&f| {
            (0..cfg.n_mels)
                .map(|m| {
                    let down = (f - f_pts[m]) / f_diff[m];
                    let up = (f_pts[m + 2] - f) / f_diff[m + 1];
                    down.min(up).max(0.0)
                })
                .collect()
        })
        .collect()
}

/// One mel band as a contiguous run of non-zero weights.
#[derive(Clone, Debug)]
struct Band {
    start: usize,
    weights: Vec<f64>,
}

/// A prepared log-mel transform (FFT plan, window, filterbank). Cheap to share between threads.
#[derive(Clone)]
pub struct LogMel {
    cfg: MelConfig,
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    bands: Vec<Band>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Index into `0..n` for position `i` of the reflect-padded signal (`torch.nn.functional.pad(mode="reflect")`,
/// applied repeatedly when the pad exceeds the signal).
fn reflect_index(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let mut k = i.rem_euclid(period);
    if k >= n as isize {
        k = period - k;
    }
    k as usize
}

impl LogMel {
    /// Validate the config and prepare the transform.
    pub fn new(cfg: MelConfig) -> Result<Self, DataError> {
        cfg.validate()?;
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(cfg.n_fft);
        let mut window = vec![0.0; cfg.n_fft];
        let left = (cfg.n_fft - cfg.win_length) / 2;
        for i in 0..cfg.win_length {
            // Periodic Hann: 0.5 - 0.5 cos(2 pi i / N).
            window[left + i] = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / cfg.win_length as f64).cos();
        }
        let fb = mel_filterbank(&cfg);
        let bands = (0..cfg.n_mels)
            .map(|m| {
                let nz: Vec<usize> = (0..fb.len()).filter(|&k| fb[k][m] > 0.0).collect();
                match (nz.first(), nz.last()) {
                    (Some(&a), Some(&b)) => Band { start: a, weights: (a..=b).map(|k| fb[k][m]).collect() },
                    _ => Band { start: 0, weights: Vec::new() },
                }
            })
            .collect();
        Ok(Self { cfg, fft, window, bands })
    }

    /// The config this transform was built from.
    pub fn config(&self) -> &MelConfig {
        &self.cfg
    }

    /// Log-mel spectrogram of a mono signal.
    ///
    /// # Shapes
    /// `signal: [n_samples]` -> `[n_mels, n_samples / hop_length + 1]`, row-major (mel band major).
    pub fn compute(&self, signal: &[f32]) -> Vec<f32> {
        let cfg = &self.cfg;
        let n = signal.len();
        let frames = cfg.frames(n);
        let n_freqs = cfg.n_freqs();
        let pad = (cfg.n_fft / 2) as isize;
        let mut out = vec![0.0f32; cfg.n_mels * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f64; n_freqs];
        for t in 0..frames {
            let origin = (t * cfg.hop_length) as isize - pad;
            for (k, x) in input.iter_mut().enumerate() {
                let w = self.window[k];
                *x =
                    if w == 0.0 || n == 0 { 0.0 } else { f64::from(signal[reflect_index(origin + k as isize, n)]) * w };
            }
            // Length mismatches cannot happen: the buffers come from the plan itself.
            if self.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch).is_err() {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            for (m, band) in self.bands.iter().enumerate() {
                let e: f64 = band.weights.iter().zip(&power[band.start..]).map(|(w, p)| w * p).sum();
                out[m * frames + t] = (e + cfg.log_eps).ln() as f32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_torch() {
        // torch reflect pad of [0,1,2,3] by 2: [2,1,0,1,2,3,2,1]
        let idx: Vec<usize> = (-2..6).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(idx, vec![2, 1, 0, 1, 2, 3, 2, 1]);
    }

    #[test]
    fn mel_roundtrip_and_filter_peaks() {
        for f in [0.0, 440.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-9);
        }
        let cfg = MelConfig {
            sample_rate: 16_000,
            n_fft: 512,
            win_length: 400,
            hop_length: 160,
            n_mels: 40,
            f_min: 0.0,
            f_max: 8000.0,
            log_eps: 1e-6,
        };
        let fb = mel_filterbank(&cfg);
        assert_eq!((fb.len(), fb[0].len()), (257, 40));
        assert!(fb.iter().flatten().all(|w| (0.0..=1.0).contains(w)));
    }

    #[test]
    fn validate_rejects_bad_params() {
        let ok = MelConfig::default();
        assert!(ok.validate().is_ok());
        assert!(MelConfig { win_length: 2000, ..ok.clone() }.validate().is_err());
        assert!(MelConfig { f_max: 20_000.0, ..ok.clone() }.validate().is_err());
        assert!(MelConfig { hop_length: 0, ..ok }.validate().is_err());
    }
}
