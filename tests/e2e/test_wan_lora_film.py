"""`yingxi generate --backend wan --model M --lora L --preset lightning --script S` on tiny files: the right
frame counts, 4 steps, one transformer evaluation per step (guidance 1), and the summary says so.

`MODELS` names how the tiny transformer is handed over: a diffusers folder, one ComfyUI .safetensors file,
and a city96-style Q8_0 .gguf file (where the LoRA runs as a side path beside the quantized weights)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.e2e.helpers import decode
from tests.models.wan.tiny import save_tiny_wan
from yingxi.cli import main
from yingxi.models.wan.dit import WanDiT

SCRIPT = {
    "title": "kite",
    "size": "64x64",
    "fps": 16,
    "shots": [
        {"prompt": "A kite.", "duration": 1},
        {"prompt": "It dives.", "duration": 0.5, "transition": "cut"},
    ],
}


TESTS = Path(__file__).resolve().parents[1]


def folder_model(root):
    """A diffusers folder (2 heads x 16)."""
    return [str(save_tiny_wan(root / "t2v", "t2v"))], 32, 64


def _comfy_files(root):
    """The tiny model as ComfyUI single files (1 head x 128, so detection reads it as a real one), written by
    the single-file tests' own writer."""
    for sub in ("pipelines", "models/wan"):
        if str(TESTS / sub) not in sys.path:
            sys.path.insert(0, str(TESTS / sub))
    single = importlib.import_module("test_single_files")
    pipe = single._tiny_parts("t2v")
    return pipe, single._write_files(pipe, "t2v", root / "comfy"), root / "comfy"


def file_model(root):
    """One .safetensors transformer file (ComfyUI's name and prefix), the other parts by --comfy-root."""
    _, files, comfy = _comfy_files(root)
    return [str(files["model"]), "--comfy-root", str(comfy)], 128, 64


def gguf_model(root):
    """The same transformer as a city96-style Q8_0 GGUF file: the LoRA runs beside the quantized blocks."""
    from gguf_files import original_state, write_wan_gguf

    from yingxi.models.wan.loading import load_transformer

    _, files, comfy = _comfy_files(root)
    gguf = files["model"].with_name("wan2.1_t2v_1.3B_Q8_0.gguf")
    write_wan_gguf(gguf, original_state(load_transformer(files["model"], dtype="fp32")), "Q8_0")
    files["model"].unlink()  # only the GGUF file is left to find
    return [str(gguf), "--comfy-root", str(comfy)], 128, 64


MODELS = {"folder": folder_model, "file": file_model, "gguf": gguf_model}


@pytest.fixture(autouse=True)
def tiny_vae_preset(monkeypatch):
    """A real wan_2.1_vae file has the preset architecture; the tiny one stands in for it (as in the
    single-file tests)."""
    from tests.models.wan.tiny import tiny_vae
    from yingxi.models.wan.vae import WanVAEConfig
    from yingxi.models.wan.vae_loading import PRESETS

    monkeypatch.setitem(PRESETS, "2.1", WanVAEConfig.from_diffusers(dict(tiny_vae("t2v").config)))


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request, tmp_path_factory):
    return MODELS[request.param](tmp_path_factory.mktemp("wan_lora"))


@pytest.fixture(scope="module")
def lora(model, tmp_path_factory):
    """A Lightning-style LoRA for the model's widths: Wan-native names, int64 alpha, a diff_b."""
    _, dim, ffn = model
    g = torch.Generator().manual_seed(0)
    sd = {}
    for i in range(2):
        for layer in ("self_attn.q", "cross_attn.o", "ffn.2"):
            d_in = ffn if layer == "ffn.2" else dim
            base = f"diffusion_model.blocks.{i}.{layer}"
            sd[f"{base}.lora_down.weight"] = 0.05 * torch.randn(4, d_in, generator=g)
            sd[f"{base}.lora_up.weight"] = 0.05 * torch.randn(dim, 4, generator=g)
            sd[f"{base}.alpha"] = torch.tensor(4, dtype=torch.int64)
        sd[f"diffusion_model.blocks.{i}.self_attn.q.diff_b"] = 0.01 * torch.randn(dim, generator=g)
    path = tmp_path_factory.mktemp("loras") / "tiny_lightning_lora.safetensors"
    save_file(sd, str(path))
    return path


@pytest.fixture
def calls(monkeypatch):
    """Counts WanDiT forward passes (the real forward runs)."""
    count = [0]
    forward = WanDiT.forward

    def counted(self, *args, **kwargs):
        count[0] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(WanDiT, "forward", counted)
    return count


@pytest.fixture
def timesteps(calls, monkeypatch):
    """The timestep each WanDiT forward is called with (on top of `calls`)."""
    seen: list[float] = []
    forward = WanDiT.forward

    def recorded(self, hidden_states, timestep, *args, **kwargs):
        seen.append(float(timestep.flatten()[0]))
        return forward(self, hidden_states, timestep, *args, **kwargs)

    monkeypatch.setattr(WanDiT, "forward", recorded)
    return seen


def test_lightning_film_with_a_lora(model, lora, calls, timesteps, tmp_path, capsys):
    script = tmp_path / "film.json"
    script.write_text(json.dumps(SCRIPT))
    out = tmp_path / "film.mp4"
    argv = ["generate", "--backend", "wan", "--model", *model[0], "--lora", f"{lora}:0.8", "--preset", "lightning",
            "--script", str(script), "--device", "cpu", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # 16 fps model: 1 s -> 17 frames, 0.5 s -> 9 frames (4k+1); 4 steps each at guidance 1: 4 passes a shot
    assert calls[0] == 8
    # at LightX2V's step-distill levels (denoising_step_list [1000, 750, 500, 250], shift 5, float timesteps:
    # lightx2v/models/schedulers/wan/step_distill/scheduler.py), each shot
    assert timesteps == pytest.approx([1000.0, 937.5, 2500 / 3, 625.0] * 2, abs=1e-4)
    assert "transformer evaluations: 8 (per shot: 4, 4)" in printed
    frames, fps, _, _ = decode(out)
    assert frames.shape == (17 + 9, 64, 64, 3) and fps == 16
    assert "26 frames at 16 fps" in printed


def test_plan_says_what_each_shot_costs(model, lora, tmp_path, capsys):
    script = tmp_path / "film.json"
    script.write_text(json.dumps({**SCRIPT, "preset": "lightning"}))  # the preset from the script this time
    base = ["plan", "--backend", "wan", "--model", *model[0], "--script", str(script), "--json"]
    assert main(base + ["--lora", str(lora)]) == 0
    rows = json.loads(capsys.readouterr().out)["shots"]
    assert [r["evaluations"] for r in rows] == [4, 4]
    (tmp_path / "plain.json").write_text(json.dumps(SCRIPT))
    assert main(base[:-3] + ["--script", str(tmp_path / "plain.json"), "--json", "--steps", "3"]) == 0
    rows = json.loads(capsys.readouterr().out)["shots"]
    assert [r["evaluations"] for r in rows] == [6, 6]  # no preset: guidance 5 -> two passes a step


def test_preset_without_its_lora_says_which_file_and_where(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("YINGXI_COMFY_ROOT", str(tmp_path / "comfy"))
    (tmp_path / "comfy" / "models" / "loras").mkdir(parents=True)
    (
        tmp_path / "comfy" / "models" / "loras" / "wan2.2_t2v_lightx2v_4steps_lora_v1_high_noise.safetensors"
    ).touch()
    argv = ["plan", "--backend", "wan", "--model", "wan2.2-t2v-a14b", "--preset", "lightning", "A kite."]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors" in err
    assert str(tmp_path / "comfy" / "models" / "loras") in err
    assert 'closest file there: "wan2.2_t2v_lightx2v_4steps_lora_v1_high_noise.safetensors"' in err


def test_x264_names_on_preset_still_work(tmp_path, capsys):
    out = tmp_path / "a.mp4"
    assert (
        main(["generate", "Shot 1 (1s): A kite.", "--preset", "ultrafast", "--size", "64x64", "-o", str(out)])
        == 0
    )
    assert "--encoder-preset ultrafast" in capsys.readouterr().err
    assert decode(out)[0].shape[0] == 24
    assert main(["generate", "A kite.", "--preset", "lightnin", "-o", str(out)]) == 2
    assert 'did you mean "lightning"' in capsys.readouterr().err
    assert (
        main(["generate", "A kite.", "--preset", "lightning", "-o", str(out)]) == 2
    )  # the animatic has none
    assert "--preset need --backend wan" in capsys.readouterr().err
