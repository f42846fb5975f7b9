"""The director's keyframes for several characters (issue 8, item 4), fit and crop notes (item 11), the
title-card palette (item 12) and the framing it hands the camera (item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from yingxi.director.camera import FRAMING_SCALE
from yingxi.director.palette import style_palette
from yingxi.director.plan import plan
from yingxi.errors import InputError
from yingxi.film.model import Camera, Character, DialogueLine, Film, Shot


def png(path: Path, size=(160, 90)) -> Path:
    Image.new("RGB", size, (120, 120, 120)).save(path)
    return path


@pytest.fixture
def cast(tmp_path):
    return (Character("JIA", image=png(tmp_path / "jia.png")), Character("LI", image=png(tmp_path / "li.png")),
            Character("MEI"))  # fmt: skip


def one(film: Film):
    return plan(film)[0]


def test_two_characters_make_a_two_shot(cast):
    key = one(Film(shots=(Shot("Two men.", characters=("JIA", "LI")),), characters=cast)).keyframe
    assert key.compose == "two-shot" and key.on_screen == ("JIA", "LI")
    assert [p.name for p in key.paths] == ["jia.png", "li.png"]
    assert key.words == "two-shot: JIA | LI"


def test_the_speaker_of_a_line_is_featured_too(cast):
    shot = Shot("Tea.", characters=("JIA",), dialogue=(DialogueLine("LI", "Happy new year."),))
    key = one(Film(shots=(shot,), characters=cast)).keyframe
    assert key.compose == "two-shot" and key.on_screen == ("JIA", "LI")  # before: JIA only, LI unseen


def test_speaker_framing_follows_the_lines(cast):
    lines = (
        DialogueLine("LI", "a"),
        DialogueLine("JIA", "b"),
        DialogueLine("MEI", "c"),
        DialogueLine("LI", "d"),
    )
    p = one(Film(shots=(Shot("Talk.", dialogue=lines, compose="speaker"),), characters=cast))
    key = p.keyframe
    assert key.compose == "speaker" and key.speakers == ("LI", "JIA", "JIA", "LI")  # MEI has no image
    assert key.words == "speaker: LI, JIA"
    assert any("MEI speaks but has no reference image" in n for n in p.notes)


def test_speaker_framing_without_dialogue_is_a_two_shot_with_a_note(cast):
    p = one(Film(shots=(Shot("Quiet.", characters=("JIA", "LI"), compose="speaker"),), characters=cast))
    assert p.keyframe.compose == "two-shot" and "compose: speaker needs dialogue" in p.notes[0]


def test_one_speaker_in_speaker_framing_is_a_single(cast):
    shot = Shot("Tea.", characters=("JIA", "LI"), dialogue=(DialogueLine("JIA", "a"),), compose="speaker")
    key = one(Film(shots=(shot,), characters=cast)).keyframe
    assert key.compose is None and key.on_screen == ("JIA",) and key.path.name == "jia.png"


def test_continuing_keeps_who_is_on_screen_and_breaks_for_a_new_speaker(cast):
    shots = (
        Shot("Jia pours.", characters=("JIA",)),
        Shot("Still pouring.", continue_previous=True, dialogue=(DialogueLine("JIA", "Tea?"),)),
        Shot("Li answers.", continue_previous=True, dialogue=(DialogueLine("LI", "Yes."),)),
    )
    plans = plan(Film(shots=shots, characters=cast))
    assert plans[1].keyframe.source == "continue" and plans[1].keyframe.on_screen == ("JIA",)
    assert plans[2].keyframe.source == "character" and plans[2].keyframe.on_screen == ("LI",)
    assert "not continuing the previous shot: LI speaks" in plans[2].notes[0]


def test_fit_comes_from_the_shot_else_the_film(cast, tmp_path):
    frame = png(tmp_path / "frame.png")
    film = Film(shots=(Shot("a", first_frame=frame), Shot("b", first_frame=frame, fit="contain")), fit="blur")
    a, b = plan(film)
    assert (a.keyframe.fit, b.keyframe.fit) == ("blur", "contain")
    assert a.camera.fill == "blur" and b.camera.fill == "black"  # what a wider framing shows past the image
    assert b.keyframe_words.endswith("fit contain")


def test_a_crop_that_loses_over_a_quarter_is_noted(tmp_path):
    square, wide = png(tmp_path / "square.png", (100, 100)), png(tmp_path / "wide.png", (160, 100))
    plans = plan(Film(shots=(Shot("a", first_frame=square), Shot("b", first_frame=wide),
                             Shot("c", first_frame=square, fit="contain")), custom_size=(160, 90)))  # fmt: skip
    assert "square.png (100x100) loses 44% of its area" in plans[0].notes[0]  # 1 - (1/1)/(16/9)
    assert plans[1].notes == ()  # 16:10 into 16:9 loses 10%
    assert plans[2].notes == ()  # contain loses nothing


def test_framing_and_focus_reach_the_camera_path(tmp_path):
    shot = Shot(
        "a", camera=Camera(framing="extreme close-up"), focus=(0.4, 0.3), first_frame=png(tmp_path / "a.png")
    )
    path = one(Film(shots=(shot,))).camera
    assert path.framing == FRAMING_SCALE["extreme close-up"] and path.focus == (0.4, 0.3)


def test_the_plan_shows_the_title_cards_palette():
    p = one(Film(shots=(Shot("On the ice."),), style="subdued blue-grey palette"))
    assert p.keyframe.source == "title" and p.keyframe_words.startswith("title (palette blue-grey #")
    assert one(Film(shots=(Shot("x"),))).keyframe_words == "title"


@pytest.mark.parametrize(
    ("style", "words"),
    [
        ("Ink-wash painting, subdued blue-grey palette", ["ink", "blue-grey"]),
        ("a bluish gray dawn", ["blue-grey"]),
        ("warm red and gold", ["warm", "red", "gold"]),
        ("水墨，蓝灰色调", ["水墨", "蓝灰"]),
        ("暖色调", ["暖色"]),
        ("黑白电影", ["黑白"]),
        ("a redwood forest, bored teal", ["teal"]),  # whole words only: no "red" in redwood
        ("no colours here", []),
    ],
)
def test_style_colour_words(style, words):
    assert [w for w, _ in style_palette(style)] == words


def test_subdued_softens_the_colour():
    (_, vivid), (_, soft) = style_palette("blue")[0], style_palette("subdued blue")[0]
    assert max(soft) - min(soft) < max(vivid) - min(vivid)


def test_a_continued_shot_is_framed_relative_to_the_shot_it_continues(tmp_path):
    frame = png(tmp_path / "a.png")
    shots = (Shot("a", camera=Camera(framing="close-up"), first_frame=frame),
             Shot("b", camera=Camera(framing="close-up"), continue_previous=True),
             Shot("c", camera=Camera(framing="extreme close-up"), continue_previous=True),
             Shot("d", camera=Camera(framing="wide")), Shot("e", camera=Camera(framing="close-up"), continue_previous=True))  # fmt: skip
    scales = [p.camera.framing for p in plan(Film(shots=shots))]
    assert scales == pytest.approx([1.5, 1.0, 2.4 / 1.5, 0.85, 1.5])  # d is a title card: no size of its own


@pytest.mark.parametrize(
    ("shot", "film_fit", "field"),
    [(Shot("a", fit="stretch"), "cover", "fit"), (Shot("a"), "blurr", "fit"),
     (Shot("a", compose="three-shot"), "cover", "compose"), (Shot("a", focus=(0.5, 1.5)), "cover", "focus")],
)  # fmt: skip
def test_films_built_in_python_are_checked_too(shot, film_fit, field):
    with pytest.raises(InputError) as e:
        plan(Film(shots=(shot,), fit=film_fit))
    assert e.value.field == field


def test_compose_beside_a_first_frame_is_noted(cast, tmp_path):
    shot = Shot("a", characters=("JIA", "LI"), compose="two-shot", first_frame=png(tmp_path / "f.png"))
    p = one(Film(shots=(shot,), characters=cast))
    assert p.keyframe.source == "first_frame" and "compose: two-shot is not used" in p.notes[0]
