"""A worker process (`workers: N`): serves clients on the shared address and does what its control process says.

Started by the control process (control.py) as `python -m redis_proxy
--worker FD ...`, FD being its end of a SEQPACKET socket pair. The first
message is the config to serve (listeners bound with SO_REUSEPORT on the
address the control process reserved; a unix listener is the control
process's socket, inherited). Then it takes, in order:

- `hold` (seq): hold new commands and drain, as a pause; answers
  `{"ev": "paused", "seq": seq}` once nothing is in flight and no
  transaction is open;
- `release`: end the hold;
- `config`: apply a reloaded config (no switch);
- `switch`: every session moves to a new uplink connection (while held);
- `stop`: shut down as on SIGTERM.

Every half second, and when it is drained, it reports its status: clients,
in flight, held, open transactions, traffic counters (traffic.py). If the
control process goes away (the socket closes), the worker stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any

from redis_proxy.config import Config
from redis_proxy.control_errors import ControlError
from redis_proxy.server import Proxy
from redis_proxy.takeover.wire import Channel, ControlChannelError
from redis_proxy.tls import uplink_context
from redis_proxy.workers.traffic import snapshot

log = logging.getLogger("redis_proxy")

STATUS_INTERVAL_S = 0.5
START_TIMEOUT_S = 30.0
HOLD_BOUND_S = 24 * 3600.0  # the control process bounds a hold (and releases it); a worker never gives up by itself


class Worker:
    def __init__(self, proxy: Proxy, channel: Channel, index: int) -> None:
        self.proxy = proxy
        self.channel = channel
        self.index = index
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def status(self) -> dict[str, Any]:
        proxy = self.proxy
        controller = proxy.controller
        return {
            "ev": "status", "pid": os.getpid(), "clients": proxy.clients(), "raw": proxy.raw_clients(),
            "inflight": controller.inflight, "waiting": controller.waiting, "txn": controller.txn,
            "traffic": snapshot(proxy.stats),
        }

    async def run(self) -> None:
        """Serve until told to stop, or until the control process has gone."""
        proxy = self.proxy
        sender = proxy.spawn(self._send_loop(), f"worker-{self.index}-send")
        reporter = proxy.spawn(self._report_loop(), f"worker-{self.index}-status")
        try:
            while True:
                loop = asyncio.get_running_loop()
                message, fds = await self.channel.receive(loop.time() + 365 * 24 * 3600.0)
                for fd in fds:
                    os.close(fd)
                self._apply(message)
                if message.get("op") == "stop":
                    break
        except ControlChannelError as exc:
            log.warning("worker %d: the control process went away (%s): stopping", self.index, exc)
            proxy.request_stop("worker: control process gone")
        finally:
            reporter.cancel()
            sender.cancel()

    def _apply(self, message: dict[str, Any]) -> None:
        proxy = self.proxy
        op = message.get("op")
        if op == "hold":
            proxy.spawn(self._hold(int(message["seq"])), f"worker-{self.index}-hold")
        elif op == "release":
            proxy.controller.release_hold()
        elif op == "config":
            new = Config.model_validate(message["config"])
            proxy.apply_config(new, uplink_context(new.uplink))
            proxy.controller.set_time_limit(new.read_time_limit_ms)
        elif op == "switch":
            proxy.controller.gate.generation += 1
            for session in list(proxy.sessions):
                session.switch_uplink()
        elif op == "stop":
            proxy.request_stop(f"worker {self.index}: told to stop")
        else:
            log.warning("worker %d: unknown control message %r ignored", self.index, op)

    async def _hold(self, seq: int) -> None:
        try:
            await self.proxy.controller.hold(f"worker {self.index}: the control process holds", timeout=HOLD_BOUND_S)
        except ControlError:
            return  # released before it was drained: nothing to report
        self._outbox.put_nowait({"ev": "paused", "seq": seq})
        self._outbox.put_nowait(self.status())

    async def _report_loop(self) -> None:
        while True:
            self._outbox.put_nowait(self.status())
            await asyncio.sleep(STATUS_INTERVAL_S)

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self._outbox.get()
            try:
                await self.channel.send(message, loop.time() + 10.0)
            except ControlChannelError:
                return  # the reader notices and stops the worker


async def serve(fd: int, index: int) -> int:
    """The worker's life: the config from the control process, serve, stop; the exit code."""
    loop = asyncio.get_running_loop()
    channel = Channel(socket.socket(fileno=fd))
    try:
        start, fds = await channel.receive(loop.time() + START_TIMEOUT_S)
    except ControlChannelError as exc:
        log.error("worker %d: no config from the control process: %s", index, exc)
        return 1
    config = Config.model_validate(start["config"])
    inherited = {name: [socket.socket(fileno=fd) for fd in fds[i : i + 1]] for i, name in enumerate(start.get("unix", []))}
    proxy = Proxy(config, start.get("config_path"))
    proxy.reuse_port = True
    try:
        await proxy.start(inherited)
    except OSError as exc:
        log.error("worker %d: %s", index, exc.strerror or exc)
        await channel.send({"ev": "failed", "error": str(exc.strerror or exc)}, loop.time() + 5.0)
        await proxy.stop()
        return 1
    # Signals are the control process's: it tells workers what to do. Ctrl-C in a terminal
    # reaches the whole process group; the control process's stop is what counts.
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    loop.add_signal_handler(signal.SIGTERM, proxy.request_stop, "SIGTERM")
    worker = Worker(proxy, channel, index)
    await channel.send({"ev": "started", "pid": os.getpid(), "addresses": proxy.addresses}, loop.time() + 5.0)
    await worker.run()
    await proxy.wait_stopped()
    channel.close()
    return 0
