"""PyTorch counterpart of crates/svaclr-loss/benches/loss.rs: the same losses on the same shapes, CPU, float32.

The work matches the Rust kernel: L2-normalise both modalities, one similarity matmul over all views, the masked
log-sum-exp of every row and column over the other clips, softplus(LSE - positive) in both directions, the
lambda-weighted mean; "fwd_bwd" adds the backward to za and zv. Written the way an efficient PyTorch user would
(vectorised, no Python loops over views), so the comparison is against PyTorch at its best, not the loop-based
reference in scripts/reference/.

    python scripts/bench/loss_torch.py --out results/bench/loss_torch.json [--quick] [--threads 2] [--cases IDS]

IDS is a comma-separated list of case ids as criterion names them, `<kernel>_<pass>/n<N>_v<V>_d<D>` (e.g.
`soft_info_nce_fwd_bwd/n512_v2_d128`); without it every case runs.

Prints one line per case and writes a JSON list of {"kernel", "pass", "n", "v", "d", "torch_ms"} (median ms).
Called by `cargo xtask bench loss`.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

NS = [64, 256, 512]
VS = [1, 2]
DS = [128, 256]
TEMPERATURE = 0.07


def soft_info_nce(za, zv, same_clip, eta, lam=None):
    """(Soft)InfoNCE; za, zv [V, N, D]; same_clip [V*N, V*N] bool; lam [N, V, V] or None."""
    V, N, D = za.shape
    a = F.normalize(za, dim=-1)
    v = F.normalize(zv, dim=-1)
    pos = (a.unsqueeze(1) * v.unsqueeze(0)).sum(-1) / eta  # [V(p), V(q), N]
    logits = a.reshape(V * N, D) @ v.reshape(V * N, D).T / eta  # [VN, VN]
    neg = logits.masked_fill(same_clip, float("-inf"))
    m_row = torch.logsumexp(neg, 1).reshape(V, 1, N)  # audio (p, i) against the other clips' videos
    m_col = torch.logsumexp(neg, 0).reshape(1, V, N)  # video (q, i) against the other clips' audios
    terms = 0.5 * (F.softplus(m_row - pos) + F.softplus(m_col - pos))
    if lam is not None:
        terms = terms * lam.permute(1, 2, 0)
    return terms.mean()


def time_case(kernel, pas, n, v, d, min_time, min_reps):
    g = torch.Generator().manual_seed(7)
    za = torch.randn(v, n, d, generator=g)
    zv = torch.randn(v, n, d, generator=g)
    lam = torch.rand(n, v, v, generator=g) + 0.5 if kernel == "soft_info_nce" else None
    clip = torch.arange(n).repeat(v)
    same = clip[:, None] == clip[None, :]
    if pas == "fwd_bwd":
        za.requires_grad_(True)
        zv.requires_grad_(True)

    def step():
        if pas == "fwd":
            with torch.no_grad():
                return soft_info_nce(za, zv, same, TEMPERATURE, lam).item()
        za.grad = None
        zv.grad = None
        loss = soft_info_nce(za, zv, same, TEMPERATURE, lam)
        loss.backward()
        return za.grad.sum().item() + zv.grad.sum().item()

    for _ in range(3):
        step()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="shorter timing per case")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default="", help="comma-separated case ids (default: all)")
    args = parser.parse_args()
    wanted = {c.strip() for c in args.cases.split(",") if c.strip()}
    torch.set_num_threads(args.threads)
    min_time, min_reps = (0.3, 10) if args.quick else (2.0, 30)
    records = []
    for kernel in ["info_nce", "soft_info_nce"]:
        for pas in ["fwd", "fwd_bwd"]:
            for n in NS:
                for v in VS:
                    for d in DS:
                        case_id = f"{kernel}_{pas}/n{n}_v{v}_d{d}"
                        if wanted and case_id not in wanted:
                            continue
                        ms = time_case(kernel, pas, n, v, d, min_time, min_reps)
                        records.append({"kernel": kernel, "pass": pas, "n": n, "v": v, "d": d, "torch_ms": ms})
                        print(f"torch {case_id}: {ms:.3f} ms", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"torch_version": torch.__version__, "threads": args.threads, "records": records}, f, indent=1)


if __name__ == "__main__":
    main()
