"""`cmd=switchover`: the whole replacement, against real redis-servers and a real proxy process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from admin_client import AdminClient
from load import Load
from servers import ProxyProcess, RedisServer, wait_until
from switchover_helpers import (
    FAST_SYNC,
    dead_addr,
    messages,
    named_config,
    over_tls,
    start,
    status,
    switchover_under_load,
    wait_phase,
    wait_result,
)

Factory = Callable[..., Any]


def role(server: RedisServer) -> str:
    return str(server.client().info("replication")["role"])


def test_switchover_under_incr_load_loses_nothing(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new = redis_factory(extra_args=FAST_SYNC), redis_factory(extra_args=FAST_SYNC)
    old.client().set("before", "kept")
    proxy: ProxyProcess = proxy_factory(named_config({"old": old, "new": new}, "old"))
    admin = AdminClient(proxy)
    load = Load([proxy.client(socket_timeout=20) for _ in range(16)]).start()
    body, errors = switchover_under_load(admin, load, "new")
    assert body["result"] == "done", messages(body)
    assert errors == []
    assert load.lost_on(new.client()) == []
    assert new.client().get("before") == b"kept"
    assert body["from"] == "old" and body["to"] == "new" and body["held_ms"] > 0
    info = admin.info()
    assert info["uplink_name"] == "new" and info["uplink"] == new.addr and info["state_str"] == "running"
    # Fenced: the old server is now a replica of the new one, so nothing can write to it.
    assert role(old) == "slave" and role(new) == "master"
    with pytest.raises(redis.ReadOnlyError):
        old.client().set("x", 1)
    events = messages(body)
    for phase in ("preflight", "replicate", "catch-up", "promote", "switch"):
        assert f"phase {phase}" in events
    print(f"\n[switchover] held_ms={body['held_ms']} longest client wait {load.max_latency_ms:.1f} ms")


def test_switchover_back_needs_no_copy_and_passwords_are_used(redis_factory: Factory, proxy_factory: Factory) -> None:
    a = redis_factory(password="pw-a", extra_args=FAST_SYNC)
    b = redis_factory(password="pw-b", extra_args=FAST_SYNC)
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "b": b}, "a"))
    admin = AdminClient(proxy)
    client = proxy.client()
    client.set("k", "1")
    start(admin, "b")
    assert wait_result(admin)["result"] == "done"
    client.set("k", "2")
    assert b.client().get("k") == b"2"
    # Back: a already replicates b (the fence), so no REPLICAOF and no full sync.
    wait_until(lambda: a.client().info("replication").get("master_link_status") == "up", timeout=20)
    start(admin, "a")
    body = wait_result(admin)
    assert body["result"] == "done", messages(body)
    assert "already replicates the source" in messages(body)
    assert client.get("k") == b"2" and client.set("k", "3")
    assert a.client().get("k") == b"3" and role(b) == "slave"


def test_switchover_over_tls_replication(redis_factory: Factory, proxy_factory: Factory, certs: Any) -> None:
    a = redis_factory(tls=certs, extra_args=FAST_SYNC)
    b = redis_factory(tls=certs, extra_args=FAST_SYNC)
    proxy: ProxyProcess = proxy_factory(over_tls(named_config({"a": a, "b": b}, "a"), certs))
    admin = AdminClient(proxy)
    client = proxy.client()
    client.set("secret", "over tls")
    start(admin, "b")
    body = wait_result(admin)
    assert body["result"] == "done", messages(body)
    assert client.get("secret") == b"over tls"
    tls_b = b.client()
    assert tls_b.config_get("tls-replication")["tls-replication"] == "yes"
    assert role(a) == "slave"


def test_an_unreachable_target_fails_in_preflight(redis_factory: Factory, proxy_factory: Factory) -> None:
    a = redis_factory()
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "gone": dead_addr()}, "a"))
    admin = AdminClient(proxy)
    start(admin, "gone")
    body = wait_result(admin)
    assert body["result"] == "failed" and body["phase"] == "preflight"
    assert "uplink gone refused" in body["error"]
    assert admin.info()["state_str"] == "running" and proxy.client().ping()


def test_a_target_with_keys_is_refused_unless_forced(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(extra_args=FAST_SYNC), redis_factory(extra_args=FAST_SYNC)
    b.client().set("someone-elses", "data")
    a.client().set("mine", "1")
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "b": b}, "a"))
    admin = AdminClient(proxy)
    start(admin, "b")
    body = wait_result(admin)
    assert body["result"] == "failed" and "holds 1 key(s)" in body["error"] and "force=true" in body["error"]
    assert role(b) == "master" and b.client().get("someone-elses") == b"data"  # untouched
    start(admin, "b", force="true")
    assert wait_result(admin)["result"] == "done"
    assert b.client().get("mine") == b"1" and b.client().get("someone-elses") is None


def test_without_reverse_the_source_refuses_writes(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(extra_args=FAST_SYNC), redis_factory(extra_args=FAST_SYNC)
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "b": b}, "a"))
    admin = AdminClient(proxy)
    start(admin, "b", reverse="false")
    assert wait_result(admin)["result"] == "done"
    assert role(a) == "master"
    with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
        a.client().set("x", 1)


def test_one_switchover_at_a_time_and_bad_parameters(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(), redis_factory()  # the default 5 s sync delay keeps the first one running
    a.client().set("k", "v")
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "b": b}, "a"))
    admin = AdminClient(proxy)
    assert admin.cmd("switchover", to="nope").status_code == 400
    assert admin.cmd("switchover", to="a").status_code == 400  # already active
    assert admin.cmd("switchover", to="b", max_hold_ms="soon").status_code == 400
    assert admin.cmd("abort-switchover").status_code == 409  # nothing to abort
    assert status(admin)["phase"] == "idle"
    start(admin, "b")
    response = admin.cmd("switchover", to="b")
    assert response.status_code == 409 and "already running" in response.json()["error"]
    response = admin.cmd("switch", to="b")
    assert response.status_code == 409 and "switchover is running" in response.json()["error"]
    assert admin.cmd("reload").status_code == 409
    assert admin.ok("abort-switchover")
    assert wait_result(admin)["result"] == "aborted"


# -- abort at each phase ------------------------------------------------------------------------


def assert_rolled_back(admin: AdminClient, proxy: ProxyProcess, source: RedisServer, body: dict[str, Any]) -> None:
    assert body["result"] == "aborted", messages(body)
    info = admin.info()
    assert info["state_str"] == "running" and info["uplink"] == source.addr
    client = proxy.client()
    assert client.set("after-abort", "1") and source.client().get("after-abort") == b"1"
    assert role(source) == "master"


def test_abort_in_preflight(redis_factory: Factory, proxy_factory: Factory) -> None:
    import socket

    a = redis_factory()
    # A target that accepts connections and never answers: preflight waits on it.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        proxy: ProxyProcess = proxy_factory(named_config({"a": a, "mute": f"127.0.0.1:{silent.getsockname()[1]}"}, "a"))
        admin = AdminClient(proxy)
        start(admin, "mute")
        wait_phase(admin, "preflight")
        time.sleep(0.2)
        assert admin.ok("abort-switchover")["phase"] == "preflight"
        assert_rolled_back(admin, proxy, a, wait_result(admin, timeout=10))
    finally:
        silent.close()


def in_replicate(redis_factory: Factory, proxy_factory: Factory, **target_config: str) -> tuple[Any, Any, ProxyProcess, AdminClient]:
    """Servers a and b, a proxy on a, and a switchover to b in its replicate phase, b already a replica."""
    a, b = redis_factory(), redis_factory()  # the default 5 s sync delay: replicate lasts
    a.client().set("k", "v")
    for key, value in target_config.items():
        b.client().config_set(key, value)
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "b": b}, "a"))
    admin = AdminClient(proxy)
    start(admin, "b")
    wait_phase(admin, "replicate")
    wait_until(lambda: role(b) == "slave", timeout=5)
    return a, b, proxy, admin


def test_abort_in_replicate_detaches_the_target(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b, proxy, admin = in_replicate(redis_factory, proxy_factory, masterauth="kept-setting")
    admin.ok("abort-switchover")
    body = wait_result(admin)
    assert_rolled_back(admin, proxy, a, body)
    assert role(b) == "master" and "detached" in messages(body)
    assert b.client().config_get("masterauth")["masterauth"] == "kept-setting"


def with_open_transaction(redis_factory: Factory, proxy_factory: Factory) -> tuple[Any, ProxyProcess, AdminClient, Any]:
    """Servers a and b, a proxy on a, and a client inside MULTI: its open transaction holds every drain."""
    a, b = redis_factory(extra_args=FAST_SYNC), redis_factory(extra_args=FAST_SYNC)
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "b": b}, "a", read_time_limit_ms=20000))
    txn = proxy.client(single_connection_client=True)
    txn.execute_command("MULTI")
    return (a, b), proxy, AdminClient(proxy), txn


def test_abort_in_catch_up_releases_clients(redis_factory: Factory, proxy_factory: Factory) -> None:
    (a, _), proxy, admin, txn = with_open_transaction(redis_factory, proxy_factory)
    start(admin, "b", max_hold_ms=15000)
    wait_phase(admin, "catch-up")
    wait_until(lambda: admin.info()["state_str"] == "pausing", timeout=10)
    admin.ok("abort-switchover")
    body = wait_result(admin)
    assert_rolled_back(admin, proxy, a, body)
    txn.execute_command("SET", "in-txn", "1")
    assert txn.execute_command("EXEC") == [b"OK"]


def test_catch_up_retries_then_fails_with_clients_released(redis_factory: Factory, proxy_factory: Factory) -> None:
    (_, b), proxy, admin, txn = with_open_transaction(redis_factory, proxy_factory)
    start(admin, "b", max_hold_ms=200, retries=1)
    body = wait_result(admin)
    assert body["result"] == "failed" and "no catch-up within max_hold_ms=200 in 2 attempt(s)" in body["error"] and body["attempt"] == 2
    assert "retrying the catch-up (1 of 1 retries)" in messages(body)
    assert admin.info()["state_str"] == "running" and role(b) == "master"
    assert txn.execute_command("EXEC") == []


def test_shutdown_during_a_switchover_rolls_it_back(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b, proxy, _ = in_replicate(redis_factory, proxy_factory)
    assert proxy.stop() == 0
    assert "abort requested (the proxy is shutting down)" in proxy.log()
    assert role(b) == "master" and role(a) == "master"


def test_client_connections_are_opened_on_the_target_before_the_switch(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(extra_args=FAST_SYNC), redis_factory(extra_args=FAST_SYNC)
    proxy: ProxyProcess = proxy_factory(named_config({"a": a, "b": b}, "a"))
    admin = AdminClient(proxy)
    plain = proxy.client(single_connection_client=True, client_name="plain")
    in_db2 = proxy.client(single_connection_client=True, db=2, client_name="in-db2")
    in_db2.set("k", "in two")
    subscriber = proxy.client().pubsub()
    subscriber.subscribe("news")
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    start(admin, "b")
    body = wait_result(admin)
    assert body["result"] == "done", messages(body)
    assert "2 of 3 client connection(s) opened on the target ahead of the switch" in messages(body)
    time.sleep(1.2)
    # The next commands use those connections: older on b than the time since the switch.
    assert plain.ping() and in_db2.get("k") == b"in two"
    ages = {c["name"]: int(c["age"]) for c in b.client().client_list() if c["name"] in ("plain", "in-db2")}
    assert ages == {"plain": ages["plain"], "in-db2": ages["in-db2"]} and min(ages.values()) >= 1, ages
    # The subscriber was not prepared (it would have received messages twice) and follows as before.
    b.client().publish("news", "hello")
    message = subscriber.get_message(timeout=5)
    while message is not None and message["type"] != "message":
        message = subscriber.get_message(timeout=5)
    assert message is not None and message["data"] == b"hello"
