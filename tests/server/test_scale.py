"""Several API servers and workers on one PostgreSQL and one shared artifact folder: what a platform team
runs. A task created through one server is listed, polled, cancelled and downloaded through another;
a worker started with `yingxi worker` on its own takes the jobs."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import av
import pytest

from tests.server.conftest import make_settings, wait_for
from yingxi.server.keys import create_key
from yingxi.server.process import ServerProcess

TASKS = "/api/v3/contents/generations/tasks"


def body(text: str) -> dict:
    return {"model": "m", "content": [{"type": "text", "text": text}]}


def finished(task: dict) -> bool:
    return task["status"] not in ("queued", "running")


@pytest.fixture(scope="module")
def pair(postgres, tmp_path_factory):
    """Server A renders (one worker); server B only answers (workers=0); same database, same folder."""
    url = postgres.new_database()
    data = tmp_path_factory.mktemp("shared")
    a = ServerProcess(make_settings(data, database_url=url), log_path=data / "a.log").start()
    b = ServerProcess(make_settings(data, database_url=url, workers=0), log_path=data / "b.log").start()
    key = create_key(data, "alice", url)
    yield a, b, key, url, data
    b.stop()
    a.stop()


def test_a_task_made_on_one_server_is_served_by_the_other(pair, tmp_path):
    import httpx

    a, b, key, _, _ = pair
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=a.url, headers=auth, timeout=30) as on_a, \
         httpx.Client(base_url=b.url, headers=auth, timeout=30) as on_b:  # fmt: skip
        created = on_a.post(TASKS, json=body("a paper boat --dur 2 --rs 480p --fps 8"))
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        listed = on_b.get(TASKS).json()
        assert task_id in [t["id"] for t in listed["items"]]
        task = wait_for(lambda: on_b.get(f"{TASKS}/{task_id}").json(), finished, timeout=90)
        assert task["status"] == "succeeded", task
        # The signed link A's worker handed out, asked of B: B verifies it with the shared secret.
        link = urlsplit(task["content"]["video_url"])
        on_b_link = urlunsplit(link._replace(netloc=urlsplit(b.url).netloc))
        video = httpx.get(on_b_link, timeout=30)
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        path = tmp_path / "film.mp4"
        path.write_bytes(video.content)
        with av.open(str(path)) as f:
            frames = sum(1 for _ in f.decode(video=0))
        assert frames == 16  # 2 s at 8 fps
        tampered = on_b_link.replace("signature=", "signature=0")
        assert httpx.get(tampered, timeout=30).status_code == 403


def test_a_task_made_on_one_server_is_cancelled_through_the_other(pair):
    import httpx

    a, b, key, _, _ = pair
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=a.url, headers=auth, timeout=30) as on_a, \
         httpx.Client(base_url=b.url, headers=auth, timeout=30) as on_b:  # fmt: skip
        long = "Shot 1 (15s, wide): a long river.\nShot 2 (15s, wide): the ice."
        task_id = on_b.post(TASKS, json=body(long)).json()["id"]
        assert on_a.delete(f"{TASKS}/{task_id}").status_code in (200, 204)
        task = wait_for(lambda: on_b.get(f"{TASKS}/{task_id}").json(), finished, timeout=60)
        assert task["status"] == "cancelled"
        assert on_a.get(f"{TASKS}/{task_id}").json()["status"] == "cancelled"


def test_a_standalone_worker_takes_jobs_from_the_shared_database(postgres, tmp_path):
    """Only an API server without workers, and `yingxi worker` in its own process: the job gets done."""
    import httpx

    url = postgres.new_database()
    api = ServerProcess(make_settings(tmp_path, database_url=url, workers=0)).start()
    key = create_key(tmp_path, "bob", url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "yingxi.cli", "worker", "--data-dir", str(tmp_path), "--database-url", url],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "wb"),
    )  # fmt: skip
    try:
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            task_id = http.post(TASKS, json=body("a lantern --dur 2 --rs 480p --fps 8")).json()["id"]
            task = wait_for(lambda: http.get(f"{TASKS}/{task_id}").json(), finished, timeout=120)
            assert task["status"] == "succeeded", (task, (tmp_path / "worker.log").read_text()[-2000:])
    finally:
        worker.terminate()
        assert worker.wait(30) == 0  # SIGTERM: a clean stop
        api.stop()


def test_a_database_restart_mid_job_loses_nothing_and_completes_once(tmp_path):
    """PostgreSQL goes down while a film renders and comes back: the API answers 503 meanwhile (never a
    500), and the job ends succeeded exactly once with one output."""
    import httpx

    from tests.server.postgres import PostgresServer

    pg = PostgresServer().start()
    server = None
    try:
        url = pg.new_database()
        server = ServerProcess(make_settings(tmp_path, database_url=url)).start()
        key = create_key(tmp_path, "alice", url)
        long = "Shot 1 (3s, wide, pan left): a road.\nShot 2 (3s): a hill.\nShot 3 (3s): a house. --fps 8"
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as http:
            task_id = http.post(TASKS, json=body(long)).json()["id"]
            wait_for(lambda: http.get(f"{TASKS}/{task_id}").json(), lambda t: t.get("progress", 0) > 0, 90)
            pg.restart(down_seconds=2)
            statuses = set()

            def poll() -> dict:
                r = http.get(f"{TASKS}/{task_id}")
                statuses.add(r.status_code)
                return r.json() if r.status_code == 200 else {"status": "running"}

            task = wait_for(poll, finished, timeout=120)
        assert task["status"] == "succeeded", task
        assert statuses <= {200, 503}, statuses
        out = tmp_path / "tasks" / task_id / "out"
        assert sorted(p.name for p in out.iterdir() if p.suffix == ".mp4") == ["video.mp4"]
    finally:
        if server is not None:
            server.stop()
        pg.stop()
