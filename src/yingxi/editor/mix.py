"""The sound mix: dialogue at a steady level, each shot's own generated sound under it (ducked while a line
plays), and a music bed under both that ducks while anyone speaks or a shot has its own sound."""

from __future__ import annotations

import numpy as np

from yingxi.editor.sound import SOUND_DUCK_DB, ShotSounds
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
    return duck_between(0, n, spans, ramp)


def duck_between(start: int, stop: int, spans: list[tuple[int, int]], ramp: int) -> np.ndarray:
    """duck_envelope() over samples [start, stop) only: float32 (stop - start,)."""
    env = np.zeros(stop - start, np.float32)
    for s, e in spans:
        lo, hi = max(start, s - ramp), min(stop, e + ramp)
        if lo >= hi:
            continue
        t = np.arange(lo, hi, dtype=np.float32)
        up = (t - (s - ramp)) / max(ramp, 1)
        down = ((e + ramp) - t) / max(ramp, 1)
        part = np.clip(np.minimum(up, down), 0.0, 1.0)
        env[lo - start : hi - start] = np.maximum(env[lo - start : hi - start], part)
    return env


def under_dialogue(sound: np.ndarray, duck: np.ndarray) -> np.ndarray:
    """The shots' own sound (n, 2) brought SOUND_DUCK_DB down while dialogue plays (duck: (n,) in [0, 1])."""
    return sound * (1.0 - (1.0 - db(SOUND_DUCK_DB)) * duck)[:, None]


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
    sounds: ShotSounds | None = None,
) -> np.ndarray:
    """float32 (num_samples, 2): dialogue `lines` (start sample, mono audio) centred, over the shots' own
    `sounds` (every shot that has one already put), over the music bed.

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
    ramp = int(DUCK_RAMP * sample_rate)
    if sounds is not None and sounds.planned:
        out += under_dialogue(sounds.segment(0, num_samples), duck_envelope(num_samples, spans, ramp))
        spans = spans + sounds.planned  # the music ducks under the shots' sound too
    if music is not None and len(music):
        bed = loop_to(music, num_samples, int(MUSIC_SEAM * sample_rate))
        rms = float(np.sqrt(np.mean(bed.astype(np.float64) ** 2)))
        if rms > 1e-6:
            # Under dialogue the bed sits MUSIC_UNDER_DB below it; a film without lines plays it at their level.
            target = DIALOGUE_RMS_DB + (MUSIC_UNDER_DB if lines else 0.0)
            bed *= db(target) / rms
            duck = duck_envelope(num_samples, spans, ramp)
            bed *= (1.0 - (1.0 - db(DUCK_DB)) * duck)[:, None]
            out += fade_ends(bed, int(MUSIC_FADE * sample_rate))
    return limit(out.astype(np.float32))


class MixedTrack:
    """mix()'s result computed a stretch at a time, as the encoder asks for it, so a long film's sound is never
    held whole (an hour is 1.3 GB of float32 stereo, and mix() makes several copies while it works). Equal to
    mix() to float32 rounding: the same operations on the same samples; only the music's RMS is summed in
    pieces. segment(start, stop) -> float32 (stop - start, 2)."""

    BLOCK = 480  # the limiter's block, as limit() uses it
    STRETCH = 48000 * 5  # samples computed at once

    def __init__(
        self,
        num_samples: int,
        lines: list[tuple[int, np.ndarray]],
        music: np.ndarray | None = None,
        sample_rate: int = SAMPLE_RATE,
        sounds: ShotSounds | None = None,
    ):
        self.n, self.rate = num_samples, sample_rate
        self.sounds = sounds if sounds is not None and sounds.planned else None
        self.lines = []
        for start, audio in lines:
            if start < 0 or start + len(audio) > num_samples:
                raise ValueError(
                    f"line at sample {start} (+{len(audio)}) does not fit in {num_samples} samples"
                )
            self.lines.append((start, level_speech(audio)))
        self.spans = [(s, s + len(a)) for s, a in self.lines]
        self.duck_spans = self.spans + (self.sounds.planned if self.sounds is not None else [])
        self.music = music if music is not None and len(music) else None
        self.seam = int(MUSIC_SEAM * sample_rate)
        self.gain = 0.0
        if self.music is not None:
            squares = sum(  # the bed's RMS, as mix() measures it over the looped bed
                float(np.sum(self._bed(s, min(s + self.STRETCH, self.n)).astype(np.float64) ** 2))
                for s in range(0, self.n, self.STRETCH)
            )
            rms = float(np.sqrt(squares / max(2 * self.n, 1)))  # mean over both channels
            if rms > 1e-6:
                self.gain = db(DIALOGUE_RMS_DB + (MUSIC_UNDER_DB if lines else 0.0)) / rms
        self._cached: tuple[int, np.ndarray] = (0, np.zeros((0, 2), np.float32))

    def __len__(self) -> int:
        return self.n

    def _bed(self, start: int, stop: int) -> np.ndarray:
        """loop_to(music, n, seam)[start:stop], summing only the plays that reach it (each play's seams faded
        as loop_to fades them, on the samples needed only: the music is never copied whole)."""
        music, n = self.music, self.n
        length = len(music)
        if length >= n:
            return music[start:stop].astype(np.float32)
        xf = min(self.seam, length // 4)
        step = length - xf
        t = (np.arange(xf, dtype=np.float32) + 0.5) / max(xf, 1)
        fade_out, fade_in = np.cos(0.5 * np.pi * t)[:, None], np.sin(0.5 * np.pi * t)[:, None]  # (xf, 1)
        out = np.zeros((stop - start, 2), np.float32)
        for k in range(max(0, (start - length) // step), (stop - 1) // step + 1):
            pos = k * step
            lo, hi = max(pos, start), min(pos + length, stop)
            if lo >= hi or pos >= n:
                continue
            r0, r1 = lo - pos, hi - pos  # this play's samples [r0, r1)
            part = music[r0:r1].astype(np.float32)
            a, b = max(r0, length - xf), r1  # every play fades out into the next...
            if a < b:
                part[a - r0 : b - r0] *= fade_out[a - (length - xf) : b - (length - xf)]
            a, b = r0, min(r1, xf)  # ...and every repeat fades in under the previous one's end
            if k and a < b:
                part[a - r0 : b - r0] *= fade_in[a:b]
            out[lo - start : hi - start] += part
        return out

    def _raw(self, start: int, stop: int) -> np.ndarray:
        """The mix before the limiter, samples [start, stop): float32 (stop - start, 2)."""
        dialogue = np.zeros(stop - start, np.float32)
        for (s, audio), (_, e) in zip(self.lines, self.spans, strict=True):
            lo, hi = max(s, start), min(e, stop)
            if lo < hi:
                dialogue[lo - start : hi - start] += audio[lo - s : hi - s]
        out = np.repeat(dialogue[:, None], 2, axis=1)
        ramp = int(DUCK_RAMP * self.rate)
        if self.sounds is not None:
            if stop > self.sounds.horizon():  # the encoder lags the picture (media.video.AUDIO_LAG): a bug
                raise RuntimeError(f"sound asked for up to sample {stop} before the shot there was shot")
            out += under_dialogue(
                self.sounds.segment(start, stop), duck_between(start, stop, self.spans, ramp)
            )
        if self.gain:
            bed = self._bed(start, stop)
            bed *= self.gain
            bed *= (1.0 - (1.0 - db(DUCK_DB)) * duck_between(start, stop, self.duck_spans, ramp))[:, None]
            m = min(int(MUSIC_FADE * self.rate), self.n // 2)  # fade_ends() restricted to [start, stop)
            if m > 0:
                i = np.arange(start, stop)
                gain = np.ones(stop - start, np.float32)
                head, tail = i < m, i >= self.n - m
                gain[head] = (i[head] / m).astype(np.float32)
                gain[tail] = ((self.n - 1 - i[tail]) / m).astype(np.float32)
                bed *= gain[:, None]
            out += bed
        return out

    def _compute(self, start: int, stop: int) -> np.ndarray:
        """limit() of the whole mix, restricted to [start, stop): each sample's gain depends only on its own
        block, the next, and their neighbours, so two blocks either side are computed with it."""
        b = self.BLOCK
        nb = -(-self.n // b)
        b0, b1 = max(0, start // b - 2), min(nb, (stop - 1) // b + 3)  # blocks [b0, b1)
        lo, hi = b0 * b, min(b1 * b, self.n)
        raw = self._raw(lo, hi)
        peak = np.abs(raw).max(axis=1)
        padded = np.zeros((b1 - b0) * b, np.float32)
        padded[: len(peak)] = peak
        need = np.minimum(1.0, CEILING / np.maximum(padded.reshape(b1 - b0, b).max(axis=1), 1e-12))
        left = np.r_[1.0 if b0 == 0 else need[0], need[:-1]]
        right = np.r_[need[1:], 1.0 if b1 == nb else need[-1]]
        need = np.minimum(need, np.minimum(left, right))
        centres = (np.arange(b0, b1) - b0) * b + b / 2
        keep = slice(1 if b0 > 0 else 0, len(need) - (1 if b1 < nb else 0))  # edge blocks lack a neighbour
        gain = np.interp(np.arange(start - lo, stop - lo), centres[keep], need[keep]).astype(np.float32)
        return np.clip(raw[start - lo : stop - lo] * gain[:, None], -CEILING, CEILING)

    def segment(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(self.n, stop)
        if stop <= start:
            return np.zeros((0, 2), np.float32)
        at, cached = self._cached
        if not (at <= start and stop <= at + len(cached)):
            at = start
            end = min(self.n, at + self.STRETCH)
            if self.sounds is not None:  # not past the sound still to be shot (the limiter reads 3 blocks on)
                end = min(end, self.sounds.horizon() - 3 * self.BLOCK)
            cached = self._compute(at, max(stop, end))
            self._cached = (at, cached)
        return cached[start - at : stop - at]


class FadedTail:
    """A MixedTrack whose last `n` samples ramp down to silence (the film's "fade out"), a stretch at a time."""

    def __init__(self, track: MixedTrack, n: int):
        self.track, self.n = track, n

    def __len__(self) -> int:
        return len(self.track)

    def segment(self, start: int, stop: int) -> np.ndarray:
        out = self.track.segment(start, stop)
        first = len(self.track) - self.n  # where the ramp begins
        if stop > first and self.n > 0:
            i = np.arange(max(start, first), stop)
            ramp = 1.0 - (i - first) / max(self.n - 1, 1)  # np.linspace(1, 0, n) at those samples
            out = out.copy()
            out[i - start] *= ramp.astype(np.float32)[:, None]
        return out


def fade_tail(audio: np.ndarray | MixedTrack, n: int) -> np.ndarray | FadedTail:
    """The sound with its last `n` samples faded linearly to silence: in place for a whole mix, or as a
    stretch-at-a-time wrapper for a MixedTrack."""
    if isinstance(audio, np.ndarray):
        n = min(n, len(audio))
        audio[len(audio) - n :] *= np.linspace(1.0, 0.0, n, dtype=np.float32)[:, None]
        return audio
    return FadedTail(audio, min(n, len(audio)))
