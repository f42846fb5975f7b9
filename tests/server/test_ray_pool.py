"""`yingxi serve --pool ray://HEAD` on a real two-node Ray cluster (loopback, CPU, the animatic) with a real
PostgreSQL: jobs are spread over both nodes, and killing one node's raylet mid-job gets that job retried on
the other with exactly one output. One cluster for the module: starting Ray is the slow part."""

from __future__ import annotations

import time
from pathlib import Path

import av
import httpx
import pytest

from tests.server.conftest import make_settings, wait_for
from tests.server.ray_cluster import RayCluster, is_loopback, tcp_endpoints
from yingxi.server.keys import create_key
from yingxi.server.process import ServerProcess
from yingxi.server.ray_pool import ray_address
from yingxi.server.store import open_queue

TASKS = "/api/v3/contents/generations/tasks"
SRC = Path(__file__).resolve().parents[2] / "src"


def body(text: str) -> dict:
    return {"model": "m", "content": [{"type": "text", "text": text}]}


def finished(task: dict) -> bool:
    return task["status"] not in ("queued", "running")


def node_of(worker: str | None) -> str:
    """The host part of a worker id host:pid:nonce: Ray's node name for a Ray actor."""
    return (worker or "").split(":")[0]


@pytest.fixture(scope="module")
def served(postgres, tmp_path_factory):
    """node-a (head) and node-b, one CPU each: `serve --pool ray://...` places one worker actor on each."""
    cluster = RayCluster(SRC)
    server = None
    data = tmp_path_factory.mktemp("ray-served")
    try:
        cluster.start()
        url = postgres.new_database()
        settings = make_settings(data, database_url=url, pool=cluster.client_url, lease_seconds=8.0)
        server = ServerProcess(settings, log_path=data / "serve.log").start(timeout=240)
        key = create_key(data, "alice", url)
        store = open_queue(url, data)
        wait_for(lambda: {"workers": store.workers()}, lambda s: len(s["workers"]) == 2, timeout=240)
        print(f"ray start (seconds since the head's launch): {cluster.start_seconds}")  # shown by pytest -s
        yield cluster, server, store, key, data
    finally:
        if server is not None:
            assert server.stop(timeout=60) == 0, "the pool drains and serve exits cleanly"
        cluster.stop(keep_logs=data / "ray-logs")


def test_pool_values_name_a_ray_address():
    assert ray_address("ray") is None
    assert ray_address("ray://head") == "ray://head:10001"
    assert ray_address("ray://10.0.0.5:20001/") == "ray://10.0.0.5:20001"
    with pytest.raises(ValueError, match="ray://HEAD"):
        ray_address("ray:/head")


def test_every_ray_component_stays_on_loopback(served):
    cluster, server, *_ = served
    sockets = tcp_endpoints([*cluster.pids(), server.proc.pid])
    assert sockets, "Ray holds sockets"
    outside = [(local, remote) for local, remote, state in sockets
               if not is_loopback(local) or (state != "LISTEN" and not is_loopback(remote))]  # fmt: skip
    assert outside == []


def test_each_worker_stops_with_its_raylet(served):
    """A worker whose raylet dies must stop claiming at once: Ray's own shutdown of the orphan takes seconds,
    long enough to claim the job the pool has just requeued (seen in CI as a third attempt)."""
    cluster, _, store, _, data = served
    names = [w["name"] for w in store.workers()]

    def placed_lines() -> dict:  # the pool logs a worker once it has learnt its name, a step after it beats
        lines = (data / "serve.log").read_text().splitlines()
        return {n: [line for line in lines if f"worker {n} runs on Ray node" in line] for n in names}

    logged = wait_for(placed_lines, lambda found: all(found.values()), timeout=30)
    for name, placed in logged.items():
        raylet = cluster.node(node_of(name)).raylet_pid()
        assert placed and placed[0].endswith(f"under raylet pid {raylet}"), placed


def test_jobs_are_spread_over_both_nodes(served):
    _, server, store, key, _ = served
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        ids = [
            http.post(TASKS, json=body(f"a kite {i} --dur 2 --rs 480p --fps 8")).json()["id"]
            for i in range(4)
        ]
        for task_id in ids:
            task = wait_for(lambda t=task_id: http.get(f"{TASKS}/{t}").json(), finished, timeout=180)
            assert task["status"] == "succeeded", task
    nodes = {node_of(store.get(i).worker) for i in ids}
    assert nodes == {"node-a", "node-b"}, [store.get(i).worker for i in ids]


def test_a_killed_node_s_job_is_retried_on_the_other_with_one_output(served, tmp_path):
    import os
    import signal

    cluster, server, store, key, data = served
    long = (
        "Shot 1 (3s, wide, pan left): a road.\nShot 2 (3s): a hill.\nShot 3 (3s): a house. --rs 480p --fps 8"
    )
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        ids = [http.post(TASKS, json=body(long)).json()["id"] for _ in range(2)]  # one on each node
        wait_for(lambda: {"jobs": [store.get(i) for i in ids]},
                 lambda s: all(j.status.value == "running" and j.progress > 0 for j in s["jobs"]), timeout=180)  # fmt: skip
        on_b = next(i for i in ids if node_of(store.get(i).worker) == "node-b")
        killed_worker = store.get(on_b).worker
        os.kill(cluster.node("node-b").raylet_pid(), signal.SIGKILL)
        killed_at = time.monotonic()
        tasks = {i: wait_for(lambda t=i: http.get(f"{TASKS}/{t}").json(), finished, timeout=240) for i in ids}
        retried_in = time.monotonic() - killed_at
    assert all(t["status"] == "succeeded" for t in tasks.values()), tasks
    job = store.get(on_b)
    pool_lines = [line for line in (data / "serve.log").read_text().splitlines() if "yingxi.server " in line]
    retried = (job.attempts, job.worker, killed_worker, pool_lines[-12:])
    assert job.attempts == 2 and node_of(job.worker) == "node-a" and job.worker != killed_worker, retried
    assert retried_in < 200
    out = data / "tasks" / on_b / "out"
    names = sorted(p.name for p in out.iterdir())
    assert [n for n in names if n.endswith(".mp4")] == ["video.mp4"], names  # one output
    assert not [n for n in names if "attempt" in n or "partial" in n], names  # the killed attempt's are gone
    with av.open(str(out / "video.mp4")) as f:
        assert sum(1 for _ in f.decode(video=0)) == 72  # 9 s at 8 fps: one whole film


def test_a_joining_node_takes_the_lost_slot_and_the_pool_grows_onto_it(served):
    """After node-b's loss the cluster has 1 CPU and the pool a pending slot; node-c joins with 2 CPUs: the
    pending worker lands there and the pool places one more (it reads the cluster's size every 10 s)."""
    cluster, server, store, key, _ = served
    cluster.add_node("node-c", cpus=2)
    on_c = wait_for(lambda: {"workers": [w["name"] for w in store.workers() if node_of(w["name"]) == "node-c"]},
                    lambda s: len(s["workers"]) == 2, timeout=180)["workers"]  # fmt: skip
    assert len({w["name"] for w in store.workers()}) == 3
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        ids = [
            http.post(TASKS, json=body(f"a bell {i} --dur 2 --rs 480p --fps 8")).json()["id"]
            for i in range(3)
        ]
        for task_id in ids:
            task = wait_for(lambda t=task_id: http.get(f"{TASKS}/{t}").json(), finished, timeout=180)
            assert task["status"] == "succeeded", task
    assert {store.get(i).worker for i in ids} & set(on_c), [store.get(i).worker for i in ids]


def test_serve_refuses_a_bad_pool_in_one_line(tmp_path, capsys):
    from yingxi.cli import main

    assert main(["serve", "--data-dir", str(tmp_path), "--pool", "rays://head"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--pool must be local, ray or ray://HEAD[:PORT]" in err
    assert main(["serve", "--data-dir", str(tmp_path), "--pool", "ray", "--pool-workers", "-1"]) == 2
    assert "--pool-workers" in capsys.readouterr().err
