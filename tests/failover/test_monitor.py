"""Automatic failover against real servers: the active Redis is killed, the proxy picks a candidate."""

from __future__ import annotations

import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from admin_client import AdminClient
from servers import ProxyProcess, RedisServer, proxy_config, wait_until

Factory = Callable[..., Any]
FAST = {"check_interval_ms": 200, "down_after_ms": 1000}


def failover_config(servers: dict[str, RedisServer], active: str, **failover: Any) -> dict[str, Any]:
    config = proxy_config(servers[active].addr)
    config["uplinks"] = {name: {"addr": server.addr} for name, server in servers.items()}
    config["uplink"] = active
    config["failover"] = {**FAST, **failover}
    return config


def replica_of(server: RedisServer, master: RedisServer) -> RedisServer:
    server.client().replicaof("127.0.0.1", master.port)
    wait_until(lambda: server.client().info("replication")["master_link_status"] == "up", timeout=20)
    return server


class Writer(threading.Thread):
    """INCRs its own key one at a time; counts errors instead of stopping at the first."""

    def __init__(self, n: int, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.client, self.key = client, f"fo:{n}"
        self.stop = threading.Event()
        self.acked = 0
        self.ok_times: list[float] = []
        self.served: list[tuple[float, float]] = []  # (sent, answered) of each successful INCR
        self.errors: list[str] = []
        self.dropped = False

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                sent = time.monotonic()
                self.acked = int(self.client.incr(self.key))
                self.ok_times.append(time.monotonic())
                self.served.append((sent, self.ok_times[-1]))
            except redis.ResponseError as exc:
                self.errors.append(str(exc))
            except redis.ConnectionError:
                self.dropped = True
                return


def raw_ping(sock: socket.socket) -> bytes:
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    return sock.recv(64)


def test_the_active_redis_is_killed_and_clients_carry_on(redis_factory: Factory, proxy_factory: Factory) -> None:
    primary = redis_factory()
    replica = replica_of(redis_factory(), primary)
    proxy: ProxyProcess = proxy_factory(failover_config({"p": primary, "r": replica}, "p", candidates=["p", "r"], promote=True))
    admin = AdminClient(proxy)
    idle = socket.create_connection((proxy.host, proxy.port), timeout=10)
    assert raw_ping(idle) == b"+PONG\r\n"
    writers = [Writer(n, proxy.client(socket_timeout=20)) for n in range(8)]
    for writer in writers:
        writer.start()
    wait_until(lambda: all(w.acked > 10 for w in writers), timeout=20)
    killed_at = time.monotonic()
    primary.kill()
    wait_until(lambda: all(w.ok_times and w.ok_times[-1] > killed_at for w in writers) or any(w.dropped for w in writers), timeout=30)
    time.sleep(0.3)
    for writer in writers:
        writer.stop.set()
        writer.join(10)
    assert not any(w.dropped for w in writers)
    errors = [e for w in writers for e in w.errors]
    assert len(errors) <= len(writers), errors  # at most the one command each had in flight
    assert all("outcome is unknown" in e for e in errors), errors
    assert raw_ping(idle) == b"+PONG\r\n"  # the idle client's connection survived
    info = admin.info()
    assert info["uplink_name"] == "r" and info["state_str"] == "running"
    last = info["failover"]["last"]
    assert last["result"] == "done" and last["to"] == "r"
    assert replica.client().info("replication")["role"] == "master"
    # The first command sent after the kill that was answered: what a client saw of the outage.
    first = min(answered for w in writers for sent, answered in w.served if sent > killed_at)
    print(f"\n[failover] kill to first served command {1000 * (first - killed_at):.0f} ms; recover_ms {last['recover_ms']}; errors {len(errors)}")
    idle.close()


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_check_and_trigger_scripts(redis_factory: Factory, proxy_factory: Factory, tmp_path: Path) -> None:
    primary = redis_factory()
    refused, chosen = redis_factory(), redis_factory()
    log = tmp_path / "calls.log"
    check = script(tmp_path / "check.sh", f'echo "check $1" >> {log}\n[ "$1" != "{refused.addr}" ]\n')
    trigger = script(tmp_path / "trigger.sh", f'echo "trigger $1" >> {log}\n')
    config = failover_config(
        {"p": primary, "bad": refused, "good": chosen}, "p",
        candidates=["bad", "good"], check_script=check, trigger_scripts=[trigger],
    )
    proxy: ProxyProcess = proxy_factory(config)
    admin = AdminClient(proxy)
    client = proxy.client()
    assert client.set("k", "v")
    primary.kill()
    wait_until(lambda: admin.info()["uplink_name"] == "good", timeout=20)
    assert log.read_text().splitlines() == [f"check {refused.addr}", f"check {chosen.addr}", f"trigger {chosen.addr}"]
    assert client.set("k", "on good") and chosen.client().get("k") == b"on good"
    events = "\n".join(e["msg"] for e in admin.info()["failover"]["last"]["events"])
    assert "candidate bad: check script refused it (exit 1)" in events


def test_no_candidate_fails_held_commands_then_recovers(redis_factory: Factory, proxy_factory: Factory) -> None:
    primary = redis_factory()
    replica = replica_of(redis_factory(), primary)
    proxy: ProxyProcess = proxy_factory(
        failover_config({"p": primary, "r": replica}, "p", candidates=["r"], max_hold_ms=1000, max_backoff_ms=300)
    )
    admin = AdminClient(proxy)
    client = proxy.client(socket_timeout=20)
    assert client.set("k", "1")
    primary.kill()
    wait_until(lambda: admin.info()["state_str"] == "failing-over", timeout=10)
    started = time.monotonic()
    try:
        client.get("k")
        raise AssertionError("a held command should fail when no candidate comes")
    except redis.ResponseError as exc:
        assert "no usable uplink among r within max_hold_ms=1000" in str(exc)
    assert time.monotonic() - started < 5
    assert admin.info()["failover"]["state"] == "searching"
    # The replica is refused (promote is false) until someone promotes it.
    replica.client().replicaof("NO", "ONE")
    wait_until(lambda: admin.info()["uplink_name"] == "r", timeout=10)
    assert client.get("k") == b"1"
    assert admin.info()["failover"]["last"]["failed_commands"] >= 1


def test_the_status_page_shows_the_last_failover(redis_factory: Factory, proxy_factory: Factory) -> None:
    primary, spare = redis_factory(), redis_factory()
    proxy: ProxyProcess = proxy_factory(failover_config({"p": primary, "s": spare}, "p", candidates=["s"]))
    admin = AdminClient(proxy)
    page = admin.get("/").text
    assert "Automatic failover" in page and "none yet" in page
    primary.kill()
    wait_until(lambda: admin.info()["uplink_name"] == "s", timeout=20)
    page = admin.get("/").text
    assert "the active uplink p is down" in page and "p \u2192 s" in page
    metrics = admin.get("/metrics").text
    assert 'redis_proxy_failovers_total{result="done"} 1.0' in metrics
