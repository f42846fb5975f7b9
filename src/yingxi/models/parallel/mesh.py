"""The process groups of a `ParallelPlan` and the few collectives sequence parallelism needs.

A job's ranks are global ranks [first_rank, first_rank + plan.world_size) of the default group (all of it
under torchrun and `--gpus`; a slice of it where one set of processes runs several jobs side by side, as the
tests do). Each rank creates only the groups it belongs to (`use_local_synchronization`), in one order. Collectives on tensors run on the default backend (nccl on
CUDA, gloo on the CPU); Python objects (shot requests, VAE tiles) go over a gloo group on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from yingxi.models.parallel.plan import ParallelPlan

__all__ = ["Mesh", "all_gather_cat", "all_to_all", "ring_exchange"]


@dataclass(frozen=True)
class Mesh:
    """This rank's place in the plan and the groups it talks over (None where the degree is 1)."""

    plan: ParallelPlan
    rank: int  # within the job: 0 is the rank that writes the output
    first_rank: int  # global rank of the job's rank 0
    cfg_rank: int
    ring_rank: int
    ulysses_rank: int
    ulysses_group: Any
    ring_group: Any
    ring_ranks: tuple[int, ...]  # global ranks of this rank's ring, in ring order
    sequence_group: Any  # the ulysses * ring ranks that share one sample's tokens
    cfg_group: Any
    control: Any  # gloo group of every rank, for Python objects

    @property
    def sequence_rank(self) -> int:
        """Which shard of the tokens this rank holds: ring-major, Ulysses inside."""
        return self.ring_rank * self.plan.ulysses + self.ulysses_rank

    @classmethod
    def build(cls, plan: ParallelPlan, *, first_rank: int = 0, world_size: int | None = None) -> Mesh:
        """The groups of `plan` on global ranks [first_rank, first_rank + world_size) of the initialised
        default group (world_size None: all of it past first_rank, which must be what the plan multiplies to)."""
        world = dist.get_world_size() - first_rank if world_size is None else world_size
        plan.check_world(world)
        grank = dist.get_rank()
        rank = grank - first_rank
        if not 0 <= rank < world:
            raise ValueError(
                f"global rank {grank} is not in the job's ranks {first_rank}..{first_rank + world - 1}"
            )
        u, r, c, s = plan.ulysses, plan.ring, plan.cfg, plan.sequence

        def at(cfg: int, ring: int, uly: int) -> int:
            return first_rank + cfg * s + ring * u + uly

        mine: dict[str, Any] = {}

        def make(name: str, ranks: list[int]) -> None:
            if len(ranks) > 1 and grank in ranks:
                mine[name] = _group(tuple(ranks))

        for ci in range(c):
            for ri in range(r):
                make("ulysses", [at(ci, ri, ui) for ui in range(u)])
        for ci in range(c):
            for ui in range(u):
                make("ring", [at(ci, ri, ui) for ri in range(r)])
        for ci in range(c):
            make("sequence", [at(ci, ri, ui) for ri in range(r) for ui in range(u)])
        for ri in range(r):
            for ui in range(u):
                make("cfg", [at(ci, ri, ui) for ci in range(c)])
        if dist.get_backend() == "gloo":
            make("control", list(range(first_rank, first_rank + world)))
        elif world > 1:  # nccl: tensors only; objects need a CPU group (every rank of the world calls this)
            if world != dist.get_world_size():
                raise ValueError("on nccl a job spans the whole world (first_rank 0, every rank)")
            mine["control"] = dist.new_group(backend="gloo")
        cfg_rank, ring_rank, uly_rank = plan.coordinates(rank)
        return cls(
            plan=plan, rank=rank, first_rank=first_rank, cfg_rank=cfg_rank, ring_rank=ring_rank, ulysses_rank=uly_rank,
            ulysses_group=mine.get("ulysses"), ring_group=mine.get("ring"),
            ring_ranks=tuple(at(cfg_rank, ri, uly_rank) for ri in range(r)),
            sequence_group=mine.get("sequence"), cfg_group=mine.get("cfg"), control=mine.get("control"),
        )  # fmt: skip

    def broadcast_object(self, obj: Any = None) -> Any:
        """The job's rank 0's `obj` on every rank of the job (over the gloo control group)."""
        if self.control is None:  # a job of one rank
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=self.first_rank, group=self.control)
        return box[0]


# One group per set of ranks in this process: `use_local_synchronization` names a group by its ranks, so
# the same ranks twice (e.g. ulysses=2's Ulysses and sequence groups) must be one group, made once.
_GROUPS: dict[tuple[int, ...], Any] = {}


def _group(ranks: tuple[int, ...]) -> Any:
    """The process group of `ranks` (default backend), made by its members only, once per process."""
    if ranks not in _GROUPS:
        _GROUPS[ranks] = dist.new_group(list(ranks), use_local_synchronization=True)
    return _GROUPS[ranks]


def all_to_all(x: Tensor, group: Any) -> Tensor:
    """x (n, ...) with n = group size: chunk i goes to rank i; returns (n, ...) with chunk i from rank i."""
    x = x.contiguous()
    out = torch.empty_like(x)
    dist.all_to_all_single(out, x, group=group)
    return out


def all_gather_cat(x: Tensor, group: Any, dim: int) -> Tensor:
    """Every rank's x concatenated along `dim`, in group rank order (x itself where group is None)."""
    if group is None:
        return x
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, x, group=group)
    return torch.cat(parts, dim=dim)


def ring_exchange(x: Tensor, mesh: Mesh) -> list[Any]:
    """Start sending x to the next rank of the ring and receiving the previous one's; returns
    (the requests to wait on, the receive buffer)."""
    ranks, i = mesh.ring_ranks, mesh.ring_rank
    x = x.contiguous()
    buffer = torch.empty_like(x)
    ops = [
        dist.P2POp(dist.isend, x, ranks[(i + 1) % len(ranks)], mesh.ring_group),
        dist.P2POp(dist.irecv, buffer, ranks[(i - 1) % len(ranks)], mesh.ring_group),
    ]
    return [dist.batch_isend_irecv(ops), buffer]
