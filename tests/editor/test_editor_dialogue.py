"""Voices, recording, placement and fitting of dialogue lines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from yingxi.backends.base import Clip
from yingxi.director.plan import plan
from yingxi.editor import assemble, assign_voices, fit_dialogue, record_dialogue
from yingxi.editor.dialogue import (
    DEFAULT_VOICES,
    GAP,
    LEAD_IN,
    LEAD_OUT,
    MANDARIN_VOICES,
    DialogueTake,
    place_lines,
)
from yingxi.errors import InputError
from yingxi.film.model import Character, DialogueLine, Film, Shot

FPS = 12


def film_with(*shots: Shot, characters=()) -> Film:
    return Film(shots=tuple(shots), fps=FPS, resolution="480p", characters=tuple(characters))


def fake_take(character: str, seconds: float) -> DialogueTake:
    audio = np.full(round(seconds * 48000), 0.1, np.float32)
    return DialogueTake(character, "line", "en-us", audio, seconds)


def test_voices_are_distinct_in_order_of_first_appearance_and_respect_set_voices():
    film = film_with(
        Shot("a", dialogue=(DialogueLine("Mei", "Hi."), DialogueLine("old jia", "Hello."))),
        Shot("b", dialogue=(DialogueLine("Bo", "Yo."), DialogueLine("Mei", "Again."))),
        characters=[Character("Old Jia", voice=DEFAULT_VOICES[0])],
    )
    voices = assign_voices(film)
    # Old Jia keeps his own voice; the others get the defaults in order, skipping the one he took.
    assert voices == {"mei": DEFAULT_VOICES[1], "old jia": DEFAULT_VOICES[0], "bo": DEFAULT_VOICES[2]}
    assert len(set(DEFAULT_VOICES)) == len(DEFAULT_VOICES)


def test_record_dialogue_speaks_every_line_per_shot():
    film = film_with(
        Shot("a", duration=3.0),
        Shot(
            "b", dialogue=(DialogueLine("Old Jia", "Happy new year."), DialogueLine("Mei", "Happy new year!"))
        ),
        characters=[Character("Old Jia")],
    )
    takes = record_dialogue(film)
    assert [len(t) for t in takes] == [0, 2]
    jia, mei = takes[1]
    assert (jia.character, jia.text, mei.character) == ("Old Jia", "Happy new year.", "Mei")
    assert jia.voice != mei.voice
    for take in takes[1]:
        assert take.audio.dtype == np.float32 and take.seconds == len(take.audio) / 48000
        assert 0.5 < take.seconds < 2.5 and np.sqrt(np.mean(take.audio**2)) > 0.02
        # Silence trimmed: it starts and ends within 20 ms (+1 sample) of sound.
        loud = np.flatnonzero(np.abs(take.audio) > 1e-3)
        assert loud[0] <= 961 and len(take.audio) - loud[-1] <= 961


def test_bad_voice_names_the_character():
    film = film_with(
        Shot("a", dialogue=(DialogueLine("Mei", "Hi."),)), characters=[Character("Mei", voice="en-uss")]
    )
    with pytest.raises(InputError, match='character "Mei".*unknown voice "en-uss"'):
        record_dialogue(film)


def test_fit_dialogue_grows_a_short_shot_with_a_note():
    film = film_with(Shot("a", duration=3.0), Shot("b", duration=1.0), Shot("c", duration=5.0))
    takes = [[fake_take("Mei", 1.0)], [fake_take("Mei", 1.2), fake_take("Bo", 0.93)], [fake_take("Bo", 2.0)]]
    grown, notes = fit_dialogue(film, takes)
    need = LEAD_IN + 1.2 + GAP + 0.93 + LEAD_OUT  # 2.98 s -> 3.0 s
    assert math.ceil(need * 10) / 10 == 3.0
    assert notes == ["shot 2 grew from 1s to 3s to fit its dialogue"]
    assert [s.duration for s in grown.shots] == [3.0, 3.0, 5.0]
    # Already fitting: nothing changes.
    assert fit_dialogue(grown, takes) == (grown, [])


def test_fit_dialogue_without_growing_says_which_shot_and_how_long():
    film = film_with(Shot("a", duration=3.0), Shot("b", duration=2.5))
    takes = [[], [fake_take("Mei", 2.2)]]
    with pytest.raises(InputError) as info:
        fit_dialogue(film, takes, grow=False)
    err = info.value
    assert (err.shot, err.field) == (2, "dialogue")
    assert "shot 2, dialogue" in str(err) and "need 2.80s" in str(err) and "2.5s long" in str(err)
    assert "at least 2.8s" in str(err)


def test_lines_are_placed_with_lead_in_and_gaps():
    film = film_with(Shot("a", duration=1.0), Shot("b", duration=4.0))
    takes = [[], [fake_take("Mei", 1.0), fake_take("Bo", 1.5)]]
    plans = plan(film)
    clips = [Clip(np.zeros((p.num_frames, 480, 864, 3), np.uint8), FPS) for p in plans]
    cut = assemble(film, plans, clips, takes)
    first, second = cut.subtitles
    assert (first.start, first.end) == pytest.approx((1.0 + LEAD_IN, 2.3))
    assert (second.start, second.end) == pytest.approx((2.3 + GAP, 4.05))
    assert second.end <= 5.0 - LEAD_OUT


def test_a_shot_that_came_out_too_short_for_its_lines_is_an_error_not_a_cut_line():
    film = film_with(Shot("a", duration=1.0))
    plans = plan(film)
    clips = [Clip(np.zeros((12, 480, 864, 3), np.uint8), FPS)]
    with pytest.raises(InputError, match="shot 1, dialogue: the lines need 1.50s"):
        assemble(film, plans, clips, [[fake_take("Mei", 1.5)]])


def test_speakers_of_chinese_lines_get_mandarin_voices():
    film = film_with(
        Shot(
            "a",
            dialogue=(
                DialogueLine("老贾", "新年快乐！"),
                DialogueLine("Mei", "Hi."),
                DialogueLine("小美", "谢谢爷爷。"),
            ),
        )
    )
    voices = assign_voices(film)
    assert voices == {"老贾": MANDARIN_VOICES[0], "mei": DEFAULT_VOICES[0], "小美": MANDARIN_VOICES[1]}
    jia = record_dialogue(film)[0][0]
    # Mandarin reads the four characters in about a second; an English voice would spell out each one's name.
    assert 0.6 < jia.seconds < 2.5


def test_speakers_of_other_scripts_get_voices_of_their_language():
    lines = {
        "Ivan": "Привет, старый друг!",
        "Yuki": "あけましておめでとう、お爺さん。",  # kana with kanji: Japanese, not Mandarin
        "Minji": "새해 복 많이 받으세요.",
        "Eleni": "Καλή χρονιά!",
        "Olga": "С Новым годом, Иван!",  # a second Russian speaker gets the next Russian voice
        "Ann": "Happy new year, Ivan!",  # a Russian name in a Latin-script line: English
    }
    film = film_with(Shot("a", dialogue=tuple(DialogueLine(k, v) for k, v in lines.items())))
    voices = assign_voices(film)
    assert voices == {
        "ivan": "ru+m3",
        "yuki": "ja+m3",
        "minji": "ko+m3",
        "eleni": "el+m3",
        "olga": "ru+f3",
        "ann": DEFAULT_VOICES[0],
    }
    ivan = record_dialogue(film_with(Shot("a", dialogue=(DialogueLine("Ivan", lines["Ivan"]),))))[0][0]
    # A Russian voice says the three words in about a second; an English one spelt out the letter names (about 4 s).
    assert ivan.voice == "ru+m3" and 0.5 < ivan.seconds < 2.5


def test_place_lines_shrinks_padding_when_a_shot_comes_out_a_little_short():
    takes = [fake_take("Mei", 1.0), fake_take("Bo", 1.0)]
    assert place_lines(takes, 10.0) == pytest.approx([LEAD_IN, LEAD_IN + 1.0 + GAP])
    # 2.85 s of shot for 2 s of speech and 0.85 s of padding: exactly fits; 2.425 s halves the padding.
    assert place_lines(takes, 2.85) == pytest.approx([0.3, 1.55])
    assert place_lines(takes, 2.425) == pytest.approx([0.15, 1.275])
    with pytest.raises(ValueError):
        place_lines(takes, 1.9)
