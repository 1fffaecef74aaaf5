"""Copying keys from one server to another without replication: SCAN, DUMP + PTTL, RESTORE ... REPLACE.

Memory stays bounded: keys go in chunks of at most CHUNK_KEYS keys and
about CHUNK_BYTES of values (MEMORY USAGE estimates each key first), and a
key bigger than that goes alone. A rate limit (keys and bytes per second)
keeps the copy from crowding out production traffic on either server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import hiredis

from redis_proxy.config import UplinkConfig
from redis_proxy.control.client import ControlPlaneError
from redis_proxy.migration.verify import KeyState, Mismatch, comparable, compare_states, needs_values, value_command
from redis_proxy.migration.wire import Pipe, open_pipe

T = TypeVar("T")

SCAN_COUNT = 500
CHUNK_KEYS = 200
COMPARE_KEYS = 1000  # keys compared per round trip (their values are not kept)
CHUNK_BYTES = 4 * 1024 * 1024
TIMEOUT_S = 30.0  # one request; a large key's DUMP or RESTORE takes a while


def _by_size(items: list[T], size: Callable[[T], int], max_items: int = 1 << 30) -> list[list[T]]:
    """Groups of at most `max_items` and about CHUNK_BYTES (an item bigger than that alone), in order."""
    groups: list[list[T]] = []
    group: list[T] = []
    total = 0
    for item in items:
        if group and (len(group) >= max_items or total + size(item) > CHUNK_BYTES):
            groups.append(group)
            group, total = [], 0
        group.append(item)
        total += size(item)
    if group:
        groups.append(group)
    return groups


class CopyError(Exception):
    """The copy cannot go on; a readable line naming the server."""


@dataclass
class CopyCounters:
    keys_scanned: int = 0
    keys_copied: int = 0  # RESTOREs and DELs done on the target
    bytes_copied: int = 0  # DUMP payload bytes restored


class RateLimit:
    """At most `ops` keys and `nbytes` bytes per second (0: no limit), smoothed over a short window."""

    def __init__(self, ops: int, nbytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ops, self.nbytes, self.clock = ops, nbytes, clock
        self.started = clock()
        self.done_ops = self.done_bytes = 0

    def delay(self, ops: int, nbytes: int) -> float:
        """Seconds to wait before doing this much more, and count it as done."""
        now = self.clock()
        if now - self.started > 1.0:  # a new window: earlier idleness is not credit for a burst
            self.started, self.done_ops, self.done_bytes = now, 0, 0
        self.done_ops += ops
        self.done_bytes += nbytes
        wait = 0.0
        if self.ops:
            wait = max(wait, self.done_ops / self.ops - (now - self.started))
        if self.nbytes:
            wait = max(wait, self.done_bytes / self.nbytes - (now - self.started))
        return wait


class Side:
    """One server's pipelining connections, one per database (each SELECTs its own)."""

    def __init__(self, name: str, uplink: UplinkConfig) -> None:
        self.name, self.uplink = name, uplink
        self._pipes: dict[int, Pipe] = {}
        self._opening: dict[int, asyncio.Lock] = {}

    async def _pipe(self, db: int) -> Pipe:
        lock = self._opening.setdefault(db, asyncio.Lock())
        async with lock:  # one connection per database, however many callers
            pipe = self._pipes.get(db)
            if pipe is None or pipe.lost is not None:
                pipe = self._pipes[db] = await open_pipe(self.uplink, db, TIMEOUT_S, self.name)
            return pipe

    async def run(self, db: int, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Pipelined commands; a reply that is an error comes back as the exception (hiredis.ReplyError), in its place."""
        if not commands:
            return []
        pipe = await self._pipe(db)
        lock = self._opening[db]
        async with lock:  # a pipe runs one batch at a time
            try:
                return await pipe.run(commands, TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                pipe.close()
                raise ControlPlaneError(f"{self.name}: {exc or f'no answer within {TIMEOUT_S:g} s'}") from None

    async def call(self, db: int, *args: Any) -> Any:
        reply = (await self.run(db, [args]))[0]
        if isinstance(reply, hiredis.ReplyError):
            raise ControlPlaneError(f"{self.name}: {' '.join(str(a) for a in args[:2])} failed: {reply}")
        return reply

    async def command_table(self) -> list[Any]:
        """The raw reply of COMMAND, as KeySpecs reads it."""
        return list(await self.call(0, "COMMAND"))

    async def keyspace(self) -> dict[int, int]:
        """{db: keys} of the databases holding keys (INFO keyspace: "db0:keys=1,expires=0,avg_ttl=0")."""
        text = (await self.call(0, "INFO", "keyspace")).decode(errors="replace")
        out: dict[int, int] = {}
        for line in text.splitlines():
            if line.startswith("db") and ":keys=" in line:
                name, fields = line.split(":", 1)
                out[int(name[2:])] = int(fields.split(",", 1)[0].split("=", 1)[1])
        return out

    async def batches(self, db: int) -> AsyncIterator[list[bytes]]:
        """`db`'s keys, a SCAN batch at a time (a key may come twice: SCAN's guarantee is only 'at least once')."""
        cursor = None
        while cursor != 0:
            reply, keys = await self.call(db, "SCAN", cursor or 0, "COUNT", SCAN_COUNT)
            cursor = int(reply)
            if keys:
                yield list(keys)

    async def states(self, db: int, keys: list[bytes]) -> list[KeyState]:
        """TYPE, DUMP and PTTL of each key, in one round trip."""
        replies = await self.run(db, [cmd for key in keys for cmd in (("TYPE", key), ("DUMP", key), ("PTTL", key))])
        out = []
        for i in range(len(keys)):
            kind, payload, pttl = replies[3 * i: 3 * i + 3]
            for reply in (kind, payload, pttl):
                if isinstance(reply, hiredis.ReplyError):
                    raise ControlPlaneError(f"{self.name}: {reply}")
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            out.append(KeyState(None if kind == "none" or payload is None else kind, payload, int(pttl)))
        return out

    async def values(self, db: int, keys: list[tuple[bytes, str | None]]) -> list[Any]:
        """Whole values of these (key, type) pairs, comparable across servers, in one round trip."""
        replies = await self.run(db, [value_command(key, kind) for key, kind in keys])
        return [comparable(kind, reply) for (_, kind), reply in zip(keys, replies, strict=True)]

    async def close(self) -> None:
        pipes, self._pipes = list(self._pipes.values()), {}
        for pipe in pipes:
            pipe.close()


class Copier:
    def __init__(
        self, source: Side, target: Side, limit: RateLimit, counters: CopyCounters,
        check: Callable[[], None] = lambda: None,
        pace: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.source, self.target, self.limit, self.counters = source, target, limit, counters
        self.check = check  # raises to stop between chunks (an abort)
        self.pace = pace  # the rate limit's waits (an abort must cut them short)
        self._last_bytes = 0  # the previous chunk's bytes: counted into the next chunk's wait
        self.paced = True  # False while clients are held: then every millisecond of waiting is theirs
        self.cut_short: dict[int, set[bytes]] = {}  # keys of RESTORE batches whose outcome is unknown

    async def full_pass(self, db: int) -> None:
        """Every key of `db`: copy what the source has, then delete from the target what it lacks."""
        async for keys in self.source.batches(db):
            self.check()
            self.counters.keys_scanned += len(keys)
            await self.copy(db, keys)
        await self.sweep(db)

    async def sweep(self, db: int) -> None:
        """Delete from the target's `db` the keys the source does not have."""
        async for keys in self.target.batches(db):
            self.check()
            gone = await self.missing_on_source(db, keys)
            if gone:
                await self.target.run(db, [("DEL", key) for key in gone])
                self.counters.keys_copied += len(gone)

    async def missing_on_source(self, db: int, keys: list[bytes]) -> list[bytes]:
        """Those of the target's `keys` that the source does not have (now)."""
        exists = await self.source.run(db, [("EXISTS", key) for key in keys])
        return [key for key, n in zip(keys, exists, strict=True) if n == 0]

    async def copy(self, db: int, keys: Iterable[bytes]) -> None:
        """Copy these keys of `db` as they are now on the source (a key it lacks is deleted on the target)."""
        keys = list(keys)
        for start in range(0, len(keys), SCAN_COUNT):  # bounded: MEMORY USAGE for a group at a time
            for chunk in await self._chunks(db, keys[start: start + SCAN_COUNT]):
                self.check()
                await self._copy_chunk(db, chunk)

    async def _chunks(self, db: int, keys: list[bytes]) -> list[list[bytes]]:
        usage = await self.source.run(db, [("MEMORY", "USAGE", key) for key in keys])
        sizes = {key: used if isinstance(used, int) else 0 for key, used in zip(keys, usage, strict=True)}
        return _by_size(keys, sizes.__getitem__, CHUNK_KEYS)

    async def _copy_chunk(self, db: int, keys: list[bytes]) -> None:
        # Paced before the DUMP: a wait between DUMP and RESTORE would shorten every TTL by it.
        wait = self.limit.delay(len(keys), self._last_bytes) if self.paced else 0.0
        if wait > 0:
            await self.pace(wait)
        replies = await self.source.run(db, [cmd for key in keys for cmd in (("DUMP", key), ("PTTL", key))])
        writes: list[tuple[Any, ...]] = []
        nbytes = 0
        for i, key in enumerate(keys):
            payload, pttl = replies[2 * i], replies[2 * i + 1]
            if isinstance(payload, hiredis.ReplyError) or isinstance(pttl, hiredis.ReplyError):
                raise CopyError(f"{self.source.name}: DUMP/PTTL of a key failed: {payload if isinstance(payload, Exception) else pttl}")
            if payload is None or pttl == -2 or pttl == 0:
                # PTTL 0: the key's last millisecond; RESTORE with TTL 0 would make it live for ever.
                writes.append(("DEL", key))
            else:
                writes.append(("RESTORE", key, max(0, int(pttl)), payload, "REPLACE"))
                nbytes += len(payload)
        try:
            results = await self.target.run(db, writes)
        except BaseException:
            # Cut short (a hold that ran out, an abort, a lost connection):
            # some of these writes may still reach the target later, after a
            # newer copy of the same key. They are copied again at the cutover.
            self.cut_short.setdefault(db, set()).update(keys)
            raise
        for result in results:
            if isinstance(result, hiredis.ReplyError):
                raise CopyError(f"{self.target.name}: RESTORE failed: {result}")
        self.counters.keys_copied += len(keys)
        self.counters.bytes_copied += nbytes
        self._last_bytes = nbytes

    async def random_keys(self, db: int, count: int) -> set[bytes]:
        replies = await self.source.run(db, [("RANDOMKEY",)] * count)
        return {key for key in replies if isinstance(key, bytes)}

    async def compare(self, db: int, keys: list[bytes], tolerance_ms: int) -> list[Mismatch]:
        """Compare these keys of `db` on both sides now; the mismatches."""
        out: list[Mismatch] = []
        for start in range(0, len(keys), COMPARE_KEYS):
            self.check()
            chunk = keys[start: start + COMPARE_KEYS]
            src, tgt = await asyncio.gather(self.source.states(db, chunk), self.target.states(db, chunk))
            # Different payloads of one type: a set or hash in hash order (each server seeds its own), or
            # another RDB version. The values decide, read in one round trip per side.
            differ = [i for i in range(len(chunk)) if needs_values(src[i], tgt[i])]
            payload_size = [len(state.payload or b"") for state in src]
            for group in _by_size(differ, payload_size.__getitem__):  # values held: a few MiB at a time
                pairs = [(chunk[i], src[i].kind) for i in group]
                a_values, b_values = await asyncio.gather(self.source.values(db, pairs), self.target.values(db, pairs))
                for i, a_value, b_value in zip(group, a_values, b_values, strict=True):
                    src[i], tgt[i] = src[i].with_value(a_value), tgt[i].with_value(b_value)
            for key, a, b in zip(chunk, src, tgt, strict=True):
                found = compare_states(a, b, tolerance_ms)
                if found is not None:
                    out.append(Mismatch(db, key, *found))
        return out

    async def close(self) -> None:
        await asyncio.gather(self.source.close(), self.target.close())
