"""The worker in-process, against requests made through the app: what a client does mid-render."""

from __future__ import annotations

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


def _refused_port() -> int:
    import socket

    with socket.socket() as s:  # a port nobody listens on: every POST is refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failing_callback_is_tried_three_times_without_a_pause_after_the_last():
    from yingxi.server.callbacks import CallbackSender

    pauses = []
    sender = CallbackSender(allow_private=True, sleep=pauses.append)
    assert sender.submit("cgt-1", f"http://127.0.0.1:{_refused_port()}/hook", {"id": "cgt-1"})
    sender.close(timeout=30)
    assert pauses == [1.0, 3.0] and sender.given_up == ["cgt-1"] and sender.delivered == []


def test_a_callback_to_a_private_address_is_not_retried():
    from yingxi.server.callbacks import CallbackSender

    pauses = []
    sender = CallbackSender(allow_private=False, sleep=pauses.append)
    sender.submit("cgt-2", f"http://127.0.0.1:{_refused_port()}/hook", {})
    sender.close(timeout=30)
    assert pauses == [] and sender.given_up == ["cgt-2"]


def test_a_hanging_callback_does_not_hold_the_worker(tmp_path):
    """The hook answers only when the test lets it; the worker's run_once returns long before."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release, received = threading.Event(), []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(self.rfile.read(int(self.headers["content-length"])))
            release.wait(30)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    key = create_key(tmp_path, "alice")
    settings = ServerSettings(
        data_dir=tmp_path, limits=TEST_LIMITS, allow_callbacks=True, allow_private_urls=True
    )
    body = {"model": "m", "content": [{"type": "text", "text": "a boat --dur 2 --rs 480p --fps 8"}],
            "callback_url": f"http://127.0.0.1:{hook.server_address[1]}/hook"}  # fmt: skip
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        created = client.post("/api/v3/contents/generations/tasks", json=body)
        assert created.status_code == 200, created.text
    worker = Worker(settings)
    try:
        assert worker.run_once()  # rendered, published, callback queued
        assert not release.is_set()  # returned while the hook still holds the request (or before it came)
        assert worker.store.get(created.json()["id"]).status.value == "succeeded"
    finally:
        release.set()
        worker.close(timeout=30)
        hook.shutdown()
    assert worker._callbacks.delivered == [created.json()["id"]]
    assert b'"status":"succeeded"' in received[0].replace(b" ", b"")
