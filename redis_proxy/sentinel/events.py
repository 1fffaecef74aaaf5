"""What sentinels publish and answer, parsed: pure functions, no I/O.

A sentinel publishes each event on a channel named after it, with the
instance it is about: `<type> <name> <ip> <port> [@ <master-name> <master-ip>
<master-port>] [more]` (the `@` part for replicas and sentinels, not for a
master), except `+switch-master`: `<master-name> <old-ip> <old-port> <new-ip>
<new-port>`. Events about other masters a sentinel monitors are dropped by
the caller, by `Event.master`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# What an event means to the proxy.
STARTED = "started"  # the leader chose the replica to promote: hold clients before it is promoted
PROMOTED = "promoted"  # the leader saw the replica report role master and committed the new config
SWITCHED = "switched"  # a sentinel adopted the new master's address (every sentinel says it)
ABORTED = "aborted"  # the leader gave up: the old master stays
NOTED = "noted"  # shown in info.json and the log; changes nothing

_KINDS: dict[str, str] = {
    "+selected-slave": STARTED,
    "+failover-state-send-slaveof-noone": STARTED,
    "+promoted-slave": PROMOTED,
    "+switch-master": SWITCHED,
    "+odown": NOTED,
    "-odown": NOTED,
    "+try-failover": NOTED,
    "+failover-end": NOTED,
    "+failover-end-for-timeout": NOTED,
}
ABORT_PREFIX = "-failover-abort-"  # -not-elected, -no-good-slave, -slave-timeout (and older servers' others)

CHANNELS: tuple[str, ...] = tuple(_KINDS)
PATTERNS: tuple[str, ...] = (ABORT_PREFIX + "*",)


@dataclass(frozen=True)
class Event:
    channel: str
    kind: str
    master: str  # the master's name
    addr: str | None  # STARTED, PROMOTED: the replica being promoted; SWITCHED: the new master
    text: str  # the message as published, for the log and info.json


@dataclass(frozen=True)
class MasterState:
    """A sentinel's answer: where the master is, and the config epoch it was set in (None when not told)."""

    addr: str
    epoch: int | None = None


def format_addr(host: str, port: int | str) -> str:
    """host:port, IPv6 in brackets (as the config writes addresses)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _instance(tokens: list[str]) -> tuple[str, str | None] | None:
    """(master name, the instance's address) from instance details; None when they do not parse."""
    if len(tokens) < 4 or not tokens[3].isdigit():
        return None
    addr = format_addr(tokens[2], tokens[3])
    if tokens[0] == "master":
        return tokens[1], addr
    if len(tokens) >= 6 and tokens[4] == "@":
        return tokens[5], addr
    return None


def parse_event(channel: str | bytes, data: str | bytes) -> Event | None:
    """The event a sentinel published, or None for a channel that does not matter or a message that does not parse."""
    channel, text = _text(channel), _text(data)
    kind = ABORTED if channel.startswith(ABORT_PREFIX) else _KINDS.get(channel)
    if kind is None:
        return None
    tokens = text.split()
    if kind == SWITCHED:
        if len(tokens) < 5 or not tokens[4].isdigit():
            return None
        return Event(channel, kind, tokens[0], format_addr(tokens[3], tokens[4]), text)
    parsed = _instance(tokens)
    if parsed is None:
        return None
    master, addr = parsed
    # Only a replica's address is a new master; for a master instance it is the old one.
    new = addr if kind in (STARTED, PROMOTED) else None
    return Event(channel, kind, master, new, text)


def _pairs(reply: Any) -> dict[str, str]:
    if isinstance(reply, Mapping):
        return {_text(k): _text(v) for k, v in reply.items()}
    if isinstance(reply, Iterable) and not isinstance(reply, (str, bytes)):
        items = [_text(item) for item in reply]
        return dict(zip(items[::2], items[1::2], strict=False))
    raise ValueError(f"unexpected reply {reply!r:.100}")


def parse_master_reply(reply: Any) -> MasterState:
    """SENTINEL MASTER's reply (field, value, ...): the address and config epoch. ValueError if it lacks them."""
    fields = _pairs(reply)
    if "ip" not in fields or not fields.get("port", "").isdigit():
        raise ValueError("SENTINEL MASTER's reply has no ip and port")
    epoch = fields.get("config-epoch", "")
    return MasterState(format_addr(fields["ip"], fields["port"]), int(epoch) if epoch.isdigit() else None)


def parse_addr_reply(reply: Any) -> MasterState | None:
    """SENTINEL GET-MASTER-ADDR-BY-NAME's reply: [ip, port], or None (nil: the sentinel monitors no such master)."""
    if reply is None:
        return None
    items = [_text(item) for item in reply]
    if len(items) != 2 or not items[1].isdigit():
        raise ValueError(f"unexpected reply {reply!r:.100}")
    return MasterState(format_addr(items[0], items[1]))
