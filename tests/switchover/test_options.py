"""Switchover parameters from form fields or JSON."""

from __future__ import annotations

import pytest

from redis_proxy.switchover.options import OptionError, Options, parse_options


def test_defaults_and_values() -> None:
    assert parse_options({}) == Options()
    options = parse_options({"max_lag_bytes": "0", "max_hold_ms": 50, "retries": "1", "reverse": "false", "force": True})
    assert options == Options(max_lag_bytes=0, max_hold_ms=50, retries=1, reverse=False, force=True)


def test_copy_mode_options() -> None:
    options = parse_options(
        {"mode": "copy", "max_dirty_keys": "10", "verify_sample": "0", "max_copy_ops": "0", "max_copy_bytes": 5, "fence": "pause"}
    )
    assert options == Options(mode="copy", max_dirty_keys=10, verify_sample=0, max_copy_ops=0, max_copy_bytes=5, fence="pause")
    assert (Options().mode, Options().max_dirty_keys, Options().verify_sample) == ("replica", 1000, 1000)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_hold_ms": "0"}, "max_hold_ms must be an integer from 1 to 60000"),
        ({"max_hold_ms": True}, "max_hold_ms must be an integer"),
        ({"retries": "-1"}, "retries must be an integer"),
        ({"reverse": "maybe"}, "reverse must be true or false"),
        ({"mode": "rsync"}, "mode must be one of: replica, copy"),
        ({"mode": "copy", "fence": "wall"}, "fence must be one of: proxy, pause, refuse"),
        ({"mode": "copy", "max_copy_ops": "-5"}, "max_copy_ops must be an integer"),
        ({"max_copy_op": "5"}, "unknown field.s. max_copy_op .known: "),
        ({"fence": "pause"}, "fence apply only to mode=copy"),
        ({"mode": "copy", "reverse": "false"}, "reverse apply only to mode=replica"),
    ],
)
def test_bad_values_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_options(fields)
