"""Starting the ranks of one job: torchrun's environment, or N processes spawned here on loopback.

nccl where the ranks hold CUDA devices, gloo on the CPU (a test mode: the same maths, no speed-up).
torch is imported where a rank starts, not here: the `--gpus` parent only picks a port and waits.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from yingxi.errors import InputError

__all__ = ["RankInfo", "free_port", "init_distributed", "spawn_ranks", "torchrun_rank", "wait_ranks"]

# How long a rank waits in one collective before giving up (a rank that died leaves the others waiting).
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    local_rank: int


def free_port() -> int:
    """A TCP port free on loopback now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_rank() -> RankInfo | None:
    """This process's rank under torchrun (RANK / WORLD_SIZE / LOCAL_RANK), None outside one."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise InputError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers", field="RANK") from None
    if not 0 <= rank < world:
        raise InputError(f"RANK {rank} is outside WORLD_SIZE {world}", field="RANK")
    return RankInfo(rank, world, local)


def init_distributed(info: RankInfo, device_type: str) -> str:
    """Join the default process group (env:// rendezvous: MASTER_ADDR/MASTER_PORT); returns the backend."""
    import torch
    import torch.distributed as dist

    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        if "MASTER_PORT" not in os.environ:
            raise InputError("MASTER_PORT is not set (torchrun and --gpus set it)", field="MASTER_PORT")
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend, rank=info.rank, world_size=info.world_size, timeout=TIMEOUT)
    return backend


def _entry(rank: int, fn: Callable[..., Any], world: int, port: int, args: tuple) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    init_distributed(RankInfo(rank, world, rank), "cpu")
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def spawn_ranks(fn: Callable[..., Any], world: int, *args: Any, join: bool = True) -> Any:
    """Run fn(rank, world, *args) in `world` fresh gloo processes on loopback and wait for all of them
    (join False: return the ProcessContext at once; `wait_ranks` it later).

    `fn` must be importable by name (a module-level function); a rank's exception is raised here.
    """
    import torch.multiprocessing as mp

    return mp.start_processes(
        _entry, args=(fn, world, free_port(), args), nprocs=world, start_method="spawn", join=join
    )


def wait_ranks(context: Any) -> None:
    """Wait for the processes of `spawn_ranks(..., join=False)`; a rank's exception is raised here."""
    while not context.join():
        pass
