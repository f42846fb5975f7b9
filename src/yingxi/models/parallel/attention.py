"""Self-attention over a sequence split across ranks: Ulysses (all-to-all over heads; Jacobs et al. 2023,
DeepSpeed-Ulysses) and Ring attention (K/V passed around, partial outputs merged by their log-sum-exp;
Liu et al. 2023), combinable as xDiT's USP (Fang & Zhao 2024). Shape legend: B batch, H heads, Ls tokens
of this rank's shard, Dh head dim; u, r the Ulysses and ring degrees.

The token sequence is padded at its end to a multiple of the ranks; padded keys never enter a softmax: each
K/V block is cut to the keys it really holds before its kernel runs, so no mask is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from yingxi.errors import InputError
from yingxi.models.attention import attention_with_lse  # flash-attn's on CUDA, else float32 in query chunks
from yingxi.models.parallel.mesh import Mesh, all_to_all, ring_exchange
from yingxi.models.wan.attention import AttentionFn

__all__ = ["SequenceParallelAttention", "ShardState", "attention_with_lse", "merge_partial"]


def merge_partial(
    out: Tensor | None, lse: Tensor | None, block_out: Tensor, block_lse: Tensor
) -> tuple[Tensor, Tensor]:
    """Merge softmax attention over disjoint key sets: each side weighted by exp(its lse - joint lse)."""
    if out is None or lse is None:
        return block_out, block_lse
    joint = torch.logaddexp(lse, block_lse)  # (B, H, Lq)
    merged = out * torch.exp(lse - joint).unsqueeze(-1) + block_out * torch.exp(block_lse - joint).unsqueeze(
        -1
    )
    return merged, joint


@dataclass
class ShardState:
    """Set by the sharding hook for one forward: how long the real sequence is and each rank's share."""

    valid: int = 0  # real tokens of the whole sequence (the rest is end padding)
    block: int = 0  # tokens per sequence rank (padded length / (ulysses * ring))
    active: bool = False  # True only while the sharding hook runs the blocks on a shard


class SequenceParallelAttention:
    """The attention_fn of one self-attention module under a plan: q/k/v of this rank's token shard in,
    this shard's output out; `inner` (the module's own kernel) runs where there is no ring."""

    def __init__(self, mesh: Mesh, inner: AttentionFn, state: ShardState, heads: int):
        u = mesh.plan.ulysses
        if heads % u:
            raise InputError(
                f"ulysses={u} splits the attention heads across ranks, but the model has {heads} heads, "
                f"which {u} does not divide (use a divisor of {heads}, or ring= for the rest)",
                field="parallel",
            )
        self.mesh, self.inner, self.state = mesh, inner, state

    def __call__(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if not self.state.active:
            raise InputError(
                "this transformer is set up for sequence parallelism, but its blocks ran outside the "
                "sharding hook (a blocks hook in front of it must hand it the blocks to run, as the step "
                "caches do)",
                field="cache",
            )
        mesh, u = self.mesh, self.mesh.plan.ulysses
        if u > 1:
            q, k, v = (self._heads_to_tokens(t) for t in (q, k, v))  # (B, H/u, u*Ls, Dh)
        span = self.state.block * u  # tokens of one ring block
        if mesh.plan.ring == 1:
            keys = self._valid_keys(0, span)
            out = self.inner(q, k[:, :, :keys], v[:, :, :keys])  # (B, H/u, u*Ls, Dh)
        else:
            out = self._ring(q, k, v, span).to(q.dtype)  # (B, H/u, u*Ls, Dh)
        return self._tokens_to_heads(out) if u > 1 else out  # (B, H, Ls, Dh)

    def _valid_keys(self, ring_block: int, span: int) -> int:
        """How many of ring block `ring_block`'s `span` keys are real tokens (padding sits at the end)."""
        return max(0, min(span, self.state.valid - ring_block * span))

    def _ring(self, q: Tensor, k: Tensor, v: Tensor, span: int) -> Tensor:
        """Attention of this rank's queries over every ring block's keys, one block per step, float32."""
        mesh = self.mesh
        r, me = mesh.plan.ring, mesh.ring_rank
        kv = torch.stack([k, v])  # (2, B, H', span, Dh)
        out = lse = None
        for step in range(r):
            pending = ring_exchange(kv, mesh) if step < r - 1 else None  # overlaps the block's maths
            keys = self._valid_keys((me - step) % r, span)  # block held now: the one from `step` ranks back
            if keys > 0:
                block_out, block_lse = attention_with_lse(q, kv[0, :, :, :keys], kv[1, :, :, :keys])
                out, lse = merge_partial(out, lse, block_out.float(), block_lse)  # merged in float32
            if pending is not None:
                for request in pending[0]:
                    request.wait()
                kv = pending[1]
        assert out is not None  # block 0's keys are real: every ring holds at least one real token
        return out

    def _heads_to_tokens(self, x: Tensor) -> Tensor:
        """(B, H, Ls, Dh) on each of u ranks -> (B, H/u, u*Ls, Dh): my heads of the whole Ulysses span."""
        u = self.mesh.plan.ulysses
        b, h, ls, dh = x.shape
        x = x.reshape(b, u, h // u, ls, dh).transpose(0, 1)  # (u, B, H/u, Ls, Dh): chunk i to rank i
        x = all_to_all(x, self.mesh.ulysses_group)  # (u, B, H/u, Ls, Dh): chunk i from rank i
        return x.permute(1, 2, 0, 3, 4).reshape(b, h // u, u * ls, dh)  # (B, H/u, u*Ls, Dh)

    def _tokens_to_heads(self, x: Tensor) -> Tensor:
        """Inverse of `_heads_to_tokens`: (B, H/u, u*Ls, Dh) -> (B, H, Ls, Dh)."""
        u = self.mesh.plan.ulysses
        b, hu, uls, dh = x.shape
        x = x.reshape(b, hu, u, uls // u, dh).permute(
            2, 0, 1, 3, 4
        )  # (u, B, H/u, Ls, Dh): tokens i to rank i
        x = all_to_all(x, self.mesh.ulysses_group)  # (u, B, H/u, Ls, Dh): head chunk i from rank i
        return x.transpose(0, 1).reshape(b, u * hu, uls // u, dh)  # (B, H, Ls, Dh)
