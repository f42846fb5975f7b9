"""Regional compilation of the Wan DiT's blocks: compiled equals eager, one graph serves every block, a
second call compiles nothing, and fp8 QuantLinear blocks compile too.

One inductor compile (float32, mode "default") is the real check; on a 2-core machine it takes 12 s with a
warm inductor cache and 40-150 s cold, so the bf16 + fp8 case traces with backend "aot_eager" (dynamo and
AOTAutograd, the capture that fails on an uncompilable block, without C++ code generation).
`bench/wan_attention.py` measures inductor's bf16 and fp8 outputs against eager.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from yingxi.errors import InputError
from yingxi.models.attention import resolve_attention
from yingxi.models.compile import compile_blocks, parse_compile, uncompile_blocks
from yingxi.models.fp8 import quantize_linears_
from yingxi.models.wan.config import WanDiTConfig
from yingxi.models.wan.dit import WanDiT

sys.path.insert(0, str(Path(__file__).resolve().parent / "wan"))
from tiny import tiny_dit_config  # noqa: E402

# float32: inductor fuses and reorders the block's sums (observed <= 1e-6 on outputs of magnitude ~3).
FP32_TOL = 1e-5
# bf16: one rounding step at the outputs' magnitude (~2-4: 2^-6), as aot_eager's decompositions (layer
# norm, gelu) round differently from the eager kernels (observed <= 1.6e-2).
BF16_TOL = 3.2e-2
LATENT = (1, 16, 2, 8, 12)  # the latent the pipeline tests use too (5 frames, 64x96): one graph for all


def tiny_dit(dtype=torch.float32, seed=0) -> WanDiT:
    torch.manual_seed(seed)
    model = WanDiT(WanDiTConfig.from_diffusers(tiny_dit_config("t2v"))).eval().to(dtype)
    kernel = resolve_attention("auto", "cpu", dtype)  # what the pipeline gives it: the same guards
    model.set_attention(self_attention=kernel, cross_attention=kernel)
    return model


def inputs(seed: int, t: float = 500.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*LATENT, generator=g), torch.tensor([t]), torch.randn(1, 20, 32, generator=g)


def graphs() -> int:
    return int(counters["stats"]["unique_graphs"])


@pytest.fixture(scope="module")
def pair():
    torch._dynamo.reset()  # a fresh cache, so this module's first call is the one that compiles
    eager = tiny_dit()
    compiled = copy.deepcopy(eager)
    stats = compile_blocks(compiled, "default")
    return eager, compiled, stats


def test_compiled_blocks_equal_eager_with_one_graph_and_no_recompile(pair):
    eager, compiled, stats = pair
    assert stats.summary() == "2 blocks to compile (default) on the first call"
    with torch.no_grad():
        before = graphs()
        out = compiled(*inputs(0))
        assert graphs() - before == 1 and stats.graphs == 1  # two blocks, one graph
        assert stats.calls == 2 and stats.seconds > 0
        assert (out - eager(*inputs(0))).abs().max().item() <= FP32_TOL
        again = compiled(*inputs(1, t=120.0))  # new values, same shapes: no recompilation
        assert graphs() - before == 1 and stats.graphs == 1 and stats.calls == 4
        assert (again - eager(*inputs(1, t=120.0))).abs().max().item() <= FP32_TOL
    assert stats.summary().startswith("compiled 1 block graph in ")
    assert compile_blocks(compiled, "default") is stats  # compiling twice keeps the first


def test_compile_modes_are_validated():
    assert (
        parse_compile(True, "cpu") == "default"
        and parse_compile("auto", "cuda") == "max-autotune-no-cudagraphs"
    )
    assert parse_compile("cudagraphs", "cuda") == "max-autotune"
    assert parse_compile(None) is None and parse_compile("none") is None and parse_compile(False) is None
    with pytest.raises(InputError, match="need a CUDA device, not cpu"):
        parse_compile("cudagraphs", "cpu")
    with pytest.raises(InputError, match='did you mean "cudagraphs"'):
        parse_compile("cudagraph", "cuda")
    with pytest.raises(InputError, match="has no blocks"):
        compile_blocks(torch.nn.Linear(2, 2), "default")


def test_bf16_fp8_blocks_compile_and_equal_eager():
    """bf16 activations and fp8 QuantLinear block weights (dequantized to bf16 in each forward) inside the
    compiled block: captured whole (one graph), within one bf16 rounding step of eager."""
    eager = tiny_dit(torch.bfloat16)
    quantize_linears_(eager, lambda name: name.startswith("blocks."))
    compiled = copy.deepcopy(eager)
    stats = compile_blocks(compiled, "default", backend="aot_eager")
    with torch.no_grad():
        ref = eager(*inputs(2))
        out = compiled(*inputs(2))
        before = graphs()
        compiled(*inputs(3, t=50.0))
    assert stats.graphs == 1 and graphs() == before and stats.mode == "aot_eager"
    assert not sum(counters["graph_break"].values())  # no graph breaks anywhere so far
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref.float()).abs().max().item() <= BF16_TOL
    uncompile_blocks(compiled)
    assert "forward" not in compiled.blocks[0].__dict__ and not hasattr(compiled, "compile_stats")
    with torch.no_grad():
        assert torch.equal(compiled(*inputs(2)), ref)
