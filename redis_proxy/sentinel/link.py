"""One sentinel: its events, and a question every second, on connections of the proxy's own.

Each sentinel is followed on its own, so one that is down or slow costs the
others nothing. A link that breaks is opened again with a growing pause
between attempts, and every (re)connection asks where the master is: an
event published while the link was down is not lost for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from redis_proxy.config import SentinelConfig
from redis_proxy.ratelog import RateLimitedLog
from redis_proxy.sentinel.events import CHANNELS, PATTERNS, Event, MasterState, parse_event
from redis_proxy.sentinel.query import QUERY_TIMEOUT_S, SentinelError, ask_master, sentinel_client

log = logging.getLogger("redis_proxy")

RECHECK_S = 1.0  # ask the master's address this often: notices a missed event, and a sentinel that stopped answering
MIN_BACKOFF_S, MAX_BACKOFF_S = 0.2, 5.0  # between connection attempts to a sentinel that is down
LOG_INTERVAL_S = 30.0  # a sentinel that stays down is logged again at most this often


@dataclass(frozen=True)
class Notice:
    """An event a sentinel published about our master."""

    sentinel: str
    event: Event


@dataclass(frozen=True)
class Answer:
    """Where a sentinel says the master is."""

    sentinel: str
    state: MasterState


Item = Notice | Answer


class Link:
    def __init__(self, settings: SentinelConfig, addr: str, deliver: Callable[[Item], None]) -> None:
        self.settings = settings
        self.addr = addr
        self._deliver = deliver
        self.connected = False
        self.since = time.time()  # wall clock of the last change of `connected`
        self.error: str | None = "not connected yet"
        self.master: MasterState | None = None  # its last answer
        self._task: asyncio.Task[None] | None = None
        self._reached = False  # the current attempt got an answer
        self._log = RateLimitedLog(log, LOG_INTERVAL_S)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"sentinel {self.addr}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def to_json(self) -> dict[str, Any]:
        return {
            "addr": self.addr,
            "connected": self.connected,
            "since": self.since,
            "error": self.error,
            "master": self.master.addr if self.master else None,
            "config_epoch": self.master.epoch if self.master else None,
        }

    async def _run(self) -> None:
        backoff = MIN_BACKOFF_S
        while True:
            self._reached = False
            try:
                await self._follow()
            except (RedisError, OSError, SentinelError) as exc:
                self._down(str(exc) or type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - a surprise must not end the following for good
                log.exception("sentinel %s: unexpected error", self.addr)
                self._down(f"unexpected error: {exc}")
            if self._reached:  # it was up: start over quickly
                backoff = MIN_BACKOFF_S
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _follow(self) -> None:
        """Subscribe, ask, then relay events and ask again every RECHECK_S, until something fails."""
        name = self.settings.master_name
        client = sentinel_client(self.settings, self.addr, QUERY_TIMEOUT_S)
        pubsub = client.pubsub()
        loop = asyncio.get_running_loop()
        try:
            await pubsub.subscribe(*CHANNELS)
            await pubsub.psubscribe(*PATTERNS)
            # Subscribed, then asked (and asked again every second): a failover that ends meanwhile is
            # seen by the answer or by the events, whichever the sentinel gives first.
            self._answer(await ask_master(client, name))
            self._up()
            next_ask = loop.time() + RECHECK_S
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=max(0.0, next_ask - loop.time())
                )
                if message is not None and message.get("type") in ("message", "pmessage"):
                    event = parse_event(message["channel"], message["data"])
                    if event is not None and event.master == name:
                        self._deliver(Notice(self.addr, event))
                if loop.time() >= next_ask:
                    self._answer(await ask_master(client, name))
                    next_ask = loop.time() + RECHECK_S
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    def _answer(self, state: MasterState) -> None:
        self.master = state
        self._deliver(Answer(self.addr, state))

    def _up(self) -> None:
        self._reached = True
        if not self.connected:
            self.connected, self.since = True, time.time()
            log.info("sentinel %s: connected (master %s at %s)", self.addr, self.settings.master_name, self.master.addr if self.master else "?")
        self.error = None

    def _down(self, why: str) -> None:
        if self.connected:
            self.connected, self.since = False, time.time()
            log.warning("sentinel %s: connection lost: %s (reconnecting)", self.addr, why)
        elif why != self.error:  # still down: a new reason is worth a line, now and then
            self._log.warning("down", "sentinel %s: %s (retrying)", self.addr, why)
        self.error = why
