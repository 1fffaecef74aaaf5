"""Several proxies in front of the same Redis: a switchover pauses and switches its peers too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from admin_client import AdminClient
from load import Load
from servers import ProxyProcess
from switchover_helpers import FAST_SYNC, messages, named_config, start, switchover_under_load, wait_result

Factory = Callable[..., Any]


def two_proxies(redis_factory: Factory, proxy_factory: Factory, **extra: Any) -> tuple[Any, Any, ProxyProcess, ProxyProcess]:
    a, b = redis_factory(extra_args=FAST_SYNC), redis_factory(extra_args=FAST_SYNC)
    peer_config = named_config({"a": a, "b": b}, "a", **extra)
    peer_config["admin"]["pass"] = "peer-admin-secret"
    peer: ProxyProcess = proxy_factory(peer_config)
    config = named_config({"a": a, "b": b}, "a", **extra)
    config["peers"] = [{"url": f"http://{peer_config['admin']['addr']}", "pass": "peer-admin-secret"}]
    leader: ProxyProcess = proxy_factory(config)
    return a, b, leader, peer


def test_two_proxies_switched_together_under_load(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b, leader, peer = two_proxies(redis_factory, proxy_factory)
    admin = AdminClient(leader)
    peer_admin = AdminClient(peer, auth=("admin", "peer-admin-secret"))
    load = Load([leader.client(socket_timeout=20) for _ in range(4)] + [peer.client(socket_timeout=20) for _ in range(4)])
    load.start()
    body, errors = switchover_under_load(admin, load, "b")
    assert body["result"] == "done" and body["error"] is None, messages(body)
    assert errors == [] and load.lost_on(b.client()) == []
    assert "1 peer(s) switched and unpaused" in messages(body)
    for info in (admin.info(), peer_admin.info()):
        assert info["uplink_name"] == "b" and info["state_str"] == "running"


def test_a_peer_that_cannot_pause_fails_the_switchover_before_promotion(
    redis_factory: Factory, proxy_factory: Factory
) -> None:
    a, b, leader, peer = two_proxies(redis_factory, proxy_factory, read_time_limit_ms=30000)
    admin = AdminClient(leader)
    peer_admin = AdminClient(peer, auth=("admin", "peer-admin-secret"))
    # An open transaction on the peer keeps it from ever reaching "paused".
    txn = peer.client(single_connection_client=True)
    txn.execute_command("MULTI")
    start(admin, "b", max_hold_ms=300, retries=1)
    body = wait_result(admin)
    assert body["result"] == "failed", messages(body)
    assert "pause-and-wait refused (504)" in messages(body)
    for info in (admin.info(), peer_admin.info()):
        assert info["uplink_name"] == "a" and info["state_str"] == "running"
    assert b.client().info("replication")["role"] == "master"
    assert leader.client().set("k", "v") and a.client().get("k") == b"v"
    assert txn.execute_command("EXEC") == []


def test_an_unreachable_peer_fails_in_preflight(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(), redis_factory()
    config = named_config({"a": a, "b": b}, "a")
    config["peers"] = [{"url": "http://127.0.0.1:1"}]
    admin = AdminClient(proxy_factory(config))
    start(admin, "b")
    body = wait_result(admin)
    assert body["result"] == "failed" and body["phase"] == "preflight" and "peer http://127.0.0.1:1" in body["error"]
