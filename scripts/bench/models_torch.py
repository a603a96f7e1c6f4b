"""PyTorch half of `cargo xtask bench-models`: encoder forward and forward+backward times on the CPU.

    python models_torch.py [--case ARCH:PRESET:B,C,...]... [--iters N] [--threads 2] [--json PATH]

The encoders are built from torchvision's own blocks (video BasicBlock with Conv2Plus1D / Conv3DSimple, 2D
BasicBlock) with the widths of svaclr's presets (full = torchvision's; small = /2; tiny = /8, stem 45 scaled the same
way), without fc; at full width the parameter counts are asserted equal to torchvision's. "fwd" runs eval mode
under no_grad; "fwd_bwd" runs train mode (batch statistics) and back-propagates the features' sum, as the Rust side
does. Each reports the median of N timed iterations after one warm-up.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
from torchvision.models import resnet as tv2d
from torchvision.models.video import r2plus1d_18, r3d_18
from torchvision.models.video import resnet as tvv

DIVISOR = {"full": 1, "small": 2, "tiny": 8}
FULL_WIDTHS = [64, 128, 256, 512]
STEM_MID = 45
STRIDES = [1, 2, 2, 2]


def scale(c, preset):
    d = DIVISOR[preset]
    return max((c + d // 2) // d, 1)


def video_encoder(arch, preset):
    w = [scale(c, preset) for c in FULL_WIDTHS]
    if arch == "r2plus1d_18":
        mid = scale(STEM_MID, preset)
        stem = nn.Sequential(
            nn.Conv3d(3, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, w[0], (3, 1, 1), 1, (1, 0, 0), bias=False), nn.BatchNorm3d(w[0]), nn.ReLU(inplace=True))
        builder = tvv.Conv2Plus1D
    else:
        stem = nn.Sequential(nn.Conv3d(3, w[0], (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(w[0]),
                             nn.ReLU(inplace=True))
        builder = tvv.Conv3DSimple
    layers, inplanes = [], w[0]
    for planes, stride in zip(w, STRIDES):
        for b in range(2):
            s = stride if b == 0 else 1
            down = None
            if s != 1 or inplanes != planes:
                down = nn.Sequential(nn.Conv3d(inplanes, planes, 1, stride=builder.get_downsample_stride(s), bias=False),
                                     nn.BatchNorm3d(planes))
            layers.append(tvv.BasicBlock(inplanes, planes, builder, s, down))
            inplanes = planes
    return nn.Sequential(stem, *layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())


def audio_encoder(preset):
    w = [scale(c, preset) for c in FULL_WIDTHS]
    layers, inplanes = [], w[0]
    for planes, stride in zip(w, STRIDES):
        down = None
        if stride != 1 or inplanes != planes:
            down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers.append(tv2d.BasicBlock(inplanes, planes, stride, down))
        inplanes = planes
    return nn.Sequential(nn.Conv2d(1, w[0], 7, 2, 3, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1), *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def encoder(arch, preset):
    return audio_encoder(preset) if arch == "audio_resnet9" else video_encoder(arch, preset)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def self_check():
    """Our builders at full width have torchvision's parameter counts (fc excluded)."""
    for arch, ref in (("r2plus1d_18", r2plus1d_18()), ("r3d_18", r3d_18())):
        assert n_params(encoder(arch, "full")) == n_params(ref) - n_params(ref.fc), arch
    assert n_params(encoder("audio_resnet9", "full")) == 4_899_520


def median_ms(fn, iters):
    fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def bench(spec, iters):
    arch, preset, shape = spec.split(":")
    shape = [int(s) for s in shape.split(",")]
    torch.manual_seed(0)
    model = encoder(arch, preset)
    x = torch.randn(*shape)

    def fwd():
        with torch.no_grad():
            model(x)

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    model.eval()
    t_fwd = median_ms(fwd, iters)
    model.train()
    t_fwd_bwd = median_ms(fwd_bwd, iters)
    return {"case": spec, "params": n_params(model), "fwd_ms": t_fwd, "fwd_bwd_ms": t_fwd_bwd, "iters": iters,
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", action="append", default=[])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    self_check()
    cases = a.case or ["r2plus1d_18:tiny:2,3,8,64,64", "r2plus1d_18:full:2,3,8,64,64",
                       "audio_resnet9:tiny:8,1,40,100", "audio_resnet9:full:8,1,40,100"]
    rows = []
    for spec in cases:
        r = bench(spec, max(a.iters, 1))
        print(f"{spec:<36} params {r['params']:>10}  fwd {r['fwd_ms']:>10.2f} ms  fwd+bwd {r['fwd_bwd_ms']:>10.2f} ms")
        rows.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
