"""`yingxi generate --backend diffusers --model DIR` on a tiny random LTX-2 folder the test saves: the MP4's
decoded picture is the pipeline's own clip (through H.264), and with `generate_audio` its sound track carries
the pipeline's own audio under the film's."""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.tiny_ltx2 import save_tiny_ltx2
from tests.e2e.helpers import assert_same_encode, band_share, decode, rms
from yingxi.cli import build_parser, film_from_args, main, make_backend
from yingxi.media.video import write_mp4
from yingxi.render import prepare

FAST = ["--pipeline-arg", "stg_scale=0", "--pipeline-arg", "modality_scale=1", "--pipeline-arg",
        "audio_stg_scale=0", "--pipeline-arg", "audio_modality_scale=1", "--pipeline-arg",
        "max_sequence_length=16"]  # fmt: skip


@pytest.fixture(scope="module")
def ltx2(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return save_tiny_ltx2(tmp_path_factory.mktemp("ltx2") / "t2v", "t2v")


def argv(model, source: list[str], out) -> list[str]:
    return ["generate", "--backend", "diffusers", "--model", str(model), *source, "--size", "32x32",
            "--fps", "25", "--steps", "2", "--seed", "5", *FAST, "-o", str(out)]  # fmt: skip


def own_clip(args: list[str]):
    """The clip the backend shoots for the film's one shot, from the same arguments the CLI read."""
    ns = build_parser().parse_args(args)
    gen = make_backend(ns)
    return gen.generate(prepare(film_from_args(ns), gen).request(0))


def encoded(frames: np.ndarray, fps: float, path) -> np.ndarray:
    """The frames as they decode after the film's own encoder settings (x264 medium, crf 20)."""
    _, h, w, _ = frames.shape
    write_mp4(path, iter(frames), fps=fps, width=w, height=h, audio=np.zeros((48000, 2), np.float32),
              sample_rate=48000, preset="medium")  # fmt: skip
    return decode(path)[0]


def assert_films_these_frames(film: np.ndarray, frames: np.ndarray, fps: float, tmp_path) -> None:
    """The film holds these frames and no others. Noise from random weights codes at ~25 dB, too far for a
    tolerance on the frames themselves; so the film is compared with the same frames through the same
    encoder (within libx264's own run-to-run noise: helpers.assert_same_encode)."""
    assert_same_encode(film, encoded(frames, fps, tmp_path / "own.mp4"))


def test_cli_films_the_pipelines_own_frames(ltx2, tmp_path):
    args = argv(ltx2, ["Shot 1 (1s): A drum beats while the band plays."], tmp_path / "f.mp4")
    assert main(args) == 0
    frames, fps, _, _ = decode(tmp_path / "f.mp4")
    clip = own_clip(args)
    assert clip.frames.shape == (25, 32, 32, 3) and clip.fps == 25.0  # 1 s at 25 fps: 2k+1 frames, as is
    assert frames.shape == clip.frames.shape and fps == 25
    assert_films_these_frames(frames, clip.frames, 25.0, tmp_path)  # the pipeline's frames through H.264


def test_cli_refuses_what_the_pipeline_cannot_take_before_any_work(ltx2, tmp_path, capsys):
    out = tmp_path / "x.mp4"
    assert main(argv(ltx2, ["Shot 1 (1s): A drum.", "--pipeline-arg", "stg_scal=0"], out)) == 2
    assert 'did you mean "stg_scale"' in capsys.readouterr().err
    assert main(argv(ltx2, ["Shot 1 (1s): A drum.", "--lora", "x.safetensors"], out)) == 2
    assert "--lora need --backend wan" in capsys.readouterr().err
    assert main(argv(tmp_path, ["Shot 1 (1s): A drum."], out)) == 2  # not a pipeline folder
    assert "no model_index.json" in capsys.readouterr().err
    assert not out.exists()


def test_cli_film_sound_is_the_pipelines_own_audio(ltx2, tmp_path):
    script = tmp_path / "film.yaml"
    script.write_text("generate_audio: true\nshots:\n  - prompt: A drum beats while the band plays.\n"
                      "    duration: 1\n")  # fmt: skip
    args = argv(ltx2, ["--script", str(script)], tmp_path / "s.mp4")
    assert main(args) == 0
    _, _, audio, rate = decode(tmp_path / "s.mp4")
    clip = own_clip(args)
    assert clip.audio is not None and clip.sample_rate == 16000
    want = rms(clip.audio.mean(axis=1))  # the decoded track is mono-averaged, at the film's rate
    shot = audio[: round(len(clip.audio) / clip.sample_rate * rate)]
    assert want > 1e-3 and rms(shot) == pytest.approx(want, rel=0.2)  # resampled and AAC-coded: its energy


def test_cli_films_kandinsky5s_own_frames_at_its_own_rate(tmp_path):
    """A second family through the same door: Kandinsky 5 (no frame-rate argument: its native 24 fps)."""
    from tests.backends.tiny_kandinsky5 import save_tiny_kandinsky5

    model = save_tiny_kandinsky5(tmp_path / "k5", "t2v")
    args = ["generate", "--backend", "diffusers", "--model", str(model), "Shot 1 (1s): A cat walks on the beach.",
            "--size", "32x32", "--fps", "24", "--steps", "2", "--seed", "5", "--guidance", "3",
            "--pipeline-arg", "max_sequence_length=64", "-o", str(tmp_path / "k.mp4")]  # fmt: skip
    assert main(args) == 0
    frames, fps, _, _ = decode(tmp_path / "k.mp4")
    clip = own_clip(args)
    assert clip.frames.shape == (25, 32, 32, 3) and clip.fps == 24.0  # 1 s: the nearest 4k+1 frames
    assert frames.shape == clip.frames.shape and fps == 24
    assert_films_these_frames(frames, clip.frames, 24.0, tmp_path)


def test_cli_film_follows_a_reference_audio_and_keeps_it_as_the_shots_sound(ltx2, tmp_path, capsys):
    """`--audio bell.wav` and "to the beat of @audio1": shot 2's picture is shot with the clip held as
    LTX-2's sound stream (backends/diffusers_audio.py), and the film's sound under shot 2 is the clip."""
    from yingxi.media.wav import write_wav

    t = np.arange(48000, dtype=np.float32) / 48000
    write_wav(tmp_path / "bell.wav", (0.5 * np.sin(2 * np.pi * 880 * t)).astype(np.float32), 48000)
    prompt = "Shot 1 (1s): A drum beats while the band plays.\nShot 2 (1s): She sings to the beat of @audio1."
    args = argv(ltx2, [prompt, "--audio", str(tmp_path / "bell.wav")], tmp_path / "b.mp4")
    assert main(["plan", *args[1:-2]]) == 0
    plan = capsys.readouterr().out
    assert "sound follows bell.wav" in plan and "laid as the shot's sound instead" not in plan
    assert main(args) == 0
    frames, fps, audio, rate = decode(tmp_path / "b.mp4")
    assert frames.shape == (50, 32, 32, 3) and fps == 25
    ns = build_parser().parse_args(args)
    gen = make_backend(ns)
    prepared = prepare(film_from_args(ns), gen)
    (item,) = prepared.request(1).conditioning
    assert item.kind == "audio" and item.sample_rate == 48000
    shots = np.concatenate([gen.generate(prepared.request(i)).frames for i in (0, 1)])
    assert_films_these_frames(frames, shots, 25.0, tmp_path)  # both shots as the backend shot them (a cut)
    second, first = audio[rate + rate // 10 : 2 * rate - rate // 10], audio[rate // 10 : rate - rate // 10]
    assert rms(second) > 0.2 and band_share(second, rate, 880.0, 44.0) > 0.8  # the bell, under shot 2
    assert rms(first) < 0.01  # shot 1 neither asked for sound nor followed any
    capsys.readouterr()
    bad = argv(ltx2, [prompt, "--audio", str(tmp_path / "none.wav")], tmp_path / "c.mp4")
    assert (
        main(bad) == 2 and "file not found" in capsys.readouterr().err and not (tmp_path / "c.mp4").exists()
    )
