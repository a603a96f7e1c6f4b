"""Reference frame selection with PyAV: which decoded frame a clip sampler must take at each requested time.

    python3 scripts/reference/pyav_frames.py VIDEO OUT.bin --times 0,0.5,1.25,...

The rule (docs/data.md, "Decoding"), written here independently of svaclr-data's decoder:
- demux with MP4 edit lists ignored (`ignore_editlist=1`), decode every frame of the best video stream;
- a frame's time is `(pts - start) * time_base`, with `start` the stream's start_time (0 when the container gives
  none);
- each requested time takes the frame whose time is nearest, ties to the earlier frame; times before the first
  frame take the first, times after the last frame take the last.

Writes OUT.bin: for each requested time, in request order, the chosen frame as RGB24 at the native size (PyAV's
`to_ndarray(format="rgb24")`), and prints one JSON line: {"width", "height", "times": [chosen frame time, ...],
"frames": number of frames decoded}. Used by crates/svaclr-data/tests/data/reference.rs (the `av` wheel is in the
project's torch venv: `cargo xtask setup --torch`).
"""
import argparse
import json

import av
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("out")
    ap.add_argument("--times", required=True, help="comma-separated seconds from the stream's start")
    args = ap.parse_args()
    wanted = [float(t) for t in args.times.split(",")]

    container = av.open(args.video, options={"ignore_editlist": "1"})
    stream = container.streams.video[0]
    stream.thread_type = "NONE"
    tb = float(stream.time_base)
    frames = []  # (time, rgb)
    start = stream.start_time or 0
    for frame in container.decode(stream):
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            continue
        frames.append(((pts - start) * tb, frame.to_ndarray(format="rgb24")))
    container.close()
    if not frames:
        raise SystemExit(f"{args.video}: no frame decoded")
    frames.sort(key=lambda f: f[0])
    times = [t for t, _ in frames]

    chosen = []
    for w in wanted:
        best = 0
        for i, t in enumerate(times):
            # Strictly nearer wins, so an equal distance keeps the earlier frame.
            if abs(t - w) < abs(times[best] - w):
                best = i
        chosen.append(best)
    h, wdt = frames[0][1].shape[:2]
    with open(args.out, "wb") as f:
        for i in chosen:
            f.write(np.ascontiguousarray(frames[i][1]).tobytes())
    print(json.dumps({"width": wdt, "height": h, "times": [times[i] for i in chosen], "frames": len(frames)}))


if __name__ == "__main__":
    main()
