"""The `KeyStore` protocol (issue 11, item 1) on both job databases: keys kept as hashes, listed, revoked,
and one URL-signing secret that every API server on a shared database reads."""

from __future__ import annotations

import pytest

from yingxi.server.jobs import KeyStore
from yingxi.server.keys import create_key, hash_key, list_keys, revoke_key, signing_secret
from yingxi.server.store import open_queue


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keys.db'}"
    return request.getfixturevalue("postgres").new_database()


def test_both_databases_are_key_stores_that_keep_only_hashes(database_url, tmp_path):
    key = create_key(tmp_path, "studio-1", database_url)
    create_key(tmp_path, "studio-2", database_url)
    a, b = open_queue(database_url, tmp_path), open_queue(database_url, tmp_path)  # two API servers
    try:
        assert isinstance(a, KeyStore) and isinstance(b, KeyStore)
        assert b.tenant_for(hash_key(key)) == "studio-1" and b.tenant_for(hash_key(key + "x")) is None
        listed = list_keys(tmp_path, database_url)
        assert [k["name"] for k in listed] == ["studio-1", "studio-2"]
        assert all(key not in str(k) and hash_key(key) not in str(k) for k in listed)  # never the key or hash
        assert revoke_key(tmp_path, "studio-1", database_url) == 1
        assert a.tenant_for(hash_key(key)) is None  # revoked for every server at once
        secret = signing_secret(a, tmp_path / "a")
        assert len(secret) == 32 and signing_secret(b, tmp_path / ("a" if not a.shared else "b")) == secret
    finally:
        a.close()
        b.close()
