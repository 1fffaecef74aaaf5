"""How long work that is ready waits for the event loop: the delay the proxy itself adds under load.

A command on the hot path is parsed and written upstream in the callback
that read it, and its reply is written to the client in the callback that
read it from Redis: the time spent inside those callbacks is microseconds.
What grows when the proxy is busy is the wait before the callback runs at
all: bytes sit in the socket while the loop works through everyone else's
reads. Timing each command cannot see that wait (the clock starts in the
callback), so a probe measures it instead, off the hot path: every
SAMPLE_INTERVAL_S it yields to the loop once and records how long it took to
be run again. That is one pass of the loop (the callbacks already ready plus
every read the next poll returns), which is what a read arriving at that
moment waits too, in each direction.
"""

from __future__ import annotations

import asyncio
import time

from redis_proxy.aio import Background
from redis_proxy.stats import Histogram

# Often enough for a p99 over a few minutes (1200 samples in 5 min), rare
# enough to cost nothing: one extra loop callback per sample.
SAMPLE_INTERVAL_S = 0.25


class LoopLagProbe(Background):
    """Observes one loop pass into `histogram` every SAMPLE_INTERVAL_S."""

    task_name = "loop-lag"

    def __init__(self, histogram: Histogram, interval: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__()
        self.histogram = histogram
        self.interval = interval

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.interval)
            # Not the sleep's own lateness: uvloop's timers have millisecond
            # granularity, which would drown the sub-millisecond lag measured here.
            started = time.monotonic()
            await asyncio.sleep(0)
            self.histogram.observe(time.monotonic() - started)
