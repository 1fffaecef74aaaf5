"""Once a second, what the proxy did in the last second, into the status page's `History`.

Everything is read from counters the proxy keeps anyway (the command
counter, the latency histogram's buckets, the controller's state and switch
list): the forwarding path does nothing more for the charts. Events (pauses,
switches, reloads, switchovers) are noticed as changes between two samples,
so the controller needs no hooks either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from redis_proxy.admin.history import History, Sample, quantile_ms
from redis_proxy.aio import Background
from redis_proxy.admin.state import scrub
from redis_proxy.gate import RUNNING

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

log = logging.getLogger("redis_proxy")

INTERVAL_S = 1.0


class Sampler(Background):
    """Fills `history` from `proxy`; `start()` runs it as a task, `sample()` is one step."""

    task_name = "admin-history-sampler"

    def __init__(self, proxy: Proxy, history: History | None = None) -> None:
        super().__init__()
        self.proxy = proxy
        self.history = history if history is not None else History()
        self._last_mono = time.monotonic()
        stats = proxy.stats
        self._commands = stats.commands
        self._latency = list(stats.latency.counts)
        self._holds = stats.hold_time.count
        self._reloads = stats.reloads
        controller = proxy.controller
        self._state = controller.state
        self._switch = controller.switches[0] if controller.switches else None
        self._error = controller.last_error
        self._switchover: Any = None
        self._switchover_result: str | None = None
        self._note_switchover()

    def paused_for_s(self) -> float | None:
        """How long commands have been held by the current pause (or failover); None when running."""
        since = self.proxy.controller.paused_since
        return None if since is None else max(0.0, time.monotonic() - since)

    def now(self) -> dict[str, Any]:
        """The state the page shows beside the charts: how long it has been held, the last error."""
        controller = self.proxy.controller
        paused_for = self.paused_for_s()
        error = controller.last_error
        return {
            "t": round(time.time(), 3),
            "state": controller.state,
            "operator_paused": controller.operator_paused,
            "paused_for_s": None if paused_for is None else round(paused_for, 3),
            "last_error": None if error is None else {"t": round(error[0], 3), "what": error[1], "error": self._scrub(error[2])},
        }

    def _note_switchover(self) -> tuple[Any, bool]:
        """The switchover status object, and whether it ended since last looked at."""
        status = self.proxy.switchover_status
        ended = status.result is not None and (status is not self._switchover or self._switchover_result is None)
        self._switchover, self._switchover_result = status, status.result
        return status, ended

    def sample(self) -> Sample:
        """Take one sample (and note the events since the last one)."""
        proxy, history = self.proxy, self.history
        now, mono = time.time(), time.monotonic()
        elapsed = max(mono - self._last_mono, 1e-3)
        stats, controller = proxy.stats, proxy.controller
        commands = stats.commands
        latency = list(stats.latency.counts)  # 17 ints: cheap, and the hot path's histogram stays as it is
        deltas = [max(0, new - old) for new, old in zip(latency, self._latency)]
        holds, state = stats.hold_time.count, controller.state
        # A pause that began and ended between two samples (a reload's hold of a
        # few ms) still marks this second as paused.
        paused = state != RUNNING or holds != self._holds
        self._events(now, state, holds)
        sample = Sample(
            t=now,
            ops=max(0, commands - self._commands) / elapsed,
            p99_ms=quantile_ms(stats.latency.bounds, deltas, 0.99),
            clients=proxy.clients(),
            held=controller.waiting,
            paused=paused,
        )
        history.add(sample)
        self._last_mono = mono
        self._commands, self._latency, self._holds, self._state = commands, latency, holds, state
        return sample

    def _events(self, now: float, state: str, holds: int) -> None:
        history, controller = self.history, self.proxy.controller
        if state != self._state:
            if self._state == RUNNING:
                since = self.paused_for_s()
                at = now - since if since is not None else now
                who = "an operator" if controller.operator_paused else "the proxy"
                history.event(at, "pause", f"{state}: held by {who}", now)
            elif state == RUNNING:
                history.event(now, "unpause", f"running again (was {self._state})", now)
        # Switches, newest first in the controller's list.
        fresh = []
        for switch in controller.switches:
            if switch is self._switch:
                break
            fresh.append(switch)
        for switch in reversed(fresh):
            history.event(switch.at, "switch", f"{switch.from_addr} \u2192 {switch.to_addr}, held {switch.held_ms:.1f} ms", now)
        if controller.switches:
            self._switch = controller.switches[0]
        if self.proxy.stats.reloads != self._reloads:
            count = self.proxy.stats.reloads - self._reloads
            history.event(now, "reload", "config reloaded" + (f" ({count} times)" if count > 1 else ""), now)
            self._reloads = self.proxy.stats.reloads
        error = controller.last_error
        if error is not None and error is not self._error:
            at, what, message = error
            kind = "reload-failed" if what == "reload" else "switch-failed"
            history.event(at, kind, f"{what} failed: {self._scrub(message)}", now)
        self._error = error
        status, ended = self._note_switchover()
        if ended:
            text = f"switchover {status.source} \u2192 {status.target}: {status.result}"
            if status.error:
                text += f": {self._scrub(status.error)}"
            history.event(status.ended_at or now, "switchover", text, now)

    def _scrub(self, text: str) -> str:
        return scrub(self.proxy, text)  # the page shows it: no password, ever

    # -- the task -------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + INTERVAL_S
        while not self._stopping:
            # On a fixed grid, so a slow second does not drift the chart's ticks.
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at + INTERVAL_S, loop.time())
            try:
                self.sample()
            except Exception:  # a bug here must not end the charts for good, nor flood the log
                log.exception("admin: taking a history sample failed")
                await asyncio.sleep(10 * INTERVAL_S)
