"""`workers: N`: the control process. It serves no client itself; N worker processes do (worker.py).

Each TCP listener's address is reserved here (bound with SO_REUSEPORT, not
listening: a port 0 becomes a real one), and every worker binds its own
listening socket to it with SO_REUSEPORT, so the kernel spreads new
connections over the workers. A unix listener cannot be shared that way:
it is bound here and each worker inherits it.

The control process owns the admin app, the controller and the switchover
engine. Its controller's sessions are the workers (handle.py): a pause
holds every worker and is paused when all have drained; a reload or switch
applies the config and moves the uplink in every worker while all are held,
then releases them, so for the operator it is one step. Info, metrics and
the status page show the sum of the workers' clients and counters.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

from redis_proxy.config import Config, parse_tcp_addr
from redis_proxy.server import Listening, Proxy
from redis_proxy.sockets import remove_stale_socket
from redis_proxy.workers.handle import WorkerHandle
from redis_proxy.workers.traffic import add_up

log = logging.getLogger("redis_proxy")


class ControlProxy(Proxy):
    def __init__(self, config: Config, config_path: str | None, log_args: list[str]) -> None:
        super().__init__(config, config_path)
        self.log_args = log_args
        self.workers: list[WorkerHandle] = []
        self._reserved: list[socket.socket] = []  # TCP addresses held for the workers (SO_REUSEPORT, not listening)
        self._unix: Listening = {}  # unix listeners bound here, inherited by every worker
        self._resolved: dict[str, str] = {}  # listener name -> "host:port" with the real port

    # -- starting and stopping ------------------------------------------------------------------

    async def start(self, inherited: Listening | None = None, admin: bool = True) -> None:
        self.health.start()
        self.uplinks_status.start()
        self.loop_lag.start()
        self._reserve()
        for index in range(self.config.workers):
            handle = WorkerHandle(index, self.gate, self._start_document, self.log_args, self._add_up)
            self.workers.append(handle)
            self.sessions.add(handle)  # type: ignore[arg-type]  # the controller's sessions: SessionHandle
        await asyncio.gather(*(handle.start() for handle in self.workers))
        for name, addr in self._resolved.items():
            self.addresses[name] = addr
        if admin:
            await self.start_admin_app()
        log.info("workers: %d processes serving %s", len(self.workers), ", ".join(self._resolved.values()))

    def _reserve(self) -> None:
        """Reserve each listener's address for the workers (raises OSError with the address)."""
        for name in ("listen", "listen_raw"):
            section = getattr(self.config, name)
            if section is None:
                continue
            try:
                if section.network == "unix":
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    remove_stale_socket(section.addr)
                    sock.bind(section.addr)
                    sock.listen(511)
                    self._unix[name] = [sock]
                    self._unix_paths.append(section.addr)
                    self._resolved[name] = section.addr
                    continue
                host, port = parse_tcp_addr(section.addr)
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((host, port))
            except OSError as exc:
                raise OSError(exc.errno, f"{name}: cannot listen on {section.addr}: {exc.strerror or exc}") from None
            self._reserved.append(sock)
            bound = sock.getsockname()
            self._resolved[name] = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"

    def _start_document(self) -> tuple[dict[str, Any], list[int]]:
        unix = list(self._unix)
        return (
            {"config": self.worker_config(self.config), "config_path": self.config_path, "unix": unix},
            [self._unix[name][0].fileno() for name in unix],
        )

    def worker_config(self, config: Config) -> dict[str, Any]:
        """`config` as one worker serves it: the real addresses, no admin app, no control socket, one process."""
        data = config.model_dump(mode="json", by_alias=True)
        for name, addr in self._resolved.items():
            data[name]["addr"] = addr
        data.update(admin=None, control_socket=None, workers=1, failover=None, sentinel=None)
        return data

    async def _clients_closed(self) -> None:
        """Stopping: each worker drains and closes its clients, as a single process would; then the addresses go."""
        await asyncio.gather(*(handle.stop() for handle in self.workers))
        for sock in self._reserved:
            sock.close()
        for sockets in self._unix.values():
            for sock in sockets:
                sock.close()

    # -- what the controller changes --------------------------------------------------------------

    def apply_config(self, new: Config, uplink_ssl: ssl.SSLContext | None) -> None:
        super().apply_config(new, uplink_ssl)
        document = {"op": "config", "config": self.worker_config(new)}
        for handle in self.workers:
            handle.send(document)

    # -- what the admin app reads: the workers' sums ------------------------------------------------

    def _add_up(self) -> None:
        snapshots = [handle.status["traffic"] for handle in self.workers if handle.status.get("traffic")]
        snapshots += [traffic for handle in self.workers for traffic in handle.retired]
        add_up(self.stats, snapshots)

    def _sum(self, key: str) -> int:
        return sum(int(handle.status.get(key, 0)) for handle in self.workers)

    def clients(self) -> int:
        return self._sum("clients")

    def raw_clients(self) -> int:
        return self._sum("raw")

    def in_flight(self) -> int:
        return self._sum("inflight")

    def open_transactions(self) -> int:
        return self._sum("txn")

    def info(self) -> dict[str, Any]:
        workers = [
            {"index": h.index, "pid": h.status.get("pid"), "clients": h.status.get("clients", 0), "restarts": len(h.retired)}
            for h in self.workers
        ]
        return {**super().info(), "workers": workers}

