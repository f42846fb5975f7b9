"""render(): the one function every entry point calls to turn a Film into an MP4."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from yingxi.backends.base import Generator
from yingxi.director.plan import ShotPlan
from yingxi.film.model import Film


@dataclass(frozen=True)
class ProgressEvent:
    shot: int  # 1-based shot being shot, 0 while preparing, len(plans)+1 while editing
    total_shots: int
    fraction: float  # of the whole film, in [0, 1]
    message: str


Progress = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class RenderResult:
    path: Path  # the MP4, complete
    srt_path: Path | None  # subtitles beside it, when there is dialogue
    plans: tuple[ShotPlan, ...]
    num_frames: int
    fps: float
    duration: float  # seconds
    notes: tuple[str, ...]  # what changed from the request (grown shots, snapped durations)
    seconds: float  # wall time taken
    last_frame_path: Path | None = None  # PNG of the film's last frame, when asked for


def render(
    film: Film,
    backend: Generator,
    out: Path,
    progress: Progress | None = None,
    *,
    burn_subtitles: bool = False,
    last_frame_png: Path | None = None,
) -> RenderResult:
    """Plan, shoot each shot, edit, and write `out` atomically. Raises InputError/RenderError."""
    raise NotImplementedError  # filled in by the film pipeline work (issue 2)
