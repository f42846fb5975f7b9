"""A shot's keyframe pixels from its plan: images fitted (cover/contain/blur), several characters composed,
and, for speaker framing, a cut to each line's speaker at the frame that line begins.

It sits beside render() because it needs both the plan (director) and the recorded lines (editor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yingxi.director.plan import Keyframe, ShotPlan
from yingxi.editor.dialogue import DialogueTake, place_lines
from yingxi.errors import InputError
from yingxi.media.image import fit_image, load_image, side_by_side


def image_field(key: Keyframe, character: str | None = None) -> str:
    """The script field that names the image, for errors: the same words the person wrote."""
    if key.source == "character":
        return f"characters.{character or key.character}.image"
    return {"first_frame": "first_frame", "style": "style_image"}.get(key.source, key.source)


def load_fitted(
    path: Path, p: ShotPlan, field: str, fit: str = "cover", width: int | None = None
) -> np.ndarray:
    """uint8 (height, width or p.width, 3) from a file, fitted; InputError names the shot, field and file."""
    try:
        return fit_image(load_image(path), width or p.width, p.height, fit)
    except InputError as e:
        raise InputError(e.message, shot=p.index, field=field, file=e.file or str(path)) from None


def _portrait(p: ShotPlan, name: str) -> np.ndarray:
    key = p.keyframe
    return load_fitted(key.paths[key.on_screen.index(name)], p, image_field(key, name), key.fit)


def speaker_cuts(p: ShotPlan, takes: list[DialogueTake], film_fps: float) -> list[tuple[int, str]]:
    """(first frame, speaker) for each change of speaker, at the frame where that line begins, on the same
    clock the editor places lines on (the shot's length at the film's fps)."""
    key = p.keyframe
    if len(takes) != len(key.speakers):
        return []
    seconds = max(1, round(p.num_frames * film_fps / p.fps)) / film_fps
    try:
        starts = place_lines(takes, seconds)
    except ValueError:  # the editor reports a shot too short for its lines, with its fields
        return []
    cuts, shown = [], key.speakers[0]
    for start, who in zip(starts, key.speakers, strict=True):
        frame = min(p.num_frames - 1, round(start * p.fps))
        if who != shown and frame > (cuts[-1][0] if cuts else 0):
            cuts.append((frame, who))
            shown = who
    return cuts


def keyframe_images(
    p: ShotPlan, takes: list[DialogueTake], film_fps: float
) -> tuple[np.ndarray | None, tuple[tuple[int, np.ndarray], ...]]:
    """(first frame uint8 (H, W, 3) or None, cuts): None for a title card or a shot that continues the last."""
    key = p.keyframe
    if key.source in ("first_frame", "style") and key.path is not None:
        return load_fitted(key.path, p, image_field(key), key.fit), ()
    if key.source != "character":
        return None, ()
    if key.compose == "two-shot":
        panels = []
        edges = [round(i * p.width / len(key.paths)) for i in range(len(key.paths) + 1)]
        for name, path, x0, x1 in zip(key.on_screen, key.paths, edges, edges[1:], strict=False):
            panels.append(load_fitted(path, p, image_field(key, name), key.fit, width=x1 - x0))
        return side_by_side(panels, p.width, p.height), ()
    if key.compose == "speaker":
        cache = {name: _portrait(p, name) for name in key.on_screen}
        return cache[key.speakers[0]], tuple((f, cache[who]) for f, who in speaker_cuts(p, takes, film_fps))
    return load_fitted(key.paths[0] if key.paths else key.path, p, image_field(key), key.fit), ()
