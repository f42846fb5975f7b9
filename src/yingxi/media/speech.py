"""Speech synthesis with espeak-ng: small, offline, many languages; good enough for dialogue in an animatic."""

from __future__ import annotations

import difflib
import functools
import re
import shutil
import struct
import subprocess

import av
import numpy as np

from yingxi.errors import InputError, YingxiError

ESPEAK = "espeak-ng"
_INSTALL_HINT = "espeak-ng is not installed; run `make` (it installs it) or `apt-get install espeak-ng`"


def _espeak() -> str:
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise YingxiError(_INSTALL_HINT)
    return exe


def _run(args: list[str], text: str | None = None) -> subprocess.CompletedProcess[bytes]:
    data = text.encode("utf-8") if text is not None else None
    # Text goes in on stdin, so a line starting with "-" is never taken for an option.
    return subprocess.run([_espeak(), *args], input=data, capture_output=True, timeout=120, check=False)


def _table(args: list[str]) -> list[list[str]]:
    """Rows of `espeak-ng --voices` output, split on whitespace (header dropped)."""
    out = _run(args).stdout.decode("utf-8", "replace").splitlines()
    return [line.split() for line in out[1:] if line.strip()]


@functools.lru_cache(maxsize=1)
def _voice_files() -> dict[str, str]:
    """Language name -> the voice file espeak-ng loads for it (MBROLA voices need extra data: left out).
    A "+variant" only applies when it follows a file name ("en+f3"); after a language alias that is not a
    file name ("en-gb+f3") espeak-ng silently drops it."""
    primary: dict[str, str] = {}
    secondary: dict[str, tuple[int, str]] = {}  # alias -> (espeak's priority, lower first; file)
    for row in _table(["--voices"]):
        if len(row) < 5 or row[4].startswith("mb/"):
            continue
        file = row[4].rsplit("/", 1)[-1].lower()
        primary.setdefault(row[1].lower(), file)
        # "(en 2)"-style other languages the voice also answers to, with their priority.
        for alias, priority in re.findall(r"\(([^\s()]+) (\d+)\)", " ".join(row[5:])):
            best = secondary.get(alias.lower())
            if best is None or int(priority) < best[0]:
                secondary[alias.lower()] = (int(priority), file)
    return {**{alias: file for alias, (_, file) in secondary.items()}, **primary}


def list_voices() -> tuple[str, ...]:
    """Language voices espeak-ng can speak on its own; each takes an optional "+variant"."""
    return tuple(sorted(_voice_files()))


@functools.lru_cache(maxsize=1)
def list_variants() -> tuple[str, ...]:
    """Voice variants that can follow a language after "+" (m1..m8, f1..f5, and named ones)."""
    files = [row[4] for row in _table(["--voices=variant"]) if len(row) >= 5 and row[4].startswith("!v/")]
    return tuple(sorted({f[3:] for f in files}))


def phonemes(text: str, voice: str = "en-us") -> str:
    """espeak-ng's phoneme transcription (`-x`) of `text` as synthesize_speech would speak it; a language
    switch shows as "(en)", as when a Mandarin voice falls back to English."""
    text, name = speakable_text(text, voice)
    result = _run(["-q", "-x", "-v", name], text)
    return result.stdout.decode("utf-8", "replace").strip()


def resolve_voice(voice: str) -> str:
    """The voice as espeak-ng spells it ("EN-US+M3" -> "en-us+m3"); InputError with close matches if unknown."""
    lang, _, variant = voice.strip().partition("+")
    voices = list_voices()
    if lang.lower() not in voices:
        hints = difflib.get_close_matches(lang.lower(), voices, n=5, cutoff=0.5)
        did = f"; close matches: {', '.join(hints)}" if hints else ""
        raise InputError(f'unknown voice "{voice}"{did} (see `espeak-ng --voices`)', field="voice")
    if not variant:
        return lang.lower()
    lang = _voice_files()[lang.lower()]
    variants = {v.lower(): v for v in list_variants()}
    if variant.lower() not in variants:
        hints = difflib.get_close_matches(variant.lower(), list(variants), n=5, cutoff=0.5)
        did = (
            f"; close matches: {', '.join(lang.lower() + '+' + variants[h] for h in hints)}" if hints else ""
        )
        raise InputError(f'unknown voice variant "{variant}" in "{voice}"{did}', field="voice")
    return f"{lang}+{variants[variant.lower()]}"


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """int16 mono samples and rate from espeak's WAV. Its sizes are bogus when writing to a pipe, so the data
    chunk is taken to the end of the stream."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise YingxiError("espeak-ng did not return a WAV stream")
    pos, rate, channels, bits = 12, None, 1, 16
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if tag == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body : body + 16])
            if fmt != 1 or bits != 16:
                raise YingxiError(f"espeak-ng returned WAV format {fmt}/{bits} bit; expected 16-bit PCM")
        elif tag == b"data":
            if rate is None:
                raise YingxiError("espeak-ng WAV has no format chunk")
            raw = data[body : min(len(data), body + size)]
            raw = raw[: len(raw) - len(raw) % (2 * channels)]
            samples = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).mean(axis=1)
            return samples.astype(np.int16), rate
        pos = body + size + (size & 1)
    raise YingxiError("espeak-ng WAV has no data chunk")


def resample_mono(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """float32 mono at `target` Hz (libswresample through PyAV, band-limited)."""
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if rate == target or x.size == 0:
        return x
    frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    y = np.concatenate(out) if out else np.zeros(0, np.float32)
    return y[: round(x.size * target / rate)].astype(np.float32, copy=False)


# espeak-ng 1.51's `cmn` voice reads each Chinese character as pinyin spelt out in English ("新年" ->
# "(en)zI55nw..."); its `cmn-latn-pinyin` voice speaks numbered pinyin ("xin1 nian2") as Mandarin. So Chinese
# text goes to that voice as pinyin from pypinyin, which reads words, not characters (行 in 银行 is hang2).
PINYIN_VOICE = "cmn-latn-pinyin"
MANDARIN_FILES = ("cmn", "cmn-latn-pinyin")  # voice files whose Chinese characters are spoken as pinyin
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN_RE = re.compile(f"[{_HAN}]")
_KANJI_RUN_RE = re.compile(f"[{_HAN}々〆ヶ]+")
# Full-width punctuation as the ASCII espeak-ng pauses on (pypinyin passes it through unchanged).
_CJK_PUNCTUATION = str.maketrans({"，": ", ", "、": ", ", "。": ". ", "！": "! ", "？": "? ", "；": "; ",
                                  "：": ": ", "…": "... ", "—": ", ", "「": " ", "」": " ", "『": " ",
                                  "』": " ", "“": " ", "”": " ", "（": " (", "）": ") ", "《": " ", "》": " "})  # fmt: skip


def to_pinyin(text: str) -> str:
    """Chinese characters as numbered pinyin, word-aware ("新年快乐，老朋友" -> "xin1 nian2 kuai4 le4, lao3
    peng2 you3"); other text is kept. Neutral tones get 5, which cmn-latn-pinyin reads as unstressed."""
    from pypinyin import Style, lazy_pinyin  # MIT licence; its dictionaries ship inside the package

    parts = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, v_to_u=False)
    out = " ".join(p.strip() for p in parts if p.strip()).translate(_CJK_PUNCTUATION)
    return re.sub(r"\s+([,.!?;:)])", r"\1", " ".join(out.split()))


def unreadable_kanji(text: str, voice: str) -> list[str]:
    """Runs of kanji that `voice` cannot read: espeak-ng's Japanese voice knows kana only and says
    "Chinese letter" in English for each kanji. Empty for every other voice."""
    if resolve_voice(voice).partition("+")[0] != "ja":
        return []
    return _KANJI_RUN_RE.findall(text)


def speakable_text(text: str, voice: str) -> tuple[str, str]:
    """(text as espeak-ng should get it, the voice to speak it with): Chinese characters as pinyin for a
    Mandarin voice, kanji left out (a short pause) for the Japanese voice."""
    name = resolve_voice(voice)
    file, plus, variant = name.partition("+")
    if _voice_files().get(file, file) in MANDARIN_FILES and HAN_RE.search(text):
        return to_pinyin(text), f"{PINYIN_VOICE}{plus}{variant}"
    if unreadable_kanji(text, name):
        return _KANJI_RUN_RE.sub("、", text), name
    return text, name


def synthesize_speech(
    text: str, voice: str = "en-us", *, sample_rate: int = 48000, words_per_minute: int | None = None
) -> np.ndarray:
    """float32 mono in [-1, 1] at sample_rate: `text` spoken by espeak-ng in `voice` (Chinese characters
    as Mandarin, see speakable_text)."""
    resolve_voice(voice)
    if not text.strip():
        return np.zeros(0, np.float32)
    text, name = speakable_text(text, voice)
    if not text.strip(" 、,"):
        return np.zeros(0, np.float32)
    args = ["--stdout", "-v", name]
    if words_per_minute is not None:
        args += ["-s", str(int(words_per_minute))]
    result = _run(args, text)
    if result.returncode != 0 or not result.stdout:
        why = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise InputError(f'espeak-ng could not speak with voice "{voice}": {why}', field="voice")
    samples, rate = _parse_wav(result.stdout)
    return resample_mono(samples.astype(np.float32) / 32768.0, rate, sample_rate)
