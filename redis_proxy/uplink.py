"""Connections to the uplink Redis: connect, TLS, AUTH, and replaying a client's session.

A new uplink connection goes through a handshake before any client command
reaches it: the proxy authenticates with its own credentials, then replays
what the client had set up on its previous connection (protocol version,
database, client name, READONLY, subscriptions), reading and swallowing the
replies so the client never sees them.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import hiredis

from redis_proxy.sockets import set_nodelay
from redis_proxy.commands import is_message, is_subscribe_reply
from redis_proxy.config import UplinkConfig, parse_tcp_addr
from redis_proxy.credentials import Credentials
from redis_proxy.resp import PUSH, ProtocolError, Reply, ReplyFramer, encode_command
from redis_proxy.session import tracking as client_tracking
from redis_proxy.tls import client_certificate_hint, uplink_server_hostname


P = TypeVar("P", bound=asyncio.Protocol)


class UplinkError(Exception):
    """The uplink could not be reached, refused the handshake, or went away. One readable line."""


class UplinkUnreachable(UplinkError):
    """No connection could be opened at all (refused, timed out): the uplink may simply be down.

    Kept apart from the other failures (TLS verification, AUTH, a replica)
    because waiting can fix this one, so `--start-without-uplink` tolerates
    it, and the others are configuration mistakes it must not hide.
    """


@dataclass(slots=True)
class SessionState:
    """What a client set up on its connection that a new uplink connection must be told again."""

    db: int = 0
    resp3: bool = False
    name: bytes | None = None
    readonly: bool = False
    monitor: bool = False  # MONITOR: the new connection monitors too
    channels: set[bytes] = field(default_factory=set)
    patterns: set[bytes] = field(default_factory=set)
    shard_channels: set[bytes] = field(default_factory=set)
    # listen.auth "passthrough": what the client authenticated as (its repr hides the password).
    credentials: Credentials | None = None
    tracking: client_tracking.Tracking | None = None  # CLIENT TRACKING ON (REDIRECT as a proxy client id)

    @property
    def subscribed(self) -> bool:
        return bool(self.channels or self.patterns or self.shard_channels)


class UplinkSink(Protocol):
    """Where an attached uplink connection delivers its events (a client session)."""

    def uplink_data(self, data: bytes) -> None: ...
    def uplink_lost(self, uplink: UplinkConnection, exc: Exception | None) -> None: ...
    def uplink_pause_writing(self) -> None: ...
    def uplink_resume_writing(self) -> None: ...


# Asked on every new uplink connection: the id CLIENT UNBLOCK needs.
CLIENT_ID = [b"CLIENT", b"ID"]
# Asked by check_uplink: a replica accepts the connection and AUTH and answers
# PING, then refuses every write with READONLY, so only ROLE tells it apart.
ROLE = [b"ROLE"]
MONITOR = [b"MONITOR"]


def auth_command(config: UplinkConfig) -> list[bytes] | None:
    if config.password is None:
        return None
    if config.user:
        return [b"AUTH", config.user.encode(), config.password.encode()]
    return [b"AUTH", config.password.encode()]


def replay_commands(
    config: UplinkConfig, state: SessionState, passthrough: bool = False, redirect: int | None = None
) -> list[list[bytes]]:
    """The commands that bring a fresh uplink connection to the client's state (subscriptions aside).

    With `passthrough` (listen.auth "passthrough") the connection is the
    client's own: it authenticates with the credentials the client's AUTH
    had accepted, or not at all (the default user, as a direct connection),
    never with the proxy's uplink.pass.

    `redirect`: the uplink id, on this server, of the session tracking
    redirects to (None: tracking is replayed without REDIRECT).
    """
    commands: list[list[bytes]] = []
    if passthrough:
        auth = state.credentials.auth_command() if state.credentials is not None else None
    else:
        auth = auth_command(config)
    if auth:
        commands.append(auth)
    if state.resp3:
        commands.append([b"HELLO", b"3"])
    if state.db:
        commands.append([b"SELECT", str(state.db).encode()])
    if state.name:
        commands.append([b"CLIENT", b"SETNAME", state.name])
    if state.readonly:
        commands.append([b"READONLY"])
    if state.tracking is not None:
        commands += client_tracking.replay_commands(state.tracking, redirect)
    commands.append(CLIENT_ID)
    if state.monitor:
        commands.append(MONITOR)  # last: a monitoring connection may not touch the keyspace
    return commands


def subscribe_commands(state: SessionState) -> tuple[list[list[bytes]], int]:
    """SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE for every subscription, and how many confirmations they bring."""
    commands: list[list[bytes]] = []
    for name, subs in ((b"SUBSCRIBE", state.channels), (b"PSUBSCRIBE", state.patterns), (b"SSUBSCRIBE", state.shard_channels)):
        if subs:
            commands.append([name, *sorted(subs)])
    return commands, sum(len(c) - 1 for c in commands)


class UplinkConnection(asyncio.Protocol):
    """One connection to the uplink. Hands data to its sink once attached; before that, to the handshake."""

    # One per client connection: slots, not a dict (per-client memory).
    __slots__ = ("transport", "sink", "closed", "lost", "_handshake", "_unclaimed", "role", "tls_without_certificate")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.sink: UplinkSink | None = None
        self.closed = False
        self.lost: Exception | None = None  # why the connection ended before a sink took it
        self._handshake: _Handshake | None = None
        # Bytes that arrive after the handshake and before a session attaches
        # (a few loop turns) wait here, so nothing of the stream is dropped.
        self._unclaimed: list[bytes] = []
        # The decoded reply to ROLE when the handshake asked it: a list such as
        # [b"slave", b"10.0.0.1", 6379, b"connected", 42], or the error text
        # (str) when the server refused ROLE (an ACL without @admin).
        self.role: list[Any] | str | None = None
        self.tls_without_certificate = False  # TLS to the uplink, and no client certificate of ours

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses
        set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.uplink_data(data)
        elif self._handshake is not None and not self._handshake.done.done():
            self._handshake.feed(data)
        else:
            self._unclaimed.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.sink is not None:
            self.sink.uplink_lost(self, exc)
            return
        self.lost = exc or UplinkError("the uplink closed the connection")
        if self._handshake is not None:
            why = "the uplink closed the connection during the handshake"
            if isinstance(exc, ssl.SSLError):
                # TLS 1.3 reports a missing client certificate only now, after the handshake.
                why += f" (TLS: {exc.reason or exc}){client_certificate_hint(exc, has_certificate=True)}"
            elif self.tls_without_certificate:
                # ... or, when the server's alert loses the race with its close, not at all.
                why += ": perhaps it requires a TLS client certificate (set uplink.certfile and uplink.keyfile)"
            self._handshake.fail(UplinkError(why))

    def attach(self, sink: UplinkSink) -> list[bytes]:
        """Hand the connection to a session; returns the bytes that arrived before it did."""
        self.sink = sink
        unclaimed, self._unclaimed = self._unclaimed, []
        return unclaimed

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.uplink_pause_writing()

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.uplink_resume_writing()

    # -- handshake ----------------------------------------------------------

    async def handshake(
        self, commands: list[list[bytes]], subscriptions: list[list[bytes]], confirmations: int, timeout: float
    ) -> tuple[list[bytes], bytes, int | None]:
        """Send the commands and subscriptions, swallow their replies.

        Returns the pub/sub messages that arrived in between (to pass on to
        the client), any bytes after the last swallowed reply, which belong
        to the client's stream, and the answer to CLIENT ID when it was one of
        the commands (None if the server refused it).
        """
        assert self.transport is not None
        everything = commands + subscriptions
        if not everything:
            return [], b"", None
        handshake = _Handshake(commands, confirmations)
        self._handshake = handshake
        self.transport.write(b"".join(encode_command(c) for c in everything))
        try:
            result = await asyncio.wait_for(handshake.done, timeout)
            self.role = handshake.role
            return result
        except TimeoutError:
            raise UplinkError(f"the uplink did not answer the handshake within {timeout:g} s") from None
        finally:
            self._handshake = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Handshake:
    """Reads the replies to a handshake, exactly, keeping track of where each one ends."""

    def __init__(self, commands: list[list[bytes]], confirmations: int) -> None:
        self.commands = commands
        self.confirmations = confirmations
        self.framer = ReplyFramer()
        self.framer.set_fast_path(False)  # we need reply boundaries
        self.buffer = bytearray()  # bytes since the last reply boundary
        self.answered = 0
        self.forward: list[bytes] = []
        self.client_id: int | None = None
        self.role: list[Any] | str | None = None
        self.done: asyncio.Future[tuple[list[bytes], bytes, int | None]] = asyncio.get_running_loop().create_future()

    def fail(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def feed(self, data: bytes) -> None:
        if self.done.done():
            return
        base = len(self.buffer)
        self.buffer += data
        try:
            replies = self.framer.feed(data)
        except ProtocolError as exc:
            self.fail(UplinkError(f"the uplink sent an invalid reply: {exc}"))
            return
        start = 0
        for reply, end in zip(replies, self.framer.last_ends, strict=True):
            end += base
            assert isinstance(reply, Reply)
            try:
                swallow = self._take(reply, start, end)
            except UplinkError as exc:
                self.fail(exc)
                return
            if not swallow:
                self.forward.append(bytes(self.buffer[start:end]))
            start = end
            if self.answered == len(self.commands) + self.confirmations:
                self.done.set_result((self.forward, bytes(self.buffer[end:]), self.client_id))
                return
        del self.buffer[:start]

    def _take(self, reply: Reply, start: int, end: int) -> bool:
        """Account for one reply (self.buffer[start:end]); True if it is the handshake's to swallow."""
        if reply.kind == PUSH and not is_subscribe_reply(reply.first):
            return False  # an invalidation (tracking was replayed) or a message: the client's, answering nothing
        if self.answered < len(self.commands):
            if self.commands[self.answered] == ROLE:
                # The exact framer keeps only a reply's first element; a
                # replica's master address comes later, so decode this one
                # (small) reply whole. A refusal is kept, not raised: the
                # caller decides what an unknown role means.
                self.role = _decode_role(bytes(self.buffer[start:end]))
                self.answered += 1
                return True
            if self.commands[self.answered] == CLIENT_ID:
                # Optional: without it, blocking commands simply hold a pause until they return.
                self.client_id = int(reply.text) if not reply.is_error and reply.text and reply.text.isdigit() else None
                self.answered += 1
                return True
            if reply.is_error:
                command = self.commands[self.answered][0].decode()
                text = (reply.text or b"").decode(errors="replace")
                raise UplinkError(f"the uplink refused {command}: {text}")
            self.answered += 1
            return True
        if is_subscribe_reply(reply.first):
            self.answered += 1
            return True
        if is_message(reply.first):
            return False
        if reply.is_error:
            raise UplinkError(f"the uplink refused a subscription: {(reply.text or b'').decode(errors='replace')}")
        raise UplinkError("unexpected reply from the uplink while re-subscribing")


def _decode_role(raw: bytes) -> list[Any] | str:
    """ROLE's reply as a list, or the error text when the server refused it."""
    reader = hiredis.Reader()
    reader.feed(raw)
    value = reader.gets()
    if isinstance(value, hiredis.ReplyError):
        return str(value)
    if isinstance(value, list) and value:
        return value
    return f"unexpected reply to ROLE: {value!r:.80}"


async def open_uplink(
    config: UplinkConfig,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
    factory: Callable[[], P] = UplinkConnection,  # type: ignore[assignment]
) -> P:
    """Connect (and TLS-handshake) to the uplink. Raises UplinkError with a readable reason."""
    loop = asyncio.get_running_loop()
    hostname = uplink_server_hostname(config) if ssl_context is not None else None
    where = config.addr
    try:
        if config.network == "unix":
            connect = loop.create_unix_connection(
                factory, config.addr, ssl=ssl_context, server_hostname=hostname
            )
        else:
            host, port = parse_tcp_addr(config.addr)
            connect = loop.create_connection(factory, host, port, ssl=ssl_context, server_hostname=hostname)
        _, connection = await asyncio.wait_for(connect, timeout)
    except ssl.SSLCertVerificationError as exc:
        raise UplinkError(f"TLS verification of uplink {where} failed: {exc.verify_message or exc.reason}") from None
    except ssl.SSLError as exc:
        hint = client_certificate_hint(exc, has_certificate=bool(config.certfile))
        raise UplinkError(f"TLS handshake with uplink {where} failed: {exc.reason or exc}{hint}") from None
    except TimeoutError:
        hint = " (the TLS handshake did not finish: does the uplink speak TLS?)" if ssl_context is not None else ""
        raise UplinkUnreachable(f"cannot connect to uplink {where}: timed out after {timeout:g} s{hint}") from None
    except OSError as exc:
        raise UplinkUnreachable(f"cannot connect to uplink {where}: {exc.strerror or exc}") from None
    if isinstance(connection, UplinkConnection):
        connection.tls_without_certificate = ssl_context is not None and not config.certfile
    return connection


@dataclass
class ReadyUplink:
    """An uplink connection with the session replayed on it."""

    connection: UplinkConnection
    forward: list[bytes]  # pub/sub messages that arrived during the replay: the client's
    leftover: bytes  # bytes after the last replay reply: the client's stream
    client_id: int | None  # CLIENT ID on the server, for CLIENT UNBLOCK


async def connect_session(
    config: UplinkConfig,
    ssl_context: ssl.SSLContext | None,
    state: SessionState,
    timeout: float,
    passthrough: bool = False,
    redirect: int | None = None,
) -> ReadyUplink:
    """A ready uplink connection for a client: connected, authenticated, session replayed (see replay_commands)."""
    connection: UplinkConnection = await open_uplink(config, ssl_context, timeout)
    subscriptions, confirmations = subscribe_commands(state)
    try:
        forward, leftover, client_id = await connection.handshake(
            replay_commands(config, state, passthrough, redirect), subscriptions, confirmations, timeout
        )
    except BaseException:
        connection.abort()
        raise
    return ReadyUplink(connection, forward, leftover, client_id)


async def check_uplink(config: UplinkConfig, ssl_context: ssl.SSLContext | None, timeout: float = 5.0) -> str:
    """Connect, authenticate, ask ROLE and PING, as the proxy would; return what was checked.

    Raises UplinkError, also for a replica unless the section sets allow_replica.
    """
    connection: UplinkConnection = await open_uplink(config, ssl_context, timeout)
    try:
        commands = replay_commands(config, SessionState())
        await connection.handshake(commands + [ROLE, [b"PING"]], [], 0, timeout)
    finally:
        connection.close()
    parts = [f"uplink {config.addr} reachable"]
    if ssl_context is not None:
        parts.append("TLS verified" if ssl_context.verify_mode != ssl.CERT_NONE else "TLS (verification skipped)")
    if config.password is not None:
        parts.append(f"AUTH accepted{' for user ' + config.user if config.user else ''}")
    parts.append(_role_verdict(config, connection.role))
    parts.append("PING answered")
    return ", ".join(parts)


def _describe_role(role: list[Any]) -> str:
    """"master", "slave of 10.0.0.1:6379", "sentinel"... from ROLE's reply."""
    name = role[0].decode(errors="replace") if isinstance(role[0], bytes) else str(role[0])
    if name in ("slave", "replica") and len(role) >= 3:
        host = role[1].decode(errors="replace") if isinstance(role[1], bytes) else str(role[1])
        host = f"[{host}]" if ":" in host else host
        return f"{name} of {host}:{role[2]}"
    return name


def _role_verdict(config: UplinkConfig, role: list[Any] | str | None) -> str:
    """The check's word on ROLE; raises UplinkError for an uplink that is not a master."""
    if not isinstance(role, list):
        # A user whose ACL forbids ROLE (it is in @admin) cannot tell us; refusing
        # would lock such deployments out, so the check passes and says so.
        return f"role not checked (ROLE refused: {role})"
    described = _describe_role(role)
    if role[0] == b"master":
        return "role master"
    if config.allow_replica:
        return f"role {described} (read-only, allowed by allow_replica)"
    kind = "a replica" if role[0] in (b"slave", b"replica") else "not a master"
    raise UplinkError(
        f"uplink {config.addr} is {kind} (role {described}), so every write would fail with READONLY;"
        ' promote it or set "allow_replica": true'
    )
