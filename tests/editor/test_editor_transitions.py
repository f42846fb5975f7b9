"""Frame timeline and transitions, checked on the frames the cut produces from flat-colour clips."""

from __future__ import annotations

import types

import numpy as np
import pytest

from yingxi.backends.base import Clip
from yingxi.director.capabilities import Capabilities
from yingxi.director.plan import plan
from yingxi.editor import assemble
from yingxi.editor.transitions import Window, clamp_length, mix
from yingxi.film.model import Film, Shot, Transition

FPS = 12  # 480p 16:9 is the smallest size a Film has: 864x480
A, B, C = (200, 40, 40), (40, 40, 200), (40, 180, 40)


def flat_clip(colour, frames: int, width: int = 864, height: int = 480, fps: float = FPS) -> Clip:
    # A broadcast view: no memory per frame, like a real clip's frames would not be copied either.
    return Clip(np.broadcast_to(np.array(colour, np.uint8), (frames, height, width, 3)), fps)


def cut_of(*shots: Shot, colours=(A, B, C), caps: Capabilities | None = None, clips=None):
    film = Film(shots=tuple(shots), fps=FPS, resolution="480p")
    plans = plan(film, caps)
    clips = clips or [flat_clip(c, p.num_frames, fps=p.fps) for p, c in zip(plans, colours, strict=False)]
    return assemble(film, plans, clips, [[] for _ in shots])


def mean_colour(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).mean(axis=0)


def test_total_frames_is_the_sum_of_shot_frames_and_transitions_add_none():
    cut = cut_of(
        Shot("a", duration=2.0),
        Shot("b", duration=1.5, transition=Transition("crossfade")),
        Shot("c", duration=2.25, transition=Transition("wipe", "left")),
    )
    assert cut.shot_frames == [24, 18, 27] and cut.num_frames == 69
    assert cut.shot_starts == [0.0, 2.0, 3.5] and cut.first_frames == [0, 24, 42]
    assert (cut.width, cut.height, cut.fps) == (864, 480, 12.0)
    frames = cut.iter_frames()
    assert isinstance(frames, types.GeneratorType)  # streamed, composed as asked for
    assert sum(1 for _ in frames) == 69


def test_cut_is_a_hard_switch_at_the_exact_frame():
    cut = cut_of(Shot("a", duration=2.0), Shot("b", duration=2.0))
    assert np.all(cut.frame(23) == A) and np.all(cut.frame(24) == B)


def test_crossfade_middle_frame_is_the_mean():
    # 0.75 s at 12 fps = 9 frames, centred on the cut: frames 20..28; frame 24 (B's first) is the 50/50 mix.
    cut = cut_of(
        Shot("a", duration=2.0), Shot("b", duration=2.0, transition=Transition("crossfade", seconds=0.75))
    )
    assert np.all(cut.frame(19) == A) and np.all(cut.frame(29) == B)
    # Every window frame is a mix: alpha 0.1 and 0.9 at its ends. Tolerance: 1 level (rounding of the mix).
    assert np.abs(cut.frame(20).astype(int) - (np.multiply(A, 0.9) + np.multiply(B, 0.1))).max() <= 1
    assert np.abs(cut.frame(28).astype(int) - (np.multiply(A, 0.1) + np.multiply(B, 0.9))).max() <= 1
    assert np.abs(cut.frame(24).astype(int) - (np.add(A, B) / 2)).max() <= 1
    reds = [mean_colour(cut.frame(k))[0] for k in range(20, 29)]
    assert all(x > y for x, y in zip(reds, reds[1:], strict=False))  # ramps monotonically A -> B


def test_fade_goes_through_black():
    cut = cut_of(
        Shot("a", duration=2.0), Shot("b", duration=2.0, transition=Transition("fade", seconds=0.75))
    )
    assert np.all(cut.frame(24) == 0)  # the middle frame is black
    # Frame 22 has alpha 0.3: A at 40% brightness; frame 26 (alpha 0.7): B at 40%. Tolerance 1 level.
    assert np.abs(mean_colour(cut.frame(22)) - np.multiply(A, 0.4)).max() <= 1
    assert np.abs(mean_colour(cut.frame(26)) - np.multiply(B, 0.4)).max() <= 1
    assert np.all(cut.frame(19) == A) and np.all(cut.frame(29) == B)


@pytest.mark.parametrize("direction", ["left", "right"])
def test_wipe_half_way_splits_the_frame(direction: str):
    cut = cut_of(
        Shot("a", duration=2.0),
        Shot("b", duration=2.0, transition=Transition("wipe", direction, seconds=0.75)),
    )
    mid = cut.frame(24)
    left, right = mid[:, :432], mid[:, 432:]
    # "wipe left": B comes in from the right edge moving left, so at half-way the right half is B.
    shown_left, shown_right = (A, B) if direction == "left" else (B, A)
    assert np.all(left == shown_left) and np.all(right == shown_right)
    early = cut.frame(22)  # alpha 0.3: B covers 259 of 864 columns on its side
    b_cols = np.all(early == B, axis=(0, 2)).sum()
    assert b_cols == 259
    assert np.all(early[:, -259:] == B) if direction == "left" else np.all(early[:, :259] == B)


def test_transition_is_clamped_to_half_of_each_neighbour():
    cut = cut_of(
        Shot("a", duration=1.0), Shot("b", duration=1.0, transition=Transition("crossfade", seconds=5.0))
    )
    window = cut.windows[1]
    assert (window.start, window.length) == (6, 12)  # 6 frames from each 12-frame shot, not 60
    assert np.all(cut.frame(5) == A) and np.all(cut.frame(18) == B)
    assert not np.all(cut.frame(6) == A) and not np.all(cut.frame(17) == B)  # the window's ends are mixes
    # Before the cut n // 2 frames, after it n - n // 2: each at most half its shot (none if no room).
    assert clamp_length(9, 4, 100) == 5 and clamp_length(9, 100, 4) == 4 and clamp_length(3, 1, 1) == 0
    assert clamp_length(3, 1, 2) == 1  # one 50/50 frame after the cut


@pytest.mark.parametrize("kind", ["crossfade", "fade", "wipe"])
def test_a_two_frame_transition_is_not_a_hard_cut(kind: str):
    # 1/6 s at 12 fps: two frames, 23 (A's last) and 24 (B's first). Each must be a mix, at alpha 1/3 and 2/3.
    cut = cut_of(
        Shot("a", duration=2.0), Shot("b", duration=2.0, transition=Transition(kind, "left", seconds=1 / 6))
    )
    assert (cut.windows[1].start, cut.windows[1].length) == (23, 2)
    assert np.all(cut.frame(22) == A) and np.all(cut.frame(25) == B)
    first, second = cut.frame(23).astype(float), cut.frame(24).astype(float)
    if kind == "crossfade":  # tolerance: 1 level of rounding
        assert np.abs(first - (np.multiply(A, 2 / 3) + np.multiply(B, 1 / 3))).max() <= 1
        assert np.abs(second - (np.multiply(A, 1 / 3) + np.multiply(B, 2 / 3))).max() <= 1
    elif kind == "fade":  # through black: A at a third of its brightness, then B at a third
        assert np.abs(first - np.multiply(A, 1 / 3)).max() <= 1
        assert np.abs(second - np.multiply(B, 1 / 3)).max() <= 1
    else:  # 288 and 576 of 864 columns show B, coming in from the right
        assert np.all(first[:, -288:] == B) and np.all(first[:, :-288] == A)
        assert np.all(second[:, -576:] == B) and np.all(second[:, :-576] == A)


def test_first_shot_fade_is_a_fade_in_and_other_first_transitions_are_ignored():
    faded = cut_of(
        Shot("a", duration=2.0, transition=Transition("fade", seconds=0.75)), Shot("b", duration=1.0)
    )
    assert np.all(faded.frame(0) == 0)
    assert np.all(faded.frame(5) == A)  # 5 frames (the fade's second half) to full brightness
    assert mean_colour(faded.frame(2))[0] == pytest.approx(200 * 2 / 5, abs=1)
    wiped = cut_of(Shot("a", duration=2.0, transition=Transition("wipe")), Shot("b", duration=1.0))
    assert wiped.windows[0] is None and np.all(wiped.frame(0) == A)


def test_clip_at_another_fps_is_resampled_by_nearest_frame_in_time():
    # A backend shooting at 24 fps: the director plans 48 frames for 2 s; the 12 fps film takes every other one.
    film = Film(shots=(Shot("a", duration=2.0),), fps=FPS, resolution="480p")
    plans = plan(film, Capabilities(native_fps=24))
    assert (plans[0].fps, plans[0].num_frames) == (24.0, 48)
    ramp = np.repeat(np.arange(48, dtype=np.uint8)[:, None, None, None] * 5, 3, axis=3)
    clip = Clip(np.broadcast_to(ramp, (48, 480, 864, 3)), 24.0)
    cut = assemble(film, plans, [clip], [[]])
    assert cut.num_frames == 24
    assert [int(f[0, 0, 0]) for f in cut.iter_frames()] == [10 * k for k in range(24)]


def test_clips_of_another_size_are_fitted_to_the_cut():
    film = Film(shots=(Shot("a", duration=1.0), Shot("b", duration=1.0)), fps=FPS, resolution="480p")
    plans = plan(film)
    small = flat_clip(C, 12, width=64, height=36)
    cut = assemble(film, plans, [flat_clip(A, 12), small], [[], []])
    frame = cut.frame(15)
    assert frame.shape == (480, 864, 3)
    assert np.abs(frame.astype(int) - C).max() <= 1  # flat colour survives Lanczos within 1 level


def test_mismatched_inputs_are_refused():
    film = Film(shots=(Shot("a", duration=1.0),), fps=FPS, resolution="480p")
    with pytest.raises(ValueError, match="one plan, clip and take list per shot"):
        assemble(film, plan(film), [], [[]])


def test_fixed_point_mixes_are_within_one_level_of_the_exact_mix():
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 256, (2, 6, 10, 3), dtype=np.uint8)
    window = Window(into=1, kind="crossfade", start=0, length=9)
    for j in range(9):
        alpha = (j + 1) / 10
        exact = (1 - alpha) * a.astype(float) + alpha * b.astype(float)
        assert np.abs(mix(window, j, a, b) - exact).max() <= 1
    fade_in = Window(into=0, kind="fade-in", start=0, length=4)
    assert np.abs(mix(fade_in, 1, None, b) - 0.25 * b.astype(float)).max() <= 1
    assert np.all(mix(fade_in, 0, None, b) == 0)
    wipe = Window(into=1, kind="wipe", start=0, length=3, direction="right")
    out = mix(wipe, 0, a, b)  # alpha 0.25 of 10 columns: B shows in the 2 or 3 on the left
    assert np.array_equal(out[:, :2], b[:, :2]) and np.array_equal(out[:, 3:], a[:, 3:])
