"""PyTorch reference for weight-import parity of the video ResNets and GDT's audio ResNet-9 (used by `cargo xtask parity`).

    python torchvision_video_reference.py generate OUT_DIR [--arch r2plus1d_18|r3d_18|audio_resnet9] [--seed S]
                                                          [--input 2,3,8,32,32]
    python torchvision_video_reference.py check OUT_DIR --arch A [--outputs F1.safetensors ...] [--export E.safetensors]
                                                       [--tol 1e-4]

generate: writes OUT_DIR/ARCH.pth (a state_dict, as torchvision publishes them), OUT_DIR/ARCH.safetensors (same
tensors) and OUT_DIR/ARCH_io.safetensors with "input", "features" (pooled output before the fc) and "logits".
BatchNorm weights, biases and running statistics are randomised too, so a wrong mapping cannot hide; the model runs
in eval mode.

check: compares each --outputs file ("features", "logits", e.g. written by `svaclr forward`) with ARCH_io, and, for
--export (e.g. written by `svaclr export`), loads it into a fresh torchvision model with load_state_dict(strict=True),
runs the reference input and compares. The error is max|ours - ref| / max|ref| per tensor. Prints one JSON object per
line: {"arch", "check", "features_rel", "logits_rel", "ok"}; exits 1 if any check fails.

Needs torch, torchvision, safetensors (pip install torch==2.9.0 torchvision==0.24.0 safetensors).
"""
import argparse
import json
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from torchvision.models.resnet import BasicBlock, ResNet
from torchvision.models.video import r2plus1d_18, r3d_18

NUM_CLASSES = 400


def audio_resnet9(num_classes=NUM_CLASSES):
    """GDT's audio encoder: torchvision ResNet, BasicBlock [1,1,1,1], one input channel (a spectrogram)."""
    m = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
    m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return m


ARCHS = {"r2plus1d_18": r2plus1d_18, "r3d_18": r3d_18, "audio_resnet9": audio_resnet9}


def features_and_logits(model, x):
    with torch.no_grad():
        logits = model(x)
        fc = model.fc
        model.fc = nn.Identity()
        features = model(x)
        model.fc = fc
    return features, logits


def generate(args):
    shape_default = "2,1,64,100" if args.arch == "audio_resnet9" else "2,3,8,32,32"
    shape = [int(s) for s in (args.input or shape_default).split(",")]
    torch.manual_seed(args.seed)
    model = ARCHS[args.arch](num_classes=NUM_CLASSES)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm3d)):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(*shape)
    features, logits = features_and_logits(model, x)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, f"{args.out_dir}/{args.arch}.pth")
    save_file(state, f"{args.out_dir}/{args.arch}.safetensors")
    save_file({"input": x.contiguous(), "features": features.contiguous(), "logits": logits.contiguous()},
              f"{args.out_dir}/{args.arch}_io.safetensors")
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"arch": args.arch, "seed": args.seed, "params": n_params, "input": shape,
                      "features": list(features.shape), "logits": list(logits.shape)}))


def rel(ours, ref):
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-12))


def check(args):
    ref = load_file(f"{args.out_dir}/{args.arch}_io.safetensors")
    rows = []
    for path in args.outputs:
        ours = load_file(path)
        rows.append({"arch": args.arch, "check": path.rsplit("/", 1)[-1],
                     "features_rel": rel(ours["features"], ref["features"]),
                     "logits_rel": rel(ours["logits"], ref["logits"])})
    if args.export:
        model = ARCHS[args.arch](num_classes=ref["logits"].shape[1])
        try:
            model.load_state_dict(load_file(args.export), strict=True)
        except RuntimeError as e:  # missing or unexpected keys, wrong shapes
            rows.append({"arch": args.arch, "check": "export strict load", "error": " ".join(str(e).split()),
                         "features_rel": None, "logits_rel": None})
        else:
            model.eval()
            features, logits = features_and_logits(model, ref["input"])
            rows.append({"arch": args.arch, "check": "export -> torchvision strict",
                         "features_rel": rel(features, ref["features"]), "logits_rel": rel(logits, ref["logits"])})
    ok = True
    for r in rows:
        r["ok"] = all(r[k] is not None and r[k] <= args.tol for k in ("features_rel", "logits_rel"))
        ok = ok and r["ok"]
        print(json.dumps(r))
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out_dir")
    g.add_argument("--arch", default="r2plus1d_18", choices=sorted(ARCHS))
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--input", default=None, help="comma-separated input shape")
    c = sub.add_parser("check")
    c.add_argument("out_dir")
    c.add_argument("--arch", required=True, choices=sorted(ARCHS))
    c.add_argument("--outputs", nargs="*", default=[])
    c.add_argument("--export", default=None)
    c.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args()
    torch.set_num_threads(2)
    if args.cmd == "generate":
        generate(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
