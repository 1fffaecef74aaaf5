"""Per-command decisions: what the session does with each command it looks at.

`route` is a pure function of the command and a read-only view of the
session; it returns a `Decision` and changes nothing. The core applies the
decision (and the state change it implies) when the command is really sent.
Most commands get `None`: forward them and count their replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from redis_proxy.credentials import Credentials
from redis_proxy.passwords import password_matches
from redis_proxy.resp import encode_command
from redis_proxy.commands import Kind, kind_of
from redis_proxy.session import tracking
from redis_proxy.session.blocking import BLOCKING_NAMES, blocking_timeout
from redis_proxy.session.client_ids import (
    REWRITE_GETREDIR, REWRITE_ID, REWRITE_INFO, REWRITE_TRACKINGINFO, map_client_command,
)
from redis_proxy.session.reply_mode import MODES
from redis_proxy.session.types import After, Effect, SetAuth, SetDb, SetName, SetProtocol, SetReadonly

NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
NO_PASSWORD = (
    b"-ERR AUTH <password> called without any password configured for the default user. "
    b"Are you sure your configuration is correct?\r\n"
)
HELLO_NOAUTH = (
    b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
    b"<proto> AUTH <user> <pass> option can be used to authenticate the client and select the "
    b"RESP protocol version at the same time\r\n"
)
OK = b"+OK\r\n"
# Sent upstream in place of a command the proxy refuses inside MULTI: Redis
# rejects an unknown command at queue time, which makes EXEC answer
# -EXECABORT and run nothing, exactly as for a command Redis itself rejects.
POISON = b"*1\r\n$27\r\nREDIS-PROXY-REFUSED-IN-MULTI\r\n"


def error(text: str) -> bytes:
    """An error reply line (CR and LF in the text would end it early)."""
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"


class SessionView(Protocol):
    """What routing reads of a session: its state as of the commands sent so far."""

    authed: bool
    in_multi: bool
    watching: bool
    passthrough: bool  # listen.auth "passthrough": AUTH goes to Redis, which decides

    @property
    def resp3(self) -> bool: ...
    @property
    def subscribed(self) -> bool: ...
    @property
    def password(self) -> bytes | None: ...
    def client_arg(self, arg: bytes) -> bytes: ...  # a client id as given, as the uplink knows it (client_ids.py)


# -- decisions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer locally, in order; `authenticate` marks a successful AUTH."""

    data: bytes
    after: After = After.NOTHING
    authenticate: bool = False


@dataclass(frozen=True, slots=True)
class Refuse:
    """A command the proxy answers with an error. Inside MULTI it also aborts the transaction."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Track:
    """Forward; the reply (unless an error) confirms `effect`. `wire` replaces the client's bytes."""

    effect: Effect
    wire: bytes | None = None
    authenticate: bool = False  # HELLO ... AUTH user pass, accepted


@dataclass(frozen=True, slots=True)
class Subscribe:
    kind: bytes  # SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE, also for the UN- forms
    channels: tuple[bytes, ...]
    unsubscribe: bool


@dataclass(frozen=True, slots=True)
class Block:
    """Forward a blocking command; `timeout` seconds (0: forever)."""

    timeout: float


@dataclass(frozen=True, slots=True)
class Txn:
    """MULTI, EXEC, DISCARD, WATCH or UNWATCH, as it changes the session's transaction state."""

    kind: Kind


@dataclass(frozen=True, slots=True)
class Reset:
    """RESET: a fresh connection's state, on the proxy and upstream."""


@dataclass(frozen=True, slots=True)
class Monitor:
    """MONITOR: once Redis confirms it, the server's traffic streams to this client (and follows a switch)."""


@dataclass(frozen=True, slots=True)
class Stream:
    """SYNC or PSYNC: from this command on, the connection is an unmanaged byte stream to the uplink."""


@dataclass(frozen=True, slots=True)
class ReplyMode:
    """CLIENT REPLY ON, OFF or SKIP (`mode`, upper case)."""

    mode: bytes


@dataclass(frozen=True, slots=True)
class Forward:
    """Forward `wire` (client ids mapped) instead of the client's bytes when set; `rewrite`: the reply's ids too (0: no)."""

    wire: bytes | None
    rewrite: int = 0


Decision = Answer | Refuse | Track | Subscribe | Block | Txn | Reset | Forward | Monitor | Stream | ReplyMode | None

_SUB_KIND = {
    b"SUBSCRIBE": b"SUBSCRIBE",
    b"UNSUBSCRIBE": b"SUBSCRIBE",
    b"PSUBSCRIBE": b"PSUBSCRIBE",
    b"PUNSUBSCRIBE": b"PSUBSCRIBE",
    b"SSUBSCRIBE": b"SSUBSCRIBE",
    b"SUNSUBSCRIBE": b"SSUBSCRIBE",
}


def route(command: list[bytes], view: SessionView) -> Decision:
    """What to do with one command (see the Decision types)."""
    kind = kind_of(command[0])
    if not view.authed and kind not in (Kind.AUTH, Kind.HELLO, Kind.QUIT, Kind.RESET):
        return Answer(NOAUTH)
    if kind == Kind.PLAIN:
        if not view.in_multi and command[0].upper() in BLOCKING_NAMES:
            timeout = blocking_timeout(command)
            if timeout is not None:
                return Block(timeout)
        return None
    name = command[0].upper()
    if kind == Kind.QUIT:
        return Answer(OK, After.CLOSE)
    if kind == Kind.RESET:
        return Reset()
    if kind == Kind.AUTH:
        if view.in_multi:
            # In pass-through mode too: whether a queued AUTH succeeded is
            # one element of EXEC's reply, which the proxy does not read.
            return Refuse(error("ERR AUTH inside MULTI is not supported by redis-proxy"))
        if view.passthrough:
            args = command[1:]
            if len(args) == 1:
                return Track(SetAuth(Credentials(None, args[0])))
            if len(args) == 2:
                return Track(SetAuth(Credentials(args[0], args[1])))
            return None  # Redis answers the arity error
        return _auth(command[1:], view)
    if kind == Kind.HELLO:
        return _hello(command, view)
    if kind == Kind.CLIENT and len(command) > 1:
        sub = command[1].upper()
        if sub == b"SETNAME" and len(command) == 3:
            return Track(SetName(command[2] or None))
        if sub == b"REPLY" and len(command) == 3 and command[2].upper() in MODES:
            if view.in_multi:
                # Queued, it would change which replies EXEC's own reply holds back.
                return Refuse(error("ERR CLIENT REPLY inside MULTI is not supported by redis-proxy"))
            return ReplyMode(command[2].upper())
        if sub == b"REPLY":
            return None  # a malformed CLIENT REPLY: Redis answers the error
        return _client_ids(sub, command, view)
    if kind == Kind.MONITOR:
        return None if view.in_multi else Monitor()  # inside MULTI, Redis refuses it
    if kind == Kind.SYNC:
        return None if view.in_multi else Stream()
    if kind == Kind.SELECT:
        if len(command) == 2 and command[1].isdigit():
            return Track(SetDb(int(command[1])))
        return None  # Redis answers the error
    if kind in (Kind.READONLY, Kind.READWRITE):
        return Track(SetReadonly(kind == Kind.READONLY))
    if kind in (Kind.SUBSCRIBE, Kind.UNSUBSCRIBE):
        if view.in_multi:
            return Refuse(error(f"ERR {name.decode()} inside MULTI is not supported by redis-proxy"))
        if kind == Kind.SUBSCRIBE and len(command) < 2:
            return None  # Redis answers the arity error
        return Subscribe(_SUB_KIND[name], tuple(command[1:]), kind == Kind.UNSUBSCRIBE)
    if kind == Kind.MULTI:
        # Nested, or in RESP2 pub/sub mode: Redis refuses it and nothing starts.
        if view.in_multi or (view.subscribed and not view.resp3):
            return None
        return Txn(kind)
    if kind in (Kind.EXEC, Kind.DISCARD):
        return Txn(kind) if view.in_multi else None  # without MULTI, Redis refuses them
    if kind in (Kind.WATCH, Kind.UNWATCH):
        # Inside MULTI, WATCH is refused and UNWATCH queued (EXEC unwatches anyway).
        return None if view.in_multi else Txn(kind)
    return None


# CLIENT subcommands whose replies carry client ids: the proxy's own are shown.
_REWRITES = {
    b"ID": REWRITE_ID, b"INFO": REWRITE_INFO, b"LIST": REWRITE_INFO, b"GETREDIR": REWRITE_GETREDIR,
    b"TRACKINGINFO": REWRITE_TRACKINGINFO,
}


def _client_ids(sub: bytes, command: list[bytes], view: SessionView) -> Decision:
    """CLIENT subcommands that take or give client ids (client_ids.py); CLIENT TRACKING is tracked state (tracking.py)."""
    if sub == b"TRACKING":
        parsed = tracking.parse(command[2:])
        if parsed is None:
            return None  # Redis answers the syntax error
        effect, redirects = parsed
        if not redirects:
            return Track(effect)
        wire = list(command)
        for i in redirects:
            wire[2 + i] = view.client_arg(command[2 + i])
        return Track(effect, encode_command(wire))
    rewrite = _REWRITES.get(sub, 0)
    mapped = map_client_command(command, view.client_arg) if sub in (b"KILL", b"UNBLOCK", b"LIST") else None
    if rewrite or mapped is not None:
        return Forward(encode_command(mapped) if mapped is not None else None, rewrite)
    return None


def _auth(args: list[bytes], view: SessionView) -> Answer:
    expected = view.password
    if not args or len(args) > 2:
        return Answer(b"-ERR wrong number of arguments for 'auth' command\r\n")
    if expected is None:
        return Answer(NO_PASSWORD)
    if not password_matches(args[-1], expected):
        return Answer(WRONGPASS)
    return Answer(OK, authenticate=True)


def _hello(command: list[bytes], view: SessionView) -> Decision:
    """HELLO [protover [AUTH user pass] [SETNAME name]]: AUTH is checked here, the rest goes upstream."""
    args = command[1:]
    if view.subscribed and not view.resp3 and view.authed:
        # RESP2 pub/sub mode: Redis refuses HELLO, so nothing changes; its
        # AUTH option is the proxy's, and never goes upstream.
        if any(arg.upper() == b"AUTH" for arg in args[1:]):
            return Answer(error(
                "ERR Can't execute 'hello': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
                "are allowed in this context"
            ))
        return None
    forward = [command[0]]
    resp3 = view.resp3
    name: bytes | None = None
    authenticated = False
    credentials: Credentials | None = None  # pass-through: the client's bytes go as they are, AUTH included
    if args:
        forward.append(args[0])
        if args[0] in (b"2", b"3"):
            resp3 = args[0] == b"3"
        i = 1
        while i < len(args):
            option = args[i].upper()
            if option == b"AUTH" and i + 2 < len(args):
                if view.in_multi:
                    return Refuse(error("ERR HELLO with AUTH inside MULTI is not supported by redis-proxy"))
                if view.passthrough:
                    credentials = Credentials(args[i + 1], args[i + 2])
                    i += 3
                    continue
                result = _auth([args[i + 1], args[i + 2]], view)
                if not result.authenticate:
                    return result
                authenticated = True
                i += 3
            elif option == b"SETNAME" and i + 1 < len(args):
                name = args[i + 1]
                forward += [args[i], name]
                i += 2
            else:
                return Answer(error(f"ERR Syntax error in HELLO option '{args[i].decode(errors='replace')}'"))
    if not view.authed and not authenticated:
        return Answer(HELLO_NOAUTH)
    return Track(SetProtocol(resp3, name, credentials), encode_command(forward) if authenticated else None, authenticated)
