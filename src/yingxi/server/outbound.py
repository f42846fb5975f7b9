"""Requests the server makes for a tenant (http(s) references, callbacks) go to public addresses only,
unless the operator sets allow_private_urls: otherwise any tenant could make the server read its own
loopback services, the LAN, or a cloud metadata endpoint (169.254.169.254) and hand back the answer.

Each hop is checked: the host is resolved and every address must be global; redirects are followed by hand
so that a public URL cannot bounce to a private one. Not covered: a DNS answer that changes between our
check and httpx's own lookup (rebinding); an operator who needs that guarantee fetches through an egress
proxy."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

from yingxi.server.http_errors import ApiError

MAX_REDIRECTS = 3
FETCH_SECONDS = 20.0


def private_reason(url: str) -> str | None:
    """Why `url` may not be requested (a phrase naming the address), or None when every address of its
    host is public."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "the URL cannot be read"
    if parts.scheme.lower() not in ("http", "https") or not host:
        return "only http(s) URLs with a host are fetched"
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        return f'the host "{host[:80]}" does not resolve ({type(e).__name__})'
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if not address.is_global or address.is_multicast:
            return f'the host "{host[:80]}" is a private, loopback or reserved address ({address})'
    return None


def check_public(url: str, allow_private: bool, param: str) -> None:
    """400 naming `param` unless `url` may be requested."""
    reason = None if allow_private else private_reason(url)
    if reason:
        raise ApiError(400, f"{reason}; this server only reaches public addresses", param=param)


def fetch(url: str, limit: int, allow_private: bool, param: str) -> bytes:
    """GET `url` (at most `limit` bytes), every hop checked; ApiError 400/413 naming `param` otherwise."""
    try:
        for _ in range(MAX_REDIRECTS + 1):
            check_public(url, allow_private, param)
            with httpx.stream("GET", url, timeout=FETCH_SECONDS, follow_redirects=False) as r:
                if r.is_redirect:
                    url = str(r.url.join(r.headers["location"]))
                    continue
                if r.status_code != 200:
                    raise ApiError(400, f"fetching the reference answered HTTP {r.status_code}", param=param)
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(413, f"the file is larger than {limit // (1 << 20)} MB", param=param)
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.HTTPError as e:
        raise ApiError(400, f"cannot fetch the reference: {e}", param=param) from None
    raise ApiError(400, f"fetching the reference was redirected more than {MAX_REDIRECTS} times", param=param)
