"""Following Redis Sentinel, against real sentinels, real redis-servers and a real proxy process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from admin_client import AdminClient
from sentinel_servers import SentinelServer, Setup
from load import Load
from servers import REPO_ROOT, ProxyProcess, free_port, proxy_config, wait_until

Factory = Callable[..., Any]


class Admins(list[AdminClient]):
    def open(self, proxy: ProxyProcess) -> AdminClient:
        self.append(AdminClient(proxy))
        return self[-1]


@pytest.fixture
def admins() -> Iterator[Admins]:
    opened = Admins()
    yield opened
    for admin in opened:
        admin.close()


def sentinel_state(admin: AdminClient) -> dict[str, Any]:
    state: dict[str, Any] = admin.info()["sentinel"]
    return state


def start_proxy(proxy_factory: Factory, admins: Admins, setup: Setup, uplink: str | None = None, **sentinel: Any) -> tuple[ProxyProcess, AdminClient]:
    config = proxy_config(uplink or setup.master.addr, sentinel=setup.sentinel_section(**sentinel))
    proxy: ProxyProcess = proxy_factory(config)
    return proxy, admins.open(proxy)


def test_sentinel_failover_under_load_holds_commands(sentinel_setup: Setup, proxy_factory: Factory, admins: Admins) -> None:
    """(4): 8 clients INCR through the proxy, SENTINEL FAILOVER: the proxy ends on the new master, 0 client errors."""
    setup = sentinel_setup
    proxy, admin = start_proxy(proxy_factory, admins, setup)
    wait_until(lambda: all(s["connected"] for s in sentinel_state(admin)["sentinels"]), message="sentinels followed")
    load = Load([proxy.client(socket_timeout=20) for _ in range(8)]).start()
    time.sleep(0.3)
    setup.failover()
    wait_until(lambda: admin.info()["uplink"] == setup.replica.addr, timeout=30, message="switched to the new master")
    marks = load.marks()
    wait_until(lambda: load.progressed_since(marks), timeout=10, message="clients served by the new master")
    errors = load.finish()
    assert errors == []
    assert load.lost_on(setup.replica.client()) == []
    state = sentinel_state(admin)
    last = state["last_failover"]
    assert last["result"] == "switched" and last["from_addr"] == setup.master.addr and last["to_addr"] == setup.replica.addr
    assert state["master"] == setup.replica.addr and state["holding"] is None
    assert state["results"] == {"switched": 1, "aborted": 0, "expired": 0, "refused": 0}
    assert last["held_ms"] < 10000
    assert admin.info()["state_str"] == "running"
    # Every sentinel's +switch-master arrives after the switch: nothing more happens.
    wait_until(lambda: all(s.master_addr() == setup.replica.addr for s in setup.sentinels), timeout=10)
    time.sleep(0.5)
    assert len(sentinel_state(admin)["failovers"]) == 1
    log = proxy.log()
    assert "+selected-slave" in log and "+promoted-slave" in log
    # The file still names the old master: a reload keeps the one Sentinel named, and cannot change sentinel.
    assert admin.ok("reload")["switched"] is False and admin.info()["uplink"] == setup.replica.addr
    proxy.rewrite_config({**proxy.config, "sentinel": setup.sentinel_section(max_hold_ms=5000)})
    response = admin.cmd("reload")
    assert response.status_code == 409 and "sentinel cannot be added, removed or changed on reload" in response.json()["error"]
    print(
        f"\n[sentinel failover] held_ms={last['held_ms']} ({last['trigger']}),"
        f" longest client wait {load.max_latency_ms:.1f} ms, {sum(load.marks())} INCRs"
    )


def test_startup_resolves_a_stale_uplink_addr_and_skips_a_dead_sentinel(sentinel_setup: Setup, proxy_factory: Factory, admins: Admins) -> None:
    setup = sentinel_setup
    dead = f"127.0.0.1:{free_port()}"
    config = proxy_config(setup.replica.addr, sentinel={"addrs": [dead, *setup.addrs], "master_name": "mymaster"})
    proxy: ProxyProcess = proxy_factory(config)  # the file names the replica: a failover happened since it was written
    admin = admins.open(proxy)
    info = admin.info()
    assert info["uplink"] == setup.master.addr
    client = proxy.client()
    assert client.set("k", "v") and setup.master.client().get("k") == b"v"
    assert f"sentinel {setup.addrs[0]}: master mymaster is at {setup.master.addr}" in proxy.log()
    wait_until(lambda: [s["connected"] for s in sentinel_state(admin)["sentinels"]] == [False, True, True, True])
    state = sentinel_state(admin)
    assert state["sentinels"][0]["addr"] == dead and "connect" in state["sentinels"][0]["error"].lower()
    assert state["config_epoch"] == 0
    check = run_cli("-f", str(proxy.config_path), "--check")
    assert check.returncode == 0, check.stderr
    assert f"ok: sentinel {setup.addrs[0]} says master mymaster is at {setup.master.addr} (config epoch 0)" in check.stdout
    assert f"warning: sentinel {dead}:" in check.stderr
    assert f"uplink {setup.master.addr} reachable" in check.stdout


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "redis_proxy", *args], capture_output=True, text=True, timeout=60, env=env)


def test_no_sentinel_answers_refuses_to_start(tmp_path: Path, redis_factory: Factory) -> None:
    master = redis_factory()
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(proxy_config(master, admin=False, sentinel={"addrs": dead, "master_name": "mymaster"})))
    result = run_cli("-f", str(path))
    assert result.returncode == 3, result.stderr
    assert "no sentinel told where master 'mymaster' is" in result.stderr
    assert all(f"sentinel {addr}:" in result.stderr for addr in dead)


class Writers:
    """Threads SETting keys through the proxy; their errors and slowest command (INCR checks would trip
    over the writes this test loses on purpose: those acknowledged by the old master after the hold ended)."""

    def __init__(self, clients: list[redis.Redis]) -> None:
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.slowest = 0.0
        self.threads = [threading.Thread(target=self._write, args=(c,), daemon=True) for c in clients]
        for thread in self.threads:
            thread.start()

    def _write(self, client: redis.Redis) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                client.set("w", "x")
            except redis.RedisError as exc:
                self.errors.append(repr(exc))
                return
            self.slowest = max(self.slowest, time.perf_counter() - started)

    def finish(self) -> list[str]:
        self.stop.set()
        for thread in self.threads:
            thread.join(20)
        return self.errors


def test_the_sentinels_own_password_is_used(redis_factory: Factory, proxy_factory: Factory, admins: Admins) -> None:
    master = redis_factory(password="redis-secret")
    lone = SentinelServer(master, quorum=1, extra_conf="requirepass sentinel-secret\nsentinel auth-pass mymaster redis-secret\n", password="sentinel-secret")
    with lone:
        stale = f"127.0.0.1:{free_port()}"  # Sentinel names the master
        good = {"addrs": [lone.addr], "master_name": "mymaster", "pass": "sentinel-secret"}
        config = proxy_config(stale, sentinel=good)
        config["uplink"]["pass"] = "redis-secret"
        proxy: ProxyProcess = proxy_factory(config)
        admin = admins.open(proxy)
        assert admin.info()["uplink"] == master.addr and proxy.client().set("k", "v")
        assert "sentinel-secret" not in json.dumps(admin.info()) and "sentinel-secret" not in proxy.log()
        wrong = {**config, "sentinel": {**good, "pass": "wrong"}}
        del wrong["admin"]
        path = proxy.directory / "wrong.json"
        path.write_text(json.dumps(wrong))
        result = run_cli("-f", str(path))
        assert result.returncode == 3 and f"sentinel {lone.addr}:" in result.stderr, result.stderr
        assert "wrong" not in result.stderr.replace("WRONGPASS", "")


def test_hold_is_bounded_by_max_hold_ms(sentinel_setup: Setup, proxy_factory: Factory, admins: Admins) -> None:
    """A hold shorter than Sentinel's promotion ends by itself; the promotion then switches with a hold of its own."""
    setup = sentinel_setup
    proxy, admin = start_proxy(proxy_factory, admins, setup, max_hold_ms=100)
    wait_until(lambda: all(s["connected"] for s in sentinel_state(admin)["sentinels"]))
    writers = Writers([proxy.client(socket_timeout=20) for _ in range(4)])
    setup.failover()
    wait_until(lambda: admin.info()["uplink"] == setup.replica.addr, timeout=30)
    assert writers.finish() == []
    failovers = sentinel_state(admin)["failovers"]
    assert [f["result"] for f in failovers] == ["switched", "expired"], failovers
    assert 90 <= failovers[1]["held_ms"] < 400  # deadline counted from the event, a little before the pause
    assert writers.slowest < 1.0
    assert "no new master within 100 ms" in proxy.log()


def test_a_sentinel_that_was_down_is_followed_again_and_the_missed_failover_caught_up(
    sentinel_setup: Setup, proxy_factory: Factory, admins: Admins
) -> None:
    """Following one sentinel only: it is down during the failover; once back, the proxy moves to the new master."""
    setup = sentinel_setup
    only = setup.sentinels[0]
    config = proxy_config(setup.master, sentinel={"addrs": [only.addr], "master_name": "mymaster"})
    proxy: ProxyProcess = proxy_factory(config)
    admin = admins.open(proxy)
    wait_until(lambda: sentinel_state(admin)["sentinels"][0]["connected"])
    only.stop()
    wait_until(lambda: not sentinel_state(admin)["sentinels"][0]["connected"], message="the link noticed")
    setup.failover(via=1)
    wait_until(lambda: setup.sentinels[1].master_addr() == setup.replica.addr, timeout=30)
    assert admin.info()["uplink"] == setup.master.addr  # nobody told it
    only.start()
    wait_until(lambda: admin.info()["uplink"] == setup.replica.addr, timeout=30, message="caught up after reconnecting")
    assert sentinel_state(admin)["sentinels"][0]["connected"]
    client = proxy.client()
    assert client.incr("after") == 1 and setup.replica.client().get("after") == b"1"


def test_a_dead_master_is_replaced_by_the_one_sentinel_promotes(sentinel_setup: Setup, proxy_factory: Factory, admins: Admins) -> None:
    """A real failure: commands wait while the master is down, until Sentinel fails over; then they go to the new one."""
    setup = sentinel_setup
    proxy, admin = start_proxy(proxy_factory, admins, setup)
    wait_until(lambda: all(s["connected"] for s in sentinel_state(admin)["sentinels"]))
    client = proxy.client(socket_timeout=20)
    assert client.set("before", "1")
    wait_until(lambda: setup.replica.client().get("before") == b"1")
    setup.master.kill()
    # A command sent now waits for the new master (sentinel.max_hold_ms) instead of failing. If it
    # reached the old connection before the proxy saw it die, its outcome is unknown: sent again.
    try:
        assert client.set("during", "waited")
    except redis.ResponseError as exc:
        assert "outcome is unknown" in str(exc)
        assert client.set("during", "waited")
    # down-after-milliseconds (1 s), then the sentinels agree and elect a leader.
    wait_until(lambda: admin.info()["uplink"] == setup.replica.addr, timeout=60, interval=0.1, message="followed the failover")
    assert setup.replica.client().get("during") == b"waited"
    assert client.get("before") == b"1" and client.set("after", "2")
    last = sentinel_state(admin)["last_failover"]
    assert last["result"] == "switched" and last["to_addr"] == setup.replica.addr
    print(f"\n[sentinel, master killed] held_ms={last['held_ms']} ({last['trigger']})")
    page = admin.get("/").text
    assert "Redis Sentinel" in page and "connected" in page and "switched: " in page
