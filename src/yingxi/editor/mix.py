"""The sound mix: dialogue at a steady level, a music bed under it that ducks while anyone speaks."""

from __future__ import annotations

import numpy as np

from yingxi.media.video import AUDIO_RATE as SAMPLE_RATE

DIALOGUE_RMS_DB = -20.0  # dBFS while speaking: each line is brought to this level
MUSIC_UNDER_DB = -14.0  # music bed level relative to the dialogue
DUCK_DB = -10.0  # further music reduction while a line plays
DUCK_RAMP = 0.15  # s to duck down before a line and come back after it
MUSIC_FADE = 1.0  # s music fade in at the start and out at the end
MUSIC_SEAM = 0.05  # s of crossfade where music shorter than the film loops back to its start
CEILING = 0.98  # peak limit
_GATE = 0.01  # |sample| above this counts as voiced when measuring a line's level


def db(x: float) -> float:
    """Gain factor from decibels."""
    return float(10.0 ** (x / 20.0))


def level_speech(audio: np.ndarray) -> np.ndarray:
    """float32 (N,): scaled so its voiced samples have DIALOGUE_RMS_DB RMS, peaks kept under 0.9 (espeak
    voices differ in loudness by several dB)."""
    voiced = audio[np.abs(audio) > _GATE]
    if voiced.size == 0:
        return audio.astype(np.float32)
    gain = db(DIALOGUE_RMS_DB) / float(np.sqrt(np.mean(voiced.astype(np.float64) ** 2)))
    gain = min(gain, 0.9 / float(np.abs(audio).max()))
    return (audio * gain).astype(np.float32)


def loop_to(music: np.ndarray, n: int, seam: int = 0) -> np.ndarray:
    """(n, 2): the music trimmed to n samples, or repeated with each repeat overlapping the last by `seam`
    samples under an equal-power crossfade (a hard join clicks wherever the waveform does not line up)."""
    if len(music) == 0:
        return np.zeros((n, 2), np.float32)
    if len(music) >= n:
        return music[:n].astype(np.float32)
    xf = min(seam, len(music) // 4)
    step = len(music) - xf
    head = music.astype(np.float32)  # (L, 2): the first play starts at full level...
    t = (np.arange(xf, dtype=np.float32) + 0.5) / max(xf, 1)
    head[len(head) - xf :] *= np.cos(0.5 * np.pi * t)[:, None]  # ...and every play fades out into the next
    piece = head.copy()
    piece[:xf] *= np.sin(0.5 * np.pi * t)[:, None]  # each repeat fades in under the previous one's end
    out = np.zeros((n + len(music), 2), np.float32)
    for k, pos in enumerate(range(0, n, step)):
        out[pos : pos + len(music)] += piece if k else head
    return out[:n]


def duck_envelope(n: int, spans: list[tuple[int, int]], ramp: int) -> np.ndarray:
    """float32 (n,) in [0, 1]: 1 while a span [start, end) plays, ramping linearly over `ramp` samples before
    it starts and after it ends."""
    env = np.zeros(n, np.float32)
    for start, end in spans:
        lo, hi = max(0, start - ramp), min(n, end + ramp)
        if lo >= hi:
            continue
        t = np.arange(lo, hi, dtype=np.float32)
        up = (t - (start - ramp)) / max(ramp, 1)
        down = ((end + ramp) - t) / max(ramp, 1)
        env[lo:hi] = np.maximum(env[lo:hi], np.clip(np.minimum(up, down), 0.0, 1.0))
    return env


def fade_ends(track: np.ndarray, samples: int) -> np.ndarray:
    """Linear fade in over the first and out over the last `samples` (at most half the track each)."""
    m = min(samples, len(track) // 2)
    if m > 0:
        ramp = np.linspace(0.0, 1.0, m, endpoint=False, dtype=np.float32)[:, None]
        track[:m] *= ramp
        track[len(track) - m :] *= ramp[::-1]
    return track


def limit(track: np.ndarray, ceiling: float = CEILING, block: int = 480) -> np.ndarray:
    """Peak limiter: gain reduction only around the peaks that pass the ceiling (10 ms blocks, each block's
    gain also applied to its neighbours, linearly interpolated), then a hard clip so no sample exceeds it."""
    peak = np.abs(track).max(axis=1) if track.ndim == 2 else np.abs(track)
    if peak.size == 0 or peak.max() <= ceiling:
        return track
    nb = -(-len(peak) // block)
    padded = np.zeros(nb * block, np.float32)
    padded[: len(peak)] = peak
    need = np.minimum(1.0, ceiling / np.maximum(padded.reshape(nb, block).max(axis=1), 1e-12))
    need = np.minimum(need, np.minimum(np.r_[1.0, need[:-1]], np.r_[need[1:], 1.0]))
    centres = np.arange(nb) * block + block / 2
    gain = np.interp(np.arange(len(peak)), centres, need).astype(np.float32)
    out = track * (gain[:, None] if track.ndim == 2 else gain)
    return np.clip(out, -ceiling, ceiling)


def mix(
    num_samples: int,
    lines: list[tuple[int, np.ndarray]],
    music: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """float32 (num_samples, 2): dialogue `lines` (start sample, mono audio) centred, over the music bed.

    Lines are placed whole: the caller has made sure they fit (a line is never cut silently).
    """
    dialogue = np.zeros(num_samples, np.float32)
    spans = []
    for start, audio in lines:
        end = start + len(audio)
        if start < 0 or end > num_samples:
            raise ValueError(f"line at sample {start} (+{len(audio)}) does not fit in {num_samples} samples")
        dialogue[start:end] += level_speech(audio)
        spans.append((start, end))
    out = np.repeat(dialogue[:, None], 2, axis=1)
    if music is not None and len(music):
        bed = loop_to(music, num_samples, int(MUSIC_SEAM * sample_rate))
        rms = float(np.sqrt(np.mean(bed.astype(np.float64) ** 2)))
        if rms > 1e-6:
            # Under dialogue the bed sits MUSIC_UNDER_DB below it; a film without lines plays it at their level.
            target = DIALOGUE_RMS_DB + (MUSIC_UNDER_DB if lines else 0.0)
            bed *= db(target) / rms
            duck = duck_envelope(num_samples, spans, int(DUCK_RAMP * sample_rate))
            bed *= (1.0 - (1.0 - db(DUCK_DB)) * duck)[:, None]
            out += fade_ends(bed, int(MUSIC_FADE * sample_rate))
    return limit(out.astype(np.float32))
