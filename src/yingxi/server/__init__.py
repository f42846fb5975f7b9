"""The self-hosted, Seedance-compatible API server: Ark and OpenAI task APIs, a native film API, a
persistent SQLite job queue with worker processes, API keys, and the web studio."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yingxi.server.settings import ServerSettings


def run(settings: ServerSettings) -> None:
    """`yingxi serve`: uvicorn plus settings.workers render processes; blocks until stopped."""
    from yingxi.server.runner import run as _run

    _run(settings)
