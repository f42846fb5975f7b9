import numpy as np
import pytest

from yingxi.director import Capabilities, camera_path, plan, shot_seed
from yingxi.errors import CapabilityError
from yingxi.film import parse_prompt
from yingxi.film.model import Character, Film, Shot

PROMPT = """Ink-wash style.
Shot 1 (4s, wide, slow pan left): Two men on the ice.
Shot 2 (2.5s, close-up, static, crossfade): OLD JIA lifts a flask.
OLD JIA: "Happy new year."
Shot 3 (1.02s, extreme wide, crane up, fade, continue): Fireworks.
"""


def test_frames_seeds_and_prompts():
    film = parse_prompt(PROMPT, fps=24, seed=7)
    plans = plan(film)
    assert [p.num_frames for p in plans] == [96, 60, 24]  # duration x fps, rounded on the running clock
    assert [p.index for p in plans] == [1, 2, 3]
    assert all((p.width, p.height) == (1280, 720) for p in plans)
    # Seeds: reproducible, different per shot, and a function of the film seed.
    assert [p.seed for p in plans] == [p.seed for p in plan(film)]
    assert len({p.seed for p in plans}) == 3
    assert plans[0].seed == shot_seed(7, 1) != shot_seed(8, 1)
    # The camera move, as words for neural backends, and the style, are in the prompt.
    assert "Wide shot, the camera pans left slowly." in plans[0].prompt
    assert plans[0].prompt.endswith("Ink-wash style.")
    assert "static camera, locked-off shot" in plans[1].prompt
    assert plans[2].camera_phrase.startswith("extreme wide shot, crane shot")
    assert plans[1].transition.kind == "crossfade"


def test_shot_seed_overrides():
    film = parse_prompt("Shot 1 (seed 5): a\nShot 2: b")
    assert plan(film)[0].seed == 5


def test_keyframe_source_order(tmp_path):
    img = tmp_path / "a.png"
    img.write_bytes(b"x")
    shots = (
        Shot("first frame wins", first_frame=img, characters=("MEI",)),
        Shot("continues", continue_previous=True, characters=("MEI",)),
        Shot("character image", characters=("MEI",)),
        Shot("style image"),
    )
    film = Film(shots=shots, characters=(Character("MEI", image=img),), style_image=img)
    sources = [p.keyframe.source for p in plan(film)]
    assert sources == ["first_frame", "continue", "character", "style"]
    assert plan(Film(shots=(Shot("nothing"),)))[0].keyframe.source == "title"
    assert plan(film)[2].keyframe.character == "MEI"


def test_backend_constraints_snap_frames_and_sizes_with_notes():
    caps = Capabilities(size_multiple=16, frame_step=4, frame_offset=1, max_frames=81, native_fps=16)
    film = parse_prompt("Shot 1 (4s): a\nShot 2 (5.2s): b", resolution="480p")
    p1, p2 = plan(film, caps)
    assert p1.num_frames == 65 and (p1.num_frames - 1) % 4 == 0  # 4s x 16fps = 64 -> 65
    assert p2.num_frames == 81  # capped at the backend's maximum
    assert (p1.width, p1.height) == (864, 480) and p1.fps == 16
    assert any("4s -> 4.06s" in n for n in p1.notes)
    assert any("81 frames" in n for n in p2.notes)
    with pytest.raises(CapabilityError) as info:  # far beyond what one generation makes: split the shot
        plan(parse_prompt("Shot 1 (2s): a\nShot 2 (10s): b"), caps)
    assert info.value.shot == 2 and info.value.field == "duration" and "at most 81 frames" in str(info.value)


def test_legal_frames():
    caps = Capabilities(frame_step=4, frame_offset=1, min_frames=5, max_frames=121)
    assert [caps.legal_frames(n) for n in (1, 5, 6, 7, 81, 200)] == [5, 5, 5, 9, 81, 121]


def test_camera_paths_are_eased_and_directional():
    n = 48
    pan_left = camera_path("pan", "left", "normal", n)
    assert pan_left.num_frames == n
    assert pan_left.offset_x[0] == 0 and pan_left.offset_x[-1] < 0  # the view moves left
    steps = np.diff(pan_left.offset_x)
    assert abs(steps[0]) < abs(steps[n // 2])  # eased: starts gently
    slow, fast = camera_path("pan", "right", "slow", n), camera_path("pan", "right", "fast", n)
    assert np.isclose(fast.offset_x[-1], 4 * slow.offset_x[-1])
    assert camera_path("zoom", "in", "normal", n).zoom[-1] > 1.3
    assert camera_path("zoom", "out", "normal", n).zoom[-1] == 1.0
    assert camera_path("tilt", "up", "normal", n).offset_y[-1] > 0
    shake_a, shake_b = (
        camera_path("handheld", None, "normal", n, 1),
        camera_path("handheld", None, "normal", n, 1),
    )
    assert np.array_equal(shake_a.offset_x, shake_b.offset_x) and shake_a.offset_x.std() > 0
    static = camera_path("static", None, "normal", n)
    assert not static.offset_x.any() and np.all(static.zoom == 1)


def test_text_only_backend_drops_implicit_keyframes_with_a_note(tmp_path):
    img = tmp_path / "a.png"
    img.write_bytes(b"x")
    film = Film(
        shots=(
            Shot("given", first_frame=img),
            Shot("goes on", continue_previous=True),
            Shot("MEI", characters=("MEI",)),
        ),
        characters=(Character("MEI", image=img),),
    )
    p1, p2, p3 = plan(film, Capabilities(conditionings=frozenset({"t2v"})))
    assert p1.keyframe.source == "first_frame"  # asked for explicitly: the backend's check will refuse it
    assert p2.keyframe.source == "title" and "previous shot's last frame is not used" in p2.notes[0]
    assert p3.keyframe.source == "title" and "reference image is not used" in p3.notes[0]


def test_size_scaled_down_within_the_backends_pixel_budget():
    caps = Capabilities(size_multiple=16, max_pixels=int(832 * 480 * 1.25))
    (p,) = plan(parse_prompt("a", resolution="720p"), caps)
    assert p.width * p.height <= caps.max_pixels and p.width % 16 == 0 and p.height % 16 == 0
    assert abs(p.width / p.height - 16 / 9) < 0.05
    assert any("1280x720 ->" in n for n in p.notes)


def test_frame_rounding_does_not_add_up_over_many_short_shots():
    film = parse_prompt("\n".join(f"Shot {i} (0.27s): s{i}" for i in range(1, 11)), fps=24)
    frames = [p.num_frames for p in plan(film)]
    assert sum(frames) == round(film.duration * 24) == 65  # 2.7 s; per-shot rounding gave 60 (2.5 s)
    assert set(frames) == {6, 7}  # each shot within a frame of its own duration
    # A one-frame minimum still holds when a shot is shorter than a frame.
    tiny = parse_prompt("Shot 1 (0.25s): a\nShot 2 (0.25s): b", fps=2)
    assert [p.num_frames for p in plan(tiny)] == [1, 1]


def test_prompt_sentences_end_once_in_any_script():
    film = parse_prompt(
        "水墨风格。\nShot 1 (2s): 冰河上两个人。\nShot 2 (2s): Is it late?\nShot 3 (2s): Ice", fps=8
    )
    film = Film(shots=film.shots, style=film.style, characters=(Character("MEI", "a girl in red!"),))
    p1, p2, p3 = (p.prompt for p in plan(film))
    assert p1 == "冰河上两个人。 Medium shot, static camera, locked-off shot. 水墨风格。"
    assert p2.startswith("Is it late? Medium shot") and p3.startswith("Ice. Medium shot")
    shot = Shot("MEI waves", characters=("MEI",))
    assert plan(Film(shots=(shot,), characters=film.characters))[0].prompt.startswith(
        "MEI waves. MEI: a girl in red! "
    )
