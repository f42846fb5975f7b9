"""The shard plan of one video across ranks, as data: `--parallel ulysses=4,ring=2,cfg=2`.

Ranks are laid out cfg-major, Ulysses innermost (as xDiT's USP mesh): global rank =
cfg_rank * (ring * ulysses) + ring_rank * ulysses + ulysses_rank, so the all-to-all that runs in every
self-attention stays among neighbouring ranks (one node's NVLink) and the ring spans the next level.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from yingxi.errors import InputError, unknown_word

__all__ = ["ParallelPlan", "default_plan", "parse_parallel"]


@dataclass(frozen=True)
class ParallelPlan:
    """How many ranks share each axis of one transformer call; the degrees multiply to the world size."""

    ulysses: int = 1  # all-to-all over heads inside self-attention (heads must divide by it)
    ring: int = 1  # K/V passed around a ring, partial outputs merged by their log-sum-exp
    cfg: int = 1  # 2: cond on one half of the ranks, uncond on the other (needs guidance above 1)
    vae: int = 1  # ranks the spatially tiled VAE decode is split across (1: one untiled decode on rank 0)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(
                    f"{f.name} must be a whole number of ranks >= 1, got {value!r}", field="parallel"
                )
        if self.cfg > 2:
            raise InputError(
                f"cfg={self.cfg}: guidance has two branches (cond, uncond), so cfg is 1 or 2",
                field="parallel",
            )
        if self.vae > self.world_size:
            raise InputError(
                f"vae={self.vae}: the decode can be split across at most the {self.world_size} ranks that "
                f"{self.degrees()} multiplies to",
                field="parallel",
            )

    @property
    def sequence(self) -> int:
        """Ranks one sample's video tokens are split across (ulysses * ring)."""
        return self.ulysses * self.ring

    @property
    def world_size(self) -> int:
        return self.ulysses * self.ring * self.cfg

    def degrees(self) -> str:
        """'ulysses=2 x ring=2 x cfg=1'."""
        return f"ulysses={self.ulysses} x ring={self.ring} x cfg={self.cfg}"

    def check_world(self, world_size: int, *, field: str = "parallel") -> None:
        """InputError unless the degrees multiply to the number of ranks that run."""
        if self.world_size != world_size:
            raise InputError(
                f"{self.degrees()} multiplies to {self.world_size}, but {world_size} ranks run; "
                f"the degrees must multiply to the world size",
                field=field,
            )

    def coordinates(self, rank: int) -> tuple[int, int, int]:
        """Global rank -> (cfg_rank, ring_rank, ulysses_rank)."""
        per_cfg = self.sequence
        return rank // per_cfg, (rank % per_cfg) // self.ulysses, rank % self.ulysses

    def __str__(self) -> str:
        text = f"ulysses={self.ulysses},ring={self.ring},cfg={self.cfg}"
        return text + (f",vae={self.vae}" if self.vae > 1 else "")


_KEYS = tuple(f.name for f in fields(ParallelPlan))


def parse_parallel(text: str | ParallelPlan | None, *, field: str = "parallel") -> ParallelPlan:
    """ "ulysses=4,ring=2,cfg=2" (any order, missing ones 1; "" / "none": one rank) -> ParallelPlan."""
    if isinstance(text, ParallelPlan):
        return text
    if text is None or str(text).strip().lower() in ("", "none", "off"):
        return ParallelPlan()
    values: dict[str, int] = {}
    for part in str(text).replace(" ", "").lower().split(","):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if key not in _KEYS:
            raise InputError(unknown_word("parallel degree", key, _KEYS), field=field)
        if not sep or not value.isdigit() or int(value) < 1:
            raise InputError(f'"{part}": give {key}=N with N a whole number >= 1', field=field)
        if key in values:
            raise InputError(f"{key} is given twice", field=field)
        values[key] = int(value)
    try:
        return ParallelPlan(**values)
    except InputError as e:
        raise InputError(e.message, field=field) from None


def default_plan(world_size: int) -> ParallelPlan:
    """The plan of `--gpus N` without `--parallel`: every rank in one Ulysses group."""
    return ParallelPlan(ulysses=world_size)
