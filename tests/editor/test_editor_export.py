"""--export: the cut as an OpenTimelineIO timeline, re-read with opentimelineio and checked against the cut,
the SRT and the decoded shot files."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.e2e.helpers import decode, flat_png, texture_png
from yingxi.backends.animatic import AnimaticGenerator
from yingxi.editor.export import EXPORT_FORMATS, check_export, write_package
from yingxi.errors import InputError
from yingxi.film import parse_prompt
from yingxi.media.wav import read_wav, write_wav
from yingxi.render import render

otio = pytest.importorskip("opentimelineio")

FPS = 12
PROMPT = (
    "Shot 1 (2s, pan left): Texture.\n"
    'MEI: "Hello there."\n'
    "Shot 2 (2s, static, crossfade): Blue.\n"
    "Shot 3 (2s, static, fade): Green.\n"
    'LI: "Good night."\n'
    "Shot 4 (2s, static, wipe right): Grey."
)
COLOURS = [(220, 30, 30), (20, 40, 230), (30, 200, 40), (128, 128, 128)]


def read_shot(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def srt_starts(text: str) -> list[float]:
    """Each cue's start in seconds, from an SRT file."""
    starts = []
    for line in text.splitlines():
        if "-->" in line:
            h, m, s = line.split("-->")[0].strip().replace(",", ".").split(":")
            starts.append(int(h) * 3600 + int(m) * 60 + float(s))
    return starts


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    film = replace(parse_prompt(PROMPT), fps=FPS, resolution="480p")
    for i, rgb in enumerate(COLOURS):
        image = texture_png(tmp / "tex.png") if i == 0 else flat_png(tmp / f"s{i}.png", rgb)
        film = film.with_shot(i, replace(film.shots[i], first_frame=image))
    t = np.arange(48000 * 3) / 48000
    music = write_wav(tmp / "music.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 48000)  # 3 s: loops in the film
    film = replace(film, music=music)
    out = tmp / "film.mp4"
    result = render(film, AnimaticGenerator(), out, encoder_preset="ultrafast", export="otio")
    return result, out


def test_otio_round_trip_shots_transitions_dialogue_music_markers(exported):
    result, out = exported
    assert result.export_path == out.with_suffix(".otio") and result.export_path.is_file()
    timeline = otio.adapters.read_from_file(str(result.export_path))
    video = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    assert len(video) == 1
    items = list(video[0])
    clips = [c for c in items if isinstance(c, otio.schema.Clip)]
    transitions = [c for c in items if isinstance(c, otio.schema.Transition)]
    # Shot order and durations in frames, at the film's rate.
    assert [c.name for c in clips] == ["shot 1", "shot 2", "shot 3", "shot 4"]
    assert [c.source_range.duration.value for c in clips] == [p.num_frames for p in result.plans]
    assert all(c.source_range.duration.rate == FPS for c in clips)
    assert timeline.duration().rescaled_to(FPS).value == result.num_frames
    # Each transition sits between its two clips, with its type, kind and frames.
    assert [type(c).__name__ for c in items] == ["Clip", "Transition", "Clip", "Transition", "Clip",
                                                  "Transition", "Clip"]  # fmt: skip
    assert [t.transition_type for t in transitions] == ["SMPTE_Dissolve", "Fade_Through_Black", "SMPTE_Wipe"]
    assert [t.metadata["yingxi"]["kind"] for t in transitions] == ["crossfade", "fade", "wipe"]
    assert transitions[2].metadata["yingxi"]["direction"] == "right"
    for t, seconds in zip(transitions, (0.5, 0.8, 0.5), strict=True):
        n = round(seconds * FPS)
        assert (t.in_offset.value, t.out_offset.value) == (n // 2, n - n // 2)
        assert t.in_offset.rate == FPS
    # Dialogue: clips on an audio track at the SRT's times (to its millisecond rounding), text on each.
    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert [t.name for t in audio] == ["Dialogue 1", "Music"]
    lines = [c for c in audio[0] if isinstance(c, otio.schema.Clip)]
    starts = [audio[0].range_of_child(c).start_time.to_seconds() for c in lines]
    assert [c.metadata["yingxi"]["text"] for c in lines] == ["Hello there.", "Good night."]
    assert np.allclose(starts, srt_starts(result.srt_path.read_text()), atol=0.0006)
    assert 4.0 <= starts[1] < 6.0  # in shot 3
    # Each line's file is its speech: as long as its clip, and not silent.
    for c in lines:
        samples, rate = read_wav(out.parent / c.media_reference.target_url)
        assert rate == 48000 and len(samples) == c.source_range.duration.value
        assert np.sqrt((samples**2).mean()) > 0.01
    # Music: one clip over the whole film, its file the looped bed.
    (bed,) = list(audio[1])
    assert bed.source_range.duration.to_seconds() == pytest.approx(result.duration, abs=1e-3)
    music, _ = read_wav(out.parent / bed.media_reference.target_url)
    assert music.shape == (round(result.duration * 48000), 2) and np.abs(music).max() > 0.2
    # Subtitles as markers, at their times.
    markers = list(timeline.tracks.markers)
    assert [m.name for m in markers] == ["MEI: Hello there.", "LI: Good night."]
    assert np.allclose([m.marked_range.start_time.to_seconds() for m in markers], starts, atol=1e-6)


def test_each_shot_file_decodes_to_the_shots_frames(exported):
    result, out = exported
    timeline = otio.adapters.read_from_file(str(result.export_path))
    clips = [c for c in timeline.video_tracks()[0] if isinstance(c, otio.schema.Clip)]
    film, _, _, _ = decode(out)
    # Shot 1 pans over a texture: away from the crossfade its file's frames are the film's, frame for frame
    # (two H.264 encodings of the same frames), and they move (no frame is repeated).
    first = read_shot(out.parent / clips[0].media_reference.target_url)
    n = len(first) - round(0.5 * FPS) // 2
    assert np.abs(first[:n].astype(int) - film[:n]).mean(axis=(1, 2, 3)).max() < 3
    assert np.abs(np.diff(first[:n].astype(int), axis=0)).mean(axis=(1, 2, 3)).min() > 3
    for clip, plan, rgb in list(zip(clips, result.plans, COLOURS, strict=True))[1:]:
        path = out.parent / clip.media_reference.target_url
        assert path.parent.name == "film.shots" and path.name == f"shot-{plan.index:02d}.mp4"
        frames = read_shot(path)
        # The shot's own frames: its flat colour throughout, no transition mixed in (H.264 noise only).
        assert frames.shape == (plan.num_frames, 480, 864, 3)
        assert np.abs(frames.astype(int) - rgb).mean(axis=(1, 2, 3)).max() < 6
    assert not list(out.parent.glob("film.shots/.*partial*"))


def test_package_holds_the_timeline_and_its_media(exported, tmp_path):
    result, out = exported
    from yingxi.editor.export import Exported

    zipped = write_package(Exported(result.export_path, result.export_files), tmp_path / "edit.zip")
    names = set(zipfile.ZipFile(zipped).namelist())
    assert "film.otio" in names
    assert {f"film.shots/shot-{i:02d}.mp4" for i in range(1, 5)} <= names
    assert {"film.shots/line-01.wav", "film.shots/line-02.wav", "film.shots/music.wav"} <= names


@pytest.mark.parametrize("fmt", ["edl", "fcpxml"])
def test_edl_and_fcpxml_written_and_read_back(fmt, tmp_path):
    adapter = EXPORT_FORMATS[fmt][0]
    if adapter not in otio.adapters.available_adapter_names():
        pytest.skip(f"{EXPORT_FORMATS[fmt][2]} is not installed")
    fps = 24  # EDL and FCPXML count in SMPTE timecode: 12 fps is none
    film = replace(parse_prompt("Shot 1 (0.5s): a\nShot 2 (0.5s, crossfade): b\nShot 3 (0.5s): c"), fps=fps,
                   resolution="480p")  # fmt: skip
    out = tmp_path / "film.mp4"
    result = render(film, AnimaticGenerator(), out, encoder_preset="ultrafast", export=fmt)
    assert result.export_path == out.with_suffix(EXPORT_FORMATS[fmt][1])
    extra = {"rate": fps} if fmt == "edl" else {}
    timeline = otio.adapters.read_from_file(str(result.export_path), adapter_name=adapter, **extra)
    track = timeline.video_tracks()[0]
    clips = [c for c in track if isinstance(c, otio.schema.Clip)]
    assert [c.name for c in clips] == ["shot 1", "shot 2", "shot 3"]
    assert round(track.duration().rescaled_to(fps).value) == result.num_frames == 36
    if fmt == "fcpxml":  # the fcpx_xml adapter (1.0.0) writes no transitions: the clips stay whole
        assert [round(c.source_range.duration.rescaled_to(fps).value) for c in clips] == [12, 12, 12]
        return
    # CMX 3600 starts a dissolve at its edit (the incoming clip begins early), so the clips' lengths differ
    # from ours, but the dissolve covers the same output frames: 12 of them from frame 6 (centred on 12).
    (dissolve,) = [c for c in track if isinstance(c, otio.schema.Transition)]
    assert dissolve.transition_type == "SMPTE_Dissolve"
    before = track[track.index(dissolve) - 1]
    start = track.range_of_child(before).end_time_exclusive() - dissolve.in_offset
    assert round(start.rescaled_to(fps).value) == 6
    assert round((dissolve.in_offset + dissolve.out_offset).rescaled_to(fps).value) == 12


def test_ntsc_rate_is_the_timelines_rate(tmp_path):
    film = replace(parse_prompt("Shot 1 (1s): a\nShot 2 (1s, crossfade): b"), fps=Fraction(24000, 1001),
                   resolution="480p")  # fmt: skip
    out = tmp_path / "film.mp4"
    result = render(film, AnimaticGenerator(), out, encoder_preset="ultrafast", export="otio")
    timeline = otio.adapters.read_from_file(str(result.export_path))
    clips = list(timeline.find_clips())
    assert all(c.source_range.duration.rate == pytest.approx(24000 / 1001) for c in clips)
    assert sum(c.source_range.duration.value for c in clips) == result.num_frames


def test_unknown_format_names_the_closest_before_any_work():
    with pytest.raises(InputError) as info:
        check_export("otoi")
    assert info.value.field == "export" and 'did you mean "otio"' in str(info.value)


def test_edl_at_a_rate_timecode_lacks_is_refused_before_any_work(tmp_path):
    film = replace(parse_prompt("Shot 1 (1s): a"), fps=FPS, resolution="480p")
    with pytest.raises(InputError) as info:
        render(film, AnimaticGenerator(), tmp_path / "film.mp4", export="edl")
    assert info.value.field == "export" and "12 fps" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_rerender_drops_stale_shot_files_and_an_opening_fade_is_metadata(tmp_path):
    out = tmp_path / "film.mp4"
    three = replace(
        parse_prompt("Shot 1 (1s): a\nShot 2 (1s): b\nShot 3 (1s): c"), fps=FPS, resolution="480p"
    )
    render(three, AnimaticGenerator(), out, encoder_preset="ultrafast", export="otio")
    assert (tmp_path / "film.shots" / "shot-03.mp4").is_file()
    two = replace(parse_prompt("Shot 1 (1s, fade): a\nShot 2 (1s): b"), fps=FPS, resolution="480p")
    result = render(two, AnimaticGenerator(), out, encoder_preset="ultrafast", export="otio")
    assert sorted(p.name for p in (tmp_path / "film.shots").iterdir()) == ["shot-01.mp4", "shot-02.mp4"]
    assert [p.name for p in result.export_files] == ["shot-01.mp4", "shot-02.mp4"]
    timeline = otio.adapters.read_from_file(str(result.export_path))
    first = next(iter(timeline.find_clips()))
    # The film fades up from black over the fade's second half (0.4 s): no clip before it to transition from.
    assert first.metadata["yingxi"]["fade_in_frames"] == round(0.8 * FPS) - round(0.8 * FPS) // 2
    assert not any(isinstance(i, otio.schema.Transition) for i in timeline.video_tracks()[0])
