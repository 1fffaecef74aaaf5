"""A session core's state as a plain record, for handing a client connection to another process (takeover).

Sans-I/O: `snapshot` reads a paused, drained core and returns a JSON-able
dict (or why the session cannot move); `restore` brings a fresh core in the
new process to that state. What moves is what a new uplink connection
replays (database, RESP version, name, READONLY, MONITOR, subscriptions,
pass-through credentials, CLIENT REPLY mode), whether the client has
authenticated, its proxy client id, and its input not yet sent upstream:
held commands (re-encoded) followed by the bytes read but not yet framed.
The new core frames that input again, so held commands, a half-received
command and an AUTH waiting for its outcome all come out as they would have.

A session moves only between replies: nothing in flight, no transaction,
no blocking command being unblocked. A pause guarantees that for every
session except the ones listed in `why_not_movable`, which stay with the
old process until they close (TLS connections too: their state lives in
the old process's TLS library).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from redis_proxy.credentials import Credentials
from redis_proxy.resp import encode_command
from redis_proxy.session.core import SessionCore
from redis_proxy.session.types import READY, Held

FORMAT = 1  # bumped when the record changes meaning; a newer process refuses a record it cannot read


def why_not_movable(core: SessionCore) -> str | None:
    """None if the session is between replies with nothing the old process must finish; else why it stays."""
    state = core.state
    checks = (
        (core.closing or core.broken, "closing"),
        (core.eof, "half-closed by the client"),
        (core.streaming, "a replication stream (SYNC/PSYNC)"),
        (bool(core.pending) or core.outstanding > 0 or core.partial is not None, "replies still owed"),
        (core.unblocking is not None, "a blocking command being unblocked"),
        (core.in_multi or core.watching or core.unsettled > 0, "inside a transaction"),
        (core.latest_hello is not None or core.txn_hello, "a HELLO not yet answered"),
        (core.replies.in_reply(), "in the middle of a reply"),
        (state.tracking is not None or core.ids.is_target(core.proxy_id) or core.pushes, "client-side caching (CLIENT TRACKING)"),
        (any(type(item) is not Held for item in core.queue), "a protocol error waiting to be answered"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def snapshot(core: SessionCore) -> dict[str, Any]:
    """The record of a movable session (check `why_not_movable` first); the core is left as it is."""
    state = core.state
    held = b"".join(
        b"".join(item.raw) if item.raw is not None else encode_command(item.command)
        for item in core.queue
        if type(item) is Held
    )
    unframed = core.requests.peek_unframed()
    credentials = state.credentials
    return {
        "format": FORMAT,
        "proxy_id": core.proxy_id,
        "authed": core.authed,
        "db": state.db,
        "resp3": state.resp3,
        "name": _b64(state.name) if state.name is not None else None,
        "readonly": state.readonly,
        "monitor": state.monitor,
        "channels": [_b64(c) for c in sorted(state.channels)],
        "patterns": [_b64(p) for p in sorted(state.patterns)],
        "shard_channels": [_b64(c) for c in sorted(state.shard_channels)],
        "credentials": (
            None if credentials is None
            else {"user": _b64(credentials.user) if credentials.user is not None else None, "password": _b64(credentials.password)}
        ),
        "reply_off": core.reply_mode.off,
        "reply_skip": core.reply_mode.skip,
        "input": _b64(held + unframed),
        "connected": core.uplink == READY,
    }


class RecordError(ValueError):
    """A session record this process cannot restore (another format, or damaged). One readable line."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What the new process does with a restored session once the old one has let go."""

    input: bytes  # fed to the core (client_data): held commands, then the unframed bytes
    connect: bool  # it had an uplink connection: open one at once, before its next command


def restore(core: SessionCore, record: dict[str, Any]) -> Restored:
    """Bring a fresh core (no command seen yet) to `record`'s state.

    The input is fed by the caller once the connection is its own: until
    then nothing may be forwarded (the new process starts paused).
    """
    if record.get("format") != FORMAT:
        raise RecordError(f"session record format {record.get('format')!r} is not {FORMAT} (the processes' versions differ too much)")
    try:
        state = core.state
        state.db = int(record["db"])
        state.resp3 = bool(record["resp3"])
        state.name = _unb64(record["name"]) if record["name"] is not None else None
        state.readonly = bool(record["readonly"])
        state.monitor = bool(record["monitor"])
        state.channels = {_unb64(c) for c in record["channels"]}
        state.patterns = {_unb64(p) for p in record["patterns"]}
        state.shard_channels = {_unb64(c) for c in record["shard_channels"]}
        creds = record["credentials"]
        if creds is not None:
            user = _unb64(creds["user"]) if creds["user"] is not None else None
            state.credentials = Credentials(user, _unb64(creds["password"]))
        core.reply_resp3 = state.resp3
        core.nonshard = len(state.channels) + len(state.patterns)
        core.shard = len(state.shard_channels)
        core.reply_mode.off = bool(record["reply_off"])
        core.reply_mode.skip = bool(record["reply_skip"])
        core._update_offpath()
        core.authed = bool(record["authed"]) or core.password is None
        core.requests.unauthenticated = not core.authed
        core.ids.adopt(core.proxy_id, int(record["proxy_id"]))
        core.proxy_id = int(record["proxy_id"])
        restored = Restored(_unb64(record["input"]), bool(record["connected"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"damaged session record: {exc!r}") from None
    return restored
