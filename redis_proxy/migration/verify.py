"""Is a key the same on two servers? Type, then DUMP payload (or, across RDB versions, the value), then TTL."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

EXAMPLES = 20  # mismatches kept as examples in a report
TTL_TOLERANCE_MS = 2000  # a TTL may differ this much between the two servers (copying and reading take time)


@dataclass(frozen=True)
class KeyState:
    kind: str | None  # TYPE; None: the key does not exist
    payload: bytes | None  # DUMP
    pttl: int  # -1: no expiry, -2: missing
    value: Any = None  # the value itself, read when payloads differ

    def with_value(self, value: Any) -> KeyState:
        return replace(self, value=value)


@dataclass(frozen=True)
class Mismatch:
    db: int
    key: bytes
    category: str  # one of CATEGORIES
    problem: str  # "missing on the target", "type hash on the source, string on the target", "value differs"...

    def to_json(self) -> dict[str, Any]:
        return {"db": self.db, "key": self.key.decode(errors="backslashreplace"), "problem": self.problem}


def _ttl(pttl: int) -> str:
    return "none" if pttl < 0 else f"{pttl} ms"


def needs_values(a: KeyState, b: KeyState) -> bool:
    return a.kind is not None and a.kind == b.kind and a.payload != b.payload


# What a mismatch is about; compare's report counts each.
MISSING_ON_TARGET, MISSING_ON_SOURCE, TYPE, VALUE, TTL = "missing_on_target", "missing_on_source", "type", "value", "ttl"
CATEGORIES = (MISSING_ON_TARGET, MISSING_ON_SOURCE, TYPE, VALUE, TTL)


def compare_states(src: KeyState, tgt: KeyState, tolerance_ms: int) -> tuple[str, str] | None:
    """What differs between a key on the source and on the target: (category, description), or None.

    A key about to expire may be gone on one side and not yet on the other:
    within the tolerance that is not a difference.
    """
    if src.kind is None and tgt.kind is None:
        return None
    if src.kind is None:
        return None if 0 <= tgt.pttl <= tolerance_ms else (MISSING_ON_SOURCE, "missing on the source")
    if tgt.kind is None:
        return None if 0 <= src.pttl <= tolerance_ms else (MISSING_ON_TARGET, "missing on the target")
    if src.kind != tgt.kind:
        return TYPE, f"type {src.kind} on the source, {tgt.kind} on the target"
    if src.payload != tgt.payload and (src.value is None or src.value != tgt.value):
        return VALUE, "value differs"
    ttl = f"ttl {_ttl(src.pttl)} on the source, {_ttl(tgt.pttl)} on the target"
    if (src.pttl < 0) != (tgt.pttl < 0):
        return TTL, ttl
    if src.pttl >= 0 and abs(src.pttl - tgt.pttl) > tolerance_ms:
        return TTL, ttl
    return None


def value_command(key: bytes, kind: str | None) -> tuple[Any, ...]:
    """The read that gives a key's whole value (for a type not known here: one that answers nothing useful)."""
    if kind == "string":
        return ("GET", key)
    if kind == "list":
        return ("LRANGE", key, 0, -1)
    if kind == "set":
        return ("SMEMBERS", key)
    if kind == "zset":
        return ("ZRANGE", key, 0, -1, "WITHSCORES")
    if kind == "hash":
        return ("HGETALL", key)
    if kind == "stream":
        # Entries only: consumer groups and their pending lists are compared by payload alone.
        return ("XRANGE", key, "-", "+")
    return ("TYPE", key)


def comparable(kind: str | None, reply: Any) -> Any:
    """A value as read by value_command, in a form that compares equal across servers (None: differs anyway)."""
    if isinstance(reply, Exception) or kind not in ("string", "list", "set", "zset", "hash", "stream"):
        return None
    if kind == "set":
        return sorted(reply)
    if kind == "hash":
        return sorted(zip(reply[::2], reply[1::2], strict=True))
    return reply
