"""Reference InfoNCE / cross-affinity / SoftInfoNCE in PyTorch (float64): the specification svaclr-loss is tested against.

Writes the JSON fixtures read by `crates/svaclr-loss/tests/loss.rs` (baseline_v1.json, speed_v2.json,
soft_row_nodetach.json). Embedding layout: [V, N, D] (view, clip, feature); view 0 is the original (speed 1) view,
view 1 the speed-augmented one. See docs/loss.md for the definitions in words.

    python scripts/reference/softinfonce_reference.py OUT_DIR [--seed S]
    SVACLR_REFERENCE_DIR=OUT_DIR cargo test -p svaclr-loss --test loss parity

`--seed S` shifts every case's seed by S (default 0 reproduces tests/fixtures). Needs torch (the project's venv:
`cargo xtask setup --torch`).
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F


def info_nce(za, zv, eta, lam=None):
    """Mean over clips, view pairs (p, q) and both directions of -log p(positive), each pair weighted by lam.

    za, zv: [V, N, D] projections (L2-normalised here, eps 1e-12). lam: [N, V, V] weights for (audio view p,
    video view q), or None for weight 1. The negatives of the pair (a_i^p, v_i^q) are every view of every other clip
    j != i; the other view of clip i is neither positive nor negative.
    """
    V, N, D = za.shape
    a = F.normalize(za, dim=-1).reshape(V * N, D)
    v = F.normalize(zv, dim=-1).reshape(V * N, D)
    logits = a @ v.T / eta  # row (p, i) -> p*N + i ; column (q, j) -> q*N + j
    clip = torch.arange(N).repeat(V)
    same_clip = clip[:, None] == clip[None, :]
    idx = torch.arange(N)
    terms = []
    for p in range(V):
        for q in range(V):
            rows, cols = p * N + idx, q * N + idx
            # audio -> video: positive column (q, i) against all columns of the other clips
            pos = logits[rows, cols]
            neg = logits[rows].masked_fill(same_clip[rows], float("-inf"))
            l_av = torch.logsumexp(torch.cat([pos[:, None], neg], 1), 1) - pos
            # video -> audio: positive row (p, i) against all rows of the other clips
            lt = logits.T
            neg_t = lt[cols].masked_fill(same_clip[cols], float("-inf"))
            l_va = torch.logsumexp(torch.cat([pos[:, None], neg_t], 1), 1) - pos
            w = 1.0 if lam is None else lam[:, p, q]
            terms.append(w * 0.5 * (l_av + l_va))
    return torch.stack(terms).mean()


def cross_affinity(ya, yv, tau, mode="all"):
    """lambda [N, V, V] from representations ya, yv [V, N, Dy] (identity mapping l).

    mode "all": V*V * softmax over the V*V entries of each clip's matrix S_i[p, q] = <ya_i^p, yv_i^q> / tau.
    mode "row": V * softmax over the video views q for each audio view p.
    """
    V = ya.shape[0]
    a = F.normalize(ya, dim=-1).permute(1, 0, 2)
    v = F.normalize(yv, dim=-1).permute(1, 0, 2)
    s = a @ v.transpose(1, 2) / tau
    n = s.shape[0]
    if mode == "all":
        return float(V * V) * torch.softmax(s.reshape(n, V * V), -1).reshape(n, V, V)
    if mode == "row":
        return float(V) * torch.softmax(s, -1)
    raise ValueError(f"unknown lambda mode {mode!r}")


def case(seed, V, N, D, Dy, eta, tau, mode, detach):
    g = torch.Generator().manual_seed(seed)
    za = torch.randn(V, N, D, generator=g, dtype=torch.float64, requires_grad=True)
    zv = torch.randn(V, N, D, generator=g, dtype=torch.float64, requires_grad=True)
    out = {"seed": seed, "V": V, "N": N, "D": D, "eta": eta, "za": za.tolist(), "zv": zv.tolist()}
    loss = info_nce(za, zv, eta)
    ga, gv = torch.autograd.grad(loss, [za, zv])
    out.update(info_nce=loss.item(), info_nce_grad_za=ga.tolist(), info_nce_grad_zv=gv.tolist())
    if V == 2:
        ya = torch.randn(V, N, Dy, generator=g, dtype=torch.float64, requires_grad=True)
        yv = torch.randn(V, N, Dy, generator=g, dtype=torch.float64, requires_grad=True)
        lam = cross_affinity(ya, yv, tau, mode)
        if detach:
            lam = lam.detach()
        soft = info_nce(za, zv, eta, lam)
        grads = torch.autograd.grad(soft, [za, zv, ya, yv], allow_unused=True)
        grads = [torch.zeros_like(t) if gr is None else gr for gr, t in zip(grads, [za, zv, ya, yv])]
        out.update(Dy=Dy, tau_lambda=tau, lambda_mode=mode, detach_lambda=detach,
                   ya=ya.tolist(), yv=yv.tolist(), **{"lambda": lam.tolist()},
                   soft_info_nce=soft.item(),
                   soft_grad_za=grads[0].tolist(), soft_grad_zv=grads[1].tolist(),
                   soft_grad_ya=grads[2].tolist(), soft_grad_yv=grads[3].tolist())
    return out


CASES = [
    # name, seed offset, V, N, D, Dy, eta, tau_lambda, lambda mode, detach lambda
    ("baseline_v1", 1, 1, 6, 8, 8, 0.07, 0.1, "all", True),
    ("speed_v2", 2, 2, 5, 16, 12, 0.1, 0.1, "all", True),
    ("soft_row_nodetach", 3, 2, 4, 8, 8, 0.2, 0.5, "row", False),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0, help="added to every case's seed (0 = the committed fixtures)")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, offset, *params in CASES:
        c = case(args.seed + offset, *params)
        with open(os.path.join(args.out_dir, f"{name}.json"), "w") as f:
            json.dump(c, f)
        print(name, "info_nce", c["info_nce"], "soft", c.get("soft_info_nce"))


if __name__ == "__main__":
    main()
