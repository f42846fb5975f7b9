"""Chinese script grammar (camera and transition words, 镜头一 / 第一镜 numbering, 、 and ， separators) and
the common English film words, in the prompt grammar and in YAML scripts alike; NTSC frame rates."""

from __future__ import annotations

from fractions import Fraction

import pytest

from yingxi.errors import InputError
from yingxi.film import load_script, parse_prompt, parse_script
from yingxi.film.model import CameraMove

CAMERA = [
    ("固定", ("static", None, "normal")),
    ("固定镜头", ("static", None, "normal")),
    ("推", ("dolly", "in", "normal")),
    ("推镜头", ("dolly", "in", "normal")),
    ("拉", ("dolly", "out", "normal")),
    ("摇", ("pan", "right", "normal")),
    ("左摇", ("pan", "left", "normal")),
    ("向右摇", ("pan", "right", "normal")),
    ("上摇", ("tilt", "up", "normal")),
    ("下摇", ("tilt", "down", "normal")),
    ("移", ("truck", "right", "normal")),
    ("左移", ("truck", "left", "normal")),
    ("跟", ("truck", "right", "normal")),
    ("跟拍", ("truck", "right", "normal")),
    ("升", ("crane", "up", "normal")),
    ("降", ("crane", "down", "normal")),
    ("手持", ("handheld", None, "normal")),
    ("环绕", ("orbit", "right", "normal")),
    ("向左环绕", ("orbit", "left", "normal")),
    ("缓慢推", ("dolly", "in", "slow")),
    ("缓缓地拉", ("dolly", "out", "slow")),
    ("快速左摇", ("pan", "left", "fast")),
    ("甩", ("pan", "right", "fast")),
    ("push in", ("dolly", "in", "normal")),
    ("slow push in", ("dolly", "in", "slow")),
    ("pull out", ("dolly", "out", "normal")),
    ("pull back", ("dolly", "out", "normal")),
    ("whip pan", ("pan", "right", "fast")),
    ("whip pan left", ("pan", "left", "fast")),
    ("whip-pan right", ("pan", "right", "fast")),
    ("tracking", ("truck", "right", "normal")),
    ("tracking shot", ("truck", "right", "normal")),
    ("track left", ("truck", "left", "normal")),
]
TRANSITION = [
    ("叠化", ("crossfade", None)),
    ("淡入淡出", ("fade", None)),
    ("淡入", ("fade", None)),
    ("划", ("wipe", "left")),
    ("右划", ("wipe", "right")),
    ("切", ("cut", None)),
    ("cross dissolve", ("crossfade", None)),
    ("dip to black", ("fade", None)),
]
FRAMING = [
    ("establishing shot", "extreme wide"),
    ("two-shot", "medium"),
    ("two shot", "medium"),
    ("over-the-shoulder", "medium"),
    ("over the shoulder", "medium"),
    ("medium close-up", "close-up"),
    ("大远景", "extreme wide"),
    ("远景", "wide"),
    ("中景", "medium"),
    ("近景", "close-up"),
    ("特写", "close-up"),
    ("过肩镜头", "medium"),
    ("双人镜头", "medium"),
]


def move_of(camera) -> tuple:
    return (camera.move.kind, camera.move.direction, camera.move.speed)


@pytest.mark.parametrize(("words", "expected"), CAMERA)
def test_every_camera_word_in_headers_and_scripts(words, expected):
    assert move_of(parse_prompt(f"镜头1（2秒，{words}）：冰河。").shots[0].camera) == expected
    assert move_of(parse_prompt(f"Shot 1 (2s, {words}): a").shots[0].camera) == expected
    assert move_of(parse_script({"shots": [{"prompt": "a", "camera": words}]}).shots[0].camera) == expected


@pytest.mark.parametrize(("words", "expected"), TRANSITION)
def test_every_transition_word_in_headers_and_scripts(words, expected):
    shot = parse_prompt(f"镜头一：冰河。\n镜头二（{words}）：烟花。").shots[1]
    assert (shot.transition.kind, shot.transition.direction) == expected
    shot = parse_script({"shots": ["a", {"prompt": "b", "transition": words}]}).shots[1]
    assert (shot.transition.kind, shot.transition.direction) == expected


@pytest.mark.parametrize(("words", "expected"), FRAMING)
def test_every_framing_word_in_headers_and_scripts(words, expected):
    assert parse_prompt(f"Shot 1 ({words}, 2s): a").shots[0].camera.framing == expected
    assert parse_prompt(f"第一镜（{words}）：a").shots[0].camera.framing == expected
    assert parse_script({"shots": [{"prompt": "a", "framing": words}]}).shots[0].camera.framing == expected


@pytest.mark.parametrize(
    "text",
    [
        "镜头一：冰河。\n镜头二：烟花。\n镜头三：雪。",
        "镜头1：冰河。\n镜头2：烟花。\n镜头3：雪。",
        "第一镜：冰河。\n第二镜：烟花。\n第三镜：雪。",
        "第1镜：冰河。\n第2个镜头：烟花。\n第三个镜头：雪。",
        "Shot one: a\nShot two: b\nShot three: c",
    ],
)
def test_shot_numbering_in_chinese_and_words(text):
    film = parse_prompt(text)
    assert len(film.shots) == 3 and all(s.duration == 5.0 for s in film.shots)


def test_tens_and_order():
    text = (
        "\n".join(f"镜头{n}（0.5秒）：x" for n in "一二三四五六七八九十")
        + "\n镜头十一（0.5秒）：y\n镜头十二（1秒）：z"
    )
    film = parse_prompt(text)
    assert len(film.shots) == 12 and film.shots[-1].duration == 1.0
    err = pytest.raises(InputError, parse_prompt, "镜头一：a\n镜头三：b").value
    assert err.shot == 3 and "Shot 2" in str(err)


def test_the_chinese_example_parses_with_both_separators():
    text = (
        "水墨画风格，冷灰蓝色调。\n"
        "镜头一（4秒、大远景、缓慢左摇）：两个男人站在结冰的黄河上。\n"
        "镜头二（3秒，特写，推，叠化）：老人举起热水瓶。\n"
        "老贾：“新年快乐。”\n"
        "镜头三（5秒、远景、升、淡入淡出、淡出）：烟花升上夜空。"
    )
    film = parse_prompt(text)
    s1, s2, s3 = film.shots
    assert film.style == "水墨画风格，冷灰蓝色调。"
    assert (s1.duration, s1.camera.framing, s1.camera.move) == (
        4.0,
        "extreme wide",
        CameraMove("pan", "left", "slow"),
    )
    assert (s2.camera.framing, s2.camera.move, s2.transition.kind) == (
        "close-up",
        CameraMove("dolly", "in"),
        "crossfade",
    )
    assert [(d.character, d.line) for d in s2.dialogue] == [("老贾", "新年快乐。")]
    assert (s3.camera.move, s3.transition.kind, film.fade_out) == (CameraMove("crane", "up"), "fade", 1.0)


@pytest.mark.parametrize(
    "text",
    [
        "镜头一 远景：两个人站在冰上。",  # no brackets around the attributes
        "镜头一\n两个人站在冰上。",
        "第一镜 - 两个人。",
        "镜头1 两个人站在冰上。",
        "Shot 1 - a dog",
        "Shot one. a dog",
    ],
)
def test_text_that_looks_like_shots_but_does_not_parse_is_an_error_not_one_title_card(text):
    err = pytest.raises(InputError, parse_prompt, text).value
    assert err.field == "header" and "镜头N（4秒，远景，左摇）：" in str(err)


def test_a_sentence_that_starts_like_a_header_is_still_text():
    assert parse_prompt("镜头一转，两个人走来。").shots[0].prompt == "镜头一转，两个人走来。"
    assert parse_prompt("Shot one is the best: a dog").shots[0].prompt == "Shot one is the best: a dog"


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        ("镜头1（摇摆）：a", "header", "摇"),
        ("镜头1（叠画）：a", "header", "叠化"),
        ("Shot 1 (whip pna): a", "header", "whip pan"),
        ("Shot 1 (trackin): a", "header", "tracking"),
        ("Shot 1 (establishing shoot): a", "header", "establishing shot"),
        ("Shot 1 (push inn): a", "header", "push in"),
    ],
)
def test_unknown_words_still_get_the_closest_match(text, field, hint):
    err = pytest.raises(InputError, parse_prompt, text).value
    assert err.field == field and f'did you mean "{hint}"' in str(err)


def test_unknown_words_in_scripts_name_the_closest_match():
    for key, word, hint in (
        ("camera", "推镜拉", "推"),
        ("camera", "whip pann", "whip pan"),
        ("transition", "叠画", "叠化"),
    ):
        err = pytest.raises(InputError, parse_script, {"shots": [{"prompt": "a", key: word}]}).value
        assert err.field == key and f'did you mean "{hint}"' in str(err), str(err)
    err = pytest.raises(InputError, parse_script, {"shots": [{"prompt": "a", "framing": "two-shoot"}]}).value
    assert 'did you mean "two-shot"' in str(err) or "two shot" in str(err)


def test_slow_whip_pan_is_both_speeds():
    err = pytest.raises(InputError, parse_prompt, "Shot 1 (slow whip pan): a").value
    assert err.field == "camera" and "both slow and fast" in str(err)


def test_fade_out_ends_the_film():
    film = parse_prompt("Shot 1 (2s): a\nShot 2 (2s, fade out): b")
    assert film.fade_out == 1.0 and film.shots[1].transition.kind == "cut"
    assert parse_prompt("Shot 1 (2s): a\nShot 2 (2s, fade-out, crossfade): b").fade_out == 1.0
    assert parse_prompt("Shot 1 (2s): a\nShot 2 (2s): b").fade_out == 0.0
    err = pytest.raises(InputError, parse_prompt, "Shot 1 (2s, fade out): a\nShot 2 (2s): b").value
    assert err.shot == 1 and "last shot" in str(err)
    assert parse_script({"fade_out": True, "shots": ["a"]}).fade_out == 1.0
    assert parse_script({"fade_out": 2.5, "shots": ["a"]}).fade_out == 2.5
    assert parse_script({"shots": ["a"]}).fade_out == 0.0
    with pytest.raises(InputError, match="fade_out is true, false or seconds"):
        parse_script({"fade_out": "yes please", "shots": ["a"]})
    err = pytest.raises(
        InputError, parse_script, {"shots": [{"prompt": "a", "transition": "fade out"}]}
    ).value
    assert err.field == "transition" and "fade_out: true" in str(err)


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        ("23.976", Fraction(24000, 1001)),
        (23.976, Fraction(24000, 1001)),
        ("23.98", Fraction(24000, 1001)),
        ("24000/1001", Fraction(24000, 1001)),
        ("29.97", Fraction(30000, 1001)),
        (29.97, Fraction(30000, 1001)),
        ("59.94", Fraction(60000, 1001)),
        (24, 24),
        ("30", 30),
    ],
)
def test_ntsc_frame_rates_are_exact(value, rate):
    film = parse_script({"fps": value, "shots": ["a"]})
    assert film.fps == rate and type(film.fps) is type(rate)
    assert parse_prompt("a", fps=film.fps).fps == rate


def test_other_fractional_rates_are_refused_with_the_nearest_ntsc_rate():
    with pytest.raises(InputError, match=r'fps must be a whole number.*did you mean "23.976"'):
        parse_script({"fps": 23.97, "shots": ["a"]})
    with pytest.raises(InputError, match="fps must be a whole number"):
        parse_script({"fps": "12.5", "shots": ["a"]})


def test_a_yaml_script_in_chinese(tmp_path):
    (tmp_path / "film.yaml").write_text(
        "fps: 23.976\nfade_out: true\nshots:\n"
        "  - {prompt: 冰河, duration: 4, framing: 大远景, camera: 缓慢左摇}\n"
        "  - {prompt: 热水瓶, duration: 3, framing: 过肩镜头, camera: 推, transition: 叠化}\n"
        "  - {prompt: 烟花, framing: establishing shot, camera: whip pan, transition: 淡入淡出}\n",
        encoding="utf-8",
    )
    film = load_script(tmp_path / "film.yaml")
    assert film.fps == Fraction(24000, 1001) and film.fade_out == 1.0
    assert [move_of(s.camera) for s in film.shots] == [
        ("pan", "left", "slow"),
        ("dolly", "in", "normal"),
        ("pan", "right", "fast"),
    ]
    assert [s.transition.kind for s in film.shots] == ["cut", "crossfade", "fade"]
    assert [s.camera.framing for s in film.shots] == ["extreme wide", "medium", "extreme wide"]


@pytest.mark.parametrize(
    "text",
    [
        "镜头一：冰河。镜头二：烟花。",
        "镜头一：冰河。\n远处，镜头二（3秒）：烟花。",
        "Shot 1: a dog. Shot 2 (3s): a cat",
    ],
)
def test_a_header_inside_a_line_is_an_error_not_part_of_the_previous_shot(text):
    err = pytest.raises(InputError, parse_prompt, text).value
    assert (err.shot, err.field) == (2, "header") and "its own line" in str(err)


def test_headers_mentioned_in_passing_stay_text():
    assert (
        parse_prompt("Shot 1: as in shot 2 of the old film: snow").shots[0].prompt.startswith("as in shot 2")
    )
    assert parse_prompt("镜头一：冰河，如同第二镜头所见。").shots[0].prompt == "冰河，如同第二镜头所见。"
