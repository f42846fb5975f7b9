"""One video across 2 and 4 gloo processes (real ranks on loopback) vs one process, on tiny Wan models.

Each world size is spawned once for the whole module and runs every case in turn. t2v, i2v (CLIP image
tokens, mask + image latents on channels) and ti2v (per-token timesteps, sliced with the tokens), with
and without the guidance split, on token counts that do not divide by the ranks (the padding path).
Tolerance: the sampled latents within atol 2e-5 (float32; only the order of the attention sums differs:
the ring's log-sum-exp merge, the all-to-all's head order), and every rank holds the same latents.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_image
from parallel_cases import run_case, run_cases

from yingxi.models.parallel.launch import spawn_ranks, wait_ranks
from yingxi.models.wan.vae import VAETiling
from yingxi.pipelines.wan.common import video_to_uint8
from yingxi.pipelines.wan.load import load_pipeline

ATOL = 2e-5
PROMPT, NEGATIVE = "a red bird flies over green hills", "blurry, static"


def _call(kind: str, guidance: float, cache: str | None = None) -> dict:
    # 27 tokens (3 latent frames of 3x3 after the 2x2 patch): odd, so 2 and 4 ranks both pad
    width = height = 96 if kind == "ti2v" else 48
    call = dict(prompt=PROMPT, negative_prompt=NEGATIVE, width=width, height=height, num_frames=9,
                num_inference_steps=2, guidance_scale=guidance, seed=3)  # fmt: skip
    if kind in ("i2v", "ti2v"):
        call["image"] = random_image(width, height, seed=5)
    if cache is not None:  # enough steps, and thresholds a tiny random model crosses, for skips to happen
        call.update(cache=cache, num_inference_steps=8)
    return call


CASES = {
    2: [
        ("t2v ulysses=2", "t2v", 5.0, "ulysses=2"),
        ("t2v ring=2", "t2v", 5.0, "ring=2"),
        ("t2v cfg=2", "t2v", 5.0, "cfg=2"),
        ("i2v ulysses=2", "i2v", 5.0, "ulysses=2"),
        ("i2v cfg=2", "i2v", 5.0, "cfg=2"),
        ("ti2v ring=2", "ti2v", 5.0, "ring=2"),
        ("ti2v cfg=2", "ti2v", 5.0, "cfg=2"),
        ("ti2v ulysses=2 no guidance", "ti2v", 1.0, "ulysses=2"),
        ("t2v ulysses=2,vae=2", "t2v", 5.0, "ulysses=2,vae=2"),
        ("t2v ulysses=2 magcache", "t2v", 5.0, "ulysses=2", "magcache:0.5"),
        ("t2v ring=2 fbcache", "t2v", 5.0, "ring=2", "fbcache:0.5"),
        ("ti2v cfg=2 teacache", "ti2v", 5.0, "cfg=2", "teacache:5"),
    ],
    4: [
        ("t2v ulysses=2,ring=2", "t2v", 5.0, "ulysses=2,ring=2"),
        ("t2v ring=4", "t2v", 1.0, "ring=4"),
        ("i2v cfg=2,ulysses=2", "i2v", 5.0, "cfg=2,ulysses=2"),
        ("i2v ulysses=2,ring=2", "i2v", 5.0, "ulysses=2,ring=2"),
        ("ti2v ulysses=2,ring=2", "ti2v", 5.0, "ulysses=2,ring=2"),
        ("ti2v cfg=2,ulysses=2", "ti2v", 5.0, "cfg=2,ulysses=2"),
        ("ti2v cfg=2,ring=2", "ti2v", 5.0, "cfg=2,ring=2"),
        ("ti2v cfg=2,ring=2,vae=4", "ti2v", 5.0, "cfg=2,ring=2,vae=4"),
        ("i2v cfg=2,ulysses=2 fbcache", "i2v", 5.0, "cfg=2,ulysses=2", "fbcache:0.5"),
    ],
}


# A 3x3 grid of tiles over the 48 px (t2v) / 96 px (ti2v) frames, overlapping by half a tile.
TILING = {
    "t2v": VAETiling(32, 32, 16, 16),
    "i2v": VAETiling(32, 32, 16, 16),
    "ti2v": VAETiling(64, 64, 32, 32),
}
# Mean |tiled - untiled| of the decoded frames in uint8 levels, as measured on these random tiny VAEs with
# these small tiles: 9.9 (t2v, 48 px, max 93) and 12.6 (ti2v, 96 px, max 144). The decoder's mid-block
# attention sees the whole frame and random weights amplify every border, so no tiling reproduces the
# untiled decode; what is exact is the split: N ranks give one process's tiled decode bit for bit.
TILED_VS_UNTILED_MEAN = 15.0


@pytest.fixture(scope="module")
def ranks(tiny_wan, tmp_path_factory):
    """(per case: [(job rank, latents, frames, usage) per rank], per (kind, guidance): one process's).

    4 gloo processes are spawned once: the 2-rank cases run two at a time (ranks 0-1 and 2-3), the 4-rank
    ones on all four; this process computes the one-process references while the ranks start.
    """
    out = tmp_path_factory.mktemp("parallel")
    jobs = []
    for i, (name, kind, g, plan, *cache) in enumerate(CASES[2]):
        jobs.append((name, tiny_wan(kind), _call(kind, g, *cache), plan, 2 * (i % 2), TILING[kind]))
    jobs += [(name, tiny_wan(kind), _call(kind, g, *cache), plan, 0, TILING[kind])
             for name, kind, g, plan, *cache in CASES[4]]  # fmt: skip
    context = spawn_ranks(run_cases, 4, jobs, out, join=False)
    reference = {}
    try:
        for cases in CASES.values():
            for _, kind, guidance, _, *cache in cases:
                key = (kind, guidance, *cache)
                if key not in reference:
                    reference[key] = run_case(tiny_wan(kind), _call(kind, guidance, *cache))
    finally:
        wait_ranks(context)
    per_rank = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(4)]
    by_case = {name: [part[name] for part in per_rank if name in part] for name, *_ in jobs}
    return by_case, reference


@pytest.mark.parametrize("world", sorted(CASES))
def test_ranks_sample_the_latents_of_one_process(ranks, world):
    by_case, reference = ranks
    for name, kind, guidance, _, *cache in CASES[world]:
        results = sorted(by_case[name], key=lambda r: r[0])
        assert [r[0] for r in results] == list(range(world)), name
        _, latents, frames, usage = results[0]
        ref_latents, ref_frames, ref_usage = reference[(kind, guidance, *cache)]
        assert latents.shape == ref_latents.shape, name
        diff = (latents - ref_latents).abs().max().item()
        assert diff <= ATOL, f"{name}: latents differ by {diff:.2e}"
        assert latents.abs().max() > 0.1  # real latents
        if ",vae=" not in name:
            assert abs(frames.astype(int) - ref_frames.astype(int)).max() <= 1, name  # rank 0 decodes
        assert usage["evaluations"] == ref_usage["evaluations"], name  # the guidance split counts both
        if cache:  # the same decisions as one process: the cache reads the gathered, whole tensors
            assert usage["skipped"] == ref_usage["skipped"] > 0, (name, usage)
            assert usage["cache"] == ref_usage["cache"] == cache[0], name
        for r in range(1, world):
            assert torch.equal(results[r][1], latents), f"{name}: rank {r} holds other latents"


def test_the_split_vae_decode_is_the_tiled_decode_of_one_process(ranks, tiny_wan):
    """Ranks decode their share of the tiles, rank 0 blends: one process's tiled decode, bit for bit, and
    within TILED_VS_UNTILED_MEAN of the untiled one."""
    by_case, _ = ranks
    for cases in CASES.values():
        for name, kind, _, plan, *_ in cases:
            if ",vae=" not in plan:
                continue
            _, latents, frames, _ = min(by_case[name], key=lambda r: r[0])
            vae = load_pipeline(tiny_wan(kind)).components.vae
            with torch.no_grad():
                tiled = video_to_uint8(vae.decode(latents, tiling=TILING[kind]))
                untiled = video_to_uint8(vae.decode(latents))
            assert np.array_equal(frames, tiled), name
            gap = np.abs(tiled.astype(int) - untiled.astype(int)).mean()
            assert 0 < gap <= TILED_VS_UNTILED_MEAN, f"{name}: tiled vs untiled decode, mean {gap:.2f} levels"
