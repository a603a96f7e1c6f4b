#!/usr/bin/env python3
# Oracle "svaclr": writes what a correct prepare would, from cases.json (to test check.py for false positives).
import json, os, subprocess, sys
a = sys.argv[1:]
g = lambda k: a[a.index(k) + 1] if k in a else None
root, out, ds = g("--root"), g("--out"), g("--dataset")
if ds not in ("kinetics-sounds", "k400", "vggsound", "ucf101", "hmdb51"):
    print("Error: unknown dataset", file=sys.stderr); sys.exit(1)
if not os.path.isdir(root):
    print(f"Error: {root}: not a directory", file=sys.stderr); sys.exit(1)
C = json.load(open(os.environ["CORPUS"] + "/cases.json"))["cases"]
name = os.path.basename(root.rstrip("/"))
cs = [c for c in C if c["root"] == name]
if not cs:
    print(f"Error: {root}: nothing", file=sys.stderr); sys.exit(1)
os.makedirs(out + "/audio", exist_ok=True)
mans, unus, ids = {}, [], set()
for c in cs:
    if c["expect"] == "ignore": continue
    if c["expect"] not in ("index",):
        unus.append({"path": c["match"] or c["file"] or c["id"], "reason": "bad"}); continue
    pr = c["probe"]; p = os.path.realpath(os.path.join(root, c["file"]))
    aud = None
    if c["audio"]:
        aud = f"audio/{c['id']}.wav"
        vf = pr["video"]["first"]
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", p, "-map", "0:a:0", "-af", f"aresample=async=1:first_pts=0,atrim=start={vf}", "-ac", "1", "-ar", "24000", "-c:a", "pcm_s16le", out + "/" + aud], check=True)
    for fold, sps in c["splits"].items():
        mans.setdefault(fold, []).append(dict(id=c["id_hint"], video=p, audio=aud, duration=pr["video"]["span"], fps=25.0, label=None, label_name=c["label"], split=sps[0]))
        ids.add(c["id_hint"])
ms = []
for fold, es in mans.items():
    fn = out + ("/manifest.jsonl" if fold == "0" else f"/manifest_fold{fold}.jsonl")
    open(fn, "w").write("".join(json.dumps(e) + "\n" for e in es)); ms.append(fn)
open(out + "/classes.txt", "w").write("")
json.dump(dict(listed=len(ids) + len(unus), indexed=len(ids), video_only=sum(1 for es in mans.values() for e in es if e["audio"] is None), classes=0, unusable=unus, manifests=ms), open(out + "/prepare_report.json", "w"))
print("prepare ok")
