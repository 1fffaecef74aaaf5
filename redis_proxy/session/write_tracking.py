"""Write tracking for a copy-mode migration: which keys the commands of a session may have written, and when.

A session's core gets a `WriteTracking` (`SessionCore.writes`) when a
copy-mode migration starts and drops it when it ends; while no migration
runs, the hot path's only cost is one `writes is None` check per batch and
per read of replies. (The core's class used to be swapped in place for a
tracking subclass, with no check at all; classes compiled with mypyc allow
no such swap.)

While tracking, every forwarded command is seen: a batch on the hot path
(`_on_batch`), or one by one the held way (`_forward`, `_apply`, `_offpath`). A key is marked dirty when the command that may write
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
from typing import Protocol

from redis_proxy.migration.keyspecs import ALL_DBS, Mark
from redis_proxy.session import routing
from redis_proxy.session.core import SessionCore
from redis_proxy.session.types import Blocking, Held, SetDb, Tracked, owed


class Marks(Protocol):
    """What the session reports to (the migration's `WriteTracker`)."""

    def writes(self, command: list[bytes], db: int) -> list[Mark] | None: ...
    def mark(self, marks: list[Mark]) -> None: ...


_EXEC, _DISCARD = b"EXEC", b"DISCARD"


class WriteTracking:
    """One session's write tracking: `SessionCore.writes` while a copy-mode migration runs.

    The core calls it where a command leaves for the uplink (`sent_hot`,
    `before_send`/`after_sent`, `apply`, `offpath`), where `_expect`
    counts one in flight (`sent_total`), after the replies of a read
    (`settle_marks`) and when everything in flight is settled (`settled`).
    """

    def __init__(self, core: SessionCore, marks: Marks) -> None:
        self.core = core
        self.marks = marks
        self.sent_total = 0  # commands forwarded that the uplink answers, since tracking started (plus those in flight then)
        self.barrier = 0  # the answered count at which every command sent before tracking started has been answered
        self.awaiting: deque[tuple[int, list[Mark]]] = deque()  # (answered count that settles it, its marks), in order
        self.txn_marks: list[Mark] = []  # queued inside the open MULTI: marked when EXEC is answered
        self.txn_dbs: list[int] = []  # SELECTs queued inside the open MULTI
        self.select_dbs: deque[tuple[int, int]] = deque()  # (answered count, db) of SELECT/RESET in flight

    # -- what the migration reads ------------------------------------------------------------

    @property
    def answered(self) -> int:
        return self.sent_total - self.core.outstanding

    @property
    def settled_before_tracking(self) -> bool:
        return self.answered >= self.barrier

    @property
    def closing(self) -> bool:
        return self.core.closing

    # -- seeing every command ----------------------------------------------------------------

    def sent_hot(self, commands: list[list[bytes]]) -> None:
        """The hot path forwarded a whole batch without `_expect` (inlined there)."""
        self.sent_total += len(commands)
        marks: list[Mark] = []
        for command in commands:
            self._writes(command, marks)
        self._after_send(marks, self.core.in_multi)

    def before_send(self, plain: list[Held]) -> tuple[list[Mark], bool]:
        """A run of plain commands is about to be forwarded (`_forward`): what they may write."""
        marks: list[Mark] = []
        for item in plain:
            self._writes(item.command, marks)
        return marks, self.core.in_multi

    def after_sent(self, seen: tuple[list[Mark], bool]) -> None:
        self._after_send(*seen)

    def apply(self, decision: routing.Decision, item: Held, now: float) -> None:
        """`_apply` while tracking: the decision carried out, its writes and SELECTs seen."""
        core = self.core
        command = item.command
        name = command[0].upper()
        in_multi = core.in_multi
        marks: list[Mark] = []
        self._writes(command, marks)
        core._carry_out(decision, item, now)
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

    def offpath(self, decision: routing.Decision, item: Held, now: float) -> None:
        """`_offpath` while tracking. CLIENT REPLY OFF/SKIP: no reply settles it.
        Marked now, and again once the next command on this connection is
        answered (Redis runs a connection's commands in order); a lost
        connection settles it."""
        core = self.core
        marks: list[Mark] = []
        self._writes(item.command, marks)
        old_db = core.state.db
        core._offpath_untracked(decision, item, now)
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
        db = self.core.state.db
        found = self.marks.writes(command, db)
        if found is not None:
            out.extend(found)
        if self.select_dbs or self.txn_dbs:
            for other in {d for _, d in self.select_dbs} | set(self.txn_dbs):
                if other != db and (more := self.marks.writes(command, other)) is not None:
                    out.extend(more)

    # -- settling: marks once their commands are answered ---------------------------------------

    def settled(self) -> None:
        """`_settle` ran: the connection is gone or the client is. Whatever
        was sent has run or never will; marked now, also what waited for a
        later reply."""
        while self.awaiting:
            self.marks.mark(self.awaiting.popleft()[1])
        self.select_dbs.clear()

    def settle_marks(self) -> None:
        """After a read of replies: mark what its answers settled."""
        answered = self.sent_total - self.core.outstanding
        awaiting = self.awaiting
        while awaiting and awaiting[0][0] <= answered:
            self.marks.mark(awaiting.popleft()[1])
        selects = self.select_dbs
        while selects and selects[0][0] <= answered:
            selects.popleft()  # state.db has its outcome now


def start_tracking(core: SessionCore, marks: Marks) -> WriteTracking:
    """Track `core`'s writes from now on; the commands already in flight are its barrier.

    Their keys are unknown (plain entries keep no commands), except for
    blocking ones, which may run long after this: those are marked when
    answered. An open transaction's queued commands are unknown too: every
    database is marked when its EXEC is answered.
    """
    if core.writes is not None and core.writes.marks is marks:
        return core.writes  # already tracked (a session that connected as the migration began)
    writes = WriteTracking(core, marks)
    position = barrier = 0
    dbs = {core.state.db}  # the databases a command may run in: SELECTs in flight may change it
    for entry in core.pending:
        position += owed(entry)
        if type(entry) is Tracked and isinstance(entry.effect, SetDb) and not entry.in_multi:
            dbs.add(entry.effect.db)
            writes.select_dbs.append((position, entry.effect.db))
        if type(entry) is Blocking:
            found = [mark for db in dbs for mark in (marks.writes(list(entry.command), db) or ())]
            if found:
                writes.awaiting.append((position, found))
        elif owed(entry):
            barrier = position
    # Replies count `outstanding` down a whole entry at a time, so an entry
    # is answered once the answered count reaches its place in the queue.
    writes.sent_total = core.outstanding
    writes.barrier = barrier if position == core.outstanding else core.outstanding
    if core.in_multi:
        # Its queued commands are unknown, a SELECT among them too: every database.
        writes.txn_marks.append((ALL_DBS, None))
    core.writes = writes
    return writes


def stop_tracking(core: SessionCore) -> None:
    core.writes = None
