"""The dirty set: marks in, rounds out, and what an unfinished round puts back."""

from __future__ import annotations

from command_reply_7_0 import COMMAND_REPLY_7_0 as REPLY

from redis_proxy.migration.keyspecs import ALL_DBS, KeySpecs
from redis_proxy.migration.tracker import MAX_SCRIPTS, WriteTracker


def tracker() -> WriteTracker:
    return WriteTracker(KeySpecs.parse(REPLY))


def test_marks_collect_per_database_and_a_round_takes_them_all() -> None:
    t = tracker()
    t.mark([(0, b"a"), (0, b"a"), (2, b"b")])
    assert len(t) == 2 and not t.needs_whole
    taken = t.take()
    assert taken.keys == {0: {b"a"}, 2: {b"b"}}
    assert len(t) == 0 and t.dirty.empty


def test_whole_databases_and_all_of_them() -> None:
    t = tracker()
    t.mark([(3, None)])
    assert t.needs_whole and t.dirty.whole == {3}
    t.mark([(ALL_DBS, None)])
    assert t.take().all_dbs


def test_an_unfinished_round_is_put_back() -> None:
    t = tracker()
    t.mark([(0, b"a"), (1, None)])
    taken = t.take()
    t.mark([(0, b"b")])
    t.mark_dirty(taken)
    assert t.dirty.keys == {0: {b"a", b"b"}} and t.dirty.whole == {1}


def test_scripts_clients_load_are_remembered_once() -> None:
    t = tracker()
    assert t.writes([b"SCRIPT", b"LOAD", b"return 1"], 0) is None
    assert t.writes([b"eval", b"return 2", b"1", b"k"], 0) == [(0, b"k")]
    t.writes([b"script", b"load", b"return 1"], 0)
    t.writes([b"SCRIPT", b"FLUSH"], 0)
    assert list(t.scripts) == [b"return 1", b"return 2"]


def test_remembered_scripts_are_bounded() -> None:
    t = tracker()
    for n in range(MAX_SCRIPTS + 5):
        t.writes([b"SCRIPT", b"LOAD", b"return %d" % n], 0)
    assert len(t.scripts) == MAX_SCRIPTS
