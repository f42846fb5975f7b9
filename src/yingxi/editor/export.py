"""The cut as an editor's timeline (OpenTimelineIO): one clip file per shot, each transition as one OTIO
Transition between its two clips, dialogue lines and music on audio tracks, subtitles as markers. Written
beside the film (`film.otio` and `film.shots/` for `film.mp4`), so the edit can be finished in an editor.
OpenTimelineIO is optional (`pip install 'yingxi[otio]'`); EDL and FCPXML go through its adapter plug-ins."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from yingxi.backends.base import Clip
from yingxi.editor.cut import Cut
from yingxi.editor.mix import MUSIC_SEAM, MUSIC_UNDER_DB, loop_to
from yingxi.editor.sound import as_film_sound
from yingxi.errors import InputError, unknown_word
from yingxi.film.model import Film
from yingxi.media.files import replaced_when_done
from yingxi.media.video import write_mp4
from yingxi.media.wav import write_wav

# format -> (OpenTimelineIO adapter, file suffix, the PyPI package that brings the adapter)
EXPORT_FORMATS = {
    "otio": ("otio_json", ".otio", "opentimelineio"),
    "edl": ("cmx_3600", ".edl", "otio-cmx3600-adapter"),
    "fcpxml": ("fcpx_xml", ".fcpxml", "otio-fcpx-xml-adapter"),
}
# Our transition kinds as OTIO transition types: a crossfade is SMPTE's dissolve; OTIO names no fade through
# black or wipe, so they get their own types (editors read unknown types as a dissolve) and the kind in metadata.
TRANSITION_TYPES = {"crossfade": "SMPTE_Dissolve", "fade": "Fade_Through_Black", "wipe": "SMPTE_Wipe"}
METADATA_KEY = "yingxi"


@dataclass(frozen=True)
class Exported:
    path: Path  # the .otio / .edl / .fcpxml
    files: tuple[Path, ...]  # the media it points at: shot clips, dialogue lines, music


def _otio():
    try:
        import opentimelineio
    except ImportError:
        raise InputError(
            "--export needs OpenTimelineIO: pip install 'yingxi[otio]'", field="export"
        ) from None
    return opentimelineio


def check_export(fmt: str, fps: float | Fraction | None = None) -> str:
    """The format, checked before any work: known, its OpenTimelineIO adapter installed, and (EDL, FCPXML
    count in SMPTE timecode) the film's fps a timecode rate."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(unknown_word("export format", fmt, EXPORT_FORMATS), field="export")
    adapter, _, package = EXPORT_FORMATS[fmt]
    otio = _otio()
    if adapter not in otio.adapters.available_adapter_names():
        raise InputError(f"--export {fmt} needs OpenTimelineIO's {adapter} adapter: pip install {package}",
                         field="export")  # fmt: skip
    if (
        fmt != "otio"
        and fps is not None
        and not otio.opentime.RationalTime.is_valid_timecode_rate(float(fps))
    ):
        near = otio.opentime.RationalTime.nearest_valid_timecode_rate(float(fps))
        raise InputError(f"--export {fmt} counts in SMPTE timecode, which has no {float(fps):g} fps; render at a "
                         f"timecode rate (e.g. {near:g} fps) or export otio", field="export")  # fmt: skip
    return fmt


def export_path(out: Path, fmt: str) -> Path:
    return Path(out).with_suffix(EXPORT_FORMATS[fmt][1])


def shots_dir(out: Path) -> Path:
    """The folder of clip files kept beside the film: film.shots/ for film.mp4."""
    return Path(out).with_suffix(".shots")


def shot_path(out: Path, index: int) -> Path:
    return shots_dir(out) / f"shot-{index + 1:02d}.mp4"


def write_shot(
    cut: Cut, index: int, clip: Clip, out: Path, fps: float | Fraction, preset: str = "medium"
) -> Path:
    """Shot `index`'s own frames (no transition, no subtitles) as its clip file, as soon as it is shot, with
    its own generated sound when it asked for some (as the film has it before the mix)."""
    path = shot_path(out, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    span = cut.sounds.spans[index] if cut.sounds is not None else None
    sound = None
    if span is not None and clip.audio is not None:
        sound = as_film_sound(clip.audio, int(clip.sample_rate), span[1] - span[0], cut.sample_rate)
    return write_mp4(path, cut.shot_frames_of(index, clip), fps=fps, width=cut.width, height=cut.height,
                     audio=sound, sample_rate=cut.sample_rate, preset=preset)  # fmt: skip


def build_timeline(film: Film, cut: Cut, out: Path, name: str | None = None, *, timecode: bool = False):
    """The cut as an otio.schema.Timeline at the film's fps; media paths are relative to the film's folder.
    Writes the dialogue lines and the music bed as WAV files into the shots folder (the shot clips are
    written as they are shot: write_shot). `timecode`: the shot files' frames counted from 01:00:00:00, as
    tape-era formats (EDL) need: a dissolve's source in, before the incoming clip's first frame, is never
    negative there."""
    otio = _otio()
    out = Path(out)
    rate = float(film.fps)
    start = (
        otio.opentime.from_timecode("01:00:00:00", rate) if timecode else otio.opentime.RationalTime(0, rate)
    )
    folder = shots_dir(out)
    folder.mkdir(parents=True, exist_ok=True)

    def frames(n: float):
        return otio.opentime.RationalTime(n, rate)

    def samples(n: int):
        return otio.opentime.RationalTime(n, cut.sample_rate)

    def media(path: Path, duration, begin=None):
        available = otio.opentime.TimeRange(begin if begin is not None else duration - duration, duration)
        return otio.schema.ExternalReference(target_url=path.relative_to(out.parent).as_posix(),
                                             available_range=available)  # fmt: skip

    timeline = otio.schema.Timeline(name=name or out.stem, global_start_time=frames(0))
    timeline.metadata[METADATA_KEY] = {"fps": str(film.fps), "width": cut.width, "height": cut.height,
                                       "fade_out_frames": cut.fade_out_frames}  # fmt: skip
    video = otio.schema.Track(name="Video", kind=otio.schema.TrackKind.Video)
    for i, n in enumerate(cut.shot_frames):
        window = cut.windows[i]
        if window is not None and window.kind in TRANSITION_TYPES:
            video.append(otio.schema.Transition(
                name=window.kind,
                transition_type=TRANSITION_TYPES[window.kind],
                in_offset=frames(window.length // 2),  # the window's frames before the cut...
                out_offset=frames(window.length - window.length // 2),  # ...and from the cut on
                metadata={METADATA_KEY: {"kind": window.kind, "direction": window.direction,
                                         "frames": window.length}},
            ))  # fmt: skip
        duration = frames(n)
        clip = otio.schema.Clip(name=f"shot {i + 1}", media_reference=media(shot_path(out, i), duration, start),
                                source_range=otio.opentime.TimeRange(start, duration))  # fmt: skip
        meta = {"shot": i + 1, "prompt": film.shots[i].prompt}
        if window is not None and window.kind == "fade-in":
            meta["fade_in_frames"] = window.length
        clip.metadata[METADATA_KEY] = meta
        video.append(clip)
    timeline.tracks.append(video)

    # Dialogue: one clip per line at its start sample; a line that overlaps the one before goes a track down.
    dialogue: list = []  # [(track, end sample)]
    for k, (start, take) in enumerate(sorted(cut.lines, key=lambda line: line[0])):
        path = write_wav(folder / f"line-{k + 1:02d}.wav", take.audio, cut.sample_rate)
        slot = next((j for j, (_, end) in enumerate(dialogue) if end <= start), None)
        if slot is None:
            track = otio.schema.Track(name=f"Dialogue {len(dialogue) + 1}", kind=otio.schema.TrackKind.Audio)
            dialogue.append((track, 0))
            slot = len(dialogue) - 1
        track, end = dialogue[slot]
        if start > end:
            track.append(
                otio.schema.Gap(source_range=otio.opentime.TimeRange(samples(0), samples(start - end)))
            )
        length = samples(len(take.audio))
        line = otio.schema.Clip(name=f"{take.character}: {take.text}", media_reference=media(path, length),
                                source_range=otio.opentime.TimeRange(samples(0), length))  # fmt: skip
        line.metadata[METADATA_KEY] = {"character": take.character, "text": take.text, "voice": take.voice}
        track.append(line)
        dialogue[slot] = (track, start + len(take.audio))
    for track, _ in dialogue:
        timeline.tracks.append(track)

    if cut.music is not None:  # the bed as the mix lays it (looped or trimmed to the film), before ducking
        n = round(cut.num_frames / cut.fps * cut.sample_rate)
        bed = loop_to(cut.music, n, int(MUSIC_SEAM * cut.sample_rate))
        path = write_wav(folder / "music.wav", bed, cut.sample_rate)
        music = otio.schema.Track(name="Music", kind=otio.schema.TrackKind.Audio)
        bed_clip = otio.schema.Clip(name="music", media_reference=media(path, samples(n)),
                                    source_range=otio.opentime.TimeRange(samples(0), samples(n)))  # fmt: skip
        bed_clip.metadata[METADATA_KEY] = {"gain_db": MUSIC_UNDER_DB, "source": str(film.music)}
        music.append(bed_clip)
        timeline.tracks.append(music)

    for sub in cut.subtitles:  # markers on the whole stack, in seconds at the film's rate
        span = otio.opentime.TimeRange(frames(sub.start * rate), frames((sub.end - sub.start) * rate))
        marker = otio.schema.Marker(
            name=sub.text, marked_range=span, metadata={METADATA_KEY: {"text": sub.text}}
        )
        timeline.tracks.markers.append(marker)
    return timeline


def write_export(film: Film, cut: Cut, out: Path, fmt: str) -> Exported:
    """Write the timeline beside `out` in `fmt` (after the shot clips were written), atomically."""
    otio = _otio()
    adapter, _, _ = EXPORT_FORMATS[fmt]
    full = build_timeline(film, cut, out, timecode=fmt != "otio")
    timeline = _video_only(otio, full) if fmt == "edl" else full  # CMX 3600 holds one picture track
    path = export_path(out, fmt)
    with replaced_when_done(path) as tmp:
        otio.adapters.write_to_file(timeline, str(tmp), adapter_name=adapter)
    base = Path(out).parent
    written = {base / c.media_reference.target_url for c in full.find_clips()}
    for stale in (*shots_dir(out).glob("shot-*.mp4"), *shots_dir(out).glob("line-*.wav")):
        if stale not in written:  # an earlier, longer render of this film's: not part of this edit
            stale.unlink(missing_ok=True)
    if cut.music is None:
        (shots_dir(out) / "music.wav").unlink(missing_ok=True)
    # The files the timeline points at, in timeline order.
    files = dict.fromkeys(base / c.media_reference.target_url for c in timeline.find_clips())
    return Exported(path, tuple(files))


def _video_only(otio, timeline):
    copy = timeline.deepcopy()
    for track in [t for t in copy.tracks if t.kind != otio.schema.TrackKind.Video]:
        copy.tracks.remove(track)
    return copy


def write_package(exported: Exported, zip_path: Path) -> Path:
    """A zip of the timeline file and the media it points at, under the same relative paths."""
    base = exported.path.parent
    with replaced_when_done(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # MP4/WAV: compression gains nothing
            for path in (exported.path, *exported.files):
                z.write(path, Path(path).relative_to(base).as_posix())
    return Path(zip_path)
