"""KeySpecs: which keys a client command may write, from the source server's `COMMAND` reply.

Unit tests run on a captured Redis 7.0 reply (command_reply_7_0.py), on Redis 6
shaped entries and on synthetic specs; the differential tests run ~125 commands
against a real redis-server 7 and check writes() against both `COMMAND
GETKEYSANDFLAGS` and what actually changed in the keyspace (DUMP of every key).
"""

from __future__ import annotations

import socket
import timeit
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import hiredis
import pytest
from command_reply_7_0 import COMMAND_REPLY_7_0
from inproc import RawClient
from servers import RedisServer, redis_server_binary, redis_server_version

from redis_proxy.migration.keyspecs import ALL_DBS, KeySpecs, Writes

SPECS = KeySpecs.parse(COMMAND_REPLY_7_0)


def writes(line: str, db: int = 0, specs: KeySpecs = SPECS) -> Writes | None:
    return specs.writes(line.encode().split(), db)


def pairs(*keys: str, db: int = 0) -> Writes:
    return [(db, key.encode()) for key in keys]


# -- unit tests on the captured 7.0 reply --------------------------------------


@pytest.mark.parametrize("line", [
    "GET k", "get k", "XREAD COUNT 1 STREAMS s 0", "SORT_RO k BY w GET x", "EVAL_RO s 1 k", "FCALL_RO f 1 k",
    "OBJECT FREQ k", "object encoding k", "PING", "CONFIG SET maxmemory 1", "CLIENT SETNAME x",
    "SPUBLISH channel message", "WATCH k", "MULTI", "EXEC", "DISCARD", "SELECT 1", "NOSUCHCOMMAND k",
    "XGROUP", "XGROUP NOSUCH s g", "XGROUP HELP", "DEBUG SLEEP 0", "SORT k ALPHA", "SORT k LIMIT 0 1 BY x GET y",
])
def test_nothing_written(line: str) -> None:
    assert writes(line) is None


def test_empty_command() -> None:
    assert SPECS.writes([], 0) is None


@pytest.mark.parametrize("line, keys", [
    ("SET k v", ["k"]),
    ("SET k v GET", ["k"]),
    ("INCR n", ["n"]),
    ("EXPIRE k 10", ["k"]),
    ("HSET h f v f2 v2", ["h"]),
    ("GETEX k PERSIST", ["k"]),
    ("XADD s * f v", ["s"]),
    ("MSET a 1 b 2 c 3", ["a", "b", "c"]),
    ("DEL a b c", ["a", "b", "c"]),
    ("LMOVE src dst LEFT RIGHT", ["src", "dst"]),  # both specs RW
    ("LMPOP 2 a b LEFT COUNT 3", ["a", "b"]),  # keynum
    ("GEORADIUS g 0 0 1 km STORE d1 STOREDIST d2", ["d1", "d2"]),  # keyword specs; g is only read
    ("XGROUP CREATE s g $ MKSTREAM", ["s"]),  # a subcommand
])
def test_keys(line: str, keys: list[str]) -> None:
    assert writes(line) == pairs(*keys)


@pytest.mark.parametrize("line, keys", [
    ("ZUNIONSTORE dst 2 a b WEIGHTS 1 2", ["dst"]),
    ("COPY src dst", ["dst"]),
    ("SORT k BY w_* GET o_* STORE dst", ["dst"]),
    ("BITOP AND dst a b", ["dst"]),
])
def test_keys_only_read_are_left_out(line: str, keys: list[str]) -> None:
    assert writes(line) == pairs(*keys)


def test_a_writer_whose_specs_all_say_read_only_writes_them() -> None:
    # XREADGROUP updates the consumer group, kept in the stream key its spec calls RO.
    assert writes("XREADGROUP GROUP g c COUNT 1 STREAMS s1 s2 > >") == pairs("s1", "s2")
    assert writes("XREADGROUP GROUP g c STREAMS streams >") == pairs("streams")  # the key is no keyword


@pytest.mark.parametrize("line", ["sEt k v", "set k v", "Set k v"])
def test_command_names_ignore_case(line: str) -> None:
    assert writes(line) == pairs("k")


@pytest.mark.parametrize("line", ["xgroup create s g $", "XGroup CreAte s g $", "XGROUP create s g $"])
def test_subcommand_names_ignore_case(line: str) -> None:
    assert writes(line) == pairs("s")


def test_databases() -> None:
    assert writes("SET k v", db=5) == pairs("k", db=5)
    assert writes("FLUSHDB", db=3) == [(3, None)]
    assert writes("flushdb ASYNC", db=3) == [(3, None)]
    assert writes("FLUSHALL", db=3) == [(ALL_DBS, None)]
    assert writes("SWAPDB 1 2", db=3) == [(1, None), (2, None)]
    assert writes("MOVE k 4", db=2) == [(2, b"k"), (4, b"k")]
    assert writes("COPY a b", db=2) == [(2, b"b")]
    assert writes("COPY a b DB 7", db=2) == [(7, b"b")]
    assert writes("copy a b replace db 7", db=2) == [(7, b"b")]
    assert writes("COPY a b DB 7 DB 8", db=2) == [(8, b"b")]  # Redis keeps the last


@pytest.mark.parametrize("line", ["SWAPDB 1", "SWAPDB x 1", "SWAPDB 1 -2", "SWAPDB", "COPY a b DB x", "COPY a", "MOVE"])
def test_malformed_database_commands_write_nothing(line: str) -> None:
    assert writes(line) is None  # Redis refuses them


@pytest.mark.parametrize("name", ["EVAL", "EVALSHA", "FCALL", "eval", "fCall"])
def test_scripts(name: str) -> None:
    assert writes(f"{name} body 0", db=4) == [(4, None)]  # may write anything
    assert writes(f"{name} body 0 arg", db=4) == [(4, None)]
    assert writes(f"{name} body 2 a b arg", db=4) == pairs("a", "b", db=4)
    assert writes(f"{name} body 3 a") == pairs("a")  # too few keys: Redis refuses, what is there is given
    for bad in ("-1", "x", ""):
        assert writes(f"{name} body {bad} a") is None
    assert writes(name) is None


def test_migrate() -> None:
    assert writes("MIGRATE host 6379 k 0 1000") == pairs("k")
    assert writes('MIGRATE host 6379 "" 0 1000 COPY KEYS a b') == pairs('""', "a", "b")
    assert SPECS.writes([b"MIGRATE", b"h", b"1", b"", b"0", b"10", b"KEYS", b"a", b"b"], 0) == pairs("a", "b")
    # A password reading KEYS only adds keys.
    keys = SPECS.writes([b"MIGRATE", b"h", b"1", b"", b"0", b"10", b"AUTH", b"KEYS", b"KEYS", b"a"], 0)
    assert keys is not None and set(pairs("KEYS", "a")) <= set(keys)


def test_debug() -> None:
    assert writes("DEBUG POPULATE 10", db=2) == [(2, None)]
    assert writes("debug reload", db=2) == [(ALL_DBS, None)]
    assert writes("DEBUG OBJECT k") is None


@pytest.mark.parametrize("line, expected", [
    ("SET", None), ("SET k", [(0, b"k")]), ("MSET a", [(0, b"a")]), ("DEL", None),
    ("ZUNIONSTORE d", [(0, b"d")]), ("ZUNIONSTORE d x a", [(0, b"d")]), ("ZUNIONSTORE d 5 a", [(0, b"d")]),
    ("LMPOP", None), ("LMPOP 3 a", [(0, b"a")]), ("LMPOP x a", None),
    ("XREADGROUP GROUP g c STREAMS", None), ("XREADGROUP", None), ("GEORADIUS g 0 0 1 km STORE", None),
    ("LMOVE a", [(0, b"a")]), ("XGROUP CREATE", None), ("SORT", None), ("SORT k STORE", None),
    ("MIGRATE", None), ("DEBUG", None),
])
def test_malformed_commands_give_what_is_there(line: str, expected: Writes | None) -> None:
    assert writes(line) == expected


# -- Redis 6 replies, and shapes the 7.0 reply does not have --------------------

# As Redis 6.2 answers COMMAND: [name, arity, flags, first, last, step, acl categories].
REPLY_6 = [
    [b"set", -3, [b"write", b"denyoom"], 1, 1, 1, [b"@write", b"@string", b"@slow"]],
    [b"get", 2, [b"readonly", b"fast"], 1, 1, 1, [b"@read", b"@string", b"@fast"]],
    [b"mset", -3, [b"write", b"denyoom"], 1, -1, 2, [b"@write", b"@string", b"@slow"]],
    [b"rename", 3, [b"write"], 1, 2, 1, [b"@keyspace", b"@write", b"@slow"]],
    [b"zunionstore", -4, [b"write", b"denyoom", b"movablekeys"], 0, 0, 0, [b"@write", b"@sortedset", b"@slow"]],
    [b"eval", -3, [b"noscript", b"may_replicate", b"movablekeys"], 0, 0, 0, [b"@slow", b"@scripting"]],
    [b"sort", -2, [b"write", b"denyoom", b"movablekeys"], 1, 1, 1, [b"@write", b"@set", b"@slow", b"@dangerous"]],
    [b"xgroup", -2, [b"write", b"denyoom"], 2, 2, 1, [b"@write", b"@stream", b"@slow"]],
    [b"xreadgroup", -7, [b"write", b"movablekeys"], 0, 0, 0, [b"@write", b"@stream", b"@slow", b"@blocking"]],
    [b"flushdb", -1, [b"write"], 0, 0, 0, [b"@keyspace", b"@write", b"@slow", b"@dangerous"]],
    [b"ping", -1, [b"stale", b"fast"], 0, 0, 0, [b"@fast", b"@connection"]],
    [b"multi", 1, [b"noscript", b"loading", b"stale", b"fast"], 0, 0, 0, [b"@fast", b"@transaction"]],
]
SPECS_6 = KeySpecs.parse(REPLY_6)


@pytest.mark.parametrize("line, expected", [
    ("SET k v", [(0, b"k")]),
    ("GET k", None),
    ("MSET a 1 b 2", [(0, b"a"), (0, b"b")]),
    ("RENAME a b", [(0, b"a"), (0, b"b")]),
    ("ZUNIONSTORE d 2 a b", [(0, None)]),  # movablekeys: positions unknown
    ("XREADGROUP GROUP g c STREAMS s >", [(0, None)]),
    ("EVAL body 1 k", [(0, b"k")]),
    ("EVAL body 0", [(0, None)]),
    ("SORT k STORE d", [(0, b"d")]),
    ("SORT k", None),
    ("XGROUP CREATE s g $", [(0, b"s")]),
    ("FLUSHDB", [(0, None)]),
    ("PING", None), ("MULTI", None), ("SET", None), ("MSET a", [(0, b"a")]),
])
def test_redis_6_reply(line: str, expected: Writes | None) -> None:
    assert writes(line, specs=SPECS_6) == expected


def spec(begin: list[Any], find: list[Any], flags: Sequence[bytes] = (b"RW", b"update")) -> list[Any]:
    return [b"flags", list(flags), b"begin_search", begin, b"find_keys", find]


INDEX_1 = [b"type", b"index", b"spec", [b"index", 1]]
ONE_KEY = [b"type", b"range", b"spec", [b"lastkey", 0, b"keystep", 1, b"limit", 0]]
UNKNOWN = [b"type", b"unknown", b"spec", []]
SYNTHETIC = [
    # Module commands: one without specs but declaring a first key, one read-only, one keyless.
    [b"mod.write", -2, [b"write"], 1, 1, 1, [], [], [], []],
    [b"mod.read", -2, [b"readonly"], 1, 1, 1, [], [], [], []],
    [b"mod.keyless", -1, [b"write"], 0, 0, 0, [], [], [], []],
    [b"mod.movable", -1, [b"write", b"movablekeys"], 0, 0, 0, [], [], [], []],
    [b"unknown.begin", -2, [b"write"], 0, 0, 0, [], [], [spec(UNKNOWN, ONE_KEY)], []],
    [b"unknown.find", -2, [b"write"], 0, 0, 0, [], [], [spec(INDEX_1, UNKNOWN)], []],
    [b"incomplete", -2, [b"write"], 0, 0, 0, [], [], [spec(INDEX_1, ONE_KEY, (b"RW", b"incomplete"))], []],
    [b"unknown.read", -2, [b"write"], 0, 0, 0, [], [], [spec(INDEX_1, ONE_KEY), spec(UNKNOWN, UNKNOWN, (b"RO",))], []],
    # A keyword searched backwards from the end, then every key after it.
    [b"backwards", -2, [b"write"], 0, 0, 0, [], [], [spec(
        [b"type", b"keyword", b"spec", [b"keyword", b"KEYS", b"startfrom", -2]],
        [b"type", b"range", b"spec", [b"lastkey", -1, b"keystep", 1, b"limit", 0]])], []],
    # Keys then values, half and half (as XREAD's STREAMS), starting at an index.
    [b"halves", -3, [b"write"], 0, 0, 0, [], [], [spec(
        INDEX_1, [b"type", b"range", b"spec", [b"lastkey", -1, b"keystep", 1, b"limit", 2]])], []],
    # A count of key/value pairs.
    [b"pairs", -3, [b"write"], 0, 0, 0, [], [], [spec(
        INDEX_1, [b"type", b"keynum", b"spec", [b"keynumidx", 0, b"firstkey", 1, b"keystep", 2]])], []],
    # All but the last two arguments.
    [b"allbut2", -3, [b"write"], 0, 0, 0, [], [], [spec(
        INDEX_1, [b"type", b"range", b"spec", [b"lastkey", -3, b"keystep", 1, b"limit", 0]])], []],
    # A RESP3 reply parsed into maps.
    [b"resp3", -2, [b"write"], 1, 1, 1, [], [], [{b"flags": [b"OW"], b"begin_search": {b"type": b"index", b"spec": {b"index": 1}},
                                                 b"find_keys": {b"type": b"range", b"spec": {b"lastkey": 0, b"keystep": 1, b"limit": 0}}}], []],
]
SYNTHETIC_SPECS = KeySpecs.parse(SYNTHETIC)


@pytest.mark.parametrize("line, expected", [
    ("MOD.WRITE k", [(0, None)]), ("MOD.READ k", None), ("MOD.KEYLESS", None), ("mod.movable a b", [(0, None)]),
    ("UNKNOWN.BEGIN k", [(0, None)]), ("UNKNOWN.FIND k", [(0, None)]), ("INCOMPLETE k", [(0, None)]),
    ("UNKNOWN.READ k", [(0, b"k")]),  # an unknown spec that only reads does not widen
    ("BACKWARDS x KEYS a KEYS b c", [(0, b"b"), (0, b"c")]),
    ("BACKWARDS KEYS a b", []), ("BACKWARDS x KEYS", []),  # argv[1] is not searched backwards, as in Redis
    ("HALVES a b 1 2", [(0, b"a"), (0, b"b")]), ("HALVES a b c 1 2 3", [(0, b"a"), (0, b"b"), (0, b"c")]),
    ("PAIRS 2 a 1 b 2", [(0, b"a"), (0, b"b")]), ("PAIRS 2 a 1", [(0, b"a")]),
    ("ALLBUT2 a b c x y", [(0, b"a"), (0, b"b"), (0, b"c")]), ("ALLBUT2 x y", []), ("ALLBUT2", []),
    ("RESP3 k", [(0, b"k")]),
])
def test_synthetic_specs(line: str, expected: Writes) -> None:
    assert writes(line, specs=SYNTHETIC_SPECS) == (expected or None)


def test_writes_cost() -> None:
    """Not a pass/fail test: prints the per-call cost on this machine."""
    set_k, get_k = [b"SET", b"k", b"v"], [b"GET", b"k"]
    number = 200_000
    for label, command in (("SET k v", set_k), ("GET k", get_k)):
        seconds = min(timeit.repeat(partial(SPECS.writes, command, 0), number=number, repeat=5)) / number
        print(f"\nKeySpecs.writes({label}): {seconds * 1e9:.0f} ns per call")
    assert SPECS.writes(set_k, 0) == [(0, b"k")] and SPECS.writes(get_k, 0) is None


# -- differential tests against a real redis-server 7 ----------------------------

LIBRARY = """#!lua name=keyspecs_test
redis.register_function('setit', function(keys, args) return redis.call('SET', keys[1], args[1]) end)
redis.register_function{function_name='getit', callback=function(keys, args) return redis.call('GET', keys[1]) end,
                        flags={'no-writes'}}
"""
SET_SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])"
DBS = (0, 1, 2)
# Run before every command: each starts from the same data.
DATASET: list[tuple[str, ...]] = [
    ("FLUSHALL",),
    ("SET", "s1", "hello"), ("SET", "s2", "world"), ("SET", "n1", "10"), ("SET", "ttl1", "v", "EX", "1000"),
    ("RPUSH", "l1", "c", "a", "b"), ("RPUSH", "l2", "x"), ("HSET", "h1", "f1", "v1", "n", "1"),
    ("SADD", "set1", "a", "b", "c"), ("SADD", "set2", "b", "c", "d"),
    ("ZADD", "z1", "1", "a", "2", "b"), ("ZADD", "z2", "3", "b", "4", "c"),
    ("XADD", "st1", "1-1", "f", "v"), ("XADD", "st1", "2-1", "f", "v"), ("XADD", "st1", "3-1", "f", "v"),
    ("XGROUP", "CREATE", "st1", "g1", "0"), ("XREADGROUP", "GROUP", "g1", "c1", "COUNT", "1", "STREAMS", "st1", ">"),
    ("GEOADD", "geo1", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"),
    ("PFADD", "hll1", "a", "b"), ("PFADD", "hll2", "c"),
    ("SELECT", "1"), ("SET", "s1", "in-db1"), ("SET", "other", "x"), ("SELECT", "2"), ("SET", "far", "x"), ("SELECT", "0"),
]

WRITERS: list[tuple[str, ...]] = [
    ("SET", "s1", "v"), ("SET", "s1", "v", "GET"), ("set", "new", "v"), ("SETNX", "new", "v"), ("SETEX", "s1", "100", "v"),
    ("MSET", "a", "1", "b", "2", "s1", "3"), ("MSETNX", "a", "1", "b", "2"), ("GETSET", "s1", "v"), ("GETDEL", "s1"),
    ("GETEX", "s1", "EX", "100"), ("APPEND", "s1", "x"), ("SETRANGE", "s1", "2", "xx"), ("SETBIT", "s1", "3", "1"),
    ("BITFIELD", "s1", "SET", "u8", "0", "255"), ("BITOP", "AND", "bdst", "s1", "s2"), ("INCR", "n1"),
    ("INCRBYFLOAT", "n1", "1.5"), ("DECRBY", "n1", "3"), ("DEL", "s1", "s2", "nosuch"), ("UNLINK", "s1", "l1"),
    ("EXPIRE", "s1", "100"), ("PEXPIREAT", "s1", "99999999999"), ("PERSIST", "ttl1"), ("RENAME", "s1", "s9"),
    ("RENAMENX", "s1", "s9"), ("COPY", "s1", "s9"), ("COPY", "s1", "s9", "DB", "1", "REPLACE"), ("MOVE", "s2", "1"),
    ("RESTORE", "restored", "0", "<dump of s1>"),
    ("RPUSH", "l1", "d"), ("LPUSH", "newlist", "a"), ("LINSERT", "l1", "BEFORE", "a", "z"), ("LSET", "l1", "0", "z"),
    ("LPOP", "l1"), ("RPOPLPUSH", "l1", "l2"), ("LMOVE", "l1", "l2", "LEFT", "RIGHT"), ("lmove", "l1", "l1", "left", "right"),
    ("BLMOVE", "l1", "l2", "RIGHT", "LEFT", "0.1"), ("LMPOP", "2", "nosuch", "l1", "LEFT"),
    ("BLMPOP", "0.1", "2", "l1", "l2", "RIGHT", "COUNT", "2"), ("BLPOP", "nosuch", "l2", "0.1"), ("LTRIM", "l1", "0", "0"),
    ("HSET", "h1", "f", "v"), ("HINCRBY", "h1", "n", "1"), ("HDEL", "h1", "f1"),
    ("SADD", "set1", "z"), ("SREM", "set1", "a"), ("SPOP", "set1"), ("SMOVE", "set1", "set2", "a"),
    ("SUNIONSTORE", "sdst", "set1", "set2"), ("SINTERSTORE", "sdst", "set1", "set2"), ("SDIFFSTORE", "set1", "set1", "set2"),
    ("ZADD", "z1", "5", "e"), ("ZINCRBY", "z1", "1", "a"), ("ZREM", "z1", "a"), ("ZPOPMAX", "z1"),
    ("BZPOPMIN", "nosuch", "z2", "0.1"), ("ZUNIONSTORE", "zdst", "2", "z1", "z2"),
    ("ZINTERSTORE", "zdst", "2", "z1", "z2", "WEIGHTS", "1", "2"), ("ZDIFFSTORE", "zdst", "2", "z1", "z2"),
    ("ZRANGESTORE", "zdst", "z1", "0", "-1"), ("ZMPOP", "2", "z1", "z2", "MIN"),
    ("BZMPOP", "0.1", "2", "z1", "z2", "MAX", "COUNT", "2"),
    ("SORT", "l1", "ALPHA", "STORE", "sorted"), ("sort", "l1", "by", "nosort", "limit", "0", "2", "alpha", "store", "sorted"),
    ("XADD", "st1", "*", "f", "v"), ("XADD", "st1", "MAXLEN", "1", "*", "f", "v"), ("XTRIM", "st1", "MAXLEN", "1"),
    ("XDEL", "st1", "2-1"), ("XACK", "st1", "g1", "1-1"), ("XGROUP", "CREATE", "st1", "g2", "$"),
    ("XGroup", "Create", "newstream", "g1", "$", "MKSTREAM"), ("XGROUP", "CREATECONSUMER", "st1", "g1", "c9"),
    ("XGROUP", "SETID", "st1", "g1", "0"), ("XGROUP", "DELCONSUMER", "st1", "g1", "c1"), ("XGROUP", "DESTROY", "st1", "g1"),
    ("XREADGROUP", "GROUP", "g1", "c1", "COUNT", "1", "STREAMS", "st1", ">"),
    ("XREADGROUP", "GROUP", "g1", "c2", "NOACK", "STREAMS", "st1", ">"),
    ("XCLAIM", "st1", "g1", "c2", "0", "1-1"), ("XAUTOCLAIM", "st1", "g1", "c2", "0", "0-0"), ("XSETID", "st1", "5-0"),
    ("GEOADD", "geo1", "13.5", "38.0", "Other"),
    ("GEOSEARCHSTORE", "gdst", "geo1", "FROMMEMBER", "Palermo", "BYRADIUS", "500", "km"),
    ("GEORADIUS", "geo1", "15", "37", "200", "km", "STORE", "gdst"),
    ("GEORADIUSBYMEMBER", "geo1", "Palermo", "500", "km", "STOREDIST", "gdst"),
    ("PFADD", "hll1", "x"), ("PFMERGE", "hlldst", "hll1", "hll2"),
    ("EVAL", SET_SCRIPT, "1", "s1", "v"), ("EVAL", SET_SCRIPT, "2", "s1", "s2", "v"), ("EVALSHA", "<sha>", "1", "s1", "v"),
    ("FCALL", "setit", "1", "s1", "v"), ("EVAL", "return redis.call('SET', 'undeclared', '1')", "0"),
    ("FLUSHDB",), ("FLUSHALL",), ("SWAPDB", "0", "1"),
]

READERS: list[tuple[str, ...]] = [
    ("GET", "s1"), ("get", "s1"), ("MGET", "s1", "s2"), ("STRLEN", "s1"), ("EXISTS", "s1", "s2"), ("TTL", "ttl1"),
    ("GETRANGE", "s1", "0", "1"), ("BITCOUNT", "s1"), ("LRANGE", "l1", "0", "-1"), ("HGETALL", "h1"),
    ("SMEMBERS", "set1"), ("SINTER", "set1", "set2"), ("ZRANGE", "z1", "0", "-1"), ("ZUNION", "2", "z1", "z2"),
    ("XRANGE", "st1", "-", "+"), ("XREAD", "COUNT", "1", "STREAMS", "st1", "0"), ("XINFO", "STREAM", "st1"),
    ("XPENDING", "st1", "g1"), ("GEOSEARCH", "geo1", "FROMMEMBER", "Palermo", "BYRADIUS", "500", "km"),
    ("GEORADIUS_RO", "geo1", "15", "37", "200", "km"), ("SORT_RO", "l1", "ALPHA"), ("SORT", "l1", "ALPHA"),
    ("OBJECT", "FREQ", "s1"), ("object", "encoding", "s1"), ("EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "s1"),
    ("FCALL_RO", "getit", "1", "s1"), ("TYPE", "s1"), ("TOUCH", "s1"), ("DBSIZE",), ("PING",), ("SCAN", "0"),
]


def covered(found: Writes | None, db: int, key: bytes) -> bool:
    return found is not None and bool({(db, key), (db, None), (ALL_DBS, None)} & set(found))


class Live:
    """A redis-server 7, its parsed `COMMAND` reply, and a raw connection to it."""

    def __init__(self, server: RedisServer) -> None:
        self.client = RawClient(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        self.specs = KeySpecs.parse(self.client.call("COMMAND"))
        self.client.call("FUNCTION", "LOAD", "REPLACE", LIBRARY)
        self.sha: bytes = self.client.call("SCRIPT", "LOAD", SET_SCRIPT)

    def calls(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        self.client.send(*commands)
        return [self.client.read() for _ in commands]

    def reset(self, command: tuple[str, ...]) -> list[bytes]:
        """Load DATASET; return `command` as argv, its placeholders filled in."""
        assert not [r for r in self.calls(DATASET) if isinstance(r, hiredis.ReplyError)]
        dump = self.client.call("DUMP", "s1")
        fill = {"<sha>": self.sha, "<dump of s1>": dump}
        return [fill[arg] if arg in fill else arg.encode() for arg in command]

    def snapshot(self) -> dict[tuple[int, bytes], tuple[Any, Any]]:
        """Every key of DBS with its serialized value and expiry time."""
        state = {}
        for db in DBS:
            self.client.call("SELECT", db)
            keys = self.client.call("KEYS", "*")
            replies = self.calls([(verb, key) for key in keys for verb in ("DUMP", "PEXPIRETIME")])
            state.update({(db, key): (replies[2 * i], replies[2 * i + 1]) for i, key in enumerate(keys)})
        self.client.call("SELECT", 0)
        return state

    def run(self, argv: list[bytes]) -> tuple[Any, set[tuple[int, bytes]]]:
        """Run argv in db 0: its reply, and the keys it changed, created or deleted."""
        before = self.snapshot()
        reply = self.client.call(*argv)
        after = self.snapshot()
        return reply, {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}

    def keys_and_flags(self, argv: list[bytes]) -> list[tuple[bytes, set[bytes]]]:
        reply = self.client.call("COMMAND", "GETKEYSANDFLAGS", *argv)
        if isinstance(reply, hiredis.ReplyError):  # "no key arguments" (EVAL ... 0, FLUSHDB)
            return []
        return [(key, set(flags)) for key, flags in reply]


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    if redis_server_binary() is None or redis_server_version() < (7,):
        pytest.skip("needs redis-server 7 on PATH")
    # An LFU policy lets OBJECT FREQ answer; without maxmemory nothing is evicted.
    server = RedisServer(extra_args=["--maxmemory-policy", "allkeys-lfu"]).start()
    live = Live(server)
    yield live
    live.client.close()
    server.close()


def label(command: tuple[str, ...]) -> str:
    return " ".join(arg if len(arg) < 20 else arg[:17] + "..." for arg in command)


def test_live_reply_parses_and_every_writer_has_a_handler(live: Live) -> None:
    # Sanity: the live reply has the commands the captured one has, with the same answers.
    for line in ("SET k v", "GET k", "ZUNIONSTORE d 2 a b", "XGROUP CREATE s g $", "XREADGROUP GROUP g c STREAMS s >"):
        assert writes(line, specs=live.specs) == writes(line)


@pytest.mark.parametrize("command", WRITERS, ids=label)
def test_writer_against_redis(live: Live, command: tuple[str, ...]) -> None:
    argv = live.reset(command)
    found = live.specs.writes(argv, 0)
    keys = live.keys_and_flags(argv)
    reply, changed = live.run(argv)
    assert not isinstance(reply, hiredis.ReplyError), reply
    assert changed, "each case should write something, or it proves nothing"
    # Ground truth: every key whose value, expiry or existence changed is reported.
    missed = [(db, key) for db, key in changed if not covered(found, db, key)]
    assert not missed, f"changed but not reported: {missed}; writes() gave {found}"
    # Redis's own key extraction: every key it does not flag as only read is reported
    # (in some database: GETKEYS does not know COPY's DB option)...
    for key, flags in keys:
        if not (b"RO" in flags and not flags & {b"RW", b"OW", b"RM"}):
            assert any(covered(found, db, key) for db in DBS), f"{key!r} ({flags}) not in {found}"
    # ...and no key Redis would not name (MOVE and COPY name theirs in another db).
    named = {key for _, key in found or [] if key is not None}
    assert named <= {key for key, _ in keys}, f"{found} against {keys}"


@pytest.mark.parametrize("command", READERS, ids=label)
def test_reader_against_redis(live: Live, command: tuple[str, ...]) -> None:
    argv = live.reset(command)
    assert live.specs.writes(argv, 0) is None
    reply, changed = live.run(argv)
    assert not isinstance(reply, hiredis.ReplyError), reply
    assert not changed
