"""The status page's recent past: one sample a second for 15 minutes, and what happened when.

Pure data, no I/O: `sampler.py` fills it from the live proxy once a second,
`GET /history.json` reads it. Fixed-size deques, so memory stays bounded
however long the proxy runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SAMPLES = 900  # 15 minutes at one sample a second
EVENTS = 200  # a busy 15 minutes of pauses and switches, with room to spare


@dataclass(frozen=True)
class Sample:
    t: float  # Unix time the second ended
    ops: float  # commands forwarded per second over that second
    p99_ms: float | None  # the 99th percentile of round trips completed in that second; None when none did
    clients: int
    held: int  # commands waiting in their sessions (a pause or failover holds them)
    paused: bool  # the proxy held commands at some point in that second


@dataclass(frozen=True)
class Event:
    t: float  # when it happened, as well as known
    kind: str  # pause, unpause, switch, reload, reload-failed, switch-failed, switchover
    text: str
    # The sample it was noticed at: polls filter on this, since an event can
    # be noticed a second after it happened (and after the sample the page has).
    noticed: float


def quantile_ms(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The q-quantile, in milliseconds, of observations counted per bucket (not cumulative).

    `counts` has one more entry than `bounds` (the +Inf bucket). Interpolates
    linearly inside the bucket, as Prometheus's histogram_quantile does, so a
    second whose round trips all fall in one bucket reads somewhere inside it
    rather than always at its upper bound. An observation past the last bound
    reads as that bound: the histogram knows no more.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count <= 0:
            continue
        if seen + count >= rank:
            if index >= len(bounds):
                return bounds[-1] * 1000
            lower = bounds[index - 1] if index > 0 else 0.0
            upper = bounds[index]
            return (lower + (upper - lower) * (rank - seen) / count) * 1000
        seen += count
    return bounds[-1] * 1000


class History:
    """The last `size` samples and `events` events, oldest first."""

    def __init__(self, size: int = SAMPLES, events: int = EVENTS) -> None:
        self.samples: deque[Sample] = deque(maxlen=size)
        self.events: deque[Event] = deque(maxlen=events)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def event(self, t: float, kind: str, text: str, noticed: float | None = None) -> None:
        self.events.append(Event(t, kind, text, t if noticed is None else noticed))

    def to_json(self, since: float | None = None) -> dict[str, Any]:
        """Column arrays (the shape uPlot draws from); with `since`, only what came after it.

        The page asks with the time of the last sample it has, so each poll
        carries a second's worth rather than 15 minutes of numbers.
        """
        # Compared as sent (rounded), so the page's `since` never brings back the sample it came from.
        samples = [s for s in self.samples if since is None or round(s.t, 3) > since]
        events = [e for e in self.events if since is None or round(e.noticed, 3) > since]
        return {
            "samples": {
                "t": [round(s.t, 3) for s in samples],
                "ops": [round(s.ops, 1) for s in samples],
                "p99_ms": [None if s.p99_ms is None else round(s.p99_ms, 3) for s in samples],
                "clients": [s.clients for s in samples],
                "held": [s.held for s in samples],
                "paused": [s.paused for s in samples],
            },
            "events": [{"t": round(e.t, 3), "kind": e.kind, "text": e.text} for e in events],
        }
