"""Parsing what sentinels publish and answer: pure functions, no processes."""

from __future__ import annotations

import pytest

from redis_proxy.sentinel.events import (
    ABORTED,
    CHANNELS,
    NOTED,
    PATTERNS,
    PROMOTED,
    STARTED,
    SWITCHED,
    Event,
    MasterState,
    format_addr,
    parse_addr_reply,
    parse_event,
    parse_master_reply,
)

# As redis-server 7.0 --sentinel publishes them (captured from a SENTINEL FAILOVER).
SELECTED = "slave 127.0.0.1:17002 127.0.0.1 17002 @ mymaster 127.0.0.1 17001"


def test_the_start_of_a_failover_names_the_replica_being_promoted() -> None:
    for channel in ("+selected-slave", "+failover-state-send-slaveof-noone"):
        assert parse_event(channel, SELECTED) == Event(channel, STARTED, "mymaster", "127.0.0.1:17002", SELECTED)


def test_promotion_and_switch_name_the_new_master() -> None:
    promoted = parse_event(b"+promoted-slave", SELECTED.encode())
    assert promoted is not None and (promoted.kind, promoted.master, promoted.addr) == (PROMOTED, "mymaster", "127.0.0.1:17002")
    switched = parse_event("+switch-master", "mymaster 127.0.0.1 17001 127.0.0.1 17002")
    assert switched is not None and (switched.kind, switched.master, switched.addr) == (SWITCHED, "mymaster", "127.0.0.1:17002")


def test_aborts_name_the_master_and_no_new_address() -> None:
    for channel in ("-failover-abort-not-elected", "-failover-abort-no-good-slave", "-failover-abort-slave-timeout"):
        event = parse_event(channel, "master mymaster 127.0.0.1 17001")
        assert event is not None and (event.kind, event.master, event.addr) == (ABORTED, "mymaster", None)
    # Older servers add the failover epoch after the instance.
    event = parse_event("-failover-abort-no-good-slave", "master other 10.0.0.1 6379 7")
    assert event is not None and event.master == "other"


def test_informational_events_change_nothing() -> None:
    for channel in ("+odown", "-odown", "+try-failover", "+failover-end", "+failover-end-for-timeout"):
        event = parse_event(channel, "master mymaster 127.0.0.1 17001 #quorum 2/2")
        assert event is not None and event.kind == NOTED and event.addr is None and event.master == "mymaster"


def test_other_masters_are_told_apart_by_name() -> None:
    event = parse_event("+selected-slave", "slave 10.0.0.2:6379 10.0.0.2 6379 @ cache 10.0.0.1 6379")
    assert event is not None and event.master == "cache"


def test_ipv6_addresses_get_brackets() -> None:
    event = parse_event("+switch-master", "mymaster ::1 6379 ::1 6380")
    assert event is not None and event.addr == "[::1]:6380"
    assert format_addr("::1", 6380) == "[::1]:6380" and format_addr("redis-1", "6379") == "redis-1:6379"


@pytest.mark.parametrize(
    ("channel", "text"),
    [
        ("+sdown", "master mymaster 127.0.0.1 17001"),  # not followed
        ("__sentinel__:hello", "127.0.0.1,26379,abc,1,mymaster,127.0.0.1,17001,1"),
        ("+switch-master", "mymaster 127.0.0.1 17001"),  # truncated
        ("+switch-master", "mymaster 127.0.0.1 17001 127.0.0.1 port"),
        ("+selected-slave", "slave 127.0.0.1:17002 127.0.0.1"),
        ("+selected-slave", "slave 127.0.0.1:17002 127.0.0.1 17002"),  # a replica without its master
        ("+promoted-slave", ""),
    ],
)
def test_what_does_not_parse_is_dropped(channel: str, text: str) -> None:
    assert parse_event(channel, text) is None


def test_every_followed_channel_parses() -> None:
    assert "+switch-master" in CHANNELS and "+promoted-slave" in CHANNELS and PATTERNS == ("-failover-abort-*",)


def test_sentinel_master_reply_gives_the_address_and_epoch() -> None:
    flat = ["name", "mymaster", "ip", "127.0.0.1", "port", "17001", "flags", "master", "config-epoch", "3"]
    assert parse_master_reply(flat) == MasterState("127.0.0.1:17001", 3)
    assert parse_master_reply([item.encode() for item in flat]) == MasterState("127.0.0.1:17001", 3)
    assert parse_master_reply({"ip": "::1", "port": "6379"}) == MasterState("[::1]:6379", None)
    with pytest.raises(ValueError):
        parse_master_reply(["name", "mymaster"])
    with pytest.raises(ValueError):
        parse_master_reply(b"OK")


def test_get_master_addr_reply() -> None:
    assert parse_addr_reply([b"127.0.0.1", b"17001"]) == MasterState("127.0.0.1:17001")
    assert parse_addr_reply(None) is None
    with pytest.raises(ValueError):
        parse_addr_reply([b"127.0.0.1"])
