"""Tiny wav reader and tone analysis (stdlib only), shared by make_corpus.py and check.py."""
import struct
from array import array


def read_wav(path):
    """-> (rate, channels, bits, is_float, mono samples as floats in [-1, 1]). Raises ValueError."""
    data = open(path, "rb").read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise ValueError("missing fmt or data chunk")
    tag, ch, rate, bits = fmt
    return rate, ch, bits, tag == 3, to_mono(pcm, tag, ch, bits)


def to_mono(pcm, tag, ch, bits):
    if tag == 3 and bits == 32:
        a = array("f")
        a.frombytes(pcm[: len(pcm) // 4 * 4])
        x = list(a)
    elif bits == 16:
        a = array("h")
        a.frombytes(pcm[: len(pcm) // 2 * 2])
        x = [v / 32768.0 for v in a]
    elif bits == 8:
        x = [(b - 128) / 128.0 for b in pcm]
    elif bits == 24:
        x = [int.from_bytes(pcm[i:i + 3], "little", signed=True) / 8388608.0 for i in range(0, len(pcm) - 2, 3)]
    elif bits == 32:
        a = array("i")
        a.frombytes(pcm[: len(pcm) // 4 * 4])
        x = [v / 2147483648.0 for v in a]
    else:
        raise ValueError(f"unsupported wav: format {tag}, {bits} bits")
    if ch > 1:
        x = [sum(x[i:i + ch]) / ch for i in range(0, len(x) - ch + 1, ch)]
    return x


def pcm16_mono(raw):
    a = array("h")
    a.frombytes(raw[: len(raw) // 2 * 2])
    return [v / 32768.0 for v in a]


def analyze(x, rate):
    """Tone onset (s), frequency (Hz, zero crossings with hysteresis over up to 1 s after the onset),
    duration (s) and peak window RMS. onset/freq are None for silence."""
    n = len(x)
    res = {"dur": n / rate if rate else 0.0, "onset": None, "freq": None, "rms": 0.0}
    if n == 0 or rate <= 0:
        return res
    w = max(1, int(rate * 0.005))
    rms = []
    for i in range(0, n - w + 1, w):
        seg = x[i:i + w]
        rms.append((sum(v * v for v in seg) / w) ** 0.5)
    if not rms:
        return res
    srt = sorted(rms)
    peak = srt[int(len(srt) * 0.9)] if len(srt) > 10 else srt[-1]
    res["rms"] = peak
    if peak < 1e-3:
        return res
    k = next(i for i, r in enumerate(rms) if r > 0.3 * peak)
    amp = max(abs(v) for v in x[k * w:(k + 1) * w]) or peak
    j = k * w
    while j < (k + 1) * w and abs(x[j]) < 0.3 * amp:
        j += 1
    # step back to the start of the rising envelope within the previous window
    res["onset"] = j / rate
    a = j + int(0.05 * rate)
    b = min(n, a + rate)
    if b - a > rate * 0.05:
        h = 0.1 * amp
        state, flips = 0, 0
        first = last = None
        for i in range(a, b):
            v = x[i]
            s = 1 if v > h else (-1 if v < -h else 0)
            if s and s != state:
                if state:
                    flips += 1
                    last = i
                    if first is None:
                        first = i
                state = s
        if flips >= 3 and last > first:
            res["freq"] = (flips - 1) / 2.0 / ((last - first) / rate)
    return res
