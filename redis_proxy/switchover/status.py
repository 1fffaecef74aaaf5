"""What a switchover is doing and has done: the body of GET /switchover.json, metrics and the status page.

Plain data, written by the running switchover and read by everyone else.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis_proxy.events import Events

# The phases in order. "idle": none has run since the proxy started.
# Replica mode: preflight, replicate, catch-up, promote, switch; copy mode:
# preflight, copy, converge, cutover, switch.
PHASES = ("idle", "preflight", "replicate", "catch-up", "promote", "copy", "converge", "cutover", "switch")
RESULTS = ("done", "failed", "aborted")


@dataclass
class SwitchoverStatus:
    phase: str = "idle"
    source: str | None = None  # the uplink name switched from ("from" in JSON), or its address when unnamed
    target: str | None = None  # "to"
    lag_bytes: int | None = None  # source offset minus target offset, while the target replicates
    held_ms: float | None = None  # clients' real hold, pause to unpause, once switched
    result: str | None = None  # None while running
    error: str | None = None
    started_at: float | None = None  # wall clock
    ended_at: float | None = None
    attempt: int = 0  # catch-up attempts so far (1 + retries at most)
    sync_total_bytes: int = 0  # the target's full sync, for a progress bar (0: none in progress)
    sync_read_bytes: int = 0
    mode: str = "replica"
    fence: str | None = None  # what keeps writes off the old server after the switch, or why nothing does
    # Copy mode. keys_total: the source's keys when the copy began (DBSIZE), so keys_scanned / keys_total is
    # the scan's progress, approximately: SCAN may return a key twice, and keys come and go meanwhile.
    keys_total: int = 0
    keys_scanned: int = 0
    keys_copied: int = 0
    bytes_copied: int = 0
    dirty_keys: int = 0
    rounds: int = 0
    verify_checked: int = 0
    verify_mismatches: int = 0
    verify_examples: list[dict[str, Any]] = field(default_factory=list)
    _events: Events | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.phase != "idle" and self.result is None

    def event(self, msg: str, level: int = logging.INFO) -> None:
        """Record an event (wall-clock time) and log it."""
        if self._events is None:
            self._events = Events(f"switchover {self.source} -> {self.target}")
        self._events.add(msg, level)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._events.to_json() if self._events is not None else []

    def enter(self, phase: str) -> None:
        assert phase in PHASES
        self.phase = phase
        self.event(f"phase {phase}")

    def finish(self, result: str, error: str | None = None) -> None:
        assert result in RESULTS
        self.result = result
        self.error = error
        self.ended_at = time.time()
        self.sync_total_bytes = self.sync_read_bytes = 0
        level = logging.INFO if result == "done" else logging.ERROR if result == "failed" else logging.WARNING
        self.event(f"{result}{': ' + error if error else ''}", level)

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "from": self.source,
            "to": self.target,
            "lag_bytes": self.lag_bytes,
            "held_ms": None if self.held_ms is None else round(self.held_ms, 3),
            "result": self.result,
            "error": self.error,
            "running": self.running,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "attempt": self.attempt,
            "sync_total_bytes": self.sync_total_bytes,
            "sync_read_bytes": self.sync_read_bytes,
            "mode": self.mode,
            "fence": self.fence,
            "keys_total": self.keys_total,
            "keys_scanned": self.keys_scanned,
            "keys_copied": self.keys_copied,
            "bytes_copied": self.bytes_copied,
            "dirty_keys": self.dirty_keys,
            "rounds": self.rounds,
            "verify_checked": self.verify_checked,
            "verify_mismatches": self.verify_mismatches,
            "verify_examples": self.verify_examples,
            "events": self.events,
        }
