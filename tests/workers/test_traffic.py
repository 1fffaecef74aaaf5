"""The workers' traffic counters summed into one Stats (pure)."""

from __future__ import annotations

from redis_proxy.stats import Stats
from redis_proxy.workers.traffic import add_up, snapshot


def test_counters_names_and_histograms_add_up() -> None:
    one, two = Stats(), Stats()
    one.commands, two.commands = 3, 4
    one.count_names([[b"get"], [b"SET"]])
    two.count_names([[b"GET"]])
    one.latency.observe(0.0002)
    two.latency.observe(0.003)
    total = Stats()
    total.reloads = 5  # the control process's own: left alone
    add_up(total, [snapshot(one), snapshot(two)])
    assert total.commands == 7 and total.reloads == 5
    assert total.names() == {b"GET": 2, b"SET": 1}
    assert total.latency.count == 2 and sum(total.latency.counts) == 2
    assert abs(total.latency.total - 0.0032) < 1e-9
    add_up(total, [])
    assert total.commands == 0 and total.latency.count == 0
