"""GET /metrics, parsed with prometheus-client's own parser."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from admin_client import AdminClient
from servers import RedisServer, free_port, proxy_config, wait_until


def scrape(admin: AdminClient) -> dict[str, list[Sample]]:
    response = admin.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matches = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, (name, labels, samples)
    return matches[0]


def test_metrics_families_and_values(admin: AdminClient) -> None:
    client = admin.proxy.client()
    client.set(b"k", b"v")
    for _ in range(3):
        client.get(b"k")
    with pytest.raises(redis.ResponseError):
        client.execute_command("LPUSH", "k", "x")  # WRONGTYPE
    families = scrape(admin)

    # The parser strips _total from counter family names.
    commands = families["redis_proxy_commands"]
    assert value(commands, "redis_proxy_commands_total", command="GET") == 3
    assert value(commands, "redis_proxy_commands_total", command="SET") == 1
    assert value(families["redis_proxy_error_replies"], "redis_proxy_error_replies_total") >= 1
    assert value(families["redis_proxy_proxy_errors"], "redis_proxy_proxy_errors_total") == 0
    assert value(families["redis_proxy_bytes_received"], "redis_proxy_bytes_received_total") > 0
    assert value(families["redis_proxy_bytes_sent"], "redis_proxy_bytes_sent_total") > 0
    for counter in ("reloads", "reload_failures", "switches", "time_limit_kills", "uplink_failures"):
        assert value(families[f"redis_proxy_{counter}"], f"redis_proxy_{counter}_total") == 0
    assert value(families["redis_proxy_clients"], "redis_proxy_clients") == 1
    assert value(families["redis_proxy_in_flight"], "redis_proxy_in_flight") == 0
    assert value(families["redis_proxy_waiting"], "redis_proxy_waiting") == 0
    assert value(families["redis_proxy_raw_connections"], "redis_proxy_raw_connections") == 0
    assert value(families["redis_proxy_uptime_seconds"], "redis_proxy_uptime_seconds") > 0

    state = families["redis_proxy_state"]
    assert {s.labels["state"]: s.value for s in state} == {"running": 1, "pausing": 0, "paused": 0, "stopping": 0}

    for histogram in ("latency_seconds", "proxy_delay_seconds", "pause_hold_seconds", "loop_lag_seconds"):
        samples = families[f"redis_proxy_{histogram}"]
        buckets = [s for s in samples if s.name.endswith("_bucket")]
        assert buckets[-1].labels["le"] == "+Inf"
        counts = [s.value for s in buckets]
        assert counts == sorted(counts), "buckets are cumulative"
        assert counts[-1] == value(samples, f"redis_proxy_{histogram}_count")
    latency = families["redis_proxy_latency_seconds"]
    assert value(latency, "redis_proxy_latency_seconds_count") >= 5
    assert value(latency, "redis_proxy_latency_seconds_sum") > 0


def test_metrics_follow_pause_and_reload(
    admin: AdminClient, redis_factory: Callable[..., RedisServer]
) -> None:
    admin.ok("pause")
    wait_until(lambda: admin.info()["state_str"] == "paused")
    state = scrape(admin)["redis_proxy_state"]
    assert {s.labels["state"]: s.value for s in state}["paused"] == 1
    admin.ok("unpause")
    hold = scrape(admin)["redis_proxy_pause_hold_seconds"]
    assert value(hold, "redis_proxy_pause_hold_seconds_count") == 1

    second = redis_factory()
    admin.proxy.rewrite_config({**admin.proxy.config, "uplink": {"addr": second.addr}})
    admin.ok("reload")
    families = scrape(admin)
    assert value(families["redis_proxy_switches"], "redis_proxy_switches_total") == 1
    assert value(families["redis_proxy_reloads"], "redis_proxy_reloads_total") == 1


def test_metrics_show_in_flight_commands(admin: AdminClient) -> None:
    client = admin.proxy.client()
    # Connect first: redis-py's connection handshake (CLIENT SETINFO) would
    # otherwise pass for the slow command in flight.
    assert client.ping()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(client.execute_command, "DEBUG", "SLEEP", "0.5")
        wait_until(
            lambda: value(scrape(admin)["redis_proxy_in_flight"], "redis_proxy_in_flight") == 1,
            message="in_flight gauge shows the DEBUG SLEEP",
        )
        assert slow.result(timeout=5) == b"OK"


def test_metrics_count_pauses_and_time_the_current_one(admin: AdminClient) -> None:
    families = scrape(admin)
    assert value(families["redis_proxy_pauses"], "redis_proxy_pauses_total") == 0
    assert value(families["redis_proxy_current_pause_seconds"], "redis_proxy_current_pause_seconds") == 0
    admin.ok("pause")
    wait_until(
        lambda: value(scrape(admin)["redis_proxy_current_pause_seconds"], "redis_proxy_current_pause_seconds") >= 0.2,
        message="current_pause_seconds grows while paused",
    )
    admin.ok("pause")  # pausing a paused proxy begins no new hold
    assert value(scrape(admin)["redis_proxy_pauses"], "redis_proxy_pauses_total") == 1
    admin.ok("unpause")
    families = scrape(admin)
    assert value(families["redis_proxy_current_pause_seconds"], "redis_proxy_current_pause_seconds") == 0
    assert value(families["redis_proxy_pauses"], "redis_proxy_pauses_total") == 1
    assert value(families["redis_proxy_pause_hold_seconds"], "redis_proxy_pause_hold_seconds_count") == 1


def test_metrics_count_failed_switches(redis_server: RedisServer, admin_factory: Callable[..., AdminClient]) -> None:
    config = proxy_config(redis_server)
    config["uplinks"] = {"dead": {"addr": f"127.0.0.1:{free_port()}"}}
    admin = admin_factory(config)
    assert admin.cmd("switch", to="dead").status_code >= 400
    families = scrape(admin)
    assert value(families["redis_proxy_switch_failures"], "redis_proxy_switch_failures_total") == 1
    assert value(families["redis_proxy_switches"], "redis_proxy_switches_total") == 0
    assert value(families["redis_proxy_pauses"], "redis_proxy_pauses_total") == 0  # refused before any hold


def test_metrics_sample_the_event_loop_lag(admin: AdminClient) -> None:
    # Sampled every 0.25 s from the start: a few samples within a second, all
    # far below a second on an idle proxy.
    wait_until(
        lambda: value(scrape(admin)["redis_proxy_loop_lag_seconds"], "redis_proxy_loop_lag_seconds_count") >= 2,
        message="loop lag samples",
    )
    lag = scrape(admin)["redis_proxy_loop_lag_seconds"]
    assert value(lag, "redis_proxy_loop_lag_seconds_bucket", le="1.0") == value(lag, "redis_proxy_loop_lag_seconds_count")
