"""A real server (uvicorn + worker processes) on a loopback port, shared by a test module."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from yingxi.server.keys import create_key
from yingxi.server.process import ServerProcess
from yingxi.server.settings import Limits, ServerSettings

# Small limits so the size checks are quick to reach; everything else as shipped.
TEST_LIMITS = Limits(max_upload_bytes=1 << 20, max_body_bytes=3 << 20, max_queued_per_tenant=8)


def make_settings(data_dir: Path, **overrides) -> ServerSettings:
    base = dict(port=0, data_dir=data_dir, heartbeat_seconds=0.5, lease_seconds=10.0, poll_seconds=0.1,
                limits=TEST_LIMITS)  # fmt: skip
    base.update(overrides)
    return ServerSettings(**base)


@dataclass
class Live:
    proc: ServerProcess
    alice: str  # API keys of two tenants
    bob: str

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def data_dir(self) -> Path:
        return self.proc.settings.data_dir

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)


def start_live(data_dir: Path, **overrides) -> Live:
    alice, bob = create_key(data_dir, "alice"), create_key(data_dir, "bob")
    return Live(ServerProcess(make_settings(data_dir, **overrides)).start(), alice, bob)


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the session (a fresh database per test: `postgres.new_database()`)."""
    from tests.server.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_live(tmp_path_factory.mktemp("server"))
    yield server
    assert server.proc.stop() == 0, "graceful stop"


@contextmanager
def app_client(data_dir: Path, **overrides):
    """The app in-process (no workers), with tenant alice's key sent on every request; 500s come back as
    responses, so a test can assert on them."""
    from fastapi.testclient import TestClient

    from yingxi.server.app import create_app

    key = create_key(data_dir, "alice")
    app = create_app(ServerSettings(data_dir=data_dir, limits=TEST_LIMITS, **overrides))
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as c:
        c.data_dir = data_dir
        yield c


def png_bytes(width: int = 160, height: int = 90, color: tuple[int, int, int] = (200, 40, 30)) -> bytes:
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = color
    img[: height // 2, : width // 2] = 255 - np.array(color, np.uint8)  # a corner, so orientation is visible
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def wait_for(get: Callable[[], dict], done: Callable[[dict], bool], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = get()
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last state {state}")
        time.sleep(0.2)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert {"code", "message", "param", "type"} <= set(body["error"])
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


# The studio's browser tests (test_studio*.py): Debian's headless Chromium through Playwright, one per module.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]  # fmt: skip


class Server:
    """The live server as the studio tests talk to it: its URL, one tenant's key, its data folder."""

    def __init__(self, url: str, key: str, data_dir: Path):
        self.url, self.key, self.data_dir = url, key, data_dir

    def api(self, method: str, path: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def server(live) -> Server:
    """The real server of `live` (uvicorn + an animatic worker process), as tenant alice."""
    return Server(live.url, live.alice, live.data_dir)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
