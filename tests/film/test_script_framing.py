"""Script fields for framing (issue 8): focus, compose and fit, with clear errors."""

from __future__ import annotations

import pytest

from yingxi.errors import InputError
from yingxi.film.composition import parse_compose, parse_fit, parse_focus
from yingxi.film.script import parse_script


def test_script_fields_reach_the_film(tmp_path):
    film = parse_script({"fit": "blur", "shots": [
        {"prompt": "a", "focus": [0.4, 0.3], "compose": "speaker", "fit": "letterbox"},
        {"prompt": "b", "compose": "two shot"},
    ]}, tmp_path)  # fmt: skip
    a, b = film.shots
    assert film.fit == "blur" and a.fit == "contain" and b.fit is None
    assert a.focus == (0.4, 0.3) and a.compose == "speaker" and b.compose == "two-shot"
    assert parse_script({"shots": ["c"]}, tmp_path).fit == "cover"  # the default


@pytest.mark.parametrize(("value", "word"), [("Cover", "cover"), ("crop", "cover"), ("bars", "contain"),
                                             ("blurred", "blur"), ("模糊", "blur")])  # fmt: skip
def test_fit_words(value, word):
    assert parse_fit(value) == word


def test_a_misspelt_fit_names_the_closest_and_the_shot(tmp_path):
    with pytest.raises(InputError, match='"contain"') as e:
        parse_script({"shots": [{"prompt": "a"}, {"prompt": "b", "fit": "contian"}]}, tmp_path)
    assert e.value.shot == 2 and e.value.field == "fit"
    with pytest.raises(InputError, match="two-shot"):
        parse_compose("two-shoot")
    assert parse_compose("双人") == "two-shot" and parse_compose("Speaker") == "speaker"


@pytest.mark.parametrize(
    "value", [[0.4], [0.4, 1.2], ["a", 0.1], [True, 0.5], "middle", 3, [float("nan"), 0]]
)
def test_bad_focus_is_refused(value):
    with pytest.raises(InputError, match="focus is"):
        parse_focus(value, shot=1)


def test_focus_as_text():
    assert parse_focus("0.25, 0.75") == (0.25, 0.75) and parse_focus("0.5，0.5") == (0.5, 0.5)
