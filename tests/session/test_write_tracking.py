"""Write tracking in the session core (copy-mode migration): which keys are marked, and when."""

from __future__ import annotations

import random

from test_core import cmd, ready, to_client, upstream

from redis_proxy.session.core import SessionCore
from redis_proxy.migration.keyspecs import Mark
from redis_proxy.session.write_tracking import TrackingSessionCore, start_tracking, stop_tracking

WRITERS = {b"SET", b"INCR", b"DEL", b"RPUSH", b"FLUSHDB"}


class Recorder:
    """Marks as a tracker would get them; a toy key table: writers' first argument is their key."""

    def __init__(self) -> None:
        self.marked: list[Mark] = []

    def writes(self, command: list[bytes], db: int) -> list[Mark] | None:
        name = command[0].upper()
        if name == b"FLUSHDB":
            return [(db, None)]
        return [(db, command[1])] if name in WRITERS and len(command) > 1 else None

    def mark(self, marks: list[Mark]) -> None:
        self.marked.extend(marks)


def tracked() -> tuple[TrackingSessionCore, Recorder]:
    core, _, _ = ready()
    recorder = Recorder()
    return start_tracking(core, recorder), recorder


def test_a_key_is_marked_when_its_write_is_answered_not_when_sent() -> None:
    core, rec = tracked()
    actions = core.client_data(cmd("SET", "k", "v") + cmd("GET", "x"))
    assert upstream(actions) == cmd("SET", "k", "v") + cmd("GET", "x")
    assert rec.marked == []  # sent, maybe not executed yet: a copy taken now could miss it
    assert to_client(core.uplink_data(b"+OK\r\n$-1\r\n")) == b"+OK\r\n$-1\r\n"
    assert rec.marked == [(0, b"k")]


def test_replies_in_random_splits_mark_the_same() -> None:
    stream = b"".join(cmd("INCR", f"n{i}") for i in range(30))
    replies = b"".join(b":%d\r\n" % i for i in range(30))
    for seed in range(20):
        core, rec = tracked()
        core.client_data(stream)
        rng = random.Random(seed)
        at, out = 0, b""
        while at < len(replies):
            step = rng.randint(1, 7)
            out += to_client(core.uplink_data(replies[at: at + step]))
            at += step
        assert out == replies
        assert sorted(rec.marked) == sorted((0, f"n{i}".encode()) for i in range(30))


def test_a_transactions_keys_wait_for_exec() -> None:
    core, rec = tracked()
    core.client_data(cmd("MULTI") + cmd("SET", "a", "1") + cmd("RPUSH", "l", "x") + cmd("EXEC"))
    core.uplink_data(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n")
    assert rec.marked == []  # queued is not run
    core.uplink_data(b"*2\r\n+OK\r\n:1\r\n")
    assert sorted(rec.marked) == [(0, b"a"), (0, b"l")]


def test_discard_marks_nothing() -> None:
    core, rec = tracked()
    core.client_data(cmd("MULTI") + cmd("SET", "a", "1") + cmd("DISCARD") + cmd("SET", "b", "2"))
    core.uplink_data(b"+OK\r\n+QUEUED\r\n+OK\r\n+OK\r\n")
    assert rec.marked == [(0, b"b")]


def test_a_select_in_flight_marks_both_databases_then_only_the_new_one() -> None:
    core, rec = tracked()
    core.client_data(cmd("SELECT", "2") + cmd("SET", "k", "v"))
    core.uplink_data(b"+OK\r\n+OK\r\n")
    assert sorted(rec.marked) == [(0, b"k"), (2, b"k")]  # a refused SELECT would have left db 0
    rec.marked.clear()
    core.client_data(cmd("SET", "j", "v"))
    core.uplink_data(b"+OK\r\n")
    assert rec.marked == [(2, b"j")]


def test_a_select_inside_multi_counts_for_the_queued_writes() -> None:
    core, rec = tracked()
    core.client_data(cmd("MULTI") + cmd("SELECT", "3") + cmd("SET", "k", "v") + cmd("EXEC"))
    core.uplink_data(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+OK\r\n")
    assert (3, b"k") in rec.marked


def test_flushdb_marks_the_whole_database() -> None:
    core, rec = tracked()
    core.client_data(cmd("FLUSHDB"))
    core.uplink_data(b"+OK\r\n")
    assert rec.marked == [(0, None)]


def test_a_write_whose_outcome_is_unknown_is_marked_when_the_connection_is_lost() -> None:
    core, rec = tracked()
    core.client_data(cmd("SET", "k", "v"))
    core.uplink_lost("gone")
    assert rec.marked == [(0, b"k")]


def test_commands_in_flight_before_tracking_are_its_barrier() -> None:
    core, _, _ = ready()
    core.client_data(cmd("SET", "early", "1") + cmd("SET", "early2", "1"))
    rec = Recorder()
    tracking = start_tracking(core, rec)
    assert not tracking.settled_before_tracking
    tracking.client_data(cmd("SET", "late", "1"))
    tracking.uplink_data(b"+OK\r\n")
    assert not tracking.settled_before_tracking  # one of the batch's two
    tracking.uplink_data(b"+OK\r\n")
    assert tracking.settled_before_tracking
    assert rec.marked == []  # their keys are unknown: the barrier is what covers them
    tracking.uplink_data(b"+OK\r\n")
    assert rec.marked == [(0, b"late")]


def test_an_open_transaction_at_the_start_marks_the_whole_database_at_exec() -> None:
    core, _, _ = ready()
    core.client_data(cmd("MULTI") + cmd("SET", "a", "1"))
    core.uplink_data(b"+OK\r\n+QUEUED\r\n")
    rec = Recorder()
    tracking = start_tracking(core, rec)
    tracking.client_data(cmd("EXEC"))
    tracking.uplink_data(b"*1\r\n+OK\r\n")
    assert rec.marked == [(-1, None)]  # a SELECT may be among them: every database


def test_stop_tracking_restores_the_plain_core() -> None:
    core, rec = tracked()
    stop_tracking(core)
    assert type(core) is SessionCore
    core.client_data(cmd("SET", "k", "v"))
    core.uplink_data(b"+OK\r\n")
    assert rec.marked == []


def test_a_blocking_command_in_flight_at_the_start_counts_a_select_before_it() -> None:
    core, _, _ = ready()
    core.client_data(cmd("SELECT", "2") + cmd("BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"))
    rec = Recorder()
    rec.writes = lambda command, db: [(db, command[1])] if command[0] == b"BLMOVE" else None  # type: ignore[method-assign]
    tracking = start_tracking(core, rec)
    tracking.uplink_data(b"+OK\r\n")
    assert rec.marked == []
    tracking.uplink_data(b"$1\r\nx\r\n")
    assert sorted(rec.marked) == [(0, b"src"), (2, b"src")]


def test_a_silent_write_waiting_for_a_later_reply_is_marked_when_the_client_goes() -> None:
    core, rec = tracked()
    core.client_data(cmd("CLIENT", "REPLY", "OFF") + cmd("SET", "k", "v"))
    assert rec.marked == [(0, b"k")]  # marked when sent (no reply will come)...
    core.client_lost()
    assert rec.marked == [(0, b"k"), (0, b"k")]  # ...and again once it has surely run, or never will
    assert not core.awaiting
