"""`yingxi generate ... --gpus N` / `--parallel PLAN`, and `yingxi worker --parallel PLAN`: one video
across several ranks.

Without torchrun, `--gpus N` starts N copies of this same command as ranks (RANK/WORLD_SIZE/LOCAL_RANK,
MASTER_ADDR=127.0.0.1, a free loopback port) and waits for them; under torchrun each process is already a
rank. nccl on CUDA; on the CPU the ranks are gloo processes (a test mode: the same maths, no speed-up).
Rank 0 alone writes the output and prints the summary; the other ranks follow its shots.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from yingxi.errors import InputError
from yingxi.models.parallel.plan import ParallelPlan, default_plan, parse_parallel

SPAWNED = "YINGXI_PARALLEL_RANK"  # set in the ranks --gpus starts (so they do not start ranks again)


def add_parallel_args(p: argparse.ArgumentParser, *, gpus: bool = True) -> None:
    if gpus:
        p.add_argument("--gpus", type=int, default=None,
                       help="run each shot across N ranks started here (on the CPU: N gloo processes, a test mode)")  # fmt: skip
    p.add_argument("--parallel", metavar="PLAN",
                   help="how the ranks share a shot: ulysses=U,ring=R,cfg=C[,vae=V] (degrees multiply to the "
                        "number of ranks; default with --gpus N: ulysses=N)")  # fmt: skip


def _plan(args: argparse.Namespace, world: int | None, field: str) -> ParallelPlan:
    plan = parse_parallel(args.parallel, field="--parallel") if args.parallel else default_plan(world or 1)
    if world is not None:
        plan.check_world(world, field=field)
    return plan


def _refuse(args: argparse.Namespace) -> None:
    if args.backend != "wan":
        raise InputError(
            "--gpus/--parallel need --backend wan (the animatic runs on one CPU)", field="--gpus"
        )


def _device_type(args: argparse.Namespace, world: int) -> str:
    kind = (args.device or "").split(":")[0]
    if kind in ("", "cuda"):  # torch only where CUDA is asked about: a --device cpu parent needs none
        import torch

        kind = kind or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and torch.cuda.device_count() < world:
        raise InputError(
            f"{world} ranks need {world} GPUs; this machine has {torch.cuda.device_count()}", field="--gpus"
        )
    if kind not in ("cuda", "cpu"):
        raise InputError(f"ranks run on cuda or cpu, not {args.device}", field="--device")
    return kind


def spawn(argv: list[str], world: int, device_type: str) -> int:
    """Start `world` ranks of `yingxi <argv>` and wait: rank 0 speaks; a follower's failure is shown."""
    from yingxi.models.parallel.launch import free_port

    if device_type == "cpu":
        print(f"note: CPU test mode: {world} gloo processes on the CPU (the maths of {world} GPUs, no speed-up)",
              file=sys.stderr)  # fmt: skip
    port = free_port()
    logs, procs = [], []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **{SPAWNED: str(rank)})  # fmt: skip
        log = None if rank == 0 else tempfile.TemporaryFile()
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-m", "yingxi.cli", *argv], env=env,
                                      stdout=log, stderr=log))  # fmt: skip

    def stop(signum: int, frame: Any) -> None:  # SIGTERM to the parent (a supervisor): take the ranks too
        raise SystemExit(128 + signum)

    main = threading.current_thread() is threading.main_thread()  # where Python delivers signals
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        codes = _wait(procs)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rank, code in enumerate(codes[1:], start=1):
        if code != 0 and codes[0] == 0:
            log = logs[rank]
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
            print(f"yingxi: rank {rank} failed (exit {code}): {' | '.join(tail)}", file=sys.stderr)
            return 1
    return codes[0]


def _wait(procs: list[subprocess.Popen], grace: float = 30.0) -> list[int]:
    """Exit codes of all ranks; once one has failed (or rank 0 has ended) the rest get `grace` seconds."""
    deadline = None
    while True:
        codes = [p.poll() for p in procs]
        if all(c is not None for c in codes):
            return codes  # type: ignore[return-value]
        if deadline is None and (codes[0] is not None or any(c not in (None, 0) for c in codes)):
            deadline = time.monotonic() + grace
        if deadline is not None and time.monotonic() > deadline:
            return [c if c is not None else -9 for c in codes]
        time.sleep(0.1)


def run_generate(args: argparse.Namespace, argv: list[str], cmd_generate: Callable[..., int],
                 make_backend: Callable[[argparse.Namespace], Any]) -> int:  # fmt: skip
    """`yingxi generate`: alone, as the parent of --gpus ranks, or as one rank (spawned or torchrun)."""
    from yingxi.models.parallel.launch import torchrun_rank

    info = torchrun_rank()
    if args.gpus is not None and args.gpus < 1:
        raise InputError("must be at least 1", field="--gpus")
    if info is not None and info.world_size == 1 and not args.parallel:
        info = None  # a lone process with RANK/WORLD_SIZE=1 set (e.g. by a scheduler) runs as one
    if info is None:
        if (args.gpus or 1) == 1 and not args.parallel:
            return cmd_generate(args)
        plan = _plan(args, args.gpus, "--gpus")
        _refuse(args)
        if plan.world_size == 1:
            return cmd_generate(args)
        return spawn(argv, plan.world_size, _device_type(args, plan.world_size))
    plan = _plan(args, info.world_size, "--parallel" if args.parallel else "WORLD_SIZE")
    _refuse(args)
    return _as_rank(args, plan, info, cmd_generate, make_backend)


def _start_rank(args: argparse.Namespace, plan: ParallelPlan, info: Any) -> tuple[Any, str]:
    from yingxi.models.parallel.launch import init_distributed
    from yingxi.models.parallel.mesh import Mesh

    kind = _device_type(args, info.local_rank + 1)  # this rank's GPU must exist
    backend = init_distributed(info, kind)
    args.device = f"cuda:{info.local_rank}" if kind == "cuda" else "cpu"
    if kind == "cpu":
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.world_size))
    return Mesh.build(plan), backend


def _as_rank(args, plan, info, cmd_generate, make_backend) -> int:
    import torch.distributed as dist

    from yingxi.backends.wan_parallel import ParallelGenerator, follow

    mesh, comm = _start_rank(args, plan, info)
    try:
        inner = make_backend(args)
        if mesh.rank != 0:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - rank 0 alone prints
            follow(inner, mesh)
            return 0
        backend = ParallelGenerator(inner, mesh)
        try:
            code = cmd_generate(args, backend=backend)
        finally:
            calls = backend.close()
        ran = [str(r) for r, n in enumerate(calls) if n]
        mode = f"{comm}, CPU test mode" if comm == "gloo" else f"{comm}, {plan.world_size} GPUs"
        print(f"parallel: {plan} across {plan.world_size} ranks ({mode}); transformer ran on ranks "
              f"{', '.join(ran) or 'none'} ({', '.join(map(str, calls))} calls)")  # fmt: skip
        return code
    finally:
        dist.destroy_process_group()


def worker_plan(args: argparse.Namespace) -> ParallelPlan | None:
    """`yingxi worker --parallel PLAN`: the plan of one worker whose shots run across its ranks."""
    if not getattr(args, "parallel", None):
        return None
    plan = parse_parallel(args.parallel, field="--parallel")
    if args.backend != "wan":
        raise InputError("--parallel needs --backend wan", field="--parallel")
    if args.gpus != 1:
        raise InputError(
            "--gpus starts independent workers; with --parallel one worker owns all the plan's ranks "
            f"({plan.world_size}): give one of the two",
            field="--gpus",
        )
    return plan


def run_worker(args: argparse.Namespace, argv: list[str], settings: Any, plan: ParallelPlan) -> int:
    """One worker across plan.world_size ranks: rank 0 claims and renders jobs, the others follow it."""
    from yingxi.models.parallel.launch import torchrun_rank

    info = torchrun_rank()
    if info is None:
        return spawn(argv, plan.world_size, _device_type(args, plan.world_size))
    plan.check_world(info.world_size, field="WORLD_SIZE")
    import torch.distributed as dist

    from yingxi.backends.wan_parallel import ParallelGenerator, follow
    from yingxi.server.worker import Worker, make_backend

    mesh, _ = _start_rank(args, plan, info)
    settings = dataclasses.replace(
        settings, runtime=dataclasses.replace(settings.runtime, device=args.device)
    )
    try:
        inner = make_backend(settings, 0)
        if mesh.rank != 0:
            follow(inner, mesh)
            return 0
        worker = Worker(settings, 0, None, f"parallel-{plan}-{os.getpid()}")
        worker._backend = backend = ParallelGenerator(inner, mesh)
        try:
            worker.run_forever()
        finally:
            backend.close()
            worker.close()
        return 0
    finally:
        dist.destroy_process_group()
