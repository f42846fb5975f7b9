"""API server under load: N concurrent clients create Ark tasks and poll them for M seconds, on loopback,
against a real server this script starts (temp data dir, animatic backend, tiny films) and stops.

    .venv/bin/python bench/server_load.py [--clients 8] [--seconds 20] [--polls 4] [--workers 1]
        [--database-url URL | --postgres] [--servers 2] [--pool local|ray|ray://HEAD[:PORT]]

`--postgres` starts a throwaway PostgreSQL (Debian's binaries, initdb in a temp folder, loopback) as the
tests do; `--servers 2` runs two API processes on one database and splits the clients between them
(the second has no workers). `--pool ray` starts a throwaway two-node Ray cluster on loopback (one CPU
each, as the tests do) and places the render workers there as Ray actors (`serve --pool ray://...`, one per
CPU unless `--workers` says how many); `--pool ray://HEAD` uses a cluster that runs already.

Each client loops: create a task (a 2 s 480p film at 8 fps), then GET it `--polls` times. Prints a table:
requests per second, p50/p99 latency of create and get, errors (must be 0), and how many films the
worker(s) rendered meanwhile. The reference, measured first in the same run with the same clients, is
GET /api/v1/health: the floor of uvicorn + FastAPI + httpx on this machine, without auth or the job store. The queue limit per tenant is lifted (each client is its own tenant).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from yingxi.server.keys import create_key
from yingxi.server.process import ServerProcess
from yingxi.server.settings import Limits, ServerSettings
from yingxi.server.store import open_queue

BODY = {
    "model": "bench",
    "content": [{"type": "text", "text": "a kite over a hill --dur 2 --rs 480p --fps 8"}],
}
TASKS = "/api/v3/contents/generations/tasks"
ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def client_loop(url: str, key: str, stop_at: float, polls: int, out: dict, lock: threading.Lock) -> None:
    create, get, errors = [], [], []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0) as http:
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            r = http.post(TASKS, json=BODY)
            create.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors.append(f"create {r.status_code}: {r.text[:100]}")
                continue
            task_id = r.json()["id"]
            for _ in range(polls):
                t = time.perf_counter()
                g = http.get(f"{TASKS}/{task_id}")
                get.append(time.perf_counter() - t)
                if g.status_code != 200:
                    errors.append(f"get {g.status_code}: {g.text[:100]}")
    with lock:
        out["create"] += create
        out["get"] += get
        out["errors"] += errors


def reference_loop(url: str, stop_at: float, out: dict, lock: threading.Lock) -> None:
    """The floor: GET /api/v1/health (no auth, no database) through the same server, clients and loopback."""
    times, errors = [], []
    with httpx.Client(base_url=url, timeout=30.0) as http:
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            r = http.get("/api/v1/health")
            times.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors.append(f"health {r.status_code}")
    with lock:
        out["health (ref)"] += times
        out["errors"] += errors


def wait_for_workers(store, n: int | None, timeout: float = 240.0, settle: float = 5.0) -> int:
    """Until `n` workers beat (None: at least one, and no new one for `settle` seconds: a cluster of
    unknown size places one per CPU); then how many do."""
    deadline, seen, since = time.monotonic() + timeout, 0, time.monotonic()
    while True:
        count = len(store.workers())
        if count != seen:
            seen, since = count, time.monotonic()
        if (n is not None and count >= n) or (n is None and count and time.monotonic() - since >= settle):
            return count
        if time.monotonic() > deadline:
            raise SystemExit(f"only {count} Ray workers beat within {timeout:g} s")
        time.sleep(0.5)


def pool_value(text: str) -> str:
    if text in ("local", "ray") or text.startswith("ray://"):
        return text
    raise argparse.ArgumentTypeError(f'must be local, ray or ray://HEAD[:PORT], got "{text}"')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--polls", type=int, default=4, help="GETs per created task")
    p.add_argument(
        "--workers", type=int, help="render workers (default: 1 process here; with Ray, one per CPU)"
    )
    p.add_argument("--database-url", help="the job database (default: SQLite in the temp data dir)")
    p.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL for the run")
    p.add_argument("--servers", type=int, default=1, choices=(1, 2), help="API processes on one database")
    p.add_argument("--pool", default="local", type=pool_value,
                   help="local (worker processes here), ray (start a 2-node loopback cluster) or ray://HEAD")  # fmt: skip
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="yingxi-load-") as tmp, contextlib.ExitStack() as stack:
        data = Path(tmp)
        url = args.database_url
        sys.path.insert(0, str(ROOT))  # the tests' throwaway servers
        if args.postgres:
            from tests.server.postgres import PostgresServer

            pg = PostgresServer().start()
            stack.callback(pg.stop)
            url = pg.new_database()
        pool, workers, pool_workers = args.pool, 1 if args.workers is None else args.workers, 0
        if args.pool == "ray":
            from tests.server.ray_cluster import RayCluster

            cluster = RayCluster(ROOT / "src").start()
            stack.callback(cluster.stop)
            pool = cluster.client_url
        if pool != "local":
            workers, pool_workers = 0, args.workers or 0
        keys = [create_key(data, f"client-{i}", url) for i in range(args.clients)]
        limits = Limits(max_queued_per_tenant=1_000_000, max_jobs_per_hour=10**9)
        settings = ServerSettings(port=0, data_dir=data, workers=workers, limits=limits, database_url=url,
                                  pool=pool, pool_workers=pool_workers)  # fmt: skip
        first = ServerProcess(settings, log_path=data / "a.log").start(
            timeout=240
        )  # a Ray pool connects first
        stack.callback(first.stop)
        servers, placed = [first], workers
        if pool != "local":  # the actors start (import, connect, first heartbeat) before the clock runs
            store = open_queue(url, data)
            stack.callback(store.close)
            placed = wait_for_workers(store, pool_workers or (2 if args.pool == "ray" else None))
        if args.servers == 2:
            second = ServerSettings(port=0, data_dir=data, workers=0, limits=limits, database_url=url)
            servers.append(stack.enter_context(ServerProcess(second, log_path=data / "b.log")))
        server = servers[0]
        results: dict = {"create": [], "get": [], "health (ref)": [], "errors": []}
        lock = threading.Lock()
        ref_seconds = min(5.0, args.seconds / 4)
        ref_stop = time.monotonic() + ref_seconds
        refs = [threading.Thread(target=reference_loop, args=(server.url, ref_stop, results, lock))
                for _ in keys]  # fmt: skip
        for t in refs:
            t.start()
        for t in refs:
            t.join()
        start = time.monotonic()
        stop_at = start + args.seconds
        threads = [threading.Thread(target=client_loop, args=(servers[i % len(servers)].url, k, stop_at,
                                                              args.polls, results, lock))
                   for i, k in enumerate(keys)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        health = httpx.get(server.url + "/api/v1/health").json()
        rendered = sum(1 for d in (data / "tasks").iterdir() if (d / "out" / "video.mp4").exists())

    total = len(results["create"]) + len(results["get"])  # the reference phase ran before, on its own
    ms = 1000.0
    print(f"server load: {args.clients} clients, {args.seconds:g} s, {args.polls} GETs per task, "
          f"{placed} worker(s) ({args.pool}), {os.cpu_count()} CPUs, {'PostgreSQL' if url and url.startswith('postgres') else 'SQLite'}, "
          f"{args.servers} API server(s)")  # fmt: skip
    print(f"{'':<14}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, seconds in (("create", wall), ("get", wall), ("health (ref)", ref_seconds)):
        v = results[name]
        mean = statistics.fmean(v) * ms if v else float("nan")
        print(f"{name:<14}{len(v):>10}{len(v) / seconds:>10.1f}{percentile(v, 0.5) * ms:>10.1f}"
              f"{percentile(v, 0.99) * ms:>10.1f}{mean:>10.1f}")  # fmt: skip
    print(f"{'create+get':<14}{total:>10}{total / wall:>10.1f}")
    print(f"errors: {len(results['errors'])}   films rendered meanwhile: {rendered}   "
          f"still queued at the end: {health['queued']}")  # fmt: skip
    for e in results["errors"][:5]:
        print("  ", e)
    if results["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
