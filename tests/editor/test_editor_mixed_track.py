"""MixedTrack (the sound mixed a stretch at a time, as the encoder reads it) equals mix() of the whole film."""

from __future__ import annotations

import numpy as np
import pytest

from yingxi.editor.mix import MixedTrack, mix

RATE = 48000


def _lines(rng, n: int, loud: bool) -> list[tuple[int, np.ndarray]]:
    out = []
    for start in (int(0.3 * RATE), int(2.9 * RATE), int(3.0 * RATE), n - RATE // 2):  # two overlap
        tone = np.sin(np.arange(RATE // 2) * 0.05).astype(np.float32) * (3.0 if loud else 0.3)
        out.append((start, tone + rng.normal(0, 0.01, RATE // 2).astype(np.float32)))
    return out


@pytest.mark.parametrize("music_seconds", [None, 1.3, 30.0])  # none, looped with seams, longer than the film
@pytest.mark.parametrize("loud", [False, True])  # True: the limiter acts
def test_mixed_track_equals_mix_in_any_pieces(music_seconds, loud):
    rng = np.random.default_rng(0)
    n = int(7.3 * RATE) + 17  # not a multiple of the limiter's block or the stretch
    lines = _lines(rng, n, loud)
    music = None
    if music_seconds is not None:
        music = rng.normal(0, 0.3 if not loud else 2.0, (int(music_seconds * RATE), 2)).astype(np.float32)
    whole = mix(n, lines, music, RATE)
    track = MixedTrack(n, lines, music, RATE)
    track.STRETCH = 12345  # small stretches: many seams between them
    assert len(track) == n
    pieces, start = [], 0
    for size in rng.integers(1, 20000, 10_000):  # the encoder's chunks, and odd ones
        pieces.append(track.segment(start, min(n, start + int(size))))
        start += int(size)
        if start >= n:
            break
    got = np.concatenate(pieces)
    assert got.shape == whole.shape == (n, 2) and got.dtype == np.float32
    # The music's RMS is summed in pieces (float64), so the bed's gain may differ in its last float32 bit.
    assert np.abs(got - whole).max() <= 2e-6
    if loud:
        assert np.abs(whole).max() <= 0.98 and np.abs(got).max() <= 0.98


def test_a_line_that_does_not_fit_is_refused_as_mix_refuses_it():
    with pytest.raises(ValueError, match="does not fit"):
        MixedTrack(100, [(90, np.ones(20, np.float32))])
