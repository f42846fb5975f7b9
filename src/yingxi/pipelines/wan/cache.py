"""Training-free step caches for the Wan DiT's block stack: first-block cache, MagCache, TeaCache.

Each cache is a `WanDiT.blocks_hook`: it gets the embedded inputs of one transformer call and either runs
the blocks (remembering their residual, output - input) or reuses the remembered residual, skipping the
blocks. State is kept per branch (`cache.branch`: "cond", "uncond", or "cfg" for a batched pair), as
diffusers keeps one `cache_context` per guidance branch and the reference implementations one slot per
parity of the call count; a batched pair ("cfg") is decided jointly, on the pair's statistics, and
MagCache reads the cond ratios for it. Counts are in evaluations (one sample through the transformer, so a batched
guidance pair is 2): `ran` went through every block, `skipped` reused a residual.

- fbcache (ParaAttention's first-block cache, diffusers `apply_first_block_cache`): the first block always
  runs; the rest is skipped while mean|r - r_prev| / mean|r_prev| of its residual r stays <= threshold.
- magcache (Ma et al. 2025, diffusers `apply_mag_cache`): skip while the accumulated error
  sum |1 - prod(ratio)| of the published per-step magnitude ratios stays <= threshold, at most K=3 steps
  in a row, never in the first 20% of the steps.
- teacache (Liu et al. 2024, TeaCache4Wan2.1): skip while the accumulated polynomial-rescaled relative L1
  change of the timestep modulation input stays < threshold, never in the first retention steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from yingxi.errors import InputError, unknown_word
from yingxi.pipelines.wan.cache_tables import MAG_RATIOS, TEA_COEFFICIENTS, table_key

__all__ = ["CACHES", "CacheSpec", "StepCache", "make_cache", "parse_cache", "use_cache"]

DEFAULT_THRESHOLDS = {"fbcache": 0.05, "magcache": 0.06, "teacache": 0.1}
CACHES = tuple(DEFAULT_THRESHOLDS)


@dataclass(frozen=True)
class CacheSpec:
    """A cache by name and threshold, as `--cache NAME[:threshold]` gives it."""

    name: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.name}:{self.threshold:g}"


def parse_cache(value: str | CacheSpec | None, *, field: str = "cache") -> CacheSpec | None:
    """ "magcache", "teacache:0.2", "none"/""/None (no cache) -> CacheSpec | None; a bad one is InputError."""
    if value is None or isinstance(value, CacheSpec):
        return value
    text = str(value).strip().lower()
    if text in ("", "none", "off"):
        return None
    name, _, threshold = text.partition(":")
    if name not in DEFAULT_THRESHOLDS:
        raise InputError(unknown_word("cache", name, CACHES + ("none",)), field=field)
    if not threshold:
        return CacheSpec(name, DEFAULT_THRESHOLDS[name])
    try:
        number = float(threshold)
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise InputError(f'cache threshold must be a positive number, got "{threshold}"', field=field)
    return CacheSpec(name, number)


def _rel_l1(now: Tensor, before: Tensor) -> float:
    """mean|now - before| / mean|before| as a Python float."""
    return ((now - before).abs().mean() / before.abs().mean()).item()


def nearest_interp(values: Sequence[float], length: int) -> list[float]:
    """Nearest-neighbour resampling of a per-step table to `length` steps (MagCache's rule)."""
    if length == 1:
        return [float(values[-1])]
    scale = (len(values) - 1) / (length - 1)
    return [float(values[int(torch.round(torch.tensor(i * scale)).item())]) for i in range(length)]


@dataclass
class _State:
    step: int = 0
    residual: Tensor | None = None  # (B, L, D) what the skipped blocks added last time
    reference: Tensor | None = None  # fbcache: first-block residual; teacache: modulation input
    accumulated: float = 0.0
    ratio: float = 1.0
    run_length: int = 0


@dataclass
class StepCache:
    """One clip's cache for one transformer; `steps` is the clip's sampling steps."""

    spec: CacheSpec
    steps: int
    table: str = "t2v-14B"  # cache_tables key (MagCache ratios, TeaCache coefficients)
    mag_ratios: Sequence[float] | None = None  # override: one per step, for every branch
    max_skip_steps: int = 3  # MagCache's K
    retention_ratio: float = 0.2  # MagCache: no skip in the first 20% of the steps
    branch: str = "cond"
    first_step: int = 0  # the clip's step this transformer starts at (an A14B low-noise expert: the switch)
    ran: int = 0
    skipped: int = 0
    skipped_steps: dict[str, list[int]] = field(default_factory=dict)
    # what runs blocks for it: the hook it stands in front of (the sequence-parallel shard, which cuts the
    # tokens across ranks and gathers them back), or None: the model's own loop
    runner: Callable[..., Tensor] | None = field(default=None, repr=False)
    _states: dict[str, _State] = field(default_factory=dict)

    def __call__(self, model: Any, inputs: Any) -> Tensor:
        state = self._states.setdefault(self.branch, _State(step=self.first_step))
        batch = inputs.x.shape[0]
        out, skipped = getattr(self, "_" + self.spec.name)(model, inputs, state)
        if out is None:  # the rule chose to run every block
            out = self._run(model, inputs)  # (B, L, D)
            state.residual = out - inputs.x
        if skipped:
            self.skipped += batch
            self.skipped_steps.setdefault(self.branch, []).append(state.step)
        else:
            self.ran += batch
        state.step += 1
        return out

    def _run(self, model: Any, inputs: Any, **which: Any) -> Tensor:
        """Blocks [start, stop) on x (`which`), through the runner; every rank gets the whole (B, L, D)."""
        if self.runner is None:
            return model.run_blocks(inputs, **which)
        return self.runner(model, inputs, **which)

    # Each rule returns (output or None to run every block, whether the call reused a residual).
    def _fbcache(self, model: Any, inputs: Any, state: _State) -> tuple[Tensor | None, bool]:
        first = self._run(model, inputs, stop=1)  # (B, L, D) the first block always runs
        residual = first - inputs.x
        if state.reference is not None and _rel_l1(residual, state.reference) <= self.spec.threshold:
            return first + state.residual, True
        out = self._run(model, inputs, x=first, start=1)  # (B, L, D)
        state.reference = residual
        state.residual = out - first  # what blocks 1.. add
        return out, False

    def _magcache(self, model: Any, inputs: Any, state: _State) -> tuple[Tensor | None, bool]:
        ratios = self._ratios()
        ratio = ratios[state.step] if state.step < len(ratios) else 1.0
        if state.step < int(self.retention_ratio * self.steps + 0.5):
            return None, False
        state.ratio *= ratio
        state.run_length += 1
        state.accumulated += abs(1.0 - state.ratio)
        if (
            state.residual is not None
            and state.accumulated <= self.spec.threshold
            and state.run_length <= self.max_skip_steps
        ):
            return inputs.x + state.residual, True
        state.ratio, state.run_length, state.accumulated = 1.0, 0, 0.0
        return None, False

    def _teacache(self, model: Any, inputs: Any, state: _State) -> tuple[Tensor | None, bool]:
        coefficients, source = TEA_COEFFICIENTS[self.table]
        # e0: the blocks' modulation input (B, [L,] 6, D); e: the time embedding (B, [L,] D)
        modulated = inputs.temb6 if source == "e0" else inputs.temb
        retention, cutoff = (5, self.steps) if source == "e0" else (1, self.steps - 1)
        previous, state.reference = state.reference, modulated
        if state.step < retention or state.step >= cutoff or previous is None:
            state.accumulated = 0.0
            return None, False
        x = _rel_l1(modulated.float(), previous.float())
        rescaled = 0.0
        for c in coefficients:  # numpy.poly1d: highest degree first (Horner)
            rescaled = rescaled * x + c
        state.accumulated += rescaled
        if state.accumulated < self.spec.threshold:
            return inputs.x + state.residual, True
        state.accumulated = 0.0
        return None, False

    def _ratios(self) -> list[float]:
        if self.mag_ratios is not None:
            return [float(r) for r in self.mag_ratios]
        table = MAG_RATIOS[self.table]
        parity = 1 if self.branch == "uncond" else 0  # the table interleaves cond, uncond
        return nearest_interp(table[parity::2], self.steps)


def magcache_plan(spec: CacheSpec, table: str, steps: int, branch: str = "cond") -> list[int]:
    """The steps MagCache will skip on `branch`: its rule reads only the published ratios, so this is
    known before any work (`yingxi plan`); equal to what `StepCache` then skips."""
    cache = StepCache(spec, steps, table=table, branch=branch)
    state, skipped, computed = _State(), [], False
    for step in range(steps):
        state.step = step
        state.residual = _PLANNED if computed else None
        out, skip = cache._magcache(None, _PlanInputs, state)
        computed = computed or not skip
        if skip:
            skipped.append(step)
    return skipped


class _PlanInputs:  # what `_magcache` reads of the inputs when planning: nothing but x (+ residual)
    x = 0.0


_PLANNED = 0.0  # a stand-in residual: planning only asks whether one exists


def make_cache(
    spec: CacheSpec | None, config: Any, steps: int, tokens: int = 0, first_step: int = 0
) -> StepCache | None:
    """The cache of `spec` for a transformer of `config` (WanDiTConfig) sampling `steps` steps, from
    `first_step` on (steps before it belong to another expert)."""
    if spec is None:
        return None
    table = table_key(config.inner_dim, config.in_channels, tokens)
    return StepCache(spec, steps, table=table, first_step=first_step)


@contextlib.contextmanager
def use_cache(model: Any, cache: StepCache | None, branch: str) -> Iterator[None]:
    """Run `model` (a WanDiT) with `cache` as its blocks hook for one call of `branch`. A hook already there
    (the sequence-parallel shard) runs the blocks the cache decides to run: its decisions read whole,
    gathered tensors, the same on every rank."""
    if cache is None:
        yield
        return
    if not hasattr(model, "blocks_hook"):
        raise InputError(
            f"{type(model).__name__} has no blocks hook; step caches need a WanDiT", field="cache"
        )
    cache.branch = branch
    before, model.blocks_hook = model.blocks_hook, cache
    cache.runner = before
    try:
        yield
    finally:
        model.blocks_hook = before
