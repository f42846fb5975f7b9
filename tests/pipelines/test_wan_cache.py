"""Step caches (fbcache, magcache, teacache) against diffusers' own hooks and a reference of TeaCache's
published rule, on a tiny random Wan transformer driven by the same guided Euler loop; batched guidance
against two calls."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
from tiny import TEXT_DIM, tiny_transformer  # noqa: E402

from yingxi.errors import InputError  # noqa: E402
from yingxi.models.wan.loading import load_transformer  # noqa: E402
from yingxi.pipelines.wan.cache import (  # noqa: E402
    CacheSpec,
    StepCache,
    magcache_plan,
    nearest_interp,
    parse_cache,
    use_cache,
)
from yingxi.pipelines.wan.cache_tables import MAG_RATIOS, TEA_COEFFICIENTS  # noqa: E402

# float32, same blocks in the same order; the only difference is where the residual is added back
# (observed <= 2.2e-6 on these latents of magnitude ~3)
FP32_TOL = 1e-5
STEPS = 10
SCALE = 4.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(diffusers reference, ours) with the same weights; the reference gets a fresh copy per hook."""
    folder = tmp_path_factory.mktemp("cache") / "t2v"
    tiny_transformer("t2v").save_pretrained(folder)
    return folder, load_transformer(folder, dtype="fp32")


def _inputs():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 16, 3, 8, 12, generator=g)
    cond = torch.randn(1, 512, TEXT_DIM, generator=g)
    cond[:, 12:] = 0
    uncond = torch.randn(1, 512, TEXT_DIM, generator=g)
    uncond[:, 5:] = 0
    s = torch.linspace(1, 0, STEPS + 1)
    sigmas = 3.0 * s / (1 + 2.0 * s)  # shift 3
    return x0, cond, uncond, sigmas


def guided_loop(call) -> torch.Tensor:
    """Euler flow sampling with CFG, cond then uncond per step; call(x, t, text, branch) -> velocity."""
    x, cond, uncond, sigmas = _inputs()
    with torch.no_grad():
        for i in range(STEPS):
            t = (sigmas[i] * 1000).reshape(1)
            v_cond, v_uncond = call(x, t, cond, "cond"), call(x, t, uncond, "uncond")
            x = x + (sigmas[i + 1] - sigmas[i]) * (v_uncond + SCALE * (v_cond - v_uncond))
    return x


def ours_loop(model, cache):
    def call(x, t, text, branch):
        with use_cache(model, cache, branch):
            return model(x, t, text)

    return guided_loop(call)


def reference_loop(folder, apply, config):
    """diffusers' hook on the reference; returns (latents, {branch: steps whose tail block did not run})."""
    from diffusers import WanTransformer3DModel

    ref = WanTransformer3DModel.from_pretrained(folder).eval()
    ran: list[bool] = []
    ref.blocks[-1].ffn.register_forward_hook(lambda *a: ran.append(True))
    apply(ref, config)
    steps: dict[str, int] = {"cond": 0, "uncond": 0}
    skipped: dict[str, list[int]] = {}

    def call(x, t, text, branch):
        before = len(ran)
        with ref.cache_context(branch):
            out = ref(x, t, text, return_dict=False)[0]
        if len(ran) == before:
            skipped.setdefault(branch, []).append(steps[branch])
        steps[branch] += 1
        return out

    return guided_loop(call), skipped


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.2])
def test_fbcache_matches_diffusers_first_block_cache(models, threshold):
    from diffusers.hooks import FirstBlockCacheConfig, apply_first_block_cache

    folder, ours = models
    cache = StepCache(CacheSpec("fbcache", threshold), STEPS)
    got = ours_loop(ours, cache)
    want, skipped = reference_loop(
        folder, apply_first_block_cache, FirstBlockCacheConfig(threshold=threshold)
    )
    assert cache.skipped_steps == skipped
    assert (got - want).abs().max().item() <= FP32_TOL
    assert cache.ran + cache.skipped == 2 * STEPS


def test_fbcache_skips_and_changes_the_result(models):
    folder, ours = models
    cache = StepCache(CacheSpec("fbcache", 0.1), STEPS)
    cached, full = ours_loop(ours, cache), ours_loop(ours, None)
    assert 0 < cache.skipped < 2 * STEPS
    assert (cached - full).abs().max().item() > 1e-3  # skipping is not free: a real approximation


@pytest.mark.parametrize("threshold", [0.02, 0.06, 0.2])
def test_magcache_matches_diffusers_mag_cache(models, threshold):
    from diffusers.hooks import MagCacheConfig, apply_mag_cache

    folder, ours = models
    ratios = nearest_interp(MAG_RATIOS["t2v-1.3B"][0::2], STEPS)  # the published Wan ratios (cond)
    cache = StepCache(CacheSpec("magcache", threshold), STEPS, mag_ratios=ratios)
    got = ours_loop(ours, cache)
    config = MagCacheConfig(threshold=threshold, num_inference_steps=STEPS, mag_ratios=ratios)
    want, skipped = reference_loop(folder, apply_mag_cache, config)
    assert cache.skipped_steps == skipped
    assert cache.skipped > 0
    assert (got - want).abs().max().item() <= FP32_TOL


def test_magcache_uses_each_branchs_published_ratios(models):
    _, ours = models
    cache = StepCache(CacheSpec("magcache", 0.06), STEPS, table="t2v-1.3B")
    ours_loop(ours, cache)
    for branch in ("cond", "uncond"):  # the table interleaves cond, uncond: each branch reads its own
        assert cache.skipped_steps[branch] == magcache_plan(cache.spec, "t2v-1.3B", STEPS, branch)
    assert all(s >= 2 for s in cache.skipped_steps["cond"])  # retention: 20% of 10 steps never skip
    assert MAG_RATIOS["t2v-1.3B"][2::2] != MAG_RATIOS["t2v-1.3B"][3::2]


@pytest.mark.parametrize("name", ["fbcache", "magcache", "teacache"])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_few_steps_run_without_skipping_blind(models, name, steps):
    """A 1-4 step shot (lightning): nothing to reuse at first, retention windows longer than the shot."""
    _, ours = models
    cache = StepCache(CacheSpec(name, 10.0), steps, table="t2v-1.3B")
    x, cond, _, _ = _inputs()
    with torch.no_grad():
        for i in range(steps):
            with use_cache(ours, cache, "cond"):
                out = ours(x, torch.tensor([900.0 - 200 * i]), cond)
            assert torch.isfinite(out).all()
    assert cache.ran >= 1 and cache.ran + cache.skipped == steps
    assert 0 not in cache.skipped_steps.get("cond", [])  # the first call always runs every block


def test_use_cache_needs_a_blocks_hook():
    with pytest.raises(InputError, match="blocks hook"):
        with use_cache(torch.nn.Linear(2, 2), StepCache(CacheSpec("fbcache", 0.1), 4), "cond"):
            pass


def teacache_reference(model, coefficients, threshold, retention, cutoff):
    """TeaCache's published rule for Wan (ali-vilab/TeaCache, TeaCache4Wan2.1/teacache_generate.py,
    written here from the paper's description: Liu et al. 2024, arXiv:2411.19108): per branch, accumulate
    poly(rel_l1(e, e_prev)) over steps; recompute when the sum reaches the threshold (then reset it), and
    always in the first `retention` and from the `cutoff` step on; otherwise add the last residual.
    The blocks are run through a plain copy of the DiT forward with the hook as the block loop."""
    poly = torch.tensor(coefficients, dtype=torch.float64)
    state: dict[str, dict] = {}
    skipped: dict[str, list[int]] = {}

    def hook(dit, inputs):
        st = state.setdefault(branch[0], {"step": 0, "acc": 0.0, "prev": None, "res": None})
        e = inputs.temb
        compute = True
        if retention <= st["step"] < cutoff:
            x = ((e - st["prev"]).abs().mean() / st["prev"].abs().mean()).double()
            st["acc"] += float(sum(c * x ** (len(poly) - 1 - k) for k, c in enumerate(poly)))
            compute = st["acc"] >= threshold
        if compute:
            st["acc"] = 0.0
        st["prev"] = e
        if compute:
            out = inputs.x
            for block in dit.blocks:
                out = block(out, inputs.text, inputs.image, inputs.temb6, inputs.rope)
            st["res"] = out - inputs.x
        else:
            out = inputs.x + st["res"]
            skipped.setdefault(branch[0], []).append(st["step"])
        st["step"] += 1
        return out

    branch = ["cond"]

    def call(x, t, text, b):
        branch[0] = b
        model.blocks_hook = hook
        try:
            return model(x, t, text)
        finally:
            model.blocks_hook = None

    return guided_loop(call), skipped


@pytest.mark.parametrize("threshold", [0.05, 0.2])
def test_teacache_matches_reference_rule(models, threshold):
    _, ours = models
    coefficients, source = TEA_COEFFICIENTS["i2v-480P"]  # the "e" fit: rescaled values > 0 on tiny inputs
    assert source == "e"
    cache = StepCache(CacheSpec("teacache", threshold), STEPS, table="i2v-480P")
    got = ours_loop(ours, cache)
    want, skipped = teacache_reference(ours, coefficients, threshold, retention=1, cutoff=STEPS - 1)
    full = ours_loop(ours, None)
    assert cache.skipped_steps == skipped
    assert 0 < cache.skipped < 2 * STEPS
    assert (got - want).abs().max().item() <= FP32_TOL
    assert (got - full).abs().max().item() > 1e-3
    assert all(1 <= s < STEPS - 1 for s in cache.skipped_steps["cond"])


def test_parse_cache():
    assert parse_cache("magcache") == CacheSpec("magcache", 0.06)
    assert parse_cache("TeaCache:0.3") == CacheSpec("teacache", 0.3)
    assert parse_cache("none") is None and parse_cache(None) is None
    assert str(parse_cache("fbcache:0.08")) == "fbcache:0.08"
    with pytest.raises(InputError, match="magcache") as bad:
        parse_cache("magcach")
    assert bad.value.field == "cache"
    for bad_threshold in ("magcache:x", "magcache:-1", "magcache:0", "magcache:inf"):
        with pytest.raises(InputError, match="threshold"):
            parse_cache(bad_threshold)
