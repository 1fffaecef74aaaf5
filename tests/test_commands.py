"""The command table: which commands the proxy looks at, whatever their spelling."""

from __future__ import annotations

import pytest

from redis_proxy.commands import Kind, is_message, is_subscribe_reply, is_unsubscribe_reply, kind_of
from redis_proxy.session.hotpath import has_special as _has_special


@pytest.mark.parametrize("name", [b"select", b"SELECT", b"Select", b"sElEcT"])
def test_kind_ignores_case(name: bytes) -> None:
    assert kind_of(name) == Kind.SELECT


@pytest.mark.parametrize(
    "name, kind",
    [(b"GET", Kind.PLAIN), (b"AUTH", Kind.AUTH), (b"psubscribe", Kind.SUBSCRIBE), (b"SUNSUBSCRIBE", Kind.UNSUBSCRIBE),
     (b"MONITOR", Kind.MONITOR), (b"psync", Kind.SYNC), (b"SYNC", Kind.SYNC), (b"nonsense", Kind.PLAIN)],
)
def test_kinds(name: bytes, kind: Kind) -> None:
    assert kind_of(name) == kind


def test_fast_path_sees_every_special_command_in_any_case() -> None:
    for name in (b"AUTH", b"hello", b"Multi", b"exec", b"SUBSCRIBE", b"client", b"QuIt", b"reset"):
        assert _has_special([[b"GET", b"k"], [name]]), name
    assert not _has_special([[b"GET", b"k"], [b"set", b"k", b"v"], [b"Incr", b"x"]])


def test_pubsub_reply_kinds() -> None:
    assert is_subscribe_reply(b"psubscribe") and not is_subscribe_reply(b"message")
    assert is_unsubscribe_reply(b"sunsubscribe") and not is_unsubscribe_reply(b"subscribe")
    assert is_message(b"pmessage") and not is_message(None)
