"""The switchover's hold: nothing releases it early, max_hold_ms bounds it, writers outside the proxy wait too."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import redis

from admin_client import AdminClient
from load import Load
from servers import ProxyProcess, wait_until
from switchover_helpers import FAST_SYNC, messages, named_config, start, wait_phase, wait_result

Factory = Callable[..., Any]


def test_operators_cannot_pause_or_unpause_during_a_switchover(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(), redis_factory()  # the default 5 s sync delay keeps it in replicate
    a.client().set("k", "v")
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "b": b}, "a"))
    admin = AdminClient(proxy)
    start(admin, "b")
    wait_phase(admin, "replicate")
    for cmd in ("pause", "unpause", "pause-and-wait"):
        response = admin.cmd(cmd)
        assert response.status_code == 409 and "a switchover is running" in response.json()["error"], cmd
    admin.ok("abort-switchover")
    assert wait_result(admin)["result"] == "aborted"
    # And a switchover does not start under an operator's pause.
    admin.ok("pause")
    response = admin.cmd("switchover", to="b")
    assert response.status_code == 409 and "paused by an operator" in response.json()["error"]
    admin.ok("unpause")


def test_the_hold_is_bounded_by_max_hold_ms_even_when_the_target_stalls(
    redis_factory: Factory, proxy_factory: Factory
) -> None:
    old, new = redis_factory(extra_args=FAST_SYNC), redis_factory(extra_args=FAST_SYNC)
    proxy: ProxyProcess = proxy_factory(named_config({"old": old, "new": new}, "old"))
    admin = AdminClient(proxy)
    load = Load([proxy.client(socket_timeout=20) for _ in range(8)]).start()
    try:
        start(admin, "new", max_hold_ms=300, retries=0, max_lag_bytes=100_000_000)
        target = new.client()
        wait_until(lambda: target.info("replication").get("master_link_status") == "up", timeout=30, interval=0.001)
        target.execute_command("CLIENT", "PAUSE", "1000", "WRITE")  # the stream stops being applied: lag
        wait_until(lambda: admin.info()["state_str"] in ("pausing", "paused"), timeout=30, interval=0.001)
        target.execute_command("CLIENT", "PAUSE", "4000", "ALL")  # and the target stops answering
        body = wait_result(admin)
    finally:
        errors = load.finish()
    assert body["result"] == "failed" and "no catch-up within max_hold_ms=300" in body["error"], messages(body)
    assert errors == [] and load.lost_on(old.client()) == []
    # Clients waited about max_hold_ms, not the target's 4 s stall.
    assert load.max_latency_ms < 2000, load.max_latency_ms
    assert admin.info()["uplink_name"] == "old"


def test_writers_outside_the_proxy_lose_nothing(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(extra_args=FAST_SYNC), redis_factory(extra_args=FAST_SYNC)
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "b": b}, "a"))
    admin = AdminClient(proxy)
    acked = [0]
    stop = threading.Event()

    def outside_writer() -> None:  # straight to the source, as a forgotten cron job would
        direct = a.client(socket_timeout=20)
        while not stop.is_set():
            try:
                acked[0] = int(direct.incr("outside"))
            except redis.ReadOnlyError:
                return  # fenced: the old server is a replica now

    writer = threading.Thread(target=outside_writer, daemon=True)
    writer.start()
    wait_until(lambda: acked[0] > 100)
    start(admin, "b")
    body = wait_result(admin)
    stop.set()
    writer.join(20)
    assert body["result"] == "done", messages(body)
    assert "writes on the source not paused" not in messages(body)
    # Every INCR the old server acknowledged is on the new one.
    assert int(b.client().get("outside") or 0) >= acked[0]
