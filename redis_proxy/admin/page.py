"""GET /: the status page for people.

Rendered complete on the server from `templates/index.html` (Jinja2, every
value autoescaped), so it is useful with JavaScript off; `static/page.js`
then keeps the numbers live and `static/charts.js` draws the last 15
minutes. This module builds the template's context and the sentences that
say what a command did.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass
from typing import Any

from redis_proxy.admin.page_uplinks import ACTIONS, panels, table_key, uplink_rows

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

# (cmd, label, the confirmation's question or "" for none). Pause and reload
# hold clients' commands (a reload that changes the uplink pauses to switch),
# so a stray click must not do it; unpause only releases them.
BUTTONS: tuple[tuple[str, str, str], ...] = (
    ("pause", "Pause", "Pause the proxy? New commands from every client are held until you unpause."),
    ("unpause", "Unpause", ""),
    (
        "reload",
        "Reload",
        "Reload the config file? If its uplink changed, clients are held while the proxy switches to it.",
    ),
)


@dataclass(frozen=True)
class Result:
    """The outcome of a command posted by the page's form without JavaScript."""

    cmd: str
    ok: bool
    text: str


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def content_security_policy(nonce: str) -> str:
    # Only scripts and stylesheets that carry this response's nonce run, our
    # static files included (an injected <script src="/static/..."> would not);
    # fetch and forms only to us; the page may not be framed (clickjacking the
    # pause button). uPlot sizes its elements through element.style (the
    # CSSOM), which style-src does not govern, so no 'unsafe-inline' is needed.
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; form-action 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def fmt_time(at: float) -> str:
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


def uplink_health(data: dict[str, Any]) -> tuple[str, str]:
    """The uplink's health as (text, CSS class) for the header; the script builds the same."""
    if data.get("uplink_up", True):
        return "up", "health health-up"
    since = data.get("uplink_down_since")
    when = f" since {fmt_time(since)}" if since is not None else ""
    return f"DOWN{when}: {data.get('uplink_down_reason') or 'unknown reason'}", "health health-down"


def _plural(count: Any, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def describe(cmd: str, ok: bool, body: dict[str, Any]) -> str:
    """A command's reply as a sentence for people; the script's describe() says the same."""
    if not ok:
        what = {"pause": "Pause", "unpause": "Unpause", "reload": "Reload", "switch": "Switch", "switchover": "Switchover"}
        return f"{what.get(cmd, cmd.capitalize() or 'Command')} refused: {body.get('error') or 'no reason given'}"
    if cmd == "pause":
        state = "Paused" if body.get("state") == "paused" else "Pausing"
        inflight = body.get("in_flight", 0)
        rest = "nothing in flight." if not inflight else f"waiting for {_plural(inflight, 'command')} in flight."
        return f"{state}: {_plural(body.get('clients', 0), 'client')} held, {rest}"
    if cmd == "unpause":
        return f"Unpaused: {_plural(body.get('released', 0), 'held command')} released."
    if cmd in ("reload", "switch"):
        done = "Reloaded" if cmd == "reload" else "Switched"
        if not body.get("switched"):
            return f"{done}: the uplink did not change ({body.get('uplink_name') or body.get('uplink')})."
        still = " The proxy stays paused (an operator's pause)." if body.get("paused") else ""
        target = body.get("uplink_name") or body.get("uplink")
        return f"{done}: now on {target}; clients were held {body.get('held_ms')} ms.{still}"
    if cmd == "switchover":
        return f"Switchover {body.get('from')} \u2192 {body.get('to')} started: its progress is below."
    return f"{cmd}: done."


def context(data: dict[str, Any], result: Result | None, extra: dict[str, Any]) -> dict[str, Any]:
    """What templates/index.html shows for one /info.json snapshot (and `extra`: version, paths, history)."""
    state = str(data["state_str"])
    health_text, health_class = uplink_health(data)
    uplinks = data.get("uplinks") or {}
    return {
        **extra,
        "state": state,
        "state_class": state if state in KNOWN_STATES else "unknown",
        "health_text": health_text,
        "health_class": health_class,
        "uplink": str(data["uplink"]),
        "cards": [
            ("clients", "clients", data["clients"]),
            ("in flight", "active", data["active_requests"]),
            ("waiting", "waiting", data["waiting_requests"]),
            ("open transactions", "txn", data["open_transactions"]),
            ("raw connections", "raw", data["raw_connections"]),
            ("uptime", "uptime", fmt_duration(data["uptime_s"])),
        ],
        "buttons": BUTTONS,
        "result": result,
        "switch_rows": [
            [(fmt_time(s["at"]), ""), (str(s["from"]), ""), (str(s["to"]), ""), (f"{s['held_ms']:.1f}", "num")]
            for s in data["switches"]
        ],
        "counters": [(name, COUNTER_LABELS.get(name, name), value) for name, value in data["counters"].items()],
        "by_name_rows": [[(name, ""), (str(count), "num")] for name, count in list(data["commands_by_name"].items())[:12]],
        "uplink_rows": uplink_rows(uplinks),
        "uplinks_key": table_key(uplinks),
        "uplink_actions": ACTIONS,
        "panels": panels(data),
        "fmt_time": fmt_time,
        "fmt_duration": fmt_duration,
    }
