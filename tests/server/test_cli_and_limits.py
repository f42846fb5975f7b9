"""`yingxi serve` says where it listens; `yingxi keys list/revoke`; one table of duration limits that the
CLI, the APIs and the studio's `/api/v1/limits` all read (film/limits.py)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import assert_error
from yingxi.cli import main
from yingxi.film import limits as table
from yingxi.server.keys import create_key, hash_key
from yingxi.server.settings import Limits
from yingxi.server.store import JobStore

SRC = str(Path(__file__).resolve().parents[2] / "src")
TASKS = "/api/v3/contents/generations/tasks"


def test_serve_prints_its_url_once_it_answers(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "yingxi.cli", "serve", "--port", "0", "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    try:
        line, deadline = b"", time.monotonic() + 60
        while b"\n" not in line and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 1)[0]:
                line += os.read(proc.stdout.fileno(), 4096)
        text = line.decode().splitlines()[0]
        assert text.startswith("yingxi: serving at http://127.0.0.1:"), text
        url = text.split()[3]
        assert url.endswith("/") and not url.endswith(":0/")  # the port it really bound, not "0"
        # Printed only once it accepts connections: the first request already succeeds.
        assert httpx.get(url + "api/v1/health", timeout=5).json()["status"] == "ok"
        assert "<title>yingxi" in httpx.get(url, timeout=5).text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0


def test_keys_list_and_revoke(tmp_path, capsys):
    alice = create_key(tmp_path, "alice")
    create_key(tmp_path, "alice")  # a second key of the same tenant
    create_key(tmp_path, "bob")
    store = JobStore(tmp_path / "jobs.db")
    assert store.tenant_for(hash_key(alice)) == "alice"  # what every authenticated request does
    store.close()
    capsys.readouterr()

    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ID", "CREATED", "(UTC)", "LAST", "USED", "(UTC)"]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == ["alice", "alice", "bob"]
    used = time.strftime("%Y-%m-%d", time.gmtime())
    assert sum(r[-2] == used for r in rows) == 1 and sum(r[-1] == "never" for r in rows) == 2
    assert (
        alice not in out and alice[3:] not in out and hash_key(alice) not in out
    )  # never the key or its hash

    assert main(["keys", "revoke", "alcie", "--data-dir", str(tmp_path)]) == 2
    assert 'unknown key name "alcie" (did you mean "alice"?)' in capsys.readouterr().err
    assert main(["keys", "revoke", "alice", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "revoked 2 keys named alice"
    store = JobStore(tmp_path / "jobs.db")
    assert store.tenant_for(hash_key(alice)) is None  # refused from now on
    store.close()
    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["bob"]
    assert main(["keys", "list", "--data-dir", str(tmp_path / "none")]) == 0
    assert "no keys in" in capsys.readouterr().out


def test_an_old_key_table_gains_its_last_used_column(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "jobs.db")
    db.execute("CREATE TABLE api_keys (hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, "
               "created_at REAL NOT NULL)")  # fmt: skip
    db.execute("INSERT INTO api_keys VALUES (?,?,?,?)", (hash_key("yx-old"), "old", "old", 1.0))
    db.commit()
    db.close()
    store = JobStore(tmp_path / "jobs.db", clock=lambda: 1000.0)
    assert store.tenant_for(hash_key("yx-old")) == "old"
    assert store.list_keys()[0]["last_used_at"] == 1000.0
    store.close()


def test_one_duration_table_for_every_entry_point(live, tmp_path, capsys):
    assert (table.MIN_SHOT_SECONDS, table.MAX_SHOT_SECONDS) == (0.25, 60.0)
    limits = Limits()
    assert (limits.min_shot_seconds, limits.max_shot_seconds) == (
        table.MIN_SHOT_SECONDS,
        table.MAX_SHOT_SECONDS,
    )
    assert (limits.min_seconds, limits.max_seconds) == (table.MIN_SHOT_SECONDS, table.MAX_SHOT_SECONDS)
    served = httpx.get(live.url + "/api/v1/limits").json()  # what the studio sets its duration field from
    assert served["shot_seconds"] == {"min": 0.25, "max": 60.0} and served["seconds"] == {
        "min": 0.25,
        "max": 60.0,
    }

    # The CLI: a 0.25 s shot plans, a 61 s one is refused.
    assert main(["plan", "Shot 1 (0.25s): A flash.\nShot 2 (1s): Dark."]) == 0
    assert main(["plan", "Shot 1 (61s): Too long."]) == 2
    assert "out of range" in capsys.readouterr().err
    # The APIs: the same two shots (before: 1-15 s a shot, 2-15 s a prompt).
    with live.http(live.alice) as http:
        ok = http.post(TASKS, json={"model": "m", "content": [{"type": "text", "text": "Shot 1 (0.25s): A flash."
                                    "\nShot 2 (1s): Dark."}], "resolution": "480p"})  # fmt: skip
        assert ok.status_code == 200, ok.text
        assert_error(http.post(TASKS, json={"model": "m", "content": [{"type": "text", "text": "Too long."}],
                                            "duration": 61}), 400)  # fmt: skip
        error = assert_error(
            http.post("/api/v1/films", json={"shots": [{"prompt": "a", "duration": 61}]}), 400
        )
        assert "61s is out of range; a shot lasts 0.25s to 60s" in error["message"]
        assert error.get("shot") == 1  # which shot, for a client to show it there


@pytest.mark.parametrize("seconds", [1, 60])  # Ark durations are whole seconds
def test_single_prompt_edges_are_accepted_at_the_door(live, seconds):
    with live.http(live.alice) as http:
        r = http.post(TASKS, json={"model": "m", "content": [{"type": "text", "text": "A lake."}], "duration": seconds,
                                   "resolution": "480p"})  # fmt: skip
        assert r.status_code == 200, r.text
        http.delete(f"{TASKS}/{r.json()['id']}")  # no need to render a minute of lake
