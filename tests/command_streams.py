"""Seeded random Redis command streams for the differential test.

`make_stream(seed)` returns the same `Stream` for the same seed, always.  The
replies Redis gives to a stream must not depend on anything but the stream
(and the Redis version), so the generator only uses deterministic commands
and avoids the few replies whose order or value depend on the server:

* sets of strings are hashtables in Redis 7.0, ordered by a per-process
  random hash seed: they are read with SORT .. ALPHA, SCARD, SISMEMBER, never
  SMEMBERS; SMEMBERS is used only on integer-only sets (intsets, sorted);
* hashes stay small (<= 10 fields, values < 64 bytes) so they stay listpacks,
  whose HGETALL order is insertion order;
* expiry: only long TTLs, never read back (TTL/EXPIRETIME depend on when the
  command ran); no KEYS/SCAN/RANDOMKEY/SPOP/SRANDMEMBER/TIME/INFO/CLIENT ID;
* HELLO's reply carries the connection's client id: the harness normalizes
  that one field (so no value here is ever the bulk string "id");
* (P|S)SUBSCRIBE inside MULTI is never generated: the proxy refuses it on
  purpose (documented in README "Limitations");
* tracking streams (CLIENT TRACKING, CACHING, GETREDIR, TRACKINGINFO) give
  BCAST a prefix no key has (broadcast invalidations go out when Redis next
  sleeps, so their place among replies depends on how reads were cut), and
  never REDIRECT to a live id (ids differ); a client's own writes invalidate
  its reads in a place that depends only on the stream.

The seed also says what kind of stream it is (see `stream_kind`), so a seed
alone replays a case.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

SEED_BLOCK = 100_000
KIND_RESP2, KIND_RESP3, KIND_SWITCH, KIND_TRACKING = 0, 1, 2, 3
KIND_NAMES = {KIND_RESP2: "resp2", KIND_RESP3: "hello3", KIND_SWITCH: "switch", KIND_TRACKING: "tracking"}

Args = list[bytes]


def stream_kind(seed: int) -> int:
    """Seeds 0..99999 start in RESP2, 100000.. with HELLO 3, 200000.. are switch streams, 300000.. tracking streams."""
    return min(seed // SEED_BLOCK, KIND_TRACKING)


def encode_multibulk(args: Sequence[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


_INLINE_SAFE = re.compile(rb"[A-Za-z0-9:_.\-]+\Z")


@dataclass
class Stream:
    seed: int
    commands: list[bytes] = field(default_factory=list)  # exact bytes of each command
    switch_points: list[int] = field(default_factory=list)  # a switch may come before commands[i]
    marker: bytes = b""

    @property
    def data(self) -> bytes:
        return b"".join(self.commands)

    @property
    def expected_tail(self) -> bytes:
        """The RESP2 reply to the final ECHO: reading stops once the replies end with it."""
        return b"$%d\r\n%s\r\n" % (len(self.marker), self.marker)

    def offsets(self) -> list[int]:
        """Byte offset at which each command starts (plus the total length at the end)."""
        out, pos = [], 0
        for cmd in self.commands:
            out.append(pos)
            pos += len(cmd)
        return out + [pos]


# Small Lua scripts: (body, number of keys to pass).  Each returns a different RESP type.
SCRIPTS: list[tuple[bytes, int]] = [
    (b"return 42", 0),
    (b"return 'a string'", 0),
    (b"return {1, 'two', {3, 'four'}, 5.9}", 0),
    (b"return redis.error_reply('MYERR from a script')", 0),
    (b"return redis.status_reply('FINE')", 0),
    (b"return {err='E2 table error'}", 0),
    (b"return true", 0),
    (b"return false", 0),
    (b"return {ARGV[1], #KEYS, #ARGV}", 1),
    (b"return redis.call('INCR', KEYS[1])", 1),
    (b"return redis.call('GET', KEYS[1])", 1),
    (b"return redis.pcall('LPUSH', KEYS[1], 'x')", 1),
    (b"return redis.call('NOSUCHCOMMAND')", 0),
    (b"error('boom')", 0),
    (b"redis.setresp(3); return redis.call('HGETALL', KEYS[1])", 1),
    (b"redis.setresp(3); return {double=1.5}", 0),
    (b"return redis.call('SET', KEYS[1], ARGV[1])", 1),
]


class _Generator:
    """Builds one stream while tracking the connection state Redis will be in."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.stream = Stream(seed=seed, marker=b"END-of-stream-%d-%08x" % (seed, self.rng.getrandbits(32)))
        self.p = b"s%d:" % seed  # per-stream prefix of keys and channels
        self.proto = 2
        self.in_multi = False
        self.multi_aborted = False
        self.queued_proto: int | None = None
        self.watching = False
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.shards: set[bytes] = set()
        self.stream_ids: dict[bytes, int] = {}
        self.bigs_left = 2 if self.rng.random() < 0.12 else 0
        self.finished = False
        self.tracks = stream_kind(seed) == KIND_TRACKING  # other kinds draw nothing for it: their streams stay as they were

    # -- output -----------------------------------------------------------------
    def emit(self, *args: bytes | str | int) -> None:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        roll = self.rng.random()
        if roll < 0.12:  # clients may spell command names in any case
            parts[0] = parts[0].lower()
        elif roll < 0.15:
            parts[0] = parts[0][:1] + parts[0][1:].lower()
        if self.rng.random() < 0.02:  # empty commands (*0, *-N): Redis skips them
            self.stream.commands.append(self.rng.choice([b"*0\r\n", b"*-1\r\n", b"*-7\r\n", b"*-9223372036854775808\r\n"]))
        if self.rng.random() < 0.1 and all(_INLINE_SAFE.match(a) for a in parts):
            self.stream.commands.append(b" ".join(parts) + b"\r\n")
        else:
            self.stream.commands.append(encode_multibulk(parts))

    # -- values and keys --------------------------------------------------------------
    def val(self, short: bool = False) -> bytes:
        r = self.rng.random()
        if r < 0.4:
            return b"%d" % self.rng.randint(-5, 300)
        if r < 0.8 or short:
            return b"v%d" % self.rng.randint(0, 50)
        if r < 0.9:
            return b"bin\r\n$3\r\n*1\x00\xff" + bytes([self.rng.randint(0, 255)])
        if r < 0.95:
            return b""
        return self.rng.randbytes(self.rng.randint(1000, 3000))

    _POOLS = {"str": 5, "list": 3, "hash": 3, "set": 3, "iset": 2, "zset": 3, "xs": 2, "bits": 2, "hll": 2}

    def key(self, pool: str) -> bytes:
        if self.rng.random() < 0.08:  # a key of another type: WRONGTYPE and friends
            others = [p for p in self._POOLS if p != pool and not {p, pool} <= {"set", "iset"}]
            pool = self.rng.choice(others)
        return self.p + b"%s%d" % (pool.encode(), self.rng.randrange(self._POOLS[pool]))

    def anykey(self) -> bytes:
        pool = self.rng.choice(list(self._POOLS))
        return self.p + b"%s%d" % (pool.encode(), self.rng.randrange(self._POOLS[pool]))

    def same_pool_key(self, key: bytes) -> bytes:
        """Another key of the same pool (RENAME/COPY must not mix pools: see module doc)."""
        base = key.rstrip(b"0123456789")
        pool = base[len(self.p):].decode()
        return base + b"%d" % self.rng.randrange(self._POOLS[pool])

    # -- command families ----------------------------------------------------------------
    def data_command(self) -> None:
        fam: Callable[[], None] = self.rng.choice([
            self.strings, self.strings, self.lists, self.hashes, self.sets, self.zsets,
            self.xstreams, self.bitmaps, self.hll, self.keys, self.keys,
        ])
        fam()

    def strings(self) -> None:
        k, v, c = self.key("str"), self.val(), self.rng.randrange(14)
        emit = self.emit
        [lambda: emit("SET", k, v), lambda: emit("GET", k), lambda: emit("APPEND", k, v),
         lambda: emit("INCR", k), lambda: emit("INCRBY", k, self.rng.randint(-9, 9)),
         lambda: emit("GETRANGE", k, self.rng.randint(-5, 5), self.rng.randint(-5, 20)),
         lambda: emit("STRLEN", k), lambda: emit("MSET", k, v, self.key("str"), self.val()),
         lambda: emit("MGET", k, self.key("str"), self.key("str")), lambda: emit("SETNX", k, v),
         lambda: emit("SET", k, v, "GET"), lambda: emit("INCRBYFLOAT", k, "1.25"),
         lambda: emit("SETRANGE", k, self.rng.randint(0, 10), v), lambda: emit("GETDEL", k)][c]()

    def lists(self) -> None:
        k, v, c = self.key("list"), self.val(), self.rng.randrange(12)
        emit = self.emit
        [lambda: emit("LPUSH", k, v, self.val()), lambda: emit("RPUSH", k, v),
         lambda: emit("LRANGE", k, 0, -1), lambda: emit("LPOP", k), lambda: emit("RPOP", k, 2),
         lambda: emit("LLEN", k), lambda: emit("LINDEX", k, self.rng.randint(-3, 3)),
         lambda: emit("LSET", k, 0, v), lambda: emit("LREM", k, 0, v),
         lambda: emit("LINSERT", k, "BEFORE", v, self.val()),
         lambda: emit("LMOVE", k, self.same_pool_key(k), "LEFT", "RIGHT"), lambda: emit("LPOS", k, v)][c]()

    def hashes(self) -> None:
        k, f, c = self.key("hash"), b"f%d" % self.rng.randrange(10), self.rng.randrange(10)
        emit, v = self.emit, self.val(short=True)
        [lambda: emit("HSET", k, f, v, b"f%d" % self.rng.randrange(10), self.val(short=True)),
         lambda: emit("HGET", k, f), lambda: emit("HGETALL", k), lambda: emit("HDEL", k, f),
         lambda: emit("HLEN", k), lambda: emit("HINCRBY", k, f, 3), lambda: emit("HKEYS", k),
         lambda: emit("HMGET", k, f, b"f1"), lambda: emit("HEXISTS", k, f), lambda: emit("HVALS", k)][c]()

    def sets(self) -> None:
        c = self.rng.randrange(11)
        if self.rng.random() < 0.35:  # integer-only sets: SMEMBERS is sorted and safe
            k = self.key("iset")
            m = b"%d" % self.rng.randint(0, 40)
            [lambda: self.emit("SADD", k, m, b"%d" % self.rng.randint(0, 40)), lambda: self.emit("SMEMBERS", k),
             lambda: self.emit("SREM", k, m)][c % 3]()
            return
        k, m, emit = self.key("set"), b"m%d" % self.rng.randrange(12), self.emit
        k2 = self.same_pool_key(k)
        [lambda: emit("SADD", k, m, b"m%d" % self.rng.randrange(12)), lambda: emit("SREM", k, m),
         lambda: emit("SCARD", k), lambda: emit("SISMEMBER", k, m), lambda: emit("SMISMEMBER", k, m, b"m1"),
         lambda: emit("SORT", k, "ALPHA"), lambda: emit("SINTERCARD", 2, k, k2),
         lambda: emit("SUNIONSTORE", k2, k, self.same_pool_key(k)), lambda: emit("SMOVE", k, k2, m),
         lambda: emit("SORT", k, "ALPHA", "DESC", "LIMIT", 0, 3), lambda: emit("SORT", k)][c]()

    def zsets(self) -> None:
        k, m, c, emit = self.key("zset"), b"z%d" % self.rng.randrange(8), self.rng.randrange(10), self.emit
        score = self.rng.choice([b"1", b"2.5", b"-3", b"10", b"inf", b"notafloat"])
        [lambda: emit("ZADD", k, score, m), lambda: emit("ZRANGE", k, 0, -1, "WITHSCORES"),
         lambda: emit("ZSCORE", k, m), lambda: emit("ZINCRBY", k, "1.5", m), lambda: emit("ZRANK", k, m),
         lambda: emit("ZREM", k, m), lambda: emit("ZCARD", k), lambda: emit("ZCOUNT", k, "-inf", "(5"),
         lambda: emit("ZRANGEBYSCORE", k, 0, 100, "WITHSCORES", "LIMIT", 0, 2), lambda: emit("ZPOPMIN", k)][c]()

    def xstreams(self) -> None:
        k, c, emit = self.key("xs"), self.rng.randrange(8), self.emit
        if c < 3:
            last = self.stream_ids.get(k, 0)
            n = last + self.rng.randint(1, 3) if self.rng.random() < 0.85 else max(last - 1, 0)
            self.stream_ids[k] = max(last, n)
            emit("XADD", k, b"%d-1" % n, b"f", self.val())  # explicit IDs only, never '*'
            return
        [lambda: emit("XRANGE", k, "-", "+"), lambda: emit("XLEN", k),
         lambda: emit("XREVRANGE", k, "+", "-", "COUNT", 2), lambda: emit("XDEL", k, b"%d-1" % self.rng.randint(0, 9)),
         lambda: emit("XTRIM", k, "MAXLEN", 3)][c - 3]()

    def bitmaps(self) -> None:
        k, c, emit = self.key("bits"), self.rng.randrange(6), self.emit
        [lambda: emit("SETBIT", k, self.rng.randint(0, 200), self.rng.randint(0, 1)),
         lambda: emit("GETBIT", k, self.rng.randint(0, 200)), lambda: emit("BITCOUNT", k),
         lambda: emit("BITPOS", k, 1), lambda: emit("BITOP", "OR", self.same_pool_key(k), k, self.key("bits")),
         lambda: emit("BITFIELD", k, "INCRBY", "u8", 0, 100, "GET", "i4", 4)][c]()

    def hll(self) -> None:
        k, c = self.key("hll"), self.rng.randrange(3)
        [lambda: self.emit("PFADD", k, self.val(short=True), self.val(short=True)),
         lambda: self.emit("PFCOUNT", k, self.key("hll")),
         lambda: self.emit("PFMERGE", self.same_pool_key(k), k)][c]()

    def keys(self) -> None:
        k, c, emit = self.anykey(), self.rng.randrange(11), self.emit
        [lambda: emit("EXISTS", k, self.anykey()), lambda: emit("DEL", k), lambda: emit("TYPE", k),
         lambda: emit("RENAME", k, self.same_pool_key(k)), lambda: emit("RENAMENX", k, self.same_pool_key(k)),
         lambda: emit("EXPIRE", k, self.rng.randint(50_000, 900_000)), lambda: emit("PERSIST", k),
         lambda: emit("EXPIREAT", k, 4_000_000_000, "NX"), lambda: emit("DBSIZE"),
         lambda: emit("COPY", k, self.same_pool_key(k), "REPLACE"), lambda: emit("UNLINK", k, self.anykey())][c]()

    def error_command(self) -> None:
        k, c, emit = self.key("str"), self.rng.randrange(9), self.emit
        [lambda: emit("GET"), lambda: emit("SET", k), lambda: emit("NOSUCHCMD", k, "arg"),
         lambda: emit("foobar"), lambda: emit("SET", k, "v", "XX", "NX"),
         lambda: emit("LRANGE", self.key("list"), "a", "b"), lambda: emit("SET", k, "v", "EX", -5),
         lambda: emit("LPUSH", self.key("str"), "x"), lambda: emit("HSET", self.key("hash"), "f")][c]()

    def misc(self) -> None:
        c = self.rng.randrange(9)
        if c < 3:
            self.emit("PING") if c == 0 else self.emit("PING", self.val()) if c == 1 else self.emit("ECHO", self.val())
        elif c < 5:
            script, nkeys = self.rng.choice(SCRIPTS)
            self.emit("EVAL", script, nkeys, *[self.key("str") for _ in range(nkeys)], self.val(short=True))
        elif c == 5:
            self.emit("EVAL", b"return 1", 3, "onlyone")  # more keys than arguments
        else:
            name = self.rng.choice([b"cli%d" % self.rng.randrange(5), b"", b"has space"])
            [lambda: self.emit("CLIENT", "SETNAME", name), lambda: self.emit("CLIENT", "GETNAME"),
             lambda: self.emit("CLIENT", "NOSUCHSUB")][c - 6]()

    def select(self) -> None:
        self.emit("SELECT", self.rng.choice([b"0", b"1", b"2", b"3", b"3", b"16", b"abc"]))

    def hello(self, queued: bool = False) -> None:
        choice = self.rng.choice([b"3", b"2", b"3", b"", b"3S", b"4", b"x"])
        if choice == b"3S":
            self.emit("HELLO", 3, "SETNAME", b"hello%d" % self.rng.randrange(3))
        elif choice:
            self.emit("HELLO", choice)
        else:
            self.emit("HELLO")
        proto = {b"3": 3, b"2": 2, b"3S": 3}.get(choice)
        if proto is not None:
            if queued:
                self.queued_proto = proto
            else:
                self.proto = proto

    # -- pub/sub ----------------------------------------------------------------------------
    @property
    def subscribed(self) -> bool:
        return bool(self.channels or self.patterns or self.shards)

    def pubsub(self) -> None:
        rng, p = self.rng, self.p
        ch = [p + b"ch%d" % rng.randrange(4) for _ in range(rng.randint(1, 2))]
        pat, sh = p + rng.choice([b"ch[01]", b"ch*", b"x*"]), p + b"sh%d" % rng.randrange(3)
        c = rng.randrange(10 if self.proto == 3 else 8)
        if c == 0:
            self.emit("SUBSCRIBE", *ch); self.channels |= set(ch)
        elif c == 1:
            self.emit("PSUBSCRIBE", pat); self.patterns.add(pat)
        elif c == 2:
            self.emit("SSUBSCRIBE", sh); self.shards.add(sh)
        elif c < 6:
            # Without arguments, Redis walks a dict (hash order): only when that is at most one entry.
            cmd, subs, named = [(b"UNSUBSCRIBE", self.channels, ch), (b"PUNSUBSCRIBE", self.patterns, [pat]),
                                (b"SUNSUBSCRIBE", self.shards, [sh])][c - 3]
            args = named if rng.random() < 0.6 or len(subs) > 1 else []
            self.emit(cmd, *args)
            subs.difference_update(args or subs)
        elif c < 8:
            self.emit("PING", *([self.val(short=True)] if c == 7 else []))
        elif c == 8 and len(self.patterns) > 1:
            self.emit("PING")  # patterns match in dict order: one matching pattern at most
        elif c == 8:  # RESP3: a message to ourselves arrives as a push in the stream
            self.emit("PUBLISH", rng.choice(sorted(self.channels) or ch), self.val())
        else:
            self.emit("SPUBLISH", rng.choice(sorted(self.shards) or [sh]), self.val())

    # -- client-side caching ---------------------------------------------------------------------
    def tracking(self) -> None:
        rng, emit = self.rng, self.emit
        c = rng.randrange(12)
        if c < 4:
            mode = rng.choice([b"", b"BCAST", b"OPTIN", b"OPTOUT", b""])
            opts: list[bytes] = []
            if mode == b"BCAST":
                opts = [mode, b"PREFIX", self.p + b"nomatch%d:" % rng.randrange(2)]
            elif mode:
                opts = [mode]
            if rng.random() < 0.3:
                opts.append(b"NOLOOP")
            emit("CLIENT", "TRACKING", "ON", *opts)
        elif c == 4:
            emit("CLIENT", "TRACKING", "OFF")
        elif c < 7:
            emit("CLIENT", "CACHING", rng.choice([b"yes", b"no", b"maybe"]))
            self.strings()
        elif c == 7:
            emit("CLIENT", "TRACKINGINFO")
        elif c == 8:
            emit("CLIENT", "GETREDIR")
        elif c == 9:
            emit("CLIENT", "TRACKING", "ON", "REDIRECT", rng.choice([b"0", b"-1", b"abc", b"9223372036854775807"]))
        else:
            emit("CLIENT", "TRACKING", *rng.choice([[b"maybe"], [b"ON", b"PREFIX", b"x"], [b"ON", b"OPTIN", b"OPTOUT"], []]))

    # -- transactions --------------------------------------------------------------------------
    def transaction(self) -> None:
        self.emit("MULTI")
        self.in_multi, self.multi_aborted, self.queued_proto = True, False, None
        for _ in range(self.rng.randint(0, 6)):
            r = self.rng.random()
            if r < 0.7:
                self.data_command()
            elif r < 0.78:  # rejected at queue time: EXEC answers EXECABORT
                self.rng.choice([lambda: self.emit("GET"), lambda: self.emit("NOSUCHCMD", "x")])()
                self.multi_aborted = True
            elif r < 0.82:
                self.emit("MULTI")  # nested: an error that does not abort
            elif r < 0.85:
                self.emit("WATCH", self.key("str"))
            elif r < 0.9:
                self.select()
            elif r < 0.93:
                self.hello(queued=True)
            else:
                self.misc()
        end = self.rng.random()
        if end < 0.05:
            self.finished = True  # left open: the final RESET must end it
            return
        self.emit("EXEC" if end < 0.82 else "DISCARD")
        if end < 0.82 and not self.multi_aborted and self.queued_proto is not None:
            self.proto = self.queued_proto
        self.in_multi = self.watching = False

    def watch(self) -> None:
        self.emit("WATCH", self.key("str"), *([self.key("list")] if self.rng.random() < 0.3 else []))
        self.watching = True
        for _ in range(self.rng.randint(0, 2)):
            self.data_command()
        if self.rng.random() < 0.75:
            self.transaction()
        else:
            self.emit("UNWATCH")
            self.watching = False

    def big(self) -> None:
        self.bigs_left -= 1
        k = self.p + b"big"
        size = int(self.rng.choice([100_000, 300_000, 700_000, 2_000_000]) * self.rng.uniform(0.9, 1.0))
        self.emit("SET", k, self.rng.randbytes(size))
        self.emit(*self.rng.choice([[b"GET", k], [b"STRLEN", k], [b"GETRANGE", k, b"-10", b"-1"]]))

    # -- the stream -------------------------------------------------------------------------------
    def step(self) -> None:
        rng = self.rng
        if self.subscribed and self.proto == 2:
            if rng.random() < 0.85:
                self.pubsub()
            else:  # a command RESP2 forbids in subscribed mode: Redis's error
                saved = self.proto
                rng.choice([self.data_command, self.misc, lambda: self.emit("MULTI"), self.hello])()
                self.proto = saved  # refused, so HELLO changed nothing
            return
        weights = [55, 7, 6, 3, 3, 4, 9, 8, 1, 1 if self.bigs_left > 0 else 0]
        if self.subscribed:
            weights[7] = 20
        actions = [self.data_command, self.error_command, self.transaction, self.watch, self.select,
                   self.hello, self.misc, self.pubsub, lambda: self.emit(rng.choice(["EXEC", "DISCARD"])), self.big]
        if self.tracks:
            weights.append(20)
            actions.append(self.tracking)
        rng.choices(actions, weights)[0]()

    def generate(self) -> Stream:
        if stream_kind(self.stream.seed) == KIND_RESP3 or (
            stream_kind(self.stream.seed) in (KIND_SWITCH, KIND_TRACKING) and self.rng.random() < 0.5
        ):
            self.emit("HELLO", 3)
            self.proto = 3
        length = self.rng.randint(50, 300)
        while len(self.stream.commands) < length and not self.finished:
            if not self.in_multi and not self.watching:
                self.stream.switch_points.append(len(self.stream.commands))
            self.step()
        # RESET leaves MULTI, pub/sub, RESP3 and the db; then the marker.
        self.stream.commands.append(encode_multibulk([b"RESET"]))
        self.stream.commands.append(encode_multibulk([b"ECHO", self.stream.marker]))
        self.stream.switch_points = [i for i in self.stream.switch_points if i > 0]
        return self.stream


def make_stream(seed: int) -> Stream:
    """The stream for `seed` (the same bytes every time)."""
    return _Generator(seed).generate()
