"""The status page's named-uplinks table and switchover panel, rendered on the server.

The page script (page_assets.JS) rebuilds the same cells from info.json every
second, so the wording here and there must match; everything shown goes
through `html.escape`.
"""

from __future__ import annotations

import datetime
import json
from html import escape
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


def _actions(name: str, record: dict[str, Any]) -> str:
    if record.get("active"):
        return ""
    forms = []
    for cmd, label, question in ACTIONS:
        confirm = question.format(name=name, addr=record.get("addr", "?"))
        forms.append(
            f'<form class="cmd" method="post" action="cmd/" data-confirm="{escape(confirm)}">'
            f'<input type="hidden" name="cmd" value="{escape(cmd)}">'
            f'<input type="hidden" name="to" value="{escape(name)}">'
            f'<button type="submit" class="{escape(cmd)}" aria-label="{escape(label)} to {escape(name)}">'
            f"{escape(label)}</button></form>"
        )
    return "".join(forms)


def uplinks_panel(uplinks: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, record in uplinks.items():
        tds = "".join(f'<td class="{escape(cls)}">{escape(text)}</td>' for text, cls in uplink_cells(name, record))
        rows.append(f'<tr data-uplink="{escape(name)}">{tds}<td class="actions">{_actions(name, record)}</td></tr>')
    if not rows:
        rows.append('<tr><td class="empty" colspan="8">no named uplinks (see uplinks in the config)</td></tr>')
    return (
        '<section class="panel full"><h2>Uplinks</h2><div class="scroll"><table><thead><tr>'
        "<th>name</th><th>address</th><th></th><th>role</th><th>reachable</th><th>link</th>"
        '<th class="num">lag bytes</th><th></th></tr></thead>'
        # The controls' wording travels with the page, so the script need not repeat it.
        f'<tbody id="uplinks" data-key="{escape(table_key(uplinks))}" data-actions="{escape(json.dumps(ACTIONS))}">'
        f'{"".join(rows)}</tbody></table></div></section>'
    )


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


def _event_panel(title: str, prefix: str, idle: bool, rows: list[tuple[str, str, str]], events: list[Any]) -> str:
    """A summary table and the last events; the script's applyPanel fills the same ids."""
    summary = "".join(
        f'<tr><th scope="row">{escape(label)}</th><td class="{escape(cls)}">{escape(text)}</td></tr>'
        for label, text, cls in rows
    )
    shown = "".join(
        f'<tr><td>{escape(_time(e.get("t")))}</td><td class="wrap">{escape(str(e.get("msg", "")))}</td></tr>'
        for e in events[-MAX_EVENTS_SHOWN:]
    ) or '<tr><td class="empty" colspan="2">no events</td></tr>'
    hidden_body, hidden_none = (" hidden", "") if idle else ("", " hidden")
    return (
        f'<section class="panel full"><h2>{escape(title)}</h2>'
        f'<p id="{prefix}-none" class="muted"{hidden_none}>none yet</p>'
        f'<div id="{prefix}-body" class="so"{hidden_body}>'
        f'<table class="kv"><tbody id="{prefix}-summary">{summary}</tbody></table>'
        '<table><thead><tr><th>time</th><th>event (last 10)</th></tr></thead>'
        f'<tbody id="{prefix}-events">{shown}</tbody></table></div></section>'
    )


def switchover_panel(so: dict[str, Any]) -> str:
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


def failover_panel(fo: dict[str, Any]) -> str:
    if fo.get("state", "off") == "off":
        return ""  # not configured
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


def sentinel_panel(sn: dict[str, Any] | None) -> str:
    if not sn:
        return ""  # not following Sentinel
    return _event_panel("Redis Sentinel", "sn", False, sentinel_rows(sn), sentinel_events(sn))
