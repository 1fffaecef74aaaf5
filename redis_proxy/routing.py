"""How the proxy handles the commands it looks at, one by one.

Most commands are forwarded untouched; the ones here are answered by the
proxy (AUTH, refusals), change state the proxy must replay on a new uplink
(SELECT, HELLO, CLIENT SETNAME, READONLY, subscriptions), or open and close
transactions. `CommandRouting` is a mixin of `ClientSession` (session.py):
it reads and updates the session's state; the session does the I/O.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from redis_proxy.commands import CLIENT_REFUSED, REFUSED_REASONS, Kind, kind_of
from redis_proxy.resp import Reply, ReplyFramer, encode_command
from redis_proxy.uplink import SessionState

if TYPE_CHECKING:
    from redis_proxy.session import ClientSession

NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
NO_PASSWORD = (
    b"-ERR AUTH <password> called without any password configured for the default user. "
    b"Are you sure your configuration is correct?\r\n"
)


class _Local:
    """A reply the proxy answers itself, with what to do once it has been sent."""

    __slots__ = ("data", "then")

    def __init__(self, data: bytes, then: Callable[[], None] | None = None) -> None:
        self.data = data
        self.then = then


_SUBSCRIBED = object()


class _SubscribeGroup:
    """A RESP2 (P|S)SUBSCRIBE of n channels: n confirmations, unless the server
    refuses it (ACL), which is one error. The first reply decides."""

    __slots__ = ("session", "target", "added", "count", "starts_pubsub", "rest")

    def __init__(self, session: ClientSession, target: set[bytes], added: list[bytes], count: int, starts_pubsub: bool) -> None:
        self.session = session
        self.target = target
        self.added = added
        self.count = count
        self.starts_pubsub = starts_pubsub
        self.rest: list | None = None  # the pending entry for confirmations 2..n

    def __call__(self, reply: Reply) -> None:
        if not reply.is_error:
            return
        session = self.session
        pending = session.pending
        if self.rest is not None and len(pending) > 1 and pending[1] is self.rest:
            del pending[1]
            session.outstanding -= self.rest[0]
            session.ctl.inflight -= self.rest[0]
        self.target.difference_update(self.added)
        session._sub_sent = session.state.subscribed
        session._sub_recv = session.state.subscribed


def _error(text: str) -> bytes:
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"


class CommandRouting:
    """The per-command decisions of a client session (see ClientSession for the state it uses)."""

    if TYPE_CHECKING:  # provided by ClientSession
        proxy: Any
        ctl: Any
        stats: Any
        state: SessionState
        authed: bool
        in_multi: bool
        watching: bool
        in_txn: bool
        replies: ReplyFramer
        transport: Any
        closing: bool
        _sub_sent: bool
        _sub_recv: bool
        _pushes: bool
        _txn_effects: list[Callable[[Reply], None]]

        def _drop_uplink(self) -> None: ...

    # -- commands the proxy looks at ----------------------------------------------

    def _route(self, command: list[bytes]) -> _Local | tuple[object, int, bytes | None] | None:
        """What to do with one command: None to forward it as plain, a _Local
        reply, or (special, replies expected, bytes to send instead or None)."""
        kind = kind_of(command[0])
        if not self.authed and kind not in (Kind.AUTH, Kind.HELLO, Kind.QUIT, Kind.RESET):
            self.stats.proxy_errors += 1
            return _Local(NOAUTH)
        if kind == Kind.PLAIN:
            return None
        name = command[0].upper()
        if kind == Kind.AUTH:
            return self._auth(command[1:], name)
        if kind == Kind.HELLO:
            return self._hello(command)
        if kind == Kind.QUIT:
            return _Local(b"+OK\r\n", self._close_after_write)
        if kind == Kind.RESET:
            return _Local(b"+RESET\r\n", self._reset)
        if kind == Kind.REFUSED:
            self.stats.proxy_errors += 1
            return _Local(_error(f"ERR {name.decode()} is not supported by redis-proxy: {REFUSED_REASONS[name]}"))
        if kind == Kind.CLIENT and len(command) > 1:
            sub = command[1].upper()
            if sub in CLIENT_REFUSED:
                self.stats.proxy_errors += 1
                reason = REFUSED_REASONS[b"CLIENT " + sub]
                return _Local(_error(f"ERR CLIENT {sub.decode()} is not supported by redis-proxy: {reason}"))
            if sub == b"SETNAME" and len(command) == 3:
                value = command[2]
                return self._tracked(lambda r: setattr(self.state, "name", value or None))
            return self._tracked(None)
        if kind == Kind.SELECT:
            return self._tracked(lambda r: self._selected(command))
        if kind in (Kind.READONLY, Kind.READWRITE):
            readonly = kind == Kind.READONLY
            return self._tracked(lambda r: setattr(self.state, "readonly", readonly))
        if kind == Kind.MULTI:
            self._set_txn(True, self.watching)
        elif kind in (Kind.EXEC, Kind.DISCARD):
            if self.in_multi:  # without MULTI, Redis refuses them and a WATCH stays in force
                self._set_txn(False, False)
                if kind == Kind.EXEC:
                    return (self._exec_reply, 1, None)
                self._txn_effects = []
        elif kind == Kind.WATCH:
            self._set_txn(self.in_multi, self.watching or not self.in_multi)
        elif kind == Kind.UNWATCH:
            self._set_txn(self.in_multi, False if not self.in_multi else self.watching)
        elif kind in (Kind.SUBSCRIBE, Kind.UNSUBSCRIBE):
            if self.in_multi:
                self.stats.proxy_errors += 1
                return _Local(_error(f"ERR {name.decode()} inside MULTI is not supported by redis-proxy"))
            if kind == Kind.SUBSCRIBE:
                return self._subscribe(name, command[1:])
            return self._unsubscribe(name, command[1:])
        return self._tracked(None)

    def _tracked(self, on_ok: Callable[[Reply], None] | None) -> tuple[object, int, None] | None:
        if on_ok is None:
            return None
        in_multi = self.in_multi

        def on_reply(reply: Reply) -> None:
            if reply.is_error:
                return
            if in_multi:  # only +QUEUED: it happens if and when EXEC runs
                self._txn_effects.append(on_ok)
            else:
                on_ok(reply)

        return (on_reply, 1, None)

    def _exec_reply(self, reply: Reply) -> None:
        effects, self._txn_effects = self._txn_effects, []
        if not reply.is_error and not reply.is_nil:  # EXEC ran the transaction
            for effect in effects:
                effect(reply)

    def _auth(self, args: list[bytes], name: bytes) -> _Local:
        expected = self.proxy.config.listen.password
        if not args or len(args) > 2:
            self.stats.proxy_errors += 1
            return _Local(b"-ERR wrong number of arguments for 'auth' command\r\n")
        if expected is None:
            self.stats.proxy_errors += 1
            return _Local(NO_PASSWORD)
        if not hmac.compare_digest(args[-1], expected.encode()):
            self.stats.proxy_errors += 1
            return _Local(WRONGPASS)
        self.authed = True
        return _Local(b"+OK\r\n")

    def _hello(self, command: list[bytes]) -> _Local | tuple[object, int, bytes | None]:
        """HELLO [protover [AUTH user pass] [SETNAME name]]: AUTH is checked here, the rest goes upstream."""
        args = command[1:]
        forward = [command[0]]
        version: bytes | None = None
        name: bytes | None = None
        if args:
            version = args[0]
            forward.append(version)
            i = 1
            while i < len(args):
                option = args[i].upper()
                if option == b"AUTH" and i + 2 < len(args):
                    result = self._auth([args[i + 1], args[i + 2]], b"AUTH")
                    if result.data != b"+OK\r\n":
                        return result
                    i += 3
                elif option == b"SETNAME" and i + 1 < len(args):
                    name = args[i + 1]
                    forward += [args[i], name]
                    i += 2
                else:
                    return _Local(_error(f"ERR Syntax error in HELLO option '{args[i].decode(errors='replace')}'"))
        if not self.authed:
            self.stats.proxy_errors += 1
            return _Local(
                b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
                b"<proto> AUTH <user> <pass> option can be used to authenticate the client and select the "
                b"RESP protocol version at the same time\r\n"
            )
        # Commands pipelined behind HELLO are already in the new protocol:
        # take it now, and go back if HELLO is refused.
        previous = self.state.resp3
        if version is not None and version in (b"2", b"3"):
            self.state.resp3 = version == b"3"

        def on_reply(reply: Reply) -> None:
            if reply.is_error:
                self.state.resp3 = previous
                return
            if name is not None:
                self.state.name = name or None
            self._update_pushes()

        return (on_reply, 1, encode_command(forward))

    def _selected(self, command: list[bytes]) -> None:
        try:
            self.state.db = int(command[1])
        except (IndexError, ValueError):
            pass

    def _subscription_set(self, name: bytes) -> set[bytes]:
        if name in (b"SUBSCRIBE", b"UNSUBSCRIBE"):
            return self.state.channels
        if name in (b"PSUBSCRIBE", b"PUNSUBSCRIBE"):
            return self.state.patterns
        return self.state.shard_channels

    def _subscribe(self, name: bytes, channels: list[bytes]) -> tuple[object, int, None] | None:
        if not channels:
            return None  # Redis answers the arity error
        target = self._subscription_set(name)
        added = [channel for channel in dict.fromkeys(channels) if channel not in target]
        target.update(channels)
        if self.state.resp3:
            self._pushes = True
            return (None, 0, None)  # confirmations are pushes, not replies
        # RESP2: one confirmation per channel. From the first one on, the
        # stream may carry messages, which answer no command.
        group = _SubscribeGroup(cast("ClientSession", self), target, added, len(channels), starts_pubsub=not self._sub_sent)
        self._sub_sent = True
        return (group, len(channels), None)

    def _unsubscribe(self, name: bytes, channels: list[bytes]) -> tuple[object, int, None]:
        target = self._subscription_set(name)
        # One confirmation per channel named, or per channel dropped, or one
        # (with no channel) when there was none to drop.
        confirmations = len(channels) if channels else max(1, len(target))
        if channels:
            target.difference_update(channels)
        else:
            target.clear()
        if self.state.resp3:
            self._pushes = True  # confirmations are pushes, even with nothing subscribed
            return (None, 0, None)
        self._sub_sent = self.state.subscribed
        return (None, confirmations, None)

    def _update_pushes(self) -> None:
        # Once a RESP3 connection has used pub/sub, pushes may come at any time.
        self._pushes = self.state.resp3 and (self.state.subscribed or self._pushes)

    def _set_txn(self, in_multi: bool, watching: bool) -> None:
        was = self.in_txn
        self.in_multi, self.watching = in_multi, watching
        self.in_txn = in_multi or watching
        if self.in_txn != was:
            # Only the count moves here; whether the proxy is idle is checked
            # once the command that ended the transaction is in flight.
            self.ctl.txn += 1 if self.in_txn else -1

    def _close_after_write(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _reset(self) -> None:
        """RESET: a fresh connection's state, and a fresh uplink connection on the next command."""
        self._drop_uplink()
        self.state = SessionState()
        self._sub_sent = self._sub_recv = self._pushes = False
        self._set_txn(False, False)
        self._txn_effects = []
        self.authed = self.proxy.config.listen.password is None
        self.replies = ReplyFramer()
