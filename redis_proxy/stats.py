"""Counters the proxy keeps for the admin app and metrics.

Plain integers and a small fixed-bucket histogram: the forwarding path bumps
them without locks or allocation, and the admin app reads them when asked.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import dataclass, field

from redis_proxy.commands import KNOWN_COMMANDS
from redis_proxy.switchover.status import RESULTS

# Seconds; a latency histogram's upper bounds (the last bucket is +Inf).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
HOLD_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Cumulative-on-export bucket counts, cheap to observe."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    commands: int = 0  # commands forwarded upstream
    # Keyed by the name as clients spell it (uppercasing every command costs
    # on the hot path); `names()` normalizes when the admin app asks.
    commands_by_name: dict[bytes, int] = field(default_factory=dict)
    error_replies: int = 0  # error replies from the uplink
    proxy_errors: int = 0  # errors the proxy itself answered or caused (protocol, auth, uplink, time limit)
    bytes_from_clients: int = 0
    bytes_to_clients: int = 0
    clients_total: int = 0
    time_limit_kills: int = 0
    uplink_failures: int = 0
    pause_limit_hits: int = 0  # operator pauses ended by max_pause_ms
    # Holds begun from running (operator pause, reload, switch, switchover, failover): with hold_time's
    # count (holds ended) a dashboard draws each one as an event.
    pauses: int = 0
    paused_seconds: float = 0.0  # time spent paused or pausing, finished pauses only (see Controller.paused_seconds)
    reloads: int = 0
    reload_failures: int = 0
    switches: int = 0
    switch_failures: int = 0  # cmd=switch attempts that failed once begun: target refused, drain too long, switching failed
    # Finished switchovers by result ("done", "failed", "aborted"): every key
    # is there from the start, so metrics show a 0 rather than no series.
    switchovers: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    # Automatic failovers by result: "done" (switched), "recovered" (the uplink came back while
    # searching, no switch), "failed" (the switch failed, or the proxy stopped first).
    failovers: dict[str, int] = field(default_factory=lambda: {"done": 0, "recovered": 0, "failed": 0})
    failover_commands_held: int = 0  # held while failing over, then sent to the new uplink
    failover_commands_failed: int = 0  # held while failing over, then failed (no candidate within max_hold_ms)
    # Time from a batch's forwarding to its last reply (the whole round trip through Redis).
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    # Time from a batch's arrival from the client to its forwarding upstream: the delay the proxy adds.
    proxy_delay: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    hold_time: Histogram = field(default_factory=lambda: Histogram(HOLD_BUCKETS))
    # One event loop pass, sampled (loop_lag.py): what a read waits before the proxy handles it, under load.
    loop_lag: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))

    def count_names(self, commands: list[list[bytes]]) -> None:
        by_name = self.commands_by_name
        for command in commands:
            name = command[0]
            by_name[name] = by_name.get(name, 0) + 1
        if len(by_name) > 1024:  # odd spellings or made-up names: fold them now
            self.commands_by_name = {k: v for k, v in self.names().items()}

    def names(self) -> dict[bytes, int]:
        """Command counts by upper-case name; unknown names count as OTHER."""
        out: Counter[bytes] = Counter()
        for name, count in self.commands_by_name.items():
            upper = name.upper()
            out[upper if upper in KNOWN_COMMANDS else b"OTHER"] += count
        return dict(out)
