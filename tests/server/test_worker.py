"""The worker in-process, against requests made through the app: what a client does mid-render."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from tests.server.conftest import TEST_LIMITS
from yingxi.backends.animatic import AnimaticGenerator
from yingxi.server.app import create_app
from yingxi.server.keys import create_key
from yingxi.server.settings import ServerSettings
from yingxi.server.worker import Worker


class CallsFirst:
    """A backend that runs `before()` when its first shot starts, then shoots it as the animatic does."""

    def __init__(self, before):
        self.inner, self.before, self.calls = AnimaticGenerator(), before, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, request, progress=None):
        self.calls += 1
        if self.calls == 1:
            self.before()
        return self.inner.generate(request, progress)


def test_a_video_deleted_while_rendering_leaves_no_record_and_no_files(tmp_path):
    key = create_key(tmp_path, "alice")
    settings = ServerSettings(data_dir=tmp_path, limits=TEST_LIMITS, heartbeat_seconds=60.0)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        created = client.post("/v1/videos", json={"prompt": "a boat", "seconds": "2", "size": "864x480"})
        assert created.status_code == 200, created.text
        video_id = created.json()["id"]
        worker = Worker(settings)
        worker._backend = CallsFirst(lambda: client.delete(f"/v1/videos/{video_id}").raise_for_status())
        assert worker.run_once()
        assert worker._backend.calls == 1
        assert client.get(f"/v1/videos/{video_id}").status_code == 404
    assert not (tmp_path / "tasks" / video_id).exists()  # the attempt's files went with the record


def test_a_failing_callback_is_tried_three_times_without_a_pause_after_the_last(tmp_path, monkeypatch):
    import socket

    from yingxi.server import worker as worker_module

    with socket.socket() as s:  # a port nobody listens on: every POST is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = create_key(tmp_path, "alice")
    settings = ServerSettings(
        data_dir=tmp_path, limits=TEST_LIMITS, allow_callbacks=True, allow_private_urls=True
    )
    body = {"model": "m", "content": [{"type": "text", "text": "a boat --dur 2 --rs 480p --fps 8"}],
            "callback_url": f"http://127.0.0.1:{port}/hook"}  # fmt: skip
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        created = client.post("/api/v3/contents/generations/tasks", json=body)
        assert created.status_code == 200, created.text
    pauses = []
    monkeypatch.setattr(worker_module.time, "sleep", pauses.append)
    posts = []
    real_post = httpx.post

    def post(url, **kw):
        posts.append(url)
        return real_post(url, **kw)  # refused: httpx.ConnectError

    monkeypatch.setattr(httpx, "post", post)
    assert Worker(settings).run_once()
    assert len(posts) == 3 and pauses == [1.0, 3.0]  # was 1, 3 and 5 s: the last pause held the worker idle
