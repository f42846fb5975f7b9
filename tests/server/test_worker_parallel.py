"""`yingxi worker --parallel ulysses=2 --backend wan` on a tiny model: two gloo ranks (CPU test mode) take a
job from the SQLite store and write the film a one-process worker writes for the same request, frame for
frame (the split attention sums in another order: float32 rounding, within one uint8 level). SIGTERM to the
worker's parent stops its ranks too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.e2e.helpers import decode
from tests.models.wan.tiny import save_tiny_wan
from tests.server.conftest import app_client
from yingxi.pipelines.runtime import Runtime
from yingxi.server.worker import Worker

SCRIPT = {"size": "32x32", "fps": 16, "seed": 4, "shots": [{"prompt": "a kite", "duration": 0.25}]}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel-worker")
    folder = save_tiny_wan(root / "t2v", "t2v")
    with app_client(root / "data", backend="wan", model=str(folder), runtime=Runtime(device="cpu")) as c:
        c.folder = folder
        yield c


def _frames(client, film: dict, tmp_path, name: str) -> np.ndarray:
    assert film["status"] == "succeeded", film
    path = tmp_path / name
    path.write_bytes(client.get(film["video_url"]).content)
    return decode(path)[0]


def _submit(client) -> str:
    r = client.post("/api/v1/films", json=SCRIPT)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def test_a_parallel_worker_renders_the_film_of_one_process(client, tmp_path):
    one = _submit(client)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert Worker(client.app.state.ctx.settings).run_once()
    finally:
        torch.set_num_threads(before)
    reference = _frames(client, client.get(f"/api/v1/films/{one}").json(), tmp_path, "one.mp4")

    two = _submit(client)
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "yingxi.cli", "worker", "--backend", "wan", "--model", str(client.folder),
         "--data-dir", str(client.data_dir), "--device", "cpu", "--parallel", "ulysses=2"],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        film = client.get(f"/api/v1/films/{two}").json()
        while film["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(0.5)
            film = client.get(f"/api/v1/films/{two}").json()
        worker.terminate()  # SIGTERM to the parent alone, as a supervisor sends it: it takes its ranks along
        assert worker.wait(30) == 128 + signal.SIGTERM
        with pytest.raises(ProcessLookupError):  # no rank left in the worker's session
            os.killpg(worker.pid, 0)
    finally:
        try:  # whatever failed above: no process of this test outlives it
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        worker.wait(30)
        log.close()
    frames = _frames(client, film, tmp_path, "two.mp4")
    assert frames.shape == reference.shape and reference.std() > 5
    assert np.abs(frames.astype(int) - reference.astype(int)).max() <= 1
    assert "CPU test mode: 2 gloo processes" in (tmp_path / "worker.log").read_text()
