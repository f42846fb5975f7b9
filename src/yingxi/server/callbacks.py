"""Callbacks are delivered apart from rendering: a bounded queue and one sender thread per worker, with
its own retries, so a callback URL that never answers costs the sender its timeouts, never the GPU.

Before, a hook that hung held the worker 34 s per job (3 tries x 10 s, after each render)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from yingxi.server.http_errors import ApiError
from yingxi.server.outbound import post_json

log = logging.getLogger("yingxi.callbacks")

PAUSES = (1.0, 3.0)  # seconds before the second and third tries; none after the last
TIMEOUT = 10.0  # seconds per try
MAX_WAITING = 256  # callbacks queued at once; past this a new one is dropped with a warning


@dataclass(frozen=True)
class Delivery:
    job_id: str
    url: str
    body: dict


class CallbackSender:
    """`submit()` returns at once; a daemon thread POSTs each delivery, retrying after `pauses`."""

    def __init__(
        self,
        allow_private: bool,
        *,
        pauses: tuple[float, ...] = PAUSES,
        timeout: float = TIMEOUT,
        max_waiting: int = MAX_WAITING,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.allow_private, self.pauses, self.timeout, self.sleep = allow_private, pauses, timeout, sleep
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=max_waiting)
        self._thread = threading.Thread(target=self._run, name="callbacks", daemon=True)
        self._thread.start()
        self.delivered: list[str] = []  # job ids, in order (for logs and tests)
        self.given_up: list[str] = []

    def submit(self, job_id: str, url: str, body: dict) -> bool:
        """Queue one delivery; False (and a warning) when the queue is full."""
        try:
            self._queue.put_nowait(Delivery(job_id, url, body))
            return True
        except queue.Full:
            log.warning("callback for %s dropped: %d callbacks already waiting", job_id, self._queue.maxsize)
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the deliveries already queued, waiting at most `timeout` seconds."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._deliver(item)

    def _deliver(self, item: Delivery) -> None:
        tries = len(self.pauses) + 1
        for attempt in range(tries):
            if attempt:
                self.sleep(self.pauses[attempt - 1])
            try:
                post_json(item.url, item.body, self.allow_private, self.timeout)  # checked again: DNS moves
                self.delivered.append(item.job_id)
                return
            except ApiError as e:  # the host now resolves to a private address: never retried
                log.warning("callback for %s not sent: %s", item.job_id, e.message)
                break
            except httpx.HTTPError as e:
                log.warning("callback for %s failed (try %d of %d): %s", item.job_id, attempt + 1, tries, e)
        self.given_up.append(item.job_id)
