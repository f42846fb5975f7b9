"""Issue 8's framing items end to end, measured on the decoded MP4: shot sizes (3), several characters on
screen (4), fit modes (11) and the demo's two characters."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from tests.e2e.helpers import decode
from yingxi.backends.animatic import AnimaticGenerator
from yingxi.director.camera import FRAMING_SCALE
from yingxi.film.model import FRAMINGS
from yingxi.film.script import load_script
from yingxi.render import prepare, render

REPO = Path(__file__).resolve().parents[2]
W, H, FPS = 192, 108, 12
RED, BLUE = (210, 40, 40), (40, 60, 210)


def script(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "film.yaml"
    path.write_text(yaml.safe_dump({"fps": FPS, "size": f"{W}x{H}", **data}, allow_unicode=True))
    return path


def disc_png(path: Path, radius: float = 9.0) -> Path:
    img = Image.new("RGB", (4 * W, 4 * H), (100, 100, 100))
    c, r = (2 * W, 2 * H), 4 * radius
    ImageDraw.Draw(img).ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=(255, 255, 255))
    img.resize((W, H), Image.Resampling.BOX).save(path)
    return path


def portrait_png(path: Path, rgb: tuple[int, int, int]) -> Path:
    """A colour-coded character: a flat figure of its colour on a pale ground, 3:4 like a portrait."""
    img = Image.new("RGB", (90, 120), (235, 235, 230))
    ImageDraw.Draw(img).rectangle([10, 15, 80, 120], fill=rgb)
    img.save(path)
    return path


def radius(frame: np.ndarray) -> float:
    lum = frame.astype(np.float64).mean(axis=2)
    cover = np.clip((lum - 100.0) / 155.0, 0.0, 1.0)
    cover[lum < 125] = 0.0
    return float(np.sqrt(cover.sum() / np.pi))


def dominant(region: np.ndarray) -> str:
    r, _, b = region.reshape(-1, 3).astype(np.float64).mean(axis=0)
    return "red" if r > b + 40 else "blue" if b > r + 40 else "neither"


def test_each_shot_size_shows_the_subject_at_its_scale(tmp_path):
    """The bug as filed: extreme wide and extreme close-up of one keyframe gave identical frames."""
    disc_png(tmp_path / "disc.png")
    shots = [{"prompt": f"The disc, {f}.", "duration": 0.5, "framing": f, "camera": "static", "first_frame": "disc.png"}
             for f in FRAMINGS]  # fmt: skip
    render(load_script(script(tmp_path, {"shots": shots})), AnimaticGenerator(), tmp_path / "f.mp4")
    frames, *_ = decode(tmp_path / "f.mp4")
    per_shot = len(frames) // len(FRAMINGS)
    radii = {f: radius(frames[i * per_shot + per_shot // 2]) for i, f in enumerate(FRAMINGS)}
    for f in FRAMINGS:
        assert radii[f] == pytest.approx(9.0 * FRAMING_SCALE[f], rel=0.06), (f, radii)
    assert [radii[f] for f in FRAMINGS] == sorted(radii.values())
    wide = frames[per_shot // 2].astype(np.float64)  # extreme wide: a fill where the keyframe ends
    assert 40 < wide[:, :20].mean() < 90  # the blurred ground, dimmed: neither black nor the keyframe


def test_a_two_shot_shows_both_characters(tmp_path):
    portrait_png(tmp_path / "red.png", RED), portrait_png(tmp_path / "blue.png", BLUE)
    film = load_script(script(tmp_path, {
        "characters": {"RED": {"image": "red.png"}, "BLUE": {"image": "blue.png"}},
        "shots": [{"prompt": "Two friends.", "duration": 1, "characters": ["RED", "BLUE"]}],
    }))  # fmt: skip
    render(film, AnimaticGenerator(), tmp_path / "two.mp4")
    frames, *_ = decode(tmp_path / "two.mp4")
    for frame in frames[:: len(frames) // 3]:
        assert (dominant(frame[:, : W // 2]), dominant(frame[:, W // 2 :])) == ("red", "blue")


def _srt_times(path: Path) -> list[tuple[float, float]]:
    stamps = re.findall(r"(\d+):(\d+):(\d+),(\d+) --> (\d+):(\d+):(\d+),(\d+)", path.read_text())
    return [tuple(int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000 for h, m, s, ms in (g[:4], g[4:]))
            for g in stamps]  # fmt: skip


def test_speaker_framing_shows_whoever_speaks(tmp_path):
    portrait_png(tmp_path / "red.png", RED), portrait_png(tmp_path / "blue.png", BLUE)
    film = load_script(script(tmp_path, {
        "characters": {"RED": {"image": "red.png"}, "BLUE": {"image": "blue.png"}},
        "shots": [{"prompt": "They talk.", "duration": 2, "compose": "speaker", "dialogue": [
            {"character": "BLUE", "line": "Happy new year."}, {"character": "RED", "line": "And to you."},
            {"character": "BLUE", "line": "Tea?"}]}],
    }))  # fmt: skip
    result = render(film, AnimaticGenerator(), tmp_path / "talk.mp4")
    frames, *_ = decode(tmp_path / "talk.mp4")
    times = _srt_times(result.srt_path)
    assert len(times) == 3
    for (start, end), who in zip(times, ("blue", "red", "blue"), strict=True):
        speaking = [f for i, f in enumerate(frames) if start + 0.1 <= i / FPS <= end - 0.05]
        assert speaking and all(dominant(f[:, W // 4 : 3 * W // 4]) == who for f in speaking), (
            who,
            start,
            end,
        )
    assert result.plans[0].keyframe.words == "speaker: BLUE, RED"


@pytest.mark.parametrize("fit", ["cover", "contain", "blur"])
def test_fit_modes_on_decoded_frames(tmp_path, fit):
    img = np.zeros((108, 108, 3), np.uint8)  # a square first frame into a 16:9 frame: 44% would be cut
    img[:, :54], img[:, 54:] = RED, BLUE
    Image.fromarray(img).save(tmp_path / "sq.png")
    film = load_script(script(tmp_path, {"fit": fit, "shots": [
        {"prompt": "A square.", "duration": 0.5, "camera": "static", "first_frame": "sq.png"}]}))  # fmt: skip
    result = render(film, AnimaticGenerator(), tmp_path / "fit.mp4")
    frame = decode(tmp_path / "fit.mp4")[0][2].astype(np.float64)
    side = frame[:, :35]  # left of where a contained square (x 42..150) begins
    if fit == "cover":
        assert dominant(side) == "red" and side.mean() > 60  # scaled to fill: red reaches the edge
        assert any("sq.png (108x108) loses 44% of its area" in n for n in result.notes)
    elif fit == "contain":
        assert side.max() < 20  # black bars
        assert dominant(frame[:, 50:90]) == "red" and dominant(frame[:, 102:145]) == "blue"  # all of it
    else:
        assert side.mean() > 25 and dominant(side) == "red"  # a blurred copy, not black
        assert np.abs(np.diff(side.mean(axis=2), axis=1)).max() < 25  # soft, not the image itself
    assert all("loses" not in n for n in result.notes) or fit == "cover"


def test_cli_fit_flag_reaches_the_plan(tmp_path):
    Image.new("RGB", (100, 100), RED).save(tmp_path / "sq.png")
    run = [sys.executable, "-m", "yingxi.cli", "plan", "Shot 1 (1s): A square.", "--image", "sq.png", "--json",
           "--size", f"{W}x{H}"]  # fmt: skip
    plain = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    blurred = subprocess.run(
        [*run, "--fit", "blur"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    bad = subprocess.run([*run, "--fit", "strech"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and blurred.returncode == 0, plain.stderr + blurred.stderr
    assert json.loads(plain.stdout)["shots"][0]["keyframe"] == "first_frame (sq.png)"
    assert any("loses 44%" in n for n in json.loads(plain.stdout)["notes"])
    data = json.loads(blurred.stdout)
    assert data["shots"][0]["keyframe"] == "first_frame (sq.png), fit blur" and data["notes"] == []
    assert bad.returncode == 2 and "--fit" in bad.stderr and "Traceback" not in bad.stderr


def test_the_demo_puts_both_characters_on_screen():
    ready = prepare(load_script(REPO / "examples/new-year/film.yaml"), AnimaticGenerator())
    speaking = [(p, {d.character for d in p.shot.dialogue}) for p in ready.plans if p.shot.dialogue]
    assert [sorted(names) for _, names in speaking] == [["OLD JIA"], ["XIAO LI"]]
    for p, names in speaking:
        assert names <= set(p.keyframe.on_screen), p.keyframe
    assert not any("not on screen" in n for n in ready.notes)
    two = next(p for p in ready.plans if p.keyframe.compose == "two-shot")
    frame = ready.request(two.index - 1).first_frame.astype(np.float64)
    half = frame.shape[1] // 2
    jia, li = frame[:, :half].mean(axis=(0, 1)), frame[:, half:].mean(axis=(0, 1))
    assert jia[0] > jia[2] and li[2] > li[0] - 20 and np.abs(jia - li).max() > 5  # two different pictures


@pytest.mark.parametrize("style", ["Ink-wash painting, subdued blue-grey palette.", "水墨画，蓝灰色调"])
def test_title_cards_take_the_styles_colours(tmp_path, style):
    """The bug as filed: "subdued blue-grey palette" gave green and red title cards."""
    import colorsys

    shots = [{"prompt": f"Card {i}.", "duration": 0.5, "camera": "static", "seed": 11 + i} for i in range(3)]
    result = render(load_script(script(tmp_path, {"style": style, "shots": shots})), AnimaticGenerator(),
                    tmp_path / "cards.mp4")  # fmt: skip
    frames, *_ = decode(tmp_path / "cards.mp4")
    for i in range(3):
        r, g, b = frames[i * 6 + 3].reshape(-1, 3).astype(np.float64).mean(axis=0) / 255.0
        hue, sat, _ = colorsys.rgb_to_hsv(r, g, b)
        assert 195 <= hue * 360 <= 235 and 0.06 <= sat <= 0.4, (i, hue * 360, sat)
    assert "palette" in result.plans[0].keyframe_words and "#" in result.plans[0].keyframe_words
