"""CLIENT UNBLOCK on the proxy's own connection, for sessions blocked when a pause begins.

Requests made in one loop turn share one connection. CLIENT UNBLOCK answers 0
when the command has not reached the server yet (or already returned); the
request is then repeated for as long as the session still waits, a bounded
number of times, so a pause is not held by a command that blocked a moment
after it was asked to stop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from redis_proxy.config import UplinkConfig
from redis_proxy.uplink import UplinkConnection, UplinkError, auth_command, open_uplink

log = logging.getLogger("redis_proxy")

RETRY_INTERVAL = 0.02
RETRIES = 100  # about 2 s: past that the blocked command holds the pause like any other in flight


class Unblocker:
    def __init__(
        self,
        settings: Callable[[], tuple[UplinkConfig, ssl.SSLContext | None]],
        spawn: Callable[[Any, str], asyncio.Task[Any]],
    ) -> None:
        self._settings = settings
        self._spawn = spawn
        self._waiting: dict[int, Callable[[], bool]] = {}
        self._task: asyncio.Task[Any] | None = None

    def request(self, client_id: int, wanted: Callable[[], bool]) -> None:
        """Unblock this uplink client while `wanted()` says the session still waits for it."""
        self._waiting[client_id] = wanted
        if self._task is None:
            self._task = self._spawn(self._run(), "client-unblock")

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # gather the requests of this loop turn
            config, context = self._settings()
            connection: UplinkConnection = await open_uplink(config, context, 5.0)
            try:
                auth = auth_command(config)
                if auth:
                    await connection.handshake([auth], [], 0, 5.0)
                for _ in range(RETRIES):
                    ids = [cid for cid, wanted in self._waiting.items() if wanted()]
                    self._waiting = {cid: self._waiting[cid] for cid in ids}
                    if not ids:
                        break
                    commands = [[b"CLIENT", b"UNBLOCK", b"%d" % cid, b"TIMEOUT"] for cid in ids]
                    await connection.handshake(commands, [], 0, 5.0)
                    await asyncio.sleep(RETRY_INTERVAL)
            finally:
                connection.close()
        except UplinkError as exc:
            log.warning("could not unblock blocked clients for the pause: %s", exc)
        finally:
            self._task = None
            self._waiting = {}
