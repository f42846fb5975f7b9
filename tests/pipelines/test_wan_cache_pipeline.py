"""Batched guidance and step caches through WanPipeline / WanGenerator / the CLI on tiny models: the same
latents as two calls, the evaluations that ran and were skipped counted per shot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import random_image, random_latents

from yingxi.backends.base import ClipRequest
from yingxi.backends.wan import WanGenerator
from yingxi.cli import main
from yingxi.errors import CapabilityError, InputError
from yingxi.pipelines.wan import load_pipeline
from yingxi.pipelines.wan.cache import CacheSpec, magcache_plan
from yingxi.samplers import cfg_denoiser

# float32: a batch of 2 runs the same maths per sample; only BLAS blocking may differ (observed <= 1e-6)
FP32_TOL = 1e-5
STEPS = 6


@pytest.mark.parametrize("kind", ["t2v", "i2v", "flf2v", "ti2v"])
def test_batched_guidance_matches_two_calls(tiny_wan, kind):
    """The velocity of every guided step: one call on a batch of 2 = two calls, within FP32_TOL."""
    pipe = load_pipeline(tiny_wan(kind))
    size, frames = (64, 64), 5
    shape = random_latents(kind, *size, frames).shape
    image = random_image(*size, seed=1)
    run = dict(
        image=image if kind != "t2v" else None, last_image=image[::-1].copy() if kind == "flf2v" else None
    )
    from yingxi.pipelines.wan.common import join_contexts

    inputs = pipe._task_inputs(kind, _run(pipe, size, frames, **run), shape)
    from yingxi.samplers import flow_schedule

    schedule = flow_schedule(STEPS, 3.0)
    g = torch.Generator().manual_seed(2)
    cond = torch.randn(1, 20, 32, generator=g)
    uncond = torch.randn(1, 7, 32, generator=g)  # a shorter context: padded to the longer
    usage = {"evaluations": 0, "skipped": 0, "calls": 0}
    model_fn = pipe._model_fn("transformer", inputs, schedule, None, usage, cond, uncond)
    two = cfg_denoiser(model_fn, cond, uncond, 5.0)
    one = cfg_denoiser(model_fn, cond, uncond, 5.0, batch=join_contexts)
    x = random_latents(kind, *size, frames, seed=3)
    for sigma in schedule.sigmas[:3]:
        want, got = two(x, sigma), one(x, sigma)
        assert (got - want).abs().max().item() <= FP32_TOL
        assert want.abs().max().item() > 0.1
    assert usage == {"evaluations": 12, "skipped": 0, "calls": 9}  # 3 steps: 6 + 3 calls, 2 passes each


def _run(pipe, size, frames, image=None, last_image=None):
    from yingxi.pipelines.wan.pipeline import _Run

    return _Run(None, None, None, None, image, last_image, *size, frames, STEPS, 5.0, 5.0, 3.0, 0, None,
                "unipc", "wan", None)  # fmt: skip


def test_batched_pipeline_counts_one_call_per_guided_step(tiny_wan):
    folder = tiny_wan("t2v")
    latents = random_latents("t2v", 64, 64, 5)
    args = dict(prompt="a cat", width=64, height=64, num_frames=5, num_inference_steps=STEPS, latents=latents)
    two, one = load_pipeline(folder), load_pipeline(folder, batched_guidance=True)
    assert not two.batched_guidance  # the CPU default: diffusers' call sequence
    a, b = two(**args), one(**args)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # uint8 frames: rounding of 1e-6 latents
    assert two.last_usage == {"evaluations": 12, "skipped": 0, "calls": 12, "cache": None}
    assert one.last_usage == {"evaluations": 12, "skipped": 0, "calls": 6, "cache": None}


@pytest.mark.parametrize("batched", [False, True])
def test_magcache_skips_what_was_planned(tiny_wan, batched):
    folder = tiny_wan("t2v")
    pipe = load_pipeline(folder, cache="magcache", batched_guidance=batched)
    steps = 12
    latents = random_latents("t2v", 64, 64, 5)
    cached = pipe(
        prompt="a cat", width=64, height=64, num_frames=5, num_inference_steps=steps, latents=latents
    )
    usage = pipe.last_usage
    spec = CacheSpec("magcache", 0.06)
    planned = len(magcache_plan(spec, "t2v-1.3B", steps, "cond"))
    planned += len(magcache_plan(spec, "t2v-1.3B", steps, "cond" if batched else "uncond"))
    assert usage["cache"] == "magcache:0.06"
    assert usage["skipped"] == planned > 0
    assert usage["evaluations"] + usage["skipped"] == 2 * steps
    full = pipe(prompt="a cat", width=64, height=64, num_frames=5, num_inference_steps=steps, latents=latents,
                cache="none")  # fmt: skip
    assert pipe.last_usage["skipped"] == 0 and pipe.last_usage["cache"] is None
    assert np.abs(cached.astype(int) - full.astype(int)).max() > 0  # an approximation, not a no-op


def test_generator_counts_and_plans_skips(tiny_wan):
    gen = WanGenerator(tiny_wan("t2v"), device="cpu", steps=10, cache="magcache")
    request = ClipRequest(prompt="a kite", width=64, height=64, num_frames=5, fps=16, seed=1)
    planned = gen.planned_skips(request)
    clip = gen.generate(request)
    assert clip.skipped == planned > 0
    assert clip.evaluations + clip.skipped == gen.evaluations(request) == 20
    off = ClipRequest(
        prompt="a kite", width=64, height=64, num_frames=5, fps=16, seed=1, options={"cache": "none"}
    )
    assert gen.planned_skips(off) is None
    clip = gen.generate(off)
    assert clip.skipped is None and clip.evaluations == 20
    tea = ClipRequest(
        prompt="a kite", width=64, height=64, num_frames=5, fps=16, seed=1, options={"cache": "teacache"}
    )
    assert gen.planned_skips(tea) == "at run time"
    with pytest.raises(CapabilityError):
        gen.check(
            ClipRequest(prompt="a", width=64, height=64, num_frames=5, fps=16, seed=1, options={"cach": 1})
        )
    with pytest.raises(InputError, match="closest|magcache|fbcache|teacache") as bad:
        gen.check(
            ClipRequest(
                prompt="a", width=64, height=64, num_frames=5, fps=16, seed=1, options={"cache": "mag"}
            )
        )
    assert bad.value.field == "options"


def test_cli_generate_and_plan_report_the_cache(tiny_wan, tmp_path, capsys):
    folder = str(tiny_wan("t2v"))
    base = ["--backend", "wan", "--model", folder, "--size", "64x64", "--fps", "16", "--duration", "0.25",
            "--steps", "10", "--cache", "magcache", "--device", "cpu"]  # fmt: skip
    assert main(["plan", "A kite.", *base, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["shots"]
    assert row["evaluations"] == 20 and row["skipped"] > 0
    out = tmp_path / "kite.mp4"
    assert main(["generate", "A kite.", *base, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    ran = 20 - row["skipped"]
    assert f"transformer evaluations: {ran} (per shot: {ran})" in printed
    assert f"skipped by the step cache: {row['skipped']} (per shot: {row['skipped']})" in printed
    assert main(["generate", "A kite.", *base[:-4], "--cache", "bogus", "-o", str(out)]) == 2
    assert "cache" in capsys.readouterr().err


def test_a14b_caches_each_expert_from_the_clips_step(tiny_wan):
    """Each expert has its own cache; the low-noise one counts steps from the switch, as the clip does."""
    pipe = load_pipeline(tiny_wan("a14b-t2v"), cache="magcache")
    steps = 12
    latents = random_latents("t2v", 64, 64, 5)
    pipe(prompt="a cat", width=64, height=64, num_frames=5, num_inference_steps=steps, latents=latents)
    usage = pipe.last_usage
    assert usage["evaluations"] + usage["skipped"] == pipe.evaluations(num_inference_steps=steps) == 2 * steps
    spec = CacheSpec("magcache", 0.06)
    planned = sum(len(magcache_plan(spec, "t2v-1.3B", steps, b)) for b in ("cond", "uncond"))
    # the high-noise expert's early steps are in the 20% retention; the low-noise expert, starting at the
    # switch, may skip from its first call on only because its step index is the clip's
    assert 0 < usage["skipped"] <= planned
