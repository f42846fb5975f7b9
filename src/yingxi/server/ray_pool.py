"""`yingxi serve --pool ray[://HEAD]`: render workers placed as Ray actors across a cluster.

Ray only places and supervises: each actor runs today's worker loop (`Worker.run_forever`) against the shared
job database and claims jobs from it itself, so a job is never in Ray's hands and a node's death loses
nothing a lease does not already cover. The pool starts one actor per GPU of the cluster (`num_gpus=1`; or
one per CPU slot for the animatic, `num_cpus=1`), replaces an actor that dies (its running job goes back to
the queue at once), kills one that stops heartbeating, grows when nodes join (a slot whose node went away
waits, pending, for the next node: that demand is what Ray's autoscaler acts on), and on shutdown drains: the actors stop claiming,
finish their job within `drain_seconds`, and whatever still runs is killed and released to the queue.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from typing import Any

from yingxi.server.runner import Supervisor
from yingxi.server.settings import ServerSettings

log = logging.getLogger("yingxi.server")

CLIENT_PORT = 10001  # Ray Client's default port on the head node

# Ray's defaults that a render pool has no use for, and that would report out of the machine.
QUIET_RAY = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}


def ray_address(pool: str) -> str | None:
    """The address `ray.init` gets for a `--pool` value: None (`ray`: RAY_ADDRESS if set, else a new local
    cluster) or `ray://HOST:PORT` (Ray Client; the port defaults to 10001). ValueError otherwise."""
    if pool == "ray":
        return None
    if not pool.startswith("ray://") or not pool[len("ray://") :].strip("/"):
        raise ValueError(f'--pool must be local, ray or ray://HEAD[:PORT], got "{pool}"')
    head = pool[len("ray://") :].strip("/")
    if ":" not in head.rsplit("]", 1)[-1]:
        head = f"{head}:{CLIENT_PORT}"
    return f"ray://{head}"


def connect(pool: str, tries: int = 3) -> None:
    """Connect this process to the cluster `pool` names (see `ray_address`)."""
    for name, value in QUIET_RAY.items():
        os.environ.setdefault(name, value)
    address = ray_address(pool)
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # A new cluster on this machine alone: every Ray component on loopback, no dashboard.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # node ip = 127.0.0.1
    import ray

    if ray.is_initialized():
        return
    local = address is None and not os.environ.get("RAY_ADDRESS")
    for attempt in range(1, tries + 1):
        try:
            if local:
                ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            else:
                ray.init(address, logging_level=logging.WARNING, log_to_driver=False)
            return
        # Ray Client: the head could not start our session; local: Ray's own 30 s for a raylet to register
        # ran out (a loaded machine). Both raise plain exceptions.
        except Exception as e:
            where = "a new local Ray instance" if local else f"the Ray cluster at {address}"
            if attempt == tries:
                raise ConnectionError(f"cannot start or reach {where}: {e}") from None
            log.warning("Ray start/connection %d/%d failed (%s); retrying", attempt, tries, e)
            ray.shutdown()
            time.sleep(2.0 * attempt)


class WorkerActor:
    """One render worker inside a Ray actor (threaded: `run` holds one thread, `drain` gets the other)."""

    def __init__(self, settings: dict[str, Any], index: int, nonce: str):
        import ray

        from yingxi.server import logs
        from yingxi.server.worker import Worker

        settings_obj = ServerSettings.from_dict(settings)
        logs.configure(settings_obj.log_format)
        self.node_id = ray.get_runtime_context().get_node_id()
        # host:pid:nonce with Ray's name of the node as the host (its IP unless `ray start --node-name`),
        # so the job row says which machine rendered it.
        node = next((n for n in ray.nodes() if n["NodeID"] == self.node_id), {})
        host = str(node.get("NodeName") or node.get("NodeManagerAddress") or "ray").replace(":", "_")
        # The raylet that started us is our parent. When it dies (its node lost), Ray's own shutdown of this
        # process takes seconds, in which the loop would claim the job the pool has just requeued: the
        # worker stops claiming the moment its parent changes, and its heartbeat exits the process.
        self.worker = Worker(
            settings_obj, index, parent_pid=os.getppid(), name=f"{host}:{os.getpid()}:{nonce}"
        )

    def identity(self) -> dict[str, Any]:
        return {"name": self.worker.name, "node_id": self.node_id, "parent_pid": self.worker.parent_pid}

    def run(self) -> str:
        """The worker loop; returns (its name) only after `drain`."""
        try:
            self.worker.run_forever()
        finally:
            self.worker.close()
        return self.worker.name

    def drain(self) -> None:
        """Stop claiming; the job being rendered is finished first (`run` then returns)."""
        self.worker.stopping.set()


class _Slot:
    """One place in the pool: the actor there now, the ObjectRef of its `run`, its worker name."""

    def __init__(self, actor: Any, run_ref: Any, identity_ref: Any):
        self.actor, self.run_ref, self.identity_ref = actor, run_ref, identity_ref
        self.name: str | None = None
        self.node_id: str | None = None
        self.started = time.monotonic()


class RayPool(Supervisor):
    """The Supervisor's duties (recovery, expiry, orphan folders) with workers as Ray actors."""

    def __init__(self, settings: ServerSettings, interval: float = 0.5, drain_seconds: float = 30.0,
                 resize_seconds: float = 10.0):  # fmt: skip
        super().__init__(settings, interval=interval)
        self.pool = settings.pool
        self.drain_seconds = drain_seconds
        self.resize_seconds = resize_seconds  # how often the cluster's size is read again (nodes join)
        self._resize_at = 0.0
        self.slots: list[_Slot | None] = []
        self._failures: list[int] = []
        self._restart_at: list[float] = []
        self._actor_class: Any = None

    # -- placing -------------------------------------------------------------------------------------------
    def _resources(self) -> dict[str, float]:
        return {"num_gpus": 1, "num_cpus": 1} if self.settings.backend == "wan" else {"num_cpus": 1}

    def size(self) -> int:
        """--pool-workers, else one per GPU of the cluster (wan) or per CPU slot (animatic)."""
        import ray

        if self.settings.pool_workers:
            return self.settings.pool_workers
        total = ray.cluster_resources()
        kind = "GPU" if self.settings.backend == "wan" else "CPU"
        n = int(total.get(kind, 0))
        if n < 1:
            raise RuntimeError(
                f"the Ray cluster has no {kind}s for --backend {self.settings.backend} workers"
            )
        return n

    def _spawn(self, index: int) -> _Slot:
        import ray

        if self._actor_class is None:
            self._actor_class = ray.remote(max_restarts=0, max_concurrency=2)(WorkerActor)
        nonce = secrets.token_hex(4)
        actor = self._actor_class.options(name=f"yingxi-worker-{index}-{nonce}", **self._resources()).remote(
            self.settings.to_dict(), index, nonce
        )
        slot = _Slot(actor, actor.run.remote(), actor.identity.remote())
        log.info("placing worker %d on the Ray cluster", index)
        return slot

    def start(self) -> None:
        if not self.store.shared and self.pool != "ray":
            log.warning("--pool %s with a SQLite job store: only Ray nodes on this machine can reach it; give "
                        "--database-url postgresql://... for a cluster", self.pool)  # fmt: skip
        connect(self.pool)
        requeued = self.store.recover(lease_seconds=self.settings.lease_seconds, ttl_seconds=self._ttl,
                                      all_running=False)  # fmt: skip  # other machines may hold jobs
        if requeued:
            log.info("requeued %d jobs whose leases expired", len(requeued))
        self.remove_orphans()
        n = self.size()
        self._failures, self._restart_at = [0] * n, [0.0] * n
        self.slots = [self._spawn(i) for i in range(n)]
        self._resize_at = time.monotonic() + self.resize_seconds
        log.info("%d workers placed as Ray actors (%s)", n, self.pool)
        import threading

        self._thread = threading.Thread(target=self._loop, name="yingxi-ray-pool", daemon=True)
        self._thread.start()

    # -- watching ------------------------------------------------------------------------------------------
    def _learn_names(self) -> None:
        import ray

        pending = {s.identity_ref: s for s in self.slots if s is not None and s.name is None}
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in ready:
            slot = pending[ref]
            try:
                who = ray.get(ref)
            except Exception:  # died before it said who it is: its run_ref reports the death
                slot.name = ""
                continue
            slot.name, slot.node_id = who["name"], who["node_id"]
            log.info("worker %s runs on Ray node %s under raylet pid %s", slot.name, slot.node_id,
                     who["parent_pid"])  # fmt: skip

    def step(self) -> None:
        import ray

        self._learn_names()
        now = time.monotonic()
        dead: list[str] = []
        live = {s.run_ref: i for i, s in enumerate(self.slots) if s is not None}
        ended, _ = ray.wait(list(live), num_returns=len(live), timeout=0) if live else ([], [])
        for ref in ended:
            i = live[ref]
            slot = self.slots[i]
            try:
                ray.get(ref)
                why = "returned"
            except Exception as e:  # ActorDiedError, a node that went away, a crash inside the actor
                why = type(e).__name__
            if slot.name:
                dead.append(slot.name)
                self.store.worker_gone(slot.name)  # it cannot say so itself
            quick = now - slot.started < 10.0  # a worker that cannot start is retried with growing pauses
            self._failures[i] = self._failures[i] + 1 if quick else 0
            self._restart_at[i] = now + (
                min(30.0, 2.0 ** (self._failures[i] - 1)) if self._failures[i] > 1 else 0
            )
            log.warning("Ray worker %d (%s) ended (%s); replacing it", i, slot.name or "unnamed", why)
            self.slots[i] = None
        for i, slot in enumerate(self.slots):
            if slot is None and now >= self._restart_at[i] and not self._stop.is_set():
                self.slots[i] = self._spawn(i)
        if not self.settings.pool_workers and now >= self._resize_at and not self._stop.is_set():
            self._resize_at = now + self.resize_seconds
            self.grow()
        self.recover_and_expire(dead)

    def grow(self) -> int:
        """Place a worker on each GPU (CPU slot) the cluster has gained; returns how many were placed. The
        pool never shrinks by itself: a slot on a lost node stays pending until a node can take it."""
        try:
            wanted = self.size()
        except RuntimeError:  # no GPUs (CPUs) at the moment: the slots there wait
            return 0
        added = range(len(self.slots), wanted)
        for i in added:
            self._failures.append(0)
            self._restart_at.append(0.0)
            self.slots.append(self._spawn(i))
        if added:
            log.info("the Ray cluster grew: %d workers now", len(self.slots))
        return len(added)

    def kill_hung(self) -> list[int]:
        """ray.kill an actor whose heartbeat is older than the lease (stopped or deadlocked); the next step
        replaces it and requeues its job."""
        import ray

        ages = {w["name"]: w["age"] for w in self.store.workers()}
        killed = []
        for i, slot in enumerate(self.slots):
            if slot is None or not slot.name or ages.get(slot.name, 0.0) <= self.settings.lease_seconds:
                continue
            if time.monotonic() - slot.started <= self.settings.lease_seconds:
                continue
            log.warning(
                "Ray worker %d (%s) sent no heartbeat for %.0fs; killing it", i, slot.name, ages[slot.name]
            )
            ray.kill(slot.actor, no_restart=True)
            killed.append(i)
        return killed

    # -- draining ------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Drain: stop claiming, let running jobs finish (at most `drain_seconds`), then kill what is left and
        release its jobs to the queue without counting the attempt."""
        import ray

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        slots = [s for s in self.slots if s is not None]
        if not slots:
            return
        self._learn_names()
        placed = [s for s in slots if s.name]  # an actor still waiting for a node has nothing to finish
        for slot in placed:
            slot.actor.drain.remote()
        runs = [s.run_ref for s in placed]
        finished, _ = ray.wait(runs, num_returns=len(runs), timeout=self.drain_seconds) if runs else ([], [])
        done = set(finished)
        left = [s for s in placed if s.run_ref not in done]
        for slot in slots:
            ray.kill(slot.actor, no_restart=True)
        released = self.store.release([s.name for s in left if s.name])
        if released:
            log.info("requeued %d running jobs the drain did not finish", len(released))
        self.slots = []
        ray.shutdown()
