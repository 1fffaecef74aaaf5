"""The reply side of the session core: pending entries, counting replies off them, cutting the stream when needed.

`ReplyAccounting` is the base of `SessionCore` (core.py): it owns what the
uplink still owes the client and the state that replies confirm; the core
adds the client side (framing, holding, forwarding) and the uplink's life.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable

from redis_proxy.commands import is_message, is_subscribe_reply, is_unsubscribe_reply
from redis_proxy.gate import Gate
from redis_proxy.resp import ERROR, PUSH, SIMPLE, ProtocolError, Reply, ReplyFramer, as_reply, is_error_value
from redis_proxy.session.blocking import is_timeout_reply, with_timeout
from redis_proxy.session.hotpath import is_push
from redis_proxy.session.routing import error
from redis_proxy.session.types import (
    Action, After, Blocking, CloseClient, CloseUplink, Effect, Exec, Local, Pending, Plain, Replace, ResetConnection,
    Rewrite, SetAuth, SetDb, SetName, SetProtocol, SetReadonly, SetTimer, SetTracking, StartMonitor, StartTxn, Subscription,
    Tracked, Watch,
    WriteClient, owed,
)
from redis_proxy.stats import Stats
from redis_proxy.uplink import SessionState

# A line MONITOR streams: "+1700000000.123456 [0 127.0.0.1:50000] "get" "k"".
# Replies to a monitoring client's own commands (PING, CLIENT ..., errors)
# never start with a timestamp.
MONITOR_LINE = re.compile(rb"\d+\.\d+ \[")
# What nothing is owed on: a session waiting for no reply keeps no deque (about 0.8 KB); one is
# made when an entry is added (`_owe`), and the hot path lets it go again when it empties.
NO_PENDING: tuple[()] = ()
LOST_IN_FLIGHT = "ERR the uplink connection was lost while this command was in flight: its outcome is unknown"


class ReplyAccounting:
    def __init__(self, gate: Gate, stats: Stats, clock: Callable[[], float]) -> None:
        self.gate = gate
        self.stats = stats
        self.clock = clock
        self.actions: list[Action] = []
        self.state = SessionState()  # as of the commands sent: what a new uplink connection replays
        self.replies = ReplyFramer()
        self.pending: deque[Pending] | tuple[()] = NO_PENDING
        self.left = 0  # replies the head entry still owes
        self.outstanding = 0  # replies owed by every entry: this session's share of in-flight
        self.specials = 0  # entries that need the stream cut at reply boundaries (Local, Replace, unblocking)
        self.partial: bytearray | None = None  # a reply held back until whole (it may be swallowed)
        self.unblocking: Blocking | None = None  # the blocking command the server was asked to unblock
        self.nonshard = 0  # (P)SUBSCRIBE subscriptions, as of the replies received
        self.shard = 0  # SSUBSCRIBE subscriptions, counted apart, as Redis does
        self.reply_resp3 = False  # the protocol, as of the replies received
        self.in_multi = False  # as of the commands sent
        self.watching = False
        # Confirmed by +QUEUED, applied if EXEC runs and the command's element
        # in EXEC's reply (the index) is not an error: SELECT 16, CLIENT
        # SETNAME "a b", READONLY are queued alike and fail only when run.
        self.txn_effects: list[tuple[int, Effect]] = []
        # Commands sent inside the open MULTI that EXEC's reply has an element
        # for (every one Redis queues; nested MULTI and WATCH are answered at once).
        self.txn_queued = 0
        self.unsettled = 0  # EXECs in flight whose outcome decides how later commands are routed
        self.latest_hello: Tracked | None = None  # the last HELLO sent (outside MULTI) not yet answered
        self.monitoring = False  # MONITOR confirmed on this connection: its lines are not replies
        self.monitor_cut = False  # MONITOR sent or confirmed: the stream is cut exactly (holds one special)
        self.closing = False
        self.timer: float | None = None

    # -- hooks the core provides ------------------------------------------------------------

    def _requeue(self, command: list[bytes]) -> None:
        raise NotImplementedError

    def _maybe_finish(self) -> None:
        raise NotImplementedError

    def _rewrite(self, kind: int, data: bytes) -> bytes:
        raise NotImplementedError

    def _tracking_changed(self) -> None:
        raise NotImplementedError

    # -- recording what is owed ----------------------------------------------------------------

    def _owe(self) -> deque[Pending]:
        """The pending deque, made if nothing was owed (see NO_PENDING)."""
        pending = self.pending
        if type(pending) is not deque:
            pending = self.pending = deque()
        return pending  # type: ignore[return-value]

    def _expect(self, entry: Pending, count: int) -> None:
        pending = self.pending
        if not pending:
            self.left = count
            pending = self._owe()
        pending.append(entry)  # type: ignore[union-attr]
        if type(entry) is Local or type(entry) is Replace or type(entry) is Rewrite:
            self._special(1)
        if count:
            self.outstanding += count
            self.gate.inflight += count
            if self.timer is None and self.gate.time_limit:
                self._arm_timer()

    def _special(self, delta: int) -> None:
        was = self.specials
        self.specials += delta
        if (was == 0) != (self.specials == 0):
            self.replies.set_fast_path(self.specials == 0)

    def _stream_idle(self) -> bool:
        """Nothing owed and the reply stream between two frames: safe to answer, or to leave the connection."""
        return not self.pending and not self.replies.in_reply() and self.partial is None

    def _local(self, local: Local) -> None:
        """A reply of the proxy's own: now if nothing is owed before it, else in its place."""
        if self._stream_idle():
            self._emit(local)
        else:
            self._expect(local, 0)

    def _emit(self, local: Local) -> None:
        if self.closing:
            return
        self.actions.append(WriteClient(local.data))
        self.stats.bytes_to_clients += len(local.data)
        if local.after == After.CLOSE:
            self._close("closed as asked (QUIT) or after a protocol error")

    # -- replies -----------------------------------------------------------------------------------

    def _uplink_bytes(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            if self.specials == 0 and self.partial is None:
                self._counted(data)
            else:
                self._cut(data)
        except ProtocolError as exc:
            self._fail(None, f"invalid reply from the uplink ({exc})", logging.ERROR)

    def _counted(self, data: bytes) -> None:
        """The hot path: every byte goes to the client; replies are only counted."""
        self.actions.append(WriteClient(data))
        self.stats.bytes_to_clients += len(data)
        replies = self.replies.feed(data)
        if not replies:
            return
        if ERROR in data:  # only then can there be error replies to count
            self.stats.error_replies += sum(map(is_error_value, replies))
        pending = self.pending
        if pending and not self.nonshard and not self.shard:  # (a monitoring client never comes here: specials)
            head = pending[0]
            if type(head) is Plain and self.left == len(replies) == head.count:
                # These replies answer exactly the oldest batch (`_answered` inlined).
                pending.popleft()
                count = head.count
                self.stats.latency.observe(self.clock() - head.sent_at)
                self.outstanding -= count
                gate = self.gate
                gate.inflight -= count
                if pending:
                    self.left = owed(pending[0])
                if not gate.open and not gate.inflight:
                    gate.check_idle()
                return
        for value in replies:
            self._take(value, None)  # nothing to replace here: that needs specials
            if self.closing:
                return

    def _cut(self, data: bytes) -> None:
        """The exact path: cut at reply boundaries, hold back a reply that may be swallowed or replaced."""
        framer = self.replies
        if not framer.in_reply() and self.partial is None and self._holds_back():
            self.partial = bytearray()
        replies = framer.feed(data)
        ends = framer.last_ends
        if ERROR in data:
            self.stats.error_replies += sum(map(is_error_value, replies))
        out: list[bytes] = []
        mark = len(self.actions)  # what closing adds while cutting goes after the bytes cut before it
        start = 0
        for value, end in zip(replies, ends, strict=True):
            segment = data[start:end]
            start = end
            if self.partial is not None:
                whole = bytes(self.partial) + segment
                self.partial = None
                verdict = self._take(value, whole)
                out.append(whole if verdict is None else verdict)
            else:
                out.append(segment)
                self._take(value, None)
            out.extend(self._head_locals())
            if self.closing:
                break
            if self._holds_back():
                self.partial = bytearray()
        else:
            tail = data[start:]
            if tail:
                if self.partial is not None:
                    self.partial += tail
                else:
                    out.append(tail)
        written = b"".join(out)
        if written:
            self.actions.insert(mark, WriteClient(written))
            self.stats.bytes_to_clients += len(written)

    def _holds_back(self) -> bool:
        pending = self.pending
        if not pending:
            return False
        head = pending[0]
        return type(head) is Replace or type(head) is Rewrite or head is self.unblocking

    def _head_locals(self) -> list[bytes]:
        """Replies of the proxy's own that reached the head: they go out now, in order."""
        out: list[bytes] = []
        pending = self.pending
        while pending and type(pending[0]) is Local and not self.closing:
            local = pending.popleft()
            assert isinstance(local, Local)
            self._special(-1)
            self.left = owed(pending[0]) if pending else 0
            out.append(local.data)
            self.stats.bytes_to_clients += len(local.data)
            if local.after == After.CLOSE:
                self._close("closed as asked (QUIT) or after a protocol error")
        return out

    def _take(self, value: object, held: bytes | None) -> bytes | None:
        """Account for one whole reply (`held`: all of it, when it was held back). Returns None to pass it on, or the bytes to write instead."""
        reply: Reply | None = None
        if self.monitoring:
            reply = as_reply(value)
            if reply.kind == SIMPLE and reply.text is not None and MONITOR_LINE.match(reply.text):
                return None  # a command the server ran, streamed by MONITOR: answers nothing here
        if self.nonshard or self.shard or is_push(value):
            reply = reply or as_reply(value)
            if reply.kind == PUSH or not self.reply_resp3:
                if is_message(reply.first):
                    return None  # a pub/sub message answers no command
                if reply.kind == PUSH and not (is_subscribe_reply(reply.first) or is_unsubscribe_reply(reply.first)):
                    return None  # some other push
        pending = self.pending
        if not pending or self.left == 0:
            self._fail(None, "a reply arrived for no command", logging.ERROR)
            return None
        head = pending[0]
        kind = type(head)
        verdict: bytes | None = None
        if kind is Plain:
            self.left -= 1
        elif kind is Tracked:
            assert isinstance(head, Tracked)
            self._confirm(head, reply or as_reply(value))
            self.left -= 1
        elif kind is Subscription:
            assert isinstance(head, Subscription)
            self._subscription_reply(head, reply or as_reply(value))
        elif kind is Replace:
            assert isinstance(head, Replace)
            verdict = head.data
            self.left -= 1
        elif kind is Rewrite:
            assert isinstance(head, Rewrite)
            if head.tracked is not None:
                self._confirm(head.tracked, reply or as_reply(value))
            self.left -= 1
            if held is not None:
                verdict = self._rewrite(head.kind, held)
        elif kind is Blocking:
            assert isinstance(head, Blocking)
            self.left -= 1
            if head is self.unblocking:
                self.unblocking = None
                self._special(-1)
                verdict = self._unblocked(head, reply or as_reply(value)) if held is not None else None
        if self.left == 0:
            pending.popleft()
            assert not isinstance(head, Local)
            self._answered(head.sent_at, owed(head))
            self.left = owed(pending[0]) if pending else 0
            if kind is Replace or kind is Rewrite:
                self._special(-1)
        return verdict

    def _answered(self, sent_at: float, count: int) -> None:
        self.stats.latency.observe(self.clock() - sent_at)
        self.outstanding -= count
        gate = self.gate
        gate.inflight -= count
        if not gate.open and not gate.inflight:
            gate.check_idle()

    def _unblocked(self, entry: Blocking, reply: Reply) -> bytes | None:
        """The reply of a command the proxy unblocked: its timeout reply is swallowed and the command sent again."""
        if not is_timeout_reply(entry.command, reply):
            return None  # a real result raced in: the client gets it
        if entry.deadline is None:
            remaining = 0.0  # blocks forever
        else:
            remaining = entry.deadline - self.clock()
            if remaining <= 0.001:
                return None  # its own time ran out too: the timeout is the client's
        self._requeue(with_timeout(entry.command, remaining))
        return b""

    def _subscription_reply(self, entry: Subscription, reply: Reply) -> None:
        if reply.is_error and self.left == entry.confirmations:
            # Refused (ACL): one error instead of the confirmations; undo what it added.
            self._subscription_set(entry.kind).difference_update(entry.added)
            self.left = 1
        elif reply.last_int is not None:
            if entry.kind == b"SSUBSCRIBE":
                self.shard = reply.last_int
            else:
                self.nonshard = reply.last_int
        self.left -= 1

    def _subscription_set(self, kind: bytes) -> set[bytes]:
        if kind == b"SUBSCRIBE":
            return self.state.channels
        if kind == b"PSUBSCRIBE":
            return self.state.patterns
        return self.state.shard_channels

    def sync_subscriptions(self, state: SessionState) -> None:
        """A new uplink connection was brought to `state` (subscriptions replayed, MONITOR sent again)."""
        self.nonshard = len(state.channels) + len(state.patterns)
        self.shard = len(state.shard_channels)
        self.reply_resp3 = state.resp3
        self._set_monitoring(state.monitor)

    def _set_monitoring(self, on: bool) -> None:
        self.monitoring = on
        self._cut_for_monitor(on)

    def _cut_for_monitor(self, on: bool) -> None:
        # Monitor lines and replies share one stream, and lines may follow
        # MONITOR's +OK in the same read: only the exact framer tells a simple
        # string from a bulk one, so from MONITOR on the stream is cut exactly.
        if on != self.monitor_cut:
            self.monitor_cut = on
            self._special(1 if on else -1)

    def _confirm(self, entry: Tracked, reply: Reply) -> None:
        effect = entry.effect
        if type(effect) is Exec and effect.unsettling:
            self.unsettled -= 1
        if type(effect) is SetProtocol and not entry.in_multi:
            self._hello_reply(entry, effect, reply)
            return
        if reply.is_error:
            if type(effect) is StartTxn:
                self._set_txn(False, self.watching)
            elif type(effect) is StartMonitor and not self.monitoring:
                self._cut_for_monitor(False)
            elif type(effect) is Watch:
                self._set_txn(self.in_multi, effect.was_watching)
            elif type(effect) is Exec:
                self.txn_effects = []  # EXECABORT
            return
        if entry.in_multi:
            self.txn_effects.append((entry.index, effect))  # +QUEUED: it happens if and when EXEC runs it
            return
        if type(effect) is Exec:
            effects, self.txn_effects = self.txn_effects, []
            if effect.runs and not reply.is_nil:  # EXEC ran the transaction (DISCARD drops it)
                failed = reply.error_at  # queued commands that failed when run: SELECT 16, say
                for index, queued in effects:
                    if index not in failed:
                        self._apply_effect(queued)
            return
        self._apply_effect(effect)

    def _hello_reply(self, entry: Tracked, effect: SetProtocol, reply: Reply) -> None:
        """HELLO outside MULTI set the protocol for routing when it was sent; its reply confirms it.

        A refusal puts it back, unless a later HELLO has been sent since
        (that one decides); by then every earlier HELLO has been answered, so
        the protocol in force is the one the replies say.
        """
        latest = entry is self.latest_hello
        if latest:
            self.latest_hello = None
        if reply.is_error:
            if latest:
                self.state.resp3 = self.reply_resp3
            return
        self.reply_resp3 = effect.resp3
        if effect.name is not None:
            self.state.name = effect.name or None
        if effect.credentials is not None:
            self.state.credentials = effect.credentials

    def _apply_effect(self, effect: Effect) -> None:
        state = self.state
        if type(effect) is SetDb:
            state.db = effect.db
        elif type(effect) is SetName:
            state.name = effect.name
        elif type(effect) is SetReadonly:
            state.readonly = effect.readonly
        elif type(effect) is SetProtocol:
            state.resp3 = self.reply_resp3 = effect.resp3
            if effect.name is not None:
                state.name = effect.name or None
            if effect.credentials is not None:
                state.credentials = effect.credentials
        elif type(effect) is SetAuth:
            state.credentials = effect.credentials  # a refused AUTH never gets here: the previous identity stays
        elif type(effect) is StartMonitor:
            state.monitor = True
            self._set_monitoring(True)
        elif type(effect) is ResetConnection:
            self.nonshard = self.shard = 0
            self.reply_resp3 = False
            self._set_monitoring(False)
            # What replies confirm is reset by this reply too, not only when
            # RESET was sent: the reply to a command pipelined before it (an
            # AUTH, a SELECT) arrives after RESET was sent, and RESET undid it.
            state.db, state.name, state.readonly, state.credentials = 0, None, False, None
            state.monitor, state.tracking = False, None
            self._tracking_changed()
        elif type(effect) is SetTracking:
            state.tracking = effect.applied_to(state.tracking)
            self._tracking_changed()

    def _set_txn(self, in_multi: bool, watching: bool) -> None:
        was = self.in_multi or self.watching
        self.in_multi, self.watching = in_multi, watching
        now = in_multi or watching
        if now != was:
            # Only the count moves here; whether the proxy is idle is checked
            # once the command that ended the transaction is in flight.
            self.gate.txn += 1 if now else -1

    # -- time limit ------------------------------------------------------------------------------

    def _deadline(self, limit: float) -> float | None:
        for entry in self.pending:
            if not isinstance(entry, Local) and owed(entry):
                if type(entry) is Blocking:
                    # A blocking command's limit is its own timeout plus the limit.
                    return entry.deadline + limit if entry.deadline is not None else None
                return entry.sent_at + limit
        return None

    def _arm_timer(self) -> None:
        deadline = self._deadline(self.gate.time_limit)
        if deadline is not None:
            self.timer = deadline
            self.actions.append(SetTimer(deadline))

    # -- the uplink lost, the client kept (automatic failover) -------------------------------------

    def _answer_lost(self) -> bool:
        """Answer what the lost uplink connection owed with errors, if the client can carry on; False if not.

        It can when the stream is between replies and nothing owed changes
        the session's state: plain commands (their outcome is unknown, and
        the error says so) and the proxy's own replies. A transaction,
        pub/sub, MONITOR, tracking, an unblocking in progress or a command
        with an effect (SELECT, HELLO...) would leave the client believing
        something the next server does not know: such a client is closed.
        """
        if (
            self.replies.in_reply() or self.partial is not None or self.unblocking is not None
            or self.in_multi or self.watching or self.unsettled or self.monitor_cut
            or self.state.subscribed or self.state.tracking is not None or self.nonshard or self.shard
            or any(type(entry) not in (Plain, Local, Blocking) for entry in self.pending)
        ):
            return False
        entries = list(self.pending)
        head_left = self.left
        self._settle()
        # Only the Local entries' marks go: a RESP3 session's mark for pushes stays with it.
        self._special(-sum(1 for entry in entries if type(entry) is Local))
        text = error(LOST_IN_FLIGHT)
        for index, entry in enumerate(entries):
            if type(entry) is Local:
                self._emit(entry)
                continue
            count = head_left if index == 0 else owed(entry)
            self.stats.proxy_errors += count
            self.actions.append(WriteClient(text * count))
            self.stats.bytes_to_clients += len(text) * count
        return True

    # -- ending ------------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Forget this session's in-flight commands: the proxy no longer waits for them."""
        if self.outstanding:
            self.gate.inflight -= self.outstanding
            self.outstanding = 0
        if self.pending:  # (NO_PENDING, a tuple, when nothing is owed)
            self.pending.clear()  # type: ignore[union-attr]
        self.left = 0
        if self.timer is not None:
            self.timer = None
            self.actions.append(SetTimer(None))
        if not self.gate.open:
            self.gate.check_idle()

    def _close(self, reason: str, level: int = logging.DEBUG) -> None:
        if self.closing:
            return
        self.closing = True
        self.actions.append(CloseUplink())
        self._settle()
        self._set_txn(False, False)
        self.actions.append(CloseClient(reason, level))

    def _fail(self, text: str | None, reason: str | None = None, level: int = logging.WARNING) -> None:
        """End this client: an error line for each reply it is owed (when the stream allows), then close."""
        if self.closing:
            return
        if text is not None and not self.replies.in_reply() and self.partial is None:
            self.actions.append(WriteClient(error(text) * max(1, self.outstanding)))
        self._close(reason or text or "closed", level)
