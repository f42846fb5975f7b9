import pytest

from yingxi.errors import InputError
from yingxi.film import parse_prompt
from yingxi.film.model import CameraMove

EXAMPLE = """Ink-wash style, subdued blue-grey palette.
Shot 1 (4s, wide, slow pan left): Two men stand on the frozen Yellow River at dusk.
Shot 2 (3s, close-up, static, crossfade): The older man lifts a thermos flask.
OLD JIA: "Happy new year."
Shot 3 (5s, extreme wide, crane up, fade): Fireworks climb into the night sky.
"""


def test_issue_example():
    film = parse_prompt(EXAMPLE)
    assert film.style == "Ink-wash style, subdued blue-grey palette."
    assert [s.duration for s in film.shots] == [4.0, 3.0, 5.0]
    assert film.duration == 12.0
    s1, s2, s3 = film.shots
    assert s1.prompt == "Two men stand on the frozen Yellow River at dusk."
    assert s1.camera.framing == "wide"
    assert s1.camera.move == CameraMove("pan", "left", "slow")
    assert s1.transition.kind == "cut"
    assert s2.camera.framing == "close-up" and s2.camera.move.kind == "static"
    assert s2.transition.kind == "crossfade"
    assert [(d.character, d.line) for d in s2.dialogue] == [("OLD JIA", "Happy new year.")]
    assert s2.featured == ("OLD JIA",)
    assert s3.camera.framing == "extreme wide" and s3.camera.move == CameraMove("crane", "up")
    assert s3.transition.kind == "fade"


def test_plain_prompt_is_one_shot():
    film = parse_prompt("A red kite over green hills", fps=12, resolution="480p", ratio="9:16", seed=7)
    assert len(film.shots) == 1
    assert film.shots[0].prompt == "A red kite over green hills"
    assert film.shots[0].duration == 5.0
    assert (film.fps, film.size, film.seed) == (12, (480, 864), 7)
    assert parse_prompt("A kite", default_duration=3).shots[0].duration == 3.0


def test_attributes_in_any_order_and_all_words():
    text = "Shot 1 (fast dolly in, medium, 2.5s): a\nShot 2 (wipe right, handheld, continue, 1s, seed 42): b"
    a, b = parse_prompt(text).shots
    assert (
        a.duration == 2.5
        and a.camera.framing == "medium"
        and a.camera.move == CameraMove("dolly", "in", "fast")
    )
    assert b.transition.kind == "wipe" and b.transition.direction == "right"
    assert b.camera.move.kind == "handheld" and b.continue_previous and b.seed == 42


@pytest.mark.parametrize(
    "words,expected",
    [
        ("static", ("static", None)),
        ("pan right", ("pan", "right")),
        ("tilt up", ("tilt", "up")),
        ("tilt down", ("tilt", "down")),
        ("zoom in", ("zoom", "in")),
        ("zoom out", ("zoom", "out")),
        ("dolly out", ("dolly", "out")),
        ("truck left", ("truck", "left")),
        ("orbit right", ("orbit", "right")),
        ("crane down", ("crane", "down")),
        ("handheld", ("handheld", None)),
        ("pan left slowly", ("pan", "left")),
    ],
)
def test_every_camera_move(words, expected):
    move = parse_prompt(f"Shot 1 ({words}): x").shots[0].camera.move
    assert (move.kind, move.direction) == expected


@pytest.mark.parametrize(
    "words,kind",
    [
        ("cut", "cut"),
        ("crossfade", "crossfade"),
        ("dissolve", "crossfade"),
        ("fade", "fade"),
        ("wipe left", "wipe"),
    ],
)
def test_every_transition(words, kind):
    film = parse_prompt(f"Shot 1 (2s): a\nShot 2 (2s, {words}): b")
    assert film.shots[1].transition.kind == kind


@pytest.mark.parametrize(
    "framing", ["extreme wide", "wide", "medium", "close-up", "extreme close-up", "closeup"]
)
def test_every_framing(framing):
    assert parse_prompt(f"Shot 1 ({framing}): x").shots[0].camera.framing in (framing, "close-up")


def test_multiline_shot_text_and_dialogue():
    film = parse_prompt('Shot 1 (3s): A cafe.\nRain on the window.\nMEI: "Is it late?"\nLI: “Too late.”')
    shot = film.shots[0]
    assert shot.prompt == "A cafe. Rain on the window."
    assert [(d.character, d.line) for d in shot.dialogue] == [("MEI", "Is it late?"), ("LI", "Too late.")]


def error_of(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        parse_prompt(text)
    return info.value


def test_misspelt_camera_word_names_shot_field_and_closest_match():
    err = error_of("Shot 1 (2s): a\nShot 2 (3s, pan leftt): b")
    assert err.shot == 2
    assert "shot 2" in str(err)
    assert 'did you mean "pan left"' in str(err)
    assert err.field == "camera" and "accepted: pan left, pan right" in str(err)


def test_slow_misspelt_move_keeps_speed_in_hint():
    assert 'did you mean "slow pan left"' in str(error_of("Shot 1 (slow pna left): a"))


def test_move_without_direction():
    err = error_of("Shot 1 (pan): a")
    assert err.field == "camera" and "pan left or right" in str(err)


def test_static_with_direction():
    assert "takes no direction" in str(error_of("Shot 1 (static left): a"))


def test_misspelt_transition():
    err = error_of("Shot 1 (crossfad): a")
    assert 'did you mean "crossfade"' in str(err)


def test_wipe_bad_direction():
    err = error_of("Shot 1 (wipe up): a")
    assert err.field == "transition" and "wipe left" in str(err)


def test_duplicate_attribute():
    err = error_of("Shot 1 (wide, close-up): a")
    assert err.field == "framing" and '"wide"' in str(err) and '"close-up"' in str(err)


def test_duration_out_of_range_and_malformed():
    err = error_of("Shot 1 (90s): a")
    assert err.field == "duration" and "60s" in str(err)


def test_shot_numbers_in_order():
    err = error_of("Shot 1: a\nShot 3: b")
    assert err.shot == 3 and "Shot 2" in str(err)


def test_empty_shot_and_empty_prompt():
    assert error_of("Shot 1 (2s):").field == "prompt"
    assert error_of("   ").field == "prompt"


def test_continue_on_first_shot():
    err = error_of("Shot 1 (continue): a")
    assert err.shot == 1 and err.field == "continue"


def test_malformed_header():
    err = error_of("Shot 1 (2s) a man walks")
    assert err.field == "header" and "Shot N (" in str(err)


def test_dialogue_before_the_first_shot_is_an_error_not_style():
    err = error_of('OLD JIA: "Happy new year."\nShot 1 (2s): The river.')
    assert (err.shot, err.field) == (1, "dialogue") and "before Shot 1" in str(err) and "OLD JIA" in str(err)
    err = error_of("老贾：“新年好。”\nShot 1 (2s): 冰河。")
    assert err.field == "dialogue"
    # A quoted style note in sentence case is style, as before.
    assert parse_prompt('Palette: "teal and orange"\nShot 1 (2s): a').style == 'Palette: "teal and orange"'


def test_speed_as_an_attribute_of_its_own():
    film = parse_prompt("Shot 1 (4s, orbit left, fast): a\nShot 2 (slow, crane up): b")
    assert film.shots[0].camera.move == CameraMove("orbit", "left", "fast")
    assert film.shots[1].camera.move == CameraMove("crane", "up", "slow")
    err = error_of("Shot 1 (4s, slow): a")
    assert err.field == "camera" and '"slow pan left"' in str(err)
    err = error_of("Shot 1 (slow pan left, fast): a")
    assert err.field == "camera" and "two speeds" in str(err)
    assert error_of("Shot 1 (slow, fast, pan left): a").field == "speed"


def test_a_sentence_starting_with_shot_n_is_text_and_malformed_headers_still_fail():
    film = parse_prompt("Shot 2 is my favourite: a dog runs.")
    assert film.shots[0].prompt == "Shot 2 is my favourite: a dog runs."
    for header in ("Shot 1 - a dog", "Shot 1. a dog", "Shot 1 [4s]: a dog", "Shot 1", "镜头1 - 一只狗"):
        assert error_of(header).field == "header", header


def test_dialogue_in_single_and_corner_quotes():
    film = parse_prompt("Shot 1 (2s): a\nMEI: 'Hi.'\nLI: ‘Bye.’\n老贾：『新年好』")
    assert [(d.character, d.line) for d in film.shots[0].dialogue] == [
        ("MEI", "Hi."), ("LI", "Bye."), ("老贾", "新年好")
    ]  # fmt: skip


def test_hyphenated_moves_and_chinese_duration_and_framing():
    film = parse_prompt("镜头1（4秒，远景，pan-left）：冰河。\n镜头2（2.5 秒，特写，dolly-in）：热水瓶。")
    s1, s2 = film.shots
    assert (s1.duration, s1.camera.framing, s1.camera.move) == (4.0, "wide", CameraMove("pan", "left"))
    assert (s2.duration, s2.camera.framing, s2.camera.move) == (2.5, "close-up", CameraMove("dolly", "in"))
    assert error_of("Shot 1 (locked-off, dolly-in): a").field == "camera"  # two moves, as written
    assert parse_prompt("Shot 1 (locked-off): a").shots[0].camera.move == CameraMove("static")


@pytest.mark.parametrize("words", ["fade", "fade to black", "Fade Through Black", "fade from black"])
def test_fade_through_black_words_in_headers_and_scripts(words):
    from yingxi.film import parse_script

    assert parse_prompt(f"Shot 1 (2s, {words}): a").shots[0].transition.kind == "fade"
    assert parse_script({"shots": [{"prompt": "a", "transition": words}]}).shots[0].transition.kind == "fade"


def test_one_default_shot_length_for_prompts_and_scripts():
    from yingxi.film import parse_script
    from yingxi.film.model import DEFAULT_SHOT_SECONDS, Shot

    assert parse_prompt("a").shots[0].duration == DEFAULT_SHOT_SECONDS == Shot("a").duration
    assert parse_script({"shots": ["a"]}).shots[0].duration == DEFAULT_SHOT_SECONDS


def test_duration_spellings_and_bare_numbers():
    from yingxi.film import parse_script

    for words in ("4s", "4.0s", "4 s", "4sec", "4 seconds", "4S", "4.s"):
        assert parse_prompt(f"Shot 1 ({words}): a").shots[0].duration == 4.0, words
    assert parse_prompt("Shot 1 (.5s): a").shots[0].duration == 0.5
    err = error_of("Shot 1 (2, wide): a")
    assert err.field == "header" and 'did you mean "2s"' in str(err) and "seed N" in str(err)
    assert parse_script({"shots": [{"prompt": "a", "duration": "2.5"}]}).shots[0].duration == 2.5


def test_speech_without_quotes_is_an_error_that_shows_the_quoted_form():
    err = error_of("Shot 1 (2s): The river.\nShot 2 (2s): A flask.\nOLD JIA: Happy new year.")
    assert (err.shot, err.field) == (2, "dialogue") and 'write OLD JIA: "Happy new year."' in str(err)
    # Labels in lower case or without case are picture description, as before.
    film = parse_prompt("Shot 1 (2s): A river.\nLighting: warm dusk.\n画面：远处的烟花。")
    assert film.shots[0].prompt == "A river. Lighting: warm dusk. 画面：远处的烟花。"
