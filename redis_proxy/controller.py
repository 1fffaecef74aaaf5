"""The controller: pause, drain, reload and switch the uplink while clients stay connected.

States: running -> pausing -> paused -> (unpause) running; failing-over while
automatic failover holds commands; stopping at shutdown. Which uplink to use
(reload, named uplinks, cmd=switch) is the base class's, in reloading.py.

The gate is one flag, `open`, that sessions read before forwarding. While it
is shut, new commands are held in their sessions. In-flight commands are
counted proxy-wide (`inflight`), and sessions inside MULTI or holding WATCHed
keys are counted too (`txn`): such a session keeps forwarding while pausing,
because a switch in the middle would lose its queued commands or WATCH's
guarantee. The instant both counts reach zero, sessions call `check_idle`
and the state becomes paused; waiters are woken by an event, never by polling.
"""

from __future__ import annotations

import asyncio
import logging
import time
import ssl
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from redis_proxy.config import Config
from redis_proxy.control_errors import ControlError, ControlTimeout, TargetRefused, UnknownUplink
from redis_proxy.gate import FAILING_OVER, PAUSED, PAUSING, RUNNING, STOPPING, Gate, SessionHandle
from redis_proxy.reloading import UplinkChoice, file_choice
from redis_proxy.stats import Stats

log = logging.getLogger("redis_proxy")

__all__ = ["RUNNING", "PAUSING", "PAUSED", "STOPPING", "Controller", "ControlError", "ControlTimeout", "UnknownUplink", "TargetRefused"]

DEFAULT_DRAIN_LIMIT = 10.0  # seconds to wait for in-flight commands when read_time_limit_ms is 0


@dataclass
class Switch:
    at: float
    from_addr: str
    to_addr: str
    held_ms: float


class ControlledProxy(Protocol):
    """What the controller needs of the proxy it controls."""

    config: Config
    config_path: str | None
    stats: Stats

    @property
    def sessions(self) -> Collection[SessionHandle]: ...
    def reload_problems(self, new: Config) -> list[str]: ...
    def prepare_tls(self, config: Config) -> dict[str, ssl.SSLContext]: ...
    def make_uplink_ssl(self, config: Config) -> ssl.SSLContext | None: ...
    def rotate_certificates(self, new: Config) -> None: ...
    def apply_config(self, new: Config, uplink_ssl: ssl.SSLContext | None) -> None: ...


class Controller(UplinkChoice):
    def __init__(self, proxy: ControlledProxy) -> None:
        self.proxy = proxy
        self.gate = Gate(proxy.config.read_time_limit_ms / 1000.0)
        self.gate.on_idle = self.check_idle
        self.closing = False
        self.operator_paused = False
        self.paused_since: float | None = None
        self.switches: deque[Switch] = deque(maxlen=20)
        self._changed = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._txn_timer: asyncio.TimerHandle | None = None
        self._pause_limit: asyncio.TimerHandle | None = None
        # What the config file said the uplink is, as last loaded: a reload
        # applies the file's uplink only when this changed (see _runtime_uplink).
        self.file_uplink = file_choice(proxy.config)
        # Set by a running switchover (a description of it): reload and switch wait for it to end.
        self.switchover_running: str | None = None
        # Set when following Sentinel: a reloaded file's uplink.addr is replaced by the master Sentinel names.
        self.adjust_config: Callable[[Config], Config] | None = None

    # -- state --------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.gate.state

    @property
    def inflight(self) -> int:
        return self.gate.inflight

    @property
    def txn(self) -> int:
        return self.gate.txn

    @property
    def time_limit(self) -> float:
        return self.gate.time_limit

    def _set_state(self, state: str) -> None:
        gate = self.gate
        if state != gate.state:
            log.info("state: %s -> %s", gate.state, state)
            gate.state = state
            gate.open = state == RUNNING
            self._notify()

    def _notify(self) -> None:
        """Wake everyone waiting for a change; they re-check what they wait for."""
        self._changed.set()
        self._changed = asyncio.Event()

    def check_idle(self) -> None:
        """Called by sessions (through the gate) when in-flight or transaction counts may have reached zero."""
        gate = self.gate
        if gate.state == PAUSING and gate.inflight == 0 and gate.txn == 0:
            self._set_state(PAUSED)
        elif gate.state == STOPPING and gate.inflight == 0:
            self._notify()

    @property
    def waiting(self) -> int:
        return sum(s.held for s in self.proxy.sessions)

    # -- operator API -----------------------------------------------------------

    def pause(self, expire_ms: int = 0) -> None:
        """Hold new commands; returns at once. The state is paused as soon as nothing is in flight.

        The pause ends by itself after max_pause_ms, or `expire_ms` if shorter
        (a switchover pauses its peers so: a leader that dies cannot leave them paused).
        """
        self.operator_paused = True
        self._begin_pause()
        limits = [limit for limit in (self.proxy.config.max_pause_ms, expire_ms) if limit]
        if limits:
            if self._pause_limit is not None:
                self._pause_limit.cancel()
            loop = asyncio.get_running_loop()
            self._pause_limit = loop.call_later(min(limits) / 1000, self._pause_limit_reached, min(limits))

    def unpause(self) -> None:
        """Release held commands (also cancels a pause still draining)."""
        self.operator_paused = False
        self._resume()

    def _pause_limit_reached(self, limit_ms: int) -> None:
        """max_pause_ms: an operator's pause ends by itself, so a forgotten pause cannot stall production."""
        self._pause_limit = None
        if not self.operator_paused:
            return
        self.proxy.stats.pause_limit_hits += 1
        log.warning("pause lasted its limit of %d ms: unpausing", limit_ms)
        self.operator_paused = False
        if not self._reload_lock.locked():  # a reload under way resumes when it is done (its own bound)
            self._resume()

    def paused_seconds(self) -> float:
        """Time spent pausing or paused since start, the current pause included."""
        return self.proxy.stats.paused_seconds + self.current_pause()

    def current_pause(self) -> float:
        """How long the current hold (pause, reload, switch, failover) has lasted; 0 while running."""
        return time.monotonic() - self.paused_since if self.paused_since is not None else 0.0

    async def pause_and_wait(self, timeout: float, expire_ms: int = 0) -> float:
        """Pause and return once paused (seconds it took). On timeout, unpause and raise ControlError."""
        started = time.monotonic()
        self.pause(expire_ms)
        try:
            await self._wait_paused(timeout)
        except ControlError:
            if self.state != RUNNING:
                self.unpause()
            raise
        return time.monotonic() - started

    def _begin_pause(self) -> None:
        if self.state == RUNNING:
            self.paused_since = time.monotonic()
            self.proxy.stats.pauses += 1
            self._set_state(PAUSING)
            if self.time_limit:
                # A transaction (MULTI or WATCH) holds a pause like a command
                # in flight, and is bounded the same way.
                loop = asyncio.get_running_loop()
                self._txn_timer = loop.call_later(self.time_limit, self._expire_transactions)
            # Blocked clients (BLPOP...) are unblocked on the server and sent again after the pause.
            for session in list(self.proxy.sessions):
                session.pausing()
            self.check_idle()

    def _expire_transactions(self) -> None:
        self._txn_timer = None
        if self.state != PAUSING:
            return
        for session in list(self.proxy.sessions):
            if session.in_txn:
                session.end_for_time_limit("transaction still open after read_time_limit_ms while pausing")

    def _resume(self, ending_failover: bool = False) -> None:
        if self.state == FAILING_OVER and not ending_failover:
            # Only the failover ends its own hold: a reload's or a pause's way out must not
            # send held commands to the dead uplink.
            return
        if self._txn_timer is not None:
            self._txn_timer.cancel()
            self._txn_timer = None
        if self.state in (PAUSING, PAUSED, FAILING_OVER):
            if self._pause_limit is not None:
                self._pause_limit.cancel()
                self._pause_limit = None
            if self.paused_since is not None:
                held = time.monotonic() - self.paused_since
                self.proxy.stats.hold_time.observe(held)
                self.proxy.stats.paused_seconds += held
                self.paused_since = None
            self._set_state(RUNNING)
            for session in list(self.proxy.sessions):
                session.resume()

    async def _wait_paused(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.state != PAUSED:
            if self.state != PAUSING:
                raise ControlError(f"pause was cancelled (state is {self.state})")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ControlTimeout(
                    f"timed out after {timeout:g} s waiting for {self.inflight} in-flight command(s)"
                    f" and {self.txn} open transaction(s)"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def set_time_limit(self, limit_ms: int) -> None:
        """read_time_limit_ms changed without a reload here (a workers' control process sent it)."""
        self._set_time_limit(limit_ms)

    def _set_time_limit(self, limit_ms: int) -> None:
        limit = limit_ms / 1000.0
        if limit != self.gate.time_limit:
            self.gate.time_limit = limit
            for session in list(self.proxy.sessions):
                session.rearm_timer()

    def drain_limit(self) -> float:
        """How long a pause may take: every in-flight command ends within read_time_limit_ms."""
        return self.time_limit + 1.0 if self.time_limit else DEFAULT_DRAIN_LIMIT

    async def _pause_and_switch(self, new: Config, uplink_ssl: ssl.SSLContext | None, why: str) -> float:
        """Pause, drain, switch every session to `new`, resume (unless an operator holds the pause).

        Returns how long clients were held (seconds). On failure nothing changed and ControlError says why.
        """
        started = await self.hold(why)
        old_addr = self.proxy.config.uplink.addr
        self.switch_sessions(new, uplink_ssl, why)
        return self.release(started, old_addr, new)

    async def hold(self, why: str, timeout: float | None = None) -> float:
        """Pause (unless paused already) and wait until nothing is in flight; the time clients are held from.

        On failure (the drain took longer than `timeout`, by default the
        drain limit) clients are released again (an operator's pause stays)
        and ControlError says why.
        """
        self._begin_pause()
        # Clients are held from the start of the pause, an operator's included.
        started = self.paused_since if self.paused_since is not None else time.monotonic()
        try:
            await self._wait_paused(self.drain_limit() if timeout is None else timeout)
        except ControlError as exc:
            # An operator's pause (before or during the drain) stays.
            if not self.operator_paused and self.state != RUNNING:
                self._resume()
            raise ControlError(f"{why} aborted, nothing changed: {exc}") from None
        return started

    def switch_sessions(self, new: Config, uplink_ssl: ssl.SSLContext | None, why: str) -> None:
        """While held: make `new` the config, each session takes a new uplink connection before its next command."""
        try:
            self.proxy.apply_config(new, uplink_ssl)
            self._set_time_limit(new.read_time_limit_ms)
            self.gate.generation += 1
            for session in list(self.proxy.sessions):
                session.switch_uplink()
        except Exception as exc:  # never leave clients held by a failed switch
            log.exception("%s: switching failed", why)
            self.release_hold()
            raise ControlError(f"{why} failed while switching: {exc}") from None

    def release(self, started: float, old_addr: str, new: Config) -> float:
        """After switch_sessions: resume (unless an operator holds the pause), record the switch; seconds held."""
        held = time.monotonic() - started
        self.release_hold()
        self.record_switch(old_addr, new, held)
        return held

    def record_switch(self, old_addr: str, new: Config, held: float) -> None:
        self.proxy.stats.switches += 1
        self.switches.appendleft(Switch(time.time(), old_addr, new.uplink.addr, held * 1000))
        log.info("switched uplink %s -> %s; clients held %.1f ms", old_addr, new.uplink.addr, held * 1000)

    def release_hold(self) -> None:
        """End a pause taken by hold() (or a failover's), unless an operator's pause holds it."""
        if self.state == FAILING_OVER:
            self.end_failover()
        elif not self.operator_paused:
            self._resume()

    # -- automatic failover -------------------------------------------------------

    def begin_failover(self) -> None:
        """The active uplink is down: hold new commands (state failing-over) until a new one is chosen.

        Commands in flight on the dead uplink are not waited for: their
        connections are gone, and sessions answer them with an error.
        """
        if self.state in (RUNNING, PAUSING, PAUSED):
            if self.paused_since is None:  # from running: a hold begins (else it continues a pause)
                self.paused_since = time.monotonic()
                self.proxy.stats.pauses += 1
            self._set_state(FAILING_OVER)

    def end_failover(self) -> None:
        """Release what a failover held, back to an operator's pause if one is in place."""
        if self.state != FAILING_OVER:
            return
        if self.operator_paused:
            self._set_state(PAUSING)
            self.check_idle()
        else:
            self._resume(ending_failover=True)

    # -- connections opened ahead of a switch -------------------------------------

    async def prepare_sessions(self, new: Config, uplink_ssl: ssl.SSLContext | None, timeout: float) -> tuple[int, int]:
        """Open every session's connection to `new`'s uplink before the switch to it; (ready, sessions).

        Sessions not ready within `timeout` connect at their next command
        after the switch, as without this.
        """
        sessions = list(self.proxy.sessions)
        tasks = [task for session in sessions if (task := session.prepare_uplink(new.uplink, uplink_ssl)) is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        ready = sum(1 for task in tasks if task.done() and not task.cancelled() and task.exception() is None)
        return ready, len(sessions)

    def discard_prepared(self) -> None:
        for session in list(self.proxy.sessions):
            session.discard_prepared()

    # -- shutdown -------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop forwarding new commands and wait (bounded) for in-flight ones to finish."""
        self.closing = True
        self._set_state(STOPPING)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_limit()
        while self.inflight > 0 and loop.time() < deadline:
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
            except TimeoutError:
                break
        if self.inflight:
            log.warning("shutdown: %d command(s) still in flight after %.1f s; closing anyway", self.inflight, self.drain_limit())

    def info(self) -> dict[str, Any]:
        return {
            "state_str": self.state,
            "active_requests": self.inflight,
            "waiting_requests": self.waiting,
            "open_transactions": self.txn,
            "operator_paused": self.operator_paused,
            "paused_seconds": round(self.paused_seconds(), 3),
            "pause_limit_hits": self.proxy.stats.pause_limit_hits,
            "switches": [
                {"at": s.at, "from": s.from_addr, "to": s.to_addr, "held_ms": round(s.held_ms, 3)} for s in self.switches
            ],
        }
