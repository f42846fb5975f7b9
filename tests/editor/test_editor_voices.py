"""Default voices follow the character's description (gender and age, English and Chinese), measured as
pitch on the recorded audio; explicit voices are kept; `plan` shows every speaker's voice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.media.test_media_speech import median_pitch
from yingxi.editor import assign_voices, fit_dialogue, record_dialogue
from yingxi.editor.voices import describe
from yingxi.film import load_script
from yingxi.film.model import Character, DialogueLine, Film, Shot

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples/new-year/film.yaml"


@pytest.mark.parametrize(
    ("description", "gender", "age"),
    [
        ("the same man at twenty", "male", "young"),
        ("a weathered old man in a padded coat", "male", "old"),
        ("a young woman with a lantern", "female", "young"),
        ("his mother, grey-haired", "female", "old"),
        ("a little boy", "male", "child"),
        ("a 70-year-old fisherman", "male", "old"),
        ("一位老先生", "male", "old"),
        ("年轻的女士", "female", "young"),
        ("小男孩", "male", "child"),
        ("二十岁的男人", "male", "young"),
        ("奶奶", "female", "old"),
        ("a robot made of tin", None, None),
        ("", None, None),
    ],
)
def test_descriptions_give_gender_and_age(description, gender, age):
    d = describe(description)
    assert (d.gender, d.age) == (gender, age)


def two_speakers(first: str, second: str, *, lines=("Happy new year.", "Happy new year to you.")) -> Film:
    chars = (Character("JIA", description=first), Character("LI", description=second))
    shot = Shot("ice", dialogue=(DialogueLine("JIA", lines[0]), DialogueLine("LI", lines[1])))
    return Film(shots=(shot,), characters=chars)


@pytest.mark.parametrize(
    "lines", [("Happy new year.", "Happy new year, old friend."), ("新年好。", "新年快乐！")]
)
def test_the_same_man_at_twenty_speaks_with_a_male_voice(lines):
    film = two_speakers("an old man", "the same man at twenty", lines=lines)
    takes = record_dialogue(film)[0]
    # Before, the second speaker got a female default (about 180-210 Hz).
    for take in takes:
        assert median_pitch(take.audio) < 160, take.voice
    assert takes[0].voice != takes[1].voice  # still two distinct voices
    woman = record_dialogue(two_speakers("an old man", "a young woman", lines=lines))[0][1]
    assert median_pitch(woman.audio) > 1.3 * median_pitch(takes[1].audio)


def test_an_explicit_voice_is_kept_even_against_the_description():
    film = two_speakers("a man", "a woman")
    film = Film(
        shots=film.shots, characters=(Character("JIA", "a man", voice="en-us+f2"), film.characters[1])
    )
    voices = assign_voices(film)
    assert voices["jia"] == "en-us+f2" and voices["li"].endswith(("+f3", "+f4", "+f2", "+f1", "+f5"))


def test_the_demo_gives_both_men_male_voices_and_says_its_chinese_lines_in_mandarin():
    film = load_script(DEMO)
    takes = record_dialogue(film)
    spoken = [t for shot in takes for t in shot]
    assert [t.character for t in spoken] == ["OLD JIA", "XIAO LI"]
    for take in spoken:
        assert take.voice.startswith("cmn-latn-pinyin+") and median_pitch(take.audio) < 160
    # 新年快乐，老朋友！ is seven characters: under 3 s, so its 3 s shot needs no growing.
    assert 1.2 < spoken[1].seconds < 2.4
    assert fit_dialogue(film, takes)[1] == []


def test_plan_shows_each_speakers_voice(capsys):
    from yingxi.cli import main  # in process: the CLI's own subprocess tests cover exit codes and wiring

    assert main(["plan", "--script", str(DEMO), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["voices"]["XIAO LI"]["voice"].startswith("cmn-latn-pinyin+m")
    assert "the description" in data["voices"]["XIAO LI"]["why"]
    assert data["shots"][1]["voices"] == {"OLD JIA": data["voices"]["OLD JIA"]["voice"]}
    assert main(["plan", "--script", str(DEMO)]) == 0
    assert "voice: XIAO LI: cmn-latn-pinyin+m" in capsys.readouterr().out


def test_a_japanese_line_says_in_a_note_which_kanji_stay_silent():
    film = Film(shots=(Shot("a", dialogue=(DialogueLine("Yuki", "あけましておめでとう、新年です。"),)),))
    takes = record_dialogue(film)
    take = takes[0][0]
    assert take.voice.startswith("ja+") and "新年" in take.note and "kana" in take.note
    notes = fit_dialogue(film, takes)[1]
    assert notes[0] == take.note and notes[0].startswith("shot 1: Yuki:")
    chinese = Film(shots=(Shot("a", dialogue=(DialogueLine("Li", "新年快樂"),)),))  # traditional characters
    assert record_dialogue(chinese)[0][0].note == "" and 0.6 < record_dialogue(chinese)[0][0].seconds < 2.0


def test_each_choice_says_why_and_keeps_the_speakers_spelling():
    from yingxi.editor.dialogue import choose_voices

    film = two_speakers("the same man at twenty", "")
    film = Film(
        shots=(Shot("a", dialogue=(*film.shots[0].dialogue, DialogueLine("Mei Lin", "Hi."))),),
        characters=(film.characters[0], Character("LI", voice="en-us+m3")),
    )
    choices = choose_voices(film)
    assert choices["jia"].why == "from the description: man, at twenty" and choices["jia"].voice.endswith(
        "+m7"
    )
    assert choices["li"].why == "set in the script" and choices["li"].voice == "en-us+m3"
    assert (choices["mei lin"].name, choices["mei lin"].why) == ("Mei Lin", "default")
