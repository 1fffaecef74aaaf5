"""What the admin app tells about the proxy: /info.json, the legacy /status.json, and scrubbing.

Everything here is read from the live objects at request time; nothing is
cached, so the numbers are always current and the hot path does no extra work.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from redis_proxy.config import redacted

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

# Plain integer counters of `Stats`, in the order the page shows them.
COUNTER_FIELDS: tuple[str, ...] = (
    "commands",
    "error_replies",
    "proxy_errors",
    "bytes_from_clients",
    "bytes_to_clients",
    "clients_total",
    "time_limit_kills",
    "uplink_failures",
    "reloads",
    "reload_failures",
    "switches",
)

REMOVED = "[removed]"


def counters(proxy: Proxy) -> dict[str, int]:
    stats = proxy.stats
    return {name: int(getattr(stats, name)) for name in COUNTER_FIELDS}


def commands_by_name(proxy: Proxy) -> dict[str, int]:
    # names() folds unknown spellings into OTHER, so the keys are a bounded
    # set of ASCII command names; most used first, which is what people look for.
    named = proxy.stats.names()
    ordered = sorted(named.items(), key=lambda item: (-item[1], item[0]))
    return {name.decode("ascii", "replace"): count for name, count in ordered}


def info(proxy: Proxy) -> dict[str, Any]:
    """The proxy's state, counters and (redacted) config: GET /info.json."""
    data = proxy.info()
    data["uptime_s"] = round(time.time() - proxy.stats.started, 3)
    health = proxy.health
    data["uplink_up"] = health.up
    # Reason and time only while it is down: null otherwise, so a dashboard
    # can show them whenever they are set.
    data["uplink_down_reason"] = scrub(proxy, health.reason or "") if not health.up else None
    data["uplink_down_since"] = health.since if not health.up else None
    data["counters"] = counters(proxy)
    data["commands_by_name"] = commands_by_name(proxy)
    data["uplinks"] = uplinks(proxy)
    data["switchover"] = switchover(proxy)
    data["failover"] = failover(proxy)
    data["sentinel"] = sentinel(proxy)
    data["config"] = redacted(proxy.config)
    return data


def uplinks(proxy: Proxy) -> dict[str, dict[str, Any]]:
    """Every named uplink as the background poller last saw it ({} without named uplinks)."""
    records = proxy.uplinks_status.to_json()
    for record in records.values():
        if record["error"]:
            record["error"] = scrub(proxy, record["error"])
    return records


def switchover(proxy: Proxy) -> dict[str, Any]:
    """The running or last switchover. Read through the proxy: each switchover replaces the object."""
    data = proxy.switchover_status.to_json()
    # Errors and events quote servers' replies: scrubbed like every other message.
    if data["error"]:
        data["error"] = scrub(proxy, data["error"])
    data["events"] = [{**event, "msg": scrub(proxy, str(event["msg"]))} for event in data["events"]]
    return data


def failover(proxy: Proxy) -> dict[str, Any]:
    """Automatic failover's state and its last failover (events scrubbed: they quote servers' replies)."""
    data = proxy.failover.status.to_json()
    last = data["last"]
    if last is not None:
        last["reason"] = scrub(proxy, last["reason"])
        last["error"] = scrub(proxy, last["error"]) if last["error"] else None
        last["events"] = [{**event, "msg": scrub(proxy, str(event["msg"]))} for event in last["events"]]
    return data


def sentinel(proxy: Proxy) -> dict[str, Any] | None:
    """Following Sentinel: the sentinels, the master, the last event and failovers (null without a sentinel section)."""
    if proxy.sentinel is None:
        return None
    data = proxy.sentinel.to_json()
    for link in data["sentinels"]:
        if link["error"]:
            link["error"] = scrub(proxy, link["error"])
    return data


def legacy_status(proxy: Proxy) -> dict[str, Any]:
    """The shape of the Go redis-proxy's status JSON, for existing dashboards and scripts."""
    controller = proxy.controller
    return {
        "ActiveRequests": proxy.in_flight(),
        "WaitingRequests": controller.waiting,
        "State": controller.state,
        "Config": redacted(proxy.config),
        "RawConnections": proxy.raw_clients(),
    }


def passwords(proxy: Proxy) -> list[str]:
    """Every password in the live config (uplink, named uplinks, listen, admin, peers)."""
    config = proxy.config
    found = [config.uplink.password, config.listen.password]
    found.extend(section.password for section in config.uplinks.values())
    found.extend(peer.password for peer in config.peers)
    if config.admin is not None:
        found.append(config.admin.password)
    if config.sentinel is not None:
        found.append(config.sentinel.password)
    return [p for p in found if p]


def scrub(proxy: Proxy, text: str) -> str:
    """Remove the live config's passwords from a message meant for the operator.

    Error messages are written not to contain secrets; this is a second line
    of defence for text that comes from elsewhere (e.g. an uplink's reply),
    since an admin page may be shown to people who must not see them.
    """
    for secret in sorted(passwords(proxy), key=len, reverse=True):
        text = text.replace(secret, REMOVED)
    return text
