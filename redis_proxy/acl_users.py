"""Would a target server accept the live sessions' credentials? (listen.auth "passthrough")

In pass-through mode each client authenticates as its own ACL user and the
proxy replays that AUTH on a new uplink connection after a switch. Before a
switch, `check_session_users` asks the target, on a connection of the proxy's
own (uplink.user / uplink.pass), `ACL GETUSER` for every user seen on live
sessions, and reports, by user name only, the users that would be refused:
missing, disabled, or without the password the sessions use (compared as the
SHA-256 digests ACL GETUSER lists: no password is ever sent or shown).

`verify` and `reload` call it; a switchover preflight can too.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import hiredis

from redis_proxy.config import UplinkConfig
from redis_proxy.credentials import Credentials
from redis_proxy.resp import encode_command
from redis_proxy.sockets import set_nodelay
from redis_proxy.uplink import UplinkError, auth_command, open_uplink


class _Probe(asyncio.Protocol):
    """A tiny request/reply connection: send commands, get their decoded replies (errors as hiredis.ReplyError)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.replies: list[Any] = []
        self.wanted = 0
        self.done: asyncio.Future[list[Any]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (value := self.reader.gets()) is not False:
            self.replies.append(value)
        if self.done is not None and not self.done.done() and len(self.replies) >= self.wanted:
            self.done.set_result(self.replies[: self.wanted])

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(UplinkError("the uplink closed the connection"))

    async def call(self, commands: list[list[bytes]], timeout: float) -> list[Any]:
        assert self.transport is not None
        self.replies, self.wanted = [], len(commands)
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(b"".join(map(encode_command, commands)))
        try:
            return await asyncio.wait_for(self.done, timeout)
        except TimeoutError:
            raise UplinkError(f"the uplink did not answer within {timeout:g} s") from None


def _fields(reply: list[Any]) -> dict[bytes, Any]:
    """ACL GETUSER's flat [name, value, ...] reply as a dict (RESP2)."""
    return {reply[i]: reply[i + 1] for i in range(0, len(reply) - 1, 2) if isinstance(reply[i], bytes)}


def _refused(count: int) -> str:
    """What a problem means for the clients."""
    return f"{count} live session{'s' if count != 1 else ''} authenticated as this user would be refused after a switch"


def users_of(credentials: Iterable[Credentials]) -> dict[str, list[Credentials]]:
    """The live sessions' credentials by user name ("default" for `AUTH <password>`)."""
    users: dict[str, list[Credentials]] = {}
    for item in credentials:
        users.setdefault(item.user_name, []).append(item)
    return users


async def check_session_users(
    target: UplinkConfig,
    ssl_context: ssl.SSLContext | None,
    credentials: Iterable[Credentials],
    timeout: float = 5.0,
    unauthenticated: int = 0,
) -> list[str]:
    """Problems (one readable line each, by user name) the target would have with these sessions' credentials.

    Empty when every user exists there, is enabled and accepts the password its
    sessions use, and, when `unauthenticated` live sessions never sent AUTH
    (they are the default user without a password, as on a direct connection),
    when the target's default user is on and needs no password. No connection
    is opened when there is nothing to check.
    """
    users = users_of(credentials)
    if not users and not unauthenticated:
        return []
    where = target.addr
    try:
        probe: _Probe = await open_uplink(target, ssl_context, timeout, factory=_Probe)
    except UplinkError as exc:
        return [f"cannot check the sessions' users on {where}: {exc}"]
    try:
        auth = auth_command(target)
        if auth is not None:
            (reply,) = await probe.call([auth], timeout)
            if isinstance(reply, hiredis.ReplyError):
                return [f"cannot check the sessions' users on {where}: the uplink refused AUTH: {reply}"]
        names = sorted(set(users) | ({"default"} if unauthenticated else set()))
        replies = await probe.call([[b"ACL", b"GETUSER", name.encode()] for name in names], timeout)
    except UplinkError as exc:
        return [f"cannot check the sessions' users on {where}: {exc}"]
    finally:
        if probe.transport is not None:
            probe.transport.close()
    problems: list[str] = []
    for name, reply in zip(names, replies, strict=True):
        if name == "default" and unauthenticated:
            problems.extend(_default_problems(reply, unauthenticated, where))
        if name not in users:
            continue
        sessions = users[name]
        if isinstance(reply, hiredis.ReplyError):
            # NOPERM (uplink.user may not run ACL GETUSER) or a Redis without ACL (before 6).
            problems.append(f"cannot check user {name!r} on {where}: ACL GETUSER refused: {reply}")
            continue
        if reply is None:
            problems.append(f"user {name!r} does not exist on {where}: {_refused(len(sessions))}")
            continue
        if not isinstance(reply, list):
            problems.append(f"cannot check user {name!r} on {where}: unexpected reply to ACL GETUSER")
            continue
        fields = _fields(reply)
        flags = set(fields.get(b"flags") or [])
        if b"on" not in flags:
            problems.append(f"user {name!r} is disabled (off) on {where}: {_refused(len(sessions))}")
            continue
        if b"nopass" in flags:
            continue
        accepted = {digest.decode() for digest in fields.get(b"passwords") or [] if isinstance(digest, bytes)}
        refused = sum(1 for item in sessions if item.password_digest() not in accepted)
        if refused:
            problems.append(f"user {name!r} does not accept the password its sessions use on {where}: {_refused(refused)}")
    return problems


def _default_problems(reply: Any, sessions: int, where: str) -> list[str]:
    """Sessions that never sent AUTH are the default user with no password: the target must let them in so."""
    if isinstance(reply, hiredis.ReplyError):
        return [f"cannot check the default user on {where}: ACL GETUSER refused: {reply}"]
    flags = set(_fields(reply).get(b"flags") or []) if isinstance(reply, list) else set()
    if b"on" in flags and b"nopass" in flags:
        return []
    plural = "s" if sessions != 1 else ""
    return [
        f"the default user on {where} is disabled or needs a password: {sessions} live session{plural} that never"
        " sent AUTH would get NOAUTH after a switch"
    ]
