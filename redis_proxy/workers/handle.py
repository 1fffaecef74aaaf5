"""One worker process as the control process's controller sees it: a session handle (gate.SessionHandle).

The controller pauses, drains, switches and resumes "sessions"; in a
control process each of them is a whole worker. Pausing one sends it
`hold` and counts it as one command in flight until it reports that it
has drained, so the control process is paused exactly when every worker
is; a switch and a release follow on the same ordered channel. A worker
that dies is started again (its clients are gone with it; the others
carry on), its last counters kept so totals never go backwards.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from redis_proxy.gate import Gate
from redis_proxy.takeover.wire import Channel, ControlChannelError

log = logging.getLogger("redis_proxy")

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
RESTART_DELAY_S = 1.0


class WorkerHandle:
    def __init__(
        self, index: int, gate: Gate, start_document: Callable[[], tuple[dict[str, Any], list[int]]],
        log_args: list[str], on_status: Callable[[], None],
    ) -> None:
        self.index = index
        self.gate = gate
        self.start_document = start_document  # the config to serve as of now, and the unix listeners to inherit
        self.log_args = log_args
        self.on_status = on_status  # the control process re-adds the totals
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: Channel | None = None
        self.status: dict[str, Any] = {}
        self.retired: list[dict[str, Any]] = []  # traffic of this slot's earlier processes (they died)
        self.draining = False  # counted in the control gate's in-flight until it reports it drained
        self.hold_seq = 0
        self.stopping = False
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    # -- the process -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker and wait until it serves (raises OSError with its reason)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        document, unix_fds = self.start_document()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "redis_proxy", "--worker", str(theirs.fileno()), "--worker-index", str(self.index),
                 *self.log_args],
                stdin=subprocess.DEVNULL, pass_fds=[theirs.fileno(), *unix_fds],
            )
        finally:
            theirs.close()
        self.channel = Channel(ours)
        loop = asyncio.get_running_loop()
        try:
            await self.channel.send(document, loop.time() + START_TIMEOUT_S, unix_fds)
            started, _ = await self.channel.receive(loop.time() + START_TIMEOUT_S)
        except ControlChannelError as exc:
            raise OSError(0, f"worker {self.index} did not start: {exc}") from None
        if started.get("ev") != "started":
            raise OSError(0, f"worker {self.index} did not start: {started.get('error', started)}")
        log.info("worker %d: pid %d serving %s", self.index, started.get("pid"), started.get("addresses"))
        self._outbox = asyncio.Queue()  # nothing queued for an earlier process of this slot is sent to this one
        self._reader = loop.create_task(self._read(), name=f"worker-{self.index}-reader")
        self._sender = loop.create_task(self._send_loop(self.channel), name=f"worker-{self.index}-sender")

    async def _read(self) -> None:
        assert self.channel is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                message, _ = await self.channel.receive(loop.time() + 365 * 24 * 3600.0)
                self._received(message)
        except ControlChannelError as exc:
            if not self.stopping:
                await self._died(str(exc))

    def _received(self, message: dict[str, Any]) -> None:
        event = message.get("ev")
        if event == "status":
            self.status = message
            self.on_status()
        elif event == "paused" and message.get("seq") == self.hold_seq and self.draining:
            self._drained()

    def _drained(self) -> None:
        self.draining = False
        self.gate.inflight -= 1
        self.gate.check_idle()

    async def _died(self, why: str) -> None:
        code = self.proc.poll() if self.proc is not None else None
        log.error("worker %d (pid %s) is gone (%s, exit code %s): starting it again", self.index,
                  self.proc.pid if self.proc else "?", why, code)
        if self.status.get("traffic"):
            self.retired.append(self.status["traffic"])
        self.status = {}
        if self.draining:
            self._drained()  # nothing of it is in flight any more
        if self._sender is not None:
            self._sender.cancel()
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        while not self.stopping:
            await asyncio.sleep(RESTART_DELAY_S)
            try:
                await self.start()
                if self.gate.state != "running":
                    self.pausing()  # the new one holds too, as the others do
                return
            except OSError as exc:
                log.error("worker %d: %s", self.index, exc.strerror or exc)

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; one task sends them in order. A dead worker's are dropped (it restarts with the config as of then)."""
        if self.channel is not None:
            self._outbox.put_nowait(message)

    async def _send_loop(self, channel: Channel) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self._outbox.get()
            try:
                await channel.send(message, loop.time() + 10.0)
            except ControlChannelError as exc:
                log.warning("worker %d: could not send %s: %s", self.index, message.get("op"), exc)
                return  # its reader notices the worker is gone

    async def stop(self) -> None:
        self.stopping = True
        self.send({"op": "stop"})
        proc = self.proc
        if proc is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STOP_TIMEOUT_S
            while proc.poll() is None and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                log.warning("worker %d (pid %d) did not stop within %.0f s: killing it", self.index, proc.pid, STOP_TIMEOUT_S)
                proc.kill()
                proc.wait()
        for task in (self._reader, self._sender):
            if task is not None:
                task.cancel()
        if self.channel is not None:
            self.channel.close()

    # -- gate.SessionHandle: what the controller asks of a session -----------------------------

    @property
    def held(self) -> int:
        return int(self.status.get("waiting", 0))

    @property
    def in_txn(self) -> bool:
        return False  # a worker ends its own transactions at read_time_limit_ms while it holds

    @property
    def credentials(self) -> Any:
        return None

    def pausing(self) -> None:
        if not self.draining:
            self.draining = True
            self.gate.inflight += 1
        self.hold_seq += 1
        self.send({"op": "hold", "seq": self.hold_seq})

    def resume(self) -> None:
        if self.draining:
            self.draining = False
            self.gate.inflight -= 1
        self.send({"op": "release"})

    def switch_uplink(self) -> None:
        self.send({"op": "switch"})

    def prepare_uplink(self, uplink: Any, context: Any) -> None:
        return None  # each worker's sessions connect to the new uplink after the switch

    def discard_prepared(self) -> None:
        return None

    def fail_held(self, reason: str) -> None:
        return None  # no automatic failover with workers

    def abandon_stale_uplink(self, reason: str) -> None:
        return None

    def rearm_timer(self) -> None:
        return None  # the worker's config carries read_time_limit_ms

    def end_for_time_limit(self, why: str) -> None:
        return None

    def close(self) -> None:
        self.send({"op": "stop"})

    def set_tracing(self, enabled: bool) -> None:
        return None  # log_messages reaches the worker with its config
