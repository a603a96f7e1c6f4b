"""Writes configs/pretrain/*.json from one table of presets and rows, so the files stay consistent.

    python3 scripts/make_configs.py

The JSON files are what the programs read (every field written out, no hidden defaults); this script only saves
typing. Rerun it after editing the tables below and commit both.
"""
import copy
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MEL_16K = dict(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40, f_min=0.0, f_max=8000.0,
               log_eps=1e-6)
MEL_PAPER = dict(sample_rate=24000, n_fft=1024, win_length=480, hop_length=240, n_mels=40, f_min=0.0,
                 f_max=12000.0, log_eps=1e-6)
AUG_GDT = dict(crop_scale=[0.08, 1.0], crop_ratio=[0.75, 4.0 / 3.0], flip_prob=0.5, jitter_prob=0.8,
               brightness=0.4, contrast=0.4, saturation=0.4, grayscale_prob=0.2, mean=[0.45] * 3, std=[0.225] * 3)
AUG_SYNTH = dict(AUG_GDT, crop_scale=[0.4, 1.0])

PRESETS = {
    # The paper's settings (Sec. 3.1): R(2+1)D-18, 30 frames at 30 fps, 112 crops, batch 512, 100 epochs, on the train
    # split of the manifest `svaclr prepare --dataset kinetics-sounds --out data/kinetics-sounds` writes.
    "paper": dict(
        manifest="../../data/kinetics-sounds/manifest.jsonl", split="train",
        data=dict(frames=30, fps=30.0, short_side=128, crop=112, audio_seconds=1.0, mel=MEL_PAPER,
                  tie_speeds=False, augment=AUG_GDT, workers=8, cache="off"),
        model=dict(video_arch="r2plus1d_18", preset="full", proj_hidden=512, proj_dim=128, affinity_map="identity"),
        optim=dict(momentum=0.9, weight_decay=1e-5, no_decay_on_norm_and_bias=True),
        schedule=dict(lr_start=0.064, lr_peak=0.64, lr_end=0.1, warmup_epochs=10.0, epochs=100),
        run=dict(batch_size=512, micro_batches=1, checkpoint_every=500, workers=8, max_steps=None,
                 precise_bn_batches=0)),
    # SynthAV default preset on a 2-core CPU: tiny widths, 8 frames of 32 px crops, half a second of audio. The video
    # encoder sees each frame minus the clip's mean frame (video_input, docs/synthav.md "Learnability"): from random
    # initialisation a tiny RGB encoder learns no motion within a CPU run's few hundred steps.
    "synth": dict(
        manifest="../../data/synthav/pretrain.jsonl", split=None,
        data=dict(frames=8, fps=16.0, short_side=40, crop=32, audio_seconds=0.5, mel=MEL_16K,
                  tie_speeds=False, augment=AUG_SYNTH, workers=2, cache="memory", cache_budget_mib=2048),
        model=dict(video_arch="r2plus1d_18", preset="tiny", proj_hidden=64, proj_dim=64, affinity_map="identity",
                   video_input="temporal_residual"),
        optim=dict(momentum=0.9, weight_decay=1e-4, no_decay_on_norm_and_bias=True),
        # 1 epoch of the preset's 2000 clips at batch 32: 62 steps, about 40 s per row with speed views on 2 cores.
        # Chosen by `svaclr size-table` from measured tables at 62, 124 and 248 steps (docs/reproduction.md, "Sizing
        # the synth preset"): in the default preset's 20 minutes, 3 seeds of 62 steps give narrower intervals than
        # fewer seeds of longer rows.
        schedule=dict(lr_start=0.02, lr_peak=0.1, lr_end=0.01, warmup_epochs=0.2, epochs=1),
        run=dict(batch_size=32, micro_batches=1, checkpoint_every=50, workers=2, max_steps=None,
                 precise_bn_batches=8)),
    # The paper preset's data (the prepared Kinetics-Sounds train split, at prepare's 24 kHz audio and the paper's mel
    # front end) with everything else cut to a CPU: tiny widths, 4 frames at 8 fps (a 0.5 s window, like the audio's),
    # 32 px crops, batch 4, one epoch (the tables' paper-tiny preset also stops each run after a few steps). A plumbing
    # check of the real-data path, not a result.
    "paper-tiny": dict(
        manifest="../../data/kinetics-sounds/manifest.jsonl", split="train",
        data=dict(frames=4, fps=8.0, short_side=40, crop=32, audio_seconds=0.5, mel=MEL_PAPER,
                  tie_speeds=False, augment=AUG_GDT, workers=2, cache="off"),
        model=dict(video_arch="r2plus1d_18", preset="tiny", proj_hidden=64, proj_dim=64, affinity_map="identity"),
        optim=dict(momentum=0.9, weight_decay=1e-4, no_decay_on_norm_and_bias=True),
        schedule=dict(lr_start=0.02, lr_peak=0.1, lr_end=0.01, warmup_epochs=0.5, epochs=1),
        run=dict(batch_size=4, micro_batches=1, checkpoint_every=2, workers=2, max_steps=None,
                 precise_bn_batches=1)),
    # A minute-long smoke run on SynthAV's small preset (what the tests run).
    "smoke": dict(
        manifest="../../data/synthav-small/pretrain.jsonl", split=None,
        data=dict(frames=8, fps=16.0, short_side=40, crop=32, audio_seconds=0.5, mel=MEL_16K,
                  tie_speeds=False, augment=AUG_SYNTH, workers=2, cache="memory", cache_budget_mib=2048),
        model=dict(video_arch="r2plus1d_18", preset="tiny", proj_hidden=64, proj_dim=64, affinity_map="identity",
                   video_input="temporal_residual"),
        optim=dict(momentum=0.9, weight_decay=1e-4, no_decay_on_norm_and_bias=True),
        schedule=dict(lr_start=0.04, lr_peak=0.2, lr_end=0.04, warmup_epochs=0.5, epochs=3),
        run=dict(batch_size=32, micro_batches=1, checkpoint_every=2, workers=2, max_steps=None,
                 precise_bn_batches=2)),
}

LOSS = dict(temperature=0.07, lambda_temperature=0.1, lambda_mode="all", detach_lambda=True)
# Tiny CPU encoders collapse to a constant embedding at eta = 0.07 within the few hundred steps a CPU run affords
# (measured: loss -> log(2N-1), positive/negative similarity gap 0); eta = 0.2 keeps them learning.
LOSS_CPU = dict(LOSS, temperature=0.2)

# Table 1's rows: (name, speed set, loss)
ROWS = [
    ("nospeed", [1, 1], "info_nce"),
    ("s12", [1, 2], "info_nce"),
    ("s14", [1, 4], "info_nce"),
    ("s16", [1, 6], "info_nce"),
    ("s14_soft", [1, 4], "soft_info_nce"),
]


def main():
    out_dir = os.path.join(ROOT, "configs", "pretrain")
    os.makedirs(out_dir, exist_ok=True)
    for preset, base in PRESETS.items():
        for name, speeds, kind in ROWS:
            cfg = copy.deepcopy(base)
            cfg = {"seed": 0, **cfg}
            cfg["data"] = {**cfg["data"], "speeds": speeds}
            # keep the field order of DataConfig
            d = cfg["data"]
            keys = ["frames", "fps", "short_side", "crop", "audio_seconds", "mel", "speeds", "tie_speeds", "augment",
                    "workers", "cache", "cache_budget_mib"]
            cfg["data"] = {k: d[k] for k in keys if k in d}
            cfg["loss"] = {"kind": kind, **(LOSS if preset == "paper" else LOSS_CPU)}
            order = ["seed", "manifest", "split", "data", "model", "loss", "optim", "schedule", "run"]
            cfg = {k: cfg[k] for k in order}
            with open(os.path.join(out_dir, f"{preset}_{name}.json"), "w") as f:
                json.dump(cfg, f, indent=2)
                f.write("\n")
    # The smoke config the training issue names: the paper's best row ([1, 4], SoftInfoNCE) at a cheaper shape, for
    # the 64-clip small set of the README (`svaclr synth --preset small --clips 64`; 2 steps per epoch). The same
    # 0.5 s window as 4 frames at 8 fps, 24 px crops of 80-100 % of the frame (the object stays in view), 60 epochs
    # (120 steps, about 45 s on 2 cores), lr up to 0.1. Its monitor scores all 64 clips: over the run their
    # positive-pair top-1 rises from chance (1/127) to about 3 times chance (docs/training.md has the measurements;
    # on 200 clips in the same time, or in the former 9 steps, it stayed at chance).
    with open(os.path.join(out_dir, "smoke_s14_soft.json")) as f:
        smoke = json.load(f)
    smoke["data"].update(frames=4, fps=8.0, crop=24)
    smoke["data"]["augment"]["crop_scale"] = [0.8, 1.0]
    smoke["schedule"] = dict(lr_start=0.02, lr_peak=0.1, lr_end=0.01, warmup_epochs=2.0, epochs=60)
    smoke["run"]["checkpoint_every"] = 20
    # Its monitor: 64 fixed clips (two training forwards) scored on the initial weights and after every epoch; 64 fits
    # the smallest SynthAV sets the tests pre-train on.
    smoke["run"]["monitor_clips"] = 64
    with open(os.path.join(out_dir, "smoke.json"), "w") as f:
        json.dump(smoke, f, indent=2)
        f.write("\n")


# Table 2's rows: the paper's best setting ([1,4] SoftInfoNCE) for R3D-18 and R(2+1)D-18 at two input resolutions.
# Each is `<preset>_s14_soft.json` with the architecture and the crop changed, so it follows every other change to
# that file; the one that equals it (same content, same config hash) reuses Table 1's run folder.
# (name, video_arch, resolution key)
TABLE2_ROWS = [
    ("r3d18_lo", "r3d_18", "lo"),
    ("r3d18_hi", "r3d_18", "hi"),
    ("r21d18_lo", "r2plus1d_18", "lo"),
    ("r21d18_hi", "r2plus1d_18", "hi"),
]
# Per preset: resolution key -> (crop, short_side). The paper's "128 x 128" is GDT's 112 crop of a 128 short side
# (Table 1's setting), its "224 x 224" a 224 crop of a 256 short side. The CPU presets use 24 and 32 px crops (32 is
# Table 1's), which keeps each extra synth row within a few minutes on 2 cores.
TABLE2_RESOLUTIONS = {
    "paper": {"lo": (112, 128), "hi": (224, 256)},
    "paper-tiny": {"lo": (24, 30), "hi": (32, 40)},
    "synth": {"lo": (24, 30), "hi": (32, 40)},
    "smoke": {"lo": (24, 30), "hi": (32, 40)},
}


def table2_configs():
    out_dir = os.path.join(ROOT, "configs", "pretrain")
    for preset, resolutions in TABLE2_RESOLUTIONS.items():
        with open(os.path.join(out_dir, f"{preset}_s14_soft.json")) as f:
            base = json.load(f)
        for name, arch, res in TABLE2_ROWS:
            cfg = copy.deepcopy(base)
            crop, short_side = resolutions[res]
            cfg["data"]["crop"] = crop
            cfg["data"]["short_side"] = short_side
            cfg["model"]["video_arch"] = arch
            with open(os.path.join(out_dir, f"{preset}_{name}.json"), "w") as f:
                json.dump(cfg, f, indent=2)
                f.write("\n")


def finetune_tiny_configs():
    """configs/finetune/{hmdb51,ucf101}_tiny.json: the paper's fine-tuning protocol (3 official folds, whole network,
    multi-clip multi-crop testing with 3 crops) at the paper-tiny input size, one epoch of batch 4, 2 clips x 3 crops
    per test video, the class count taken from the prepared manifests."""
    out_dir = os.path.join(ROOT, "configs", "finetune")
    for name in ["hmdb51", "ucf101"]:
        with open(os.path.join(out_dir, f"{name}_paper.json")) as f:
            cfg = json.load(f)
        cfg.update(epochs=1, batch_size=4, num_classes=None)
        for part in ["train_data", "test_data"]:
            cfg[part].update(frames=4, fps=8.0, short_side=40, crop=32, audio_seconds=0.5, workers=2)
        cfg["optim"]["schedule"].update(warmup_epochs=0, milestones=[])
        cfg["test"] = dict(clips=2, crops=3, batch_size=12)
        with open(os.path.join(out_dir, f"{name}_tiny.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
    table2_configs()
    finetune_tiny_configs()
