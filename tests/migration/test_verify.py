"""Is a key the same on both servers: type, payload or value, TTL within the tolerance; and the copy's pace."""

from __future__ import annotations

import pytest

from redis_proxy.migration.copier import RateLimit
from redis_proxy.migration.verify import (
    MISSING_ON_SOURCE, MISSING_ON_TARGET, TTL, TYPE, VALUE, KeyState, comparable, compare_states, needs_values,
)

NONE = KeyState(None, None, -2)


def s(payload: bytes = b"p", pttl: int = -1, kind: str = "string") -> KeyState:
    return KeyState(kind, payload, pttl)


def category(a: KeyState, b: KeyState, tolerance: int = 1000) -> str | None:
    found = compare_states(a, b, tolerance)
    return None if found is None else found[0]


def test_the_same_key_on_both_sides() -> None:
    assert category(s(), s()) is None
    assert category(NONE, NONE) is None
    assert category(s(pttl=5000), s(pttl=4500)) is None


def test_what_differs_is_named() -> None:
    assert category(s(), NONE) == MISSING_ON_TARGET
    assert category(NONE, s()) == MISSING_ON_SOURCE
    assert category(s(kind="hash"), s()) == TYPE
    assert category(s(b"a"), s(b"b")) == VALUE
    assert category(s(pttl=5000), s()) == TTL
    assert category(s(pttl=5000), s(pttl=2000)) == TTL


def test_a_key_expiring_on_one_side_first_is_no_difference() -> None:
    assert category(s(pttl=300), NONE) is None
    assert category(NONE, s(pttl=300)) is None
    assert category(s(pttl=3000), NONE) == MISSING_ON_TARGET


def test_different_payloads_of_the_same_value_are_compared_by_value() -> None:
    a, b = s(b"one order", kind="set"), s(b"other order", kind="set")
    assert needs_values(a, b)
    a = a.with_value(comparable("set", [b"y", b"x"]))
    b = b.with_value(comparable("set", [b"x", b"y"]))
    assert category(a, b) is None
    assert comparable("hash", [b"f", b"1", b"e", b"2"]) == comparable("hash", [b"e", b"2", b"f", b"1"])
    assert comparable("module-type", b"x") is None  # not comparable: it differs
    assert category(s(b"1", kind="x").with_value(None), s(b"2", kind="x").with_value(None)) == VALUE


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_paces_keys_and_bytes() -> None:
    clock = FakeClock()
    limit = RateLimit(1000, 1_000_000, clock)
    assert limit.delay(500, 0) == pytest.approx(0.5)
    clock.now = 0.5
    assert limit.delay(100, 0) == pytest.approx(0.1)  # 600 keys are due at 0.6 s
    clock.now = 0.6
    assert limit.delay(0, 2_000_000) == pytest.approx(1.4)  # bytes: 2 MB are due at 2 s
    assert RateLimit(0, 0, clock).delay(10**9, 10**12) == 0.0


def test_groups_stay_under_the_byte_budget_and_big_items_go_alone() -> None:
    from redis_proxy.migration.copier import CHUNK_BYTES, _by_size

    sizes = {"a": 10, "b": CHUNK_BYTES, "c": 10, "d": 10}
    assert _by_size(list("abcd"), sizes.__getitem__) == [["a"], ["b"], ["c", "d"]]
    assert _by_size(list("acd"), sizes.__getitem__, max_items=2) == [["a", "c"], ["d"]]
