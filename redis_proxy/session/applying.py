"""Carrying out routing's decisions: what a command leaving the queue turns into upstream and in the pending entries.

`DecisionApplier` is the middle layer of the session core: `ReplyAccounting`
(replies.py) below it owns what is owed; `SessionCore` (core.py) above it
owns the client side and the uplink connection's life, and calls `_apply`
(or `_offpath`, while CLIENT REPLY is OFF/SKIP or the connection is a
replication stream) for every command routing did not leave plain.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from redis_proxy.commands import Kind
from redis_proxy.gate import Gate
from redis_proxy.resp import RequestFramer, encode_command
from redis_proxy.session import routing
from redis_proxy.session.client_ids import REWRITE_HELLO, REWRITE_ID, REWRITE_LEARN_ID, ClientIds
from redis_proxy.session.replies import ReplyAccounting
from redis_proxy.session.reply_mode import ReplyMode
from redis_proxy.session.tracking import SetTracking
from redis_proxy.session.types import (
    After, Blocking, Exec, Held, HeldLocal, Local, Pending, Plain, Replace, ResetConnection, Rewrite, SetAuth, SetDb,
    SetName, SetProtocol, SetReadonly, StartMonitor, StartTxn, Subscription, Tracked, Watch, WriteClient, WriteUplink,
)
from redis_proxy.stats import Stats
from redis_proxy.uplink import SessionState


CLIENT_ID = encode_command([b"CLIENT", b"ID"])


class DecisionApplier(ReplyAccounting):
    # Set up by SessionCore.__init__ (the client side's state, read and changed here).
    queue: deque[Held | HeldLocal] | tuple[()]
    held_bytes: int
    requests: RequestFramer
    authed: bool
    password: bytes | None
    uplink_auth: bytes | None  # the proxy's own AUTH, replayed after a client's RESET
    txn_hello: bool
    ids: ClientIds
    proxy_id: int
    uplink_id: int | None  # CLIENT ID of the uplink connection

    def __init__(self, gate: Gate, stats: Stats, clock: Callable[[], float]) -> None:
        super().__init__(gate, stats, clock)
        self.reply_mode = ReplyMode()  # CLIENT REPLY, as of the commands sent
        self.streaming = False  # SYNC/PSYNC: an unmanaged byte stream to the uplink from then on
        # Anything that takes every command off the hot path (CLIENT REPLY OFF/SKIP, a stream).
        self.offpath = False

    # -- hooks the core provides ------------------------------------------------------------

    def _forward(self, plain: list[Held], now: float) -> None:
        raise NotImplementedError

    def _uplink_current(self) -> bool:
        raise NotImplementedError

    def _read_again_if_drained(self) -> None:
        raise NotImplementedError

    def _expect_pushes(self) -> None:
        raise NotImplementedError

    # -- decisions ------------------------------------------------------------------------------

    def _send(self, wire: list[bytes], entry: Pending, replies: int) -> None:
        self.actions.append(WriteUplink(wire))
        self._expect(entry, replies)
        self.stats.commands += 1

    def _apply(self, decision: routing.Decision, item: Held, now: float) -> None:
        """Carry out one non-plain decision for a command leaving the queue."""
        command = item.command
        wire = item.raw if item.raw is not None else [encode_command(command)]
        self.stats.count_names([command])
        t = type(decision)
        if t is routing.Answer:
            assert isinstance(decision, routing.Answer)
            if decision.authenticate:
                self.authed = True
            else:
                self.stats.proxy_errors += decision.data[:1] == b"-"
            self._local(Local(decision.data, decision.after))
        elif t is routing.Refuse:
            assert isinstance(decision, routing.Refuse)
            self.stats.proxy_errors += 1
            if self.in_multi:
                self.txn_queued += 1  # (Redis refuses it: EXEC will abort anyway)
                self._send([routing.POISON], Replace(decision.data, now), 1)
            else:
                self._local(Local(decision.data, After.NOTHING))
        elif t is routing.Track:
            assert isinstance(decision, routing.Track)
            if decision.authenticate:
                self.authed = True
            self._track(decision, wire, now)
        elif t is routing.Subscribe:
            assert isinstance(decision, routing.Subscribe)
            self._subscribe(decision, wire, now)
        elif t is routing.Block:
            assert isinstance(decision, routing.Block)
            deadline = now + decision.timeout if decision.timeout else None
            self._send(wire, Blocking(tuple(command), now, deadline), 1)
        elif t is routing.Txn:
            assert isinstance(decision, routing.Txn)
            self._txn(decision, wire, now)
        elif t is routing.Reset:
            self._reset(now)
        elif t is routing.Monitor:
            if self.monitor_cut:
                # MONITOR was sent already (and not refused): Redis ignores
                # this one and sends no reply (monitorCommand).
                self._send_silent(wire)
            else:
                self._cut_for_monitor(True)
                self._send(wire, Tracked(StartMonitor(), now, False), 1)
        elif t is routing.ReplyMode:
            assert isinstance(decision, routing.ReplyMode)
            if self.reply_mode.set(decision.mode):
                self._send(wire, Plain(1, now), 1)
            else:
                self._send_silent(wire)
            self._update_offpath()
        elif t is routing.Stream:
            self._start_stream(wire)

        elif t is routing.Forward:
            assert isinstance(decision, routing.Forward)
            if decision.rewrite == REWRITE_ID:
                self.ids.asked(self.proxy_id)  # it may be named as a redirect target: kept connected across switches
            entry = Rewrite(decision.rewrite, now) if decision.rewrite else Plain(1, now)
            self.txn_queued += self.in_multi
            self._send([decision.wire] if decision.wire is not None else wire, entry, 1)

    def _update_offpath(self) -> None:
        self.offpath = self.streaming or self.reply_mode.silent

    def _send_silent(self, wire: list[bytes]) -> None:
        """A command Redis will not answer (CLIENT REPLY OFF/SKIP): no pending entry, not in flight."""
        self.actions.append(WriteUplink(wire))
        self.stats.commands += 1

    def _offpath(self, decision: routing.Decision, item: Held, now: float) -> None:
        """One command while the hot path is off: as usual, unless Redis will not answer it."""
        if type(decision) is routing.ReplyMode:
            self._apply(decision, item, now)
            return
        silent = self.reply_mode.silent
        self.reply_mode.sent()
        self._update_offpath()
        if not silent or type(decision) is routing.Subscribe:
            # Pub/sub confirmations (and messages) are sent even while replies
            # are off: Redis marks them as pushes (CLIENT_PUSHING), in RESP2 too.
            if decision is None:
                self._forward([item], now)
            else:
                self._apply(decision, item, now)
            return
        self.stats.count_names([item.command])
        wire = item.raw if item.raw is not None else [encode_command(item.command)]
        t = type(decision)
        if decision is None or t is routing.Block:
            self._send_silent(wire)  # a blocking command sent silently is not unblocked for a pause either
        elif isinstance(decision, routing.Track) and isinstance(decision.effect, (SetDb, SetName, SetReadonly)):
            # No reply will confirm it: taken as done, as Redis would do it unless it is wrong.
            self._send_silent([decision.wire] if decision.wire is not None else wire)
            self.authed = self.authed or decision.authenticate
            self._apply_effect(decision.effect)
        elif isinstance(decision, routing.Forward):
            self._send_silent([decision.wire] if decision.wire is not None else wire)  # ids mapped; no reply to rewrite
        elif t is routing.Answer:  # the proxy's own reply: not sent either
            assert isinstance(decision, routing.Answer)
            self.authed = self.authed or decision.authenticate
            if decision.after == After.CLOSE:
                self._close("closed as asked (QUIT)")
        elif t is routing.Refuse:
            self.stats.proxy_errors += 1  # unseen, as Redis's own errors are while replies are off
        else:
            # Transactions, HELLO, AUTH (pass-through), CLIENT TRACKING, RESET, MONITOR,
            # SYNC: what they change is known only from their replies. Closing is honest; a
            # silent guess could run commands the client believes were not run.
            name = item.command[0].decode(errors="replace").upper()
            self._close(
                f"{name} while CLIENT REPLY is OFF or SKIP: the proxy cannot follow it (doc/compatibility.md)",
                logging.WARNING,
            )

    def _fence(self, now: float) -> None:
        """Commands went out with no reply: one that has a reply follows them, so a pause waits until they ran."""
        first, *restore = self.reply_mode.fence()
        self.actions.append(WriteUplink([first]))
        self._expect(Replace(b"", now), 1)  # its +OK is the proxy's
        if restore:
            self.actions.append(WriteUplink(restore))

    def _start_stream(self, wire: list[bytes]) -> None:
        """SYNC/PSYNC: everything from here on, both ways, is passed through as bytes."""
        self.streaming = True
        self._update_offpath()
        self.actions.append(WriteUplink(wire))
        self.stats.commands += 1
        if self.partial is not None:
            self.actions.append(WriteClient(bytes(self.partial)))  # nothing is replaced any more
            self.partial = None
        self._settle()  # replies still owed stream through uncounted: a replica holds no pause
        self._set_txn(False, False)
        out: list[bytes] = []
        for held in self.queue:
            if type(held) is Held:
                out.extend(held.raw if held.raw is not None else (encode_command(held.command),))
        self.queue = ()  # core.NO_QUEUE: nothing held
        self.held_bytes = 0
        unframed = self.requests.take_unframed()
        if unframed:
            out.append(unframed)
        if out:
            self.actions.append(WriteUplink(out))
        self._read_again_if_drained()

    def _reset(self, now: float) -> None:
        """RESET: the proxy's state for this client starts afresh; upstream, RESET runs and the proxy's own AUTH is replayed.

        In pass-through mode RESET de-authenticates, as it does directly: the
        connection is the default user's again and the credentials are gone
        (the fresh state has none; there is no proxy AUTH to replay).
        """
        self.state = SessionState()
        self._set_txn(False, False)
        self.txn_effects = []
        self.txn_queued = 0
        self.txn_hello = False
        self.authed = self.password is None
        self.requests.unauthenticated = not self.authed
        if not self._uplink_current():
            self._local(Local(b"+RESET\r\n", After.NOTHING))
            return
        self._send([b"*1\r\n$5\r\nRESET\r\n"], Tracked(ResetConnection(), now, False), 1)
        if self.uplink_auth is not None:
            self._send([self.uplink_auth], Replace(b"", now), 1)

    def _track(self, decision: routing.Track, wire: list[bytes], now: float) -> None:
        effect = decision.effect
        entry = Tracked(effect, now, self.in_multi, self.txn_queued)
        self.txn_queued += self.in_multi
        sent: Pending = entry
        if type(effect) is SetProtocol and not self.in_multi:
            # Commands pipelined behind HELLO are in the new protocol; a refusal puts it back.
            self.state.resp3 = effect.resp3
            self.latest_hello = entry
            sent = Rewrite(REWRITE_HELLO, now, entry)  # its `id` is the proxy's
        elif type(effect) is SetProtocol:
            self.txn_hello = True
        elif type(effect) is SetTracking:
            self._expect_pushes()
            if effect.on is not None and effect.on.redirect:
                self.ids.naming(effect.on.redirect)
        self._send([decision.wire] if decision.wire is not None else wire, sent, 1)
        if (
            self.uplink_id is None
            and (type(effect) is SetAuth or (type(effect) is SetProtocol and effect.credentials is not None))
            and not self.in_multi
        ):
            # Pass-through: the connection was opened before the client's AUTH,
            # so the handshake's CLIENT ID was refused (NOAUTH). Once the AUTH
            # is accepted, the id is learnt (needed for CLIENT UNBLOCK at a
            # pause and to map client ids); the reply is the proxy's.
            self._send([CLIENT_ID], Rewrite(REWRITE_LEARN_ID, now), 1)

    def _subscribe(self, decision: routing.Subscribe, wire: list[bytes], now: float) -> None:
        target = self._subscription_set(decision.kind)
        channels = decision.channels
        added: tuple[bytes, ...] = ()
        if decision.unsubscribe:
            # One confirmation per channel named, or per channel dropped, or
            # one (with no channel) when there was none to drop.
            confirmations = len(channels) if channels else max(1, len(target))
            if channels:
                target.difference_update(channels)
            else:
                target.clear()
        else:
            added = tuple(channel for channel in dict.fromkeys(channels) if channel not in target)
            target.update(channels)
            confirmations = len(channels)
        self._send(wire, Subscription(decision.kind, confirmations, added, now), confirmations)

    def _txn(self, decision: routing.Txn, wire: list[bytes], now: float) -> None:
        kind = decision.kind
        entry: Pending
        if kind == Kind.MULTI:
            self._set_txn(True, self.watching)
            self.txn_queued = 0
            entry = Tracked(StartTxn(), now, False)
        elif kind in (Kind.EXEC, Kind.DISCARD):
            self._set_txn(False, False)
            unsettling = self.txn_hello and kind == Kind.EXEC
            self.txn_hello = False
            self.unsettled += unsettling
            entry = Tracked(Exec(kind == Kind.EXEC, unsettling), now, False)
        elif kind == Kind.WATCH:
            entry = Tracked(Watch(self.watching), now, False)
            self._set_txn(False, True)
        else:  # UNWATCH
            self._set_txn(False, False)
            entry = Plain(1, now)
        self._send(wire, entry, 1)
