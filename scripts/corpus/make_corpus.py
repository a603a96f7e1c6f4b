#!/usr/bin/env python3
"""Build the svaclr `prepare` QA corpus under DEST (called by make_corpus.sh).

Every clip carries an identity tone (unique frequency per case) that is silent for the first `gate` seconds
of the audio stream, so check.py can tell (1) which case a wav really came from and (2) whether the wav is
aligned with the video's timeline (tone onset = gate + audio offset - video offset).

Writes DEST/roots/<root>/..., DEST/cases.json, DEST/runs.json, DEST/CASES.md.
Uses only python3 stdlib and the ffmpeg/ffprobe CLIs. Encoders run with -threads 1.
"""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wavtools  # noqa: E402

DEST = os.path.abspath(sys.argv[1])
ROOTS = os.path.join(DEST, "roots")
FF = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]

CASES = []  # per-clip cases
RUNS = []  # per-invocation cases
CSV = {}  # (root, relpath) -> list of lines (already formatted)
TONE = [300]


def next_tone():
    TONE[0] += 10
    return TONE[0]


def ytid(seed, n=11):
    """A deterministic 11-char YouTube-like id, letters and digits only, never ending in _digits."""
    al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    h = hashlib.sha256(seed.encode()).digest()
    s = "".join(al[b % len(al)] for b in h[:n])
    return "Q" + s[1:]


def rp(root, rel):
    return os.path.join(ROOTS, root, rel)


def wopen(p):
    mkdirs(p)
    return open(p, "w", newline="")


def mkdirs(p):
    os.makedirs(os.path.dirname(p), exist_ok=True)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{r.stderr}")
    return r.stdout


# ---------------------------------------------------------------- media
def gen(path, *, tone, vdur=3.0, adur=None, size="64x48", rate="25", ar=44100, ch="mono", vc=None, ac=None,
        fmt=None, aoff=0.0, voff=0.0, gate=0.5, video=True, audio=True, vf=None, extra=(), frames=None):
    """One synthetic clip. vc/ac: codec argument lists (defaults h264/aac)."""
    mkdirs(path)
    adur = vdur if adur is None else adur
    if (aoff or voff) and video and audio:
        # Encode each stream alone, then mux with -c copy so the offset becomes a container timestamp/edit-list
        # offset (re-encoding would make ffmpeg fill the gap with duplicated frames / shifted samples).
        tv, ta = path + ".v.mkv", path + ".a.mkv"
        kw = dict(tone=tone, vdur=vdur, adur=adur, size=size, rate=rate, ar=ar, ch=ch, vc=vc, ac=ac, gate=gate,
                  vf=vf, frames=frames)
        gen(tv, audio=False, **kw)
        gen(ta, video=False, **kw)
        cmd = list(FF)
        cmd += (["-itsoffset", str(voff)] if voff else []) + ["-i", tv]
        cmd += (["-itsoffset", str(aoff)] if aoff else []) + ["-i", ta]
        cmd += ["-map", "0:v", "-map", "1:a", "-c", "copy", *extra] + (["-f", fmt] if fmt else []) + [path]
        run(cmd)
        os.remove(tv)
        os.remove(ta)
        return
    cmd = list(FF)
    maps = []
    n = 0
    if video:
        cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={vdur}"]
        maps += ["-map", f"{n}:v"]
        n += 1
    if audio:
        expr = f"if(gte(t\\,{gate})\\,0.5*sin(2*PI*{tone}*t)\\,0)"
        cmd += ["-f", "lavfi", "-i", f"aevalsrc=exprs={expr}:s={ar}:d={adur}"]
        maps += ["-map", f"{n}:a"]
    cmd += maps
    if video:
        filt = [f for f in (vf, f"trim=end_frame={frames}" if frames else None) if f]
        if filt:
            cmd += ["-vf", ",".join(filt)]
        cmd += list(vc if vc is not None else ["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    if audio:
        if ch == "stereo":
            cmd += ["-ac", "2"]
        elif ch == "5.1":
            cmd += ["-af", "pan=5.1|FL=c0|FR=c0|FC=c0|LFE=c0|BL=c0|BR=c0"]
        cmd += list(ac if ac is not None else ["-c:a", "aac"])
        cmd += ["-ar", str(ar)]
    cmd += ["-threads", "1", *extra]
    if fmt:
        cmd += ["-f", fmt]
    cmd.append(path)
    run(cmd)


def probe(path):
    """Ground truth from ffprobe: packet-based stream spans (edit lists honoured), codecs, and the
    reference tone onset decoded by the ffmpeg CLI on the container timeline."""
    try:
        return _probe(path)
    except SystemExit:
        return {"error": "ffprobe failed"}


def _probe(path):
    out = {}
    j = json.loads(run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path]))
    for kind in ("video", "audio"):
        st = [s for s in j.get("streams", []) if s.get("codec_type") == kind]
        if not st:
            continue
        s = st[0]
        pk = json.loads(run(["ffprobe", "-v", "error", "-select_streams", kind[0] + ":0", "-show_entries",
                             "packet=pts_time,duration_time", "-of", "json", path])).get("packets", [])
        pts = [(float(p["pts_time"]), float(p.get("duration_time") or 0)) for p in pk
               if p.get("pts_time") not in (None, "N/A")]
        first = min(p for p, _ in pts) if pts else None
        last = max(p + d for p, d in pts) if pts else None
        out[kind] = {"codec": s.get("codec_name"), "first": first, "span": (last - first) if pts else None,
                     "packets": len(pts)}
        if kind == "audio":
            out[kind]["rate"] = int(s.get("sample_rate", 0))
            out[kind]["channels"] = s.get("channels")
        else:
            out[kind]["size"] = f"{s.get('width')}x{s.get('height')}"
            out[kind]["fps"] = s.get("avg_frame_rate")
    if "audio" in out:
        r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-af",
                            "aresample=async=1:first_pts=0", "-ac", "1", "-ar", "24000", "-f", "s16le", "-"],
                           capture_output=True)
        if r.returncode == 0:
            a = wavtools.analyze(wavtools.pcm16_mono(r.stdout), 24000)
            # the ffmpeg CLI decodes on the timeline shifted by the container start_time
            fstart = float(j.get("format", {}).get("start_time") or 0.0)
            vfirst = (out.get("video") or {}).get("first")
            vfirst = fstart if vfirst is None else vfirst
            out["ref_onset"] = None if a["onset"] is None else round(a["onset"] + fstart - vfirst, 3)
            out["ref_freq"] = a["freq"] and round(a["freq"], 1)
    return out


def clip(root, rel, **kw):
    """Generate a clip at ROOT/rel and return (abs path, probe)."""
    p = rp(root, rel)
    gen(p, **kw)
    return p, probe(p)


# ---------------------------------------------------------------- case records
def case(cid, root, desc, expect, correct, *, file=None, splits=None, label=None, tone=None, gate=0.5, aoff=0.0,
         voff=0.0, audio=True, mismatch=None, match=None, pr=None, id_hint=None, extra=None):
    """expect: index | skip | missing | ignore | index_or_skip
    splits: {fold: [allowed split names]} (fold "0" = single manifest.jsonl)
    match: substring identifying the case in prepare_report.json unusable paths (default: file name)."""
    c = {"id": cid, "root": root, "desc": desc, "expect": expect, "correct": correct, "file": file,
         "splits": splits or {}, "label": label, "tone": tone if audio else None,
         "onset": round(gate + aoff - voff, 3) if (audio and tone) else None, "audio": audio,
         "mismatch": mismatch, "match": match or (os.path.basename(file) if file else None),
         "probe": pr, "id_hint": id_hint}
    if extra:
        c.update(extra)
    CASES.append(c)
    return c


def csv_add(root, rel, line):
    CSV.setdefault((root, rel), []).append(line)


# ================================================================ Kinetics-Sounds
KS = "ks"
KS_HEADER = "label,youtube_id,time_start,time_end,split"
KS_N = [0]


def ks(cid, desc, *, expect="index", correct="indexed correctly", label="playing drums", split="train",
       csvfile="train.csv", media=None, kind="media", yid=None, start=None, end=None, fname=None, sub=None,
       ext="mp4", row=None, mismatch=None, gate=0.5, aoff=0.0, voff=0.0, audio=True, root=KS, listed=True,
       exp_split=None):
    KS_N[0] += 1
    yid = yid or ytid(cid)
    start = KS_N[0] * 10 if start is None else start
    end = start + 10 if end is None else end
    name = fname or f"{yid}_{start:06d}_{end:06d}.{ext}"
    rel = f"{sub or 'videos/' + split}/{name}"
    p = rp(root, rel)
    tone = None
    pr = None
    mkdirs(p)
    if kind == "media":
        tone = next_tone()
        m = dict(media or {})
        m.setdefault("gate", gate)
        m.setdefault("aoff", aoff)
        m.setdefault("voff", voff)
        m.setdefault("audio", audio)
        gen(p, tone=tone, **m)
        pr = probe(p)
    elif callable(kind):
        tone = kind(p)
        pr = probe(p) if os.path.isfile(p) and not stat.S_ISFIFO(os.stat(p).st_mode) else None
    elif kind == "none":
        rel = None
    if listed:
        q = lambda s: f'"{s}"' if ("," in s or '"' in s) else s
        csv_add(root, f"annotations/{csvfile}", row or f"{q(label)},{yid},{start},{end},{split}")
    case(cid, root, desc, expect, correct, file=rel, splits={"0": exp_split or [split]},
         label=label.strip().replace("_", " ").lower() if label else None, tone=tone, gate=gate, aoff=aoff,
         voff=voff, audio=audio and tone is not None, mismatch=mismatch,
         match=(f"{yid}_{start:06d}_{end:06d}" if expect == "missing" else None), pr=pr,
         id_hint=f"{yid}_{start:06d}_{end:06d}")
    return p


H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]


def build_ks():
    # containers / codecs
    ks("KS-01", "mp4 h264 (3 B-frames) + aac 44.1k stereo",
       media=dict(vc=H264 + ["-bf", "3"], ch="stereo"))
    ks("KS-02", "mp4 h264 29.97 fps + aac 48k", media=dict(rate="30000/1001", ar=48000), label="bowling")
    ks("KS-03", "mkv h264 + flac 48k", ext="mkv", media=dict(ac=["-c:a", "flac"], ar=48000), label="bowling")
    ks("KS-04", "webm vp8 + vorbis 44.1k", ext="webm",
       media=dict(vc=["-c:v", "libvpx", "-b:v", "200k"], ac=["-c:a", "libvorbis"]), label="laughing")
    ks("KS-05", "webm vp9 + opus 48k stereo", ext="webm",
       media=dict(vc=["-c:v", "libvpx-vp9", "-b:v", "200k", "-row-mt", "0"], ac=["-c:a", "libopus"], ar=48000,
                  ch="stereo"), label="laughing")
    ks("KS-06", "avi mpeg4 (xvid) + mp3 44.1k", ext="avi",
       media=dict(vc=["-c:v", "mpeg4", "-vtag", "xvid"], ac=["-c:a", "libmp3lame"]), label="singing")
    ks("KS-07", "avi mjpeg + pcm_s16le 22.05k", ext="avi",
       media=dict(vc=["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"], ac=["-c:a", "pcm_s16le"], ar=22050),
       label="singing")
    ks("KS-08", "mov h264 + pcm_s24le 48k stereo", ext="mov",
       media=dict(ac=["-c:a", "pcm_s24le"], ar=48000, ch="stereo"), label="tap dancing")
    ks("KS-09", "flv (flv1 video) + mp3 22.05k", ext="flv",
       media=dict(vc=["-c:v", "flv"], ac=["-c:a", "libmp3lame"], ar=22050), label="tap dancing")
    ks("KS-10", "3gp h263 128x96 + aac 8k mono", ext="3gp",
       media=dict(vc=["-c:v", "h263"], size="128x96", ar=8000), label="tickling")
    ks("KS-11", "MPEG-TS (h264 + mp2) named .mpg", ext="mpg",
       media=dict(ac=["-c:a", "mp2"], ar=48000, fmt="mpegts"), label="tickling")
    ks("KS-12", "MPEG-PS mpeg2video + mp2 (.mpeg)", ext="mpeg",
       media=dict(vc=["-c:v", "mpeg2video"], ac=["-c:a", "mp2"], ar=48000, fmt="vob"), label="shuffling cards")
    ks("KS-13", "ogv theora + vorbis", ext="ogv",
       media=dict(vc=["-c:v", "libtheora"], ac=["-c:a", "libvorbis"]), label="shuffling cards")
    ks("KS-14", "m4v h264 + aac", ext="m4v", media=dict(fmt="mp4"), label="ripping paper")
    ks("KS-15", "MPEG-TS named .ts (extension not in the scanned list)", ext="ts", media=dict(fmt="mpegts"),
       expect="index_or_skip", correct="indexed, or reported as listed-but-not-found (unsupported extension)",
       label="ripping paper")
    ks("KS-16", "mp4 hevc (libx265) + aac", media=dict(
        vc=["-c:v", "libx265", "-x265-params", "pools=1:frame-threads=1:log-level=error"]), label="bowling")
    # audio formats
    ks("KS-17", "mkv h264 + pcm_f32le 96 kHz stereo", ext="mkv",
       media=dict(ac=["-c:a", "pcm_f32le"], ar=96000, ch="stereo"), label="playing piano")
    ks("KS-18", "mkv h264 + pcm_s32le 11.025 kHz mono", ext="mkv",
       media=dict(ac=["-c:a", "pcm_s32le"], ar=11025), label="playing piano")
    ks("KS-19", "avi mpeg4 + pcm_u8 8 kHz mono", ext="avi",
       media=dict(vc=["-c:v", "mpeg4"], ac=["-c:a", "pcm_u8"], ar=8000), label="playing organ")
    ks("KS-20", "mov h264 + pcm_s16le 22.05k 5.1", ext="mov",
       media=dict(ac=["-c:a", "pcm_s16le"], ar=22050, ch="5.1"), label="playing organ")
    ks("KS-21", "mkv h264 + aac 5.1 48k", ext="mkv", media=dict(ar=48000, ch="5.1"), label="playing violin")
    ks("KS-22", "mp4 h264 + aac mono 8 kHz (1024-sample priming = 128 ms)", media=dict(ar=8000),
       label="playing violin")
    ks("KS-23", "mkv h264 + opus stereo 48k", ext="mkv",
       media=dict(ac=["-c:a", "libopus"], ar=48000, ch="stereo"), label="playing trumpet")
    ks("KS-24", "mp4 h264 + mp3 44.1k", media=dict(ac=["-c:a", "libmp3lame"]), label="playing trumpet")
    ks("KS-25", "mov h264 + pcm_f32le 44.1k", ext="mov", media=dict(ac=["-c:a", "pcm_f32le"]),
       label="playing xylophone")
    ks("KS-26", "avi mpeg4 + pcm_s24le 48k", ext="avi",
       media=dict(vc=["-c:v", "mpeg4"], ac=["-c:a", "pcm_s24le"], ar=48000), label="playing xylophone")
    # track structure
    ks("KS-27", "mp4 with no audio track", media=dict(audio=False), audio=False, expect="skip",
       correct="reported unusable: no audio track", label="blowing nose")
    ks("KS-28", "audio-only m4a content named .mp4", kind=lambda p: (
        gen(p, tone=(t := next_tone()), video=False, fmt="mp4"), t)[1], expect="skip",
       correct="reported unusable: no video stream", label="blowing nose")
    ks("KS-29", "mp4: video 2 s, audio 4 s", media=dict(vdur=2, adur=4), mismatch="audio longer than video",
       label="blowing out candles")
    ks("KS-30", "mkv: video 2 s, audio 4 s (mkv streams carry no duration)", ext="mkv",
       media=dict(vdur=2, adur=4), mismatch="audio longer than video", label="blowing out candles")
    ks("KS-31", "mp4: video 4 s, audio 1.6 s", media=dict(vdur=4, adur=1.6), mismatch="audio shorter than video",
       label="chopping wood")
    ks("KS-32", "mkv: audio starts 0.5 s late (-itsoffset 0.5)", ext="mkv", aoff=0.5, label="chopping wood",
       mismatch="audio offset 0.5 s", correct="indexed; wav aligned to the video (tone onset at 1.0 s)")
    ks("KS-33", "mp4: audio starts 0.5 s late (edit list)", aoff=0.5, label="dribbling basketball",
       mismatch="audio offset 0.5 s", correct="indexed; wav aligned to the video (tone onset at 1.0 s)")
    ks("KS-34", "mkv: audio starts 0.3 s early (-itsoffset -0.3)", ext="mkv", aoff=-0.3,
       label="dribbling basketball", mismatch="audio offset -0.3 s",
       correct="indexed; wav aligned to the video (tone onset at 0.2 s)")
    ks("KS-35", "mp4: audio starts 0.3 s early (-itsoffset -0.3)", aoff=-0.3, label="mowing lawn",
       mismatch="audio offset -0.3 s", correct="indexed; wav aligned to the video (tone onset at 0.2 s)")
    ks("KS-36", "mp4: video starts 0.5 s late (empty edit)", voff=0.5, label="mowing lawn",
       mismatch="video offset 0.5 s", correct="indexed; wav aligned to the video (tone onset at 0.0 s)")
    ks("KS-37", "audio track 0.6 s long (video 3 s)", media=dict(adur=0.6), expect="skip",
       correct="reported unusable: audio too short", label="playing accordion")
    ks("KS-38", "0.5 s clip", media=dict(vdur=0.5), expect="skip", correct="reported unusable: too short",
       label="playing accordion")
    ks("KS-39", "1-frame video + 3 s audio", media=dict(frames=1, adur=3), expect="skip",
       correct="reported unusable: too short (or indexed with a ~0.04 s duration)", label="playing bagpipes",
       mismatch="1-frame video")
    ks("KS-40", "audio file with cover art (attached_pic) named .mp4", kind=lambda p: (
        run(FF + ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1", "-f", "lavfi", "-i",
                  f"aevalsrc=exprs=if(gte(t\\,0.5)\\,0.5*sin(2*PI*{(t := next_tone())}*t)\\,0):s=44100:d=3",
                  "-map", "1:a", "-map", "0:v", "-frames:v", "1", "-c:v", "mjpeg", "-disposition:v:0",
                  "attached_pic", "-c:a", "aac", "-threads", "1", p]), t)[1],
       expect="skip", correct="reported unusable: no real video stream (cover art only)", label="playing bagpipes")
    # geometry / timing
    for i, (deg, lab) in enumerate([(90, "playing bass guitar"), (180, "playing bass guitar"),
                                    (270, "playing clarinet")]):
        def mk(p, deg=deg):
            t = next_tone()
            tmp = p + ".src.mp4"
            gen(tmp, tone=t)
            run(FF + ["-i", tmp, "-map", "0", "-c", "copy", "-metadata:s:v:0", f"rotate={deg}", p])
            os.remove(tmp)
            return t
        ks(f"KS-{41 + i}", f"rotation metadata {deg} (-c copy)", kind=mk, label=lab,
           correct="indexed (rotation is not represented in the manifest; frames must be checked in the loader)")
    ks("KS-44", "odd frame size 63x47 (h264 4:4:4)", media=dict(size="63x47", vc=["-c:v", "libx264",
                                                                               "-pix_fmt", "yuv444p"]),
       label="playing clarinet")
    ks("KS-45", "1 px tall frames (64x1, ffv1 in mkv)", ext="mkv",
       media=dict(vf="scale=64:1", vc=["-c:v", "ffv1"]), label="playing guitar")
    ks("KS-46", "4000x16 frames (h264)", media=dict(vf="scale=4000:16"), label="playing guitar")
    ks("KS-47", "variable frame rate mp4 (frames dropped, -fps_mode vfr)",
       media=dict(rate="30", vf="select='not(between(n\\,10\\,30))*not(between(n\\,50\\,55))'",
                  extra=["-fps_mode", "vfr"]), label="playing harmonica")
    ks("KS-48", "1 fps video (3 frames)", media=dict(rate="1"), label="playing harmonica")
    ks("KS-49", "120 fps video", media=dict(rate="120"), label="playing keyboard")
    # broken files
    ks("KS-50", "zero-byte .mp4", kind=lambda p: open(p, "wb").close(), expect="skip",
       correct="reported unusable: cannot open (empty file)", label="playing keyboard")

    def trunc(p, faststart):
        t = next_tone()
        tmp = p + ".full.mp4"
        gen(tmp, tone=t, extra=(["-movflags", "+faststart"] if faststart else []))
        data = open(tmp, "rb").read()
        open(p, "wb").write(data[: len(data) // 2])
        os.remove(tmp)
        return t
    ks("KS-51", "truncated mp4 (first half, moov at end -> no moov)", kind=lambda p: trunc(p, False),
       expect="skip", correct="reported unusable: cannot open / truncated", label="playing saxophone")
    ks("KS-52", "truncated mp4 (first half, faststart: header says 3 s, data 1.5 s)",
       kind=lambda p: trunc(p, True), expect="skip", correct="reported unusable: truncated",
       label="playing saxophone")

    def trunc_mkv(p):
        t = next_tone()
        tmp = p + ".full.mkv"
        gen(tmp, tone=t, vdur=4)
        data = open(tmp, "rb").read()
        open(p, "wb").write(data[: len(data) // 2])
        os.remove(tmp)
        return t
    ks("KS-53", "truncated mkv (first half of 4 s)", ext="mkv", kind=trunc_mkv, expect="index_or_skip",
       correct="reported unusable: truncated, or indexed with the decodable duration", label="playing trombone")
    ks("KS-54", "garbage bytes named .mp4", kind=lambda p: open(p, "wb").write(
        hashlib.sha256(b"x").digest() * 2000) and None, expect="skip", correct="reported unusable: cannot open",
       label="playing trombone")

    def corrupt_mid(p):
        t = next_tone()
        gen(p, tone=t, vdur=4)
        data = bytearray(open(p, "rb").read())
        n = len(data)
        data[n // 3: n // 3 + n // 8] = hashlib.sha256(b"y").digest() * (n // 8 // 32) + b"\0" * (n // 8 % 32)
        open(p, "wb").write(bytes(data))
        return t
    ks("KS-55", "mp4 with garbage overwriting 1/8 of the middle", kind=corrupt_mid, expect="index_or_skip",
       correct="indexed (start and end decode) or reported corrupt", label="shoveling snow")

    def wrong_ext(p):
        t = next_tone()
        tmp = p + ".tmp.mkv"
        gen(tmp, tone=t, ac=["-c:a", "libvorbis"])
        os.rename(tmp, p)
        return t
    ks("KS-56", "valid mkv (h264+vorbis) named .mp4", kind=wrong_ext, label="shoveling snow")

    def wrong_ext2(p):
        t = next_tone()
        tmp = p + ".tmp.mp4"
        gen(tmp, tone=t)
        os.rename(tmp, p)
        return t
    ks("KS-57", "valid mp4 named .avi", ext="avi", kind=wrong_ext2, label="stomping grapes")
    ks("KS-58", "dangling symlink", kind=lambda p: os.symlink("/nonexistent/clip.mp4", p), expect="skip",
       correct="reported unusable: cannot open (dangling symlink)", label="stomping grapes")

    def unreadable(p):
        t = next_tone()
        gen(p, tone=t)
        os.chmod(p, 0)
        return t
    ks("KS-59", "chmod 000 file (run as root: still readable, so indexing is correct)", kind=unreadable,
       expect="index_or_skip", correct="as root: indexed; as a user: reported unusable: permission denied",
       label="strumming guitar")
    ks("KS-60", "upper-case extension .MP4", ext="MP4", label="strumming guitar")
    # names
    ks("KS-61", "YouTube id with leading dash (-aB3_xY9zQ1)", yid="-aB3_xY9zQ1", label="tapping guitar")
    ks("KS-62", "YouTube id ending in _digits (abcdefg_123)", yid="abcdefg_123", label="tapping guitar")
    ks("KS-63", "file named <ytid>.mp4 (no times)", fname=f"{ytid('KS-63')}.mp4", label="tapping pen")
    ks("KS-64", "file in a class subfolder with a space (videos/train/playing drums/)",
       sub="videos/train/playing drums", label="playing drums")
    # macOS AppleDouble next to a good clip: the ._ file must not be taken for the clip
    p = ks("KS-65", "good clip with a macOS AppleDouble '._' twin (4 KB garbage)", label="tapping pen")
    ad = os.path.join(os.path.dirname(p), "._" + os.path.basename(p))
    open(ad, "wb").write(b"\0\5\26\7" + b"\0" * 4092)
    case("KS-65b", KS, "AppleDouble ._ file (not listed)", "ignore", "ignored (not listed)",
         file=os.path.relpath(ad, rp(KS, "")))
    # same stem in two containers: broken .mkv (sorts first) + good .mp4
    yid = ytid("KS-66")
    bad = rp(KS, f"videos/train/{yid}_000660_000670.mkv")
    mkdirs(bad)
    open(bad, "wb").close()
    ks("KS-66", "same clip as zero-byte .mkv (sorts first) and good .mp4", yid=yid, start=660,
       label="playing drums", correct="indexed from the good .mp4 (or the ambiguity reported)")
    case("KS-66b", KS, "zero-byte .mkv twin of KS-66 (same stem)", "ignore",
         "not used instead of the good file", file=os.path.relpath(bad, rp(KS, "")), match="\0never")
    # CSV quirks
    yid = ytid("KS-67")
    ks("KS-67", "two clips of one YouTube id listed; this one present", yid=yid, start=100, label="bowling")
    ks("KS-68", "two clips of one YouTube id listed; this one missing", yid=yid, start=300, kind="none",
       expect="missing", correct="reported: listed but not found (must not map to KS-67's file)",
       label="bowling")
    yid = ytid("KS-69")
    ks("KS-69", "clip listed in train.csv and validate.csv", yid=yid, start=690, label="playing piano",
       exp_split=["train", "val"], expect="index_or_skip",
       correct="one entry, or left out with the conflict reported; not one id per split on the same file")
    csv_add(KS, "annotations/validate.csv", f"playing piano,{yid},690,700,val")
    ks("KS-70", "label written Playing_Drums (case, underscore)", label="Playing_Drums")
    ks("KS-71", "quoted label field", row=None, label="playing drums", kind="media")
    CSV[(KS, "annotations/train.csv")][-1] = '"playing drums",' + CSV[(KS, "annotations/train.csv")][-1].split(",", 1)[1]
    ks("KS-72", "time_start/time_end written 12.0/22.0", start=12, end=22, label="singing")
    CSV[(KS, "annotations/train.csv")][-1] = CSV[(KS, "annotations/train.csv")][-1].replace(",12,22,", ",12.0,22.0,")
    ks("KS-73", "fields padded with spaces", label="singing")
    CSV[(KS, "annotations/train.csv")][-1] = " , ".join(CSV[(KS, "annotations/train.csv")][-1].split(","))
    ks("KS-74", "row with time fields missing ('bowling,<id>'); its file <id>_..._...mp4 exists", root="ks_badrow",
       label="bowling", expect="index_or_skip",
       correct="row reported as malformed (or indexed: the only file of that id); or a one-line error naming file:line")
    CSV[("ks_badrow", "annotations/train.csv")][-1] = "bowling," + ytid("KS-74")
    ks("KS-75", "listed clip with no file", kind="none", expect="missing",
       correct="reported: listed but not found", label="laughing")
    ks("KS-76", "non-Kinetics-Sounds class ('abseiling'), file present", label="abseiling", expect="ignore",
       correct="ignored (not a KS class), not counted")
    ks("KS-77", "validate.csv with CRLF line ends", label="bowling", split="val", csvfile="validate.csv")
    ks("KS-78", "validate.csv CRLF, second row", label="laughing", split="val", csvfile="validate.csv")
    ks("KS-79", "test.csv with UTF-8 BOM, row 1", label="singing", split="test", csvfile="test.csv")
    ks("KS-80", "test.csv with UTF-8 BOM, row 2", label="tickling", split="test", csvfile="test.csv")
    ks("KS-81", "split column 'validate' in train.csv", label="playing organ", split="validate",
       exp_split=["val"], sub="videos/val")
    # a valid symlink to a file outside the root (datasets assembled from symlinks)
    shared = os.path.join(DEST, "shared")

    def outside(p):
        t = next_tone()
        tgt = os.path.join(shared, "ks82_target.mp4")
        gen(tgt, tone=t)
        os.symlink(tgt, p)
        return t
    ks("KS-82", "valid symlink to a file outside the root", kind=outside, label="ripping paper")

    # write CSVs: header + rows; validate CRLF, test BOM
    for rel, eol, bom in (("train.csv", "\n", ""), ("validate.csv", "\r\n", ""), ("test.csv", "\n", "\ufeff")):
        lines = CSV.get((KS, f"annotations/{rel}"), [])
        p = rp(KS, f"annotations/{rel}")
        mkdirs(p)
        with open(p, "w", encoding="utf-8", newline="") as f:
            f.write(bom + eol.join([KS_HEADER] + lines) + eol)


# ================================================================ K400
K4 = "k400"


def build_k400():
    k = lambda cid, desc, **kw: ks(cid, desc, root=K4, **kw)
    k("K4-01", "plain mp4, non-KS class 'abseiling'", label="abseiling")
    k("K4-02", "label with apostrophe \"massaging person's head\"", label="massaging person's head")
    k("K4-03", "label with comma and parentheses (quoted)", label="passing American football (in game), x")
    k("K4-04", "label '  Abseiling ' (spaces/case)", label="  Abseiling ")
    CSV[(K4, "annotations/train.csv")][-1] = CSV[(K4, "annotations/train.csv")][-1].replace("  Abseiling ",
                                                                                          '"  Abseiling "')
    yid = ytid("K4-05")
    k("K4-05", "two clips of one id, both present (clip A)", yid=yid, start=30, label="bowling")
    k("K4-06", "two clips of one id, both present (clip B)", yid=yid, start=90, label="bowling")
    yid = ytid("K4-07")
    k("K4-07", "two clips of one id, only this one present", yid=yid, start=30, label="juggling balls")
    k("K4-08", "two clips of one id, this one missing", yid=yid, start=200, kind="none", expect="missing",
      correct="reported: listed but not found (must not map to K4-07's file)", label="juggling balls")
    p = k("K4-09", "exact duplicate row in train.csv", label="yoga", correct="indexed once")
    CSV[(K4, "annotations/train.csv")].append(CSV[(K4, "annotations/train.csv")][-1])
    k("K4-10", "only clip of class 'zumba' is missing", kind="none", expect="missing", label="zumba",
      correct="reported missing; classes.txt still lists 'zumba' (label indices must not depend on downloads)")
    # validate.csv with the columns in another order
    for cid, lab in (("K4-11", "yoga"), ("K4-12", "abseiling")):
        p = k(cid, "validate.csv with columns youtube_id,split,time_end,label,time_start", label=lab,
              split="val", csvfile="validate.csv")
        line = CSV[(K4, "annotations/validate.csv")][-1]
        lab_, yid_, s_, e_, sp_ = line.rsplit(",", 4) if line.count(",") == 4 else line.split(",")
        CSV[(K4, "annotations/validate.csv")][-1] = f"{yid_},{sp_},{e_},{lab_},{s_}"
    # test.csv without label column
    for cid in ("K4-13", "K4-14"):
        k(cid, "test.csv without a label column (header youtube_id,time_start,time_end,split)", label="",
          split="test", csvfile="test.csv", row=None)
    for i in (1, 2):
        line = CSV[(K4, "annotations/test.csv")][-i]
        CSV[(K4, "annotations/test.csv")][-i] = line.split(",", 1)[1]
    for c in CASES:
        if c["id"] in ("K4-13", "K4-14"):
            c["label"] = None
    k("K4-15", "video in train/<class>/ subfolder with apostrophe in the folder name",
      sub="train/massaging person's head", label="massaging person's head")
    k("K4-16", "file present but not in any CSV", label="yoga", listed=False, expect="ignore",
      correct="ignored (not listed)")
    for rel, header in (("train.csv", KS_HEADER), ("validate.csv", "youtube_id,split,time_end,label,time_start"),
                        ("test.csv", "youtube_id,time_start,time_end,split")):
        p = rp(K4, f"annotations/{rel}")
        mkdirs(p)
        with open(p, "w", encoding="utf-8", newline="") as f:
            f.write("\n".join([header] + CSV.get((K4, f"annotations/{rel}"), [])) + "\n")


# ================================================================ VGGSound
VG = "vgg"


def vg(cid, desc, *, yid=None, start=None, label="dog barking", split="train", expect="index",
       correct="indexed correctly", kind="media", media=None, fname=None, sub="video", root=VG, row=None,
       listed=True, exp_split=None, exp_label=None):
    yid = yid or ytid(cid)
    start = 30 if start is None else start
    name = fname or f"{yid}_{start:06d}.mp4"
    rel = f"{sub}/{name}"
    p = rp(root, rel)
    mkdirs(p)
    tone, pr = None, None
    if kind == "media":
        tone = next_tone()
        gen(p, tone=tone, **(media or {}))
        pr = probe(p)
    elif callable(kind):
        tone = kind(p)
        pr = probe(p)
    else:
        rel = None
    if listed:
        q = lambda s: '"' + s.replace('"', '""') + '"' if ("," in s or '"' in s) else s
        csv_add(root, "vggsound.csv", row or f"{q(yid)},{start},{q(label)},{split}")
    case(cid, root, desc, expect, correct, file=rel, splits={"0": exp_split or [split]},
         label=exp_label or label, tone=tone, match=(f"{yid}_{start:06d}" if expect == "missing" else None),
         pr=pr, id_hint=f"{yid}_{start:06d}")
    return p


def build_vgg():
    vg("VG-01", "BOM on the first line of vggsound.csv (this row)", label="dog barking")
    vg("VG-02", "plain row", label="dog barking", split="test")
    vg("VG-03", "quoted label with a comma", label="playing steel guitar, slide guitar")
    vg("VG-04", "quoted label with embedded quotes", label='people "shouting"')
    vg("VG-05", "leading-dash id -0BIyqJj9ZU", yid="-0BIyqJj9ZU", label="dog barking")
    vg("VG-06", "id with dashes/underscores --g-f_I2yQ", yid="--g-f_I2yQ", label="dog barking")
    vg("VG-07", "file named <id>_30.mp4 (start not zero-padded)", fname=f"{ytid('VG-07')}_30.mp4",
       label="cat meowing")
    vg("VG-08", "file named <id>_000030_000040.mp4", fname=f"{ytid('VG-08')}_000030_000040.mp4",
       label="cat meowing")
    vg("VG-09", "start written 30.0", label="cat meowing")
    CSV[(VG, "vggsound.csv")][-1] = CSV[(VG, "vggsound.csv")][-1].replace(",30,", ",30.0,")
    yid = ytid("VG-10")
    vg("VG-10", "two clips of one id; this one present", yid=yid, start=30, label="church bell ringing")
    vg("VG-11", "two clips of one id; this one missing", yid=yid, start=120, kind="none", expect="missing",
       label="church bell ringing", correct="reported: listed but not found (must not map to VG-10's file)")
    p = vg("VG-12", "same clip listed in train and test", label="church bell ringing",
           exp_split=["train", "test"], expect="index_or_skip",
           correct="one entry, or left out with the conflict reported; not two ids on one file")
    csv_add(VG, "vggsound.csv", CSV[(VG, "vggsound.csv")][-1].replace(",train", ",test"))
    vg("VG-13", "id 'café_clip1' (é, U+00E9)", yid="caf\u00e9_clip1", label="cat purring")
    vg("VG-14", "id 'cafè_clip1' (è, U+00E8; same safe_name as VG-13)", yid="caf\u00e8_clip1",
       label="cat purring")
    vg("VG-15", "id with a space 'ab cdefghij'", yid="ab cdefghij", label="cat purring")
    vg("VG-16", "id 'ab_cdefghij' (same safe_name as VG-15)", yid="ab_cdefghij", label="cat purring")
    vg("VG-17", "id containing a double quote", yid='ab"cdefghij', label="lions roaring")
    vg("VG-18", "200-character id (very long file name)", yid=("L" + "x" * 198 + "Z"), label="lions roaring")
    vg("VG-19", "listed clip with no file", kind="none", expect="missing", label="lions roaring",
       correct="reported: listed but not found")
    vg("VG-20", "only clip of class 'owl hooting' missing", kind="none", expect="missing", label="owl hooting",
       correct="reported; classes.txt still lists 'owl hooting'")
    vg("VG-21", "split 'holdout' (not train/test)", split="holdout", label="lions roaring", exp_split=["(none)"],
       expect="index_or_skip", correct="reported (unknown split) rather than silently put in train")
    vg("VG-22", "file nested 3 folders deep", sub="video/a/b/c", label="dog barking")
    vg("VG-23", "file present but not listed", listed=False, expect="ignore", correct="ignored")
    # symlink alias: VG-24 (train) real file, VG-25 (test) a symlink to it
    p24 = vg("VG-24", "clip A (train), target of VG-25's symlink", label="dog barking", expect="index_or_skip",
             correct="indexed once, or left out with the duplicate reported")

    def alias(p):
        os.symlink(os.path.basename(p24), p)
        return [c for c in CASES if c["id"] == "VG-24"][0]["tone"]
    vg("VG-25", "symlink (test split) to VG-24's file", kind=alias, split="test", label="dog barking",
       expect="index_or_skip", correct="reported as a duplicate of VG-24 (same file in train and test)")
    vg("VG-26", "row has a trailing extra field and spaces", label="dog barking")
    CSV[(VG, "vggsound.csv")][-1] += ", extra"
    lines = CSV[(VG, "vggsound.csv")]
    with open(rp(VG, "vggsound.csv"), "w", encoding="utf-8", newline="") as f:
        f.write("\ufeff" + "\r\n".join(lines[:3]) + "\r\n" + "\n".join(lines[3:]) + "\n\n")


# ================================================================ UCF101
UC = "ucf"
UCF_CLASSES = ["ApplyEyeMakeup", "Bowling", "Drumming", "HandstandPushups", "PlayingGuitar"]


def uc(cid, desc, cls, g, c, *, folds=("train", "train", "train"), expect="index", correct="indexed correctly",
       kind="media", media=None, dirname=None, fname=None, list_name=None, listed=True, audio=True,
       exp=None):
    name = fname or f"v_{cls}_g{g:02d}_c{c:02d}.avi"
    rel = f"UCF-101/{dirname or cls}/{name}"
    p = rp(UC, rel)
    mkdirs(p)
    tone, pr = None, None
    if kind == "media":
        tone = next_tone()
        m = dict(vc=["-c:v", "mpeg4", "-vtag", "xvid"], ac=["-c:a", "libmp3lame"], size="64x48", audio=audio)
        m.update(media or {})
        gen(p, tone=tone, **m)
        pr = probe(p)
    elif callable(kind):
        tone = kind(p)
        pr = probe(p)
    else:
        rel = None
    lname = list_name or f"{cls}/{name}"
    if listed:
        for i, sp in enumerate(folds):
            if sp is None:
                continue
            if sp == "train":
                csv_add(UC, f"ucfTrainTestlist/trainlist{i + 1:02d}.txt",
                        f"{lname} {UCF_CLASSES.index(cls) + 1 if cls in UCF_CLASSES else 1}")
            else:
                csv_add(UC, f"ucfTrainTestlist/testlist{i + 1:02d}.txt", lname)
    splits = exp or {str(i + 1): [sp] for i, sp in enumerate(folds) if sp}
    case(cid, UC, desc, expect, correct, file=rel, splits=splits, label=cls, tone=tone if audio else None,
         audio=audio and tone is not None, pr=pr, match=(name if expect == "missing" else None),
         id_hint=os.path.splitext(name)[0])
    return p


def build_ucf():
    uc("UC-01", "avi xvid + mp3, train/test/train", "ApplyEyeMakeup", 1, 1, folds=("train", "test", "train"))
    uc("UC-02", "avi xvid, no audio (video-only)", "ApplyEyeMakeup", 1, 2, audio=False,
       correct="indexed video-only (audio null), counted in video_only")
    uc("UC-03", "avi xvid + mp3 48k stereo", "Bowling", 2, 1, folds=("test", "train", "train"),
       media=dict(ar=48000, ch="stereo"))
    uc("UC-04", "avi xvid + pcm_s16le 44.1k", "Bowling", 2, 2, media=dict(ac=["-c:a", "pcm_s16le"]))
    uc("UC-05", "real-UCF quirk: dir HandStandPushups, list says HandstandPushups/v_HandStandPushups_*",
       "HandstandPushups", 3, 1, dirname="HandStandPushups", fname="v_HandStandPushups_g03_c01.avi")
    # same file name in two class folders: listed one under Drumming, a different clip under Bowling
    uc("UC-06", "listed Drumming/v_Drumming_g01_c02.avi", "Drumming", 1, 2)
    uc("UC-07", "different clip with the same name under Bowling/ (not listed)", "Drumming", 1, 2,
       dirname="Bowling", listed=False, expect="ignore",
       correct="ignored; must not replace UC-06's file (lookup by the listed relative path)")
    uc("UC-08", "listed in all folds, file missing", "Drumming", 9, 1, kind="none", expect="missing",
       correct="reported: listed but not found")
    uc("UC-09", "listed only in fold 2 (test), file missing", "Drumming", 9, 2, kind="none",
       folds=(None, "test", None), expect="missing", correct="reported: listed but not found")
    uc("UC-10", "in trainlist01 and testlist01", "PlayingGuitar", 4, 1,
       exp={"1": ["train", "test"], "2": ["train"], "3": ["train"]}, expect="index_or_skip",
       correct="left out with the conflict reported (or indexed consistently); not one id in two splits of fold 1")
    csv_add(UC, "ucfTrainTestlist/testlist01.txt", "PlayingGuitar/v_PlayingGuitar_g04_c01.avi")
    uc("UC-11", "Windows backslash path in testlist", "PlayingGuitar", 4, 2, folds=("test", "train", "train"),
       list_name="PlayingGuitar\\v_PlayingGuitar_g04_c02.avi")
    uc("UC-12", "file name with a space ('v_PlayingGuitar_g05_c01 copy.avi'), listed", "PlayingGuitar", 5, 1,
       fname="v_PlayingGuitar_g05_c01 copy.avi", correct="indexed (or the list line reported as malformed)")
    uc("UC-13", "present but unlisted", "PlayingGuitar", 6, 1, listed=False, expect="ignore", correct="ignored")
    uc("UC-14", "garbage bytes .avi, listed", "ApplyEyeMakeup", 7, 1, kind=lambda p: open(p, "wb").write(
        b"RIFF\x10\x00\x00\x00AVI LIST" + b"\xff" * 3000) and None, expect="skip",
       correct="reported unusable: cannot open")
    uc("UC-15", "avi mjpeg + pcm_u8 8k, rotate=90", "Bowling", 7, 2,
       media=dict(vc=["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"], ac=["-c:a", "pcm_u8"], ar=8000,
                  extra=["-metadata:s:v:0", "rotate=90"]))
    uc("UC-16", "video 3 s, audio 1.5 s", "Drumming", 8, 1, media=dict(adur=1.5))
    [c for c in CASES if c["id"] == "UC-16"][0]["mismatch"] = "audio shorter than video"
    uc("UC-17", "video 0.6 s", "Drumming", 8, 2, media=dict(vdur=0.6), expect="skip",
       correct="reported unusable: too short")
    p = rp(UC, "ucfTrainTestlist/classInd.txt")
    mkdirs(p)
    with open(p, "w", newline="") as f:
        f.write("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(UCF_CLASSES)))
    for (root, rel), lines in CSV.items():
        if root == UC:
            with open(rp(UC, rel), "w", newline="") as f:
                f.write("\r\n".join(lines) + "\r\n")
    for i in (1, 2, 3):  # every list exists even if empty
        for s in ("train", "test"):
            q = rp(UC, f"ucfTrainTestlist/{s}list{i:02d}.txt")
            if not os.path.exists(q):
                open(q, "w").close()


# ================================================================ HMDB51
HM = "hmdb"


def hm(cid, desc, cls, name, *, marks=(1, 1, 1), expect="index", correct="indexed correctly", kind="media",
       media=None, sub=None, listed=True, audio=True, exp=None, list_cls=None):
    rel = f"{sub or cls}/{name}"
    p = rp(HM, rel)
    mkdirs(p)
    tone, pr = None, None
    if kind == "media":
        tone = next_tone()
        m = dict(vc=["-c:v", "mpeg4", "-vtag", "xvid"], ac=["-c:a", "libmp3lame"], audio=audio)
        m.update(media or {})
        gen(p, tone=tone, **m)
        pr = probe(p)
    else:
        rel = None
    if listed:
        for i, mk in enumerate(marks):
            if mk is not None:
                csv_add(HM, f"testTrainMulti_7030_splits/{list_cls or cls}_test_split{i + 1}.txt", f"{name} {mk} ")
    sp = {1: "train", 2: "test"}
    splits = exp or {str(i + 1): [sp[m]] for i, m in enumerate(marks) if m in (1, 2)}
    case(cid, HM, desc, expect, correct, file=rel, splits=splits, label=cls, tone=tone if audio else None,
         audio=audio and tone is not None, pr=pr, match=(name if expect == "missing" else None),
         id_hint=os.path.splitext(name)[0])
    return p


def build_hmdb():
    hm("HM-01", "avi xvid + mp3, marks 1/2/1", "brush_hair", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
       marks=(1, 2, 1))
    hm("HM-02", "no audio (video-only)", "brush_hair", "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi",
       audio=False, correct="indexed video-only (audio null)")
    hm("HM-03", "name with apostrophe and dashes (real HMDB style)", "eat",
       "Pirates_of_the_Caribbean_3_-_At_World's_End_eat_h_cm_np1_fr_med_1.avi", marks=(2, 1, 1))
    hm("HM-04", "name starting with '#'", "eat", "#122_Cleaning_Up_eat_h_nm_np1_fr_bad_0.avi")
    hm("HM-05", "unicode name Café_... (é)", "eat", "Caf\u00e9_eat_f_cm_np1_fr_med_0.avi")
    hm("HM-06", "unicode name Cafè_... (è; same safe_name as HM-05)", "eat", "Caf\u00e8_eat_f_cm_np1_fr_med_0.avi")
    hm("HM-07", "name with a space 'Big Fish_laugh_...', listed", "laugh", "Big Fish_laugh_h_nm_np1_fr_goo_0.avi",
       correct="indexed (name = everything before the last field), or reported malformed; not silently dropped")
    hm("HM-08", "name 'Big_Fish_laugh_...' (same safe_name as HM-07)", "laugh",
       "Big_Fish_laugh_h_nm_np1_fr_goo_0.avi")
    hm("HM-09", "mark 0 in every fold", "laugh", "Unused_laugh_h_nm_np1_fr_goo_0.avi", marks=(0, 0, 0),
       expect="ignore", correct="not indexed (unused), not reported")
    hm("HM-10", "listed in two classes' split files (laugh: 1, eat: 2)", "laugh",
       "Twice_laugh_h_nm_np1_fr_goo_0.avi", marks=(1, 1, 1), exp={"1": ["train", "test"], "2": ["train"],
                                                                   "3": ["train"]},
       expect="index_or_skip", correct="left out with the conflict reported; not one id in two splits / two labels")
    csv_add(HM, "testTrainMulti_7030_splits/eat_test_split1.txt", "Twice_laugh_h_nm_np1_fr_goo_0.avi 2 ")
    hm("HM-11", "missing, listed in fold 1", "drink", "Gone_drink_h_nm_np1_fr_goo_0.avi", kind="none",
       expect="missing", correct="reported: listed but not found")
    hm("HM-12", "missing, listed only in fold 2 (mark 0 in 1 and 3)", "drink", "Gone2_drink_h_nm_np1_fr_goo_0.avi",
       kind="none", marks=(0, 2, 0), expect="missing", correct="reported: listed but not found")
    hm("HM-13", "file 3 folders deep (drink/extra/a/b/)", "drink", "Deep_drink_h_nm_np1_fr_goo_0.avi",
       sub="drink/extra/a/b")
    hm("HM-14", "leading dash name", "drink", "-dash_drink_u_cm_np1_fr_med_0.avi")
    hm("HM-15", "very long name (220 chars)", "drink", "L" * 196 + "_drink_u_cm_np1_fr_med_0.avi")
    hm("HM-16", "split file for class 'ride_horse' (no folder), file missing", "ride_horse",
       "Horse_ride_horse_f_cm_np1_le_bad_0.avi", kind="none", expect="missing",
       correct="reported: listed but not found")
    hm("HM-17", "mp4 content named .avi, 48k stereo aac", "cartwheel", "Mp4inside_cartwheel_f_cm_np1_le_med_0.avi",
       media=dict(vc=H264, ac=["-c:a", "aac"], ar=48000, ch="stereo", fmt="mp4"))
    hm("HM-18", "zero-byte .avi, listed", "cartwheel", "Empty_cartwheel_f_cm_np1_le_med_0.avi", kind="none",
       expect="skip", correct="reported unusable: cannot open")
    open(rp(HM, "cartwheel/Empty_cartwheel_f_cm_np1_le_med_0.avi"), "wb").close()
    CASES[-1]["file"] = "cartwheel/Empty_cartwheel_f_cm_np1_le_med_0.avi"
    CASES[-1]["match"] = "Empty_cartwheel"
    # extra split file with fold 4: must be ignored
    csv_add(HM, "testTrainMulti_7030_splits/cartwheel_test_split4.txt", "Mp4inside_cartwheel_f_cm_np1_le_med_0.avi 2 ")
    for (root, rel), lines in CSV.items():
        if root == HM:
            p = rp(HM, rel)
            mkdirs(p)
            with open(p, "w", newline="") as f:
                f.write("\n".join(lines) + "\n")


# ================================================================ variant roots and runs
def build_variants():
    # ks_emptyid: one good row + a row with an empty youtube_id
    ks("VA-01", "KS root: good row next to a row with an empty youtube_id", root="ks_emptyid", label="bowling",
       correct="good row indexed, bad row reported (or a one-line error naming file:line)",
       expect="index_or_skip")
    csv_add("ks_emptyid", "annotations/train.csv", "bowling,,10,20,train")
    p = rp("ks_emptyid", "annotations/train.csv")
    with wopen(p) as f:
        f.write("\n".join([KS_HEADER] + CSV[("ks_emptyid", "annotations/train.csv")]) + "\n")
    # k400_noann: <split>/<class>/<video>
    for cid, split, cls in (("VA-02", "train", "abseiling"), ("VA-03", "val", "bowling"),
                            ("VA-04", "test", "yoga")):
        ks(cid, f"k400 without CSVs: {split}/{cls}/<video>", root="k400_noann", sub=f"{split}/{cls}", label=cls,
           split=split, listed=False)
    ks("VA-14", "ks_badrow: good row before the malformed KS-74 row", root="ks_badrow", label="laughing",
       expect="index_or_skip", correct="indexed, or the run stops with a one-line error naming the bad row")
    r = CSV[("ks_badrow", "annotations/train.csv")]
    r[0], r[1] = r[1], r[0]
    with wopen(rp("ks_badrow", "annotations/train.csv")) as f:
        f.write("\n".join([KS_HEADER] + r) + "\n")
    # ks_fifo: a FIFO named like a clip next to a good clip (hang test)
    ks("VA-05", "KS root: good clip next to a FIFO", root="ks_fifo", label="bowling")
    ks("VA-06", "FIFO named <ytid>_..._....mp4 and listed", root="ks_fifo", label="bowling",
       kind=lambda p: os.mkfifo(p), expect="skip", correct="reported unusable (not a regular file); no hang")
    with wopen(rp("ks_fifo", "annotations/train.csv"), ) as f:
        f.write("\n".join([KS_HEADER] + CSV[("ks_fifo", "annotations/train.csv")]) + "\n")
    # ks_tiny: run with --min-duration 0
    ks("VA-07", "1-frame video + audio, --min-duration 0", root="ks_tiny", label="bowling",
       media=dict(frames=1, adur=3), expect="index_or_skip",
       correct="indexed with its ~0.04 s duration, or reported; no panic", mismatch="1-frame video")
    ks("VA-08", "0.3 s clip, --min-duration 0", root="ks_tiny", label="bowling", media=dict(vdur=0.3), gate=0.0,
       expect="index_or_skip", correct="indexed or reported; no panic", mismatch="0.3 s clip")
    ks("VA-09", "3 s clip, audio 0.05 s, --min-duration 0", root="ks_tiny", label="bowling",
       media=dict(adur=0.05), gate=0.0, expect="index_or_skip", correct="indexed or reported; no panic",
       mismatch="audio 0.05 s")
    with wopen(rp("ks_tiny", "annotations/train.csv"), ) as f:
        f.write("\n".join([KS_HEADER] + CSV[("ks_tiny", "annotations/train.csv")]) + "\n")
    # vgg_small: headered CSV, 2 clips (also used by the argument runs)
    vg("VA-10", "vggsound.csv with a header line", root="vgg_small", label="dog barking")
    vg("VA-11", "second clip (44.1k stereo)", root="vgg_small", label="cat meowing", split="test",
       media=dict(ch="stereo"))
    with wopen(rp("vgg_small", "vggsound.csv"), ) as f:
        f.write("# YouTube ID, start seconds, label, train/test split\n" + "\n".join(CSV[("vgg_small",
                                                                                         "vggsound.csv")]) + "\n")
    # vgg_shortrow: good row + a 3-field row
    vg("VA-12", "vgg root: good row next to a 3-field row", root="vgg_shortrow", label="dog barking",
       expect="index_or_skip", correct="good row indexed and bad row reported, or one-line error naming file:line")
    with wopen(rp("vgg_shortrow", "vggsound.csv"), ) as f:
        f.write(CSV[("vgg_shortrow", "vggsound.csv")][0] + "\n" + "abcdefghijk,30,dog barking\n")
    # vgg_badstart
    vg("VA-13", "vgg root: good row next to start_seconds 'abc' on line 2", root="vgg_badstart",
       label="dog barking", expect="index_or_skip",
       correct="good row indexed and bad row reported, or one-line error naming file:line")
    with wopen(rp("vgg_badstart", "vggsound.csv"), ) as f:
        f.write(CSV[("vgg_badstart", "vggsound.csv")][0] + "\nabcdefghijk,abc,dog barking,train\n")
    # roots with missing annotations
    gen(rp("vgg_nocsv", "video/abcdefghijk_000030.mp4"), tone=next_tone())
    gen(rp("k400_flat", "abcdefghijk_000010_000020.mp4"), tone=next_tone())
    gen(rp("ucf_noclassind", "UCF-101/Bowling/v_Bowling_g01_c01.avi"), tone=next_tone(),
        vc=["-c:v", "mpeg4"], ac=["-c:a", "libmp3lame"])
    os.makedirs(rp("ucf_noclassind", "ucfTrainTestlist"), exist_ok=True)
    with wopen(rp("ucf_noclassind", "ucfTrainTestlist/trainlist01.txt"), ) as f:
        f.write("Bowling/v_Bowling_g01_c01.avi 1\n")
    gen(rp("ucf_nolists", "UCF-101/Bowling/v_Bowling_g01_c01.avi"), tone=next_tone(),
        vc=["-c:v", "mpeg4"], ac=["-c:a", "libmp3lame"])
    os.makedirs(rp("ucf_nolists", "ucfTrainTestlist"), exist_ok=True)
    with wopen(rp("ucf_nolists", "ucfTrainTestlist/classInd.txt"), ) as f:
        f.write("1 Bowling\n")
    gen(rp("hmdb_nosplits", "eat/x_eat_h_nm_np1_fr_goo_0.avi"), tone=next_tone(), vc=["-c:v", "mpeg4"],
        ac=["-c:a", "libmp3lame"])
    os.makedirs(rp("empty", ""), exist_ok=True)
    with wopen(rp("", "root_is_a_file"), ) as f:
        f.write("not a folder\n")


def build_runs():
    R = lambda name, dataset, root, expect, correct, args=(), check=None, **kw: RUNS.append(
        dict(name=name, dataset=dataset, root=root, args=list(args), expect=expect, correct=correct,
             check=check, **kw))
    R("ks", "kinetics-sounds", "ks", "ok", "exit 0, one summary line; clip cases as listed", check="ks")
    R("ks-rerun", "kinetics-sounds", "ks", "ok", "second run into the same OUT: identical manifests and report "
      "counts (wavs reused)", check="ks", rerun_of="ks")
    R("k400", "k400", "k400", "ok", "exit 0; clip cases as listed", check="k400")
    R("vggsound", "vggsound", "vgg", "ok", "exit 0; clip cases as listed", check="vgg")
    R("ucf101", "ucf101", "ucf", "ok", "exit 0; fold manifests 1-3", check="ucf")
    R("hmdb51", "hmdb51", "hmdb", "ok", "exit 0; fold manifests 1-3", check="hmdb")
    R("ks-emptyid", "kinetics-sounds", "ks_emptyid", "ok_or_error",
      "good row indexed + bad row reported, or one-line error naming annotations/train.csv:3", check="ks_emptyid")
    R("ks-badrow", "kinetics-sounds", "ks_badrow", "ok_or_error",
      "malformed row reported (good row indexed), or one-line error naming annotations/train.csv:3",
      check="ks_badrow", err_must=["train.csv:3"])
    R("k400-noann", "k400", "k400_noann", "ok", "indexed from <split>/<class>/ folders", check="k400_noann")
    R("ks-fifo", "kinetics-sounds", "ks_fifo", "ok", "no hang; FIFO reported unusable", check="ks_fifo")
    R("ks-tiny-min0", "kinetics-sounds", "ks_tiny", "ok_or_error", "no panic; tiny clips indexed or reported",
      args=["--min-duration", "0"], check="ks_tiny")
    R("vgg-small", "vggsound", "vgg_small", "ok", "header line skipped, 2 clips indexed", check="vgg_small")
    R("vgg-shortrow", "vggsound", "vgg_shortrow", "ok_or_error", "bad row reported or one-line error with file:line",
      check="vgg_shortrow", err_must=["vggsound.csv:2"])
    R("vgg-badstart", "vggsound", "vgg_badstart", "ok_or_error", "bad row reported or one-line error with file:line",
      check="vgg_badstart", err_must=["vggsound.csv:2"])
    R("vgg-nocsv", "vggsound", "vgg_nocsv", "error", "one-line error: vggsound.csv not found",
      err_must=["vggsound.csv"])
    R("k400-flat", "k400", "k400_flat", "error", "one-line error: no annotation CSV and no <split>/<class> folders")
    R("ucf-noclassind", "ucf101", "ucf_noclassind", "error", "one-line error: classInd.txt not found",
      err_must=["classInd"])
    R("ucf-nolists", "ucf101", "ucf_nolists", "error", "one-line error: no train/test lists",
      err_must=["list"])
    R("hmdb-nosplits", "hmdb51", "hmdb_nosplits", "error", "one-line error: no split files")
    for d in ("kinetics-sounds", "k400", "vggsound", "ucf101", "hmdb51"):
        R(f"empty-{d}", d, "empty", "error", "one-line error naming the root and what is missing")
    R("root-is-file", "k400", "root_is_a_file", "error", "one-line error: root is not a directory",
      err_must=["root_is_a_file"])
    R("root-missing", "k400", "no_such_root", "error", "one-line error: root not found",
      err_must=["no_such_root"])
    R("unknown-dataset", "imagenet", "vgg_small", "error", "one-line error listing the datasets (clap-level ok)")
    R("audio-rate-1", "vggsound", "vgg_small", "error", "rejected: --audio-rate 1 cannot hold audio",
      args=["--audio-rate", "1"])
    R("audio-rate-0", "vggsound", "vgg_small", "ok", "documented: 0 keeps native rates; wavs at 44.1k",
      args=["--audio-rate", "0"], check="vgg_small", native_rate=True)
    R("audio-rate-abc", "vggsound", "vgg_small", "error", "clap error", args=["--audio-rate", "abc"])
    R("min-duration-neg", "vggsound", "vgg_small", "error", "rejected: --min-duration must be >= 0",
      args=["--min-duration=-1"])
    R("min-duration-nan", "vggsound", "vgg_small", "error", "rejected: --min-duration NaN",
      args=["--min-duration", "NaN"])
    R("out-is-file", "vggsound", "vgg_small", "error", "one-line error: --out is a file", out_is_file=True)
    R("vgg-small-swap", "vggsound", "vgg_small", "ok", "second run after VA-11's video was copied over VA-10's "
      "file: VA-10's wav re-extracted (VA-11's tone), not the stale one", check="vgg_small",
      swap={"dst": "VA-10", "src": "VA-11"})
    R("out-equals-root", "vggsound", "vgg_small", "ok", "both clips indexed (or a one-line refusal), not "
      "'file not found' for every clip", out_equals_root=True, check="vgg_small")


def write_md():
    L = ["# svaclr prepare QA corpus: cases", "",
         "Generated by make_corpus.sh. Clip cases: one row per file (or listed-but-absent clip); run cases: one row",
         "per `svaclr prepare` invocation. expect: index = in the manifest(s) with the given splits/label and an",
         "aligned wav of its own tone; skip = in prepare_report.json `unusable` with a reason; missing = listed but",
         "absent, must be reported; ignore = neither indexed nor reported; index_or_skip = either, but if indexed",
         "then correctly. Note: the corpus is built as root, so the chmod 000 case (KS-59) stays readable.", "",
         "| case | root | what | expect | correct behaviour |", "|---|---|---|---|---|"]
    for c in CASES:
        desc = c["desc"].replace("|", "\\|")
        L.append(f"| {c['id']} | {c['root']} | {desc} | {c['expect']} | {c['correct'].replace('|', '/')} |")
    L += ["", "| run | dataset | root | args | expect | correct behaviour |", "|---|---|---|---|---|---|"]
    for r in RUNS:
        L.append(f"| RUN-{r['name']} | {r['dataset']} | {r['root']} | {' '.join(r['args'])} | {r['expect']} | "
                 f"{r['correct']} |")
    L += ["", f"{len(CASES)} clip cases + {len(RUNS)} run cases = {len(CASES) + len(RUNS)}."]
    return "\n".join(L) + "\n"


def main():
    if os.path.exists(DEST):
        # chmod-000 files and FIFOs are fine to remove
        shutil.rmtree(DEST)
    os.makedirs(ROOTS)
    steps = [("ks", build_ks), ("k400", build_k400), ("vgg", build_vgg), ("ucf", build_ucf),
             ("hmdb", build_hmdb), ("variants", build_variants)]
    for name, fn in steps:
        n0 = len(CASES)
        fn()
        print(f"  {name}: {len(CASES) - n0} cases", flush=True)
    build_runs()
    # sanity: tone uniqueness
    tones = [c["tone"] for c in CASES if c["tone"]]
    assert len(tones) == len(set(tones)) + sum(1 for c in CASES if c["id"] == "VG-25"), "tones not unique"
    json.dump({"dest": DEST, "cases": CASES}, open(os.path.join(DEST, "cases.json"), "w"), indent=1,
              ensure_ascii=False)
    json.dump(RUNS, open(os.path.join(DEST, "runs.json"), "w"), indent=1)
    md = write_md()
    open(os.path.join(DEST, "CASES.md"), "w").write(md)
    print(f"{len(CASES)} clip cases, {len(RUNS)} run cases")


main()
