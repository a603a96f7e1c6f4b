//! Forward and forward+backward timings of the encoders on burn-flex (the Rust half of `cargo xtask bench-models`).
//!
//!     cargo bench -p svaclr-models --bench models -- [--case ARCH:PRESET:B,C,...]... [--iters N] [--json PATH]
//!         [--device flex|tch-cpu]
//!
//! ARCH is r2plus1d_18, r3d_18 or audio_resnet9 (the encoders, without fc); PRESET full, small or tiny. "fwd" is an
//! inference pass (BatchNorm on running statistics, no autodiff); "fwd_bwd" is a training pass (batch statistics)
//! plus the backward of the features' sum. Each reports the median of N timed iterations after one warm-up.
//! Thread count: the rayon pool (set RAYON_NUM_THREADS); LibTorch's pool (set OMP_NUM_THREADS). `--device tch-cpu`
//! (burn's LibTorch backend on the CPU) needs `--features tch`.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use svaclr_models::{AudioEncoderConfig, SizePreset, TorchvisionArch, VideoEncoderConfig, count_parameters};

const DEFAULT_CASES: [&str; 4] = [
    "r2plus1d_18:tiny:2,3,8,64,64",
    "r2plus1d_18:full:2,3,8,64,64",
    "audio_resnet9:tiny:8,1,40,100",
    "audio_resnet9:full:8,1,40,100",
];
const DEFAULT_ITERS: usize = 5;

struct Case {
    arch: TorchvisionArch,
    preset: SizePreset,
    shape: Vec<usize>,
}

fn parse_case(s: &str) -> Result<Case, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [arch, preset, shape] = parts[..] else {
        return Err(format!("case '{s}': expected ARCH:PRESET:SHAPE"));
    };
    let arch: TorchvisionArch = arch.parse().map_err(|e| format!("case '{s}': {e}"))?;
    let preset: SizePreset = preset.parse().map_err(|e| format!("case '{s}': {e}"))?;
    let shape = shape
        .split(',')
        .map(|d| d.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("case '{s}': {e}"))?;
    let (rank, channels) = arch.input_rank_and_channels();
    if shape.len() != rank || shape[1] != channels {
        return Err(format!("case '{s}': {arch} takes rank {rank} with {channels} channels"));
    }
    Ok(Case { arch, preset, shape })
}

fn median_ms(mut f: impl FnMut(), iters: usize) -> f64 {
    f(); // warm-up
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// The device named by `--device`.
#[allow(deprecated)] // Device::libtorch() is marked deprecated upstream but supported.
fn device(name: &str) -> Result<Device, String> {
    match name {
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "tch")]
        "tch-cpu" => Ok(Device::libtorch()),
        #[cfg(not(feature = "tch"))]
        "tch-cpu" => Err("--device tch-cpu needs `--features tch`".into()),
        other => Err(format!("unknown --device '{other}' (flex, tch-cpu)")),
    }
}

/// Features of the case's encoder: returns (params, fwd_ms, fwd_bwd_ms).
fn bench(case: &Case, iters: usize, plain: Device) -> (usize, f64, f64) {
    let train = plain.clone().autodiff();
    plain.seed(0);
    macro_rules! time {
        ($enc:expr, $D:literal) => {{
            let params = count_parameters(&$enc(&plain));
            let shape: [usize; $D] = case.shape.clone().try_into().unwrap_or([1; $D]);
            let eval = $enc(&plain);
            let x = Tensor::<$D>::random(shape, Distribution::Normal(0.0, 1.0), &plain);
            let fwd = median_ms(
                || {
                    let _ = eval.forward(x.clone()).into_data();
                },
                iters,
            );
            let trainable = $enc(&train);
            let xt = Tensor::<$D>::random(shape, Distribution::Normal(0.0, 1.0), &train);
            let fwd_bwd = median_ms(
                || {
                    let _ = trainable.forward(xt.clone()).sum().backward();
                },
                iters,
            );
            (params, fwd, fwd_bwd)
        }};
    }
    match case.arch.video_arch() {
        Some(arch) => time!(|d: &Device| VideoEncoderConfig::new(arch, case.preset).init(d), 5),
        None => time!(|d: &Device| AudioEncoderConfig::new(case.preset).init(d), 4),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cases = Vec::new();
    let mut iters = DEFAULT_ITERS;
    let mut json_path = None;
    let mut device_name = "flex".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--case" => cases.push(it.next().cloned().unwrap_or_default()),
            "--iters" => iters = it.next().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_ITERS).max(1),
            "--json" => json_path = it.next().cloned(),
            "--device" => device_name = it.next().cloned().unwrap_or_default(),
            _ => {} // cargo passes --bench; filters are not supported
        }
    }
    if cases.is_empty() {
        cases = DEFAULT_CASES.iter().map(|s| s.to_string()).collect();
    }
    let dev = match device(&device_name) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let mut rows = Vec::new();
    for spec in &cases {
        let case = match parse_case(spec) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
        let (params, fwd, fwd_bwd) = bench(&case, iters, dev.clone());
        println!("{device_name:<8} {spec:<36} params {params:>10}  fwd {fwd:>10.2} ms  fwd+bwd {fwd_bwd:>10.2} ms");
        rows.push(format!(
            "{{\"case\":\"{spec}\",\"device\":\"{device_name}\",\"params\":{params},\"fwd_ms\":{fwd:.4},\"fwd_bwd_ms\":{fwd_bwd:.4},\"iters\":{iters},\"threads\":{}}}",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(
                std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX)
            )
        ));
    }
    if let Some(p) = json_path
        && let Err(e) = std::fs::write(&p, format!("[{}]\n", rows.join(",")))
    {
        eprintln!("error: {p}: cannot write: {e}");
        std::process::exit(1);
    }
}
