"""Reference audio-visual retrieval metrics in NumPy (float64): the specification svaclr-eval's R@K is tested against.

Writes `retrieval_numpy.json`, read by `crates/svaclr-eval/tests/eval.rs` (test `numpy_parity`).

    python scripts/reference/retrieval_reference.py OUT_DIR [--seed S]
    SVACLR_REFERENCE_DIR=OUT_DIR cargo test -p svaclr-eval --test eval numpy_parity

`--seed S` shifts every case's seed by S (default 0 reproduces tests/fixtures/retrieval_numpy.json). Needs numpy
only (the project's torch venv has it: `cargo xtask setup --torch`).

Definitions (docs/evaluation.md):
- similarity: dot products of the given float32 embeddings, accumulated in float64; the `pooled` case first
  L2-normalises each clip's view embeddings, averages the `clips` views of a video and L2-normalises again;
- pessimistic ties: the rank of a query's first relevant gallery item is
  1 + #{irrelevant items with similarity >= the best relevant item's};
- instance level: query i's relevant item is gallery item i; class level: every gallery item of the query's class;
- R@K = share of queries with rank <= K; median and mean of the ranks.
"""
import argparse
import json
import os

import numpy as np

KS = [1, 5, 10, 20]


def normalize(x):
    """Row-wise L2 normalisation with torch.nn.functional.normalize's eps (1e-12)."""
    n = np.sqrt((x.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
    return x / np.maximum(n, 1e-12)


def ranks(sim, relevant):
    """Pessimistic rank of the first relevant item per query (row); relevant: bool [Q, G]."""
    best = np.where(relevant, sim, -np.inf).max(axis=1)
    return 1 + ((~relevant) & (sim >= best[:, None])).sum(axis=1)


def summary(r):
    return {
        "recall": {str(k): float((r <= k).mean()) for k in KS},
        "median_rank": float(np.median(r)),
        "mean_rank": float(r.mean()),
        "ranks": [int(x) for x in r],
    }


def evaluate(video, audio, labels):
    """video, audio: float32 [N, D] (row i of each from clip i); labels: int [N]."""
    sv = video.astype(np.float64) @ audio.astype(np.float64).T  # [N, N], query video i, gallery audio j
    sa = sv.T.copy()  # audio queries: <a_i, v_j> = <v_j, a_i>
    n = len(labels)
    eye = np.eye(n, dtype=bool)
    same = labels[:, None] == labels[None, :]
    return {
        "instance": {"v2a": summary(ranks(sv, eye)), "a2v": summary(ranks(sa, eye))},
        "class_level": {"v2a": summary(ranks(sv, same)), "a2v": summary(ranks(sa, same))},
    }


def f32_list(x):
    return [[float(v) for v in row] for row in np.asarray(x, dtype=np.float32)]


def case_random(name, seed, n, d, classes):
    rng = np.random.default_rng(seed)
    video = rng.standard_normal((n, d)).astype(np.float32)
    # Audio correlated with video so that retrieval is better than chance but imperfect.
    audio = (0.8 * video + 0.9 * rng.standard_normal((n, d))).astype(np.float32)
    labels = rng.integers(0, classes, n)
    return {"name": name, "clips": 1, "video": video, "audio": audio, "labels": labels}


def case_ties(name, seed, n, d, classes):
    """Coarsely quantised embeddings with duplicated rows: many exact ties, including with the true item."""
    rng = np.random.default_rng(seed)
    video = rng.integers(-1, 2, (n, d)).astype(np.float32)
    audio = video.copy()
    flip = rng.random((n, d)) < 0.3
    audio[flip] = rng.integers(-1, 2, flip.sum()).astype(np.float32)
    audio[5] = audio[2]  # two gallery items identical
    video[7] = video[3]  # two queries identical
    audio[9] = 0.0  # a zero embedding: similarity 0 with everything
    labels = rng.integers(0, classes, n)
    return {"name": name, "clips": 1, "video": video, "audio": audio, "labels": labels}


def case_pooled(name, seed, n, d, classes, clips):
    """Several views per video: normalise, average, normalise (what `svaclr retrieve --clips` does)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, d))
    video = (np.repeat(base, clips, axis=0) + 2.0 * rng.standard_normal((n * clips, d))).astype(np.float32)
    audio = (np.repeat(base, clips, axis=0) + 2.5 * rng.standard_normal((n * clips, d))).astype(np.float32)
    labels = rng.integers(0, classes, n)
    return {"name": name, "clips": clips, "video": video, "audio": audio, "labels": labels}


def pool(x, clips):
    x = normalize(x.astype(np.float64))
    x = x.reshape(-1, clips, x.shape[1]).mean(axis=1)
    return normalize(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    s = args.seed
    cases = [
        case_random("random_n64_d16", 1 + s, 64, 16, 6),
        case_ties("ties_n24_d6", 2 + s, 24, 6, 4),
        case_pooled("pooled_n30_d12_clips3", 3 + s, 30, 12, 5, 3),
    ]
    out = []
    for c in cases:
        clips = c["clips"]
        if clips > 1:
            v, a = pool(c["video"], clips), pool(c["audio"], clips)
        else:
            v, a = c["video"], c["audio"]
        res = evaluate(v, a, c["labels"])
        out.append({
            "name": c["name"],
            "clips": clips,
            "ks": KS,
            "video": f32_list(c["video"]),
            "audio": f32_list(c["audio"]),
            "labels": [int(x) for x in c["labels"]],
            **res,
        })
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "retrieval_numpy.json")
    with open(path, "w") as f:
        json.dump({"generator": "scripts/reference/retrieval_reference.py", "numpy": np.__version__, "seed": s,
                   "tie_rule": "pessimistic", "cases": out}, f)
    print(f"wrote {path} ({len(out)} cases)")


if __name__ == "__main__":
    main()
