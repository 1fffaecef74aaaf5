"""Every named uplink's role, reachability and replication link, polled in the background.

info.json, the status page, /metrics and the switchover engine need to know,
before anyone acts, which named uplinks answer, which are replicas of which,
and how far behind they are. Client sessions only ever talk to the active
uplink, so this poller asks each entry of `config.uplinks` (as of now, so it
follows reloads) `INFO replication` every couple of seconds on a
control-plane connection of its own, all at once and each bounded by a
timeout: one server that hangs must not delay the others' news.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from redis_proxy.aio import Background
from redis_proxy.config import Config, UplinkConfig, parse_tcp_addr
from redis_proxy.control.client import Replication, control_client, replication
from redis_proxy.ratelog import RateLimitedLog

log = logging.getLogger("redis_proxy")

POLL_INTERVAL_S = 2.0
# Below the interval, so a poll never runs into the next; long enough for a
# server busy with a fork or a big key to answer.
POLL_TIMEOUT_S = 1.5
# Transitions of one uplink are logged at most this often (a flapping server).
TRANSITION_LOG_INTERVAL_S = 30.0
NOT_CHECKED = "not checked yet"
REMOVED = "[removed]"


@dataclass(frozen=True)
class UplinkState:
    """One named uplink as last polled. `to_json` is its info.json record."""

    addr: str
    active: bool = False  # the proxy's uplink now (filled in when read, not when polled)
    reachable: bool = False
    error: str | None = NOT_CHECKED  # why it is not reachable; never contains a password
    role: str | None = None  # "master" or "replica" (Redis's "slave")
    master_link_status: str | None = None  # a replica's link to its master: "up" or "down"
    master: str | None = None  # a replica's master: the named uplink's name, else the address it replicates from
    lag_bytes: int | None = None  # master's offset minus this replica's, when its master is a reachable named uplink
    offset: int | None = None  # master_repl_offset
    checked_at: float | None = None  # wall clock of the poll this comes from
    replication: Replication | None = None  # the parsed INFO, for the switchover engine (not in JSON)

    def to_json(self) -> dict[str, Any]:
        return {
            "addr": self.addr,
            "active": self.active,
            "reachable": self.reachable,
            "error": self.error,
            "role": self.role,
            "master_link_status": self.master_link_status,
            "master": self.master,
            "lag_bytes": self.lag_bytes,
            "offset": self.offset,
            "checked_at": self.checked_at,
        }


def addr_key(addr: str) -> str:
    """An address in a comparable form: a replica reports its master as host:port, the config may spell it otherwise."""
    try:
        host, port = parse_tcp_addr(addr)
    except ValueError:
        return addr  # a unix socket path: only equal to itself
    host = host.lower()
    if host == "localhost":
        host = "127.0.0.1"
    return f"{host}:{port}"


# redis-py says "Error 111 connecting to host:port. Connect call failed (...)": the errno's name is what people read.
_CONNECT_ERROR = re.compile(r"(?:INFO replication failed: )?Error (-?\d+) connecting to (\S+?)\.(?: (.*))?", re.DOTALL)


def _readable(error: str) -> str:
    match = _CONNECT_ERROR.fullmatch(error)
    if match is None:
        return error
    errno, addr, rest = int(match.group(1)), match.group(2), (match.group(3) or "").rstrip(".")
    # Negative numbers are getaddrinfo's (a name that does not resolve): its own words follow.
    why = os.strerror(errno) if errno > 0 else rest or f"error {errno}"
    return f"cannot connect to {addr}: {why}"


def _scrub(text: str, section: UplinkConfig) -> str:
    # redis-py's messages do not carry passwords; this is a second line of
    # defence for text that ends up on a page and in metrics scrapers' logs.
    if section.password:
        text = text.replace(section.password, REMOVED)
    return text


class UplinksPoller(Background):
    """Polls every named uplink of `config()` every `interval` seconds; `snapshot()` is the latest picture."""

    task_name = "uplinks-status"

    def __init__(
        self,
        config: Callable[[], Config],
        interval: float = POLL_INTERVAL_S,
        timeout: float = POLL_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self._config = config
        self.interval = interval
        self.timeout = timeout
        # name -> (the section it was built for, the client): rebuilt when the section changes.
        self._clients: dict[str, tuple[UplinkConfig, aioredis.Redis]] = {}
        # name -> (the section polled, what it said): a record of an older section is not shown.
        self._records: dict[str, tuple[UplinkConfig, UplinkState]] = {}
        self._lock = asyncio.Lock()  # one poll at a time: the loop's and a caller's refresh()
        self._log = RateLimitedLog(log, TRANSITION_LOG_INTERVAL_S)
        self._reachable: dict[str, bool] = {}  # as last logged, per name

    # -- reading ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, UplinkState]:
        """Every named uplink of the current config, in config order, as last polled."""
        config = self._config()
        out: dict[str, UplinkState] = {}
        for name, section in config.uplinks.items():
            record = self._records.get(name)
            state = record[1] if record is not None and record[0] == section else UplinkState(addr=section.addr)
            out[name] = dataclasses.replace(state, active=config.uplink_name == name)
        return out

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {name: state.to_json() for name, state in self.snapshot().items()}

    # -- lifecycle ---------------------------------------------------------------------

    async def _after_stop(self) -> None:
        for name in list(self._clients):
            await self._drop_client(name)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.refresh()
            except Exception:  # the poller must outlive any surprise (logged with its traceback)
                log.exception("uplinks status poll failed")
            await asyncio.sleep(self.interval)

    # -- polling -----------------------------------------------------------------------

    async def refresh(self) -> dict[str, UplinkState]:
        """Poll every named uplink now (concurrently, each bounded by the timeout); the new snapshot."""
        async with self._lock:
            uplinks = dict(self._config().uplinks)
            for name, (section, _) in list(self._clients.items()):
                if uplinks.get(name) != section:
                    await self._drop_client(name)  # removed or changed by a reload
            answers = await asyncio.gather(*(self._ask(name, section) for name, section in uplinks.items()))
            checked_at = round(time.time(), 3)
            polled = dict(zip(uplinks, answers, strict=True))
            self._records = {
                name: (section, self._state(name, section, polled, uplinks, checked_at))
                for name, section in uplinks.items()
            }
            for name, (_, state) in self._records.items():
                self._log_transition(name, state)
        return self.snapshot()

    def _client(self, name: str, section: UplinkConfig) -> aioredis.Redis:
        kept = self._clients.get(name)
        if kept is not None and kept[0] == section:
            return kept[1]
        client = control_client(section, timeout=self.timeout)
        self._clients[name] = (section, client)
        return client

    async def _drop_client(self, name: str) -> None:
        kept = self._clients.pop(name, None)
        if kept is None:
            return
        # Closing only drops sockets; bounded all the same, since a stuck
        # close must not stall the poll of every other uplink.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                await kept[1].aclose()

    async def _ask(self, name: str, section: UplinkConfig) -> Replication | str:
        """INFO replication of one uplink, or why not (a readable line without its password)."""
        try:
            client = self._client(name, section)
            async with asyncio.timeout(self.timeout):
                return await replication(client, name)
        except TimeoutError:
            error = f"no reply to INFO replication within {self.timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure is this uplink's state, not the poller's
            error = str(exc) or type(exc).__name__
            error = _readable(error.removeprefix(f"{name}: "))  # the record is keyed by the name already
        # After a timeout a late reply could be read as the next poll's: start over on a fresh connection.
        await self._drop_client(name)
        return _scrub(error, section)

    def _state(
        self,
        name: str,
        section: UplinkConfig,
        polled: dict[str, Replication | str],
        uplinks: dict[str, UplinkConfig],
        checked_at: float,
    ) -> UplinkState:
        answer = polled[name]
        if isinstance(answer, str):
            return UplinkState(addr=section.addr, reachable=False, error=answer, checked_at=checked_at)
        master_name: str | None = None
        lag: int | None = None
        if not answer.is_master and answer.master_addr is not None:
            master_name = self._named(answer.master_addr, uplinks, exclude=name)
            master = polled.get(master_name) if master_name is not None else None
            if isinstance(master, Replication):
                # The two INFOs are read at slightly different moments: a
                # replica read later may be ahead of its master read earlier,
                # which means "caught up", not a negative lag.
                lag = max(0, master.offset - answer.offset)
        return UplinkState(
            addr=section.addr,
            reachable=True,
            error=None,
            role="master" if answer.is_master else "replica",
            master_link_status=answer.link_status,
            master=master_name if master_name is not None else answer.master_addr,
            lag_bytes=lag,
            offset=answer.offset,
            checked_at=checked_at,
            replication=answer,
        )

    @staticmethod
    def _named(master_addr: str, uplinks: dict[str, UplinkConfig], exclude: str) -> str | None:
        """The named uplink a replica's master address is, by its addr or its replicate_from."""
        wanted = addr_key(master_addr)
        for name, section in uplinks.items():
            if name != exclude and wanted in (addr_key(section.addr), addr_key(section.replication_addr)):
                return name
        return None

    def _log_transition(self, name: str, state: UplinkState) -> None:
        previous = self._reachable.get(name)
        self._reachable[name] = state.reachable
        if previous is None and state.reachable:
            return  # the first poll finding it up is not news
        if previous != state.reachable:
            if state.reachable:
                self._log.info(f"up:{name}", "uplink %s (%s) is reachable again", name, state.addr)
            else:
                self._log.warning(f"down:{name}", "uplink %s (%s) is unreachable: %s", name, state.addr, state.error)
