"""A source full of keys of every type, and writers that remember every write they were acknowledged.

For the copy-mode switchover: afterwards every acknowledged write must be on
the target, no deleted key may have come back, and untouched keys must be
identical there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import redis

from servers import wait_until

SCRIPT = "redis.call('INCR', KEYS[1]); return redis.call('SADD', KEYS[2], ARGV[1])"


def fill(client: redis.Redis, keys: int, large: int = 4) -> None:
    """`keys` keys of every type, some with TTLs, plus `large` large ones (a few MB each)."""
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        kind = i % 6
        key = f"pre:{kind}:{i}"
        if kind == 0:
            pipe.set(key, f"value-{i}" * (1 + i % 5))
        elif kind == 1:
            pipe.hset(key, mapping={f"f{j}": f"{i}-{j}" for j in range(1 + i % 4)})
        elif kind == 2:
            pipe.rpush(key, *[f"{i}-{j}" for j in range(1 + i % 4)])
        elif kind == 3:
            pipe.sadd(key, *[f"m{j}" for j in range(1 + i % 4)])
        elif kind == 4:
            pipe.zadd(key, {f"m{j}": j + i / 7 for j in range(1 + i % 4)})
        else:
            pipe.xadd(key, {"i": str(i)})
        if i % 10 == 0:
            pipe.expire(key, 3600 + i % 100)
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    for n in range(large):
        client.set(f"large:string:{n}", b"x" * (2 * 1024 * 1024))
        client.rpush(f"large:list:{n}", *[f"item-{j}" for j in range(50_000)])
    client.xgroup_create("pre:5:5", "group", id="0")


@dataclass
class Acked:
    """What one writer was told succeeded."""

    incr: int = 0
    pushed: list[int] = field(default_factory=list)
    hashed: list[int] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    expiring: list[str] = field(default_factory=list)
    txns: int = 0
    scripts: list[int] = field(default_factory=list)
    deleted_pre: list[str] = field(default_factory=list)


class Writers:
    """`n` threads, each with its own connection through the proxy, writing until stopped."""

    def __init__(self, clients: list[redis.Redis], preloaded: int) -> None:
        self.clients = clients
        self.preloaded = preloaded
        self.acked = [Acked() for _ in clients]
        self.errors: list[str] = []
        self.ops = [0] * len(clients)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(clients))]

    def start(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[str]:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.errors

    def wait_progress(self, message: str) -> None:
        """Until every writer has written again from now (or one failed)."""
        since = list(self.ops)
        wait_until(lambda: self.progressed(since), timeout=20, message=message)

    def progressed(self, since: list[int]) -> bool:
        """Every writer wrote since `since` (or one failed: waiting longer would not help)."""
        return bool(self.errors) or all(now > then for now, then in zip(self.ops, since, strict=True))

    def _run(self, i: int) -> None:
        client, acked = self.clients[i], self.acked[i]
        j = 0
        while not self._stop.is_set():
            try:
                self._step(client, acked, i, j)
            except redis.RedisError as exc:
                self.errors.append(f"writer {i} op {j}: {exc!r}")
                return
            j += 1
            self.ops[i] = j
            if j % 50 == 0:
                time.sleep(0.001)

    def _step(self, client: redis.Redis, acked: Acked, i: int, j: int) -> None:
        w = f"w{i}"
        op = j % 8
        if op == 0:
            client.incr(f"{w}:counter")
            acked.incr += 1
        elif op == 1:
            client.rpush(f"{w}:list", j)
            acked.pushed.append(j)
        elif op == 2:
            client.hset(f"{w}:hash", f"f{j}", j)
            acked.hashed.append(j)
        elif op == 3:
            key = f"{w}:tmp:{j}"
            client.set(key, j)
            client.delete(key)
            acked.deleted.append(key)
        elif op == 4:
            key = f"{w}:exp:{j}"
            client.set(key, j)
            client.expire(key, 5000)
            acked.expiring.append(key)
        elif op == 5:
            pipe = client.pipeline(transaction=True)
            pipe.incr(f"{w}:txa").incr(f"{w}:txb")
            pipe.execute()
            acked.txns += 1
        elif op == 6:
            client.eval(SCRIPT, 2, f"{w}:evalc", f"{w}:evals", j)
            acked.scripts.append(j)
        else:
            # Deleting preloaded strings, some of them once the copy has them already.
            n = (i * 7919 + j * 104729) % self.preloaded
            key = f"pre:0:{n - n % 6}"
            if client.delete(key):
                acked.deleted_pre.append(key)


def check_target(target: redis.Redis, writers: Writers) -> list[str]:
    """Everything every writer was acknowledged, on the target; the problems."""
    problems: list[str] = []
    for i, acked in enumerate(writers.acked):
        w = f"w{i}"

        def expect(what: str, got: object, want: object) -> None:
            if got != want:
                problems.append(f"{w} {what}: got {str(got)[:200]}, want {str(want)[:200]}")

        expect("counter", int(target.get(f"{w}:counter") or 0), acked.incr)
        expect("list", [int(x) for x in target.lrange(f"{w}:list", 0, -1)], acked.pushed)
        expect("hash", sorted(int(v) for v in target.hgetall(f"{w}:hash").values()), sorted(acked.hashed))
        back = [key for key in acked.deleted if target.exists(key)]
        expect("deleted keys back", back, [])
        back_pre = [key for key in acked.deleted_pre if target.exists(key)]
        expect("deleted preloaded keys back", back_pre, [])
        no_ttl = [key for key in acked.expiring if target.ttl(key) <= 0]
        expect("expiring keys without a TTL", no_ttl, [])
        expect("txa", int(target.get(f"{w}:txa") or 0), acked.txns)
        expect("txb", int(target.get(f"{w}:txb") or 0), acked.txns)
        expect("script counter", int(target.get(f"{w}:evalc") or 0), len(acked.scripts))
        expect("script set", sorted(int(x) for x in target.smembers(f"{w}:evals")), sorted(acked.scripts))
    return problems


def _value(client: redis.Redis, key: bytes) -> object:
    kind = client.type(key)
    if kind == b"set":
        return sorted(client.smembers(key))
    if kind == b"hash":
        return sorted(client.hgetall(key).items())
    return kind


def dump_differences(source: redis.Redis, target: redis.Redis, pattern: str, limit: int = 20) -> list[str]:
    """Keys matching `pattern` whose DUMP differs (or that exist on one side only).

    A hashtable-encoded set or hash serializes its members in hash order,
    and each server seeds its hashes differently: for those two types the
    same value may DUMP differently, so a differing DUMP is compared by value.
    """
    problems: list[str] = []
    batch: list[bytes] = []

    def flush() -> None:
        a = source.pipeline(transaction=False)
        b = target.pipeline(transaction=False)
        for key in batch:
            a.dump(key)
            b.dump(key)
        for key, x, y in zip(batch, a.execute(), b.execute(), strict=True):
            if x != y and (x is None or y is None or _value(source, key) != _value(target, key)) and len(problems) < limit:
                problems.append(key.decode())
        batch.clear()

    for key in source.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    return problems
