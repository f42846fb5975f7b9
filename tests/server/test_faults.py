"""Faults: a worker killed mid-job, the server crashing or stopping with queued and running jobs, a queued
job cancelled, callbacks. One worker, so the queue order is known."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from tests.server.conftest import start_live, wait_for
from yingxi.media.video import read_video
from yingxi.server.jobs import pid_alive
from yingxi.server.process import ServerProcess

TASKS = "/api/v3/contents/generations/tasks"
LONG = "Shot 1 (2s, wide, pan left): a long road.\nShot 2 (2s): a hill.\nShot 3 (2s, dolly in): a house. --fps 8"  # 48 frames


def body(text, **fields):
    return {"model": "m", "content": [{"type": "text", "text": text}], "resolution": "480p", **fields}


def row(live, task_id):
    with sqlite3.connect(live.data_dir / "jobs.db") as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM jobs WHERE id=?", (task_id,)).fetchone())


def get(http, task_id):
    return http.get(f"{TASKS}/{task_id}").json()


def finished(task):
    return task["status"] not in ("queued", "running")


def wait_running(live, http, task_id):
    """Until the job is mid-render: claimed and past its first progress report."""
    wait_for(lambda: get(http, task_id), lambda t: t["status"] == "running" and t["progress"] > 0, timeout=60)
    return int(row(live, task_id)["worker"].split(":")[1])  # host:pid:nonce


class Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_live(tmp_path_factory.mktemp("faults"), allow_callbacks=True, allow_private_urls=True)
    yield server
    server.proc.stop()


def test_worker_killed_mid_job_is_retried_with_one_output(live, tmp_path):
    with live.http(live.alice) as http:
        task_id = http.post(TASKS, json=body(LONG)).json()["id"]
        pid = wait_running(live, http, task_id)
        os.kill(pid, signal.SIGKILL)
        task = wait_for(lambda: get(http, task_id), finished, timeout=90)
        assert task["status"] == "succeeded" and task["attempts"] == 2
        assert int(row(live, task_id)["worker"].split(":")[1]) != pid  # a new worker finished it
        out = live.data_dir / "tasks" / task_id / "out"
        assert sorted(p.name for p in out.iterdir()) == ["last_frame.png", "video.mp4"]  # nothing left over
        path = tmp_path / "v.mp4"
        path.write_bytes(httpx.get(task["content"]["video_url"]).content)
    info = read_video(path)
    assert info.num_frames == task["frames"] == 6 * 8 and (info.width, info.height) == (864, 480)


def test_cancelled_queued_task_never_runs(live):
    with live.http(live.alice) as http:
        blocker = http.post(TASKS, json=body(LONG)).json()["id"]
        target = http.post(TASKS, json=body("a small boat --dur 2 --fps 8")).json()["id"]
        assert get(http, target)["status"] == "queued"  # one worker, busy with the blocker
        assert http.delete(f"{TASKS}/{target}").status_code == 200
        assert get(http, target)["status"] == "cancelled"
        wait_for(lambda: get(http, blocker), finished, timeout=90)
        time.sleep(1.0)  # the worker is idle again and looking for work
        task = get(http, target)
        assert task["status"] == "cancelled" and task["attempts"] == 0 and "content" not in task
        assert not (live.data_dir / "tasks" / target / "out").exists()
        # A cancelled task is finished: a second DELETE removes its record.
        http.delete(f"{TASKS}/{target}")
        assert http.get(f"{TASKS}/{target}").status_code == 404


def test_callback_posts_the_finished_task(live):
    Hook.received = []
    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/done"
        with live.http(live.alice) as http:
            r = http.post(TASKS, json=body("a paper crane --dur 2 --fps 8", callback_url=url))
            assert r.status_code == 200, r.text
            wait_for(lambda: Hook.received, bool, timeout=60)
        task = Hook.received[0]
        assert task["id"] == r.json()["id"] and task["status"] == "succeeded"
        assert httpx.get(task["content"]["video_url"]).status_code == 200
    finally:
        hook.shutdown()


def test_server_crash_and_graceful_restart_lose_no_job(live):
    proc: ServerProcess = live.proc
    with live.http(live.alice) as http:
        running = http.post(TASKS, json=body(LONG)).json()["id"]
        queued = [http.post(TASKS, json=body(f"scene {i} --dur 2 --fps 8")).json()["id"] for i in range(2)]
        worker = wait_running(live, http, running)
    proc.stop(kill=True)  # a crash: the server dies, its worker notices it is orphaned and exits
    wait_for(lambda: not pid_alive(worker), bool, timeout=10)
    proc.start()
    with live.http(live.alice) as http:
        tasks = [wait_for(lambda t=t: get(http, t), finished, timeout=90) for t in [running, *queued]]
        assert [t["status"] for t in tasks] == ["succeeded"] * 3
        assert [t["attempts"] for t in tasks] == [2, 1, 1]  # the crash cost the running job one attempt

        again = http.post(TASKS, json=body(LONG)).json()["id"]
        wait_running(live, http, again)
    assert proc.stop() == 0  # graceful: the worker is stopped and its job requeued without losing an attempt
    assert (row(live, again)["status"], row(live, again)["attempts"]) == ("queued", 0)
    proc.start()
    with live.http(live.alice) as http:
        task = wait_for(lambda: get(http, again), finished, timeout=90)
        assert (task["status"], task["attempts"]) == ("succeeded", 1)


def test_a_stopped_worker_is_killed_and_its_job_finished_by_another(live):
    """SIGSTOP: the process is there but does nothing; after the lease the supervisor kills it."""
    with live.http(live.alice) as http:
        task_id = http.post(TASKS, json=body(LONG)).json()["id"]
        pid = wait_running(live, http, task_id)
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: not pid_alive(pid) or _zombie(pid), bool, timeout=60)
        finally:
            if pid_alive(pid):
                os.kill(pid, signal.SIGCONT)
        task = wait_for(lambda: get(http, task_id), finished, timeout=90)
        assert task["status"] == "succeeded" and task["attempts"] == 2
        assert int(row(live, task_id)["worker"].split(":")[1]) != pid


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")  # killed, not yet reaped by its parent
    except FileNotFoundError:
        return True
