"""One client connection and its own uplink connection.

The session frames what the client sends into whole commands and forwards
them upstream, in one write per read, when the controller's gate is open.
For every forwarded batch it records a pending entry; replies are counted off
against those entries as they stream back to the client, so at every moment
the session knows how many of its commands are in flight.

Pending entries are small lists, `[count, sent_at, special]`:
- `special is None`: `count` plain commands whose replies are only counted;
- a callable: one command whose reply the session inspects (SELECT, HELLO...);
- `_Local`: a reply the proxy itself answers (AUTH, errors), emitted in order
  once every reply before it has gone out; nothing is forwarded past it until
  then, so replies from upstream never need to be split;
- `_SUBSCRIBED`: from here on (RESP2) the stream carries pub/sub messages.

What to do with each command the proxy looks at is decided in routing.py.
This module keeps forwarding, reply accounting, the time limit and the uplink
connection's life together: they share the state of the hot path, which is
why it is longer than the other modules.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import hiredis

from redis_proxy.sockets import set_nodelay
from redis_proxy.commands import is_message, is_unsubscribe_reply
from redis_proxy.resp import Batch, ProtocolError, Reply, ReplyFramer, RequestFramer, as_reply, encode_command, is_error_value
from redis_proxy.routing import _SUBSCRIBED, CommandRouting, _error, _Local, _SubscribeGroup
from redis_proxy.uplink import SessionState, UplinkConnection, UplinkError, connect_session

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

log = logging.getLogger("redis_proxy")

# Held commands (paused, or waiting for an uplink connection) beyond this many
# bytes stop the proxy reading from that client until they drain.
HELD_BYTES_LIMIT = 4 * 1024 * 1024
CONNECT_TIMEOUT = 10.0

# Names of the commands that need more than counting; a batch without any of
# these (in upper or lower case) takes the fast path.
_SPECIAL_NAMES = frozenset(
    n for name in (
        b"AUTH", b"HELLO", b"SELECT", b"MULTI", b"EXEC", b"DISCARD", b"WATCH", b"UNWATCH", b"SUBSCRIBE",
        b"PSUBSCRIBE", b"SSUBSCRIBE", b"UNSUBSCRIBE", b"PUNSUBSCRIBE", b"SUNSUBSCRIBE", b"QUIT", b"CLIENT",
        b"READONLY", b"READWRITE", b"RESET", b"MONITOR", b"SYNC", b"PSYNC", b"REPLCONF",
    ) for n in (name, name.lower())
)


def _has_special(commands: list[list[bytes]]) -> bool:
    special = _SPECIAL_NAMES
    for command in commands:
        name = command[0]
        if name in special or (not name.isupper() and not name.islower() and name.upper() in special):
            return True
    return False


def _is_push(value: object) -> bool:
    return type(value) is hiredis.PushNotification or (type(value) is Reply and value.kind == 62)


class ClientSession(CommandRouting, asyncio.Protocol):
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.ctl = proxy.controller
        self.stats = proxy.stats
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.framer = RequestFramer()
        self.replies = ReplyFramer()
        self.state = SessionState()
        self.authed = proxy.config.listen.password is None
        self.uplink: UplinkConnection | None = None
        self.uplink_generation = -1
        self._connect_task: asyncio.Task[None] | None = None
        # Commands not yet forwarded: (args, raw bytes if known, arrival time);
        # or (None, a reply of the proxy's own that must keep its place, time).
        self.queue: deque[tuple[list[bytes] | None, Any, float]] = deque()
        self._queued_bytes = 0
        self.pending: deque[list] = deque()
        self.outstanding = 0  # forwarded commands without a complete reply: this session's share of in-flight
        self.in_multi = False
        self.watching = False
        self.in_txn = False
        self._sub_sent = False  # RESP2 pub/sub mode, as of the commands forwarded
        self._sub_recv = False  # ... and as of the replies received
        self._txn_effects: list[Callable[[Reply], None]] = []  # state changes queued inside MULTI
        self._deferred: list[_Local] = []  # proxy replies waiting for the client stream's frame boundary
        self._switch_due = False  # a switch waits for the frame boundary too
        self._pushes = False  # RESP3 with subscriptions: pushes can arrive between replies
        self._direct = False  # nothing unusual: whole batches may go straight upstream
        self._barrier = 0  # proxy-answered replies waiting for earlier upstream replies
        self.closing = False
        self._broken = False  # a protocol error was seen: read nothing more
        self._timer: asyncio.TimerHandle | None = None
        self._client_paused = False  # client's writes are full: stop reading the uplink
        self._reading_paused_by: set[str] = set()

    # -- client side: asyncio.Protocol ---------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
        set_nodelay(transport)
        self.proxy.sessions.add(self)
        self.stats.clients_total += 1
        if self.ctl.closing:
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.stats.bytes_from_clients += len(data)
        if self._broken:
            return
        try:
            batches = self.framer.feed(data)
        except ProtocolError as exc:
            self._protocol_error(exc)
            return
        for batch in batches:
            self._on_batch(batch)

    def _protocol_error(self, exc: ProtocolError) -> None:
        """Like Redis: the whole commands before the bad one run, their replies
        come first, then the error, then the connection closes."""
        self.stats.proxy_errors += 1
        log.info("client %s: protocol error: %s", self.peer, exc)
        self._broken = True
        if self.transport is not None:
            self.transport.pause_reading()
        for batch in getattr(exc, "batches", []):
            self._on_batch(batch)
        error = _Local(_error(f"ERR Protocol error: {exc}"), self._close_after_write)
        if self.queue:  # behind the held commands, in order
            self.queue.append((None, error, self.loop.time()))
            self._drain()
        else:
            self._reply_local(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.proxy.sessions.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._connect_task is not None:
            self._connect_task.cancel()
        self._drop_uplink()
        self._settle_outstanding()
        self.queue.clear()
        self._set_txn(False, False)
        if not self.ctl.open:
            self.ctl.check_idle()

    def pause_writing(self) -> None:
        # The client reads slower than the uplink answers: stop reading the uplink.
        self._client_paused = True
        if self.uplink is not None and self.uplink.transport is not None:
            self.uplink.transport.pause_reading()

    def resume_writing(self) -> None:
        self._client_paused = False
        if self.uplink is not None and self.uplink.transport is not None:
            self.uplink.transport.resume_reading()

    # -- uplink side: UplinkSink -----------------------------------------------

    def uplink_pause_writing(self) -> None:
        self._pause_reading("uplink")

    def uplink_resume_writing(self) -> None:
        self._resume_reading("uplink")

    def uplink_lost(self, uplink: UplinkConnection, exc: Exception | None) -> None:
        if uplink is not self.uplink or self.closing:
            return
        self.uplink = None
        self._direct = False
        self.stats.uplink_failures += 1
        reason = f"{exc}" if exc else "the uplink closed the connection"
        if self.outstanding or self.in_txn or self._sub_sent or self.state.subscribed or self.replies.in_reply():
            # Replies are owed, or server-side state (transaction, WATCH,
            # subscriptions) is gone: the client must know.
            log.warning("client %s: uplink connection lost (%s); closing the client", self.peer, reason)
            self._fail(f"ERR upstream connection lost: {reason}", owed=not self.replies.in_reply())
        else:
            log.info("client %s: idle uplink connection closed (%s); will reconnect on the next command", self.peer, reason)

    def uplink_data(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(data)
        self.stats.bytes_to_clients += len(data)
        try:
            replies = self.replies.feed(data)
        except ProtocolError as exc:
            log.error("client %s: invalid reply from the uplink (%s); closing", self.peer, exc)
            self._fail(None)
            return
        if (self._deferred or self._switch_due) and not self.replies.in_reply():
            self._at_frame_boundary()
        if not replies:
            return
        if 45 in data:  # b"-": only then can there be error replies to count
            self.stats.error_replies += sum(map(is_error_value, replies))
        if self.proxy.log_messages:
            for value in replies:
                log.info("client %s <- %s", self.peer, _describe(value))
        pending = self.pending
        if pending and not self._sub_recv and not self._pushes:
            head = pending[0]
            if head[2] is None and head[0] == len(replies):
                # The hot path: these replies answer exactly the oldest batch.
                pending.popleft()
                self.stats.latency.observe(self.loop.time() - head[1])
                count = head[0]
                self.outstanding -= count
                ctl = self.ctl
                ctl.inflight -= count
                if pending and not pending[0][0]:
                    self._advance()
                if not ctl.open and not ctl.inflight:
                    ctl.check_idle()
                return
        self._account(replies)

    # -- forwarding -------------------------------------------------------------

    def _on_batch(self, batch: Batch) -> None:
        commands = batch.commands
        if self.proxy.log_messages:
            for command in commands:
                log.info("client %s -> %s", self.peer, _describe_command(command))
        ctl = self.ctl
        raw = batch.raw
        if (
            self._direct
            and ctl.open
            and raw is not None
            and not self.queue
            and self.uplink_generation == ctl.generation
            and not _has_special(commands)
        ):
            # The hot path, written out flat: one write upstream, one pending
            # entry, the counters. Everything else goes through _drain.
            uplink: asyncio.Transport = self.uplink.transport  # type: ignore[union-attr,assignment]
            if len(raw) == 1:
                uplink.write(raw[0])
            else:
                uplink.writelines(raw)
            count = len(commands)
            self.pending.append([count, self.loop.time(), None])
            self.outstanding += count
            ctl.inflight += count
            stats = self.stats
            stats.commands += count
            stats.count_names(commands)
            # Forwarded in the callback that received it: the proxy added
            # next to nothing, which is the histogram's lowest bucket.
            delay = stats.proxy_delay
            delay.counts[0] += 1
            delay.count += 1
            if self._timer is None and ctl.time_limit:
                self._arm_timer()
            return
        now = self.loop.time()
        if len(commands) == 1:
            self._hold(commands[0], batch.raw, now)
        else:
            for command in commands:
                self._hold(command, None, now)
        self._drain()

    def _hold(self, command: list[bytes], raw: list[bytes] | None, now: float) -> None:
        self.queue.append((command, raw, now))
        self._queued_bytes += sum(map(len, raw)) if raw is not None else sum(map(len, command))
        if self._queued_bytes > HELD_BYTES_LIMIT:
            self._pause_reading("held")

    def _forward(self, raw: list[bytes], count: int, now: float, special: object = None) -> None:
        uplink = self.uplink
        assert uplink is not None and uplink.transport is not None
        if len(raw) == 1:
            uplink.transport.write(raw[0])
        else:
            uplink.transport.writelines(raw)
        self._expect(count, now, special)

    def _expect(self, count: int, now: float, special: object = None) -> None:
        """Record commands just forwarded as in flight (`count` replies expected)."""
        if type(special) is _SubscribeGroup:
            if special.starts_pubsub:
                # Pub/sub mode starts with the first confirmation, once the
                # replies before it are through.
                if self.pending:
                    self.pending.append([0, now, _SUBSCRIBED])
                else:
                    self._sub_recv = True
            # Two entries: the first confirmation (which may be a refusal),
            # then the rest, which a refusal takes away again.
            self.pending.append([1, now, special])
            if count > 1:
                special.rest = [count - 1, now, None]
                self.pending.append(special.rest)
            self.outstanding += count
            self.ctl.inflight += count
            self.stats.commands += 1
            if self._timer is None and self.ctl.time_limit:
                self._arm_timer()
            return
        if count:
            self.pending.append([count, now, special])
            self.outstanding += count
            self.ctl.inflight += count
            self.stats.commands += count
            if self._timer is None and self.ctl.time_limit:
                self._arm_timer()
        elif special is not None:
            self.pending.append([0, now, special])

    def _may_send(self) -> bool:
        if self.closing or self._barrier:
            return False
        ctl = self.ctl
        if not ctl.open and not (self.in_txn and ctl.state == "pausing"):
            return False
        if self.uplink is None or self.uplink_generation != ctl.generation:
            self._connect()
            return False
        return True

    def _drain(self) -> None:
        """Forward (or answer) held commands, in order, for as long as the gate allows."""
        out: list[bytes] = []
        count = 0
        now = self.loop.time()

        def flush() -> None:
            nonlocal out, count
            if out:
                self._forward(out, count, now)
                out, count = [], 0

        while self.queue and self._may_send():
            command, raw, arrived = self.queue.popleft()
            if command is None:
                flush()
                self._reply_local(raw)
                continue
            self._queued_bytes -= sum(map(len, raw)) if raw is not None else sum(map(len, command))
            self.stats.proxy_delay.observe(now - arrived)
            action = self._route(command)
            if action is None:  # plain: forward, counted
                out.extend(raw if raw is not None else (encode_command(command),))
                count += 1
                self.stats.count_names([command])
            elif isinstance(action, _Local):
                flush()
                self._reply_local(action)
            else:
                flush()
                special, replies, wire = action
                self._forward([wire] if wire is not None else (raw or [encode_command(command)]), replies, now, special)
                self.stats.count_names([command])
        flush()
        if self._queued_bytes <= HELD_BYTES_LIMIT // 2:
            self._resume_reading("held")
        self._update_direct()
        if not self.ctl.open:
            self.ctl.check_idle()

    def _reply_local(self, local: _Local) -> None:
        if self.pending:
            self.pending.append([0, self.loop.time(), local])
            self._barrier += 1
        else:
            self._emit_local(local)

    def _emit_local(self, local: _Local) -> None:
        if self.replies.in_reply():
            # Part of an upstream frame (a pub/sub message) is already out:
            # this reply goes after it.
            self._deferred.append(local)
            return
        if self.transport is not None and not self.closing:
            self.transport.write(local.data)
            self.stats.bytes_to_clients += len(local.data)
            if self.proxy.log_messages:
                log.info("client %s <- %s (answered by the proxy)", self.peer, _describe(local.data))
        if local.then is not None:
            local.then()

    def _update_direct(self) -> None:
        self._direct = (
            self.authed
            and not self._sub_sent
            and not self._pushes
            and not self._barrier
            and self.uplink is not None
            and not self.closing
        )

    # -- replies ---------------------------------------------------------------------

    def _account(self, replies: list) -> None:
        """Count replies off against pending entries, in order."""
        pending = self.pending
        i, n = 0, len(replies)
        answered = 0
        while i < n:
            if self._sub_recv:  # RESP2 pub/sub: messages answer no command
                reply = as_reply(replies[i])
                if is_message(reply.first):
                    i += 1
                    continue
                if is_unsubscribe_reply(reply.first) and reply.last_int == 0:
                    self._sub_recv = False  # the replies after this one are ordinary again
            if self._pushes and _is_push(replies[i]):
                i += 1
                continue
            if not pending:
                log.error("client %s: a reply arrived for no command; closing", self.peer)
                self._fail(None)
                return
            head = pending[0]
            special = head[2]
            if special is None:
                # Where messages may come between replies, one at a time.
                take = 1 if self._pushes or self._sub_recv else head[0]
                if take > n - i:
                    take = n - i
                head[0] -= take
                i += take
                answered += take
            else:  # one tracked command
                special(as_reply(replies[i]))
                head[0] = 0
                i += 1
                answered += 1
            if head[0] == 0:
                pending.popleft()
                self.stats.latency.observe(self.loop.time() - head[1])
                self._advance()
        self.outstanding -= answered
        ctl = self.ctl
        ctl.inflight -= answered
        if not ctl.open and ctl.inflight == 0:
            ctl.check_idle()

    def _advance(self) -> None:
        """Handle the entries that wait for no reply once they reach the head."""
        pending = self.pending
        released = False
        while pending and pending[0][0] == 0:
            special = pending.popleft()[2]
            if special is _SUBSCRIBED:
                self._sub_recv = True
            elif isinstance(special, _Local):
                self._barrier -= 1
                released = True
                self._emit_local(special)
        if released and self.queue:
            self._drain()
        elif released:
            self._update_direct()

    def _settle_outstanding(self) -> None:
        """Forget this session's in-flight commands (it is closing): the proxy no longer waits for them."""
        if self.outstanding:
            self.ctl.inflight -= self.outstanding
            self.outstanding = 0
            if not self.ctl.open and self.ctl.inflight == 0:
                self.ctl.check_idle()
        self.pending.clear()

    # -- time limit --------------------------------------------------------------------

    def _arm_timer(self) -> None:
        for entry in self.pending:
            if entry[0]:
                self._timer = self.loop.call_at(entry[1] + self.ctl.time_limit, self._on_timer)
                return

    def rearm_timer(self) -> None:
        """read_time_limit_ms changed: the next deadline is computed with the new limit."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.ctl.time_limit and self.outstanding:
            self._arm_timer()

    def _on_timer(self) -> None:
        self._timer = None
        limit = self.ctl.time_limit
        if not limit or self.closing:
            return
        for entry in self.pending:
            if entry[0]:
                if self.loop.time() >= entry[1] + limit:
                    self.stats.time_limit_kills += 1
                    log.warning("client %s: no reply within read_time_limit_ms=%d; closing", self.peer, limit * 1000)
                    self._fail(f"ERR command timed out after {limit * 1000:.0f} ms (read_time_limit_ms)")
                else:
                    self._timer = self.loop.call_at(entry[1] + limit, self._on_timer)
                return

    # -- uplink connection ------------------------------------------------------------

    def _connect(self) -> None:
        if self._connect_task is None and not self.closing:
            self._connect_task = self.loop.create_task(self._open_uplink(), name=f"uplink-connect {self.peer}")

    async def _open_uplink(self) -> None:
        proxy = self.proxy
        generation = self.ctl.generation
        try:
            uplink, forward, leftover = await connect_session(
                proxy.config.uplink, proxy.uplink_ssl, self.state, CONNECT_TIMEOUT
            )
        except UplinkError as exc:
            self._connect_task = None
            self.stats.uplink_failures += 1
            log.warning("client %s: %s", self.peer, exc)
            self._refuse_held(f"ERR upstream unavailable: {exc}")
            return
        except asyncio.CancelledError:
            self._connect_task = None
            raise
        self._connect_task = None
        if self.closing:
            uplink.close()
            return
        if uplink.closed:  # went away between the handshake and now (e.g. "max clients reached")
            self.stats.uplink_failures += 1
            log.warning("client %s: the uplink closed the new connection: %s", self.peer, uplink.lost)
            self._refuse_held(f"ERR upstream unavailable: {uplink.lost or 'connection closed'}")
            return
        self._drop_uplink()
        self.uplink = uplink
        self.uplink_generation = generation
        self.replies = ReplyFramer()
        unclaimed = uplink.attach(self)
        if self._client_paused and uplink.transport is not None:
            uplink.transport.pause_reading()
        # The replayed subscriptions put the new connection in pub/sub mode.
        self._sub_recv = self._sub_sent = self.state.subscribed and not self.state.resp3
        self._update_pushes()
        for message in forward:
            self.uplink_data(message)
        for data in (leftover, *unclaimed):
            if data:
                self.uplink_data(data)
        if self.generation_stale():
            self._drop_uplink()
            if self.state.subscribed:
                self._connect()
        self._drain()

    def generation_stale(self) -> bool:
        return self.uplink_generation != self.ctl.generation

    def _refuse_held(self, text: str) -> None:
        """The uplink cannot be reached: every held command gets an error, in order."""
        if self.state.subscribed and not self.queue:
            self._fail(text)
            return
        while self.queue:
            command, raw, _ = self.queue.popleft()
            if command is None:
                self._reply_local(raw)
                continue
            self._queued_bytes -= sum(map(len, raw)) if raw is not None else sum(map(len, command))
            self.stats.proxy_errors += 1
            self._reply_local(_Local(_error(text)))
        self._resume_reading("held")

    def _drop_uplink(self) -> None:
        uplink = self.uplink
        self.uplink = None
        self._direct = False
        self._resume_reading("uplink")  # that connection's write buffer goes with it
        if uplink is not None:
            uplink.sink = None
            uplink.close()

    def _at_frame_boundary(self) -> None:
        deferred, self._deferred = self._deferred, []
        for local in deferred:
            self._emit_local(local)
        if self._switch_due:
            self._switch_due = False
            self.switch_uplink()

    def resume(self) -> None:
        """The gate opened: send what was held."""
        if self.queue and not self.closing:
            self._drain()

    def switch_uplink(self) -> None:
        """The uplink changed (the proxy is paused, nothing of ours is in flight): reconnect before the next command.

        Subscribed clients wait for no command of their own, so they reconnect now.
        """
        if self.replies.in_reply():  # a pub/sub message is half through: finish it first
            self._switch_due = True
            return
        self._drop_uplink()
        if self.state.subscribed:
            self._connect()

    # -- failure and flow control -----------------------------------------------------

    def _fail(self, text: str | None, owed: bool = True) -> None:
        """End this client: an error line for what it is owed (when the stream allows), then close both sides."""
        if self.closing:
            return
        self.closing = True
        if text is not None and owed and self.transport is not None and not self.replies.in_reply():
            line = _error(text)
            self.transport.write(line * max(1, self.outstanding))
        self._drop_uplink()
        # The proxy stops waiting for this client now, not when its transport
        # has flushed (a client that does not read may never let it).
        self._settle_outstanding()
        self._set_txn(False, False)
        if not self.ctl.open:
            self.ctl.check_idle()
        if self.transport is not None:
            self.transport.close()

    def end_for_time_limit(self, why: str) -> None:
        self.stats.time_limit_kills += 1
        log.warning("client %s: %s; closing", self.peer, why)
        self._fail(f"ERR {why}")

    def close(self) -> None:
        """Shutdown: close both connections now."""
        self._fail(None)

    def _pause_reading(self, why: str) -> None:
        if not self._reading_paused_by and self.transport is not None:
            self.transport.pause_reading()
        self._reading_paused_by.add(why)

    def _resume_reading(self, why: str) -> None:
        if why in self._reading_paused_by:
            self._reading_paused_by.discard(why)
            if not self._reading_paused_by and self.transport is not None and not self.closing:
                self.transport.resume_reading()


# Commands whose arguments may carry passwords: logged without them.
_SECRET_ARGS = {b"AUTH": 1, b"HELLO": 1, b"CONFIG": 2, b"ACL": 2, b"MIGRATE": 1}


def _describe_command(command: list[bytes]) -> str:
    name = command[0].upper()
    keep = _SECRET_ARGS.get(name)
    if keep is not None:
        shown = " ".join(repr(arg)[2:-1] for arg in command[:keep])
        return f"{shown} [arguments removed]"
    text = " ".join(repr(arg)[2:-1] for arg in command[:8])
    if len(command) > 8:
        text += f" ... ({len(command)} arguments)"
    return text[:200]


def _describe(value: object) -> str:
    return repr(value)[:200]
