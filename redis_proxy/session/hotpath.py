"""Cheap per-batch checks for the hot path: does any command in a batch need the session's attention?"""

from __future__ import annotations

import hiredis

from redis_proxy.resp import PUSH, Reply
from redis_proxy.session.blocking import BLOCKING_NAMES

# Names of the commands that need more than counting; a batch without any of
# these (in upper or lower case) takes the hot path.
_SPECIAL_NAMES = frozenset(
    n
    for name in (
        b"AUTH", b"HELLO", b"SELECT", b"MULTI", b"EXEC", b"DISCARD", b"WATCH", b"UNWATCH", b"SUBSCRIBE",
        b"PSUBSCRIBE", b"SSUBSCRIBE", b"UNSUBSCRIBE", b"PUNSUBSCRIBE", b"SUNSUBSCRIBE", b"QUIT", b"CLIENT",
        b"READONLY", b"READWRITE", b"RESET", b"MONITOR", b"SYNC", b"PSYNC", *BLOCKING_NAMES,
    )
    for n in (name, name.lower())
)


def has_special(commands: list[list[bytes]]) -> bool:
    special = _SPECIAL_NAMES
    for command in commands:
        name = command[0]
        if name in special or (not name.isupper() and not name.islower() and name.upper() in special):
            return True
    return False


def is_push(value: object) -> bool:
    """Whether a value from ReplyFramer.feed is a RESP3 push (never the reply to a command)."""
    return type(value) is hiredis.PushNotification or (type(value) is Reply and value.kind == PUSH)
