"""The shard plan as data (`--parallel`), the log-sum-exp attention the ring merges with, and the errors a
person gets for a plan that cannot run - all in this process, no ranks needed."""

import pytest
import torch
import torch.nn.functional as F

from yingxi.errors import InputError
from yingxi.models.parallel.attention import (
    SequenceParallelAttention,
    ShardState,
    attention_with_lse,
    merge_partial,
)
from yingxi.models.parallel.mesh import Mesh
from yingxi.models.parallel.plan import ParallelPlan, default_plan, parse_parallel
from yingxi.models.wan.attention import attention


def test_parse_parallel_reads_every_degree_in_any_order():
    plan = parse_parallel("cfg=2, ring=2,ulysses=4")
    assert plan == ParallelPlan(ulysses=4, ring=2, cfg=2) and plan.world_size == 16 and plan.sequence == 8
    assert str(plan) == "ulysses=4,ring=2,cfg=2"
    assert parse_parallel(str(plan)) == plan
    assert parse_parallel("none") == parse_parallel("") == parse_parallel(None) == ParallelPlan()
    assert parse_parallel("ring=2,vae=2").vae == 2
    assert default_plan(4) == ParallelPlan(ulysses=4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("ulyses=2", 'unknown parallel degree "ulyses" (did you mean "ulysses"?)'),
        ("ring=0", '"ring=0": give ring=N with N a whole number >= 1'),
        ("ring", '"ring": give ring=N with N a whole number >= 1'),
        ("ring=two", '"ring=two": give ring=N'),
        ("ring=2,ring=2", "ring is given twice"),
        ("cfg=4", "cfg=4: guidance has two branches (cond, uncond), so cfg is 1 or 2"),
        ("ulysses=2,vae=4", "vae=4: the decode can be split across at most the 2 ranks"),
    ],
)
def test_a_bad_plan_names_the_field_and_what_is_wrong(text, message):
    with pytest.raises(InputError) as e:
        parse_parallel(text, field="--parallel")
    assert e.value.field == "--parallel" and message in e.value.message


def test_the_degrees_must_multiply_to_the_world_size():
    with pytest.raises(InputError) as e:
        parse_parallel("ulysses=2,ring=2,cfg=2").check_world(4, field="--gpus")
    assert e.value.field == "--gpus"
    assert e.value.message == (
        "ulysses=2 x ring=2 x cfg=2 multiplies to 8, but 4 ranks run; the degrees must multiply to the world size"
    )


def test_ranks_are_laid_out_cfg_major_ulysses_innermost():
    plan = ParallelPlan(ulysses=2, ring=2, cfg=2)
    assert [plan.coordinates(r) for r in range(8)] == [
        (0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1),
    ]  # fmt: skip


def test_attention_with_lse_matches_sdpa_and_merges_over_key_blocks():
    """float32: out within 1e-5 of SDPA's math; the merge of 3 key blocks equals attention over all keys."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 16, generator=g) for _ in range(3))
    k, v = torch.randn(2, 3, 11, 16, generator=g), torch.randn(2, 3, 11, 16, generator=g)
    out, lse = attention_with_lse(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)
    scores = q @ k.transpose(-1, -2) / 4.0
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=-1), atol=1e-5, rtol=1e-5)
    merged = merged_lse = None
    for lo, hi in ((0, 4), (4, 5), (5, 11)):
        part = attention_with_lse(q, k[:, :, lo:hi], v[:, :, lo:hi])
        merged, merged_lse = merge_partial(merged, merged_lse, *part)
    torch.testing.assert_close(merged, out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(merged_lse, lse, atol=1e-5, rtol=1e-5)


def _mesh(plan: ParallelPlan) -> Mesh:
    return Mesh(plan, 0, 0, 0, 0, 0, None, None, (0,), None, None, None)


def test_ulysses_refuses_heads_it_does_not_divide():
    with pytest.raises(InputError) as e:
        SequenceParallelAttention(_mesh(ParallelPlan(ulysses=4)), attention, ShardState(), heads=2)
    assert e.value.field == "parallel"
    assert "ulysses=4 splits the attention heads across ranks, but the model has 2 heads" in e.value.message


def test_sharded_attention_outside_the_sharding_hook_is_refused():
    """A blocks hook that ran the blocks itself instead of handing them to the shard would attend over a
    whole sequence that the wrapper takes for a shard. That is an error, not a wrong picture."""
    fn = SequenceParallelAttention(_mesh(ParallelPlan(ring=2)), attention, ShardState(), heads=2)
    q = torch.zeros(1, 2, 4, 8)
    with pytest.raises(InputError) as e:
        fn(q, q, q)
    assert e.value.field == "cache" and "ran outside the sharding hook" in e.value.message


def test_a_runtime_s_parallel_plan_is_checked_by_this_build_s_parser():
    """`check_supported` finds `parse_parallel` (a worker's --parallel once stopped at "not in this build")."""
    from yingxi.pipelines.runtime import Runtime, check_supported

    check_supported(Runtime(parallel="ulysses=2,cfg=2"))
    with pytest.raises(InputError) as e:
        check_supported(Runtime(parallel="ulysess=2"))
    assert "ulysses" in e.value.message
