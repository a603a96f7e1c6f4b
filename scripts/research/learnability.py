"""Can the CPU preset's video encoder learn SynthAV within a CPU budget? A PyTorch replica, for research.

    python learnability.py --root data/synthav --mode contrastive [--steps 300] [--lr 0.05] [--input residual]
    python learnability.py --root data/synthav --mode supervised-family [--steps 400] [--arch plain3d]

Run it with the torch venv of `cargo xtask setup --torch` (torch, torchaudio and PyAV). It is what the
"Learnability" section of docs/synthav.md measured: not a parity script and not part of any test.

- Data: decodes a SynthAV folder once (PyAV, wav) into a cache of uint8 frames and float samples (CACHE, default
  ROOT/.learnability-cache; about 1.4 GB for the default preset). Views as `svaclr pretrain` makes them, simplified:
  T frames at 16 fps from a random start (stride = speed; looping), short side resized, a random square crop of
  `crop_scale` of the area (no aspect jitter), flip, brightness/contrast jitter, normalised; audio D seconds
  (speed * D read and resampled to D with torchaudio), log-mel of the CPU preset (40 mels, 512-point FFT, hop 160).
- Input: `rgb` or `residual` (each frame minus the clip's mean frame: svaclr's `video_input: temporal_residual`).
- Models: scripts/bench/models_torch.py's encoders at a size preset (tiny by default), or `plain3d` (six 3x3x3
  conv-BN-ReLU layers) for the supervised check; projectors Linear -> BN -> ReLU -> Linear.
- `contrastive`: SvaCLR's cross-modal InfoNCE over both views (loss_torch.py), SGD with momentum 0.9, linear warm-up
  over the first 10 % of the steps then cosine decay to 10 %. Before and after: a linear probe (L-BFGS logistic
  regression on standardised features, train = downstream_train, test = downstream_test) of the video and audio
  representations on the 12 classes and of the video representation on the 4 families.
- `supervised-family`: the video encoder and a linear head learn the motion family of the 2000 pre-training clips,
  whose manifest hides labels; the family is read off the audio (the hum's pitch: 220/440/880/1760 Hz, checked
  against the labelled test split). Reports the family accuracy on downstream_test.
"""
import argparse
import json
import os
import sys
import time
import wave

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchaudio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from loss_torch import soft_info_nce  # noqa: E402
from models_torch import FULL_WIDTHS, encoder, scale  # noqa: E402
from pretrain_torch import projector  # noqa: E402

FPS = 16
SAMPLE_RATE = 16000
FAMILIES = 4


def load_split(root, name, cache):
    """(video uint8 [N, F, H, W, 3], audio float32 [N, S], label int [N], -1 when hidden) of one manifest."""
    path = os.path.join(cache, f"{name}.npz")
    if os.path.exists(path):
        d = np.load(path)
        return d["video"], d["audio"], d["label"]
    import av

    videos, audios, labels = [], [], []
    for line in open(os.path.join(root, f"{name}.jsonl")):
        e = json.loads(line)
        with av.open(os.path.join(root, e["video"])) as c:
            videos.append(np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]))
        with wave.open(os.path.join(root, e["audio"])) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
            audios.append(pcm.astype(np.float32) / 32768.0)
        labels.append(-1 if e["label"] is None else e["label"])
    frames, samples = min(len(v) for v in videos), min(len(a) for a in audios)
    video = np.stack([v[:frames] for v in videos])
    audio = np.stack([a[:samples] for a in audios])
    label = np.array(labels)
    os.makedirs(cache, exist_ok=True)
    np.savez(path, video=video, audio=audio, label=label)
    return video, audio, label


class Views:
    """Training and evaluation views of one split."""

    def __init__(self, args, video, audio):
        self.a = args
        self.video, self.audio = torch.from_numpy(video), torch.from_numpy(audio)
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=512, win_length=400, hop_length=160,
                                                        n_mels=40, f_min=0.0, f_max=8000.0, power=2.0)

    def clip(self, i, t0, speed, train):
        a = self.a
        idx = (t0 + speed * torch.arange(a.frames)) % self.video.shape[1]
        x = self.video[i, idx].float().div(255).permute(3, 0, 1, 2)  # [3, T, H, W]
        side = a.short_side
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        if train:
            w = max(4, int(round(side * np.sqrt(np.random.uniform(*a.crop_scale)))))
            y0, x0 = np.random.randint(0, side - w + 1), np.random.randint(0, side - w + 1)
            x = x[:, :, y0:y0 + w, x0:x0 + w]
            if np.random.rand() < 0.5:
                x = x.flip(-1)
            if np.random.rand() < 0.8:
                x = (x * np.random.uniform(0.6, 1.4) + np.random.uniform(-0.2, 0.2)).clamp(0, 1)
        else:
            o = (side - a.crop) // 2
            x = x[:, :, o:o + a.crop, o:o + a.crop]
        x = F.interpolate(x, size=(a.crop, a.crop), mode="bilinear", align_corners=False)
        x = (x - 0.45) / 0.225
        if a.input == "residual":
            x = x - x.mean(1, keepdim=True)
        n = int(round(a.audio_seconds * SAMPLE_RATE))
        start = int(round(t0 / FPS * SAMPLE_RATE))
        source = self.audio[i]
        wave_ = source[(start + torch.arange(int(round(speed * n)))) % source.shape[0]]
        if speed != 1:
            wave_ = torchaudio.functional.resample(wave_, int(speed * 1000), 1000)[:n]
        return x, torch.log(self.mel(wave_) + 1e-6).unsqueeze(0)

    def batch(self, ids, speeds, train=True):
        """Per view (original, then speed-augmented when `speeds`): video [B, 3, T, H, W], audio [B, 1, M, S]."""
        views = 2 if speeds else 1
        video, audio = [[] for _ in range(views)], [[] for _ in range(views)]
        for i in ids:
            t0 = np.random.randint(0, self.video.shape[1])
            x, m = self.clip(i, t0, 1, train)
            video[0].append(x)
            audio[0].append(m)
            if views == 2:
                video[1].append(self.clip(i, t0, int(np.random.choice(speeds)), train)[0])
                audio[1].append(self.clip(i, t0, int(np.random.choice(speeds)), train)[1])
        return [torch.stack(v) for v in video], [torch.stack(m) for m in audio]


def plain3d(out_dim):
    def block(c_in, c_out, stride):
        return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(c_out),
                             nn.ReLU())

    return nn.Sequential(block(3, 32, (1, 2, 2)), block(32, 32, 1), block(32, 64, 2), block(64, 64, 1),
                         block(64, 128, 2), block(128, out_dim, 1), nn.AdaptiveAvgPool3d(1), nn.Flatten())


def probe(train_x, train_y, test_x, test_y, classes):
    """Top-1 (%) of an L2-regularised logistic regression on standardised features."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mu) / sd, (test_x - mu) / sd
    head = nn.Linear(train_x.shape[1], classes)
    opt = torch.optim.LBFGS(head.parameters(), max_iter=200, line_search_fn="strong_wolfe")
    target = torch.from_numpy(train_y).long()

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(head(train_x), target) + 1e-3 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((head(test_x).argmax(1).numpy() == test_y).mean() * 100)


def features(video_enc, audio_enc, views, n):
    video_enc.eval()
    audio_enc.eval()
    fv, fa = [], []
    with torch.no_grad():
        for s in range(0, n, 64):
            np.random.seed(123 + s)
            v, a = views.batch(list(range(s, min(n, s + 64))), None, train=False)
            fv.append(video_enc(v[0]))
            fa.append(audio_enc(a[0]))
    video_enc.train()
    audio_enc.train()
    return torch.cat(fv), torch.cat(fa)


def family_from_pitch(audio):
    """Family index from the clip's dominant frequency on the 220 Hz octave ladder."""
    spectrum = np.abs(np.fft.rfft(audio, axis=1))
    freqs = np.fft.rfftfreq(audio.shape[1], 1.0 / SAMPLE_RATE)
    spectrum[:, freqs < 150] = 0
    peak = freqs[spectrum.argmax(1)]
    return np.clip(np.round(np.log2(peak / 220.0)), 0, FAMILIES - 1).astype(int)


def cosine_lr(base, step, steps):
    warm = min(1.0, step / max(1, steps // 10))
    return base * warm * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / steps)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="a SynthAV folder (svaclr synth --out ROOT)")
    p.add_argument("--cache", default=None)
    p.add_argument("--mode", choices=["contrastive", "supervised-family"], default="contrastive")
    p.add_argument("--input", choices=["rgb", "residual"], default="residual")
    p.add_argument("--arch", default="r2plus1d_18", help="r2plus1d_18, r3d_18 or plain3d (supervised only)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--wd", type=float, default=1e-4)
    p.add_argument("--eta", type=float, default=0.2, help="InfoNCE temperature")
    p.add_argument("--speeds", default="1,4", help="speed set lo,hi; empty for one view")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--short-side", dest="short_side", type=int, default=40)
    p.add_argument("--crop", type=int, default=32)
    p.add_argument("--crop-scale", dest="crop_scale", default="0.4,1.0")
    p.add_argument("--audio-seconds", dest="audio_seconds", type=float, default=0.5)
    p.add_argument("--proj", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    a.crop_scale = tuple(float(x) for x in a.crop_scale.split(","))
    cache = a.cache or os.path.join(a.root, ".learnability-cache")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)

    pre_v, pre_a, _ = load_split(a.root, "pretrain", cache)
    tr_v, tr_a, tr_y = load_split(a.root, "downstream_train", cache)
    te_v, te_a, te_y = load_split(a.root, "downstream_test", cache)
    classes = int(max(tr_y.max(), te_y.max()) + 1)
    per_family = classes // FAMILIES
    pre, train, test = Views(a, pre_v, pre_a), Views(a, tr_v, tr_a), Views(a, te_v, te_a)
    dim = scale(FULL_WIDTHS[-1], a.preset)
    video_enc = plain3d(dim) if a.arch == "plain3d" else encoder(a.arch, a.preset)
    t0 = time.time()

    if a.mode == "supervised-family":
        labels = family_from_pitch(pre_a)
        agreement = float((family_from_pitch(te_a) == te_y // per_family).mean())
        print(f"family read off the pitch: agrees with the test split's labels on {agreement:.1%}", flush=True)
        model = nn.Sequential(video_enc, nn.Linear(dim, FAMILIES))
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
        target = torch.from_numpy(labels)
        for step in range(1, a.steps + 1):
            ids = np.random.randint(0, len(labels), a.batch)
            video, _ = pre.batch(ids, None)
            for g in opt.param_groups:
                g["lr"] = cosine_lr(a.lr, step, a.steps)
            loss = F.cross_entropy(model(video[0]), target[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 25 == 0 or step == a.steps:
                model.eval()
                with torch.no_grad():
                    np.random.seed(5)
                    v, _ = test.batch(list(range(len(te_y))), None, train=False)
                    acc = float((model(v[0]).argmax(1).numpy() == te_y // per_family).mean() * 100)
                model.train()
                np.random.seed(a.seed + step)
                print(f"step {step} loss {loss.item():.3f} test family top-1 {acc:.1f} % ({time.time() - t0:.0f} s)",
                      flush=True)
        print("RESULT", json.dumps(dict(args=vars(a), family_top1=acc, seconds=time.time() - t0)))
        return

    audio_enc = encoder("audio_resnet9", a.preset)
    proj_v, proj_a = projector(dim, a.proj, a.proj), projector(dim, a.proj, a.proj)
    modules = nn.ModuleList([video_enc, audio_enc, proj_v, proj_a])

    def evaluate(tag):
        fv, fa = features(video_enc, audio_enc, train, len(tr_y))
        gv, ga = features(video_enc, audio_enc, test, len(te_y))
        r = dict(video=probe(fv, tr_y, gv, te_y, classes), audio=probe(fa, tr_y, ga, te_y, classes),
                 video_family=probe(fv, tr_y // per_family, gv, te_y // per_family, FAMILIES))
        print(f"[{tag}] linear probe: video {r['video']:.1f} %, audio {r['audio']:.1f} %, "
              f"video family {r['video_family']:.1f} %", flush=True)
        return r

    before = evaluate("initial")
    decay = [q for q in modules.parameters() if q.ndim > 1]
    no_decay = [q for q in modules.parameters() if q.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=0.9)
    speeds = None
    if a.speeds:
        lo, hi = (int(s) for s in a.speeds.split(","))
        speeds = list(range(lo, hi + 1)) if hi > lo else None
    views = 2 if speeds else 1
    clip = torch.arange(a.batch).repeat(views)
    same = clip[:, None] == clip[None, :]
    order, pos = np.random.permutation(len(pre_a)), 0
    for step in range(1, a.steps + 1):
        if pos + a.batch > len(order):
            order, pos = np.random.permutation(len(pre_a)), 0
        ids = order[pos:pos + a.batch]
        pos += a.batch
        for g in opt.param_groups:
            g["lr"] = cosine_lr(a.lr, step, a.steps)
        video, audio = pre.batch(ids, speeds)
        zv = proj_v(video_enc(torch.cat(video)))
        za = proj_a(audio_enc(torch.cat(audio)))
        split = lambda t: t.reshape(views, a.batch, -1)  # noqa: E731
        loss = soft_info_nce(split(za), split(zv), same, a.eta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == 1:
            with torch.no_grad():
                sims = F.normalize(za[:a.batch], dim=-1) @ F.normalize(zv[:a.batch], dim=-1).T
                top1 = float((sims.argmax(1) == torch.arange(a.batch)).float().mean())
            print(f"step {step} loss {loss.item():.4f} a->v top-1 {top1:.3f} "
                  f"({a.batch * step / (time.time() - t0):.1f} clips/s)", flush=True)
    after = evaluate("final")
    print("RESULT", json.dumps(dict(args=vars(a), initial=before, final=after, seconds=time.time() - t0)))


if __name__ == "__main__":
    main()
