"""Automatic failover: watch the active uplink, and when it dies hold commands, choose a candidate, switch.

The monitor PINGs the active uplink on a control-plane connection of its own
every `check_interval_ms`. The uplink is down after `down_after_ms` without a
good answer, or at once when its port refuses connections right after a
client's uplink connection was lost or refused (a process that died leaves
its port closed; a slow one does not, and gets the full `down_after_ms`).

Then commands are held (state failing-over) while the candidates are tried
in order: connect with their credentials, PING, the check script, master (or
a replica promoted when `promote` is true). The first that passes is
switched to, after the trigger scripts, and the held commands go to it.
With no candidate within `max_hold_ms`, held commands fail with the reason
and the search goes on with exponential backoff. A recovered old primary is
never switched back to: only the active uplink being down starts a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any

from redis_proxy.aio import Background, within
from redis_proxy.config import Config, FailoverConfig, UplinkConfig, parse_tcp_addr
from redis_proxy.control.client import ControlPlaneError, call, control_client
from redis_proxy.controller import ControlError
from redis_proxy.failover.scripts import run_script
from redis_proxy.failover.status import FailoverRecord, FailoverStatus
from redis_proxy.switchover.servers import Server

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

log = logging.getLogger("redis_proxy")

FIRST_BACKOFF_S = 0.1  # between rounds over the candidates, doubled up to max_backoff_ms
REFUSAL_PROBE_S = 0.5  # a TCP connect that tells a closed port from a slow server


async def port_refuses(uplink: UplinkConfig) -> bool:
    """Does the uplink's port refuse TCP connections (nobody listens)? Unix sockets: the file is gone or refuses."""
    try:
        if uplink.network == "unix":
            connecting = asyncio.open_unix_connection(uplink.addr)
        else:
            host, port = parse_tcp_addr(uplink.addr)
            connecting = asyncio.open_connection(host, port)
        _, writer = await asyncio.wait_for(connecting, REFUSAL_PROBE_S)
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    except (OSError, TimeoutError):
        return False
    writer.close()
    return False


class FailoverMonitor(Background):
    task_name = "failover-monitor"

    def __init__(self, proxy: Proxy) -> None:
        super().__init__()
        self.proxy = proxy
        self.status = FailoverStatus()
        self._wake = asyncio.Event()
        self._client: Any = None
        self._client_for: UplinkConfig | None = None

    # -- life ----------------------------------------------------------------------------

    async def _after_stop(self) -> None:
        await self._close_client()

    def uplink_trouble(self) -> None:
        """A client's uplink connection was lost or refused: check now rather than at the next interval."""
        self._wake.set()

    # -- watching --------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not silently end failover for the life of the process
                log.exception("failover: the monitor failed; restarting it in 1 s")
                self.status.state = "watching" if self.proxy.config.failover is not None else "off"
                await asyncio.sleep(1.0)

    async def _watch(self) -> None:
        last_good = time.monotonic()
        woken = False
        while not self._stopping:
            settings = self.proxy.config.failover
            if settings is None:  # not configured (a reload may add it)
                self.status.state = "off"
                await self._sleep(1.0)
                last_good, woken = time.monotonic(), False
                continue
            if self.status.state == "off":
                self.status.state = "watching"
            problem = await self._check(settings)
            now = time.monotonic()
            if problem is None:
                last_good = now
                self.status.last_ok, self.status.down_since = time.time(), None
            else:
                if self.status.down_since is None:
                    self.status.down_since = time.time()
                    log.warning("failover: the active uplink %s does not answer: %s", self.proxy.config.uplink.addr, problem)
                refused = woken and await port_refuses(self.proxy.config.uplink)
                if self.proxy.controller.switchover_running is not None:
                    # A switchover (or a Sentinel-led switch) owns the hold; it fails on a dead
                    # source and rolls back, and the next check here takes over.
                    pass
                elif refused or (now - last_good) * 1000 >= settings.down_after_ms:
                    why = "its port refuses connections" if refused else f"no good answer for {settings.down_after_ms} ms"
                    await self._fail_over(settings, f"{problem} ({why})")
                    last_good, woken = time.monotonic(), False
                    continue
            woken = await self._sleep(settings.check_interval_ms / 1000)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, or less when a client reports trouble with the uplink (then True)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    async def _check(self, settings: FailoverConfig) -> str | None:
        """PING the active uplink; None when it answered, else why not."""
        uplink = self.proxy.config.uplink
        if self._client_for != uplink:
            await self._close_client()
            try:
                self._client = control_client(uplink, timeout=settings.down_after_ms / 1000)
            except ControlPlaneError as exc:
                return f"cannot be checked: {exc}"
            self._client_for = uplink
        try:
            await within(call(self._client, uplink.addr, "PING"), settings.check_interval_ms / 1000 + 0.5)
        except TimeoutError:
            await self._close_client()  # a connection stuck on a lost answer is no use for the next check
            return "PING not answered in time"
        except ControlPlaneError as exc:
            await self._close_client()
            return str(exc)
        return None

    async def _close_client(self) -> None:
        client, self._client, self._client_for = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    # -- failing over ---------------------------------------------------------------------------

    async def _fail_over(self, settings: FailoverConfig, reason: str) -> None:
        proxy, controller = self.proxy, self.proxy.controller
        source = proxy.config.uplink_name or proxy.config.uplink.addr
        record = FailoverRecord(source=source, reason=reason)
        self.status.last = record
        self.status.state = "failing-over"
        record.event(f"the active uplink {source} is down: {reason}", logging.ERROR)
        started = time.monotonic()
        dead = proxy.config.uplink
        controller.begin_failover()
        # While commands are held, nothing else may switch, reload or pause: the failover owns the hold.
        controller.switchover_running = "an automatic failover"
        hold_deadline = started + settings.max_hold_ms / 1000
        backoff = FIRST_BACKOFF_S
        try:
            while not self._stopping:
                chosen = await self._choose(settings, record, hold_deadline)
                if chosen is not None:
                    await self._switch(settings, record, started, *chosen)
                    return
                if self.status.state == "failing-over" and time.monotonic() >= hold_deadline:
                    self._give_up_holding(record, settings)
                if self.status.state == "searching" and await self._search_over(record, dead, settings):
                    return
                wait = backoff
                if self.status.state == "failing-over":
                    wait = min(wait, max(0.0, hold_deadline - time.monotonic()))
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, settings.max_backoff_ms / 1000)
        finally:
            controller.switchover_running = None
            if self.status.state == "failing-over":  # stopping: never leave commands held
                controller.end_failover()
            if record.result is None:
                record.result, record.error, record.ended_at = "failed", "the proxy stopped", time.time()
                proxy.stats.failovers["failed"] += 1
            self.status.state = "watching"

    async def _search_over(self, record: FailoverRecord, dead: UplinkConfig, settings: FailoverConfig) -> bool:
        """While searching (nothing held): has the dead uplink come back, or did an operator switch meanwhile?"""
        if self.proxy.config.uplink != dead:
            record.result, record.ended_at = "done", time.time()
            record.error = f"ended: the uplink was switched to {self.proxy.config.uplink_name or self.proxy.config.uplink.addr} meanwhile"
            record.event(record.error)
            self.proxy.stats.failovers["done"] += 1
            return True
        if await self._check(settings) is None:
            record.result, record.ended_at = "recovered", time.time()
            record.error = f"ended: {record.source} answers again; no switch"
            record.event(record.error, logging.WARNING)
            self.proxy.stats.failovers["recovered"] = self.proxy.stats.failovers.get("recovered", 0) + 1
            return True
        return False

    def _give_up_holding(self, record: FailoverRecord, settings: FailoverConfig) -> None:
        """max_hold_ms is over: every held command gets an error; new ones go to the dead uplink and fail fast."""
        reason = f"ERR failover: no usable uplink among {', '.join(settings.candidates)} within max_hold_ms={settings.max_hold_ms}"
        sessions = list(self.proxy.sessions)
        failed = sum(session.held for session in sessions)
        for session in sessions:
            session.fail_held(reason)
        record.failed_commands += failed
        self.proxy.stats.failover_commands_failed += failed
        self.proxy.controller.end_failover()
        # Nothing is held any more: operators may switch, switch over or reload while the search goes on.
        self.proxy.controller.switchover_running = None
        self.status.state = "searching"
        record.event(f"no candidate within max_hold_ms: {failed} held command(s) failed; still trying", logging.ERROR)

    async def _choose(
        self, settings: FailoverConfig, record: FailoverRecord, hold_deadline: float
    ) -> tuple[str, Config, ssl.SSLContext | None] | None:
        """The first candidate that passes every check (promoted if asked), or None.

        Held commands fail as soon as the hold's deadline passes, even in the
        middle of a round: the round goes on, without them.
        """
        config = self.proxy.config
        timeout = settings.check_interval_ms / 1000 + 1.0
        for name in settings.candidates:
            if self.status.state == "failing-over" and time.monotonic() >= hold_deadline:
                self._give_up_holding(record, settings)
            if name == config.uplink_name or name not in config.uplinks:
                continue
            section = config.uplinks[name]
            server: Server | None = None
            try:
                server = Server(name, section)
                repl = await within(server.replication(), timeout)
                await within(server.call("PING"), timeout)
                if settings.check_script:
                    result = await run_script(settings.check_script, section.addr, settings.script_timeout_ms / 1000)
                    if not result.ok:
                        record.event(f"candidate {name}: check script refused it ({result.describe()})", logging.WARNING)
                        continue
                if not repl.is_master and not settings.promote:
                    record.event(f"candidate {name}: a replica, and promote is false", logging.WARNING)
                    continue
                new = config.with_uplink(name)
                # Checked as the proxy will use it before anything is changed on it: a candidate refused
                # after its promotion would be left an orphan master.
                uplink_ssl = await self.proxy.controller.check_target(new, name, replica_ok=True)
                if not repl.is_master:
                    await within(server.promote(), timeout)
                    record.event(f"candidate {name} promoted to master (REPLICAOF NO ONE)")
                return name, new, uplink_ssl
            except TimeoutError:
                record.event(f"candidate {name}: no answer within {timeout:g} s", logging.WARNING)
            except (ControlPlaneError, ControlError) as exc:
                record.event(f"candidate {name}: {exc}", logging.WARNING)
            finally:
                if server is not None:
                    await server.close()
        return None

    async def _switch(
        self, settings: FailoverConfig, record: FailoverRecord, started: float,
        name: str, new: Config, uplink_ssl: ssl.SSLContext | None,
    ) -> None:
        proxy, controller = self.proxy, self.proxy.controller
        addr = new.uplink.addr
        for script in settings.trigger_scripts:
            result = await run_script(script, addr, settings.script_timeout_ms / 1000)
            level = logging.INFO if result.ok else logging.WARNING
            record.event(f"trigger script {script}: {result.describe()}", level)
        old_addr = proxy.config.uplink.addr
        held = sum(session.held for session in proxy.sessions)
        try:
            controller.switch_sessions(new, uplink_ssl, "failover")  # releases clients itself if it fails
        except ControlError as exc:
            record.result, record.error, record.ended_at = "failed", f"switching to {name} failed: {exc}", time.time()
            proxy.stats.failovers["failed"] += 1
            record.event(record.error, logging.ERROR)
            return
        # Replies the dead (or stalled) uplink still owes will not come: answer them as lost now.
        for session in list(proxy.sessions):
            session.abandon_stale_uplink(f"failover to {name}: the old uplink is down")
        if self.status.state == "failing-over":
            controller.release(controller.paused_since or started, old_addr, new)
            record.held_commands = held
            proxy.stats.failover_commands_held += held
        else:  # the hold had already ended: only the switch is left
            controller.record_switch(old_addr, new, 0.0)
        record.target, record.result, record.ended_at = name, "done", time.time()
        record.recover_ms = (time.monotonic() - started) * 1000
        proxy.stats.failovers["done"] += 1
        record.event(f"switched to {name} ({addr}) {record.recover_ms:.0f} ms after the uplink was declared down; {held} held command(s) released")
