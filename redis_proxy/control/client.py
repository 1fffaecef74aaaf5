"""Opening a control-plane connection to an uplink, as configured, and asking it the usual questions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from redis_proxy.config import UplinkConfig, parse_tcp_addr


class ControlPlaneError(Exception):
    """A control-plane request failed; one readable line naming the server."""


def control_client(uplink: UplinkConfig, timeout: float = 5.0) -> aioredis.Redis:
    """A redis.asyncio client for `uplink` with its credentials and TLS settings (no connection yet).

    No retries: a caller that polls retries on its own schedule, and one that
    changes a server (REPLICAOF) must not have a command sent twice.
    """
    kwargs: dict[str, Any] = {
        "username": uplink.user,
        "password": uplink.password,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "client_name": "redis-proxy-control",
        "protocol": 2,
    }
    if uplink.network == "unix":
        if uplink.tls:
            raise ControlPlaneError(f"{uplink.addr}: TLS over a unix socket is not supported for control-plane connections")
        return aioredis.Redis(unix_socket_path=uplink.addr, **kwargs)
    host, port = parse_tcp_addr(uplink.addr)
    if uplink.tls:
        kwargs.update(
            ssl=True,
            ssl_ca_certs=uplink.cacertfile,
            ssl_cert_reqs="none" if uplink.skipverify else "required",
            ssl_check_hostname=not uplink.skipverify,
            ssl_certfile=uplink.certfile,
            ssl_keyfile=uplink.keyfile,
        )
    return aioredis.Redis(host=host, port=port, **kwargs)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ReplicaEntry:
    """One of a master's replicas, as the master lists it (slaveN in INFO replication)."""

    addr: str  # host:port: the address it connected from, and its announced listening port
    port: int
    offset: int  # the last offset it acknowledged (REPLCONF ACK, about once a second)
    state: str  # "online" once the master streams to it; "wait_bgsave", "send_bulk" before


@dataclass(frozen=True)
class Replication:
    """What INFO replication (with ROLE's word) says about a server."""

    role: str  # "master" or "slave"
    offset: int  # master_repl_offset: on a replica, how far it has processed its master's stream
    replid: str | None = None  # master_replid: a replica in sync shares its master's
    master_addr: str | None = None  # a replica's master, host:port as the replica sees it
    link_status: str | None = None  # a replica's master_link_status: "up" or "down"
    sync_in_progress: bool = False
    sync_total_bytes: int = 0  # during a full sync: the RDB's size (-1 while the master still writes it)
    sync_read_bytes: int = 0
    replicas: tuple[ReplicaEntry, ...] = ()  # a master's replicas

    @property
    def is_master(self) -> bool:
        return self.role == "master"


def parse_replication(info: dict[str, Any]) -> Replication:
    """A Replication from redis-py's parsed INFO replication."""
    role = _text(info.get("role", "?"))
    replicas = []
    for key, value in info.items():
        if key.startswith("slave") and key[5:].isdigit() and isinstance(value, dict):
            host, port = _text(value.get("ip", "?")), int(value.get("port", 0))
            replicas.append(
                ReplicaEntry(
                    addr=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                    port=port,
                    offset=int(value.get("offset", 0)),
                    state=_text(value.get("state", "?")),
                )
            )
    master_addr = None
    if role != "master" and "master_host" in info:
        host = _text(info["master_host"])
        master_addr = f"[{host}]:{info.get('master_port')}" if ":" in host else f"{host}:{info.get('master_port')}"
    return Replication(
        role=role,
        offset=int(info.get("slave_repl_offset", info.get("master_repl_offset", 0))),
        replid=_text(info["master_replid"]) if "master_replid" in info else None,
        master_addr=master_addr,
        link_status=_text(info["master_link_status"]) if "master_link_status" in info else None,
        sync_in_progress=bool(int(info.get("master_sync_in_progress", 0) or 0)),
        sync_total_bytes=int(info.get("master_sync_total_bytes", 0) or 0),
        sync_read_bytes=int(info.get("master_sync_read_bytes", 0) or 0),
        replicas=tuple(replicas),
    )


async def replication(client: aioredis.Redis, name: str) -> Replication:
    """INFO replication of one server, parsed (ControlPlaneError naming `name` on failure)."""
    try:
        return parse_replication(await client.info("replication"))
    except (RedisError, OSError) as exc:
        raise ControlPlaneError(f"{name}: INFO replication failed: {exc}") from None


async def call(client: aioredis.Redis, name: str, *args: Any) -> Any:
    """One command; ControlPlaneError naming the server and the command on failure."""
    try:
        return await client.execute_command(*args)
    except (RedisError, OSError) as exc:
        raise ControlPlaneError(f"{name}: {' '.join(str(a) for a in args[:2])} failed: {exc}") from None
