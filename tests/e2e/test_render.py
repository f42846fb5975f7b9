"""The film pipeline end to end: Film -> render() -> MP4, checked on decoded frames and audio."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import yingxi.render
from tests.e2e.helpers import decode, flat_png, rms, shift_between, stream_kinds, texture_png
from yingxi.backends.animatic import AnimaticGenerator
from yingxi.errors import InputError, RenderError
from yingxi.film import parse_prompt
from yingxi.media.video import write_mp4
from yingxi.render import render

FPS = 12


def small(film):
    return replace(film, fps=FPS, resolution="480p")


def test_two_flat_shots_crossfade_and_dialogue(tmp_path):
    red, blue = flat_png(tmp_path / "red.png", (220, 30, 30)), flat_png(tmp_path / "blue.png", (20, 40, 230))
    # 14 fps: the 0.5 s crossfade is 7 frames, so its middle frame (the new shot's first) is the 50/50 mix.
    film = small(
        parse_prompt('Shot 1 (2s, static): Red.\nShot 2 (2s, static, crossfade): Blue.\nMEI: "Hello there."')
    )
    film = replace(film, fps=14)
    film = film.with_shot(0, replace(film.shots[0], first_frame=red))
    film = film.with_shot(1, replace(film.shots[1], first_frame=blue))
    out = tmp_path / "film.mp4"
    result = render(film, AnimaticGenerator(), out)

    assert stream_kinds(out) == {"video": "h264", "audio": "aac"}
    frames, fps, audio, rate = decode(out)
    assert fps == 14 and frames.shape[1:3] == (480, 864)
    assert frames.shape[0] == result.num_frames == 2 * 2 * 14  # total = sum of shots' frames
    cut = 2 * 14
    # Far from the cut the shots are their flat colours; at the cut, the crossfade is their mean.
    assert np.abs(frames[2].astype(int) - (220, 30, 30)).mean() < 8
    assert np.abs(frames[-3].astype(int) - (20, 40, 230)).mean() < 8
    middle = frames[cut].astype(float).mean(axis=(0, 1))
    assert np.allclose(
        middle, [(220 + 20) / 2, (30 + 40) / 2, (30 + 230) / 2], atol=10
    )  # H.264 + 8-bit rounding
    # Dialogue in shot 2 is audible there; shot 1 has none and no music, so it is silent.
    shot1, shot2 = audio[: int(1.8 * rate)], audio[int(2.2 * rate) : int(3.8 * rate)]
    assert rms(shot1) < 1e-3 and rms(shot2) > 0.02
    assert result.srt_path and "Hello there." in result.srt_path.read_text()


def test_pan_left_moves_picture_right_and_same_seed_same_frames(tmp_path, monkeypatch):
    tex = texture_png(tmp_path / "tex.png")
    film = small(parse_prompt("Shot 1 (1.5s, pan left): texture", seed=3))
    film = film.with_shot(0, replace(film.shots[0], first_frame=tex))
    handed: list[np.ndarray] = []  # the frames render hands the encoder, per run

    def keep(path, frames, **kw):
        frames = [f.copy() for f in frames]
        handed.append(np.stack(frames))
        return write_mp4(path, iter(frames), **kw)

    monkeypatch.setattr(yingxi.render, "write_mp4", keep)
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    render(film, AnimaticGenerator(), a)
    render(film, AnimaticGenerator(), b)
    assert np.array_equal(handed[0], handed[1])  # same seed -> identical frames, bit for bit
    fa, _, _, _ = decode(a)
    fb, _, _, _ = decode(b)
    # Decoded, they agree within H.264 noise: libx264 as shipped is not bit-reproducible from run to run.
    diff = np.abs(fa.astype(int) - fb.astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 8
    assert np.abs(fa.astype(int) - handed[0]).mean() < 3  # and the file holds those frames
    dx, dy = shift_between(fa[0], fa[-1])
    assert dx > 10 and abs(dy) < 3  # the view pans left, so the picture moves right


def test_continue_starts_from_previous_last_frame(tmp_path):
    tex = texture_png(tmp_path / "tex.png", seed=1)
    film = small(parse_prompt("Shot 1 (1s, pan right): a\nShot 2 (1s, static, continue): b"))
    film = film.with_shot(0, replace(film.shots[0], first_frame=tex))
    frames, *_ = decode(render(film, AnimaticGenerator(), tmp_path / "c.mp4").path)
    assert np.abs(frames[FPS - 1].astype(int) - frames[FPS].astype(int)).mean() < 6  # no jump at the cut


def test_title_cards_without_images_and_last_frame_png(tmp_path):
    film = small(parse_prompt("Shot 1 (1s): The title card speaks.\nShot 2 (1s, fade): Another card."))
    result = render(film, AnimaticGenerator(), tmp_path / "t.mp4", last_frame_png=tmp_path / "last.png")
    frames, *_ = decode(result.path)
    assert frames[0].std() > 10  # not a blank frame: a card with text
    assert frames[FPS].mean() < frames[0].mean()  # the fade passes through black at the cut
    assert result.last_frame_path and result.last_frame_path.is_file()


def test_missing_image_fails_before_any_output(tmp_path):
    film = small(parse_prompt("Shot 1 (1s): a"))
    film = film.with_shot(0, replace(film.shots[0], first_frame=tmp_path / "missing.png"))
    out = tmp_path / "x.mp4"
    with pytest.raises(InputError) as info:
        render(film, AnimaticGenerator(), out)
    assert "shot 1" in str(info.value) and "missing.png" in str(info.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_backend_failure_leaves_no_file(tmp_path):
    class Broken(AnimaticGenerator):
        def generate(self, request, progress=None):
            raise RenderError("the camera broke")

    out = tmp_path / "x.mp4"
    with pytest.raises(RenderError):
        render(small(parse_prompt("a")), Broken(), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_progress_reports_each_shot(tmp_path):
    events = []
    render(
        small(parse_prompt("Shot 1 (0.5s): a\nShot 2 (0.5s): b")),
        AnimaticGenerator(),
        tmp_path / "p.mp4",
        events.append,
    )
    shots = {e.shot for e in events}
    assert {0, 1, 2, 3} <= shots
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_unreadable_music_fails_before_any_shot_is_shot(tmp_path):
    fake = tmp_path / "score.m4a"
    fake.write_text("not audio")
    shot = []

    class Counting(AnimaticGenerator):
        def generate(self, request, progress=None):
            shot.append(request)
            return super().generate(request, progress)

    out = tmp_path / "m.mp4"
    with pytest.raises(InputError) as info:
        render(replace(small(parse_prompt("a")), music=fake), Counting(), out)
    assert info.value.field == "music" and "score.m4a" in str(info.value)
    assert shot == [] and not out.exists()


def test_an_output_that_is_a_folder_is_refused_before_any_shot_is_shot(tmp_path):
    (tmp_path / "taken.mp4").mkdir()
    film = small(parse_prompt("Shot 1 (0.25s): a"))
    events = []
    with pytest.raises(InputError, match="taken.mp4 is a folder"):
        render(film, AnimaticGenerator(), tmp_path / "taken.mp4", events.append)
    assert events == []  # found first: not even planning started
    assert [p.name for p in tmp_path.iterdir()] == ["taken.mp4"]


def test_an_output_that_becomes_unwritable_during_the_render_is_a_render_error_naming_it(tmp_path):
    film = small(parse_prompt("Shot 1 (0.25s): a"))

    def block(event):  # a folder appears where the film should go while it is shot: the final rename fails
        if event.shot == 1 and not (tmp_path / "taken.mp4").exists():
            (tmp_path / "taken.mp4").mkdir()

    with pytest.raises(RenderError, match="cannot write .*taken.mp4"):
        render(film, AnimaticGenerator(), tmp_path / "taken.mp4", block)
    assert [p.name for p in tmp_path.iterdir()] == ["taken.mp4"]  # no partial file left behind


@pytest.mark.parametrize("where", ["under-a-file", "read-only"])
def test_an_unwritable_output_folder_is_an_input_error_before_the_render(tmp_path, where):
    (tmp_path / "notes.txt").write_text("a file")
    out = tmp_path / "notes.txt" / "deeper" / "film.mp4" if where == "under-a-file" else Path("/sys/film.mp4")
    with pytest.raises(InputError, match="cannot write") as info:
        render(small(parse_prompt("Shot 1 (0.25s): a")), AnimaticGenerator(), out)
    assert info.value.field == "output"
    assert ("is a file, not a folder" if where == "under-a-file" else "not writable") in info.value.message
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_missing_output_folders_are_created(tmp_path):
    out = tmp_path / "a" / "b" / "film.mp4"
    render(small(parse_prompt("Shot 1 (0.25s): a")), AnimaticGenerator(), out)
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["film.mp4"]


def test_a_film_without_shots_is_an_input_error(tmp_path):
    from yingxi.film.model import Film

    with pytest.raises(InputError, match="shots: the film has no shots"):
        render(Film(shots=()), AnimaticGenerator(), tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


def test_a_broken_character_image_names_the_characters_field(tmp_path):
    from yingxi.film.model import Character

    (tmp_path / "jia.png").write_bytes(b"not a png")
    film = small(parse_prompt('Shot 1 (0.5s): a\nOLD JIA: "Hi."'))
    film = replace(film, characters=(Character("OLD JIA", image=tmp_path / "jia.png"),))
    with pytest.raises(InputError) as info:
        render(film, AnimaticGenerator(), tmp_path / "a.mp4")
    assert (info.value.shot, info.value.field) == (1, "characters.OLD JIA.image")
    assert not (tmp_path / "a.mp4").exists()
