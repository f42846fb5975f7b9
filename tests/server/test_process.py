"""ServerProcess, which starts the real server for the tests and the load benchmark."""

from __future__ import annotations

import socket

import httpx

from yingxi.server import process
from yingxi.server.settings import ServerSettings


def test_a_test_server_whose_port_is_taken_before_it_binds_moves_to_another(tmp_path, monkeypatch):
    with socket.socket() as squatter:  # another process takes the port free_port offered
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered = [taken]
        real_free_port = process.free_port
        monkeypatch.setattr(
            process, "free_port", lambda host: offered.pop() if offered else real_free_port(host)
        )
        server = process.ServerProcess(ServerSettings(data_dir=tmp_path, port=0))
        assert server.settings.port == taken
        try:
            server.start(timeout=60)
            assert server.settings.port != taken
            assert httpx.get(server.url + "/api/v1/health", timeout=5).json()["status"] == "ok"
        finally:
            assert server.stop() == 0
