"""The PyTorch side of the data-pipeline benchmark: the same work as svaclr-data's `train_sample`, done the way
GDT / AVID-CMA loaders do it (PyAV decode, torchaudio resampling and log-mel, torch tensor augmentation).

    cargo bench -p svaclr-data            # writes the files (target/bench-data/data_pipeline) and times Rust
    python3 scripts/bench/data_torch.py [DIR] [--seconds 20] [--loader]

One sample = clip start t0 and speeds tau_v, tau_a drawn from {1, 2, 3, 4}; two video views (30 frames at 30 fps,
stride 1 and tau_v) decoded with PyAV from one seek, scaled to a 128-pixel short side with FFmpeg's area filter
(as svaclr does), each randomly resized-cropped to 112, flipped, colour-jittered (p 0.8), greyed (p 0.2) and
normalised; two audio views (1 s and tau_a s from t0 of the 48 kHz wav, both resampled to 1 s at 24 kHz with
torchaudio's sinc resampler; wav read with the stdlib) turned into 40-band log-mel spectrograms (n_fft 1024, 20 ms / 10 ms). Single
thread (torch.set_num_threads(1), one FFmpeg decode thread), as the Rust `train_sample` bench. `--loader` also
times a torch DataLoader epoch (batch 8, 2 workers), the counterpart of the Rust `loader_2_workers` bench.
Prints clips/s.
"""
import argparse
import json
import math
import os
import random
import time
import wave

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

FRAMES, FPS, SHORT, CROP, AUDIO_S = 30, 30.0, 128, 112, 1.0
SPEEDS = [1, 2, 3, 4]
MEL = dict(sample_rate=24000, n_fft=1024, win_length=480, hop_length=240, f_min=0.0, f_max=12000.0, n_mels=40,
           power=2.0, center=True, pad_mode="reflect", mel_scale="htk", norm=None)
MEAN, STD = 0.45, 0.225
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def load_manifest(d):
    with open(os.path.join(d, "manifest.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def decode(path, times, short=SHORT):
    """Frames nearest to `times` (seconds), one seek to the keyframe before the first."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        tb = float(stream.time_base)
        origin = stream.start_time or 0
        t_min, t_max = min(times), max(times)
        if t_min > 0.5:
            container.seek(int(t_min / tb) + origin, stream=stream, backward=True)
        h, w = stream.codec_context.height, stream.codec_context.width
        oh, ow = (short, round(w * short / h)) if w >= h else (round(h * short / w), short)
        order = sorted(range(len(times)), key=lambda i: times[i])
        chosen, prev, p = [None] * len(times), None, 0
        for frame in container.decode(stream):
            t = (frame.pts - origin) * tb
            cur = (t, frame)
            while p < len(order) and times[order[p]] < t:
                tr = times[order[p]]
                chosen[order[p]] = prev if prev is not None and tr - prev[0] <= t - tr else cur
                p += 1
            prev = cur
            if p == len(order):
                break
        for i in order[p:]:
            chosen[i] = prev
        cache = {}
        out = []
        for t, fr in chosen:
            if id(fr) not in cache:
                cache[id(fr)] = fr.to_ndarray(width=ow, height=oh, format="rgb24", interpolation="AREA")
            out.append(cache[id(fr)])
        return torch.from_numpy(np.stack(out))  # [T, H, W, 3] uint8


def random_resized_crop_params(h, w, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    area = h * w
    for _ in range(10):
        target = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
    return 0, 0, h, w


def augment(frames):
    """GDT-style training augmentation of one view: [T, H, W, 3] uint8 -> [3, T, 112, 112] float."""
    x = frames.permute(0, 3, 1, 2).float() / 255.0
    i, j, h, w = random_resized_crop_params(x.shape[2], x.shape[3])
    x = F.interpolate(x[:, :, i:i + h, j:j + w], size=(CROP, CROP), mode="bilinear", align_corners=False)
    if random.random() < 0.5:
        x = x.flip(-1)
    if random.random() < 0.8:
        for op in random.sample(range(3), 3):
            f = random.uniform(0.6, 1.4)
            if op == 0:
                x = (x * f).clamp(0, 1)
            elif op == 1:
                m = (x * LUMA).sum(1, keepdim=True).mean(dim=(1, 2, 3), keepdim=True)
                x = (f * x + (1 - f) * m).clamp(0, 1)
            else:
                g = (x * LUMA).sum(1, keepdim=True)
                x = (f * x + (1 - f) * g).clamp(0, 1)
    if random.random() < 0.2:
        x = (x * LUMA).sum(1, keepdim=True).expand(-1, 3, -1, -1)
    x = (x - MEAN) / STD
    return x.permute(1, 0, 2, 3).contiguous()


MEL_T = torchaudio.transforms.MelSpectrogram(window_fn=torch.hann_window, **MEL)


def read_wav(path, t0, seconds):
    """`seconds` of a 16-bit PCM wav from `t0`, mono float (the stdlib reader: torchaudio 2.9's `load` needs
    torchcodec)."""
    with wave.open(path, "rb") as w:
        sr, ch = w.getframerate(), w.getnchannels()
        w.setpos(min(round(t0 * sr), w.getnframes()))
        raw = w.readframes(math.ceil(seconds * sr) + 1)
    x = torch.from_numpy(np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0)
    return x.view(-1, ch).mean(1), sr


def audio_views(wav, t0, speeds):
    x, sr = read_wav(wav, t0, max(speeds) * AUDIO_S)
    n_out = round(AUDIO_S * MEL["sample_rate"])
    out = []
    for s in speeds:
        n_in = round(s * AUDIO_S * sr)
        seg = x[:n_in]
        if seg.numel() < n_in:
            seg = F.pad(seg, (0, n_in - seg.numel()))
        y = torchaudio.functional.resample(seg, orig_freq=n_in, new_freq=n_out)
        out.append(torch.log(MEL_T(y[:n_out]) + 1e-6).unsqueeze(0))
    return out


def sample(entry, d):
    dur = entry["duration"]
    sv, sa = random.choice(SPEEDS), random.choice(SPEEDS)
    window = max(FRAMES * sv / FPS, sa * AUDIO_S)
    t0 = random.uniform(0, max(0.0, dur - window))
    times = [t0 + j * s / FPS for s in (1, sv) for j in range(FRAMES)]
    frames = decode(os.path.join(d, entry["video"]), times)
    video = [augment(frames[:FRAMES]), augment(frames[FRAMES:])]
    audio = audio_views(os.path.join(d, entry["audio"]), t0, [1, sa])
    return video, audio


class Clips(torch.utils.data.Dataset):
    def __init__(self, d):
        self.d, self.entries = d, load_manifest(d)

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, i):
        v, a = sample(self.entries[i], self.d)
        return torch.stack(v), torch.stack(a)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_dir = os.path.normpath(os.path.join(here, "..", "..", "target", "bench-data", "data_pipeline"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default=default_dir)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--loader", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    random.seed(0)
    entries = load_manifest(args.dir)
    for e in entries[:2]:  # warm-up
        sample(e, args.dir)
    n, t_start = 0, time.perf_counter()
    parts = {"decode": 0.0, "audio_views": 0.0, "augment": 0.0}
    while time.perf_counter() - t_start < args.seconds:
        e = entries[n % len(entries)]
        dur = e["duration"]
        sv, sa = random.choice(SPEEDS), random.choice(SPEEDS)
        window = max(FRAMES * sv / FPS, sa * AUDIO_S)
        t0 = random.uniform(0, max(0.0, dur - window))
        times = [t0 + j * s / FPS for s in (1, sv) for j in range(FRAMES)]
        a = time.perf_counter()
        frames = decode(os.path.join(args.dir, e["video"]), times)
        b = time.perf_counter()
        _ = [augment(frames[:FRAMES]), augment(frames[FRAMES:])]
        c = time.perf_counter()
        _ = audio_views(os.path.join(args.dir, e["audio"]), t0, [1, sa])
        d = time.perf_counter()
        parts["decode"] += b - a
        parts["augment"] += c - b
        parts["audio_views"] += d - c
        n += 1
    elapsed = time.perf_counter() - t_start
    print(f"torch train_sample: {n / elapsed:.2f} clips/s ({n} clips in {elapsed:.1f} s, 1 thread)")
    for k, v in parts.items():
        print(f"  {k}: {1000 * v / n:.2f} ms/clip")
    if args.loader:
        ds = Clips(args.dir)
        dl = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=True, drop_last=True,
                                         persistent_workers=True)
        for _ in dl:  # warm-up epoch (starts the workers)
            pass
        epochs, t1 = 0, time.perf_counter()
        while time.perf_counter() - t1 < args.seconds:
            for _ in dl:
                pass
            epochs += 1
        el = time.perf_counter() - t1
        print(f"torch DataLoader (batch 8, 2 workers): {epochs * len(ds) / el:.2f} clips/s")


if __name__ == "__main__":
    main()
