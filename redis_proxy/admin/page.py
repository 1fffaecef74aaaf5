"""GET /: the status page for people.

Rendered complete on the server, so it is useful with JavaScript off; the
inline script then keeps the numbers live. Every value put into the HTML
goes through `html.escape`.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass
from html import escape
from typing import Any

from redis_proxy.admin.page_assets import CSS, JS
from redis_proxy.admin.page_uplinks import failover_panel, sentinel_panel, switchover_panel, uplinks_panel

KNOWN_STATES = frozenset({"running", "pausing", "paused", "stopping", "failing-over"})

COUNTER_LABELS: dict[str, str] = {
    "commands": "commands forwarded",
    "error_replies": "error replies",
    "proxy_errors": "proxy errors",
    "bytes_from_clients": "bytes from clients",
    "bytes_to_clients": "bytes to clients",
    "clients_total": "client connections",
    "time_limit_kills": "time-limit kills",
    "uplink_failures": "uplink failures",
    "reloads": "reloads",
    "reload_failures": "reload failures",
    "switches": "switches",
}

BUTTONS: tuple[tuple[str, str], ...] = (("pause", "Pause"), ("unpause", "Unpause"), ("reload", "Reload"))


@dataclass(frozen=True)
class Result:
    """The outcome of a command posted by the page's form without JavaScript."""

    cmd: str
    ok: bool
    text: str


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def content_security_policy(nonce: str) -> str:
    # Only our own inline script and style may run; fetch and forms only to us;
    # the page may not be framed (clickjacking the pause button).
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; form-action 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def _fmt_time(at: float) -> str:
    # UTC on both sides (the script uses toISOString) so server-rendered and
    # live-updated rows look the same whatever the browser's time zone.
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: float) -> str:
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    parts = []
    if d:
        parts.append(f"{d}d")
    if d or h:
        parts.append(f"{h}h")
    if d or h or m:
        parts.append(f"{m}m")
    parts.append(f"{s % 60}s")
    return " ".join(parts)


def _card(label: str, element_id: str, value: Any) -> str:
    return (
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value" id="{element_id}">{escape(str(value))}</div></div>'
    )


def _rows(rows: list[list[tuple[str, str]]], empty: str, columns: int) -> str:
    if not rows:
        return f'<tr><td class="empty" colspan="{columns}">{escape(empty)}</td></tr>'
    out = []
    for cells in rows:
        tds = "".join(f'<td class="{cls}">{escape(text)}</td>' if cls else f"<td>{escape(text)}</td>" for text, cls in cells)
        out.append(f"<tr>{tds}</tr>")
    return "".join(out)


def uplink_health(data: dict[str, Any]) -> tuple[str, str]:
    """The uplink's health as (text, CSS class) for the header; the script builds the same."""
    if data.get("uplink_up", True):
        return "up", "health health-up"
    since = data.get("uplink_down_since")
    when = f" since {_fmt_time(since)}" if since is not None else ""
    return f"DOWN{when}: {data.get('uplink_down_reason') or 'unknown reason'}", "health health-down"


def render(data: dict[str, Any], result: Result | None, nonce: str) -> str:
    """The page for one /info.json snapshot, optionally showing a command's result."""
    state = str(data["state_str"])
    health_text, health_class = uplink_health(data)
    state_class = state if state in KNOWN_STATES else "unknown"
    cards = "".join(
        (
            _card("clients", "clients", data["clients"]),
            _card("in flight", "active", data["active_requests"]),
            _card("waiting", "waiting", data["waiting_requests"]),
            _card("open transactions", "txn", data["open_transactions"]),
            _card("raw connections", "raw", data["raw_connections"]),
            _card("uptime", "uptime", fmt_duration(data["uptime_s"])),
        )
    )
    buttons = "".join(
        f'<form class="cmd" method="post" action="cmd/"><input type="hidden" name="cmd" value="{escape(cmd)}">'
        f'<button type="submit" class="{escape(cmd)}">{escape(label)}</button></form>'
        for cmd, label in BUTTONS
    )
    if result is None:
        result_html = '<pre id="result" class="result" aria-live="polite"></pre>'
    else:
        result_html = (
            f'<pre id="result" class="result {"ok" if result.ok else "err"}" aria-live="polite">'
            f"{escape(result.cmd)}: {escape(result.text)}</pre>"
        )
    switches = _rows(
        [
            [(_fmt_time(s["at"]), ""), (str(s["from"]), ""), (str(s["to"]), ""), (f"{s['held_ms']:.1f}", "num")]
            for s in data["switches"]
        ],
        "no switches yet",
        4,
    )
    counters = "".join(
        f'<tr><td>{escape(COUNTER_LABELS.get(name, name))}</td>'
        f'<td class="num" id="c-{escape(name)}">{escape(str(value))}</td></tr>'
        for name, value in data["counters"].items()
    )
    by_name = _rows(
        [[(name, ""), (str(count), "num")] for name, count in list(data["commands_by_name"].items())[:12]],
        "no commands yet",
        2,
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>redis-proxy: {escape(state)}</title>
<style nonce="{nonce}">{CSS}</style>
</head>
<body>
<header>
<h1>redis-proxy</h1>
<span id="state" class="state state-{state_class}">{escape(state)}</span>
<span class="uplink">uplink <code id="uplink">{escape(str(data["uplink"]))}</code>
<span id="uplink-health" class="{health_class}">{escape(health_text)}</span></span>
<span id="live" class="live">JavaScript is off: reload the page for fresh numbers</span>
</header>
<main>
<div class="cards">{cards}</div>
<div class="controls">{buttons}</div>
{result_html}
<div class="panels">
{uplinks_panel(data.get("uplinks") or {})}
{switchover_panel(data.get("switchover") or {"phase": "idle"})}
{failover_panel(data.get("failover") or {"state": "off"})}
{sentinel_panel(data.get("sentinel"))}
<section class="panel"><h2>Counters</h2><table><tbody>{counters}</tbody></table></section>
<section class="panel"><h2>Commands by name</h2>
<table><thead><tr><th>command</th><th class="num">count</th></tr></thead>
<tbody id="by-name">{by_name}</tbody></table></section>
<section class="panel full"><h2>Recent switches</h2>
<table><thead><tr><th>time</th><th>from</th><th>to</th><th class="num">held ms</th></tr></thead>
<tbody id="switches">{switches}</tbody></table></section>
</div>
<footer><a href="info.json">info.json</a> · <a href="status.json">status.json</a> · <a href="metrics">metrics</a></footer>
</main>
<script nonce="{nonce}">{JS}</script>
</body>
</html>
"""
