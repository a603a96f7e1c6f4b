#!/usr/bin/env python3
"""Check `svaclr prepare` outputs of run_corpus.sh against the corpus' ground truth.

Usage: check.py CORPUS OUTDIR      (CORPUS has cases.json/runs.json; OUTDIR has logs/ and out/)

Severities: PANIC, HANG, ERRMSG (error not one line naming file + cause), WRONG (silently wrong data),
UNREPORTED (listed/bad clip neither indexed nor reported), REJECTED (valid clip reported unusable),
COUNTS (prepare_report.json counts), NOTE (declared/expected oddities, for information).
"""
import json
import math
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wavtools  # noqa: E402

CORPUS, OUT = sys.argv[1], sys.argv[2]
CASES = json.load(open(os.path.join(CORPUS, "cases.json")))["cases"]
RUNS = json.load(open(os.path.join(CORPUS, "runs.json")))
BY_TONE = {c["tone"]: c for c in CASES if c["tone"] and c["id"] != "VG-25"}
FIND = []
STATUS = []
ONSET_TOL, DUR_TOL = 0.04, 0.1
SEV_ORDER = ["PANIC", "HANG", "ERRMSG", "WRONG", "UNREPORTED", "REJECTED", "COUNTS", "NOTE"]


def F(sev, run, case, what, why=""):
    if any(f["sev"] == sev and f["run"] == run and f["case"] == case and f["what"] == what for f in FIND):
        return
    FIND.append({"sev": sev, "run": run, "case": case, "what": what, "why": why})


def rd(p, default=""):
    try:
        return open(p, encoding="utf-8", errors="replace").read()
    except OSError:
        return default


def real(p):
    return os.path.realpath(p)


# ------------------------------------------------------------------ run-level checks
def check_run_status(r):
    name = r["name"]
    lg = os.path.join(OUT, "logs", name)
    rc = int(rd(lg + ".rc", "-1").strip() or -1)
    err, out = rd(lg + ".err"), rd(lg + ".out")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    status = {"rc": rc, "secs": rd(lg + ".secs").strip(), "err": lines[:1]}
    if rc in (124, 137):
        F("HANG", name, "RUN-" + name, f"killed by timeout after {status['secs']} s", "prepare must finish")
        return status
    if rc == 101 or "panicked" in err:
        msg = next((ln for ln in lines if "panicked" in ln), lines[0] if lines else "")
        F("PANIC", name, "RUN-" + name, f"rc={rc}: {msg.strip()[:200]}", "must be a reported error, not a panic")
        return status
    exp = r["expect"]
    if rc == 0:
        if exp == "error":
            F("ERRMSG", name, "RUN-" + name, f"exit 0 (stdout: {out.strip()[:160]})", f"expected: {r['correct']}")
        elif lines:
            F("NOTE", name, "RUN-" + name, f"stderr not empty with --quiet: {lines[0][:160]}", "")
    else:
        if exp == "ok":
            F("REJECTED", name, "RUN-" + name, f"rc={rc}: {(lines or [''])[0][:200]}", f"expected: {r['correct']}")
        body = [ln for ln in lines if not ln.startswith("For more information")]
        if not body:
            F("ERRMSG", name, "RUN-" + name, f"rc={rc} with empty stderr", "an error must say what failed")
        elif len(body) > 1 and not body[0].startswith("error: "):  # clap usage errors are multi-line by design
            F("ERRMSG", name, "RUN-" + name, f"{len(body)} stderr lines: {' / '.join(b.strip() for b in body[:3])[:220]}",
              "error should be one line naming the file and cause")
        for must in r.get("err_must", []):
            if must not in err and exp != "ok_or_error":
                F("ERRMSG", name, "RUN-" + name, f"error does not mention '{must}': {(body or [''])[0][:160]}",
                  "error should name the file")
            elif must not in err and rc != 0:
                F("ERRMSG", name, "RUN-" + name, f"error does not name '{must}': {(body or [''])[0][:160]}",
                  "error should name the file and line")
    return status


# ------------------------------------------------------------------ dataset checks
def load_outputs(outp, run):
    rep_p = os.path.join(outp, "prepare_report.json")
    rep = None
    if os.path.exists(rep_p):
        try:
            rep = json.load(open(rep_p))
        except ValueError as e:
            F("WRONG", run, "-", f"prepare_report.json does not parse: {e}")
    mans = {}
    for fn in sorted(os.listdir(outp)) if os.path.isdir(outp) else []:
        if fn.startswith("manifest") and fn.endswith(".jsonl"):
            fold = "0" if fn == "manifest.jsonl" else fn[len("manifest_fold"):-len(".jsonl")]
            ents = []
            for i, ln in enumerate(open(os.path.join(outp, fn), encoding="utf-8")):
                if ln.strip():
                    try:
                        ents.append(json.loads(ln))
                    except ValueError as e:
                        F("WRONG", run, "-", f"{fn}:{i + 1} does not parse: {e}")
            mans[fold] = (os.path.join(outp, fn), ents)
    classes = [ln.rstrip("\n") for ln in open(os.path.join(outp, "classes.txt"), encoding="utf-8")] \
        if os.path.exists(os.path.join(outp, "classes.txt")) else None
    return rep, mans, classes


def check_dataset(r, status):
    run = r["name"]
    root_name = r["root"]
    outp = os.path.join(OUT, "out", run)
    rootdir = os.path.join(CORPUS, "roots", root_name)
    if r.get("out_equals_root"):
        rootdir = outp = real(outp)
    cases = [c for c in CASES if c["root"] == root_name]
    if r.get("swap"):
        rootdir = os.path.join(OUT, "work", run + "-root")
        src = next(c for c in CASES if c["id"] == r["swap"]["src"])
        cases = [dict(c, tone=src["tone"], probe=src["probe"], onset=src["onset"])
                 if c["id"] == r["swap"]["dst"] else c for c in cases]
    rep, mans, classes = load_outputs(outp, run)
    res = {"listed": None, "indexed": None, "unusable": None, "entries": sum(len(e) for _, e in mans.values())}
    if rep is None:
        if status["rc"] == 0:
            F("WRONG", run, "-", "exit 0 but no prepare_report.json")
        if status["rc"] != 0 and r["expect"] == "ok":
            return res
        if rep is None and not mans:
            return res
    rep = rep or {"unusable": [], "listed": 0, "indexed": 0, "video_only": 0, "classes": 0}
    unus = rep.get("unusable", [])
    res.update(listed=rep.get("listed"), indexed=rep.get("indexed"), unusable=len(unus))
    # case lookup by real path of its file
    by_real = defaultdict(list)
    for c in cases:
        if c["file"]:
            by_real[real(os.path.join(rootdir, c["file"]))].append(c)
    hits = defaultdict(list)  # case id -> [(fold, entry)]
    wav_ids = defaultdict(set)
    vid_ids = defaultdict(set)
    all_ids, vo_ids = set(), set()
    for fold, (mpath, ents) in mans.items():
        id_splits = defaultdict(list)
        for e in ents:
            eid, vid = e.get("id"), e.get("video") or ""
            all_ids.add(eid)
            id_splits[eid].append(e.get("split"))
            rv = real(vid if os.path.isabs(vid) else os.path.join(os.path.dirname(mpath), vid))
            vid_ids[rv].add(eid)
            if not os.path.exists(rv):
                F("WRONG", run, eid, f"fold {fold}: video path does not exist: {vid}")
            cands = by_real.get(rv, [])
            c = next((x for x in cands if x["id_hint"] == eid), cands[0] if cands else None)
            if c is None:
                F("WRONG", run, eid, f"fold {fold}: entry points at a file no case lists: {vid}")
                continue
            hits[c["id"]].append((fold, e))
            tag = f"{c['id']}"
            if c["expect"] in ("skip", "missing", "ignore"):
                F("WRONG", run, tag, f"indexed as id '{eid}' from {os.path.relpath(rv, real(rootdir))}",
                  f"expected {c['expect']}: {c['correct']}")
            if eid != c["id_hint"] and c["id_hint"] not in ("",):
                F("NOTE", run, tag, f"id '{eid}' (expected '{c['id_hint']}')")
            allowed = c["splits"].get(fold)
            if allowed is None:
                F("WRONG", run, tag, f"entry in fold {fold} which does not list it", "")
            elif e.get("split") not in allowed:
                F("WRONG", run, tag, f"fold {fold}: split '{e.get('split')}' for id '{eid}'", f"expected {allowed}")
            # label
            ln = e.get("label_name")
            lab = e.get("label")
            if c["label"] is not None or ln is not None:
                if (c["label"] or None) != (ln.lower() if isinstance(ln, str) and root_name in ("k400", "ks") else ln):
                    F("WRONG", run, tag, f"label_name {ln!r}", f"expected {c['label']!r}")
            if lab is not None and classes is not None and (lab >= len(classes) or classes[lab] != ln):
                F("WRONG", run, tag, f"label {lab} is '{classes[lab] if lab < len(classes) else '?'}' in classes.txt "
                  f"but label_name is {ln!r}")
            # durations
            pr = c.get("probe") or {}
            vspan = (pr.get("video") or {}).get("span")
            dur = e.get("duration")
            if not isinstance(dur, (int, float)) or not math.isfinite(dur) or dur <= 0:
                F("WRONG", run, tag, f"duration {dur!r}")
                continue
            if not isinstance(e.get("fps"), (int, float)) or not math.isfinite(e["fps"]) or e["fps"] <= 0:
                F("WRONG", run, tag, f"fps {e.get('fps')!r}")
            if vspan and abs(dur - vspan) > DUR_TOL:
                F("WRONG", run, tag, f"manifest duration {dur:.3f} s, video stream lasts {vspan:.3f} s (ffprobe)",
                  "clip sampling will ask for frames that do not exist" if dur > vspan else "video under-used")
            # audio
            au = e.get("audio")
            if au is None:
                vo_ids.add(eid)
                if c["audio"]:
                    F("WRONG", run, tag, "audio: null although the file has a decodable audio track",
                      "audio silently dropped")
                continue
            if not c["audio"]:
                F("WRONG", run, tag, f"audio {au} for a file without audio")
            wp = real(au if os.path.isabs(au) else os.path.join(os.path.dirname(mpath), au))
            wav_ids[wp].add(eid)
            if not os.path.exists(wp):
                F("WRONG", run, tag, f"wav {au} does not exist")
                continue
            if fold not in ("0", "1") and len(hits[c["id"]]) > 1:
                continue  # analysed once per case
            try:
                rate, ch, bits, _, x = wavtools.read_wav(wp)
            except (ValueError, OSError) as ex:
                F("WRONG", run, tag, f"wav {au} unreadable: {ex}")
                continue
            want_rate = (pr.get("audio") or {}).get("rate") if r.get("native_rate") else 24000
            if rate != want_rate or ch != 1:
                F("WRONG", run, tag, f"wav {rate} Hz x{ch}", f"expected {want_rate} Hz mono")
            a = wavtools.analyze(x, rate)
            if a["dur"] < 0.2:
                F("NOTE", run, tag, f"wav only {a['dur']:.2f} s: tone not checked")
                continue
            if a["freq"] is None:
                F("WRONG", run, tag, f"wav {au} is silent/toneless ({a['dur']:.2f} s)", f"source tone {c['tone']} Hz")
                continue
            if abs(a["freq"] - c["tone"]) > max(4.0, 0.005 * c["tone"]):
                other = min(BY_TONE.values(), key=lambda o: abs(o["tone"] - a["freq"]))
                F("WRONG", run, tag, f"wav {au} (id '{eid}') holds a {a['freq']:.0f} Hz tone = audio of {other['id']} "
                  f"({other['desc'][:50]})", f"expected this clip's {c['tone']} Hz")
                continue
            design, ref_on = c["onset"], pr.get("ref_onset")
            exp_on = ref_on if ref_on is not None else design
            if exp_on is not None and a["onset"] is not None and abs(a["onset"] - exp_on) > ONSET_TOL:
                F("WRONG", run, tag, f"A/V offset: tone starts at {a['onset']:.3f} s in the wav, at {exp_on:.3f} s "
                  f"of the video (design {design}); shift {a['onset'] - exp_on:+.3f} s",
                  "wav not aligned with the video timeline")
            wd = a["dur"]
            if abs(wd - dur) > DUR_TOL:
                if c["mismatch"]:
                    F("NOTE", run, tag, f"wav {wd:.2f} s vs video {dur:.2f} s (declared: {c['mismatch']})")
                else:
                    F("WRONG", run, tag, f"wav {wd:.2f} s vs manifest duration {dur:.2f} s", "no reason in the source")
        for eid, sps in id_splits.items():
            if len(set(sps)) > 1:
                F("WRONG", run, eid, f"{os.path.basename(mpath)}: id in splits {sorted(set(sps))}")
            elif len(sps) > 1:
                F("WRONG", run, eid, f"{os.path.basename(mpath)}: {len(sps)} identical entries")
    for wp, ids in wav_ids.items():
        if len(ids) > 1:
            F("WRONG", run, "/".join(sorted(ids)), f"ids {sorted(ids)} share one wav {os.path.basename(wp)}")
    for vp, ids in vid_ids.items():
        if len(ids) > 1:
            cs = by_real.get(vp, [])
            F("WRONG", run, "/".join(c["id"] for c in cs) or "-",
              f"one file indexed under ids {sorted(ids)}: {os.path.basename(vp)}")
    # per-case expectations
    def in_report(c):
        m, h = c.get("match"), c.get("id_hint")
        if m and "\0" in m:
            return None
        for u in unus:
            txt = str(u.get("path", "")) + " " + str(u.get("reason", ""))
            if (m and m in str(u.get("path", ""))) or (h and h in txt):
                return u
        return None
    for c in cases:
        got = hits.get(c["id"], [])
        u = in_report(c)
        STATUS.append((run, c["id"], c["expect"], "indexed" if got else ("reported" if u else "absent"),
                       ",".join(sorted({f"{fo}:{e.get('split')}" for fo, e in got})) or (str(u.get("reason"))[:90]
                                                                                       if u else "-"), c["desc"][:60]))
        if c["expect"] == "index":
            if not got:
                if u:
                    F("REJECTED", run, c["id"], f"reported unusable: {u.get('reason')}", f"{c['desc']}: {c['correct']}")
                else:
                    F("UNREPORTED", run, c["id"], "not indexed and not reported", f"{c['desc']}")
            else:
                missing_folds = [f for f in c["splits"] if f not in {fo for fo, _ in got}]
                if missing_folds:
                    F("WRONG", run, c["id"], f"absent from fold(s) {missing_folds}", f"{c['desc']}")
        elif c["expect"] == "index_or_skip":
            if not got and not u:
                F("UNREPORTED", run, c["id"], "neither indexed nor reported", c["desc"])
        elif c["expect"] in ("skip", "missing"):
            if not u and not got:
                F("UNREPORTED", run, c["id"], "not in prepare_report.json unusable", f"{c['desc']}: {c['correct']}")
            elif u and not str(u.get("reason", "")).strip():
                F("ERRMSG", run, c["id"], "reported without a reason")
        elif c["expect"] == "ignore" and u and c.get("match") and "\0" not in c["match"]:
            F("NOTE", run, c["id"], f"unlisted file reported: {u.get('reason')}")
    for u in unus:
        rs = str(u.get("reason", ""))
        if not rs.strip() or "\n" in rs.strip():
            F("ERRMSG", run, str(u.get("path"))[-40:], f"unusable reason not one line: {rs[:120]!r}")
    # counts
    if rep.get("indexed") is not None:
        if rep["indexed"] != len(all_ids):
            F("COUNTS", run, "-", f"indexed={rep['indexed']} but manifests hold {len(all_ids)} distinct ids")
        if rep.get("video_only") != len(vo_ids):
            F("COUNTS", run, "-", f"video_only={rep.get('video_only')} but {len(vo_ids)} ids have audio null")
        if rep.get("listed") != rep["indexed"] + len(unus):
            F("COUNTS", run, "-", f"listed={rep.get('listed')} != indexed {rep['indexed']} + unusable {len(unus)}")
        exp_listed = sum(1 for c in cases if c["expect"] != "ignore")
        if status["rc"] == 0 and rep.get("listed") != exp_listed:
            F("COUNTS", run, "-", f"listed={rep.get('listed')}, corpus lists {exp_listed} distinct clips",
              "duplicate rows counted twice and/or rows silently dropped")
        if classes is not None and rep.get("classes") != len(classes):
            F("COUNTS", run, "-", f"classes={rep.get('classes')} but classes.txt has {len(classes)} lines")
    if classes is not None and root_name in ("k400", "vgg"):
        norm = (lambda s: s.strip().replace("_", " ").lower()) if root_name == "k400" else (lambda s: s)
        want = sorted({norm(c["label"]) for c in cases if c["label"] and c["expect"] != "ignore"})
        lost = [w for w in want if w not in classes]
        if lost:
            F("WRONG", run, "-", f"classes.txt lacks annotated classes {lost}",
              "label indices depend on which files were downloaded")
    return res


def compare_rerun(r):
    a, b = os.path.join(OUT, "out", r["rerun_of"]), os.path.join(OUT, "out", r["name"])
    for fn in sorted(os.listdir(a)):
        if fn.endswith(".jsonl") or fn == "classes.txt":
            if rd(os.path.join(a, fn)) != rd(os.path.join(b, fn)):
                F("WRONG", r["name"], "-", f"{fn} differs from the first run")
    ra, rb = (json.load(open(os.path.join(d, "prepare_report.json"))) for d in (a, b))
    for k in ("listed", "indexed", "video_only", "classes"):
        if ra.get(k) != rb.get(k):
            F("WRONG", r["name"], "-", f"report {k}: {ra.get(k)} then {rb.get(k)}")


def main():
    rows = []
    for r in RUNS:
        st = check_run_status(r)
        res = {}
        if r.get("check") and st["rc"] not in (101, 124, 137):
            res = check_dataset(r, st)
        if r.get("rerun_of") and st["rc"] == 0:
            compare_rerun(r)
        n = defaultdict(int)
        for f in FIND:
            if f["run"] == r["name"]:
                n[f["sev"]] += 1
        rows.append((r["name"], st["rc"], st["secs"], res.get("listed"), res.get("indexed"), res.get("unusable"),
                     " ".join(f"{k}={n[k]}" for k in SEV_ORDER if n[k]) or "-", (st["err"] or [""])[0][:70]))
    json.dump(FIND, open(os.path.join(OUT, "findings.json"), "w"), indent=1, ensure_ascii=False)
    with open(os.path.join(OUT, "case_status.tsv"), "w") as f:
        f.write("run\tcase\texpect\toutcome\tdetail\tdesc\n")
        for row in STATUS:
            f.write("\t".join(str(x).replace("\t", " ").replace("\n", " ") for x in row) + "\n")
    out = []
    out.append(f"{'run':<20} {'rc':>3} {'secs':>6} {'list':>4} {'idx':>4} {'unus':>4}  findings / first stderr line")
    for name, rc, secs, li, ix, un, fs, err in rows:
        d = lambda v: "-" if v is None else str(v)
        out.append(f"{name:<20} {rc:>3} {secs:>6} {d(li):>4} {d(ix):>4} {d(un):>4}  {fs}" + (f"  | {err}" if err else ""))
    tot = defaultdict(int)
    for f in FIND:
        tot[f["sev"]] += 1
    out.append("")
    out.append("totals: " + ", ".join(f"{k} {tot[k]}" for k in SEV_ORDER if tot[k]))
    for sev in SEV_ORDER:
        fs = [f for f in FIND if f["sev"] == sev]
        if not fs:
            continue
        out.append(f"\n== {sev} ({len(fs)})")
        for f in fs:
            out.append(f"  [{f['run']}] {f['case']}: {f['what']}" + (f"  -- {f['why']}" if f["why"] else ""))
    text = "\n".join(out)
    open(os.path.join(OUT, "summary.txt"), "w").write(text + "\n")
    print(text)
    bad = sum(tot[k] for k in SEV_ORDER if k != "NOTE")
    sys.exit(1 if bad else 0)


main()
