"""Blocking commands: where each keeps its timeout, and what its timeout reply looks like.

On a pause, a client blocked in BLPOP (or XREAD BLOCK, WAIT...) is unblocked
on the old server with CLIENT UNBLOCK ... TIMEOUT; the timeout reply that
comes back is not the client's, and the command is sent again, with what is
left of its timeout, once the gate opens (possibly on a new server).
"""

from __future__ import annotations

import math

from redis_proxy.resp import Reply

# name -> (index of the timeout argument, or -1 for the last one; its unit in seconds)
_TIMEOUTS: dict[bytes, tuple[int, float]] = {
    b"BLPOP": (-1, 1.0),
    b"BRPOP": (-1, 1.0),
    b"BZPOPMIN": (-1, 1.0),
    b"BZPOPMAX": (-1, 1.0),
    b"BRPOPLPUSH": (-1, 1.0),
    b"BLMOVE": (-1, 1.0),
    b"BLMPOP": (1, 1.0),
    b"BZMPOP": (1, 1.0),
    b"WAIT": (-1, 0.001),
}
_STREAM_READS = frozenset({b"XREAD", b"XREADGROUP"})
BLOCKING_NAMES = frozenset(_TIMEOUTS) | _STREAM_READS


def _timeout_index(command: list[bytes] | tuple[bytes, ...]) -> tuple[int, float] | None:
    name = command[0].upper()
    spec = _TIMEOUTS.get(name)
    if spec is not None:
        index, unit = spec
        index = len(command) - 1 if index < 0 else index
        return (index, unit) if 0 < index < len(command) else None
    if name in _STREAM_READS:
        for i in range(1, len(command) - 1):
            option = command[i].upper()
            if option == b"BLOCK":
                return i + 1, 0.001
            if option == b"STREAMS":
                return None
    return None


def blocking_timeout(command: list[bytes]) -> float | None:
    """Seconds this command may block (0: forever), or None if it does not block."""
    found = _timeout_index(command)
    if found is None:
        return None
    index, unit = found
    try:
        value = float(command[index])
    except ValueError:
        return None  # Redis answers the error at once
    if not math.isfinite(value) or value < 0:
        return None
    return value * unit


def can_reissue(command: tuple[bytes, ...]) -> bool:
    """Whether sending the command again later means the same. XREAD with `$` does not: it
    would miss entries added between the unblock and the new command, so it holds a pause instead."""
    if command[0].upper() in _STREAM_READS:
        upper = [arg.upper() for arg in command]
        if b"STREAMS" in upper and b"$" in command[upper.index(b"STREAMS") + 1 :]:
            return False
    return True


def with_timeout(command: tuple[bytes, ...], seconds: float) -> list[bytes]:
    """The same command with its timeout set to `seconds` (0: forever), in the command's own unit."""
    found = _timeout_index(command)
    assert found is not None
    index, unit = found
    args = list(command)
    if unit == 1.0:
        args[index] = b"%.3f" % seconds if seconds else b"0"
    else:
        args[index] = b"%d" % max(1, round(seconds / unit)) if seconds else b"0"
    return args


def is_timeout_reply(command: tuple[bytes, ...], reply: Reply) -> bool:
    """Whether `reply` is what the command answers when its time runs out (so the client has not seen a result)."""
    if command[0].upper() == b"WAIT":
        # WAIT answers how many replicas acknowledged; fewer than asked for is a timeout.
        try:
            wanted = int(command[1])
        except (IndexError, ValueError):
            return False
        return reply.last_int is None and reply.text is not None and reply.text.lstrip(b"-").isdigit() and int(reply.text) < wanted
    return reply.is_nil
