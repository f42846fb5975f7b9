"""Each shot's own generated sound on the timeline: resampled, placed at its shot, under dialogue, with
the music ducked under both; the stretch-at-a-time mix equals the whole one, and never reads ahead of
the shots shot so far."""

from __future__ import annotations

import numpy as np
import pytest

from yingxi.backends.base import Clip
from yingxi.editor.mix import DUCK_DB, MixedTrack, db, mix
from yingxi.editor.sound import SOUND_DUCK_DB, ShotSounds, as_film_sound

RATE = 48000
FRAMES = np.zeros((2, 8, 8, 3), np.uint8)


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)[:, None]  # (S, 1)


def tone_at(x: np.ndarray, freq: float, rate: int = RATE) -> float:
    """Amplitude of the `freq` component of mono x (projection on sin and cos)."""
    t = np.arange(len(x)) / rate
    return float(
        2 * np.hypot(np.mean(x * np.sin(2 * np.pi * freq * t)), np.mean(x * np.cos(2 * np.pi * freq * t)))
    )


def test_as_film_sound_resamples_doubles_mono_fits_the_span_and_fades_its_ends():
    out = as_film_sound(sine(440, 1.0, 16000), 16000, RATE // 2, RATE)  # 1 s at 16 kHz into 0.5 s at 48 kHz
    assert out.shape == (RATE // 2, 2) and out.dtype == np.float32
    assert np.array_equal(out[:, 0], out[:, 1])
    middle = out[2400:21600, 0]
    assert tone_at(middle, 440) == pytest.approx(0.5, rel=0.02)  # the same tone after resampling
    assert out[0, 0] == 0.0 and abs(out[-1, 0]) < 1e-3  # faded: no click at the cut
    short = as_film_sound(sine(440, 0.1, RATE), RATE, RATE, RATE)  # shorter than its shot: then silence
    assert np.all(short[int(0.1 * RATE) :] == 0)


def test_sound_under_dialogue_music_ducked_under_both():
    n = 3 * RATE
    sounds = ShotSounds([(0, RATE), None, (2 * RATE, n)], RATE)  # shots 1 and 3 have their own sound
    sounds.put(0, Clip(FRAMES, 24.0, audio=sine(300, 1.0, 24000), sample_rate=24000))
    sounds.put(2, Clip(FRAMES, 24.0, audio=sine(500, 1.0, RATE), sample_rate=RATE))
    line = (np.sin(np.arange(RATE // 4) * 2 * np.pi * 1000 / RATE) * 0.3).astype(np.float32)
    lines = [(int(2.5 * RATE), line)]
    music = sine(100, 3.0, RATE, 0.2)[:, [0, 0]]
    out = mix(n, lines, music, RATE, sounds).mean(axis=1)
    plain = mix(n, lines, music, RATE).mean(axis=1)
    w = slice(int(0.3 * RATE), int(0.7 * RATE))  # shot 1, no dialogue: its own sound at its own level
    assert tone_at(out[w], 300) == pytest.approx(0.5, rel=0.03)
    s3, talk = slice(int(2.05 * RATE), int(2.3 * RATE)), slice(int(2.6 * RATE), int(2.7 * RATE))
    assert tone_at(out[talk], 500) / tone_at(out[s3], 500) == pytest.approx(db(SOUND_DUCK_DB), rel=0.05)
    quiet = slice(int(1.3 * RATE), int(1.7 * RATE))  # shot 2: no sound, no dialogue: the bed at full level
    assert tone_at(out[quiet], 100) == pytest.approx(tone_at(plain[quiet], 100), rel=1e-3)
    assert tone_at(out[w], 100) == pytest.approx(tone_at(plain[w], 100) * db(DUCK_DB), rel=0.01)  # ducked
    assert tone_at(out[talk], 1000) == pytest.approx(tone_at(plain[talk], 1000), rel=1e-3)  # voice as before


@pytest.mark.parametrize("loud", [False, True])  # True: the limiter acts on the shots' sound
def test_mixed_track_with_shot_sounds_equals_mix_and_waits_for_the_shots(loud):
    rng = np.random.default_rng(1)
    n = int(4.7 * RATE) + 11
    spans = [(0, RATE), (RATE, int(2.5 * RATE)), None, (int(3.1 * RATE), n)]
    amp = 1.5 if loud else 0.4
    clips = [Clip(FRAMES, 24.0, audio=rng.uniform(-1, 1, (int(1.6 * RATE), 2)).astype(np.float32) * min(amp, 1),
                  sample_rate=RATE) for _ in spans]  # fmt: skip
    lines = [(int(0.5 * RATE), (rng.normal(0, 0.3, RATE) * amp).astype(np.float32))]
    music = rng.normal(0, 0.3, (2 * RATE, 2)).astype(np.float32)
    whole_sounds = ShotSounds(spans, RATE)
    for i, c in enumerate(clips):
        whole_sounds.put(i, c)
    whole = mix(n, lines, music, RATE, whole_sounds)
    streamed = ShotSounds(spans, RATE)
    track = MixedTrack(n, lines, music, RATE, streamed)
    track.STRETCH = 7777
    pieces, start, shot = [], 0, 0
    while start < n:
        while shot < len(spans) and (spans[shot] is None or spans[shot][0] < start + 2400 + 1500):
            streamed.put(shot, clips[shot])  # each shot arrives a little before the sound reaches it
            shot += 1
        stop = min(n, start + int(rng.integers(1, 3000)))
        pieces.append(track.segment(start, stop))
        start = stop
    np.testing.assert_allclose(np.concatenate(pieces), whole, rtol=0, atol=2e-6)
    early = MixedTrack(n, lines, music, RATE, ShotSounds(spans, RATE))
    with pytest.raises(RuntimeError, match="before the shot"):  # nothing is mixed ahead of its shot
        early.segment(0, 100)
