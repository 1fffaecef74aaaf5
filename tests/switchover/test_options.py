"""Switchover parameters from form fields or JSON."""

from __future__ import annotations

import pytest

from redis_proxy.switchover.options import OptionError, Options, parse_options


def test_defaults_and_values() -> None:
    assert parse_options({}) == Options()
    options = parse_options({"max_lag_bytes": "0", "max_hold_ms": 50, "retries": "1", "reverse": "false", "force": True})
    assert options == Options(max_lag_bytes=0, max_hold_ms=50, retries=1, reverse=False, force=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_hold_ms": "0"}, "max_hold_ms must be an integer from 1 to 60000"),
        ({"max_hold_ms": True}, "max_hold_ms must be an integer"),
        ({"retries": "-1"}, "retries must be an integer"),
        ({"reverse": "maybe"}, "reverse must be true or false"),
    ],
)
def test_bad_values_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_options(fields)
