"""What automatic failover is doing, and what its last failover did: info.json, metrics, the status page."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis_proxy.events import Events

# "off": not configured; "watching": the active uplink answers; "failing-over":
# it is down and commands are held while a candidate is chosen; "searching":
# the hold ran out (held commands failed) and candidates are still tried.
STATES = ("off", "watching", "failing-over", "searching")


@dataclass
class FailoverRecord:
    source: str
    started_at: float = field(default_factory=time.time)
    reason: str = ""  # why the uplink was declared down
    target: str | None = None
    result: str | None = None  # None while it runs; "done" or "failed" (given up: the proxy stopped)
    error: str | None = None
    ended_at: float | None = None
    recover_ms: float | None = None  # declared down to switched
    held_commands: int = 0  # commands held when they were released (to the new uplink) or failed
    failed_commands: int = 0  # held commands answered with an error when max_hold_ms ran out
    events: Events = field(default_factory=lambda: Events("failover"))

    def event(self, msg: str, level: int = logging.INFO) -> None:
        self.events.add(msg, level)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "reason": self.reason,
            "result": self.result,
            "error": self.error,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "recover_ms": None if self.recover_ms is None else round(self.recover_ms, 1),
            "held_commands": self.held_commands,
            "failed_commands": self.failed_commands,
            "events": self.events.to_json(),
        }


@dataclass
class FailoverStatus:
    state: str = "off"
    last_ok: float | None = None  # wall clock of the active uplink's last good answer
    down_since: float | None = None
    last: FailoverRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "last_ok": self.last_ok,
            "down_since": self.down_since,
            "last": self.last.to_json() if self.last is not None else None,
        }
