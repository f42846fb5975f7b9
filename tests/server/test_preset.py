"""`preset` through the APIs (in-process): Ark's task body, OpenAI's videos body and a native film script
each carry it to the Film; an unknown name is a 400 naming the closest one."""

from __future__ import annotations

import pytest

from tests.server.conftest import app_client, assert_error
from yingxi.server.inputs import build_film

TASKS = "/api/v3/contents/generations/tasks"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with app_client(tmp_path_factory.mktemp("preset")) as c:
        yield c


def film_of(client, job_id: str):
    job = client.app.state.ctx.store.get(job_id)
    return build_film(job.request, client.data_dir / "tasks" / job_id)


@pytest.mark.parametrize(
    "path,body",
    [
        (
            TASKS,
            {"model": "m", "content": [{"type": "text", "text": "a boat --dur 2"}], "preset": "lightning"},
        ),
        ("/v1/videos", {"prompt": "a boat", "seconds": "4", "preset": "Lightning"}),
        ("/api/v1/films", {"preset": "lightning", "shots": [{"prompt": "a boat", "duration": 2}]}),
    ],
    ids=["ark", "openai", "films"],
)
def test_preset_reaches_the_film(client, path, body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert film_of(client, r.json()["id"]).preset == "lightning"
    plain = {k: v for k, v in body.items() if k != "preset"}
    r = client.post(path, json=plain)
    assert r.status_code == 200, r.text
    assert film_of(client, r.json()["id"]).preset is None


@pytest.mark.parametrize(
    "path,body",
    [
        (TASKS, {"model": "m", "content": [{"type": "text", "text": "a boat"}], "preset": "lightnin"}),
        ("/v1/videos", {"prompt": "a boat", "preset": "lightnin"}),
        ("/api/v1/films", {"preset": "lightnin", "shots": [{"prompt": "a boat", "duration": 2}]}),
    ],
    ids=["ark", "openai", "films"],
)
def test_unknown_preset_is_400_with_the_closest(client, path, body):
    err = assert_error(client.post(path, json=body), 400)
    assert 'did you mean "lightning"' in err["message"]
