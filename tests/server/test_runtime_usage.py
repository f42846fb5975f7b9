"""The server's Runtime and a request's own step cache, end to end on a tiny Wan model (in-process app and
worker): the transformer evaluations that ran and were skipped appear in each API's task (Ark `usage`, the
OpenAI video object, the native film task), and a misspelt cache is a 400 naming the closest."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from tests.models.wan.tiny import save_tiny_wan
from tests.server.conftest import app_client, assert_error
from yingxi.pipelines.runtime import Runtime
from yingxi.pipelines.wan.cache import CacheSpec, magcache_plan
from yingxi.server.views import ark_task, openai_video
from yingxi.server.worker import Worker

TASKS = "/api/v3/contents/generations/tasks"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime")
    folder = save_tiny_wan(root / "t2v", "t2v")
    lora = root / "lightning.safetensors"  # a distillation LoRA stand-in: the preset's files are given
    g = torch.Generator().manual_seed(1)
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.randn(2, 32, generator=g),
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.randn(32, 2, generator=g)},
              str(lora))  # fmt: skip
    runtime = Runtime(device="cpu", batched_guidance=True)  # the server's: no cache unless a request asks
    with app_client(root / "data", backend="wan", model=str(folder), runtime=runtime,
                    loras=((str(lora), 1.0),)) as c:  # fmt: skip
        yield c


def _render(client) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats two shared cores
    try:
        assert Worker(client.app.state.ctx.settings).run_once()
    finally:
        torch.set_num_threads(before)


def test_a_films_own_magcache_is_counted_in_its_usage(client):
    # 50 guided steps (the 1.3B variant's defaults), batched: MagCache skips pairs on the cond ratios
    script = {"size": "32x32", "fps": 16, "seed": 1, "cache": "magcache",
              "shots": [{"prompt": "a kite", "duration": 0.25}]}  # fmt: skip
    r = client.post("/api/v1/films", json=script)
    assert r.status_code == 200, r.text
    _render(client)
    film = client.get(f"/api/v1/films/{r.json()['id']}").json()
    assert film["status"] == "succeeded", film
    skipped = 2 * len(magcache_plan(CacheSpec("magcache", 0.06), "t2v-1.3B", 50, "cond"))
    assert skipped > 0
    assert film["usage"] == {"evaluations": 100 - skipped, "skipped_evaluations": skipped,
                             "cache": "magcache:0.06"}  # fmt: skip


def test_lightning_usage_in_every_api_view(client):
    # Rendered through the native film API at 32x32 (an Ark or OpenAI request is 480p at least, which the
    # tiny VAE decodes in over a minute on this machine); the Ark and OpenAI views of that real job are
    # the same numbers, and their request paths store the request's own cache (checked queued below).
    script = {"size": "32x32", "fps": 16, "seed": 2, "preset": "lightning",
              "shots": [{"prompt": "a kite", "duration": 0.25}]}  # fmt: skip
    r = client.post("/api/v1/films", json=script)
    assert r.status_code == 200, r.text
    _render(client)
    film = client.get(f"/api/v1/films/{r.json()['id']}").json()
    assert film["status"] == "succeeded", film
    expected = {"evaluations": 4, "skipped_evaluations": 0, "cache": None}  # 4 steps, guidance 1, no cache
    assert film["usage"] == expected
    job = client.app.state.ctx.store.get(r.json()["id"])
    assert openai_video(job)["usage"] == expected
    usage = ark_task(job, lambda *a: "http://x/v")["usage"]
    assert {k: usage[k] for k in expected} == expected and usage["completion_tokens"] > 0

    ark = client.post(TASKS, json={"model": "wan", "resolution": "480p", "frames": 29, "cache": "TeaCache:0.2",
                                   "content": [{"type": "text", "text": "a kite"}]})  # fmt: skip
    video = client.post("/v1/videos", json={"prompt": "a kite", "seconds": "1", "size": "480x480",
                                            "preset": "lightning", "cache": "none"})  # fmt: skip
    assert ark.status_code == 200 and video.status_code == 200, (ark.text, video.text)
    store = client.app.state.ctx.store
    assert store.get(ark.json()["id"]).request["api"]["cache"] == "teacache:0.2"
    assert store.get(video.json()["id"]).request["api"]["cache"] == "none"  # off for this one video
    assert "usage" not in video.json() and "usage" not in client.get(f"{TASKS}/{ark.json()['id']}").json()
    client.delete(f"/v1/videos/{video.json()['id']}")
    client.delete(f"{TASKS}/{ark.json()['id']}")


@pytest.mark.parametrize(
    "path,body",
    [
        (TASKS, {"model": "wan", "content": [{"type": "text", "text": "a kite"}], "cache": "magcach"}),
        ("/v1/videos", {"prompt": "a kite", "cache": "magcach"}),
        ("/api/v1/films", {"cache": "magcach", "shots": [{"prompt": "a kite", "duration": 1}]}),
    ],
)
def test_a_misspelt_cache_is_400_naming_the_closest(client, path, body):
    err = assert_error(client.post(path, json=body), 400)
    assert 'did you mean "magcache"' in err["message"] and err.get("param") == "cache"


def test_cache_is_refused_where_the_server_does_not_allow_it(tmp_path):
    with app_client(tmp_path / "a") as animatic:  # no steps to skip
        err = assert_error(animatic.post("/v1/videos", json={"prompt": "a kite", "cache": "magcache"}), 400)
        assert "wan backend" in err["message"]
    folder = save_tiny_wan(tmp_path / "t2v", "t2v")
    with app_client(tmp_path / "b", backend="wan", model=str(folder), request_cache=False,
                    runtime=Runtime(cache="teacache")) as fixed:  # fmt: skip
        err = assert_error(fixed.post("/v1/videos", json={"prompt": "a kite", "cache": "none"}), 400)
        assert "request_cache is off" in err["message"]
