"""A film through render() with a backend that takes references, video extension and control videos and
makes its own sound: what each shot's request carries, and the sound of the MP4 as decoded.

`Sounding` is a test camera (not a stand-in for a user-facing component): the animatic's frames, plus a
sine per shot as Clip.audio, so the decoded track can be checked against a known signal."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.e2e.helpers import decode, flat_png
from yingxi.backends.animatic import AnimaticGenerator
from yingxi.backends.base import Capabilities, Clip
from yingxi.conditioning_items import PREVIOUS_SHOT
from yingxi.errors import InputError
from yingxi.film import load_script
from yingxi.media.video import write_mp4
from yingxi.render import render

TONE_RATE = 16000  # the camera's own rate: the editor resamples to the film's 48 kHz
AMP = 0.5


class Sounding(AnimaticGenerator):
    """Takes "reference", "video" and "control" items and makes sound: the k-th prompt it sees (from 0) gets
    a sine of 300 + 200 k Hz, as long as the clip (the same request, the same sound)."""

    name = "sounding"

    def __init__(self):
        super().__init__()
        self.requests, self.clips, self.pitch = [], [], {}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(conditionings=frozenset({"t2v", "i2v", "flf2v"}), audio=True,
                            conditioning_kinds=frozenset({"reference", "video", "control"}))  # fmt: skip

    def generate(self, request, progress=None):
        self.check(request)
        clip = super().generate(replace(request, conditioning=(), generate_audio=False), progress)
        freq = self.pitch.setdefault(request.prompt, 300 + 200 * len(self.pitch))
        t = np.arange(round(clip.num_frames / clip.fps * TONE_RATE)) / TONE_RATE
        audio = (AMP * np.sin(2 * np.pi * freq * t)).astype(np.float32)[:, None]
        clip = Clip(clip.frames, clip.fps, audio=audio, sample_rate=TONE_RATE)
        self.requests.append(request)
        self.clips.append(clip)
        return clip


def tone_at(x: np.ndarray, freq: float, rate: int) -> float:
    t = np.arange(len(x)) / rate
    return float(
        2 * np.hypot(np.mean(x * np.sin(2 * np.pi * freq * t)), np.mean(x * np.cos(2 * np.pi * freq * t)))
    )


SCRIPT = """
fps: 12
size: 64x48
generate_audio: true
characters:
  MEI: {image: mei.png}
shots:
  - {prompt: MEI walks in, duration: 1.5, characters: [MEI]}
  - prompt: she stops
    duration: 2
    continue: true
    reference_video: {file: moves.mp4, use: control}
"""


@pytest.fixture
def film(tmp_path):
    flat_png(tmp_path / "mei.png", (200, 0, 200), size=(48, 48))
    ramp = [np.full((48, 64, 3), 10 * k, np.uint8) for k in range(18)]  # 1.5 s at 12 fps, getting lighter
    write_mp4(tmp_path / "moves.mp4", ramp, fps=12, width=64, height=48)
    (tmp_path / "film.yaml").write_text(SCRIPT)
    return load_script(tmp_path / "film.yaml")


def test_each_shot_gets_the_items_its_backend_takes_and_its_sound_is_in_the_mp4(film, tmp_path):
    camera = Sounding()
    result = render(film, camera, tmp_path / "out.mp4", encoder_preset="ultrafast")
    one, two = camera.requests
    # Shot 1: MEI's image is a reference (identity), not the first frame; all of it shows (contain).
    assert one.first_frame is None and one.reference_images == () and one.generate_audio
    (ref,) = one.conditioning
    assert (ref.kind, ref.name, ref.media.shape) == ("reference", "MEI", (48, 64, 3))
    assert np.abs(ref.media[:, 8:56].astype(int) - (200, 0, 200)).max() <= 2 and ref.media[:, :4].max() == 0
    # Shot 2 continues: the last 9 frames of shot 1, exactly, at frame 0; and the control video.
    video, control = two.conditioning
    assert (video.kind, video.name, video.frame) == ("video", PREVIOUS_SHOT, 0) and two.first_frame is None
    assert np.array_equal(video.media, camera.clips[0].frames[-9:])
    assert control.kind == "control" and control.media.shape == (two.num_frames, 48, 64, 3)
    levels = control.media.reshape(two.num_frames, -1).mean(axis=1)
    assert np.abs(levels[:18] - 10 * np.arange(18)).max() < 4  # the reference's frames, at the shot's
    assert np.abs(levels[18:] - levels[17]).max() < 1  # its last frame held past its end
    assert [p.conditioning.words for p in result.plans] == [
        "references MEI; generated sound",
        "extends the previous shot's last 9 frames; control moves.mp4; generated sound",
    ]
    # The sound: each shot's own sine, resampled, at its place on the timeline.
    frames, fps, audio, rate = decode(tmp_path / "out.mp4")
    assert frames.shape[0] == 42 and rate == 48000
    s1, s2 = audio[int(0.2 * rate) : int(1.3 * rate)], audio[int(1.7 * rate) : int(3.3 * rate)]
    assert tone_at(s1, 300, rate) == pytest.approx(AMP, rel=0.1) and tone_at(s1, 500, rate) < 0.02
    assert tone_at(s2, 500, rate) == pytest.approx(AMP, rel=0.1) and tone_at(s2, 300, rate) < 0.02


def test_a_backend_without_those_kinds_keeps_first_frames_and_says_there_is_no_sound(film, tmp_path):
    seen = []

    class Plain(AnimaticGenerator):
        def generate(self, request, progress=None):
            seen.append(request)
            return super().generate(request, progress)

    result = render(film, Plain(), tmp_path / "plain.mp4", encoder_preset="ultrafast")
    one, two = seen
    assert one.conditioning == () == two.conditioning and not one.generate_audio
    assert np.abs(one.first_frame[:, 8:56].astype(int) - (200, 0, 200)).max() <= 2  # MEI's image as before
    assert two.first_frame is not None  # continue: the last frame of shot 1
    notes = " | ".join(result.notes)
    assert "no generated sound: this backend makes none" in notes
    assert "the reference video moves.mp4 is not used" in notes
    _, _, audio, _ = decode(tmp_path / "plain.mp4")
    assert np.abs(audio).max() < 1e-3  # no dialogue, no music, no sound of its own: silence


def test_the_exported_shot_files_carry_each_shot_s_own_sound(film, tmp_path):
    from yingxi.editor.export import shot_path

    out = tmp_path / "edit" / "film.mp4"
    render(film, Sounding(), out, encoder_preset="ultrafast", export="otio")
    for i, freq in enumerate((300, 500)):
        frames, _, audio, rate = decode(shot_path(out, i))
        assert len(frames) == (18, 24)[i]
        middle = audio[int(0.2 * rate) : len(audio) - int(0.2 * rate)]
        assert tone_at(middle, freq, rate) == pytest.approx(AMP, rel=0.1)


def test_plan_shows_each_shot_s_conditioning(film, tmp_path, capsys):
    from tests.backends.test_registry import register_sounding
    from yingxi.backends.registry import unregister
    from yingxi.cli import main

    register_sounding()
    try:
        assert main(["plan", "--script", str(tmp_path / "film.yaml"), "--backend", "sounding", "--json"]) == 0
        rows = __import__("json").loads(capsys.readouterr().out)["shots"]
        assert rows[1]["conditioning"].startswith(
            "extends the previous shot's last 9 frames; control moves.mp4"
        )
        assert main(["plan", "--script", str(tmp_path / "film.yaml"), "--backend", "sounding"]) == 0
        assert "references MEI; generated sound" in capsys.readouterr().out
        assert main(["plan", "--script", str(tmp_path / "film.yaml")]) == 0  # the animatic: none of it
        out = capsys.readouterr().out
        assert "references MEI" not in out and "note: shot 1: no generated sound" in out
        assert "shot 2: no generated sound" not in out  # said once
    finally:
        unregister("sounding")


def test_an_unreadable_reference_video_fails_before_any_shot_naming_shot_field_and_file(film, tmp_path):
    (tmp_path / "moves.mp4").write_text("not a video")
    camera = Sounding()
    with pytest.raises(InputError) as e:
        render(film, camera, tmp_path / "bad.mp4")
    assert (e.value.shot, e.value.field) == (2, "reference_video") and "moves.mp4" in str(e.value.file)
    assert camera.requests == [] and not (tmp_path / "bad.mp4").exists()
