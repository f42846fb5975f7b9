"""One Wan DiT call across the ranks of a plan, through the DiT's own seams (no monkeypatching).

`shard_transformer` gives every block's self-attention a `SequenceParallelAttention` around its own kernel
and makes the DiT's `blocks_hook` the sharding step: the embedded inputs of one call are cut to this rank's
guidance branch (cfg) and token shard (ulysses x ring) - the RoPE tables and per-token timesteps (TI2V's
temb/temb6 of shape (B, L, ...)) with the tokens - the blocks run on the shard, and the tokens are gathered
back (sequence, then batch) before the head, which every rank runs on the whole batch.
Cross-attention needs no communication: the text/image keys are whole on every rank.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from yingxi.models.parallel.attention import SequenceParallelAttention, ShardState
from yingxi.models.parallel.mesh import Mesh, all_gather_cat
from yingxi.models.wan.dit import BlockInputs, WanDiT

__all__ = ["SequenceShardHook", "shard_transformer"]


def _pad_tokens(x: Tensor, dim: int, padded: int) -> Tensor:
    """x with zeros appended along `dim` up to `padded` entries."""
    extra = padded - x.shape[dim]
    if extra == 0:
        return x
    pad = [0, 0] * (x.ndim - 1 - dim) + [0, extra]
    return F.pad(x, pad)


class SequenceShardHook:
    """A `WanDiT.blocks_hook`: the block stack of one call on this rank's share of batch and tokens."""

    def __init__(self, mesh: Mesh, state: ShardState):
        self.mesh, self.state = mesh, state
        self.calls = 0  # transformer calls this rank ran its share of (the summary names the ranks)

    def __call__(
        self,
        model: WanDiT,
        inputs: BlockInputs,
        x: Tensor | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Tensor:
        """Blocks [start, stop) on `x` (default: inputs.x), as `WanDiT.run_blocks` (a step cache in front of
        this hook runs part of the stack at a time), sharded; the whole (B, L, D) back on every rank."""
        mesh, plan = self.mesh, self.mesh.plan
        if x is not None:
            inputs = inputs._replace(x=x)
        self.calls += start == 0  # a transformer call (a cache's second part of the stack is the same call)
        batch, length = inputs.x.shape[:2]
        split_batch = plan.cfg > 1 and batch % plan.cfg == 0  # guidance 1 has one branch: every group runs it
        if split_batch:
            inputs = self._branch(inputs, batch // plan.cfg)
        n = plan.sequence
        block = -(-length // n)  # ceil(L / n) tokens per sequence rank
        lo, hi = mesh.sequence_rank * block, (mesh.sequence_rank + 1) * block
        per_token = inputs.temb.ndim == 3

        def shard(t: Tensor, dim: int) -> Tensor:
            return _pad_tokens(t, dim, block * n).narrow(dim, lo, hi - lo)

        local = BlockInputs(
            x=shard(inputs.x, 1),  # (B', Ls, D)
            text=inputs.text,
            image=inputs.image,
            temb=shard(inputs.temb, 1) if per_token else inputs.temb,  # (B', Ls, D) | (B', D)
            temb6=shard(inputs.temb6, 1) if per_token else inputs.temb6,  # (B', Ls, 6, D) | (B', 6, D)
            rope=(shard(inputs.rope[0], 0), shard(inputs.rope[1], 0)),  # 2 x (Ls, Dh/2)
        )
        self.state.valid, self.state.block, self.state.active = length, block, True
        try:
            x = model.run_blocks(local, start=start, stop=stop)  # (B', Ls, D)
        finally:
            self.state.active = False
        x = all_gather_cat(x, mesh.sequence_group, dim=1)[:, :length]  # (B', L, D)
        if split_batch:
            x = all_gather_cat(x, mesh.cfg_group, dim=0)  # (B, L, D), cond first as batched guidance stacks
        return x

    def _branch(self, inputs: BlockInputs, per_group: int) -> BlockInputs:
        """The rows of the batch (cond first, then uncond) that this rank's cfg group runs."""
        lo = self.mesh.cfg_rank * per_group

        def rows(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[lo : lo + per_group]

        return BlockInputs(
            rows(inputs.x), rows(inputs.text), rows(inputs.image), rows(inputs.temb), rows(inputs.temb6),
            inputs.rope,
        )  # fmt: skip


def shard_transformer(model: WanDiT, mesh: Mesh) -> WanDiT:
    """Set `model` up to run each call across the mesh (once; the same model object is returned)."""
    if isinstance(model.blocks_hook, SequenceShardHook):
        return model
    state = ShardState()
    heads = model.config.num_attention_heads
    if mesh.plan.sequence > 1:
        for block in model.blocks:
            block.attn1.attention_fn = SequenceParallelAttention(mesh, block.attn1.attention_fn, state, heads)
    model.blocks_hook = SequenceShardHook(mesh, state)
    return model
