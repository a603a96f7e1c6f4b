"""PyTorch half of `cargo xtask bench pretrain`: SvaCLR pre-training steps on the CPU, same network and data shape.

    python pretrain_torch.py --spec BURN_JSON [--warmup N] [--steps N] [--threads 2] [--json PATH]

BURN_JSON is what the Rust bench (crates/svaclr-train/benches/pretrain.rs) wrote: batch size, views, the video and
audio input shapes, the model config (architecture, size preset, projector widths), the loss (kind, temperature),
the learning rate and the SGD settings. This script builds the same network from torchvision's blocks
(models_torch.py: the R(2+1)D-18 / R3D-18 video encoder and the 9-layer 2D ResNet audio encoder at the preset's
widths) plus the two projectors (Linear -> BatchNorm1d -> ReLU -> Linear), checks that it has the Rust side's
parameter count, and trains it the way `svaclr pretrain` does: every view of every clip through the encoders in one
batch (views stacked on the batch axis), the (Soft)InfoNCE of loss_torch.py over all views (SoftInfoNCE: identity
mapping, lambda over all four entries, detached if the config says so), SGD with momentum and no dampening, weight
decay off BatchNorm parameters and biases when the config says so. Inputs are synthetic: uniform noise in [-1, 1)
of the Rust side's shapes, two batches alternated.

Reports steady-state clips/s (batch size over the median time of the steps after the warm-up; also the mean-based
figure), the median step time, and the resident set size before the first step and its peak (VmRSS and VmHWM of
/proc/self/status), as the Rust side does.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from loss_torch import soft_info_nce
from models_torch import FULL_WIDTHS, encoder, n_params, scale


def status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return None


def projector(in_dim, hidden, out):
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out))


class AvModel(nn.Module):
    def __init__(self, model_cfg):
        super().__init__()
        preset = model_cfg["preset"]
        self.video = encoder(model_cfg["video_arch"], preset)
        self.audio = encoder("audio_resnet9", preset)
        dim = scale(FULL_WIDTHS[-1], preset)  # both encoders end at the last stage width
        self.proj_video = projector(dim, model_cfg["proj_hidden"], model_cfg["proj_dim"])
        self.proj_audio = projector(dim, model_cfg["proj_hidden"], model_cfg["proj_dim"])
        if model_cfg["affinity_map"] != "identity":
            raise SystemExit("pretrain_torch.py: only the identity affinity map is implemented")
        # svaclr's `video_input: temporal_residual`: each frame minus the clip's mean frame, before the stem.
        self.temporal_residual = model_cfg.get("video_input", "rgb") == "temporal_residual"

    def forward(self, video, audio):
        if self.temporal_residual:
            video = video - video.mean(2, keepdim=True)
        yv = self.video(video)
        ya = self.audio(audio)
        return yv, ya, self.proj_video(yv), self.proj_audio(ya)


def cross_affinity(ya, yv, tau, mode):
    """lambda [N, V, V] from [V, N, Dy] representations (identity mapping l)."""
    v = ya.shape[0]
    s = F.normalize(ya, dim=-1).permute(1, 0, 2) @ F.normalize(yv, dim=-1).permute(1, 2, 0) / tau  # [N, V, V]
    n = s.shape[0]
    if mode == "all":
        return float(v * v) * torch.softmax(s.reshape(n, v * v), -1).reshape(n, v, v)
    return float(v) * torch.softmax(s, -1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    spec = json.load(open(a.spec))
    torch.manual_seed(0)

    model = AvModel(spec["model"])
    params = n_params(model)
    if params != spec["params"]:
        raise SystemExit(f"pretrain_torch.py: {params} parameters, the Rust side {spec['params']}: "
                         "not the same network")
    decay = [q for q in model.parameters() if q.ndim > 1]
    no_decay = [q for q in model.parameters() if q.ndim <= 1]  # BatchNorm weight/bias and Linear biases
    wd = spec["weight_decay"]
    groups = [{"params": decay, "weight_decay": wd},
              {"params": no_decay, "weight_decay": 0.0 if spec["no_decay_on_norm_and_bias"] else wd}]
    optim = torch.optim.SGD(groups, lr=spec["lr"], momentum=spec["momentum"], dampening=0.0)

    views, batch = spec["views"], spec["batch_size"]
    g = torch.Generator().manual_seed(1)
    noise = lambda shape: torch.rand(*shape, generator=g) * 2.0 - 1.0
    batches = [([noise(spec["video_shape"]) for _ in range(views)], [noise(spec["audio_shape"]) for _ in range(views)])
               for _ in range(2)]
    clip = torch.arange(batch).repeat(views)
    same = clip[:, None] == clip[None, :]
    loss_cfg = spec["loss"]
    eta = loss_cfg["temperature"]

    def step(b):
        video, audio = batches[b]
        optim.zero_grad(set_to_none=True)
        yv, ya, zv, za = model(torch.cat(video, 0), torch.cat(audio, 0))
        split = lambda t: t.reshape(views, batch, t.shape[1])
        lam = None
        if loss_cfg["kind"] == "soft_info_nce":
            lam = cross_affinity(split(ya), split(yv), loss_cfg["lambda_temperature"], loss_cfg["lambda_mode"])
            if loss_cfg["detach_lambda"]:
                lam = lam.detach()
        loss = soft_info_nce(split(za), split(zv), same, eta, lam)
        loss.backward()
        optim.step()
        return loss.item()

    model.train()
    rss_before = status_mib("VmRSS:")
    step_ms, losses = [], []
    for s in range(a.warmup + a.steps):
        t = time.perf_counter()
        losses.append(step(s % 2))
        step_ms.append((time.perf_counter() - t) * 1e3)
    peak = status_mib("VmHWM:")
    steady = step_ms[a.warmup:]
    median = sorted(steady)[len(steady) // 2]
    clips_per_s = batch / (median / 1e3)  # of the median step, as the Rust side
    mean_clips_per_s = batch * len(steady) / (sum(steady) / 1e3)
    print(f"pytorch {torch.__version__}: batch {batch} x {views} views, {params} params: {clips_per_s:.1f} clips/s "
          f"(median step {median:.0f} ms over {len(steady)} steps after {a.warmup} warm-up), "
          f"RSS {rss_before:.0f} MiB before the first step, peak {peak:.0f} MiB")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"side": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "params": params, "warmup": a.warmup, "steps": len(steady), "step_ms": step_ms,
                       "median_step_ms": median, "clips_per_s": clips_per_s, "mean_clips_per_s": mean_clips_per_s,
                       "rss_before_mib": rss_before, "peak_rss_mib": peak, "losses": losses}, f, indent=1)


if __name__ == "__main__":
    main()
