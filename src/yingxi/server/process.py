"""Start and stop a real server (`python -m yingxi.server`) in a child process: for tests and benchmarks."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from yingxi.server.settings import ServerSettings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """The server could not bind its port: another process has it."""


class ServerProcess:
    """One server on a loopback port; `start()` waits until /api/v1/health answers."""

    def __init__(self, settings: ServerSettings, log_path: Path | None = None):
        self.auto_port = settings.port == 0  # ours to change if another process takes it before we bind
        if self.auto_port:
            settings = dataclasses.replace(settings, port=free_port(settings.host))
        self.settings = settings
        self.log_path = log_path or settings.data_dir / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self, timeout: float = 60.0, tries: int = 3) -> ServerProcess:
        """Start and wait for health. A port picked by free_port can be taken by another process before the
        server binds it (tests run side by side): then, `tries` times, a new port is picked."""
        for _ in range(tries - 1):
            try:
                return self._start(timeout)
            except PortTaken:
                self.settings = dataclasses.replace(self.settings, port=free_port(self.settings.host))
        return self._start(timeout)

    def _start(self, timeout: float) -> ServerProcess:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # the child keeps its own copy of the descriptor
        cmd = [sys.executable, "-m", "yingxi.server", "--settings", json.dumps(self.settings.to_dict())]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log_path, "rb") as f:
                    f.seek(logged)
                    if self.auto_port and b"address already in use" in f.read().lower():
                        raise PortTaken(self.settings.port)
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout}s; see {self.log_path}")

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful: workers stopped, their jobs requeued) or SIGKILL of the server process only
        (a crash: its workers notice they are orphaned and exit)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
