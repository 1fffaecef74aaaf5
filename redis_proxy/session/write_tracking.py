"""Write tracking for a copy-mode migration: which keys the commands of a session may have written, and when.

A session's core becomes a `TrackingSessionCore` (its class is swapped in
place) when a copy-mode migration starts and goes back to `SessionCore`
when it ends, so the hot path costs nothing while no migration runs: the
plain `SessionCore` has no check for it at all.

While tracking, every forwarded command is seen: a batch on the hot path
(`_on_batch`), or one by one the held way (`_forward`, `_apply`). A key is marked dirty when the command that may write
it has been *answered*, not when it is sent: a copy of the key taken
between the send and the execution would otherwise miss the write for
good. Answered means the session's count of answered commands reached the
command's place (`sent_total - outstanding`: replies count `outstanding`
down, and a lost connection or a closed client settles it to zero, so a
command whose outcome is unknown is marked then too). Commands queued
inside MULTI run at EXEC: their keys wait for EXEC's answer.

The database a key lives in is the one selected as of the replies
(`state.db`) plus every database a SELECT (or RESET) still in flight may
switch to: a refused SELECT leaves the old one, so both are marked.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

from redis_proxy.migration.keyspecs import ALL_DBS, Mark
from redis_proxy.session import routing
from redis_proxy.session.core import SessionCore
from redis_proxy.session.types import Action, Blocking, Held, Pending, SetDb, Tracked, owed

if TYPE_CHECKING:
    from redis_proxy.resp import Batch


class Marks(Protocol):
    """What the session reports to (the migration's `WriteTracker`)."""

    def writes(self, command: list[bytes], db: int) -> list[Mark] | None: ...
    def mark(self, marks: list[Mark]) -> None: ...


_EXEC, _DISCARD = b"EXEC", b"DISCARD"


class TrackingSessionCore(SessionCore):
    # Set by start_tracking (the class is swapped in, so __init__ never runs).
    marks: Marks
    sent_total: int  # commands forwarded that the uplink answers, since tracking started (plus those in flight then)
    barrier: int  # the answered count at which every command sent before tracking started has been answered
    awaiting: deque[tuple[int, list[Mark]]]  # (answered count that settles it, its marks), in order
    txn_marks: list[Mark]  # queued inside the open MULTI: marked when EXEC is answered
    txn_dbs: list[int]  # SELECTs queued inside the open MULTI
    select_dbs: deque[tuple[int, int]]  # (answered count, db) of SELECT/RESET in flight

    # -- what the migration reads ------------------------------------------------------------

    @property
    def answered(self) -> int:
        return self.sent_total - self.outstanding

    @property
    def settled_before_tracking(self) -> bool:
        return self.answered >= self.barrier

    # -- seeing every command ----------------------------------------------------------------

    def _on_batch(self, batch: Batch) -> None:
        outstanding, sent = self.outstanding, self.sent_total
        super()._on_batch(batch)
        # The hot path forwards a whole batch without `_expect` (inlined) or
        # `_forward`: seen here as in-flight growth `_expect` did not count.
        # (No reply can arrive during the call, so `outstanding` only grew.)
        hot = (self.outstanding - outstanding) - (self.sent_total - sent)
        if hot > 0:
            self.sent_total += hot
            marks: list[Mark] = []
            for command in batch.commands:
                self._writes(command, marks)
            self._after_send(marks, self.in_multi)

    def _expect(self, entry: Pending, count: int) -> None:
        self.sent_total += count
        super()._expect(entry, count)

    def _forward(self, plain: list[Held], now: float) -> None:
        if not plain:
            return
        marks: list[Mark] = []
        for item in plain:
            self._writes(item.command, marks)
        in_multi = self.in_multi
        super()._forward(plain, now)
        self._after_send(marks, in_multi)

    def _apply(self, decision: routing.Decision, item: Held, now: float) -> None:
        command = item.command
        name = command[0].upper()
        in_multi = self.in_multi
        marks: list[Mark] = []
        self._writes(command, marks)
        super()._apply(decision, item, now)
        if type(decision) is routing.Track and isinstance(decision.effect, SetDb):
            if in_multi:
                self.txn_dbs.append(decision.effect.db)
            else:
                self.select_dbs.append((self.sent_total, decision.effect.db))
        elif type(decision) is routing.Reset:
            self.select_dbs.append((self.sent_total, 0))
            self.txn_marks, self.txn_dbs = [], []
        if in_multi and name == _EXEC:
            marks.extend(self.txn_marks)
            for db in self.txn_dbs:
                self.select_dbs.append((self.sent_total, db))
            self.txn_marks, self.txn_dbs = [], []
            self._await(marks)
        elif in_multi and name == _DISCARD:
            self.txn_marks, self.txn_dbs = [], []
        else:
            self._after_send(marks, in_multi)

    def _offpath(self, decision: routing.Decision, item: Held, now: float) -> None:
        # CLIENT REPLY OFF/SKIP: no reply settles it. Marked now, and again
        # once the next command on this connection is answered (Redis runs
        # a connection's commands in order); a lost connection settles it.
        marks: list[Mark] = []
        self._writes(item.command, marks)
        old_db = self.state.db
        super()._offpath(decision, item, now)
        if marks:
            self.marks.mark(marks)
            self.awaiting.append((self.sent_total + 1, marks))
        if type(decision) is routing.Track and isinstance(decision.effect, SetDb):
            # Taken as done, unanswered: should Redis refuse it, writes still go to the old database.
            self.select_dbs.append((self.sent_total + 1, old_db))

    def _after_send(self, marks: list[Mark], in_multi: bool) -> None:
        if in_multi:
            self.txn_marks.extend(marks)
        else:
            self._await(marks)

    def _await(self, marks: list[Mark]) -> None:
        if marks:
            self.awaiting.append((self.sent_total, marks))

    def _writes(self, command: list[bytes], out: list[Mark]) -> None:
        """Add what `command` may write, in every database it may run in."""
        db = self.state.db
        found = self.marks.writes(command, db)
        if found is not None:
            out.extend(found)
        if self.select_dbs or self.txn_dbs:
            for other in {d for _, d in self.select_dbs} | set(self.txn_dbs):
                if other != db and (more := self.marks.writes(command, other)) is not None:
                    out.extend(more)

    # -- settling: marks once their commands are answered ---------------------------------------

    def uplink_data(self, data: bytes) -> list[Action]:
        actions = super().uplink_data(data)
        self._settle_marks()
        return actions

    def _settle(self) -> None:
        super()._settle()
        # The connection is gone or the client is: whatever was sent has run
        # or never will; marked now, also what waited for a later reply.
        while self.awaiting:
            self.marks.mark(self.awaiting.popleft()[1])
        self.select_dbs.clear()

    def _settle_marks(self) -> None:
        answered = self.sent_total - self.outstanding
        awaiting = self.awaiting
        while awaiting and awaiting[0][0] <= answered:
            self.marks.mark(awaiting.popleft()[1])
        selects = self.select_dbs
        while selects and selects[0][0] <= answered:
            selects.popleft()  # state.db has its outcome now


def start_tracking(core: SessionCore, marks: Marks) -> TrackingSessionCore:
    """Track `core`'s writes from now on; the commands already in flight are its barrier.

    Their keys are unknown (plain entries keep no commands), except for
    blocking ones, which may run long after this: those are marked when
    answered. An open transaction's queued commands are unknown too: every
    database is marked when its EXEC is answered.
    """
    if isinstance(core, TrackingSessionCore) and core.marks is marks:
        return core  # already tracked (a session that connected as the migration began)
    core.__class__ = TrackingSessionCore
    assert isinstance(core, TrackingSessionCore)
    core.marks = marks
    core.awaiting, core.select_dbs = deque(), deque()
    core.txn_marks, core.txn_dbs = [], []
    position = barrier = 0
    dbs = {core.state.db}  # the databases a command may run in: SELECTs in flight may change it
    for entry in core.pending:
        position += owed(entry)
        if type(entry) is Tracked and isinstance(entry.effect, SetDb) and not entry.in_multi:
            dbs.add(entry.effect.db)
            core.select_dbs.append((position, entry.effect.db))
        if type(entry) is Blocking:
            found = [mark for db in dbs for mark in (marks.writes(list(entry.command), db) or ())]
            if found:
                core.awaiting.append((position, found))
        elif owed(entry):
            barrier = position
    # Replies count `outstanding` down a whole entry at a time, so an entry
    # is answered once the answered count reaches its place in the queue.
    core.sent_total = core.outstanding
    core.barrier = barrier if position == core.outstanding else core.outstanding
    if core.in_multi:
        # Its queued commands are unknown, a SELECT among them too: every database.
        core.txn_marks.append((ALL_DBS, None))
    return core


def stop_tracking(core: SessionCore) -> None:
    if type(core) is TrackingSessionCore:
        setattr(core, "__class__", SessionCore)  # noqa: B010 (mypy: the narrowed type cannot be assigned)
