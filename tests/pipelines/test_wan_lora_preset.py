"""LoRAs and presets on a built WanPipeline: transformer passes counted against `evaluations`, guidance 1
skips the unconditional pass, set_loras on both experts, the preset table and its LoRA lookup."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import yingxi
from yingxi.errors import InputError
from yingxi.film.model import PRESETS as FILM_PRESETS
from yingxi.models.wan.config import VARIANTS
from yingxi.pipelines.wan.presets import PRESET_NAMES, PRESETS, find_preset_loras, get_preset, model_family

W, H, F = 32, 32, 5


def counting(model):
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(1))
    return calls


def tiny_lora(path, seed: int, layer: str = "self_attn.q"):
    g = torch.Generator().manual_seed(seed)
    save_file({
        f"diffusion_model.blocks.0.{layer}.lora_down.weight": torch.randn(2, 32, generator=g),
        f"diffusion_model.blocks.0.{layer}.lora_up.weight": torch.randn(32, 2, generator=g),
        f"diffusion_model.blocks.0.{layer}.alpha": torch.tensor(2, dtype=torch.int64),
    }, str(path))  # fmt: skip
    return path


@pytest.mark.parametrize("guidance,sampler", [(1.0, "euler"), (4.0, "unipc")])
def test_guidance_one_makes_one_pass_per_step(tiny_wan, guidance, sampler):
    pipe = yingxi.load_pipeline(tiny_wan("t2v"))
    calls = counting(pipe.components.transformer)
    embeds = torch.randn(1, 512, 32, generator=torch.Generator().manual_seed(0))
    args = dict(num_inference_steps=4, guidance_scale=guidance, sampler=sampler)
    pipe(prompt_embeds=embeds, negative_prompt_embeds=torch.zeros_like(embeds), width=W, height=H,
         num_frames=F, seed=1, **args)  # fmt: skip
    assert len(calls) == pipe.evaluations(**args) == (4 if guidance == 1 else 8)


def test_a14b_counts_follow_the_expert_switch(tiny_wan, tmp_path):
    pipe = yingxi.load_pipeline(tiny_wan("a14b-t2v"))
    high, low = counting(pipe.components.transformer), counting(pipe.components.transformer_2)
    embeds = torch.randn(1, 512, 32, generator=torch.Generator().manual_seed(0))
    args = dict(num_inference_steps=6, guidance_scale=3.0, guidance_scale_2=1.0, shift=3.0)
    pipe(prompt_embeds=embeds, negative_prompt_embeds=torch.zeros_like(embeds), width=W, height=H,
         num_frames=F, seed=1, **args)  # fmt: skip
    assert len(high) + len(low) == pipe.evaluations(**args)
    assert len(high) % 2 == 0 and len(low) > 0  # the high expert guides (2 a step), the low one does not


def test_set_loras_on_both_experts_and_back(tiny_wan, tmp_path):
    pipe = yingxi.load_pipeline(tiny_wan("a14b-t2v"))
    experts = (pipe.components.transformer, pipe.components.transformer_2)
    base = [{k: v.clone() for k, v in m.state_dict().items()} for m in experts]
    a, b = tiny_lora(tmp_path / "high_noise.safetensors", 1), tiny_lora(tmp_path / "low_noise.safetensors", 2)
    pipe.set_loras([(a, 1.0)], [(b, 0.5)])
    q = "blocks.0.attn1.to_q.weight"
    moved = [experts[i].state_dict()[q] - base[i][q] for i in range(2)]
    assert moved[0].abs().max() > 0 and moved[1].abs().max() > 0 and not torch.allclose(moved[0], moved[1])
    pipe.set_loras([])
    for m, before in zip(experts, base, strict=True):
        assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    single = yingxi.load_pipeline(tiny_wan("t2v"))
    with pytest.raises(InputError, match="A14B"):
        single.set_loras([(a, 1.0)], [(b, 1.0)])


def test_unknown_schedule_is_an_input_error(tiny_wan):
    with pytest.raises(InputError, match='did you mean "wan"'):
        yingxi.load_pipeline(tiny_wan("t2v"), schedule="wann")


def test_every_variant_has_a_lightning_row_and_the_names_agree():
    assert PRESET_NAMES == FILM_PRESETS
    for variant in VARIANTS.values():
        row = get_preset("lightning", variant)
        assert (row.steps, row.guidance, row.shift, row.sampler) == (4, 1.0, 5.0, "euler")
        assert bool(row.loras_2) == variant.two_experts
    assert model_family(VARIANTS["wan2.1-i2v-14b-720p"]) == "wan2.1-i2v-14b"
    assert len({(p.name, p.family) for p in PRESETS}) == len(PRESETS)  # one row per model family


def test_preset_loras_are_found_by_name_in_the_comfy_root(tmp_path):
    loras = tmp_path / "models" / "loras"
    (loras / "Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1").mkdir(parents=True)
    high = loras / "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"  # Comfy-Org's name
    high.touch()
    low = loras / "Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1" / "low_noise_model.safetensors"  # lightx2v's
    low.touch()
    row = get_preset("lightning", VARIANTS["wan2.2-i2v-a14b"])
    assert find_preset_loras(row, tmp_path) == ([(high, 1.0)], [(low, 1.0)])
    with pytest.raises(InputError, match="none is published for wan2.2-ti2v-5b"):
        find_preset_loras(get_preset("lightning", VARIANTS["wan2.2-ti2v-5b"]), tmp_path)
    with pytest.raises(InputError, match='did you mean "lightning"'):
        get_preset("lightening", VARIANTS["wan2.2-ti2v-5b"])
