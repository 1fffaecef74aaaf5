"""Failover's edges: a stalled (not dead) primary, a primary that comes back while searching, operators meanwhile."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from admin_client import AdminClient
from servers import ProxyProcess, wait_until
from test_monitor import failover_config, replica_of

Factory = Callable[..., Any]


def test_commands_in_flight_on_a_stalled_primary_are_answered(redis_factory: Factory, proxy_factory: Factory) -> None:
    primary = redis_factory()
    replica = replica_of(redis_factory(), primary)
    config = failover_config({"p": primary, "r": replica}, "p", candidates=["r"], promote=True, max_hold_ms=3000)
    config["read_time_limit_ms"] = 0  # nothing else would ever end them
    proxy: ProxyProcess = proxy_factory(config)
    admin = AdminClient(proxy)
    client = proxy.client(socket_timeout=25)
    assert client.set("k", "1")
    blocked = proxy.client(socket_timeout=25)
    outcomes: list[Any] = []

    def call(fn: Callable[[], Any]) -> None:
        try:
            outcomes.append(fn())
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
            outcomes.append(exc)

    waiting = threading.Thread(target=call, args=(lambda: blocked.blpop("q", 0),), daemon=True)
    waiting.start()
    time.sleep(0.3)
    assert primary.proc is not None
    os.kill(primary.proc.pid, signal.SIGSTOP)  # stalled: its port stays open
    try:
        in_flight = threading.Thread(target=call, args=(lambda: client.get("k"),), daemon=True)
        in_flight.start()
        wait_until(lambda: admin.info()["uplink_name"] == "r", timeout=20)
        in_flight.join(10)
        waiting.join(10)
    finally:
        os.kill(primary.proc.pid, signal.SIGCONT)
    assert len(outcomes) == 2, outcomes
    for outcome in outcomes:
        assert isinstance(outcome, redis.ResponseError) and "outcome is unknown" in str(outcome), outcomes
    assert client.get("k") == b"1" and blocked.rpush("q", "x") == 1  # the same clients go on, on r


def test_searching_ends_when_the_active_uplink_comes_back(redis_factory: Factory, proxy_factory: Factory) -> None:
    primary, spare = redis_factory(), redis_factory()
    spare.client().replicaof("127.0.0.1", primary.port)  # refused: a replica, and promote is false
    proxy: ProxyProcess = proxy_factory(
        failover_config({"p": primary, "s": spare}, "p", candidates=["s"], max_hold_ms=500, max_backoff_ms=300)
    )
    admin = AdminClient(proxy)
    client = proxy.client(socket_timeout=10)
    assert client.set("k", "on p")
    primary.kill()
    wait_until(lambda: admin.info()["failover"]["state"] == "searching", timeout=20)
    # Nothing is held while searching: an operator may act (this reload is refused for its own reason).
    response = admin.cmd("reload")
    assert "is running" not in response.json()["error"] and "cannot connect to uplink" in response.json()["error"]
    primary.start()
    wait_until(lambda: admin.info()["failover"]["state"] == "watching", timeout=20)
    last = admin.info()["failover"]["last"]
    assert last["result"] == "recovered" and admin.info()["uplink_name"] == "p"
    spare.client().replicaof("NO", "ONE")  # later, a promotable spare must not be switched to
    time.sleep(1.0)
    assert admin.info()["uplink_name"] == "p"
    assert client.set("k2", "still p") and primary.client().get("k2") == b"still p"
