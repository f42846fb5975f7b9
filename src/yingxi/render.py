"""render(): the one function every entry point calls to turn a Film into an MP4."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from yingxi.backends.base import Clip, ClipRequest, Generator
from yingxi.conditioning_items import conditioning_items, with_previous_frames
from yingxi.director.plan import ShotPlan, plan
from yingxi.editor import fit_dialogue, load_music, record_dialogue, stream_frames, timeline, write_srt
from yingxi.editor.export import check_export, shot_path, write_export, write_shot
from yingxi.errors import InputError, RenderError
from yingxi.film.model import Film
from yingxi.keyframes import keyframe_images, load_fitted
from yingxi.media.files import check_writable
from yingxi.media.image import fit_image, load_image, save_png
from yingxi.media.video import write_mp4
from yingxi.media.watermark import add_watermark


@dataclass(frozen=True)
class ProgressEvent:
    shot: int  # 1-based shot being shot; 0 while preparing; total_shots + 1 while editing
    total_shots: int
    fraction: float  # of the whole film, in [0, 1]
    message: str


Progress = Callable[[ProgressEvent], None]

# Share of the progress bar for each phase: shooting dominates; editing and encoding take the rest.
PREPARE_SHARE, SHOOT_SHARE = 0.03, 0.82


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
    evaluations: tuple[
        int | None, ...
    ] = ()  # per shot: transformer forward passes (None: not a neural backend)
    export_path: Path | None = None  # the edit as a timeline (film.otio), when asked for
    export_files: tuple[Path, ...] = ()  # the media that timeline points at (film.shots/...)
    skipped: tuple[int | None, ...] = ()  # per shot: passes a step cache skipped (None: no cache)

    @property
    def total_evaluations(self) -> int | None:
        known = [n for n in self.evaluations if n is not None]
        return sum(known) if known else None


@dataclass(frozen=True)
class Prepared:
    """A film checked and planned, nothing shot yet."""

    film: Film  # with shots grown to fit their dialogue
    takes: list  # per shot: the recorded DialogueTakes
    plans: list[ShotPlan]
    notes: list[str]
    music: np.ndarray | None  # float32 (N, 2), decoded
    references_ok: bool = True  # the backend takes reference images
    options: dict = field(default_factory=dict)  # backend options of every shot (a request's "cache")

    def request(self, i: int) -> ClipRequest:
        """Shot i's request, its images decoded now (a "continue" shot's first frame is a placeholder until
        shooting). Not kept for every shot: a 10-minute film's keyframes at 1080p would be 0.7 GB."""
        p = self.plans[i]
        r = _request(self.film, p, self.references_ok, self.takes[p.index - 1])
        return replace(r, options={**r.options, **self.options}) if self.options else r


def prepare(
    film: Film, backend: Generator, *, grow_for_dialogue: bool = True, options: dict | None = None
) -> Prepared:
    """Everything that can fail on bad input, done before any frame is shot:
    dialogue recorded and fitted, music decoded, the plan made, every image decoded, the backend's checks run.
    `options`: backend options every shot's request carries (an API request's own step cache)."""
    if not film.shots:  # the parsers never make one; a Film built in Python can
        raise InputError("the film has no shots; give it at least one", field="shots")
    takes = record_dialogue(film)
    film, notes = fit_dialogue(film, takes, grow=grow_for_dialogue)
    music = load_music(film)
    plans = plan(film, backend.capabilities)
    notes = list(notes) + [f"shot {p.index}: {n}" for p in plans for n in p.notes]
    ready = Prepared(film, takes, plans, notes, music, "references" in backend.capabilities.conditionings,
                     dict(options or {}))  # fmt: skip
    for i, p in enumerate(plans):  # every image decoded and every request checked, one shot at a time
        r = ready.request(i)
        try:
            backend.check(r)
        except InputError as e:  # the backend knows the field; the person needs the shot too
            raise type(e)(e.message, shot=p.index, field=e.field, file=e.file) from None
    return ready


def render(
    film: Film,
    backend: Generator,
    out: Path,
    progress: Progress | None = None,
    *,
    burn_subtitles: bool = False,
    last_frame_png: Path | None = None,
    grow_for_dialogue: bool = True,
    encoder_preset: str = "medium",
    export: str | None = None,
    watermark: bool = False,
    options: dict | None = None,
) -> RenderResult:
    """Plan, shoot each shot, edit, and write `out` atomically. Raises InputError / RenderError.
    `encoder_preset` is x264's speed/size trade-off: "veryfast" suits animatic previews.
    `export`: also write the edit for an editor ("otio", "edl", "fcpxml": editor.export), with each shot's
    clip file written as it is shot. `watermark`: Ark's "AI生成" mark in the corner of every frame.
    `options`: backend options of every shot (as `prepare`)."""
    started = time.perf_counter()
    out = Path(out)
    check_writable(out, field="output")  # before any work: with wan a render takes hours
    if export is not None:
        check_export(export, film.fps)
    report = progress or (lambda event: None)
    total = len(film.shots)
    report(ProgressEvent(0, total, 0.0, "recording dialogue and planning shots"))
    ready = prepare(film, backend, grow_for_dialogue=grow_for_dialogue, options=options)
    film, plans = ready.film, ready.plans
    cut = timeline(film, plans, ready.takes, burn_subtitles=burn_subtitles, music=ready.music)
    previous_last: list[np.ndarray] = []  # copies of the last shot's last frames, for a "continue"
    all_shot: list[bool] = []  # [True] once the last shot is shot: the rest is editing and encoding
    evaluations: list[int | None] = []  # per shot: transformer forward passes (None: not a neural backend)
    skipped: list[int | None] = []  # per shot: passes a step cache skipped (None: no cache)

    def shoot(i: int) -> Clip:
        p, request = plans[i], ready.request(i)
        if p.conditioning.extend_frames:  # video extension: its last frames, not a first frame
            request = with_previous_frames(request, previous_last[0][-p.conditioning.extend_frames :])
        elif p.keyframe.source == "continue":
            request = _replace_first_frame(request, previous_last[0][-1])

        def shot_progress(fraction: float) -> None:
            done = (p.index - 1 + min(max(fraction, 0.0), 1.0)) / total
            report(
                ProgressEvent(p.index, total, PREPARE_SHARE + SHOOT_SHARE * done, f"shooting shot {p.index}")
            )

        shot_progress(0.0)
        try:
            clip = backend.generate(request, shot_progress)
        except Exception as e:  # carried past the encoder, which would read an OSError as its own
            raise _ShotFailed(e) from e
        if clip.frames.shape[1:3] != (p.height, p.width) or clip.num_frames != p.num_frames:
            raise RenderError(
                f"shot {p.index}: backend {backend.name} returned {clip.num_frames} frames of "
                f"{clip.frames.shape[2]}x{clip.frames.shape[1]}, planned {p.num_frames} of {p.width}x{p.height}"
            )
        keep = max([1] + [q.conditioning.extend_frames for q in plans[i + 1 : i + 2]])  # what the next needs
        previous_last[:] = [np.array(clip.frames[-keep:])]  # a copy: the clip itself is freed
        if export is not None:
            try:
                write_shot(cut, i, clip, out, film.fps, encoder_preset)
            except OSError as e:
                raise _ShotFailed(RenderError(f"cannot write {shot_path(out, i)}: {e.strerror or e}")) from e
        evaluations.append(clip.evaluations)
        skipped.append(clip.skipped)
        shot_progress(1.0)
        if i == total - 1:
            report(ProgressEvent(total + 1, total, PREPARE_SHARE + SHOOT_SHARE, "editing and encoding"))
            all_shot.append(True)
        return clip

    out.parent.mkdir(parents=True, exist_ok=True)
    last_shot_starts = cut.first_frames[-1]

    def frames_with_progress():
        # Shots are shot as the encoder reaches them (stream_frames), so only one clip is held at a time.
        for i, frame in enumerate(stream_frames(cut, shoot)):
            if i % 24 == 0 and all_shot:
                done = max(0, i - last_shot_starts) / max(1, cut.num_frames - last_shot_starts)
                fraction = PREPARE_SHARE + SHOOT_SHARE + (1 - PREPARE_SHARE - SHOOT_SHARE) * done
                report(ProgressEvent(total + 1, total, fraction, "editing and encoding"))
            yield add_watermark(frame) if watermark else frame

    srt_path = out.with_suffix(".srt") if cut.subtitles else None
    try:
        write_mp4(out, frames_with_progress(), fps=cut.fps, width=cut.width, height=cut.height,
                  audio=cut.audio, sample_rate=cut.sample_rate, preset=encoder_preset)  # fmt: skip
        if srt_path is not None:
            write_srt(cut.subtitles, srt_path)
    except _ShotFailed as e:
        raise e.error from None
    except OSError as e:  # a full disk, a folder made read-only meanwhile: say where, not a traceback
        raise RenderError(f"cannot write {out}: {e.strerror or e}") from None
    exported = None
    if export is not None:  # after the film: the timeline points at files that all exist
        try:
            exported = write_export(film, cut, out, export)
        except OSError as e:
            raise RenderError(f"cannot write the {export} export beside {out}: {e.strerror or e}") from None
    if last_frame_png is not None:  # the last shot is still held whole: its last output frame, made again
        save_png(cut.frame(cut.num_frames - 1), last_frame_png)
    report(ProgressEvent(total + 1, total, 1.0, "done"))
    return RenderResult(
        path=out,
        srt_path=srt_path,
        plans=tuple(plans),
        num_frames=cut.num_frames,
        fps=cut.fps,
        duration=cut.num_frames / cut.fps,
        notes=tuple(ready.notes),
        seconds=time.perf_counter() - started,
        last_frame_path=last_frame_png,
        evaluations=tuple(evaluations),
        export_path=exported.path if exported else None,
        export_files=exported.files if exported else (),
        skipped=tuple(skipped),
    )


class _ShotFailed(Exception):
    """A backend's error on its way out through the encoder, told apart from the encoder's own."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _image(path: Path, p: ShotPlan, field: str) -> np.ndarray:
    try:
        return fit_image(load_image(path), p.width, p.height)
    except InputError as e:
        raise InputError(e.message, shot=p.index, field=field, file=e.file or str(path)) from None


def _request(film: Film, p: ShotPlan, references_ok: bool = True, takes: list | None = None) -> ClipRequest:
    """The backend's view of a shot: pixels, not paths; no film, no transitions."""
    key = p.keyframe
    first, cuts = keyframe_images(p, takes or [], film.fps)  # fitted, composed, cut to each speaker
    if key.source == "continue" and not p.conditioning.extend_frames:
        first = np.zeros((p.height, p.width, 3), np.uint8)  # placeholder until the previous shot exists
    last = load_fitted(p.last_frame, p, "last_frame", key.fit) if p.last_frame is not None else None
    refs = []  # the older reference_images, for backends that take them but not "reference" items
    for name in p.shot.featured if references_ok and not p.conditioning.references else ():
        character = film.character(name)
        if character is not None and character.image is not None:
            refs.append(_image(character.image, p, f"characters.{character.name}.image"))
    return ClipRequest(
        prompt=p.prompt,
        negative_prompt=p.negative_prompt,
        width=p.width,
        height=p.height,
        num_frames=p.num_frames,
        fps=p.fps,
        seed=p.seed,
        first_frame=first,
        last_frame=last,
        reference_images=tuple(refs),
        camera=p.camera,
        title=p.shot.prompt,
        cuts=cuts,
        palette=tuple(rgb for _, rgb in p.palette),
        preset=film.preset,
        conditioning=conditioning_items(p),
        generate_audio=p.conditioning.generate_audio,
    )


def _replace_first_frame(request: ClipRequest, frame: np.ndarray) -> ClipRequest:
    if frame.shape[:2] != (request.height, request.width):
        frame = fit_image(frame, request.width, request.height)
    return replace(request, first_frame=np.ascontiguousarray(frame))
