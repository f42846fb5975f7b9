"""espeak-ng speech: audible, plausible length, voices differ, errors say what to do."""

from __future__ import annotations

import numpy as np
import pytest

from yingxi.errors import InputError, YingxiError
from yingxi.media import speech
from yingxi.media.speech import list_voices, resolve_voice, synthesize_speech

SENTENCE = "Happy new year, everyone. The dumplings are ready."


def median_pitch(x: np.ndarray, rate: int = 48000) -> float:
    """Median F0 (Hz) over voiced 40 ms frames, by the autocorrelation peak between 70 and 400 Hz."""
    n, found = int(0.04 * rate), []
    for start in range(0, len(x) - n, n):
        w = x[start : start + n] - x[start : start + n].mean()
        if np.sqrt(np.mean(w**2)) < 0.03:
            continue
        ac = np.correlate(w, w, "full")[n - 1 :]
        lo, hi = rate // 400, rate // 70
        found.append(rate / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(found))


def test_sentence_is_audible_and_plausibly_long():
    audio = synthesize_speech(SENTENCE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = len(audio) / 48000
    # Eight words at espeak's default 175 words a minute, plus pauses: 2-5 s.
    assert 2.0 < seconds < 5.0
    assert np.sqrt(np.mean(audio**2)) > 0.02 and np.abs(audio).max() <= 1.0
    faster = synthesize_speech(SENTENCE, words_per_minute=300)
    assert len(faster) < 0.8 * len(audio)
    assert len(synthesize_speech("Hi.", sample_rate=16000)) / 16000 < 1.5


def test_two_voices_sound_different():
    male = synthesize_speech(SENTENCE, "en-us+m3")
    female = synthesize_speech(SENTENCE, "en-us+f4")
    # The female variant speaks higher (measured about 178 Hz against 107 Hz): require a 1.3x gap.
    assert median_pitch(female) > 1.3 * median_pitch(male)
    assert 70 < median_pitch(male) < 150


def test_voice_names():
    assert {"en", "en-us", "en-gb", "zh"} <= set(list_voices())
    assert resolve_voice("EN-US+F2") == "en-us+f2"
    # espeak-ng drops a variant after a language alias ("en-gb+f3" speaks as plain en-gb), so aliases are
    # resolved to the voice file the variant can follow.
    assert resolve_voice("en-gb+f3") == "en+f3" and resolve_voice("zh+m1") == "cmn+m1"
    plain, female = (
        synthesize_speech("Good morning.", "en-gb"),
        synthesize_speech("Good morning.", "en-gb+f3"),
    )
    assert median_pitch(female) > 1.3 * median_pitch(plain)
    with pytest.raises(InputError, match='unknown voice "en-uss".*en-us') as info:
        synthesize_speech("hi", "en-uss")
    assert info.value.field == "voice"
    with pytest.raises(InputError, match='variant "m33".*en-us\\+m3'):
        synthesize_speech("hi", "en-us+m33")


def test_missing_espeak_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(YingxiError, match="install"):
        synthesize_speech("hello")
