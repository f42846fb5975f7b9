"""WanGenerator's LoRA and preset settings, read off the variant without any weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from yingxi.backends.base import ClipRequest
from yingxi.backends.wan import WanGenerator
from yingxi.errors import InputError


def request(**kw) -> ClipRequest:
    return ClipRequest(prompt="a kite", width=832, height=480, num_frames=81, fps=16, seed=0, **kw)


def test_an_a14b_pair_is_told_apart_by_file_name():
    high, low = (
        (Path("wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"), 1.0),
        (Path("x_low_noise.safetensors"), 0.7),
    )
    style = (Path("ink_style.safetensors"), 0.5)
    gen = WanGenerator("wan2.2-t2v-a14b", loras=[high, low, style])
    assert (gen.loras, gen.loras_2) == ([high, style], [low])
    assert WanGenerator("wan2.2-t2v-a14b", loras=[style]).loras_2 is None  # no pair: both experts get it
    explicit = WanGenerator("wan2.2-t2v-a14b", loras=[low], loras_2=[style])
    assert (explicit.loras, explicit.loras_2) == ([low], [style])  # --lora-2 says it outright
    with pytest.raises(InputError, match="one transformer"):
        WanGenerator("wan2.1-t2v-14b", loras=[style], loras_2=[style])


def test_preset_settings_and_their_cost():
    lora = [(Path("mine.safetensors"), 1.0)]
    gen = WanGenerator("wan2.2-t2v-a14b", loras=lora)
    assert gen.evaluations(request()) == 2 * 40  # the variant's 40 steps, both experts guided
    s = gen.settings("lightning")
    assert (s.steps, s.guidance, s.guidance_2, s.shift, s.sampler, s.schedule) == (
        4,
        1.0,
        1.0,
        5.0,
        "euler",
        "wan",
    )
    assert s.loras == (tuple(lora), None)  # --lora replaces the preset's own files
    assert gen.evaluations(request(preset="lightning")) == 4
    assert gen.evaluations(request(preset="lightning", steps=6)) == 6  # a shot's own steps still count
    fixed = WanGenerator("wan2.1-t2v-14b", steps=8, guidance=3.0, loras=lora, preset="lightning")
    assert fixed.evaluations(request()) == 16  # flags over the preset


def test_a_preset_lora_that_is_missing_fails_at_construction(tmp_path):
    with pytest.raises(InputError, match="Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank64.safetensors"):
        WanGenerator("wan2.1-t2v-14b", preset="lightning", comfy_root=tmp_path)
    (tmp_path / "models" / "loras").mkdir(parents=True)
    (
        tmp_path / "models" / "loras" / "lightx2v_T2V_14B_cfg_step_distill_v2_lora_rank64_bf16.safetensors"
    ).touch()
    gen = WanGenerator("wan2.1-t2v-14b", preset="lightning", comfy_root=tmp_path)
    ((path, strength),) = gen.settings().loras[0]
    assert (
        path.name == "lightx2v_T2V_14B_cfg_step_distill_v2_lora_rank64_bf16.safetensors" and strength == 1.0
    )
