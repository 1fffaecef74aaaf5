"""Following Sentinel's failovers: hold clients while the master changes, then switch them to the new one.

The leader sentinel publishes +selected-slave (and
+failover-state-send-slaveof-noone) one timer tick (50-100 ms) before it
sends REPLICAOF NO ONE to the chosen replica: the proxy pauses then, so no
write reaches the old master once the replica stops replicating it.
+promoted-slave is the leader's commit point (the replica reports role master
and the leader sets the new config epoch, which the other sentinels then
adopt): the proxy switches there; every sentinel's +switch-master follows
and changes nothing more (it is enough alone when the others were missed).
An abort from the leader releases clients on the old master, and
max_hold_ms releases them whatever happens.

Several proxies following the same sentinels see the same events and pick
the same master: they need no coordination of their own.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from redis_proxy.config import SentinelConfig
from redis_proxy.controller import ControlError, TargetRefused
from redis_proxy.ratelog import RateLimitedLog
from redis_proxy.sentinel.events import ABORTED, PROMOTED, STARTED, SWITCHED, Event, MasterState
from redis_proxy.sentinel.link import Answer, Item, Link
from redis_proxy.sentinel.query import with_master

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

log = logging.getLogger("redis_proxy")

RESULTS = ("switched", "aborted", "expired", "refused")
CHECK_RETRY_S = 0.05  # the new master may not report role master yet: ask again this often, within the hold
UNHELD_CHECK_S = 1.0  # ...and for this long when clients are not held (the loop must not stall on a bad answer)
REFUSED_PAUSE_S = 5.0  # a master that failed its check is not tried again on sentinels' answers before this


class Refused(Exception):
    """The new master cannot be switched to (yet); the message says why."""


@dataclass
class Hold:
    started: float  # monotonic: clients held since (an operator's pause taken before counts)
    deadline: float  # monotonic: released by then, whatever happens (max_hold_ms)
    owner: str | None  # the sentinel leading the failover: only its abort releases
    target: str | None  # the replica being promoted


@dataclass
class Failover:
    at: float
    result: str  # one of RESULTS
    from_addr: str
    to_addr: str | None
    held_ms: float
    trigger: str  # what decided it (an event and its sentinel, an answer, max_hold_ms)
    reason: str | None = None


class SentinelFollower:
    def __init__(self, proxy: Proxy, settings: SentinelConfig, initial: MasterState | None = None) -> None:
        self.proxy = proxy
        self.settings = settings
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.links = [Link(settings, addr, self.queue.put_nowait) for addr in settings.addrs]
        # The config epoch of the master the proxy is on, once a sentinel said it. Answers naming another
        # master are followed only with a newer epoch: a sentinel that has not heard of the last failover
        # yet must not move the proxy back.
        self.epoch = initial.epoch if initial is not None else None
        # Switched on an event, not confirmed by an answer yet: answers naming another master wait.
        self.provisional = False
        self.hold: Hold | None = None
        self.last_event: dict[str, Any] | None = None
        self.failovers: deque[Failover] = deque(maxlen=10)
        self.results = dict.fromkeys(RESULTS, 0)
        self._refused: tuple[str, float] | None = None  # (address, when) of the last refused master
        self._task: asyncio.Task[None] | None = None
        self._log = RateLimitedLog(log, 30.0)

    @property
    def master(self) -> str:
        return self.proxy.config.uplink.addr

    @property
    def max_hold_s(self) -> float:
        return self.settings.max_hold_ms / 1000

    def start(self) -> None:
        for link in self.links:
            link.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sentinel follower")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for link in self.links:
            await link.stop()

    # -- the loop -----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                hold = self.hold
                timeout = None if hold is None else max(0.0, hold.deadline - time.monotonic())
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except TimeoutError:
                    self._finish("expired", None, "max_hold_ms", f"no new master within {self.settings.max_hold_ms} ms")
                    continue
                try:
                    await self._handle(item)
                except Exception:  # noqa: BLE001 - clients must never stay held by a surprise
                    log.exception("sentinel: handling %s failed", item)
                    self._finish("refused", None, "error", "unexpected error (see the log)")
        finally:
            self._release()

    async def _handle(self, item: Item) -> None:
        if isinstance(item, Answer):
            await self._on_answer(item)
            return
        event = item.event
        self.last_event = {"at": time.time(), "sentinel": item.sentinel, "channel": event.channel, "text": event.text}
        log.info("sentinel %s: %s %s", item.sentinel, event.channel, event.text)
        if event.kind == STARTED:
            await self._begin(item.sentinel, event)
        elif event.kind in (PROMOTED, SWITCHED) and event.addr is not None:
            await self._follow(event.addr, f"{event.channel} from sentinel {item.sentinel}")
        elif event.kind == ABORTED and self.hold is not None:
            if self.hold.owner not in (None, item.sentinel):
                log.info("sentinel %s: %s ignored: sentinel %s leads the failover", item.sentinel, event.channel, self.hold.owner)
                return
            self._finish("aborted", None, f"{event.channel} from sentinel {item.sentinel}", "Sentinel aborted the failover")

    async def _on_answer(self, answer: Answer) -> None:
        state = answer.state
        if state.addr == self.master:
            self.provisional = False
            if state.epoch is not None and (self.epoch is None or state.epoch > self.epoch):
                self.epoch = state.epoch
            return
        if self.provisional:
            return  # this sentinel has not heard of the failover just followed
        if self.epoch is not None and state.epoch is not None and state.epoch <= self.epoch:
            self._log.info(
                "stale", "sentinel %s names master %s at epoch %d, older than %s's %d: ignored",
                answer.sentinel, state.addr, state.epoch, self.master, self.epoch,
            )
            return
        if self._refused is not None and self._refused[0] == state.addr and time.monotonic() - self._refused[1] < REFUSED_PAUSE_S:
            return
        log.warning(
            "sentinel %s says master %s is at %s (config epoch %s), not %s: following it",
            answer.sentinel, self.settings.master_name, state.addr, state.epoch, self.master,
        )
        await self._follow(state.addr, f"answer from sentinel {answer.sentinel}", state.epoch)

    # -- holding and switching ------------------------------------------------------

    async def _begin(self, sentinel: str, event: Event) -> None:
        """The leader chose the replica to promote: hold clients (once; both start events name it)."""
        if self.hold is not None:
            self.hold.owner, self.hold.target = sentinel, event.addr
            return
        begun = time.monotonic()
        started = await self._take_hold(f"Sentinel failover of {self.settings.master_name}", begun + self.max_hold_s)
        if started is not None:
            self.hold = Hold(started, begun + self.max_hold_s, sentinel, event.addr)

    async def _take_hold(self, why: str, deadline: float) -> float | None:
        """Pause and drain; when clients are held from, or None (the drain did not finish in time: released)."""
        controller = self.proxy.controller
        controller.switchover_running = why  # reload, switch and operator pause/unpause wait for us
        try:
            return await controller.hold(why, timeout=max(0.001, deadline - time.monotonic()))
        except ControlError as exc:
            controller.switchover_running = None
            log.warning("%s: clients not held: %s", why, exc)
            return None
        except asyncio.CancelledError:  # the proxy stops: the pause begun here is nobody else's
            controller.switchover_running = None
            controller.release_hold()
            raise

    async def _follow(self, addr: str, trigger: str, epoch: int | None = None) -> None:
        """Switch to the master at `addr` (checked first), holding clients for the switch; release in any case."""
        if addr == self.master:
            if self.hold is not None:
                self._finish("switched", addr, trigger)  # promoted where the proxy already is
            return
        deadline = self.hold.deadline if self.hold is not None else time.monotonic() + self.max_hold_s
        lock = self.proxy.controller.switch_lock  # a reload in progress must not switch back behind us
        try:
            if lock.locked():
                await asyncio.wait_for(lock.acquire(), max(0.0, deadline - time.monotonic()))
            else:
                await lock.acquire()
        except TimeoutError:
            self._finish("refused", addr, trigger, "a reload or switch kept the proxy busy for max_hold_ms")
            return
        try:
            await self._switch(addr, trigger, deadline)
        except Refused as exc:
            self._refused = (addr, time.monotonic())
            self._finish("refused", addr, trigger, str(exc))
            return
        finally:
            lock.release()
        self._refused = None
        if epoch is None:
            self.provisional = True  # until a sentinel's answer confirms it, with its epoch
        else:
            self.provisional, self.epoch = False, epoch

    async def _switch(self, addr: str, trigger: str, deadline: float) -> None:
        name = self.settings.master_name
        new = with_master(self.proxy.config, addr)
        holding = self.hold is not None
        uplink_ssl = await self._checked(new, addr, deadline if holding else min(deadline, time.monotonic() + UNHELD_CHECK_S))
        controller = self.proxy.controller
        why = f"Sentinel failover of {name} to {addr}"
        if self.hold is None:
            started = await self._take_hold(why, deadline)
            if started is None:
                raise Refused("in-flight commands did not finish within max_hold_ms")
            self.hold = Hold(started, deadline, None, addr)
        else:
            controller.switchover_running = why
            try:  # still paused: returns at once; released meanwhile (an abort, a reload): drains again
                await controller.hold(why, timeout=max(0.001, deadline - time.monotonic()))
            except ControlError as exc:
                self.hold = None  # hold() released the clients
                raise Refused(str(exc)) from None
        old = self.master
        hold, self.hold = self.hold, None
        try:
            controller.switch_sessions(new, uplink_ssl, why)  # releases clients itself when it fails
        except ControlError as exc:
            controller.switchover_running = None
            raise Refused(str(exc)) from None
        held = controller.release(hold.started, old, new)
        controller.switchover_running = None
        self._record("switched", old, addr, held * 1000, trigger)
        log.info("Sentinel failover of %s followed: %s -> %s (%s), clients held %.1f ms", name, old, addr, trigger, held * 1000)

    async def _checked(self, new: Any, addr: str, deadline: float) -> ssl.SSLContext | None:
        """The new master must take clients (role master included): asked again briefly, until the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Refused(f"{addr} was not usable within max_hold_ms")
            try:
                return await asyncio.wait_for(self.proxy.controller.check_target(new, addr), left)
            except TargetRefused as exc:
                problem = str(exc)
            except TimeoutError:
                raise Refused(f"{addr} did not answer its check within max_hold_ms") from None
            if deadline - time.monotonic() < CHECK_RETRY_S:
                raise Refused(problem)
            await asyncio.sleep(CHECK_RETRY_S)

    def _finish(self, result: str, to_addr: str | None, trigger: str, reason: str | None = None) -> None:
        """End a failover that did not switch: release clients (if held), record and log it."""
        held = (time.monotonic() - self.hold.started) * 1000 if self.hold is not None else 0.0
        if self.hold is None and result != "refused":
            return
        self._release()
        self._record(result, self.master, to_addr, held, trigger, reason)
        args = (self.settings.master_name, result, trigger, f": {reason}" if reason else "", held, self.master)
        msg = "Sentinel failover of %s: %s (%s)%s; clients held %.1f ms, on %s"
        if result == "refused":  # a master named again and again by sentinels' answers: a line now and then
            self._log.warning("refused", msg, *args)
        else:
            log.log(logging.INFO if result == "switched" else logging.WARNING, msg, *args)

    def _release(self) -> None:
        controller = self.proxy.controller
        if self.hold is not None:
            self.hold = None
            controller.release_hold()
        if controller.switchover_running is not None and controller.switchover_running.startswith("Sentinel"):
            controller.switchover_running = None

    def _record(self, result: str, from_addr: str, to_addr: str | None, held_ms: float, trigger: str, reason: str | None = None) -> None:
        self.results[result] += 1
        self.failovers.appendleft(Failover(time.time(), result, from_addr, to_addr, round(held_ms, 3), trigger, reason))

    # -- state ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        hold = self.hold
        return {
            "master_name": self.settings.master_name,
            "master": self.master,
            "config_epoch": self.epoch,
            "holding": None if hold is None else {
                "held_ms": round((time.monotonic() - hold.started) * 1000, 3),
                "sentinel": hold.owner,
                "target": hold.target,
            },
            "max_hold_ms": self.settings.max_hold_ms,
            "sentinels": [link.to_json() for link in self.links],
            "last_event": self.last_event,
            "last_failover": asdict(self.failovers[0]) if self.failovers else None,
            "failovers": [asdict(f) for f in self.failovers],
            "results": dict(self.results),
        }
