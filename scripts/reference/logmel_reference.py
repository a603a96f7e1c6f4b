"""Reference log-mel spectrogram from torchaudio, for svaclr-data's audio front-end parity test.

    python3 scripts/reference/logmel_reference.py OUT_DIR [--seed S]

Writes OUT_DIR/logmel_torchaudio.json: the parameters, the input signal and torchaudio's log-mel [n_mels, frames].
The Rust test `logmel_matches_torchaudio` (crates/svaclr-data/tests/data/logmel.rs) reads it from the folder named
by SVACLR_REFERENCE_DIR (default: tests/fixtures) and must match every bin within 1e-4 (absolute, log scale).
Seed 7 (the default) reproduces tests/fixtures/logmel_torchaudio.json; other seeds draw other chirp and tone
frequencies, to check the Rust side against signals it was not developed on:

    python3 scripts/reference/logmel_reference.py /tmp/lm --seed 11
    SVACLR_REFERENCE_DIR=/tmp/lm cargo test -p svaclr-data --test data logmel

Needs torch and torchaudio 2.9 (`cargo xtask setup` installs them into the reference venv).
"""
import argparse
import json
import math
import os

import torch
import torchaudio


def signal(seed: int, sr: int, dur: float) -> torch.Tensor:
    """A chirp, a tone burst between 0.2 s and 0.3 s, and a little noise; float32."""
    t = torch.arange(int(sr * dur), dtype=torch.float64) / sr
    g = torch.Generator().manual_seed(seed)
    if seed == 7:
        f0, f1, tone = 200.0, 3000.0, 440.0
    else:
        r = torch.rand(3, generator=g, dtype=torch.float64)
        f0, f1, tone = (float(x) for x in r * torch.tensor([400.0, 4000.0, 1500.0]) + torch.tensor([100.0, 1000.0, 200.0]))
    chirp = torch.sin(2 * math.pi * (f0 * t + (f1 - f0) / (2 * dur) * t * t))
    burst = torch.sin(2 * math.pi * tone * t) * ((t > 0.2) & (t < 0.3))
    noise = torch.randn(t.shape, generator=g, dtype=torch.float64)
    return (0.5 * chirp + 0.3 * burst + 0.01 * noise).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    sr, dur, eps = 16000, 0.5, 1e-6
    x = signal(args.seed, sr, dur)
    params = dict(sample_rate=sr, n_fft=512, win_length=400, hop_length=160, f_min=0.0, f_max=8000.0,
                  n_mels=40, power=2.0, center=True, pad_mode="reflect", mel_scale="htk", norm=None)
    mel = torchaudio.transforms.MelSpectrogram(window_fn=torch.hann_window, **params)(x)
    logmel = torch.log(mel + eps)
    fixture = {"params": {**params, "window": "hann_periodic", "log_eps": eps},
               "signal": x.tolist(), "logmel": logmel.tolist(), "shape": list(logmel.shape)}
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "logmel_torchaudio.json"), "w") as f:
        json.dump(fixture, f)
    print("logmel", list(logmel.shape), float(logmel.mean()))


if __name__ == "__main__":
    main()
