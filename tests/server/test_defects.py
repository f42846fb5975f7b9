"""Defects found by the hostile-input and SSRF campaign (issue 11, D1-D4 and the 413/415 split), each
reproduced against the real app before it was fixed."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import zlib

import httpx
import pytest

from tests.server.conftest import TEST_LIMITS, app_client, assert_error, data_url
from yingxi.server import outbound
from yingxi.server.app import create_app
from yingxi.server.http_errors import ApiError
from yingxi.server.settings import ServerSettings

FILMS = "/api/v1/films"
TASKS = "/api/v3/contents/generations/tasks"
YAML = {"content-type": "application/yaml"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with app_client(tmp_path_factory.mktemp("defects")) as c:
        yield c


# ---- D1: YAML keys that JSON cannot keep --------------------------------------------------------------
@pytest.mark.parametrize(
    "key, where",
    [
        ("2024-01-01", "at characters"),  # a date
        ("2001-12-14t21:59:43.10-05:00", "at characters"),  # a timestamp
        ("!!binary aGVsbG8=", "at characters"),
        ("42", "at characters"),  # int keys become "42" in JSON: a different film from the one validated
        ("true", "at characters"),
        ("null", "at characters"),
        ("[1, 2]", "line 4, column 3"),  # a sequence as a key: PyYAML itself refuses it (unhashable)
    ],
    ids=["date", "timestamp", "binary", "int", "bool", "null", "sequence"],
)
def test_a_yaml_key_that_is_not_a_string_is_400_naming_its_path(client, key, where):
    body = f"shots:\n  - prompt: the river\ncharacters:\n  {key}:\n    description: a man\n"
    err = assert_error(client.post(FILMS, content=body.encode(), headers=YAML), 400)
    assert where in err["message"], err
    assert client.get(FILMS).status_code == 200  # the tenant's list still renders
    assert client.get(TASKS).json()["total"] == 0


def test_a_yaml_value_that_json_cannot_keep_is_400(client):
    body = b"shots:\n  - prompt: the river\n    seed: 2024-01-01\n"
    err = assert_error(client.post(FILMS, content=body, headers=YAML), 400)
    assert "shots[0].seed" in err["message"], err


# ---- D3: addresses that wrap a private IPv4 one ---------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (cloud metadata)
        "64:ff9b:1::c0a8:101",  # local-use NAT64 prefix, 192.168.1.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo whose client is 10.0.0.1 (obfuscated ~)
        "::ffff:127.0.0.1",  # IPv4-mapped (already refused)
    ],
)
def test_ipv6_addresses_that_wrap_private_ipv4_are_private(monkeypatch, address):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET6, 1, 6, "", (address, 443))])
    reason = outbound.private_reason("https://example.test/a.png")
    assert reason is not None and "private" in reason, (address, reason)


def test_nat64_of_a_public_address_is_public(monkeypatch):
    public = "64:ff9b::808:808"  # 8.8.8.8
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET6, 1, 6, "", (public, 443))])
    assert outbound.private_reason("https://example.test/a.png") is None
    assert outbound.embedded_ipv4(ipaddress.ip_address(public)) == ipaddress.ip_address("8.8.8.8")


# ---- D4: DNS rebinding: the connection goes to the address that was checked ---------------------------
class _Server(threading.Thread):
    """A one-route HTTP server on loopback that records the Host header it was sent."""

    def __init__(self):
        super().__init__(daemon=True)
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                seen.append(self.headers.get("host"))
                body = b"pinned"
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]

    def run(self):
        self.httpd.serve_forever()


def test_fetch_connects_to_the_address_it_checked_not_a_second_lookup(monkeypatch):
    server = _Server()
    server.start()
    answers = iter(["127.0.0.1"] + ["10.255.255.1"] * 10)  # first lookup checked; later ones "rebound"
    lookups = []

    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)  # a literal needs no DNS: the connection to the pinned address
            return real(host, port, *args, **kwargs)
        except ValueError:
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        data = outbound.fetch(f"http://rebind.test:{server.port}/x", 1 << 20, True, "content[0]")
    finally:
        server.httpd.shutdown()
    assert data == b"pinned"
    assert lookups == ["rebind.test"]  # resolved once
    assert server.seen == [f"rebind.test:{server.port}"]  # the Host header still names the host


def test_fetch_refuses_a_private_answer_without_connecting(monkeypatch):
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda h, p, *a, **k: [(socket.AF_INET, 1, 6, "", ("10.0.0.7", p))]
    )
    with pytest.raises(ApiError) as err:
        outbound.fetch("http://lan.test/x.png", 1 << 20, False, "content[1].image_url")
    assert err.value.status == 400 and "10.0.0.7" in err.value.message


# ---- One 413 for every image too large, whatever Pillow thinks of it ----------------------------------
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height; the pixel data is a token (never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [8200, 20000, 40000], ids=["67Mpx", "400Mpx", "1600Mpx"])
def test_an_image_claiming_too_many_pixels_is_413_whatever_its_size(client, side):
    body = {"model": "m", "content": [{"type": "text", "text": "a boat --dur 2"},
            {"type": "image_url", "image_url": {"url": data_url(_png_header_only(side, side))}}]}  # fmt: skip
    err = assert_error(client.post(TASKS, json=body), 413)
    assert f"{side}x{side}" in err["message"] and "decompression" not in err["message"].lower(), err


# ---- D2: a 500 says Connection: close, so a pooled client's next request does not fail ----------------
def test_after_a_500_the_connection_is_closed_cleanly(tmp_path):
    """The real app under uvicorn on loopback, with one route added that fails as a bug would."""
    import uvicorn

    app = create_app(ServerSettings(data_dir=tmp_path, limits=TEST_LIMITS))

    @app.get("/api/v1/crash")
    def crash():
        raise RuntimeError("a bug")

    app.router.routes.insert(0, app.router.routes.pop())  # before the studio's catch-all mount at "/"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(100):
                try:
                    http.get("/api/v1/health")
                    break
                except httpx.ConnectError:
                    threading.Event().wait(0.05)
            for _ in range(3):  # each time: the error body, then the pool's next request works
                r = http.get("/api/v1/crash")
                assert r.status_code == 500 and r.json()["error"]["code"] == "InternalServiceError"
                assert r.json()["error"]["message"] == "internal error: RuntimeError"
                assert r.headers.get("connection") == "close"
                assert http.get("/api/v1/health").status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
