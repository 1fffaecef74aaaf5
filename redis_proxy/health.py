"""Is the active uplink answering? One connection of the proxy's own, one PING a second.

Client sessions only find out that the uplink is down when a client sends
something; /readyz, the uplink_up metric and the status page need to know
before that, and without a client. The checker keeps a single connection to
whatever `proxy.config.uplink` is at the moment (so it follows a reload or
switch), reconnects when it breaks, and records the last outcome.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

from redis_proxy.aio import Background
from redis_proxy.config import UplinkConfig
from redis_proxy.ratelog import RateLimitedLog
from redis_proxy.uplink import UplinkConnection, UplinkError, auth_command, open_uplink

log = logging.getLogger("redis_proxy")

CHECK_INTERVAL_S = 1.0
# Longer than a healthy round trip by far, short enough that readyz turns
# 503 within a few seconds when the uplink hangs instead of refusing.
CHECK_TIMEOUT_S = 2.0
# A flapping uplink changes state at most once per check; this keeps even
# that to one line per direction per interval.
TRANSITION_LOG_INTERVAL_S = 10.0
PING = [b"PING"]

Settings = Callable[[], tuple[UplinkConfig, ssl.SSLContext | None]]


class HealthChecker(Background):
    """The uplink's health as seen from the proxy: `up`, `reason` (when down), `since` (wall clock)."""

    task_name = "uplink-health"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings
        # Not known to be up until the first PING answers: readyz must not
        # say ready before anything was checked.
        self.up = False
        self.reason: str | None = "not checked yet"
        self.since = time.time()
        self._checked = False  # the first outcome is a transition only if it is "down"
        self._connection: UplinkConnection | None = None
        self._connected_to: tuple[UplinkConfig, ssl.SSLContext | None] | None = None
        self._log = RateLimitedLog(log, TRANSITION_LOG_INTERVAL_S)

    async def _after_stop(self) -> None:
        self._drop()

    def _cancelled(self) -> bool:
        # Python 3.11's wait_for can swallow a cancellation that arrives just
        # as the awaited connect or reply completes; the task then still
        # counts the request (cancelling()), so honour it here, or loop
        # shutdown (which cancels once and waits) would never end.
        task = asyncio.current_task()
        return self._stopping or (task is not None and task.cancelling() > 0)

    async def _run(self) -> None:
        while not self._cancelled():
            config, context = self._settings()
            try:
                await self._ping(config, context)
            except UplinkError as exc:
                self._drop()
                self._set(False, str(exc))
            except Exception as exc:  # noqa: BLE001 - the checker must outlive any surprise
                log.debug("uplink health check failed", exc_info=True)
                self._drop()
                self._set(False, f"health check failed: {exc}")
            else:
                self._set(True, None)
            if self._cancelled():
                break
            await asyncio.sleep(CHECK_INTERVAL_S)
        self._drop()

    async def _ping(self, config: UplinkConfig, context: ssl.SSLContext | None) -> None:
        """One check on the kept connection, opening it first if needed (raises UplinkError)."""
        connection = self._connection
        # A reload or switch brings a new config (and a new SSL context, which
        # may hold a rotated client certificate): check the uplink clients use now.
        target = (config, context)
        if connection is not None and (connection.closed or self._connected_to != target):
            self._drop()
            connection = None
        commands = [PING]
        if connection is None:
            connection = await open_uplink(config, context, CHECK_TIMEOUT_S)
            self._connection, self._connected_to = connection, target
            auth = auth_command(config)
            if auth:
                commands = [auth, PING]
        await connection.handshake(commands, [], 0, CHECK_TIMEOUT_S)

    def _drop(self) -> None:
        # After a timeout a late reply could be taken for the next PING's:
        # any failure starts over on a fresh connection.
        connection, self._connection, self._connected_to = self._connection, None, None
        if connection is not None:
            connection.abort()

    def _set(self, up: bool, reason: str | None) -> None:
        changed = up != self.up or not self._checked
        first = not self._checked
        self._checked = True
        self.reason = reason
        if not changed:
            return
        self.up = up
        self.since = time.time()
        addr = self._settings()[0].addr
        if not up:
            self._log.warning("down", "uplink %s is down: %s", addr, reason)
        elif not first:
            self._log.info("up", "uplink %s is up again", addr)
