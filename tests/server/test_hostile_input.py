"""Hostile bodies against the app in-process (no workers needed): each answers a 4xx in the API's error
shape, nothing bad is stored, and the tenant's list still renders afterwards."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.server.conftest import TEST_LIMITS, app_client, assert_error, data_url
from yingxi.server.app import create_app
from yingxi.server.keys import create_key
from yingxi.server.settings import ServerSettings

TASKS = "/api/v3/contents/generations/tasks"
JSON = {"content-type": "application/json"}
YAML = {"content-type": "application/yaml"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with app_client(tmp_path_factory.mktemp("hostile")) as c:
        yield c


@pytest.fixture
def http(client):
    yield client
    # Whatever the request did, the tenant's task list and the OpenAI list still render.
    assert client.get(TASKS).status_code == 200
    assert client.get("/v1/videos").status_code == 200


def ark_raw(fragment: bytes, text: bytes = b"a boat --dur 2") -> bytes:
    return b'{"model": "m", "content": [{"type": "text", "text": "' + text + b'"}]' + fragment + b"}"


@pytest.mark.parametrize(
    "body",
    [
        ark_raw(b"", text=b"a \\ud800 boat"),  # a lone surrogate: cannot be stored or echoed as UTF-8
        b'{"model": "\\udfff", "content": [{"type": "text", "text": "a boat"}]}',
        ark_raw(b', "duration": NaN'),
        ark_raw(b', "duration": -Infinity'),
        ark_raw(b', "seed": ' + b"7" * 5000),  # over Python's int-from-string digit limit
    ],
    ids=["surrogate-text", "surrogate-model", "nan", "infinity", "5000-digit-int"],
)
def test_json_that_python_reads_but_we_cannot_keep_is_400(http, body):
    assert_error(http.post(TASKS, content=body, headers=JSON), 400)
    assert http.get(TASKS).json()["total"] == 0  # nothing was queued


def test_surrogates_in_the_multipart_request_and_openai_bodies_are_400(http):
    request = '{"model": "m", "content": [{"type": "text", "text": "\\ud800"}]}'
    err = assert_error(http.post(TASKS, data={"request": request}, files={"f": ("f", b"x")}), 400)
    assert '"request" field' in err["message"]
    assert_error(http.post("/v1/videos", content=b'{"prompt": "\\udc00 a boat"}', headers=JSON), 400)


def test_yaml_scripts_with_alias_bombs_deep_nesting_or_non_finite_numbers_are_400(http):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":  # 10^8 strings once expanded, from a few hundred bytes
        prev = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [{', '.join(['*' + prev] * 10)}]\n"
    bomb += "shots: [{prompt: *h}]\n"
    err = assert_error(http.post("/api/v1/films", content=bomb.encode(), headers=YAML), 400)
    assert "more than" in err["message"]
    assert_error(http.post("/api/v1/films", content=b"[" * 20000 + b"]" * 20000, headers=YAML), 400)
    script = b"fps: .inf\nshots:\n  - {prompt: a boat, duration: 2}\n"
    err = assert_error(http.post("/api/v1/films", content=script, headers=YAML), 400)
    assert "not finite" in err["message"]
    err = assert_error(
        http.post("/api/v1/films", data={"script": "shots: [{prompt: .nan}]"}, files={"f": ("f", b"x")}), 400
    )
    assert '"script" field' in err["message"]


@pytest.mark.parametrize(
    "fragment, text, status",
    [
        (b', "frames": ' + b"9" * 400, b"a boat", 422),  # frames / 24 overflowed a float
        (b"", b"a boat --fps inf", 400),
        (b"", b"a boat --fps nan", 400),
        (b"", b"a boat --dur 1e999", 400),
    ],
    ids=["frames-overflow", "fps-inf", "fps-nan", "dur-1e999"],
)
def test_numbers_beyond_float_are_4xx(http, fragment, text, status):
    err = assert_error(http.post(TASKS, content=ark_raw(fragment, text), headers=JSON), status)
    assert err["param"] in ("frames", "fps", "duration")


@pytest.mark.parametrize("size", ["00x00", "1280x00", "00x720"])
def test_openai_size_with_a_zero_side_is_400(http, size):
    err = assert_error(http.post("/v1/videos", json={"prompt": "a boat", "size": size}), 400)
    assert err["param"] == "size"


def test_a_non_ascii_signature_is_403_not_500(http):
    anonymous = {"Authorization": ""}
    r = http.get(
        "/api/v3/files/cgt-x/video.mp4?expires=99999999999&signature=%C3%A9t%C3%A9", headers=anonymous
    )
    assert_error(r, 403)


@pytest.fixture(scope="module")
def fetching(tmp_path_factory):
    """An app that fetches http(s) references and sends callbacks, with private addresses refused."""
    data_dir = tmp_path_factory.mktemp("fetching")
    key = create_key(data_dir, "alice")
    settings = ServerSettings(
        data_dir=data_dir, limits=TEST_LIMITS, allow_url_fetch=True, allow_callbacks=True
    )
    with TestClient(create_app(settings), raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {key}"}) as c:  # fmt: skip
        yield c


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/a.png", "http://169.254.169.254/latest/meta-data/", "http://[::1]/a.png",
     "http://0.0.0.0/a.png", "https://10.1.2.3/a.png", "http://[::ffff:127.0.0.1]/a.png", "http://localhost/a"],
)  # fmt: skip
def test_references_and_callbacks_to_private_addresses_are_refused(fetching, url):
    item = {"type": "image_url", "image_url": {"url": url}, "role": "first_frame"}
    body = {"model": "m", "content": [{"type": "text", "text": "a boat --dur 2"}, item]}
    err = assert_error(fetching.post(TASKS, json=body), 400)
    assert "private" in err["message"] and err["param"] == "content[1].image_url.url"
    body["content"] = body["content"][:1]
    err = assert_error(fetching.post(TASKS, json={**body, "callback_url": url}), 400)
    assert "private" in err["message"] and err["param"] == "callback_url"


def test_a_redirect_to_a_private_address_is_checked_too(monkeypatch):
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    from yingxi.server import outbound
    from yingxi.server.http_errors import ApiError

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/secret")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    Thread(target=server.serve_forever, daemon=True).start()
    start = f"http://127.0.0.1:{server.server_address[1]}/a.png"
    # The first hop counts as public here; the place it redirects to must still be refused.
    real = outbound.resolve
    monkeypatch.setattr(
        outbound, "resolve", lambda url, allow_private=False: real(url, allow_private or url == start)
    )
    try:
        with pytest.raises(ApiError, match="private, loopback or reserved address") as caught:
            outbound.fetch(start, 1 << 20, allow_private=False, param="image")
        assert caught.value.status == 400
    finally:
        server.shutdown()


def bomb_png(side: int = 8192) -> bytes:
    """A 1-bit black PNG: about 8 kB on the wire, 200 MB of RGB (and seconds of CPU) once decoded."""
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def test_a_decompression_bomb_png_is_413_before_decoding(http):
    bomb = bomb_png()
    assert len(bomb) < 20_000
    item = {"type": "image_url", "image_url": {"url": data_url(bomb)}, "role": "first_frame"}
    body = {"model": "m", "content": [{"type": "text", "text": "a boat --dur 2"}, item]}
    err = assert_error(http.post(TASKS, json=body), 413)
    assert "8192x8192" in err["message"] and err["param"] == "content[1].image_url.url"
    files = {"input_reference": ("frame.png", bomb, "image/png")}
    err = assert_error(http.post("/v1/videos", data={"prompt": "a boat", "seconds": "4"}, files=files), 413)
    assert err["param"] == "input_reference"
    script = {"style_image": data_url(bomb), "shots": [{"prompt": "a boat", "duration": 2}]}
    assert_error(http.post("/api/v1/films", json=script), 413)


def test_strings_echoed_back_are_bounded(http):
    long = "x" * 100_000
    role = {"type": "image_url", "image_url": {"url": "data:,"}, "role": long}
    for body, param in [
        ({"model": "m", "content": [{"type": "text", "text": "a"}, role]}, "content[1].role"),
        ({"model": "m", "content": [{"type": "text", "text": "a"}], "callback_url": "http://" + long}, "callback_url"),
        ({"model": "m", "content": [{"type": "text", "text": "a"}], "ratio": long}, "ratio"),
        ({"model": "m", "content": [{"type": "text", "text": "a"}], "resolution": long}, "resolution"),
    ]:  # fmt: skip
        r = http.post(TASKS, json=body)
        assert assert_error(r, 422)["param"] == param and len(r.content) < 2000
    r = http.post("/v1/videos", json={"prompt": "a boat", "size": long})
    assert assert_error(r, 422)["param"] == "size" and len(r.content) < 2000
    # A film's title and style are listed with every task: they count towards the prompt limit.
    err = assert_error(http.post("/api/v1/films", json={"title": long, "shots": [{"prompt": "a"}]}), 400)
    assert "100001 characters" in err["message"]
    # So does dialogue, which is spoken (espeak-ng) at the door to check that it fits its shot.
    chatty = {"characters": {"A": {"description": "a sailor"}},
              "shots": [{"prompt": "a", "dialogue": [{"character": "A", "line": "word " * 1200}]}]}  # fmt: skip
    err = assert_error(http.post("/api/v1/films", json=chatty), 400)
    assert "6009 characters" in err["message"] and "dialogue" in err["message"]
    err = assert_error(http.post("/api/v1/films", json={"shots": 5}), 400)  # was a TypeError counting prompts
    assert err["param"] == "shots"


def test_a_reference_video_with_huge_frames_is_413_before_decoding(http):
    import av
    import numpy as np

    buf = io.BytesIO()  # one black 4800x4800 frame: a few kB of H.264, 23 Mpx once decoded
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width = stream.height = 4800
        stream.pix_fmt, stream.options = "yuv420p", {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.zeros((4800, 4800, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    item = {
        "type": "video_url",
        "video_url": {"url": data_url(buf.getvalue(), "video/mp4")},
        "role": "reference_video",
    }
    err = assert_error(
        http.post(TASKS, json={"model": "m", "content": [{"type": "text", "text": "a"}, item]}), 413
    )
    assert "4800x4800" in err["message"] and err["param"] == "content[1].video_url.url"


def test_an_empty_or_null_body_says_so_instead_of_asking_for_a_multipart_field(http):
    for path, headers in [
        (TASKS, JSON),
        ("/v1/videos", JSON),
        ("/api/v1/films", JSON),
        ("/api/v1/films", YAML),
    ]:
        for content in (b"", b"null"):
            err = assert_error(http.post(path, content=content, headers=headers), 400)
            assert "empty" in err["message"] and "multipart" not in err["message"], (path, content, err)


def test_every_response_forbids_sniffing_framing_and_referrers(http):
    for r in (
        http.get("/"),  # the studio
        http.get(TASKS),
        http.post(TASKS, content=b"{", headers=JSON),  # an error echoing client text
        http.post(TASKS, content=b"x", headers={**JSON, "content-length": str(1 << 30)}),  # BodyLimit's 413
    ):
        assert r.headers["x-content-type-options"] == "nosniff", r.status_code
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("field", ["seed", "duration", "frames", "execution_expires_after"])
def test_ark_whole_numbers_refuse_booleans(http, field):
    body = {"model": "m", "content": [{"type": "text", "text": "a boat"}], field: True}  # was read as 1
    err = assert_error(http.post(TASKS, json=body), 422)
    assert err["param"] == field and "boolean" in err["message"]


@pytest.mark.parametrize("seconds", [True, 8.5, [8], {"s": 8}, "eight", "9" * 5000])
def test_openai_seconds_that_are_not_whole_numbers_are_400_naming_seconds(http, seconds):
    err = assert_error(http.post("/v1/videos", json={"prompt": "a boat", "seconds": seconds}), 400)
    assert err["param"] == "seconds"


def test_validation_errors_spell_list_positions_as_the_routes_do(http):
    body = {"model": "m", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}]}
    err = assert_error(http.post(TASKS, json=body), 422)
    assert err["param"] == "content[1].image_url.url" and err["message"].startswith(
        "content[1].image_url.url:"
    )


def test_a_content_length_of_thousands_of_digits_is_not_a_500(http):
    assert_error(http.post(TASKS, content=b"{}", headers={**JSON, "content-length": "9" * 5000}), 413)
    # Leading zeros: the length is 2, and the body is read (and found wanting) as usual.
    assert_error(http.post(TASKS, content=b"{}", headers={**JSON, "content-length": "0" * 5000 + "2"}), 422)
