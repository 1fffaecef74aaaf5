"""The session core, sans-I/O: one client connection and its uplink connection, as events in and actions out.

Events are method calls (`client_data`, `uplink_data`, `uplink_ready`, ...);
each returns the list of actions (types.py) the I/O layer must perform, in
order. Nothing here imports asyncio or touches a socket; time comes from an
injected clock.

The core is three layers: `ReplyAccounting` (replies.py: what is owed,
counting replies off it), `DecisionApplier` (applying.py: what each routed
command becomes upstream) and this class (the client side, the events, the
uplink connection's life).

How replies are matched to commands: every forwarded batch or tracked
command appends a typed pending entry; replies count off the head entry.
While no entry needs to change what the client sees (`specials == 0`), the
uplink's bytes are written through whole and only counted (the hot path).
When a reply must be replaced or swallowed (a stand-in's, an unblocked
command's timeout) or a reply of the proxy's own must be slotted in between
upstream replies, the reply framer runs exactly and the bytes are cut at
reply boundaries.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from redis_proxy.commands import Kind, kind_of
from redis_proxy.gate import Gate
from redis_proxy.resp import ERROR, Batch, ProtocolError, ReplyFramer, RequestFramer, encode_command, is_error_value
from redis_proxy.session import routing
from redis_proxy.session.applying import DecisionApplier
from redis_proxy.session.blocking import can_reissue
from redis_proxy.session.client_ids import (
    REWRITE_GETREDIR, REWRITE_LEARN_ID, REWRITE_TRACKINGINFO, ClientIds, map_id_arg, rewrite_reply,
)
from redis_proxy.session.guard import close_for_query_buffer, close_if_idle, frame_after_auth
from redis_proxy.session.hotpath import has_special
from redis_proxy.session.limits import ClientLimits
from redis_proxy.session.replies import NO_PENDING
from redis_proxy.session.types import (
    CONNECTING, NO_UPLINK, READY, Action, After, Blocking, CloseUplink, ConnectUplink, Held, HeldLocal, Local, Log,
    Plain, ReadClient, Replace, SetTimer, Unblock, WriteClient, WriteUplink, owed,
)
from redis_proxy.session.tracking import CACHING_YES, caching_yes_after_replay, flush_message
from redis_proxy.stats import Stats

# Inside MULTI, Redis runs these at once (an error reply) instead of queueing them.
_UNQUEUED = (Kind.MULTI, Kind.WATCH)

# Held commands beyond this many bytes stop the proxy reading from that client until they drain.
HELD_BYTES_LIMIT = 4 * 1024 * 1024
# The queue of a session that never held a command: a deque (about 0.8 KB) is made when one is held.
NO_QUEUE: tuple[()] = ()


class SessionCore(DecisionApplier):
    def __init__(
        self,
        gate: Gate,
        stats: Stats,
        password: bytes | None,
        clock: Callable[[], float],
        limits: ClientLimits = ClientLimits(),
        passthrough: bool = False,
        ids: ClientIds | None = None,
    ) -> None:
        super().__init__(gate, stats, clock)
        self.password = password
        # listen.auth "passthrough": AUTH and HELLO ... AUTH go to Redis, which
        # decides; the accepted credentials are the session's (state.credentials).
        self.passthrough = passthrough
        assert not (passthrough and password is not None), "listen.pass and pass-through AUTH exclude each other"
        self.authed = password is None
        self.limits = limits
        self.requests = RequestFramer()
        self.requests.unauthenticated = not self.authed  # Redis's small pre-AUTH limits
        self.last_active = clock()  # the last read from either side, for client_idle_timeout_s
        self.queue: deque[Held | HeldLocal] | tuple[()] = NO_QUEUE  # see _held
        self.held_bytes = 0
        self.reading = True
        self.uplink = NO_UPLINK
        self.uplink_gen = -1
        self.uplink_id: int | None = None  # CLIENT ID of the uplink connection, for CLIENT UNBLOCK
        self.eof = False  # the client half-closed: answer what it sent, then close
        self.broken = False  # a protocol error: read nothing more
        self.txn_hello = False  # the open transaction queued HELLO
        self.uplink_auth: bytes | None = None  # the proxy's own AUTH, replayed after a client's RESET (never in pass-through)
        self.trace: Callable[[str, list[bytes]], None] | None = None  # log_messages: sees every command
        self.ids = ids if ids is not None else ClientIds()  # shared by the proxy's sessions (client_ids.py)
        self.proxy_id = self.ids.register(self._expect_pushes)  # the client id this client sees
        self.pushes = False  # invalidations may arrive unasked (tracking): replies are framed exactly

    # -- what routing and the controller read ----------------------------------------

    @property
    def resp3(self) -> bool:
        return self.state.resp3

    @property
    def subscribed(self) -> bool:
        return self.state.subscribed

    @property
    def in_txn(self) -> bool:
        return self.in_multi or self.watching

    def client_arg(self, arg: bytes) -> bytes:
        """A client id as this client gave it, as the uplink server knows it (routing's SessionView)."""
        return map_id_arg(arg, self.ids, self.gate.generation)

    @property
    def held(self) -> int:
        return sum(1 for item in self.queue if type(item) is Held)

    def _held(self) -> deque[Held | HeldLocal]:
        """The queue of held commands, made on first use (most sessions never hold one)."""
        queue = self.queue
        if type(queue) is not deque:
            queue = self.queue = deque()
        return queue  # type: ignore[return-value]

    def _take_actions(self) -> list[Action]:
        actions, self.actions = self.actions, []
        return actions

    # -- events from the client ---------------------------------------------------------

    def client_data(self, data: bytes) -> list[Action]:
        self.stats.bytes_from_clients += len(data)
        if self.limits.idle_timeout:
            self.last_active = self.clock()
        if self.broken or self.closing:
            return []
        if self.streaming:
            self.actions.append(WriteUplink([data]))
            return self._take_actions()
        requests = self.requests
        if self._frame(requests.feed, data) and requests.unauthenticated:
            self._frame_after_auth()
        # Per read, not per command: what this client holds in the proxy.
        if requests.buffered + self.held_bytes > self.limits.query_buffer and not self.closing:
            close_for_query_buffer(self)
        return self._take_actions()

    def client_data_fast(self, data: bytes) -> list[Action] | None:
        """`client_data` with the hot path's one write left to the caller.

        None: `data` is whole plain commands, accounted for here (pending
        entry, in-flight count, counters) and to be written to the uplink as
        it is; no Batch, no action list. Otherwise the actions, as
        `client_data` returns them. Checked per read: everything `_on_batch`'s
        hot path checks, and no timer to arm.
        """
        gate = self.gate
        if (
            self.uplink != READY
            or type(self) is not SessionCore  # a subclass (write tracking) extends the general path
            or self.offpath
            or self.queue
            or not gate.open
            or self.uplink_gen != gate.generation
            or self.trace is not None
            or not self.authed
            or self.unblocking is not None
            or self.closing
            or self.broken
            or self.streaming
            or (self.timer is None and gate.time_limit)
        ):
            return self.client_data(data)
        requests = self.requests
        commands = requests.frame_whole(data)
        if commands is None:
            return self.client_data(data)
        stats = self.stats
        stats.bytes_from_clients += len(data)
        now = self.clock()
        if self.limits.idle_timeout:
            self.last_active = now
        if has_special(commands):
            self._on_batch(Batch(commands, [data]))
            if requests.unauthenticated:
                self._frame_after_auth()
            if requests.buffered + self.held_bytes > self.limits.query_buffer and not self.closing:
                close_for_query_buffer(self)
            return self._take_actions()
        count = len(commands)
        pending = self.pending
        if not pending:
            self.left = count
            pending = self._owe()
        pending.append(Plain(count, now))  # type: ignore[union-attr]
        if self.in_multi:
            self.txn_queued += count  # each takes its place in EXEC's reply (never MULTI or WATCH: special)
        self.outstanding += count
        gate.inflight += count
        stats.commands += count
        by_name = stats.commands_by_name
        name = commands[0][0]
        seen = by_name.get(name) if count == 1 else None
        if seen is None:
            stats.count_names(commands)  # (folds odd spellings when there are too many)
        else:
            by_name[name] = seen + 1
        delay = stats.proxy_delay  # forwarded in the callback that received it: the lowest bucket
        delay.counts[0] += 1
        delay.count += 1
        return None

    def _frame(self, framer: Callable[[bytes], list[Batch]], data: bytes) -> bool:
        """Frame bytes and take the whole commands; False after a protocol error (the client is done)."""
        try:
            batches = framer(data)
        except ProtocolError as exc:
            for batch in getattr(exc, "batches", []):
                self._on_batch(batch)
            self._protocol_error(exc)
            return False
        for batch in batches:
            self._on_batch(batch)
        return True

    def client_eof(self) -> list[Action]:
        """The client closed its side: what it sent is still answered (as Redis answers what it read), then close.

        Except a blocking command: Redis frees a client that closes while
        blocked, abandoning the command, and so does the proxy; waiting for a
        BRPOP 0 would keep the session, and a pause, forever.
        """
        self.eof = True
        if self.unblocking is not None or any(type(entry) is Blocking for entry in self.pending):
            self._close("the client closed its connection while blocked; the blocking command is abandoned, as Redis does")
        self._maybe_finish()
        return self._take_actions()

    def _on_batch(self, batch: Batch) -> None:
        commands = batch.commands
        if self.trace is not None:
            for command in commands:
                self.trace("->", command)
        gate = self.gate
        raw = batch.raw
        if (
            raw is not None
            and not self.offpath
            and gate.open
            and self.uplink == READY
            and self.authed
            and not self.queue
            and self.unblocking is None
            and self.uplink_gen == gate.generation
            and not has_special(commands)
        ):
            # The hot path, written out flat (`_expect` inlined): one write
            # upstream, one pending entry, the counters.
            self.actions.append(WriteUplink(raw))
            count = len(commands)
            pending = self.pending
            if not pending:
                self.left = count
                pending = self._owe()
            pending.append(Plain(count, self.clock()))  # type: ignore[union-attr]
            if self.in_multi:
                self.txn_queued += count  # (never MULTI or WATCH here: those are special)
            self.outstanding += count
            gate.inflight += count
            if self.timer is None and gate.time_limit:
                self._arm_timer()
            stats = self.stats
            stats.commands += count
            stats.count_names(commands)
            delay = stats.proxy_delay  # forwarded in the callback that received it: the lowest bucket
            delay.counts[0] += 1
            delay.count += 1
            return
        if self.streaming:  # commands that followed SYNC/PSYNC in the same read
            self.actions.append(WriteUplink(raw if raw is not None else [encode_command(c) for c in commands]))
            return
        now = self.clock()
        if len(commands) == 1:
            self._hold(commands[0], raw, now)
        else:
            for command in commands:
                self._hold(command, None, now)
        self._drain()

    def _hold(self, command: list[bytes], raw: list[bytes] | None, now: float) -> None:
        size = sum(map(len, raw)) if raw is not None else sum(map(len, command))
        self._held().append(Held(command, raw, now, size))
        self.held_bytes += size
        if self.held_bytes > HELD_BYTES_LIMIT and self.reading:
            self.reading = False
            self.actions.append(ReadClient(False))

    def _protocol_error(self, exc: ProtocolError) -> None:
        """Like Redis: the whole commands before the bad one run, their replies come first, then the error, then close."""
        self.stats.proxy_errors += 1
        self.actions.append(Log(logging.INFO, f"protocol error: {exc}", "protocol-error"))
        self.broken = True
        if self.reading:
            self.reading = False
            self.actions.append(ReadClient(False))
        local = Local(routing.error(f"ERR Protocol error: {exc}"), After.CLOSE)
        if self.queue:
            self._held().append(HeldLocal(local))
            self._drain()
        else:
            self._local(local)

    # -- forwarding held commands ---------------------------------------------------------

    def _gate_allows(self) -> bool:
        gate = self.gate
        return (gate.open or (gate.draining and self.in_txn)) and self.unblocking is None and not self.closing

    def _drain(self) -> None:
        """Forward (or answer) held commands, in order, for as long as the gate and the uplink allow."""
        plain: list[Held] = []  # a run of plain commands, forwarded in one write
        now = self.clock()
        queue = self.queue
        while queue and not self.closing:
            item = queue[0]
            if type(item) is HeldLocal:
                self._forward(plain, now)
                queue.popleft()
                self._local(item.local)
                continue
            assert type(item) is Held
            if not self._gate_allows() or self.unsettled:
                break
            decision = routing.route(item.command, self)
            if self._needs_uplink(decision) and not self._uplink_current():
                self._forward(plain, now)
                self._want_uplink()
                break
            queue.popleft()
            self.held_bytes -= item.size
            self.stats.proxy_delay.observe(now - item.arrived)
            if self.offpath:
                self._forward(plain, now)
                self._offpath(decision, item, now)
            elif decision is None:
                plain.append(item)
            else:
                self._forward(plain, now)
                self._apply(decision, item, now)
        self._forward(plain, now)
        self._read_again_if_drained()
        if not self.gate.open:
            self.gate.check_idle()
        self._maybe_finish()

    def _forward(self, plain: list[Held], now: float) -> None:
        """Send a run of plain commands as one write with one pending entry; empties `plain`."""
        if plain:
            out: list[bytes] = []
            for item in plain:
                out.extend(item.raw if item.raw is not None else (encode_command(item.command),))
            count = len(plain)
            if self.in_multi:
                # Each has an element in EXEC's reply, except a nested MULTI or
                # a WATCH: Redis answers those with an error at once and the
                # transaction goes on.
                self.txn_queued += sum(1 for item in plain if kind_of(item.command[0]) not in _UNQUEUED)
            self.actions.append(WriteUplink(out))
            self._expect(Plain(count, now), count)
            self.stats.commands += count
            self.stats.count_names([item.command for item in plain])
            plain.clear()

    def _read_again_if_drained(self) -> None:
        if not self.reading and self.held_bytes <= HELD_BYTES_LIMIT // 2 and not self.broken:
            self.reading = True
            self.actions.append(ReadClient(True))

    def _needs_uplink(self, decision: routing.Decision) -> bool:
        if type(decision) is routing.Answer:
            return False
        if type(decision) is routing.Refuse:
            return self.in_multi  # inside MULTI a stand-in goes upstream to abort the transaction
        if type(decision) is routing.Reset:
            return self._uplink_current()  # a stale or missing connection is replaced by a fresh one anyway
        return True

    def _uplink_current(self) -> bool:
        return self.uplink == READY and self.uplink_gen == self.gate.generation

    def _uplink_stale(self) -> bool:
        return self.uplink == READY and self.uplink_gen != self.gate.generation

    def _want_uplink(self) -> None:
        if self._uplink_stale():
            if not self._stream_idle():
                return  # the stale connection is left at its next reply boundary (uplink_data)
            self._retire_uplink()
        if self.uplink == NO_UPLINK and not self.closing:
            self.uplink = CONNECTING
            self.actions.append(ConnectUplink(self.gate.generation))

    # -- events from the uplink and the controller --------------------------------------------

    def uplink_ready(
        self, generation: int, client_id: int | None, forwarded: list[bytes], auth: bytes | None
    ) -> list[Action]:
        """A new uplink connection is connected, authenticated and the session replayed on it."""
        self.uplink = READY
        self.uplink_auth = auth
        self.uplink_gen = generation
        self.uplink_id = client_id
        self.ids.set_uplink(self.proxy_id, generation, client_id)
        self.replies = ReplyFramer()
        self.replies.set_fast_path(self.specials == 0)
        self.sync_subscriptions(self.state)
        for message in forwarded:  # pub/sub messages that arrived during the replay
            self._uplink_bytes(message)
        if caching_yes_after_replay(self.state.tracking):
            self.actions.append(WriteUplink([CACHING_YES]))
            self._expect(Replace(b"", self.clock()), 1)  # its +OK is the proxy's
        replay = self.reply_mode.replay()
        if replay is not None:
            self.actions.append(WriteUplink([replay]))  # CLIENT REPLY OFF/SKIP: no reply (CACHING survives it)
        self._retire_if_idle()  # the generation moved on while it was being opened
        self._drain()
        if self.requests.unauthenticated:
            self._frame_after_auth()  # a HELLO ... AUTH that waited for this connection
        return self._take_actions()

    def uplink_failed(self, reason: str) -> list[Action]:
        """The uplink could not be reached: every held command gets an error, in order."""
        self.uplink = NO_UPLINK
        self.ids.clear_uplink(self.proxy_id)
        self.stats.uplink_failures += 1
        if self.state.subscribed and not self.queue:
            self._fail(f"ERR upstream unavailable: {reason}")
            return self._take_actions()
        self._fail_queue(f"ERR upstream unavailable: {reason}")
        return self._take_actions()

    def uplink_unavailable(self) -> list[Action]:
        """With automatic failover: the uplink could not be reached, and held commands wait for the next one.

        The I/O layer tries again a little later (resume), and a failover's
        release does too; the queue stays as it is meanwhile.
        """
        self.uplink = NO_UPLINK
        self.ids.clear_uplink(self.proxy_id)
        self.stats.uplink_failures += 1
        return self._take_actions()

    def fail_held(self, text: str) -> list[Action]:
        """Every held command gets `text` as its error, in order (failover found no uplink in time).

        Inside a transaction that would answer queued commands while the
        server's MULTI goes on, and EXEC would run part of it: the client is
        closed instead, as for a lost connection.
        """
        if self.queue and (self.in_multi or self.watching):
            self._fail(None, "failover: commands held inside a transaction could not be sent")
        else:
            self._fail_queue(text)
        return self._take_actions()

    @property
    def waits_for_uplink(self) -> bool:
        """Held commands wait for an uplink, and nothing else needs one (failover may hold them instead of failing them)."""
        state = self.state
        return bool(self.queue) and not (state.subscribed or state.monitor or state.tracking is not None)

    def stale_with_pending(self) -> bool:
        """Still owed replies on a connection to an uplink the proxy has left (a failover's dead one)."""
        return self.uplink == READY and self._uplink_stale() and not self._stream_idle()

    def _fail_queue(self, text: str) -> None:
        reply = routing.error(text)
        while self.queue:
            item = self.queue.popleft()
            if type(item) is HeldLocal:
                self._local(item.local)
                continue
            assert type(item) is Held
            self.held_bytes -= item.size
            self.stats.proxy_errors += 1
            self._local(Local(reply, After.NOTHING))
        self._read_again_if_drained()
        if self.requests.unauthenticated:
            self._frame_after_auth()
        self._maybe_finish()

    def uplink_lost(self, reason: str) -> list[Action]:
        """The server closed this client's uplink connection (CLIENT KILL, its timeout, a restart).

        Redis would just close the client, and client libraries reconnect
        (and resubscribe) on a connection error, not on an error reply: so
        the client is closed, with nothing written. Only a connection the
        proxy was about to leave anyway (an older generation's, with nothing
        owed) is replaced quietly.
        """
        stale_and_idle = self.uplink_gen != self.gate.generation and self._stream_idle() and not self.unblocking
        self.uplink = NO_UPLINK
        self.uplink_id = None
        self.ids.clear_uplink(self.proxy_id)
        self.stats.uplink_failures += 1
        if stale_and_idle and not self.streaming:
            self._retire_uplink()
            self._after_retire()
            return self._take_actions()
        if self.limits.outlive_uplink and not self.streaming and self._answer_lost():
            self._retire_uplink()
            self._after_retire()
            if self.eof:
                self._maybe_finish()  # a half-closed client had only these to wait for
            return self._take_actions()
        # Logged once per interval for all clients by the I/O layer.
        self._close(f"uplink connection lost ({reason})", logging.DEBUG)
        return self._take_actions()

    def uplink_data(self, data: bytes) -> list[Action]:
        if self.limits.idle_timeout:
            self.last_active = self.clock()  # Redis counts writes to the client as interaction too
        if self.streaming:
            self.actions.append(WriteClient(data))
            self.stats.bytes_to_clients += len(data)
            return self._take_actions()
        self._uplink_bytes(data)
        if self.uplink_gen != self.gate.generation:
            self._retire_if_idle()
        if self.queue and self._gate_allows():  # a command the proxy unblocked goes out again
            self._drain()
        if self.eof:
            self._maybe_finish()
        return self._take_actions()

    def uplink_data_fast(self, data: bytes) -> list[Action] | None:
        """`uplink_data` with the hot path's one write left to the caller.

        None: `data` goes to the client as it is, its replies counted off
        what is owed; no action list. Otherwise the actions, as `uplink_data`
        returns them (with `data`'s write first when the hot path began).
        """
        gate = self.gate
        if (
            self.specials
            or type(self) is not SessionCore  # a subclass (write tracking) extends the general path
            or self.trace is not None  # log_messages: the glue logs each write to the client
            or self.partial is not None
            or self.streaming
            or self.closing
            or self.queue
            or self.eof
            or not gate.open
            or self.uplink_gen != gate.generation
            or self.nonshard
            or self.shard
        ):
            return self.uplink_data(data)
        stats = self.stats
        stats.bytes_to_clients += len(data)
        now = self.clock()
        if self.limits.idle_timeout:
            self.last_active = now  # Redis counts writes to the client as interaction too
        try:
            replies = self.replies.feed(data)
        except ProtocolError as exc:
            self.actions.append(WriteClient(data))
            self._fail(None, f"invalid reply from the uplink ({exc})", logging.ERROR)
            return self._take_actions()
        if not replies:
            return None
        if ERROR in data:  # only then can there be error replies to count
            stats.error_replies += sum(map(is_error_value, replies))
        pending = self.pending
        if pending:
            head = pending[0]
            if type(head) is Plain and self.left == len(replies) == head.count:
                # These replies answer exactly the oldest batch (`_answered` inlined; the gate is open).
                pending.popleft()
                count = head.count
                stats.latency.observe(now - head.sent_at)
                self.outstanding -= count
                gate.inflight -= count
                if pending:
                    self.left = owed(pending[0])
                else:
                    self.pending = NO_PENDING  # an idle session keeps no deque
                return None
        for value in replies:
            self._take(value, None)
            if self.closing:
                break
        if not self.actions:
            return None
        self.actions.insert(0, WriteClient(data))
        return self._take_actions()

    def resume(self) -> list[Action]:
        """The gate opened."""
        if self.queue and not self.closing:
            self._drain()
        if self.requests.unauthenticated:
            self._frame_after_auth()  # an AUTH that was held has its outcome now
        return self._take_actions()

    def _frame_after_auth(self) -> None:
        """Before AUTH, framing waits at each AUTH/HELLO until its outcome is known (guard.py).

        Meanwhile the client is not read at all, so nothing piles up past
        Redis's unauthenticated limits while an AUTH is held by a pause or
        waits for an uplink connection.
        """
        frame_after_auth(self)  # returns at once while the AUTH (or HELLO) is still held
        if self.requests.stopped:
            if self.reading and not self.closing:
                self.reading = False
                self.actions.append(ReadClient(False))
        else:
            self._read_again_if_drained()

    def idle_check(self) -> list[Action]:
        """client_idle_timeout_s: the glue's timer asks whether this client has been idle that long (guard.py decides)."""
        close_if_idle(self)
        return self._take_actions()

    def connect_now(self, had_uplink: bool) -> list[Action]:
        """A session handed over by another process (takeover): open its uplink at once if it had one
        (its next command need not wait for it) or if messages or MONITOR lines must flow."""
        if had_uplink or self._keeps_connected():
            self._want_uplink()
        return self._take_actions()

    def switch_uplink(self) -> list[Action]:
        """The generation changed: leave the old uplink connection at the next reply boundary."""
        if self.streaming:
            # A replica (or a tool reading the replication stream) must resynchronise
            # from the new server: closing makes it reconnect, through the proxy, to it.
            self._close("replication stream: the uplink switched, the replica resynchronises from the new one", logging.INFO)
        self._retire_if_idle()
        return self._take_actions()

    def pausing(self) -> list[Action]:
        """The gate shut: a blocking command that is the last thing in flight is unblocked on the server.

        Commands sent while CLIENT REPLY was OFF get a fence, so the drain waits until they ran.
        """
        if self.reply_mode.unfenced and self.uplink == READY and not self.closing and not self.streaming:
            self._fence(self.clock())
        pending = self.pending
        if (
            self.uplink == READY
            and self.uplink_id is not None
            and self.unblocking is None
            and pending
            and type(pending[-1]) is Blocking
        ):
            entry = pending[-1]
            assert isinstance(entry, Blocking)
            if not can_reissue(entry.command):
                return self._take_actions()
            self.unblocking = entry
            self._special(1)
            self.actions.append(Unblock(self.uplink_id))
        return self._take_actions()

    def timer_fired(self) -> list[Action]:
        self.timer = None
        limit = self.gate.time_limit
        if limit and not self.closing:
            deadline = self._deadline(limit)
            if deadline is not None and self.clock() >= deadline:
                self.stats.time_limit_kills += 1
                self._fail(
                    f"ERR command timed out after {limit * 1000:.0f} ms (read_time_limit_ms)",
                    f"no reply within read_time_limit_ms={limit * 1000:.0f}",
                )
            elif deadline is not None:
                self.timer = deadline
                self.actions.append(SetTimer(deadline))
        return self._take_actions()

    def rearm_timer(self) -> list[Action]:
        self.timer = None
        self.actions.append(SetTimer(None))
        self._arm_timer()
        return self._take_actions()

    def fail(self, text: str | None, reason: str, level: int = logging.WARNING) -> list[Action]:
        """End this client (time limit, shutdown): an error for what it is owed when the stream allows, then close."""
        self._fail(text, reason, level)
        return self._take_actions()

    def client_lost(self) -> None:
        """The client connection is gone: stop counting its commands."""
        self.closing = True
        self._settle()
        if self.queue:  # (NO_QUEUE, a tuple, when nothing was ever held)
            self.queue.clear()  # type: ignore[union-attr]
        self._set_txn(False, False)
        self.ids.unregister(self.proxy_id)

    # -- the uplink connection's life -----------------------------------------------------------

    def _retire_if_idle(self) -> None:
        """Leave a stale uplink connection once nothing more is owed on it (never mid-reply)."""
        if not self._uplink_stale() or not self._stream_idle():
            return
        self._retire_uplink()
        self._after_retire()

    def _after_retire(self) -> None:
        if self._keeps_connected():
            self._want_uplink()
        elif self.queue and self._gate_allows():
            self._drain()

    def _keeps_connected(self) -> bool:
        """Messages, MONITOR's stream and invalidations must keep flowing, paused or not; a
        session whose id was asked may be named as a redirect target."""
        return self.state.subscribed or self.state.monitor or self._invalidated() or self.ids.wanted(self.proxy_id)

    def _retire_uplink(self) -> None:
        self.uplink = NO_UPLINK
        self.uplink_id = None
        self.ids.clear_uplink(self.proxy_id)
        self.actions.append(CloseUplink())
        # The new server has never seen this client's reads: it is told to
        # drop everything it caches, as Redis tells it on FLUSHALL (at a reply
        # boundary: the stream is idle).
        state = self.state
        flush = flush_message(state.tracking, self.ids.is_target(self.proxy_id), state.channels, self.reply_resp3)
        if flush:
            self._emit(Local(flush, After.NOTHING))

    # -- client ids and tracking (client_ids.py, tracking.py) --------------------------------------

    def _invalidated(self) -> bool:
        """Whether this client receives invalidations (or its tracking must be kept on the server)."""
        return self.state.tracking is not None or self.ids.is_target(self.proxy_id)

    def _expect_pushes(self) -> None:
        """Invalidation pushes may arrive unasked from now on: count replies exactly, not per read."""
        if not self.pushes:
            self.pushes = True
            self._special(1)

    def _tracking_changed(self) -> None:
        tracking = self.state.tracking
        self.ids.set_redirect(self.proxy_id, tracking.redirect if tracking is not None else 0)

    def _rewrite(self, kind: int, data: bytes) -> bytes:
        if kind == REWRITE_LEARN_ID:
            if data[:1] == b":" and data[1:-2].isdigit():
                self.uplink_id = int(data[1:-2])
                self.ids.set_uplink(self.proxy_id, self.uplink_gen, self.uplink_id)
            return b""
        redirect = self.state.tracking.redirect if self.state.tracking is not None else 0
        redirect_field = kind == REWRITE_GETREDIR or kind == REWRITE_TRACKINGINFO

        def to_proxy(uplink_id: int) -> int | None:
            if uplink_id == self.uplink_id:
                return self.proxy_id
            pid = self.ids.proxy_id(self.uplink_gen, uplink_id)
            # A redirect target that has gone: Redis still reports its id.
            return pid if pid is not None or not redirect_field or not redirect else redirect

        return rewrite_reply(kind, data, self.proxy_id, to_proxy)

    # -- hooks for the reply side ----------------------------------------------------------------

    def _requeue(self, command: list[bytes]) -> None:
        """A command the proxy unblocked on the server: first in line again."""
        size = sum(map(len, command))
        self._held().appendleft(Held(command, None, self.clock(), size))
        self.held_bytes += size

    def _maybe_finish(self) -> None:
        """After a half-close, close once everything the client sent has been answered (as Redis does)."""
        if self.eof and not self.closing and not self.queue and self.uplink != CONNECTING and self._stream_idle():
            self._close("the client closed its side and every reply has been sent")
