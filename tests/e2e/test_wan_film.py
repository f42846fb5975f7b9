"""A multi-shot film through the Wan backend on tiny random-weight models: the frames are noise, but frame
counts, sizes, continuity and the edit are real."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from tests.e2e.helpers import decode, flat_png
from tests.models.wan.tiny import save_tiny_wan
from yingxi.backends.wan import WanGenerator
from yingxi.errors import CapabilityError
from yingxi.film import parse_prompt
from yingxi.render import render

FILM = (
    'Shot 1 (1s, wide, pan left): A kite.\nShot 2 (1s, close-up, continue, crossfade): It dives.\nMEI: "Oh!"'
)


@pytest.fixture(scope="module")
def ti2v(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "ti2v", "ti2v")


@pytest.fixture(scope="module")
def t2v(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "t2v", "t2v")


def test_cli_generates_a_wan_film(ti2v, tmp_path):
    r = subprocess.run([sys.executable, "-m", "yingxi.cli", "generate", "--backend", "wan", "--model", str(ti2v), FILM,
                        "--size", "64x64", "--steps", "2", "-o", "w.mp4"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    # Wan shoots 4k+1 frames at its own fps (24 for TI2V-5B): 1 s -> 25 frames, and the CLI says so.
    assert "shot 1: duration 1s -> 1.04s (25 frames" in r.stderr
    frames, fps, audio, rate = decode(tmp_path / "w.mp4")
    assert frames.shape == (50, 64, 64, 3) and fps == 24
    assert frames.std() > 5  # noise from random weights, not a blank picture
    assert np.sqrt(np.mean(audio[int(1.1 * rate) :] ** 2)) > 0.01  # MEI speaks in shot 2
    assert "Oh!" in (tmp_path / "w.srt").read_text()


def test_continue_hands_the_last_frame_on(ti2v, tmp_path):
    seen = []

    class Spy(WanGenerator):
        def generate(self, request, progress=None):
            clip = super().generate(request, progress)
            seen.append((request, clip))
            return clip

    film = replace(parse_prompt(FILM, seed=3), custom_size=(64, 64))
    result = render(film, Spy(str(ti2v), steps=2), tmp_path / "c.mp4")
    (r1, c1), (r2, c2) = seen
    assert r1.first_frame is None and r1.num_frames == 25 and (r1.width, r1.height) == (64, 64)
    assert np.array_equal(r2.first_frame, c1.frames[-1])  # continuity: shot 2 starts where shot 1 ended
    assert "Wide shot, the camera pans left." in r1.prompt  # camera language folded into the prompt
    assert result.num_frames == 50


def test_text_only_model_plans_within_itself_and_refuses_images_up_front(t2v, tmp_path):
    film = replace(parse_prompt(FILM), custom_size=(64, 64))
    result = render(film, WanGenerator(str(t2v), steps=1), tmp_path / "t.mp4")
    assert any("shot 2: the previous shot's last frame is not used" in n for n in result.notes)
    image = flat_png(tmp_path / "first.png", (10, 200, 10))
    film = film.with_shot(0, replace(film.shots[0], first_frame=image))
    with pytest.raises(CapabilityError, match="text-to-video only"):
        render(film, WanGenerator(str(t2v), steps=1), tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_python_api_load_pipeline(ti2v):
    import yingxi

    pipe = yingxi.load_pipeline(str(ti2v), device="cpu", dtype="fp32")
    frames = pipe(prompt="a kite", width=64, height=64, num_frames=9, num_inference_steps=2, seed=1)
    again = pipe(prompt="a kite", width=64, height=64, num_frames=9, num_inference_steps=2, seed=1)
    assert frames.dtype == np.uint8 and frames.shape == (9, 64, 64, 3)
    assert np.array_equal(frames, again)  # seeded: the same clip


def test_wan_shots_use_wans_own_negative_prompt(ti2v, tmp_path, monkeypatch):
    from yingxi.models.wan.config import WAN_NEGATIVE_PROMPT

    backend = WanGenerator(str(ti2v), steps=1)
    seen = {}
    real = type(backend.pipeline).__call__

    def spy(self, **kw):
        seen.update(kw)
        return real(self, **kw)

    monkeypatch.setattr(type(backend.pipeline), "__call__", spy)
    render(replace(parse_prompt("a kite"), custom_size=(64, 64)), backend, tmp_path / "n.mp4")
    assert seen["negative_prompt"] == WAN_NEGATIVE_PROMPT
