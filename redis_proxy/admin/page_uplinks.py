"""What the status page's named-uplinks table and its switchover, failover and Sentinel panels show.

Rows of (text, CSS class) that templates/index.html lays out (autoescaped)
and static/page.js rebuilds from info.json every second, so the wording here
and there must match.
"""

from __future__ import annotations

import datetime
from typing import Any

MAX_EVENTS_SHOWN = 10
DASH = "\u2014"
ARROW = "\u2192"

# (cmd, button label, the confirmation's question): a click only asks; the
# server is the one that checks the target.
ACTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "switch",
        "Switch",
        (
            "Switch the proxy to uplink {name} ({addr}) now? Clients are held for a moment, then use it; "
            "no data is copied between servers."
        ),
    ),
    (
        "switchover",
        "Switchover",
        (
            "Start a switchover to uplink {name} ({addr})? It replicates from the active uplink, catches up, "
            "is promoted, and the proxy switches to it."
        ),
    ),
)


def _time(at: float | None) -> str:
    if at is None:
        return DASH
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def table_key(uplinks: dict[str, dict[str, Any]]) -> str:
    """What decides the rows' controls: the script rebuilds a row's buttons only when it changes
    (rebuilding them every second could swallow a click)."""
    return ",".join(f"{name}={record.get('addr')}{'*' if record.get('active') else ''}" for name, record in uplinks.items())


def uplink_cells(name: str, record: dict[str, Any]) -> list[tuple[str, str]]:
    """(text, CSS class) of one uplink's cells, without its controls; the script's uplinkCells builds the same."""
    if record.get("checked_at") is None:
        reach = ("not checked yet", "muted")
    elif record.get("reachable"):
        reach = ("yes", "good")
    else:
        reach = (f"no: {record.get('error') or 'unknown reason'}", "bad wrap")
    role = record.get("role") or DASH
    if record.get("master"):
        role = f"{role} of {record['master']}"
    link = record.get("master_link_status") or DASH
    lag = record.get("lag_bytes")
    return [
        (name, ""),
        (str(record.get("addr", "")), "addr"),
        ("active" if record.get("active") else "", "active-mark"),
        (role, ""),
        reach,
        (link, "good" if link == "up" else "bad" if link == "down" else ""),
        (DASH if lag is None else str(lag), "num"),
    ]


def _actions(name: str, record: dict[str, Any]) -> list[dict[str, str]]:
    """The row's Switch and Switchover controls (none for the active uplink)."""
    if record.get("active"):
        return []
    return [
        {"cmd": cmd, "label": label, "confirm": question.format(name=name, addr=record.get("addr", "?"))}
        for cmd, label, question in ACTIONS
    ]


def uplink_rows(uplinks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": name, "cells": uplink_cells(name, record), "actions": _actions(name, record)} for name, record in uplinks.items()]


def switchover_rows(so: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, CSS class) of the switchover summary; the script's switchoverRows builds the same."""
    result = so.get("result")
    if result is None:
        outcome, cls = "running", "muted"
    else:
        outcome = f"{result}: {so['error']}" if so.get("error") else str(result)
        cls = "good" if result == "done" else "bad wrap"
    rows = [
        ("phase", str(so.get("phase")) + (" (running)" if so.get("running") else ""), ""),
        ("from " + ARROW + " to", f"{so.get('from') or '?'} {ARROW} {so.get('to') or '?'}", ""),
        ("lag bytes", DASH if so.get("lag_bytes") is None else str(so["lag_bytes"]), ""),
    ]
    total = so.get("sync_total_bytes") or 0
    if total:
        progress = "the source is writing its snapshot" if total < 0 else f"{so.get('sync_read_bytes', 0)} of {total} bytes"
        rows.append(("full sync", progress, ""))
    if so.get("attempt"):
        rows.append(("catch-up attempt", str(so["attempt"]), ""))
    if so.get("mode") == "copy":
        rows += [
            ("keys scanned", f"{so.get('keys_scanned', 0)} of ~{so.get('keys_total', 0)}", ""),
            ("keys copied", f"{so.get('keys_copied', 0)} ({so.get('bytes_copied', 0)} bytes)", ""),
            ("dirty keys", f"{so.get('dirty_keys', 0)} after round {so.get('rounds', 0)}", ""),
            ("verified", f"{so.get('verify_checked', 0)} keys, {so.get('verify_mismatches', 0)} mismatches", ""),
        ]
    rows += [
        ("clients held ms", DASH if so.get("held_ms") is None else str(so["held_ms"]), ""),
        ("result", outcome, cls),
        ("started", _time(so.get("started_at")), ""),
        ("ended", _time(so.get("ended_at")), ""),
    ]
    return rows


def _event_panel(title: str, prefix: str, idle: bool, rows: list[tuple[str, str, str]], events: list[Any]) -> dict[str, Any]:
    """A summary table and the last events (templates/index.html's event_panel); the script's applyPanel fills the same ids."""
    shown = [(_time(e.get("t")), str(e.get("msg", ""))) for e in events[-MAX_EVENTS_SHOWN:]]
    return {"title": title, "prefix": prefix, "idle": idle, "rows": rows, "events": shown}


def switchover_panel(so: dict[str, Any]) -> dict[str, Any]:
    return _event_panel("Switchover", "so", so.get("phase") == "idle", switchover_rows(so), so.get("events", []))


def failover_rows(fo: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, CSS class) of automatic failover's summary; the script's failoverRows builds the same."""
    last = fo.get("last") or {}
    result = last.get("result")
    outcome = "running" if result is None else str(result) + (f": {last['error']}" if last.get("error") else "")
    return [
        ("state", str(fo.get("state")), "bad" if fo.get("state") in ("failing-over", "searching") else ""),
        ("last failover", f"{last.get('from') or '?'} {ARROW} {last.get('to') or '?'}", ""),
        ("why", str(last.get("reason") or DASH), "wrap"),
        ("result", outcome, "good" if result == "done" else "muted" if result is None else "bad wrap"),
        ("time to recover ms", DASH if last.get("recover_ms") is None else str(last["recover_ms"]), ""),
        ("commands held / failed", f"{last.get('held_commands', 0)} / {last.get('failed_commands', 0)}", ""),
        ("started", _time(last.get("started_at")), ""),
    ]


def failover_panel(fo: dict[str, Any]) -> dict[str, Any] | None:
    if fo.get("state", "off") == "off":
        return None  # not configured
    last = fo.get("last")
    events = last.get("events", []) if last else []
    return _event_panel("Automatic failover", "fo", last is None, failover_rows(fo), events)


def sentinel_rows(sn: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, CSS class) of Sentinel following; the script's sentinelRows builds the same."""
    holding = sn.get("holding")
    rows = [
        ("master", f"{sn.get('master_name')} at {sn.get('master') or '?'} (epoch {sn.get('config_epoch')})", ""),
        ("holding", DASH if not holding else f"{holding.get('held_ms')} ms, promoting {holding.get('target') or '?'}", "bad" if holding else ""),
    ]
    for link in sn.get("sentinels", []):
        state = "connected" if link.get("connected") else f"down: {link.get('error') or '?'}"
        rows.append((f"sentinel {link.get('addr')}", state, "good" if link.get("connected") else "bad wrap"))
    return rows


def sentinel_events(sn: dict[str, Any]) -> list[dict[str, Any]]:
    """Failovers followed, as events (oldest first)."""
    return [
        {"t": f.get("at"), "msg": f"{f.get('result')}: {f.get('from_addr')} {ARROW} {f.get('to_addr') or '?'}, held {f.get('held_ms')} ms ({f.get('trigger')})"}
        for f in reversed(sn.get("failovers", []))
    ]


def sentinel_panel(sn: dict[str, Any] | None) -> dict[str, Any] | None:
    if not sn:
        return None  # not following Sentinel
    return _event_panel("Redis Sentinel", "sn", False, sentinel_rows(sn), sentinel_events(sn))


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The event panels an info.json snapshot calls for, in page order."""
    found = [
        switchover_panel(data.get("switchover") or {"phase": "idle"}),
        failover_panel(data.get("failover") or {"state": "off"}),
        sentinel_panel(data.get("sentinel")),
    ]
    return [panel for panel in found if panel is not None]
