"""The counters a worker serves clients with, as a plain dict, and their sum across workers (pure).

A worker process reports these in its status (worker.py); the control
process adds every worker's into its own Stats, which its admin app and
metrics read as they would a single process's. Counters about the
controller (pauses, reloads, switches, hold times) are the control
process's own and are not summed.
"""

from __future__ import annotations

from typing import Any

from redis_proxy.stats import Histogram, Stats

COUNTERS = (
    "commands", "error_replies", "proxy_errors", "bytes_from_clients", "bytes_to_clients", "clients_total",
    "time_limit_kills", "uplink_failures",
)
HISTOGRAMS = ("latency", "proxy_delay", "loop_lag")


def snapshot(stats: Stats) -> dict[str, Any]:
    """A worker's traffic counters, JSON-able."""
    out: dict[str, Any] = {name: getattr(stats, name) for name in COUNTERS}
    out["commands_by_name"] = {name.decode("latin-1"): count for name, count in stats.names().items()}
    for name in HISTOGRAMS:
        hist: Histogram = getattr(stats, name)
        out[name] = {"counts": list(hist.counts), "total": hist.total, "count": hist.count}
    return out


def add_up(into: Stats, snapshots: list[dict[str, Any]]) -> None:
    """Set `into`'s traffic counters to the sum of `snapshots` (each worker's latest, and retired workers' last)."""
    for name in COUNTERS:
        setattr(into, name, sum(int(s.get(name, 0)) for s in snapshots))
    by_name: dict[bytes, int] = {}
    for s in snapshots:
        for name, count in s.get("commands_by_name", {}).items():
            key = name.encode("latin-1")
            by_name[key] = by_name.get(key, 0) + int(count)
    into.commands_by_name = by_name
    for name in HISTOGRAMS:
        hist: Histogram = getattr(into, name)
        counts = [0] * len(hist.counts)
        total, count = 0.0, 0
        for s in snapshots:
            part = s.get(name)
            if part is None or len(part["counts"]) != len(counts):
                continue
            counts = [a + int(b) for a, b in zip(counts, part["counts"], strict=True)]
            total += float(part["total"])
            count += int(part["count"])
        hist.counts, hist.total, hist.count = counts, total, count
