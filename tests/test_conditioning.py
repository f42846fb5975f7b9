"""A film's Seedance references reach the backend as conditioning items (a shot's reference video as a "control"
video resampled to the shot, its audio to follow as an "audio" item, generate_audio), for a backend that
takes them; the animatic takes none, and says so while the audio is still heard as the shot's sound.
Ark's watermark is a mark in the lower-right corner and nowhere else."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tests.e2e.helpers import band_share
from yingxi.backends.animatic import AnimaticGenerator
from yingxi.director.capabilities import Capabilities
from yingxi.film import parse_prompt
from yingxi.film.mentions import attach_media
from yingxi.media.image import fit_image
from yingxi.media.video import read_audio, read_frames, write_mp4
from yingxi.media.wav import write_wav
from yingxi.render import render

RATE = 48_000


class TakesEverything(AnimaticGenerator):
    """The animatic's frames, from a backend that declares control videos and audio (as VACE / LTX-2 will),
    keeping the requests it was given."""

    name = "takes-everything"

    def __init__(self):
        super().__init__()
        self.requests = []

    @property
    def capabilities(self) -> Capabilities:
        base = super().capabilities
        return replace(base, conditioning_kinds=base.conditioning_kinds | {"control", "audio"}, audio=True)

    def generate(self, request, progress=None):
        self.requests.append(request)
        return super().generate(request, progress)


def tone(path, hz: float, seconds: float):
    t = np.arange(int(seconds * RATE)) / RATE
    write_wav(path, (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[:, None].repeat(2, 1), RATE)
    return path


def film_with_references(tmp_path):
    video = tmp_path / "move.mp4"
    write_mp4(
        video, (np.full((48, 64, 3), 20 + 20 * i, np.uint8) for i in range(10)), fps=10, width=64, height=48
    )
    bell = tone(tmp_path / "bell.wav", 1500.0, 1.0)
    film = parse_prompt(
        "Shot 1 (1s, static): The camera moves as in @video1.\nShot 2 (1s, static): She sings to the beat of @audio1.",
        fps=12,
    )
    film = replace(attach_media(film, [video], [bell]), custom_size=(96, 64), generate_audio=True)
    return film, video


def test_a_backend_that_takes_them_gets_the_control_video_audio_and_generate_audio(tmp_path):
    film, video = film_with_references(tmp_path)
    backend = TakesEverything()
    result = render(film, backend, tmp_path / "film.mp4")
    first, second = backend.requests
    assert first.generate_audio and second.generate_audio
    (control,) = first.conditioning
    assert control.kind == "control" and control.media.shape == (12, 64, 96, 3)
    source = read_frames(video)  # 10 frames at 10 fps sampled at the shot's 12 fps, the last one held
    picks = [min(9, round(k * 10 / 12)) for k in range(12)]
    np.testing.assert_array_equal(control.media, np.stack([fit_image(source[i], 96, 64) for i in picks]))
    (audio,) = second.conditioning
    assert audio.kind == "audio" and audio.sample_rate == RATE and audio.media.dtype == np.float32
    assert audio.media.shape == (RATE, 2)  # the shot's one second of the clip
    np.testing.assert_allclose(audio.media, read_audio(tmp_path / "bell.wav", RATE)[:RATE], atol=1e-6)
    shot2 = result.plans[1].conditioning  # the director's decision, shown by `plan`
    assert shot2.audio.name == "bell.wav" and shot2.sounds == () and "sound follows bell.wav" in shot2.words
    assert not any("takes no" in n or "is not used" in n or "no generated sound" in n for n in result.notes)


def test_the_animatic_notes_what_it_cannot_take_and_the_clip_is_heard_at_its_shot(tmp_path):
    film, _ = film_with_references(tmp_path)
    result = render(film, AnimaticGenerator(), tmp_path / "film.mp4")
    notes = " | ".join(result.notes)
    assert "no generated sound: this backend makes none" in notes
    assert (
        "shot 1: the reference video move.mp4 is not used: this backend takes no control conditioning"
        in notes
    )
    assert "shot 2: this backend takes no audio to follow; bell.wav is laid as the shot's sound" in notes
    assert result.plans[1].conditioning.audio is None
    assert [p.name for p in result.plans[1].conditioning.sounds] == ["bell.wav"]
    sound = read_audio(result.path, RATE)
    shot1, shot2 = sound[: RATE - 2400], sound[RATE + 2400 : 2 * RATE - 2400]
    assert band_share(shot2.mean(axis=1), RATE, 1500.0, 30) > 0.5
    assert band_share(shot1.mean(axis=1), RATE, 1500.0, 30) < 0.05


def test_the_watermark_marks_the_lower_right_corner_only(tmp_path):
    film = parse_prompt("A quiet harbour at noon.", fps=12, default_duration=1)
    film = replace(film, custom_size=(320, 192))
    plain = read_frames(render(film, AnimaticGenerator(), tmp_path / "a.mp4").path).astype(int)
    marked = read_frames(render(film, AnimaticGenerator(), tmp_path / "b.mp4", watermark=True).path).astype(
        int
    )
    diff = np.abs(plain - marked).max(axis=(0, 3))  # (H, W): where any frame differs
    ys, xs = np.nonzero(diff > 40)
    assert len(ys) > 50  # the mark is there
    assert ys.min() > 192 * 0.75 and xs.min() > 320 * 0.6  # and only in the corner
