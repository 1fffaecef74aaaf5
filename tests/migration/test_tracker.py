"""The dirty set: marks in, rounds out, and what an unfinished round puts back."""

from __future__ import annotations

import pytest
from command_reply_7_0 import COMMAND_REPLY_7_0 as REPLY

from redis_proxy.migration import tracker as tracker_module

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


def test_pfcount_and_scripts_in_any_case() -> None:
    t = tracker()
    assert t.writes([b"PFCOUNT", b"h1", b"h2"], 0) == [(0, b"h1"), (0, b"h2")]  # it caches its count
    t.writes([b"eVaL", b"return 3", b"0"], 0)
    t.writes([b"EVAL_RO", b"return 4", b"0"], 0)
    assert list(t.scripts) == [b"return 3", b"return 4"]


def test_scripts_untrusted_mark_their_whole_database() -> None:
    t = WriteTracker(KeySpecs.parse(REPLY), trust_script_keys=False)
    assert t.writes([b"EVALSHA", b"abc", b"1", b"k"], 4) == [(4, None)]
    assert WriteTracker(KeySpecs.parse(REPLY)).writes([b"EVALSHA", b"abc", b"1", b"k"], 4) == [(4, b"k")]


def test_too_many_dirty_keys_copy_the_database_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracker_module, "MAX_KEYS_PER_DB", 3)
    t = tracker()
    t.mark([(0, b"%d" % n) for n in range(5)] + [(1, b"x")])
    assert t.dirty.whole == {0} and t.dirty.keys == {1: {b"x"}}
