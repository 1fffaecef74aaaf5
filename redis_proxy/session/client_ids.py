"""Client ids: the proxy hands out its own, stable across switches, and maps them to and from the uplink's.

Every session gets a proxy id when it is created (`ClientIds.register`).
What a client learns as its id (CLIENT ID, HELLO's `id`, CLIENT INFO, its
line in CLIENT LIST) is that id; ids a client passes in (CLIENT TRACKING
REDIRECT, CLIENT KILL ID, CLIENT UNBLOCK, CLIENT LIST ID) are mapped to the
named session's uplink connection on the same server, and ids coming out
(CLIENT GETREDIR, TRACKINGINFO's `redirect`, `id=`/`redir=` in CLIENT
INFO/LIST) back to proxy ids. Pure Python: the registry is shared by the
proxy's sessions and injected into each core.

Proxy ids count up from `PROXY_ID_BASE`, far above the ids a Redis server
hands out (they count up from 1), so an id a client passes in is never
ambiguous: one in the proxy's range names a session, and one that names no
session with a connection on that server is sent as `NO_SUCH_CLIENT`, which
no Redis client has, so Redis answers with its own error ("No such client",
"The client ID you want redirect to does not exist") or its own count of 0;
any other id is a connection that is not the proxy's (the proxy's own
connections, a direct client, as CLIENT LIST shows them) and is passed on as
it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

# LLONG_MAX: a valid integer for every CLIENT subcommand, and no connection's id.
NO_SUCH_CLIENT = b"9223372036854775807"
PROXY_ID_BASE = 10**12

# Replies held back whole and rewritten (the `kind` of a Rewrite pending entry).
REWRITE_ID, REWRITE_HELLO, REWRITE_INFO, REWRITE_GETREDIR, REWRITE_TRACKINGINFO = 1, 2, 3, 4, 5
REWRITE_LEARN_ID = 6  # the proxy's own CLIENT ID: the uplink id is recorded, the reply swallowed


@dataclass(slots=True)
class _Client:
    generation: int = -1  # the uplink generation (server) of `uplink_id`
    uplink_id: int | None = None
    wanted: bool = False  # its id was asked (CLIENT ID): it may be named as a redirect target
    watchers: list[Callable[[], None]] = field(default_factory=list)


class ClientIds:
    """Proxy ids of live sessions, and each one's current uplink connection id."""

    def __init__(self) -> None:
        self._last = PROXY_ID_BASE
        self._clients: dict[int, _Client] = {}
        self._by_uplink: dict[tuple[int, int], int] = {}  # (generation, uplink id) -> proxy id
        self._redirects: dict[int, int] = {}  # tracking session -> its REDIRECT target (proxy ids)
        self._push_hooks: dict[int, Callable[[], None]] = {}

    def register(self, on_pushes: Callable[[], None] | None = None) -> int:
        """A new session; `on_pushes` is called when another session names it as a redirect target."""
        self._last += 1
        pid = self._last
        self._clients[pid] = _Client()
        if on_pushes is not None:
            self._push_hooks[pid] = on_pushes
        return pid

    def adopt(self, pid: int, wanted: int) -> None:
        """A session handed over by another process (takeover) keeps the id its client knows: `pid` becomes `wanted`."""
        if wanted == pid:
            return
        if wanted in self._clients:
            raise ValueError(f"client id {wanted} is already in use")
        self._clients[wanted] = self._clients.pop(pid)
        hook = self._push_hooks.pop(pid, None)
        if hook is not None:
            self._push_hooks[wanted] = hook
        self._last = max(self._last, wanted)  # ids handed out later never collide with it

    @property
    def last(self) -> int:
        """The last id handed out (a takeover's new process goes on from it)."""
        return self._last

    def skip_past(self, last: int) -> None:
        """Hand out only ids above `last` from now on (takeover: ids are never reused, as Redis's)."""
        self._last = max(self._last, last)

    def unregister(self, pid: int) -> None:
        self.clear_uplink(pid)
        client = self._clients.pop(pid, None)
        self._push_hooks.pop(pid, None)
        self._redirects.pop(pid, None)
        if client is not None:
            self._notify(client)

    def alive(self, pid: int) -> bool:
        return pid in self._clients

    # -- uplink connections --------------------------------------------------------

    def set_uplink(self, pid: int, generation: int, uplink_id: int | None) -> None:
        client = self._clients.get(pid)
        if client is None:
            return
        self.clear_uplink(pid)
        client.generation, client.uplink_id = generation, uplink_id
        if uplink_id is not None:
            self._by_uplink[(generation, uplink_id)] = pid
        self._notify(client)

    def clear_uplink(self, pid: int) -> None:
        client = self._clients.get(pid)
        if client is None or client.uplink_id is None:
            return
        self._by_uplink.pop((client.generation, client.uplink_id), None)
        client.uplink_id = None
        self._notify(client)

    def uplink_of(self, pid: int) -> tuple[int, int | None]:
        """(generation, uplink id) of a session's connection; (-1, None) for none or no session."""
        client = self._clients.get(pid)
        return (-1, None) if client is None else (client.generation, client.uplink_id)

    def uplink_id(self, pid: int, generation: int) -> int | None:
        client = self._clients.get(pid)
        if client is None or client.generation != generation:
            return None
        return client.uplink_id

    def proxy_id(self, generation: int, uplink_id: int) -> int | None:
        return self._by_uplink.get((generation, uplink_id))

    def watch(self, pid: int, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the session's connection changes or the session ends."""
        client = self._clients.get(pid)
        if client is None:
            callback()
        else:
            client.watchers.append(callback)

    def _notify(self, client: _Client) -> None:
        watchers, client.watchers = client.watchers, []
        for callback in watchers:
            callback()

    # -- tracking redirects ------------------------------------------------------------

    def asked(self, pid: int) -> None:
        """The session asked its own id (CLIENT ID): it may be named as a redirect target from now on."""
        client = self._clients.get(pid)
        if client is not None:
            client.wanted = True

    def naming(self, target: int) -> None:
        """A CLIENT TRACKING ... REDIRECT naming `target` is being sent: invalidations may reach it unasked."""
        hook = self._push_hooks.get(target)
        if hook is not None:
            hook()

    def set_redirect(self, pid: int, target: int) -> None:
        if target:
            self._redirects[pid] = target
        else:
            self._redirects.pop(pid, None)

    def is_target(self, pid: int) -> bool:
        """Whether a live tracking session redirects its invalidations to this one."""
        return pid in self._redirects.values()

    def wanted(self, pid: int) -> bool:
        client = self._clients.get(pid)
        return client is not None and client.wanted


# -- ids in commands -----------------------------------------------------------------------


def map_id_arg(arg: bytes, ids: ClientIds, generation: int) -> bytes:
    """A client id as a client gave it, as the uplink server knows it (NO_SUCH_CLIENT for none)."""
    if not arg.isdigit() or len(arg) > 19 or arg[:1] == b"0" or int(arg) > 9223372036854775807:
        return arg  # not a positive integer as Redis reads one: Redis answers with its own error
    if int(arg) <= PROXY_ID_BASE:
        return arg  # not one of the proxy's ids: a connection of someone else's, as the server knows it
    uplink_id = ids.uplink_id(int(arg), generation)
    return b"%d" % uplink_id if uplink_id is not None else NO_SUCH_CLIENT


def map_client_command(command: list[bytes], map_arg: Callable[[bytes], bytes]) -> list[bytes] | None:
    """CLIENT KILL / UNBLOCK / LIST ID with their id arguments mapped; None when nothing is to map."""
    sub = command[1].upper()
    out = list(command)
    if sub == b"UNBLOCK" and len(command) >= 3:
        out[2] = map_arg(command[2])
    elif sub == b"LIST" and len(command) >= 4 and command[2].upper() == b"ID":
        out[3:] = [map_arg(arg) for arg in command[3:]]
    elif sub == b"KILL" and len(command) >= 4:
        # New form: filter/value pairs; ID's value is an id (the old form, one address, has no id).
        for i in range(2, len(command) - 1, 2):
            if command[i].upper() == b"ID":
                out[i + 1] = map_arg(command[i + 1])
    else:
        return None
    return out if out != command else None


# -- ids in replies --------------------------------------------------------------------------

_HELLO_ID = re.compile(rb"\$2\r\nid\r\n:(\d+)\r\n")
_REDIRECT = re.compile(rb"\$8\r\nredirect\r\n:(\d+)\r\n")
_LINE_ID = re.compile(rb"(?m)^id=(\d+)")
_REDIR = re.compile(rb" redir=(\d+)")


def rewrite_reply(kind: int, data: bytes, own: int, to_proxy: Callable[[int], int | None]) -> bytes:
    """A whole reply with the uplink's client ids replaced by proxy ids (errors and unknown ids untouched).

    `own` is the session's proxy id (CLIENT ID, HELLO); `to_proxy` maps any
    other uplink id, None when it names no session of the proxy.
    """
    if not data or data[:1] in b"-!":
        return data
    if kind == REWRITE_ID:
        return b":%d\r\n" % own if data[:1] == b":" else data
    if kind == REWRITE_HELLO:
        return _HELLO_ID.sub(b"$2\r\nid\r\n:%d\r\n" % own, data, count=1)
    if kind == REWRITE_GETREDIR:
        if data[:1] == b":" and data[1:2].isdigit() and int(data[1:-2]) > 0:
            mapped = to_proxy(int(data[1:-2]))
            return b":%d\r\n" % mapped if mapped is not None else data
        return data
    if kind == REWRITE_TRACKINGINFO:
        return _REDIRECT.sub(lambda m: b"$8\r\nredirect\r\n:%d\r\n" % _mapped(m, to_proxy), data, count=1)
    if kind == REWRITE_INFO:
        return _rewrite_info(data, to_proxy)
    return data


def _mapped(match: re.Match[bytes], to_proxy: Callable[[int], int | None]) -> int:
    uplink_id = int(match.group(1))
    mapped = to_proxy(uplink_id) if uplink_id > 0 else None
    return mapped if mapped is not None else uplink_id


def _rewrite_info(data: bytes, to_proxy: Callable[[int], int | None]) -> bytes:
    """CLIENT INFO / LIST: a bulk string ($) or verbatim string (=, `txt:` first) of `id=N ... redir=N` lines."""
    if data[:1] not in b"$=":
        return data
    header_end = data.find(b"\r\n")
    if header_end < 0 or not data.endswith(b"\r\n"):
        return data
    body = data[header_end + 2 : -2]
    prefix = b""
    if data[:1] == b"=":
        prefix, body = body[:4], body[4:]  # "txt:"
    body = _LINE_ID.sub(lambda m: b"id=%d" % _mapped(m, to_proxy), body)
    body = _REDIR.sub(lambda m: b" redir=%d" % _mapped(m, to_proxy), body)
    body = prefix + body
    return data[:1] + b"%d\r\n" % len(body) + body + b"\r\n"
