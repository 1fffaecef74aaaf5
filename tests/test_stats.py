"""Counters: command names are bounded, histograms bucket correctly."""

from __future__ import annotations

from redis_proxy.stats import LATENCY_BUCKETS, Histogram, Stats


def test_command_names_fold_case_and_unknown_names() -> None:
    stats = Stats()
    stats.count_names([[b"get", b"k"], [b"GET", b"k"], [b"Set", b"k", b"v"], [b"made-up"]])
    assert stats.names() == {b"GET": 2, b"SET": 1, b"OTHER": 1}


def test_command_names_stay_bounded_under_random_names() -> None:
    stats = Stats()
    stats.count_names([[f"junk{i}".encode()] for i in range(5000)])
    assert len(stats.commands_by_name) <= 1025
    assert stats.names()[b"OTHER"] == 5000


def test_histogram_buckets() -> None:
    histogram = Histogram(LATENCY_BUCKETS)
    for value in (0.00005, 0.0001, 0.003, 100.0):
        histogram.observe(value)
    assert histogram.count == 4
    assert histogram.counts[0] == 2  # <= 0.1 ms, bounds are inclusive
    assert histogram.counts[LATENCY_BUCKETS.index(0.005)] == 1
    assert histogram.counts[-1] == 1  # +Inf
