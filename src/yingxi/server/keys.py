"""API keys: random, shown once, stored only as a SHA-256 hash next to the tenant they belong to."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

from yingxi.errors import InputError, unknown_word
from yingxi.server.jobs import KeyStore
from yingxi.server.store import open_queue

KEY_PREFIX = "yx-"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(data_dir: str | Path, name: str, database_url: str | None = None) -> str:
    """A new key for tenant `name` (keys with the same name share that tenant's tasks), kept in the job
    database (`database_url`, or data_dir/jobs.db). Prints nothing."""
    if not NAME_RE.match(name or ""):
        raise InputError(
            "a key name is 1-64 letters, digits, '_', '-', '.', '@', starting with a letter or digit",
            field="name",
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    store = open_queue(database_url, Path(data_dir))
    try:
        store.add_key(hash_key(key), tenant=name, name=name)
    finally:
        store.close()
    return key


def _store_with_keys(data_dir: str | Path, database_url: str | None) -> KeyStore | None:
    if database_url is None and not (Path(data_dir) / "jobs.db").is_file():
        return None  # nothing was ever created there: do not make an empty store just to look
    return open_queue(database_url, Path(data_dir))


def list_keys(data_dir: str | Path, database_url: str | None = None) -> list[dict]:
    """The keys (names, created, last used; never a key itself: only hashes are kept)."""
    store = _store_with_keys(data_dir, database_url)
    if store is None:
        return []
    try:
        return store.list_keys()
    finally:
        store.close()


def revoke_key(data_dir: str | Path, name: str, database_url: str | None = None) -> int:
    """Remove every key named `name` (they stop working at once); InputError naming the closest name."""
    store = _store_with_keys(data_dir, database_url)
    if store is None:
        raise InputError(f'no key is named "{name}"; {data_dir} holds no keys', field="name")
    try:
        names = list(dict.fromkeys(k["name"] for k in store.list_keys()))
        if name not in names:
            if not names:
                raise InputError(f'no key is named "{name}"; there are no keys', field="name")
            raise InputError(unknown_word("key name", name, names), field="name")
        return store.remove_keys(name)
    finally:
        store.close()


def secret_for(data_dir: Path) -> bytes:
    """The server's signing secret (for expiring file URLs), made once and kept in data_dir/secret."""
    path = Path(data_dir) / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret-{secrets.token_hex(4)}")
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
        )  # never readable by others, even briefly
        try:
            os.write(fd, secrets.token_bytes(32))
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails when another process made it first: then theirs is the secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes()


def signing_secret(store: KeyStore, data_dir: Path) -> bytes:
    """The secret signing file URLs: in the shared database when there is one (every API server then
    verifies the links any of them handed out), else in data_dir/secret."""
    if not store.shared:
        return secret_for(data_dir)
    return bytes.fromhex(store.setting("url_signing_secret", lambda: secrets.token_hex(32)))


def sign(secret: bytes, resource: str, expires: int) -> str:
    return hmac.new(secret, f"{resource}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def check_signature(secret: bytes, resource: str, expires: int, signature: str, now: float) -> bool:
    # compare_digest refuses non-ASCII str (TypeError): compare bytes, whatever the client sent.
    expected = sign(secret, resource, expires).encode()
    return expires >= now and hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def keys_table(keys: list[dict]) -> str:
    """`yingxi keys list`: one key a line, times in UTC."""

    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) if t else "never"

    rows = [("NAME", "ID", "CREATED (UTC)", "LAST USED (UTC)")]
    rows += [(k["name"], k["id"], when(k["created_at"]), when(k["last_used_at"])) for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
