"""Each shot's own generated sound (Clip.audio, e.g. LTX-2's) on the timeline: resampled to the film's
rate, laid from the shot's first sample for the shot's length, faded at its ends so cuts do not click.

Where the sound goes is known from the plan before anything is shot (the shots that asked for sound), so
the music can duck under it ahead of time; the samples arrive as each shot is shot (`put`), and a mix made
a stretch at a time never reads past the first shot still to come (`horizon`)."""

from __future__ import annotations

import numpy as np

from yingxi.backends.base import Clip
from yingxi.media.speech import resample_mono

__all__ = ["SOUND_DUCK_DB", "ShotSounds", "as_film_sound"]

SOUND_DUCK_DB = -10.0  # a shot's own sound while a line of dialogue plays: under the voice, not gone
SOUND_EDGE = 0.01  # s of linear fade at each end of a shot's sound


def as_film_sound(audio: np.ndarray, rate: int, n: int, film_rate: int) -> np.ndarray:
    """float32 (n, 2) at film_rate from float32 (S, C) at `rate`: mono doubled, more channels than two cut to
    the first two, trimmed or padded with silence to n samples, faded in and out over SOUND_EDGE."""
    audio = np.asarray(audio, np.float32)
    stereo = audio[:, :2] if audio.shape[1] >= 2 else np.repeat(audio[:, :1], 2, axis=1)  # (S, 2)
    if rate != film_rate:
        stereo = np.stack([resample_mono(stereo[:, c].copy(), rate, film_rate) for c in range(2)], axis=1)
    out = np.zeros((n, 2), np.float32)
    m = min(n, len(stereo))
    out[:m] = np.clip(stereo[:m], -1.0, 1.0)
    edge = min(int(SOUND_EDGE * film_rate), n // 2)
    if edge > 0:
        ramp = np.linspace(0.0, 1.0, edge, endpoint=False, dtype=np.float32)[:, None]
        out[:edge] *= ramp
        out[n - edge :] *= ramp[::-1]
    return out


class ShotSounds:
    """The shots' sounds on the film's sample clock. spans[i]: (first sample, end) of shot i's sound, or
    None where the shot asked for none; put(i, clip) lays its audio there (silence if it returned none)."""

    def __init__(self, spans: list[tuple[int, int] | None], sample_rate: int):
        self.spans = spans
        self.rate = sample_rate
        self.audio: list[np.ndarray | None] = [None] * len(spans)  # float32 (end - start, 2) once shot

    @property
    def planned(self) -> list[tuple[int, int]]:
        """The spans that carry sound, for ducking the music under them."""
        return [s for s in self.spans if s is not None]

    def put(self, shot: int, clip: Clip) -> None:
        span = self.spans[shot]
        if span is None:
            return  # the shot asked for no sound: a backend that returns some anyway is not heard
        n = span[1] - span[0]
        if clip.audio is None or not len(clip.audio):
            self.audio[shot] = np.zeros((n, 2), np.float32)
        else:
            self.audio[shot] = as_film_sound(clip.audio, int(clip.sample_rate), n, self.rate)

    def horizon(self) -> int:
        """The first sample not yet final: where the first sounding shot still to be shot begins."""
        waiting = [s[0] for s, a in zip(self.spans, self.audio, strict=True) if s is not None and a is None]
        return min(waiting, default=2**62)

    def segment(self, start: int, stop: int) -> np.ndarray:
        """float32 (stop - start, 2): the sounds shot so far, over samples [start, stop)."""
        out = np.zeros((max(0, stop - start), 2), np.float32)
        for span, audio in zip(self.spans, self.audio, strict=True):
            if span is None or audio is None:
                continue
            lo, hi = max(span[0], start), min(span[1], stop)
            if lo < hi:
                out[lo - start : hi - start] += audio[lo - span[0] : hi - span[0]]
        return out
