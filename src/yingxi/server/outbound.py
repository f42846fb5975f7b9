"""Requests the server makes for a tenant (http(s) references, callbacks) go to public addresses only,
unless the operator sets allow_private_urls: otherwise any tenant could make the server read its own
loopback services, the LAN, or a cloud metadata endpoint (169.254.169.254) and hand back the answer.

Each hop is checked: the host is resolved once, every address must be global (IPv6 addresses that carry an
IPv4 one, mapped, NAT64, 6to4 or Teredo, are judged by the IPv4 address they lead to), and the connection
goes to the address that was checked, with the Host header and TLS name of the URL: a DNS answer that
changes between the check and the connection (rebinding) cannot redirect it. Redirects are followed by
hand so that a public URL cannot bounce to a private one.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from yingxi.server.http_errors import ApiError

MAX_REDIRECTS = 3
FETCH_SECONDS = 20.0
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes whose low 32 bits are an IPv4 address a gateway forwards to (RFC 6052 well-known NAT64
# prefix, RFC 8215 local-use NAT64 prefix).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, NAT64, 6to4, Teredo client), or None."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): the client is where the packets end up
    return None


def _is_public(address: IPAddress) -> bool:
    inner = embedded_ipv4(address)
    if inner is not None and not _is_public(inner):
        return False
    return address.is_global and not address.is_multicast or (inner is not None and inner.is_global)


@dataclass(frozen=True)
class Resolved:
    """A URL's host resolved once: the address to connect to, or why it may not be requested."""

    url: str
    host: str
    port: int | None
    address: IPAddress | None
    reason: str | None = None


def resolve(url: str, allow_private: bool = False) -> Resolved:
    """Resolve `url`'s host once; `reason` says why it may not be requested (None when it may)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return Resolved(url, "", None, None, "the URL cannot be read")
    if parts.scheme.lower() not in ("http", "https") or not host:
        return Resolved(url, host or "", port, None, "only http(s) URLs with a host are fetched")
    default_port = 443 if parts.scheme.lower() == "https" else 80
    try:
        infos = socket.getaddrinfo(host, port or default_port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        return Resolved(
            url, host, port, None, f'the host "{host[:80]}" does not resolve ({type(e).__name__})'
        )
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        return Resolved(url, host, port, None, f'the host "{host[:80]}" does not resolve')
    if not allow_private:
        for address in addresses:
            if not _is_public(address):
                reason = f'the host "{host[:80]}" is a private, loopback or reserved address ({address})'
                return Resolved(url, host, port, address, reason)
    return Resolved(url, host, port, addresses[0])


def private_reason(url: str) -> str | None:
    """Why `url` may not be requested (a phrase naming the address), or None when every address of its
    host is public."""
    return resolve(url).reason


def check_public(url: str, allow_private: bool, param: str) -> None:
    """400 naming `param` unless `url` may be requested."""
    reason = resolve(url, allow_private).reason if not allow_private else None
    if reason:
        raise ApiError(400, f"{reason}; this server only reaches public addresses", param=param)


def pinned_request(target: Resolved) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL with the checked address in place of the host, headers, httpx extensions): the connection goes
    to that address while the Host header and the TLS server name (SNI and certificate check) stay the
    URL's own host."""
    parts = urlsplit(target.url)
    ip = f"[{target.address}]" if isinstance(target.address, ipaddress.IPv6Address) else str(target.address)
    netloc = ip if target.port is None else f"{ip}:{target.port}"
    host_header = target.host if target.port is None else f"{target.host}:{target.port}"
    if ":" in target.host and target.port is None:  # an IPv6 literal host
        host_header = f"[{target.host}]"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return url, {"host": host_header}, {"sni_hostname": target.host}


def _checked(url: str, allow_private: bool, param: str) -> Resolved:
    target = resolve(url, allow_private)
    if target.reason:
        suffix = "; this server only reaches public addresses" if target.address is not None else ""
        raise ApiError(400, f"{target.reason}{suffix}", param=param)
    return target


def fetch(url: str, limit: int, allow_private: bool, param: str) -> bytes:
    """GET `url` (at most `limit` bytes), every hop checked and pinned; ApiError 400/413 naming `param`."""
    try:
        for _ in range(MAX_REDIRECTS + 1):
            pinned, headers, extensions = pinned_request(_checked(url, allow_private, param))
            with httpx.Client(timeout=FETCH_SECONDS, follow_redirects=False) as client:
                request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
                r = client.send(request, stream=True)
                try:
                    if r.is_redirect:
                        url = str(httpx.URL(url).join(r.headers["location"]))
                        continue
                    if r.status_code != 200:
                        raise ApiError(
                            400, f"fetching the reference answered HTTP {r.status_code}", param=param
                        )
                    chunks, size = [], 0
                    for chunk in r.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise ApiError(
                                413, f"the file is larger than {limit // (1 << 20)} MB", param=param
                            )
                        chunks.append(chunk)
                    return b"".join(chunks)
                finally:
                    r.close()
    except httpx.HTTPError as e:
        raise ApiError(400, f"cannot fetch the reference: {e}", param=param) from None
    raise ApiError(400, f"fetching the reference was redirected more than {MAX_REDIRECTS} times", param=param)


def post_json(url: str, body: dict, allow_private: bool, timeout: float) -> None:
    """POST `body` to `url` (a callback), connecting to the address that was checked; redirects are not
    followed. ApiError 400 when the address may not be reached; httpx errors for the caller's retries."""
    pinned, headers, extensions = pinned_request(_checked(url, allow_private, "callback_url"))
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        request = client.build_request("POST", pinned, json=body, headers=headers, extensions=extensions)
        client.send(request).raise_for_status()
