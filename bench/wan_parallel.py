"""One Wan transformer forward across ranks (Ulysses, Ring, guidance split), against the same forward on one.

    # GPUs: one process per GPU under torchrun (nccl), full-size Wan2.1-T2V-14B at 480p x 81 frames
    torchrun --nproc-per-node 8 bench/wan_parallel.py --model 14b
    # CPU: gloo ranks spawned here on the mid-size model (the maths and the counts; 2 cores give no speed-up)
    PYTHONPATH=src python bench/wan_parallel.py --device cpu --ranks 2

Every rank builds the same random WanDiT (seeded; random weights made on the device, no files) and the same
inputs. Rank 0 first runs the forward alone (the reference, same run; the other ranks wait), then each plan
runs on ranks 0..n-1 through `shard_transformer`, the path `generate --gpus N` and `--parallel PLAN` take.
The table gives seconds per forward, the speed-up over one rank and its efficiency (speed-up / ranks), the
largest difference from the one-rank output, and what does not depend on the machine: the bytes each rank
sends per forward (counted at the torch.distributed calls) and the tokens each rank's blocks hold.
A cfg plan runs a guided batch (cond + uncond, batched guidance) and is compared with one rank's batch of 2.
The issue's target: 8 GPUs at least 6.5x one (efficiency >= 81%).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from wan_speed import MODELS, forward_flops, sync  # noqa: E402

from yingxi.models.parallel.launch import init_distributed, spawn_ranks, torchrun_rank  # noqa: E402
from yingxi.models.parallel.mesh import Mesh  # noqa: E402
from yingxi.models.parallel.plan import parse_parallel  # noqa: E402
from yingxi.models.wan.config import TEXT_LEN  # noqa: E402
from yingxi.models.wan.dit import WanDiT  # noqa: E402
from yingxi.pipelines.wan.parallel import shard_transformer  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class SentBytes:
    """Bytes this rank hands to torch.distributed's collectives and sends, while counting (bench only)."""

    def __init__(self) -> None:
        self.total, self.on = 0, False
        self._all_to_all, self._all_gather, self._batch = (
            dist.all_to_all_single,
            dist.all_gather,
            dist.batch_isend_irecv,
        )

        def all_to_all(out, x, *a, **k):
            if self.on:  # all but its own chunk leaves the rank
                n = dist.get_world_size(k.get("group"))
                self.total += x.numel() * x.element_size() * (n - 1) // n
            return self._all_to_all(out, x, *a, **k)

        def all_gather(parts, x, *a, **k):
            if self.on:  # its part goes to every other rank (a ring all-gather sends it n - 1 times)
                self.total += x.numel() * x.element_size() * (len(parts) - 1)
            return self._all_gather(parts, x, *a, **k)

        def batch(ops):
            if self.on:
                self.total += sum(
                    o.tensor.numel() * o.tensor.element_size() for o in ops if o.op is dist.isend
                )
            return self._batch(ops)

        dist.all_to_all_single, dist.all_gather, dist.batch_isend_irecv = all_to_all, all_gather, batch


def default_plans(world: int, heads: int) -> list[str]:
    """Ulysses alone (where the heads divide), Ring alone, both, and the guidance split with the rest."""
    plans = []
    for n in sorted({2, world} | ({4} if world >= 8 else set())):
        if n > world or n < 2:
            continue
        if heads % n == 0:
            plans.append(f"ulysses={n}")
        plans.append(f"ring={n}")
        if n >= 4 and heads % (n // 2) == 0:
            plans.append(f"ulysses={n // 2},ring=2")
        plans.append("cfg=2" if n == 2 else f"cfg=2,ulysses={n // 2}")
    return list(dict.fromkeys(plans))


def build(spec, device: torch.device, dtype: torch.dtype) -> tuple[WanDiT, tuple]:
    """The same random model and inputs on every rank (same seeds)."""
    cfg = spec.dit
    before = torch.get_default_dtype()
    torch.manual_seed(0)
    torch.set_default_dtype(dtype)  # no full-width copy of 14B parameters on the way
    try:
        with torch.device(device):
            model = WanDiT(cfg).eval()
    finally:
        torch.set_default_dtype(before)
    g = torch.Generator(device).manual_seed(1)
    f, h, w = spec.latent
    x = torch.randn(1, cfg.in_channels, f, h, w, generator=g, device=device).to(dtype)  # (1, C, F, H, W)
    text = torch.randn(1, TEXT_LEN, cfg.text_dim, generator=g, device=device).to(dtype)  # (1, 512, Dt)
    return model, (x, torch.tensor([500.0], device=device), text)


def timed(fn, device: torch.device, repeats: int, group=None) -> tuple[float, torch.Tensor]:
    """(seconds per call after one warm-up, the last output); the ranks of `group` start each call together."""
    with torch.no_grad():
        out = fn()
        sync(device)
        if group is not None:
            dist.barrier(group=group)
        start = time.perf_counter()
        for _ in range(repeats):
            out = fn()
        sync(device)
    return (time.perf_counter() - start) / repeats, out


def run(rank: int, world: int, args: argparse.Namespace) -> None:
    device = torch.device(
        f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}" if args.device == "cuda" else "cpu"
    )
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    spec = MODELS[args.model or ("14b" if device.type == "cuda" else "mid")]()
    model, (x, t, text) = build(spec, device, dtype)
    x2, t2, text2 = torch.cat([x, x]), t.expand(2), torch.cat([text, text])  # a guided batch (cond, uncond)
    flops = forward_flops(spec.dit, spec.tokens)
    plans = args.plans.split(";") if args.plans else default_plans(world, spec.dit.num_attention_heads)
    if dist.get_backend() == "nccl":  # Mesh.build: on nccl a job holds every rank of the world
        plans = [q for q in plans if parse_parallel(q, field="--plans").world_size == world] or plans
    say = print if rank == 0 else (lambda *a, **k: None)
    card = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu, {args.threads} thread(s) a rank"
    )
    say(f"# wan_parallel: {world} ranks ({dist.get_backend()}), {card}, torch {torch.__version__}, {dtype}; "
        f"{spec.name} {spec.size[0]}x{spec.size[1]}x{spec.frames}: {spec.tokens} tokens, {flops:.3e} FLOP "
        "per forward", flush=True)  # fmt: skip
    reference = {}
    if rank == 0:  # one rank alone: batch 1 and the guided batch of 2
        reference[1] = timed(lambda: model(x, t, text), device, args.repeats)
        reference[2] = timed(lambda: model(x2, t2, text2), device, args.repeats)
    model = None  # each plan builds its own copy (a sharded model stays sharded); rank 0 keeps the outputs
    if device.type == "cuda":
        torch.cuda.empty_cache()
    dist.barrier()
    sent = SentBytes()
    say("| plan | ranks | batch | s per forward | x one rank | efficiency | max abs diff | MiB sent per rank "
        "per forward | tokens per rank |")  # fmt: skip
    say("|---|---|---|---|---|---|---|---|---|")
    if rank == 0:
        for batch in (1, 2):
            say(f"| one rank (reference) | 1 | {batch} | {reference[batch][0]:.3f} | 1.00x | 100% | 0 | 0 | "
                f"{spec.tokens} |", flush=True)  # fmt: skip
    for text_plan in plans:
        plan = parse_parallel(text_plan, field="--plans")
        if plan.world_size > world or (dist.get_backend() == "nccl" and plan.world_size != world):
            why = f"{world} ranks" if plan.world_size > world else f"an nccl job spans every rank: torchrun " \
                f"--nproc-per-node {plan.world_size}"  # fmt: skip
            say(f"| {plan} | {plan.world_size} | - | not run: {why} | | | | | |")
            continue
        inside = rank < plan.world_size
        if inside:
            mesh = Mesh.build(plan, first_rank=0, world_size=plan.world_size)
            job = mesh.control if dist.get_backend() == "gloo" else None
            sharded = shard_transformer(build(spec, device, dtype)[0], mesh)
            batch = 2 if plan.cfg > 1 else 1
            call = partial(sharded, *((x2, t2, text2) if batch == 2 else (x, t, text)))
            seconds, out = timed(call, device, args.repeats, job)
            sent.total, sent.on = 0, True
            with torch.no_grad():
                call()
            sync(device)
            sent.on = False
            if rank == 0:
                base, want = reference[batch]
                diff = (out.float() - want.float()).abs().max().item()
                speedup = base / seconds
                per_rank = -(-spec.tokens // plan.sequence)
                say(f"| {plan} | {plan.world_size} | {batch} | {seconds:.3f} | {speedup:.2f}x | "
                    f"{speedup / plan.world_size:.0%} | {diff:.2e} | {sent.total / 2**20:.4g} | {per_rank} |",
                    flush=True)  # fmt: skip
            sharded = None
        dist.barrier()
    if device.type == "cuda" and rank == 0:
        say(f"peak GiB on rank 0: {torch.cuda.max_memory_allocated(device) / 2**30:.2f}")


def _spawned(rank: int, world: int, args: argparse.Namespace) -> None:
    run(rank, world, args)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", choices=sorted(MODELS), help="default: 14b on GPUs, mid on the CPU")
    p.add_argument("--dtype", choices=sorted(DTYPES), help="default: bf16 on GPUs, fp32 on the CPU")
    p.add_argument("--ranks", type=int, default=2, help="CPU: gloo ranks to spawn (torchrun sets its own)")
    p.add_argument("--plans", help='";"-separated plans, e.g. "ulysses=8;ring=8;cfg=2,ulysses=4" '
                   "(default: Ulysses, Ring, both and cfg=2 at 2, 4 and all ranks)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    args = p.parse_args(argv)
    info = torchrun_rank()
    if info is not None:  # torchrun started this process: one rank of its world
        init_distributed(info, args.device)
        try:
            run(info.rank, info.world_size, args)
        finally:
            dist.destroy_process_group()
    elif args.device == "cpu":
        spawn_ranks(_spawned, args.ranks, args)
    else:
        raise SystemExit(
            "on GPUs start one process per GPU: torchrun --nproc-per-node N bench/wan_parallel.py"
        )


if __name__ == "__main__":
    main()
