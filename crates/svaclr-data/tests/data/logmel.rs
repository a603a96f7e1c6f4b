//! log-mel parity with torchaudio (fixture written by scripts/reference/logmel_reference.py).

use std::path::PathBuf;

use svaclr_data::{LogMel, MelConfig};

/// Fixture folder: `SVACLR_REFERENCE_DIR`, else `<workspace>/tests/fixtures`.
fn fixture_dir() -> PathBuf {
    match std::env::var_os("SVACLR_REFERENCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures"),
    }
}

// The fixture comes from (scripts/reference/logmel_reference.py):
//   mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
//         f_min=0.0, f_max=8000.0, n_mels=40, power=2.0, center=True, pad_mode="reflect", mel_scale="htk",
//         norm=None, window_fn=torch.hann_window)(x)
//   logmel = torch.log(mel + 1e-6)
#[test]
fn logmel_matches_torchaudio() {
    let path = fixture_dir().join("logmel_torchaudio.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("fixture json");
    let p = &v["params"];
    assert_eq!(p["window"], "hann_periodic");
    assert_eq!(p["mel_scale"], "htk");
    assert!(p["norm"].is_null());
    let cfg = MelConfig {
        sample_rate: p["sample_rate"].as_u64().expect("sr") as u32,
        n_fft: p["n_fft"].as_u64().expect("n_fft") as usize,
        win_length: p["win_length"].as_u64().expect("win") as usize,
        hop_length: p["hop_length"].as_u64().expect("hop") as usize,
        n_mels: p["n_mels"].as_u64().expect("n_mels") as usize,
        f_min: p["f_min"].as_f64().expect("f_min"),
        f_max: p["f_max"].as_f64().expect("f_max"),
        log_eps: p["log_eps"].as_f64().expect("eps"),
    };
    let signal: Vec<f32> =
        v["signal"].as_array().expect("signal").iter().map(|x| x.as_f64().expect("num") as f32).collect();
    let want: Vec<Vec<f64>> = v["logmel"]
        .as_array()
        .expect("logmel")
        .iter()
        .map(|row| row.as_array().expect("row").iter().map(|x| x.as_f64().expect("num")).collect())
        .collect();
    let lm = LogMel::new(cfg.clone()).expect("logmel");
    let got = lm.compute(&signal);
    let frames = cfg.frames(signal.len());
    assert_eq!((want.len(), want[0].len()), (cfg.n_mels, frames));
    assert_eq!(got.len(), cfg.n_mels * frames);
    let mut max_err = 0.0f64;
    for (m, row) in want.iter().enumerate() {
        for (t, w) in row.iter().enumerate() {
            max_err = max_err.max((f64::from(got[m * frames + t]) - w).abs());
        }
    }
    eprintln!("log-mel max abs error vs torchaudio: {max_err:.3e}");
    assert!(max_err < 1e-4, "max abs error {max_err} vs torchaudio");
}

#[test]
fn logmel_frames_and_silence() {
    let cfg = MelConfig::default();
    let lm = LogMel::new(cfg.clone()).expect("logmel");
    let out = lm.compute(&vec![0.0; 24_000]);
    assert_eq!(out.len(), cfg.n_mels * 101);
    let floor = (cfg.log_eps as f32).ln();
    assert!(out.iter().all(|v| (v - floor).abs() < 1e-6));
    // A signal shorter than the reflect padding still works (padding repeats).
    assert_eq!(lm.compute(&[0.1, -0.2, 0.3]).len(), cfg.n_mels);
}
