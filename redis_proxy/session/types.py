"""The session core's vocabulary: the actions it returns, and its typed pending entries.

Actions are what the I/O layer must do (write, connect, close, read or not).
Pending entries record, in order, what the uplink (or the proxy itself) still
owes the client: one entry per forwarded batch or tracked command, each with
one meaning per field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from redis_proxy.credentials import Credentials
from redis_proxy.session.tracking import SetTracking

# The session's uplink connection: none, being opened, ready.
NO_UPLINK, CONNECTING, READY = 0, 1, 2

# -- actions -----------------------------------------------------------------------


@dataclass(slots=True)
class WriteClient:
    data: bytes


@dataclass(slots=True)
class WriteUplink:
    chunks: list[bytes]


@dataclass(slots=True)
class ConnectUplink:
    """Open an uplink connection for the current generation and replay the session on it."""

    generation: int


@dataclass(slots=True)
class CloseUplink:
    pass


@dataclass(slots=True)
class CloseClient:
    """Close the client once what was written to it has gone out; log `reason` at `level`."""

    reason: str
    level: int = logging.DEBUG


@dataclass(slots=True)
class Log:
    """Something about this client worth a log line (the I/O layer adds who the client is)."""

    level: int
    message: str
    # Events any peer can cause at will (protocol errors): at most one line
    # per `key` per interval, with a count of the rest.
    key: str | None = None


@dataclass(slots=True)
class ReadClient:
    """Start (True) or stop (False) reading from the client: held commands grew past the limit or drained."""

    enabled: bool


@dataclass(slots=True)
class SetTimer:
    """Call `timer_fired` at this monotonic time (None: no timer needed)."""

    deadline: float | None


@dataclass(slots=True)
class Unblock:
    """Ask the uplink server, on a connection of the proxy's own, to unblock this uplink client (CLIENT UNBLOCK id TIMEOUT)."""

    client_id: int


Action = WriteClient | WriteUplink | ConnectUplink | CloseUplink | CloseClient | ReadClient | SetTimer | Unblock | Log

# -- state changes a reply confirms --------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetDb:
    db: int


@dataclass(frozen=True, slots=True)
class SetName:
    name: bytes | None


@dataclass(frozen=True, slots=True)
class SetReadonly:
    readonly: bool


@dataclass(frozen=True, slots=True)
class SetProtocol:
    resp3: bool
    name: bytes | None  # HELLO ... SETNAME name
    credentials: Credentials | None = None  # HELLO ... AUTH user pass, in pass-through mode


@dataclass(frozen=True, slots=True)
class SetAuth:
    """AUTH in pass-through mode: accepted by Redis, the session is these credentials' user from now on."""

    credentials: Credentials


@dataclass(frozen=True, slots=True)
class StartTxn:
    """MULTI: refused (in RESP2 pub/sub mode, or by ACL), the transaction never began."""


@dataclass(frozen=True, slots=True)
class Watch:
    """WATCH: refused, the keys are not watched (unless an earlier WATCH still holds)."""

    was_watching: bool


@dataclass(frozen=True, slots=True)
class Exec:
    """EXEC (`runs`) or DISCARD: when EXEC ran the transaction, the state changes queued inside it apply.

    `unsettling`: the transaction queued HELLO, so the protocol after it is
    known only from this reply: nothing more is routed until it arrives.
    """

    runs: bool
    unsettling: bool = False


@dataclass(frozen=True, slots=True)
class StartMonitor:
    """MONITOR: confirmed, the uplink streams every command it runs to this client."""


@dataclass(frozen=True, slots=True)
class ResetConnection:
    """RESET ran upstream: the connection is back to RESP2, unsubscribed (and the default user)."""


Effect = (
    SetDb | SetName | SetReadonly | SetProtocol | SetAuth | StartTxn | Watch | Exec | StartMonitor | ResetConnection
    | SetTracking
)

# -- pending entries -------------------------------------------------------------------


class After(Enum):
    """What happens once a reply the proxy answers itself has been written."""

    NOTHING = 0
    CLOSE = 1  # QUIT, protocol errors


@dataclass(frozen=True, slots=True)
class Plain:
    """`count` forwarded commands whose replies are only counted."""

    count: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class Tracked:
    """One forwarded command whose reply, unless an error, confirms a state change."""

    effect: Effect
    sent_at: float
    in_multi: bool  # queued inside MULTI: +QUEUED only defers the effect to EXEC
    index: int = 0  # inside MULTI: its element in EXEC's reply (an error there: the effect never happened)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A (P|S)(UN)SUBSCRIBE: `confirmations` replies (pushes in RESP3), or one error that undoes `added`."""

    kind: bytes  # SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE
    confirmations: int
    added: tuple[bytes, ...]
    sent_at: float


@dataclass(frozen=True, slots=True)
class Local:
    """A reply of the proxy's own; it waits for every reply before it. Owes nothing upstream."""

    data: bytes
    after: After


@dataclass(frozen=True, slots=True)
class Replace:
    """One forwarded stand-in whose reply is not the client's: `data` is written in its place (b"" for none)."""

    data: bytes
    sent_at: float


@dataclass(frozen=True, slots=True)
class Rewrite:
    """One forwarded command whose reply is held back whole and rewritten (client ids: client_ids.rewrite_reply).

    `tracked`: the command also confirms a state change (HELLO), as a Tracked entry would.
    """

    kind: int
    sent_at: float
    tracked: Tracked | None = None


@dataclass(frozen=True, slots=True)
class Blocking:
    """A blocking command (BLPOP, XREAD BLOCK, WAIT...) sent outside MULTI."""

    command: tuple[bytes, ...]
    sent_at: float
    deadline: float | None  # when its own timeout ends (None: blocks forever)


Pending = Plain | Tracked | Subscription | Local | Replace | Blocking | Rewrite


def owed(entry: Pending) -> int:
    """Replies the uplink owes for an entry (a subscription's confirmations may be cut short by an error)."""
    if type(entry) is Plain:
        return entry.count
    if type(entry) is Subscription:
        return entry.confirmations
    if type(entry) is Local:
        return 0
    return 1


@dataclass(slots=True)
class Held:
    """A command received but not yet forwarded (the gate is shut, or no uplink yet)."""

    command: list[bytes]
    raw: list[bytes] | None  # the client's own bytes for it, when they are exactly this command
    arrived: float
    size: int


@dataclass(slots=True)
class HeldLocal:
    """A reply of the proxy's own (a protocol error) that must keep its place behind held commands."""

    local: Local
