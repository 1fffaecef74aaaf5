"""The status page's history: the ring buffer and per-second p99 (pure), and the sampler on a real Proxy object."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from redis_proxy.admin.history import SAMPLES, History, Sample, quantile_ms
from redis_proxy.admin.sampler import Sampler
from redis_proxy.config import load_config
from redis_proxy.controller import Switch
from redis_proxy.server import Proxy

BOUNDS = (0.001, 0.002, 0.005)  # 1, 2, 5 ms and +Inf


def test_quantile_of_nothing_is_none() -> None:
    assert quantile_ms(BOUNDS, [0, 0, 0, 0], 0.99) is None


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 100 round trips between 1 and 2 ms: the 99th is near the top of that bucket, not at 2 ms exactly.
    assert quantile_ms(BOUNDS, [0, 100, 0, 0], 0.99) == pytest.approx(1.99)
    assert quantile_ms(BOUNDS, [0, 100, 0, 0], 0.5) == pytest.approx(1.5)
    # The first bucket starts at 0.
    assert quantile_ms(BOUNDS, [10, 0, 0, 0], 0.5) == pytest.approx(0.5)


def test_quantile_sees_the_slow_tail() -> None:
    # 98 fast, 2 slow: the 99th percentile is a slow one.
    assert 2.0 < quantile_ms(BOUNDS, [98, 0, 2, 0], 0.99) <= 5.0  # type: ignore[operator]
    assert quantile_ms(BOUNDS, [99, 0, 0, 1], 0.99) == pytest.approx(1.0)  # the 99th of 100 is still fast
    # Past the last bound the histogram knows no more than "at least that".
    assert quantile_ms(BOUNDS, [0, 0, 0, 5], 0.99) == pytest.approx(5.0)


def _sample(t: float, ops: float = 0.0, paused: bool = False) -> Sample:
    return Sample(t=t, ops=ops, p99_ms=None, clients=1, held=0, paused=paused)


def test_ring_keeps_the_last_15_minutes() -> None:
    history = History()
    for i in range(SAMPLES + 100):
        history.add(_sample(1000.0 + i, ops=i))
    body = history.to_json()
    assert len(body["samples"]["t"]) == SAMPLES == 900
    assert body["samples"]["t"][0] == 1100.0 and body["samples"]["t"][-1] == 1999.0
    assert body["samples"]["ops"][-1] == SAMPLES + 99


def test_json_is_columns_and_since_filters() -> None:
    history = History(size=10)
    history.add(_sample(10.0, ops=5.0))
    history.add(Sample(t=11.0, ops=7.25, p99_ms=0.123456, clients=3, held=2, paused=True))
    # Noticed at the sample of t=11, though it happened at 10.5: a page that has t=10 still gets it.
    history.event(10.5, "pause", "paused: held by an operator", noticed=11.0)
    body = history.to_json()
    assert body["samples"] == {
        "t": [10.0, 11.0],
        "ops": [5.0, 7.2],
        "p99_ms": [None, 0.123],
        "clients": [1, 3],
        "held": [0, 2],
        "paused": [False, True],
    }
    assert body["events"] == [{"t": 10.5, "kind": "pause", "text": "paused: held by an operator"}]
    newer = history.to_json(since=10.0)
    assert newer["samples"]["t"] == [11.0] and len(newer["events"]) == 1
    assert history.to_json(since=11.0) == {
        "samples": {"t": [], "ops": [], "p99_ms": [], "clients": [], "held": [], "paused": []},
        "events": [],
    }


def test_since_compares_what_was_sent() -> None:
    # The page sends back the rounded time it got: the same sample must not come again.
    history = History()
    history.add(_sample(10.0004))
    history.event(9.0, "reload", "config reloaded", noticed=10.0004)
    sent = history.to_json()["samples"]["t"][-1]
    assert sent == 10.0
    assert history.to_json(since=sent)["samples"]["t"] == [] and history.to_json(since=sent)["events"] == []


def test_events_are_bounded() -> None:
    history = History(events=3)
    for i in range(5):
        history.event(float(i), "switch", f"switch {i}")
    assert [e["text"] for e in history.to_json()["events"]] == ["switch 2", "switch 3", "switch 4"]


# -- the sampler, on a Proxy object that is not serving: its counters are set by hand ------------


def _proxy(tmp_path: Path) -> Proxy:
    path = tmp_path / "proxy.json"
    path.write_text('{"listen": {"addr": "127.0.0.1:0"}, "uplink": {"addr": "127.0.0.1:1"}}')
    return Proxy(load_config(str(path)), str(path))


def test_sampler_rates_p99_and_events(tmp_path: Path) -> None:
    async def scenario() -> None:
        proxy = _proxy(tmp_path)
        sampler = Sampler(proxy)
        stats, controller = proxy.stats, proxy.controller
        stats.commands += 500
        for _ in range(99):
            stats.latency.observe(0.0003)
        stats.latency.observe(0.2)
        first = sampler.sample()
        assert first.ops > 0 and not first.paused
        assert first.p99_ms is not None and 0.25 <= first.p99_ms <= 0.5  # the 0.25-0.5 ms bucket
        # The next second saw nothing: no rate, no p99 (the histogram's old counts do not count again).
        second = sampler.sample()
        assert second.ops == 0 and second.p99_ms is None

        controller.pause()
        paused = sampler.sample()
        assert paused.paused
        assert sampler.now()["paused_for_s"] is not None and sampler.now()["operator_paused"] is True
        controller.unpause()
        # A hold that begins and ends between two samples still marks the second.
        controller.pause()
        controller.unpause()
        assert sampler.sample().paused
        assert not sampler.sample().paused
        assert sampler.now()["paused_for_s"] is None

        controller.switches.appendleft(Switch(123.0, "127.0.0.1:1", "127.0.0.1:2", 4.5))
        stats.reloads += 1
        controller.last_error = (124.0, "switch to b", "uplink b refused: connection refused")
        sampler.sample()
        sampler.sample()  # nothing new: no repeated events
        kinds = [(e["kind"], e["text"]) for e in sampler.history.to_json()["events"]]
        assert kinds == [
            ("pause", "paused: held by an operator"),
            ("unpause", "running again (was paused)"),
            ("switch", "127.0.0.1:1 \u2192 127.0.0.1:2, held 4.5 ms"),
            ("reload", "config reloaded"),
            ("switch-failed", "switch to b failed: uplink b refused: connection refused"),
        ]
        assert sampler.now()["last_error"] == {"t": 124.0, "what": "switch to b", "error": "uplink b refused: connection refused"}

    asyncio.run(scenario())

