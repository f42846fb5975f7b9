"""The Wan backend is a setting: the API builds it without weights and refuses, before queueing, what the
model cannot make (a tiny random Wan folder stands in for real weights; nothing is rendered here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import assert_error, data_url, png_bytes
from yingxi.errors import InputError
from yingxi.pipelines.runtime import Runtime
from yingxi.server.app import create_app
from yingxi.server.keys import create_key
from yingxi.server.settings import ServerSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
from tiny import save_tiny_wan  # noqa: E402

TASKS = "/api/v3/contents/generations/tasks"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan-door")
    folder = save_tiny_wan(root / "tiny-t2v", "t2v")
    settings = ServerSettings(data_dir=root / "data", backend="wan", model=str(folder))
    key = create_key(settings.data_dir, "alice")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as c:
        yield c


def test_the_model_limits_are_checked_at_the_door(client):
    ok = client.post(TASKS, json={"model": "wan", "resolution": "480p", "ratio": "21:9",
                                  "content": [{"type": "text", "text": "a cat on a wall --dur 2"}]})  # fmt: skip
    assert ok.status_code == 200, ok.text
    task = client.get(f"{TASKS}/{ok.json()['id']}").json()
    assert (task["status"], task["resolution"], task["ratio"]) == ("queued", "480p", "21:9")

    # 720p is more than this model makes: the director scales the shots into its pixel budget, not a 400.
    big = {"model": "wan", "resolution": "720p", "content": [{"type": "text", "text": "a cat --dur 2"}]}
    big_task = client.post(TASKS, json=big)
    assert big_task.status_code == 200
    # A shot longer than the model makes in one go is refused before queueing.
    err = assert_error(client.post(TASKS, json={"model": "wan", "resolution": "480p", "ratio": "21:9",
                                                "content": [{"type": "text", "text": "Shot 1 (14s): a cat"}]}), 400)  # fmt: skip
    assert "frames" in err["message"] or "second" in err["message"]

    first_frame = {"type": "image_url", "image_url": {"url": data_url(png_bytes())}, "role": "first_frame"}
    i2v = {"model": "wan", "resolution": "480p", "ratio": "21:9",
           "content": [{"type": "text", "text": "a cat --dur 2"}, first_frame]}  # fmt: skip
    err = assert_error(client.post(TASKS, json=i2v), 400)
    assert "first" in err["message"].lower()
    # The refused image was saved to be checked, then removed with its task folder.
    tasks_dir = Path(client.app.state.ctx.settings.tasks_dir)
    assert {p.name for p in tasks_dir.iterdir()} <= {ok.json()["id"], big_task.json()["id"]}


def test_the_wan_backend_needs_a_model(tmp_path):
    with pytest.raises(ValueError, match="needs a model"):
        create_app(ServerSettings(data_dir=tmp_path, backend="wan"))


def test_worker_builds_wan_with_the_offload_setting(tmp_path):
    from yingxi.server.worker import make_backend

    folder = save_tiny_wan(tmp_path / "tiny", "t2v")
    runtime = Runtime(device="cpu", offload="blocks", cache="magcache", weights="fp8", dtype="bf16")
    settings = ServerSettings(data_dir=tmp_path / "data", backend="wan", model=str(folder), runtime=runtime)
    backend = make_backend(settings, 0)
    assert backend.runtime == runtime and backend.cache is not None and backend.cache.name == "magcache"
    assert ServerSettings.from_dict(settings.to_dict()).runtime == runtime  # survives the trip to a worker
    with pytest.raises(InputError, match="offload") as bad:
        Runtime(offload="gpu")
    assert bad.value.field == "offload"
