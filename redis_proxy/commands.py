"""What the proxy must know about individual Redis commands.

Most commands are forwarded untouched and never looked at beyond their name.
The few listed here change per-connection state the proxy has to track (so it
can replay it on a new uplink), are answered by the proxy itself, or change
what the connection is (MONITOR, SYNC/PSYNC).
"""

from __future__ import annotations

from enum import IntEnum


class Kind(IntEnum):
    PLAIN = 0
    AUTH = 1
    HELLO = 2
    SELECT = 3
    MULTI = 4
    EXEC = 5
    DISCARD = 6
    WATCH = 7
    UNWATCH = 8
    SUBSCRIBE = 9
    UNSUBSCRIBE = 10
    QUIT = 11
    CLIENT = 12
    READONLY = 13
    READWRITE = 14
    RESET = 16
    MONITOR = 17
    SYNC = 18  # SYNC and PSYNC: the connection becomes a replication stream


_KINDS: dict[bytes, Kind] = {
    b"AUTH": Kind.AUTH,
    b"HELLO": Kind.HELLO,
    b"SELECT": Kind.SELECT,
    b"MULTI": Kind.MULTI,
    b"EXEC": Kind.EXEC,
    b"DISCARD": Kind.DISCARD,
    b"WATCH": Kind.WATCH,
    b"UNWATCH": Kind.UNWATCH,
    b"SUBSCRIBE": Kind.SUBSCRIBE,
    b"PSUBSCRIBE": Kind.SUBSCRIBE,
    b"SSUBSCRIBE": Kind.SUBSCRIBE,
    b"UNSUBSCRIBE": Kind.UNSUBSCRIBE,
    b"PUNSUBSCRIBE": Kind.UNSUBSCRIBE,
    b"SUNSUBSCRIBE": Kind.UNSUBSCRIBE,
    b"QUIT": Kind.QUIT,
    b"CLIENT": Kind.CLIENT,
    b"READONLY": Kind.READONLY,
    b"READWRITE": Kind.READWRITE,
    b"RESET": Kind.RESET,
    b"MONITOR": Kind.MONITOR,
    b"SYNC": Kind.SYNC,
    b"PSYNC": Kind.SYNC,
}

# Blocking commands are listed in session/blocking.py: the proxy unblocks them
# for a pause and sends them again afterwards.

_UNSUBSCRIBE_REPLIES = frozenset({b"unsubscribe", b"punsubscribe", b"sunsubscribe"})
_SUBSCRIBE_REPLIES = frozenset({b"subscribe", b"psubscribe", b"ssubscribe"})
_MESSAGE_REPLIES = frozenset({b"message", b"pmessage", b"smessage"})


def kind_of(name: bytes) -> Kind:
    """The Kind of a command, given its name as the client spelled it."""
    kind = _KINDS.get(name)
    if kind is None:
        kind = _KINDS.get(name.upper(), Kind.PLAIN)
    return kind


def is_unsubscribe_reply(first: bytes | None) -> bool:
    return first in _UNSUBSCRIBE_REPLIES


def is_subscribe_reply(first: bytes | None) -> bool:
    return first in _SUBSCRIBE_REPLIES


def is_message(first: bytes | None) -> bool:
    return first in _MESSAGE_REPLIES


# Command names counted one by one in metrics; anything else counts as
# "other", so a client sending random names cannot grow the metrics without
# bound.
KNOWN_COMMANDS = frozenset(
    b"""APPEND AUTH BGREWRITEAOF BGSAVE BITCOUNT BITFIELD BITOP BITPOS BLMOVE BLMPOP BLPOP BRPOP
    BRPOPLPUSH BZMPOP BZPOPMAX BZPOPMIN CLIENT CLUSTER COMMAND CONFIG COPY DBSIZE DEBUG DECR DECRBY DEL
    DISCARD DUMP ECHO EVAL EVALSHA EVAL_RO EVALSHA_RO EXEC EXISTS EXPIRE EXPIREAT EXPIRETIME FCALL
    FCALL_RO FLUSHALL FLUSHDB FUNCTION GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEOSEARCH GET GETBIT
    GETDEL GETEX GETRANGE GETSET HDEL HELLO HEXISTS HGET HGETALL HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET
    HMSET HRANDFIELD HSCAN HSET HSETNX HSTRLEN HVALS INCR INCRBY INCRBYFLOAT INFO KEYS LASTSAVE LATENCY
    LCS LINDEX LINSERT LLEN LMOVE LMPOP LPOP LPOS LPUSH LPUSHX LRANGE LREM LSET LTRIM MEMORY MGET
    MIGRATE MONITOR MOVE MSET MSETNX MULTI OBJECT PERSIST PEXPIRE PEXPIREAT PEXPIRETIME PFADD PFCOUNT
    PFMERGE PING PSETEX PSUBSCRIBE PTTL PUBLISH PUBSUB PUNSUBSCRIBE QUIT RANDOMKEY READONLY READWRITE
    RENAME RENAMENX REPLICAOF RESET RESTORE ROLE RPOP RPOPLPUSH RPUSH RPUSHX SADD SAVE SCAN SCARD
    SCRIPT SDIFF SDIFFSTORE SELECT SET SETBIT SETEX SETNX SETRANGE SHUTDOWN SINTER SINTERCARD
    SINTERSTORE SISMEMBER SLAVEOF SLOWLOG SMEMBERS SMISMEMBER SMOVE SORT SORT_RO SPOP SPUBLISH
    SRANDMEMBER SREM SSCAN SSUBSCRIBE STRLEN SUBSCRIBE SUNION SUNIONSTORE SUNSUBSCRIBE SWAPDB TIME
    TOUCH TTL TYPE UNLINK UNSUBSCRIBE UNWATCH WAIT WAITAOF WATCH XACK XADD XAUTOCLAIM XCLAIM XDEL
    XGROUP XINFO XLEN XPENDING XRANGE XREAD XREADGROUP XREVRANGE XSETID XTRIM ZADD ZCARD ZCOUNT ZDIFF
    ZDIFFSTORE ZINCRBY ZINTER ZINTERCARD ZINTERSTORE ZLEXCOUNT ZMPOP ZMSCORE ZPOPMAX ZPOPMIN
    ZRANDMEMBER ZRANGE ZRANGEBYLEX ZRANGEBYSCORE ZRANGESTORE ZRANK ZREM ZREMRANGEBYLEX
    ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE ZREVRANGEBYLEX ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE
    ZUNION ZUNIONSTORE""".split()
)
