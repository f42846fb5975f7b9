"""Bad requests get the right 4xx with an Ark/OpenAI error body, never a 500, and the server keeps serving."""

from __future__ import annotations

import base64
import json

import pytest

from tests.server.conftest import assert_error, data_url, png_bytes

TASKS = "/api/v3/contents/generations/tasks"


def ark_body(*items, text="a quiet harbour at dawn --dur 2 --rs 480p", **fields):
    return {"model": "m", "content": [{"type": "text", "text": text}, *items], **fields}


def image_item(url, role="reference_image"):
    return {"type": "image_url", "image_url": {"url": url}, "role": role}


@pytest.fixture
def http(live):
    with live.http(live.alice) as client:
        yield client
        # After every bad request the server still answers a good one.
        assert client.get(TASKS, params={"page_size": 1}).status_code == 200


def test_missing_or_wrong_key_is_401(live):
    with live.http() as anonymous:
        assert_error(anonymous.get(TASKS), 401, "AuthenticationError")
        assert_error(anonymous.post(TASKS, json=ark_body()), 401)
        assert_error(anonymous.get("/v1/videos"), 401)
        assert_error(anonymous.post("/api/v1/films", json={}), 401)
        assert_error(anonymous.get(TASKS, headers={"Authorization": "Basic abc"}), 401)
    with live.http("yx-not-a-key") as wrong:
        assert_error(wrong.get(TASKS + "/cgt-1"), 401)


def test_malformed_json_and_wrong_types(http):
    assert_error(http.post(TASKS, content=b'{"model": "m", "content": [', headers={"content-type": "application/json"}),
                 400)  # fmt: skip
    assert_error(http.post(TASKS, json=["not", "an", "object"]), 400)
    err = assert_error(http.post(TASKS, json={"model": "m", "content": "text"}), 422)
    assert err["param"] == "content"
    err = assert_error(http.post(TASKS, json=ark_body(duration="five")), 422)
    assert err["param"] == "duration"
    assert_error(http.post(TASKS, json={"content": [{"type": "text", "text": "x"}]}), 422)
    assert_error(http.post(TASKS, json=ark_body({"type": "gif_url", "gif_url": {"url": "x"}})), 422)
    assert_error(http.post(TASKS, content=b"model=m", headers={"content-type": "application/x-www-form-urlencoded"}),
                 415)  # fmt: skip
    assert_error(http.get(TASKS, params={"page_size": "lots"}), 422)
    assert_error(http.post(TASKS, content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"}),
                 400)  # fmt: skip
    garbage = b'--xyz\r\nContent-Disposition: form-data; name="request"\r\n\r\n{}'  # no closing boundary
    r = http.post(TASKS, content=garbage, headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code in (400, 422) and "error" in r.json()
    r = http.post(
        TASKS, content=b"--a--", headers={"content-type": "multipart/form-data"}
    )  # no boundary at all
    assert_error(r, 400)
    assert_error(http.post(TASKS, data={"request": "{not json"}, files={"f": ("a", b"x")}), 400)
    assert_error(http.get(TASKS, params={"filter.status": "sleeping"}), 400)


def test_semantic_errors_name_the_field(http):
    err = assert_error(
        http.post(TASKS, json=ark_body(image_item(data_url(png_bytes()), role="backdrop"))), 400
    )
    assert "unknown role" in err["message"] and err["param"] == "content[1].image_url.url"
    err = assert_error(http.post(TASKS, json=ark_body(text="Shot 1 (4s, wide, pan leftt): a boat")), 400)
    assert "shot 1" in err["message"] and "pan left" in err["message"]  # the film parser's hint comes through
    assert_error(http.post(TASKS, json=ark_body(text="x" * 5001)), 400)
    assert_error(http.post(TASKS, json=ark_body(duration=61)), 400)
    assert_error(
        http.post(TASKS, json=ark_body(text="a boat --dur 0.2")), 400
    )  # under the 0.25 s of film/limits.py
    assert_error(http.post(TASKS, json=ark_body(ratio="5:1")), 400)
    assert_error(http.post(TASKS, json=ark_body(resolution="4k")), 400)
    long_film = "\n".join(f"Shot {i} (10s): scene {i}" for i in range(1, 8))
    err = assert_error(http.post(TASKS, json=ark_body(text=long_film)), 400)
    assert "60s" in err["message"]
    many = [image_item(data_url(png_bytes(16, 16))) for _ in range(10)]
    err = assert_error(http.post(TASKS, json=ark_body(*many)), 400)
    assert "at most 9" in err["message"]
    err = assert_error(http.post(TASKS, json=ark_body(image_item("https://example.com/a.png"))), 400)
    assert "allow_url_fetch" in err["message"]
    assert_error(http.post(TASKS, json=ark_body(callback_url="http://127.0.0.1:9/hook")), 400)
    assert_error(http.post(TASKS, json=ark_body(image_item("data:image/png;base64,@@@not-base64"))), 400)


def test_uploads_are_decoded_not_trusted(live, http):
    not_png = data_url(b"GIF89a this is not really an image at all", "image/png")
    err = assert_error(http.post(TASKS, json=ark_body(image_item(not_png, "first_frame"))), 415)
    assert err["param"] == "content[1].image_url.url"
    text_as_audio = {"type": "audio_url", "audio_url": {"url": data_url(b"hello" * 100, "audio/mpeg")},
                     "role": "reference_audio"}  # fmt: skip
    # beside an image: Seedance 2.0 takes no audio alone
    assert_error(http.post(TASKS, json=ark_body(image_item(data_url(png_bytes())), text_as_audio)), 415)
    # A multipart upload named like a path: the name is only a label, nothing is written outside the task.
    files = {"../../evil.png": ("../../../evil.png", b"<?php ?>", "image/png")}
    request = ark_body(image_item("upload://../../../evil.png", "first_frame"))
    r = http.post(TASKS, data={"request": json.dumps(request)}, files=files)
    assert_error(r, 415)
    good = {"frame": ("../../x.png", png_bytes(), "image/png")}
    r = http.post(TASKS, data={"request": json.dumps(ark_body(image_item("upload://frame", "first_frame")))},
                  files=good)  # fmt: skip
    assert r.status_code == 200, r.text
    task_id = r.json()["id"]
    assert [p.name for p in (live.data_dir / "tasks" / task_id / "inputs").iterdir()] == ["first_frame.png"]
    assert not [p for p in live.data_dir.parent.rglob("*") if p.name in ("evil.png", "x.png")]
    http.delete(f"{TASKS}/{task_id}")


def test_size_limits_are_413(live, http):
    big = png_bytes(16, 16) + b"\0" * (1 << 20)  # over the test server's 1 MiB upload limit
    err = assert_error(http.post(TASKS, json=ark_body(image_item(data_url(big)))), 413)
    assert "MB" in err["message"]
    r = http.post(TASKS, data={"request": "{}"}, files={"f": ("f.png", big, "image/png")})
    assert_error(r, 413)
    huge = b'{"model": "' + b"x" * (4 << 20) + b'"}'  # over the 3 MiB body limit
    assert_error(http.post(TASKS, content=huge, headers={"content-type": "application/json"}), 413)
    encoded = base64.b64encode(b"\0" * (4 << 20)).decode()  # streamed without a Content-Length

    def chunks():
        yield b'{"model": "m", "content": [{"type": "text", "text": "'
        for i in range(0, len(encoded), 1 << 16):
            yield encoded[i : i + (1 << 16)].encode()
        yield b'"}]}'

    assert_error(http.post(TASKS, content=chunks(), headers={"content-type": "application/json"}), 413)


def test_unknown_ids_and_routes_are_404(http):
    assert_error(http.get(TASKS + "/cgt-nope"), 404, "ResourceNotFound")
    assert_error(http.delete(TASKS + "/cgt-nope"), 404)
    assert_error(http.get("/v1/videos/video_nope"), 404)
    assert_error(http.get("/api/v1/films/../../jobs.db"), 404)
    assert_error(http.get("/api/v3/files/cgt-x/..%2F..%2Fjobs.db"), 404)
    assert_error(http.get("/api/v3/files/cgt-x/jobs.db"), 404)
    assert_error(http.get("/api/v3/no/such/route"), 404)


def test_queued_tasks_per_tenant_is_429(live):
    with live.http(live.bob) as bob:
        ids = []
        try:
            for _ in range(40):  # the test server allows 8 unfinished tasks per tenant; renders take ~1 s
                r = bob.post(TASKS, json=ark_body())
                if r.status_code != 200:
                    break
                ids.append(r.json()["id"])
            err = assert_error(r, 429, "QuotaExceeded")
            assert "at most 8" in err["message"] and len(ids) >= 8
            assert int(r.headers["retry-after"]) > 0
        finally:
            for t in ids:
                bob.delete(f"{TASKS}/{t}")
