"""The loop lag probe: it sees a loop kept busy by other callbacks, and little when idle."""

from __future__ import annotations

import asyncio
import time

from redis_proxy.loop_lag import LoopLagProbe
from redis_proxy.stats import LATENCY_BUCKETS, Histogram


async def _sample(busy: bool) -> Histogram:
    histogram = Histogram(LATENCY_BUCKETS)
    probe = LoopLagProbe(histogram, interval=0.01)
    loop = asyncio.get_running_loop()
    hogging = busy

    def hog() -> None:
        # Another connection's read taking 5 ms: whatever is ready meanwhile waits for it.
        time.sleep(0.005)
        if hogging:
            loop.call_soon(hog)

    if busy:
        loop.call_soon(hog)
    probe.start()
    await asyncio.sleep(0.3)
    # The hog goes on until the probe has stopped: a sample taken after a deadline-bound
    # hog had ended (the race this test once lost on a loaded machine) would see no lag.
    await probe.stop()
    hogging = False
    return histogram


def test_a_busy_loop_shows_its_lag() -> None:
    histogram = asyncio.run(_sample(busy=True))
    assert histogram.count >= 5
    below_5ms = sum(histogram.counts[: LATENCY_BUCKETS.index(0.0025) + 1])
    assert below_5ms == 0, histogram.counts  # every sample waited for a 5 ms callback


def test_an_idle_loop_shows_almost_none() -> None:
    histogram = asyncio.run(_sample(busy=False))
    assert histogram.count >= 5
    assert histogram.total / histogram.count < 0.001, histogram.counts
