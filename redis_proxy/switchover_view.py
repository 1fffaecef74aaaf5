"""Follow a running switchover through GET /switchover.json and show it.

On a terminal: a live panel (phase, lag, a progress bar while the target
syncs) with the events printed above it. Otherwise (CI logs, tests, a pipe):
one plain line per event and one for the result, so the output reads the same
in a log file as it happened.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.text import Text

from redis_proxy.admin_client import AdminClient, AdminError, AdminUnreachable

POLL_INTERVAL_S = 0.1
# The proxy is busy but alive during a switchover; a few failed polls in a row
# are tolerated before the watch gives up on it.
UNREACHABLE_GRACE_S = 15.0
# How long a just-started switchover may take to appear in the status.
APPEAR_TIMEOUT_S = 10.0
PANEL_WIDTH = 76
STEPS = ("preflight", "replicate", "catch-up", "promote", "switch")
COPY_STEPS = ("preflight", "copy", "converge", "cutover", "switch")

Status = dict[str, Any]
Event = dict[str, Any]


def clock(t: Any) -> str:
    """An event's wall-clock time as HH:MM:SS.mmm (local time)."""
    if not isinstance(t, (int, float)):
        return "--:--:--.---"
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def new_events(events: list[Event], last: Event | None) -> list[Event]:
    """The events after `last` (the last one already shown).

    The proxy keeps at most a couple hundred events and drops from the middle,
    so a position in the list is not stable; the last shown event is.
    """
    if last is None:
        return list(events)
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("t") == last.get("t") and events[index].get("msg") == last.get("msg"):
            return events[index + 1 :]
    last_t = last.get("t") or 0
    return [e for e in events if isinstance(e.get("t"), (int, float)) and e["t"] > last_t]


def result_line(status: Status) -> str:
    """The final outcome in one line."""
    result = status.get("result") or "unknown"
    parts = [f"result: {result}", f"from={status.get('from')}", f"to={status.get('to')}"]
    if status.get("held_ms") is not None:
        parts.append(f"held_ms={status['held_ms']}")
    if status.get("attempt"):
        parts.append(f"attempt={status['attempt']}")
    if status.get("mode") == "copy":
        parts += [f"{key}={status.get(key)}" for key in COPY_FIGURES]
    if isinstance(status.get("started_at"), (int, float)) and isinstance(status.get("ended_at"), (int, float)):
        parts.append(f"took={status['ended_at'] - status['started_at']:.2f}s")
    line = " ".join(parts)
    if status.get("error"):
        line += f"\nerror: {status['error']}"
    return line


COPY_FIGURES = (
    "keys_scanned", "keys_copied", "bytes_copied", "dirty_keys", "rounds", "verify_checked", "verify_mismatches",
)


def copy_lines(status: Status) -> list[RenderableType]:
    """Copy mode: the scan's progress (approximate), what was copied, the dirty keys converging."""
    lines: list[RenderableType] = []
    total, scanned = int(status.get("keys_total") or 0), int(status.get("keys_scanned") or 0)
    if status.get("phase") == "copy" and total > 0:
        shown = min(scanned, total)
        lines.append(Text(f"scan {shown:,} / ~{total:,} keys ({100 * shown / total:.0f}%, approximate: SCAN's cursor)"))
        lines.append(ProgressBar(total=total, completed=shown, width=50))
    lines.append(Text(f"copied {int(status.get('keys_copied') or 0):,} keys, {_size(int(status.get('bytes_copied') or 0))}"))
    lines.append(Text(f"dirty {int(status.get('dirty_keys') or 0):,} keys   round {status.get('rounds') or 0}"))
    if status.get("verify_checked"):
        lines.append(Text(f"verified {status['verify_checked']:,} keys, {status.get('verify_mismatches') or 0} mismatches"))
    return lines


class View(Protocol):
    def update(self, status: Status) -> None: ...
    def event(self, event: Event) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


class PlainView:
    """One line per event, flushed at once: the output of a non-terminal."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def update(self, status: Status) -> None:
        pass  # phase changes and progress arrive as events

    def event(self, event: Event) -> None:
        print(f"{clock(event.get('t'))} {event.get('msg', '')}", file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def close(self) -> None:
        pass


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # not reached


def panel(status: Status, extra: str | None = None) -> RenderableType:
    """The live display of one status."""
    phase = status.get("phase", "idle")
    done = status.get("result") == "done"
    steps = Text()
    order = COPY_STEPS if status.get("mode") == "copy" else STEPS
    current = order.index(phase) if phase in order else -1
    for index, step in enumerate(order):
        if index:
            steps.append(" > ", style="dim")
        if done or index < current:
            steps.append(f"{step} ✓", style="green")
        elif index == current:
            failed = status.get("result") in ("failed", "aborted")
            steps.append(step, style="bold red" if failed else "bold yellow")
        else:
            steps.append(step, style="dim")
    lines: list[RenderableType] = [steps]
    facts = []
    if status.get("lag_bytes") is not None:
        facts.append(f"lag {status['lag_bytes']:,} bytes")
    if status.get("attempt"):
        facts.append(f"attempt {status['attempt']}")
    if status.get("held_ms") is not None:
        facts.append(f"clients held {status['held_ms']} ms")
    started = status.get("started_at")
    if isinstance(started, (int, float)):
        ended = status.get("ended_at")
        end = ended if isinstance(ended, (int, float)) else time.time()
        facts.append(f"elapsed {end - started:.1f} s")
    if facts:
        lines.append(Text("   ".join(facts)))
    if status.get("mode") == "copy":
        lines += copy_lines(status)
    total, read = int(status.get("sync_total_bytes") or 0), int(status.get("sync_read_bytes") or 0)
    if total > 0:
        lines.append(Text(f"full sync {_size(read)} / {_size(total)} ({100 * read / total:.0f}%)"))
        lines.append(ProgressBar(total=total, completed=min(read, total), width=50))
    if extra:
        lines.append(Text(extra, style="dim"))
    title = f"switchover {status.get('from')} → {status.get('to')}"
    # A fixed width: a panel that resizes with its content jitters as numbers change.
    return Panel(Group(*lines), title=title, title_align="left", width=PANEL_WIDTH)


class LiveView:
    """A rich Live panel, refreshed on every status; events are printed above it."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.status: Status = {"phase": "preflight"}
        self.extra: str | None = None
        self.live = Live(panel(self.status), console=self.console, refresh_per_second=10, transient=False)
        self.live.start()

    def update(self, status: Status) -> None:
        self.status = status
        self.live.update(panel(status, self.extra))

    def event(self, event: Event) -> None:
        self.console.print(Text(f"{clock(event.get('t'))} ", style="dim") + Text(str(event.get("msg", ""))))

    def note(self, text: str) -> None:
        self.console.print(Text(text, style="bold"))

    def close(self) -> None:
        self.live.update(panel(self.status))
        self.live.stop()


def make_view(force_plain: bool = False) -> View:
    return PlainView() if force_plain or not sys.stdout.isatty() else LiveView()


def _poll(client: AdminClient, last_ok: float) -> Status | None:
    """One status, or None while the proxy is briefly unreachable."""
    try:
        return client.switchover_status()
    except AdminUnreachable:
        if time.monotonic() - last_ok > UNREACHABLE_GRACE_S:
            raise
        return None


def _ask_abort(client: AdminClient, view: View) -> None:
    view.note("Ctrl-C: asking the proxy to abort the switchover (Ctrl-C again to stop watching)")
    try:
        accepted, said = client.abort_switchover()
    except AdminError as exc:
        view.note(f"abort request failed: {exc}")
        return
    if accepted:
        view.note(f"abort accepted: {said}; waiting for the switchover to stop")
    else:
        view.note(f"abort refused: {said}; waiting for the switchover to end")


def watch(client: AdminClient, previous_started_at: Any, view: View, abort_on_interrupt: bool = True) -> Status:
    """Follow the switchover started after `previous_started_at` until it ends; its final status.

    With abort_on_interrupt, a first Ctrl-C asks the proxy to abort and the
    watch goes on (the outcome is still the proxy's to report); a second one
    raises KeyboardInterrupt. Without it, the first one does.
    """
    last_event: Event | None = None
    last_ok = appear_from = time.monotonic()
    ours = False
    interrupted = False
    try:
        while True:
            try:
                status = _poll(client, last_ok)
                if status is not None:
                    last_ok = time.monotonic()
                    # The status still describes the previous switchover until ours has started.
                    ours = ours or status.get("started_at") not in (None, previous_started_at)
                    if ours:
                        events = new_events(list(status.get("events") or []), last_event)
                        for event in events:
                            view.event(event)
                        if events:
                            last_event = events[-1]
                        view.update(status)
                        if status.get("result") is not None and not status.get("running"):
                            return status
                if not ours and time.monotonic() - appear_from > APPEAR_TIMEOUT_S:
                    raise AdminError("the proxy accepted the switchover, but its status never showed it running")
                time.sleep(POLL_INTERVAL_S)
            except KeyboardInterrupt:
                if interrupted or not abort_on_interrupt:
                    raise
                interrupted = True
                _ask_abort(client, view)
    finally:
        view.close()
