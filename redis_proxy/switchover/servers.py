"""The two servers of a switchover as the control plane sees them, and what a switchover does to them.

Every change made to a server can be undone with what `attach` returns,
which is how a failed switchover leaves the target as it found it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from redis_proxy.config import UplinkConfig, parse_tcp_addr
from redis_proxy.control.client import ControlPlaneError, Replication, call, control_client, replication

# What makes a master refuse every write without being a replica: more
# good replicas than it can ever have (reverse=false's fence).
WRITE_FENCE = ("min-replicas-to-write", "2147483647")
REPLICATION_SETTINGS = ("masterauth", "masteruser", "tls-replication")


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


@dataclass
class Server:
    """One Redis server of the switchover, by its uplink name and section."""

    name: str
    config: UplinkConfig
    client: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.client = control_client(self.config)

    async def replication(self) -> Replication:
        return await replication(self.client, self.name)

    async def call(self, *args: Any) -> Any:
        return await call(self.client, self.name, *args)

    async def info(self, section: str) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await self.client.info(section)
        except Exception as exc:  # redis-py's errors and OSError: one line naming the server
            raise ControlPlaneError(f"{self.name}: INFO {section} failed: {exc}") from None
        return result

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # closing is best effort: the server may be gone
            pass

    def is_replica_of(self, repl: Replication, master: Server, master_repl: Replication | None = None) -> bool:
        """Does `repl` (this server's INFO) say it replicates `master`? By address, or by replication id."""
        if repl.is_master or repl.master_addr is None:
            return False
        wanted = {_normal(master.config.replication_addr), _normal(master.config.addr)}
        if _normal(repl.master_addr) in wanted:
            return True
        return master_repl is not None and repl.replid is not None and repl.replid == master_repl.replid

    async def key_count(self) -> int:
        keyspace = await self.info("keyspace")
        return sum(int(db.get("keys", 0)) for db in keyspace.values() if isinstance(db, dict))

    async def saved_settings(self) -> dict[str, str]:
        """The replication settings `attach` changes, to restore them with `detach` (secrets: never logged)."""
        saved: dict[str, str] = {}
        for setting in REPLICATION_SETTINGS:
            reply = await self.call("CONFIG", "GET", setting)
            if len(reply) >= 2:
                saved[setting] = _text(reply[1])
        return saved

    async def attach(self, master: Server) -> None:
        """Make this server a replica of `master`, with `master`'s credentials."""
        await self.call("CONFIG", "SET", "masterauth", master.config.password or "")
        await self.call("CONFIG", "SET", "masteruser", master.config.user or "")
        if master.config.tls:
            await self.call("CONFIG", "SET", "tls-replication", "yes")
        host, port = parse_tcp_addr(master.config.replication_addr)
        await self.call("REPLICAOF", host, str(port))

    async def detach(self, saved: dict[str, str], master_addr: str | None = None) -> None:
        """Undo `attach`: its own replication settings back, then a master again, or the replica of `master_addr` it was."""
        for setting, value in saved.items():
            await self.call("CONFIG", "SET", setting, value)
        if master_addr is None:
            await self.call("REPLICAOF", "NO", "ONE")
        else:
            host, port = parse_tcp_addr(master_addr)
            await self.call("REPLICAOF", host, str(port))

    async def pause_writes(self, ms: int) -> None:
        """CLIENT PAUSE ms WRITE (Redis >= 6.2): every client's writes wait; reads, INFO and REPLICAOF go on."""
        await self.call("CLIENT", "PAUSE", str(ms), "WRITE")

    async def unpause_writes(self) -> None:
        await self.call("CLIENT", "UNPAUSE")

    async def promote(self) -> None:
        """REPLICAOF NO ONE, then ROLE must say master (ControlPlaneError otherwise)."""
        try:
            # One round trip: the hold waits for it.
            async with self.client.pipeline(transaction=False) as pipe:
                _, role = await pipe.execute_command("REPLICAOF", "NO", "ONE").execute_command("ROLE").execute()
        except Exception as exc:  # redis-py's errors and OSError: one line naming the server
            raise ControlPlaneError(f"{self.name}: REPLICAOF NO ONE failed: {exc}") from None
        if not role or _text(role[0]) != "master":
            raise ControlPlaneError(f"{self.name}: still not a master after REPLICAOF NO ONE (ROLE {_text(role[0]) if role else '?'})")

    async def fence_writes(self) -> None:
        """reverse=false: a master that refuses every write (NOREPLICAS) until min-replicas-to-write is reset."""
        await self.call("CONFIG", "SET", *WRITE_FENCE)


def _normal(addr: str) -> str:
    try:
        host, port = parse_tcp_addr(addr)
    except ValueError:
        return addr
    return f"{'127.0.0.1' if host == 'localhost' else host}:{port}"


async def both(first: Any, second: Any) -> tuple[Any, Any]:
    """Two control-plane requests at once (the catch-up polls both servers every round)."""
    a, b = await asyncio.gather(first, second)
    return a, b
