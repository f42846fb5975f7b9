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
from yingxi.samplers import step_list_schedule

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


def recording(model):
    """The timesteps a transformer is called with, one per forward (its real forward runs)."""
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(float(args[1].flatten()[0])))
    return seen


@pytest.mark.parametrize("kind", ["t2v", "ti2v", "a14b-t2v"])
def test_preset_lightning_calls_the_transformer_at_the_distillation_timesteps(tiny_wan, tmp_path, kind):
    # LightX2V's WanStepDistillScheduler on denoising_step_list [1000, 750, 500, 250] with sample_shift 5
    # (lightx2v/models/schedulers/wan/step_distill/scheduler.py; reproduced value for value in
    # tests/samplers/test_step_distill_schedule.py): float timesteps, the high-noise expert on the first two
    from yingxi.backends.base import ClipRequest
    from yingxi.backends.wan import WanGenerator

    expected = step_list_schedule([1000, 750, 500, 250], 5.0).timesteps.tolist()
    pipe = yingxi.load_pipeline(tiny_wan(kind))
    high = recording(pipe.components.transformer)
    low = recording(pipe.components.transformer_2) if pipe.components.transformer_2 is not None else []
    loras = [(tiny_lora(tmp_path / "x_high_noise.safetensors", 1), 1.0)]
    if kind.startswith("a14b"):
        loras.append((tiny_lora(tmp_path / "x_low_noise.safetensors", 2), 1.0))
    backend = WanGenerator(pipe, preset="lightning", loras=loras)
    request = ClipRequest(
        prompt="a kite", width=W, height=H, num_frames=F, fps=16, seed=0, preset="lightning"
    )
    clip = backend.generate(request)
    assert high + low == expected and clip.evaluations == 4  # guidance 1: one pass a step
    assert (high, low) == ((expected[:2], expected[2:]) if low else (expected, []))
    # a --steps override of the preset leaves the step list for the schedule's own grid
    high.clear()
    low.clear()
    backend.generate(ClipRequest(prompt="a kite", width=W, height=H, num_frames=F, fps=16, seed=0,
                                 preset="lightning", steps=3))  # fmt: skip
    assert len(high + low) == 3 and high[0] == 1000.0 and high + low != expected[:3]


def test_a_step_list_of_another_length_than_the_steps_is_an_input_error(tiny_wan):
    pipe = yingxi.load_pipeline(tiny_wan("t2v"))
    embeds = torch.zeros(1, 512, 32)
    with pytest.raises(InputError, match="denoising_step_list"):
        pipe(prompt_embeds=embeds, width=W, height=H, num_frames=F, guidance_scale=1.0, num_inference_steps=3,
             denoising_step_list=[1000, 750, 500, 250])  # fmt: skip
    with pytest.raises(InputError, match="descending"):
        pipe(prompt_embeds=embeds, width=W, height=H, num_frames=F, guidance_scale=1.0,
             denoising_step_list=[250, 500])  # fmt: skip
