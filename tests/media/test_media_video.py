"""write_mp4 / read_* round trips, checked on what PyAV decodes back."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest

from yingxi.errors import InputError
from yingxi.media.video import read_audio, read_frames, read_video, write_mp4

W, H, FPS, RATE = 64, 48, 12, 48000


def flat_frames(n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("backend died")
        yield np.full((H, W, 3), (20 * i) % 250, np.uint8)


def tone(seconds: float, freq: float = 440.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_round_trip_streams_size_fps_frames_and_audio(tmp_path: Path):
    out = tmp_path / "film.mp4"
    stereo = np.stack([tone(2.0), tone(2.0, 880.0)], axis=1)  # (N, 2)
    assert write_mp4(out, flat_frames(24), fps=FPS, width=W, height=H, audio=stereo) == out

    with av.open(str(out)) as c:
        kinds = sorted(s.type for s in c.streams)
        v, a = c.streams.video[0], c.streams.audio[0]
        assert kinds == ["audio", "video"]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert a.codec_context.name == "aac" and a.codec_context.channels == 2
        assert a.codec_context.sample_rate == RATE
    info = read_video(out)
    assert (info.width, info.height, info.fps, info.num_frames) == (W, H, 12.0, 24)
    assert info.duration == pytest.approx(2.0)
    # AAC is decoded to the container's declared length (priming and padding removed): within 1 ms.
    assert info.has_audio and info.audio_duration == pytest.approx(2.0, abs=1e-3)

    frames = read_frames(out)
    assert frames.shape == (24, H, W, 3)
    # Flat grey levels survive H.264 at crf 20 within 3 levels (yuv420p rounding).
    expected = (20 * np.arange(24)) % 250
    assert np.abs(frames.reshape(24, -1).astype(int).mean(axis=1) - expected).max() < 3

    audio = read_audio(out)
    assert audio.shape == (96000, 2) and audio.dtype == np.float32
    # The channels keep their own tones: dominant frequency of each, by FFT over the middle second.
    for ch, freq in ((0, 440), (1, 880)):
        spectrum = np.abs(np.fft.rfft(audio[24000:72000, ch]))
        assert abs(np.argmax(spectrum) * RATE / 48000 - freq) <= 2


def test_moov_atom_is_at_the_front(tmp_path: Path):
    out = write_mp4(tmp_path / "f.mp4", flat_frames(6), fps=FPS, width=W, height=H)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_mono_audio_and_no_audio(tmp_path: Path):
    out = write_mp4(tmp_path / "m.mp4", flat_frames(12), fps=FPS, width=W, height=H, audio=tone(1.0))
    audio = read_audio(out)
    assert audio.shape == (48000, 2)
    # AAC codes the pair jointly, so the copies match to lossy-codec precision, not exactly.
    assert np.abs(audio[:, 0] - audio[:, 1]).max() < 0.01
    silent = write_mp4(tmp_path / "s.mp4", flat_frames(12), fps=FPS, width=W, height=H)
    info = read_video(silent)
    assert not info.has_audio and info.audio_duration is None
    with pytest.raises(InputError, match="no audio stream"):
        read_audio(silent)


def test_failure_mid_stream_leaves_nothing(tmp_path: Path):
    out = tmp_path / "film.mp4"
    with pytest.raises(RuntimeError, match="backend died"):
        write_mp4(out, flat_frames(24, fail_at=10), fps=FPS, width=W, height=H, audio=tone(2.0))
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_an_existing_file_untouched(tmp_path: Path):
    out = tmp_path / "film.mp4"
    out.write_bytes(b"the previous render")
    with pytest.raises(RuntimeError):
        write_mp4(out, flat_frames(24, fail_at=3), fps=FPS, width=W, height=H)
    assert out.read_bytes() == b"the previous render"
    assert [p.name for p in tmp_path.iterdir()] == ["film.mp4"]
    with pytest.raises(ValueError, match="frame 0"):
        write_mp4(out, iter([np.zeros((10, 10, 3), np.uint8)]), fps=FPS, width=W, height=H)
    assert out.read_bytes() == b"the previous render"


def test_read_audio_resamples_any_rate(tmp_path: Path):
    out = write_mp4(tmp_path / "t.mp4", flat_frames(12), fps=FPS, width=W, height=H, audio=tone(1.0, 1000.0))
    low = read_audio(out, sample_rate=16000)
    assert low.shape == (16000, 2)
    spectrum = np.abs(np.fft.rfft(low[4000:12000, 0]))
    assert abs(np.argmax(spectrum) * 16000 / 8000 - 1000) <= 2


def test_unreadable_files_raise_input_error_naming_the_file(tmp_path: Path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video at all" * 10)
    for reader in (read_audio, read_video, read_frames):
        with pytest.raises(InputError, match="junk.mp4"):
            reader(junk)
        with pytest.raises(InputError, match="no such file"):
            reader(tmp_path / "missing.wav")


@pytest.mark.parametrize("width, height", [(70, 34), (64, 48)])  # 34: a height that is not a multiple of 4
def test_colours_survive_and_encoding_is_stable(tmp_path: Path, width: int, height: int):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 40, 40), (30, 60, 90), (128, 128, 128)]
    frames = [np.full((height, width, 3), c, np.uint8) for c in colours]
    frames[1][:, : width // 2] = (250, 250, 250)  # a hard vertical edge
    outs = [
        write_mp4(tmp_path / f"{k}.mp4", iter(frames), fps=FPS, width=width, height=height) for k in range(2)
    ]
    decoded = read_frames(outs[0])
    assert decoded.shape == (6, height, width, 3)
    # Flat colours come back within 3 levels (BT.709 limited range both ways, x264 at crf 20), edges included.
    for k in (0, 2, 3, 4, 5):
        assert np.abs(decoded[k].astype(int) - colours[k]).max() <= 3, colours[k]
    assert np.abs(decoded[1, :, 2].astype(int) - 250).max() <= 3
    assert np.abs(decoded[1, :, -3].astype(int) - (0, 255, 0)).max() <= 3
    # The same frames decode to the same pictures, within H.264 noise (libx264 is not bit-reproducible).
    again = read_frames(outs[1])
    assert np.abs(again.astype(int) - decoded.astype(int)).max() <= 3


def test_keyboard_interrupt_mid_stream_leaves_nothing(tmp_path: Path):
    def frames():
        yield from flat_frames(5)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_mp4(tmp_path / "film.mp4", frames(), fps=FPS, width=W, height=H, audio=tone(1.0))
    assert list(tmp_path.iterdir()) == []


def test_two_threads_writing_one_path_do_not_share_a_temporary_file(tmp_path: Path):
    # The first writer pauses mid-stream while a second writes the same path start to finish. With one
    # temporary name per process they wrote into the same file and the first writer's rename failed.
    out = tmp_path / "film.mp4"
    paused, resume, errors = threading.Event(), threading.Event(), []

    def slow_frames():
        for i, frame in enumerate(flat_frames(12)):
            if i == 6:
                paused.set()
                resume.wait(30)
            yield frame

    def first():
        try:
            write_mp4(out, slow_frames(), fps=FPS, width=W, height=H, audio=tone(1.0))
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    thread = threading.Thread(target=first)
    thread.start()
    assert paused.wait(30)
    write_mp4(out, flat_frames(24), fps=FPS, width=W, height=H)
    assert read_video(out).num_frames == 24
    resume.set()
    thread.join(30)
    assert errors == []
    info = read_video(out)  # the last writer's complete file
    assert (info.num_frames, info.has_audio) == (12, True)
    assert [p.name for p in tmp_path.iterdir()] == ["film.mp4"]


def test_read_audio_stops_after_max_seconds(tmp_path: Path):
    out = write_mp4(tmp_path / "t.mp4", flat_frames(36), fps=FPS, width=W, height=H, audio=tone(3.0))
    full = read_audio(out)
    head = read_audio(out, max_seconds=1.25)
    assert full.shape == (3 * RATE, 2) and head.shape == (60000, 2)
    assert np.array_equal(head, full[:60000])  # the same samples, decoded no further than needed
    assert read_audio(out, max_seconds=10.0).shape == full.shape
