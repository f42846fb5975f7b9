"""A real PostgreSQL server for tests: Debian's binaries, `initdb` in a temp folder, loopback only.

PostgreSQL refuses to run as root; as root (CI) the cluster belongs to the `postgres` system user that
Debian's package creates. Each test gets its own database, so tests never see each other's rows."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or (
        [shutil.which(name)] if shutil.which(name) else []
    )
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (make test installs Debian's postgresql)")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, root: Path | None = None):
        # Its own folder straight under the temp dir: pytest's are 0700 root, which `postgres` cannot enter.
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="yingxi-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else None  # the OS user that runs the server
        self.proc: subprocess.Popen | None = None

    def _as_owner(self) -> dict:
        """Popen arguments that run a command as the cluster's owner (directly: signals reach it)."""
        return {"user": self.user, "group": self.user, "extra_groups": []} if self.user else {}

    def start(self) -> PostgresServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [_bin("initdb"), "-D", str(self.data), "-U", "yingxi", "--auth=trust", "-E", "UTF8", "--no-sync",
             "--no-instructions"],
            check=True, capture_output=True, cwd=self.root, **self._as_owner(),
        )  # fmt: skip
        self._launch()
        return self

    def _launch(self) -> None:
        self.proc = subprocess.Popen(
            [_bin("postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.root),
             "-c", "fsync=off", "-c", "max_connections=200", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off"],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "postgres.log", "ab"), cwd=self.root,
            **self._as_owner(),
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:  # fmt: skip
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(
                    f"postgres did not start: {(self.root / 'postgres.log').read_text()[-2000:]}"
                )
            time.sleep(0.1)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server (fast shutdown: clients are cut off), stay down a while, start it again on the
        same port and data: what a database failover looks like to its clients."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        time.sleep(down_seconds)
        self._launch()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://yingxi@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: disconnects clients, no waiting
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
