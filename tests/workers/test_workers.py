"""`workers: N`: N processes serve one address; pause, switch and reload reach all of them as one step.

Real processes: redis-servers, the control process and its workers, real
sockets and the admin app over HTTP.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import ProxyProcess, RedisServer, proxy_config, wait_until

Factory = Callable[..., ProxyProcess]


def _info(proxy: ProxyProcess) -> dict[str, Any]:
    info: dict[str, Any] = httpx.get(f"{proxy.admin_url}/info.json", timeout=5).json()
    return info


def _cmd(proxy: ProxyProcess, **fields: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.post(f"{proxy.admin_url}/cmd/", data=fields, timeout=30).json()
    return answer


def _two_uplinks(a: RedisServer, b: RedisServer, **extra: Any) -> dict[str, Any]:
    config = proxy_config(a, workers=2, **extra)
    config["uplinks"] = {"a": {"addr": a.addr}, "b": {"addr": b.addr}}
    config["uplink"] = "a"
    return config


def _worker_pids(proxy: ProxyProcess) -> list[int]:
    pids = [w["pid"] for w in _info(proxy)["workers"]]
    assert all(pids), pids
    return [int(p) for p in pids]


class Incr:
    """Clients looping INCR, each on its own connection (which never reconnects)."""

    def __init__(self, proxy: ProxyProcess, n: int) -> None:
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.acked = [0] * n
        self.clients = [proxy.client(single_connection_client=True) for _ in range(n)]
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]
        for thread in self.threads:
            thread.start()

    def _run(self, i: int) -> None:
        client = self.clients[i]
        while not self.stop.is_set():
            try:
                client.incr(f"n:{i}")
            except Exception as exc:  # recorded, asserted on
                self.errors.append(repr(exc))
                return
            self.acked[i] += 1

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def test_clients_spread_over_workers_and_a_switch_moves_them_all(
    redis_factory: Callable[..., RedisServer], proxy_factory: Factory,
) -> None:
    a, b = redis_factory(), redis_factory()
    proxy = proxy_factory(_two_uplinks(a, b))
    load = Incr(proxy, 16)
    wait_until(lambda: _info(proxy)["clients"] == 16, message="both workers report their clients")
    per_worker = [w["clients"] for w in _info(proxy)["workers"]]
    assert sum(per_worker) == 16 and all(n > 0 for n in per_worker), per_worker  # SO_REUSEPORT spread them
    time.sleep(0.3)
    answer = _cmd(proxy, cmd="switch", to="b")
    assert answer["ok"] and answer["switched"], answer
    time.sleep(0.3)
    load.finish()
    assert load.errors == []
    # Every acknowledged INCR is in one of the two servers, and only there: none lost, none twice.
    stored = [int(a.client().get(f"n:{i}") or 0) + int(b.client().get(f"n:{i}") or 0) for i in range(16)]
    assert stored == load.acked
    # After the switch every worker writes to b only.
    before = [int(a.client().get(f"n:{i}") or 0) for i in range(16)]
    assert all(load.clients[i].incr(f"n:{i}") == load.acked[i] - before[i] + 1 for i in range(16))
    assert [int(a.client().get(f"n:{i}") or 0) for i in range(16)] == before
    # Totals are the workers' sums.
    def counted() -> bool:
        metrics = httpx.get(f"{proxy.admin_url}/metrics", timeout=5).text
        line = next(l for l in metrics.splitlines() if l.startswith('redis_proxy_commands_total{command="INCRBY"}'))
        return float(line.split()[-1]) == sum(load.acked) + 16

    wait_until(counted, message="metrics sum the workers' counters")
    assert _info(proxy)["uplink_name"] == "b"


def test_pause_holds_every_worker_until_a_transaction_on_one_ends(
    redis_factory: Callable[..., RedisServer], proxy_factory: Factory,
) -> None:
    server = redis_factory()
    proxy = proxy_factory(proxy_config(server, workers=2))
    clients = [proxy.client(single_connection_client=True) for _ in range(8)]
    for c in clients:
        assert c.ping()
    txn = proxy.client(single_connection_client=True)
    pipe = txn.pipeline(transaction=True)
    txn.execute_command("MULTI")
    txn.execute_command("SET", "t", "1")
    answer = _cmd(proxy, cmd="pause")
    assert answer["ok"]
    time.sleep(0.3)
    assert _info(proxy)["state_str"] == "pausing"  # the worker serving the transaction is not drained yet
    assert txn.execute_command("EXEC") == [b"OK"]
    wait_until(lambda: _info(proxy)["state_str"] == "paused")
    results: list[Any] = []
    threads = [threading.Thread(target=lambda c=c: results.append(c.incr("held"))) for c in clients]
    for thread in threads:
        thread.start()
    wait_until(lambda: _info(proxy)["waiting_requests"] == 8, message="every worker holds its clients' commands")
    assert server.client().get("held") is None
    assert _cmd(proxy, cmd="unpause")["ok"]
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(results) == list(range(1, 9))
    del pipe


def test_reload_applies_to_every_worker(
    redis_factory: Callable[..., RedisServer], proxy_factory: Factory,
) -> None:
    a, b = redis_factory(), redis_factory()
    config = proxy_config(a, workers=2)
    proxy = proxy_factory(config)
    clients = [proxy.client(single_connection_client=True) for _ in range(8)]
    assert all(c.set("where", "a") for c in clients)
    proxy.rewrite_config({**config, "uplink": {"addr": b.addr}})
    assert proxy.proc is not None
    os.kill(proxy.proc.pid, signal.SIGHUP)
    wait_until(lambda: _info(proxy)["uplink"] == b.addr)
    assert all(c.set(f"after:{i}", "b") for i, c in enumerate(clients))
    assert len(b.client().keys("after:*")) == 8 and a.client().keys("after:*") == []


def test_a_dead_worker_is_replaced_and_the_others_clients_carry_on(
    redis_factory: Callable[..., RedisServer], proxy_factory: Factory,
) -> None:
    server = redis_factory()
    proxy = proxy_factory(proxy_config(server, workers=2))
    clients = [proxy.client(single_connection_client=True) for _ in range(12)]
    for c in clients:
        assert c.ping()
    wait_until(lambda: _info(proxy)["clients"] == 12)
    victim, other = _info(proxy)["workers"]
    os.kill(victim["pid"], signal.SIGKILL)
    wait_until(lambda: _info(proxy)["workers"][0]["pid"] not in (None, victim["pid"]), timeout=15,
               message="the dead worker is started again")
    alive = 0
    for c in clients:
        try:
            c.ping()
            alive += 1
        except Exception:  # the dead worker's clients lost their connection, as with any crash
            pass
    assert alive >= other["clients"]
    fresh = [proxy.client(single_connection_client=True) for _ in range(6)]
    assert all(c.ping() for c in fresh)
    assert _info(proxy)["workers"][0]["restarts"] == 1


def test_sigterm_stops_every_worker(redis_factory: Callable[..., RedisServer], proxy_factory: Factory, sock_dir: Path) -> None:
    server = redis_factory()
    proxy = proxy_factory(proxy_config(server, workers=3, listen={"addr": str(sock_dir / "p.sock"), "network": "unix"}))
    client = proxy.client()
    assert client.set("k", "v")
    pids = _worker_pids(proxy)
    assert len(pids) == 3
    assert proxy.stop() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (sock_dir / "p.sock").exists()


def test_workers_with_what_they_cannot_do_yet_are_refused(redis_server: RedisServer, proxy_factory: Factory) -> None:
    config = proxy_config(redis_server, workers=2, sentinel={"master_name": "m", "addrs": ["127.0.0.1:1"]})
    proxy = proxy_factory(config, start=False)
    with pytest.raises(RuntimeError, match="sentinel: is not supported with workers > 1"):
        proxy.start()


def test_a_replica_mode_switchover_moves_every_worker(
    redis_factory: Callable[..., RedisServer], proxy_factory: Factory,
) -> None:
    a, b = redis_factory(), redis_factory()
    proxy = proxy_factory(_two_uplinks(a, b))
    load = Incr(proxy, 8)
    time.sleep(0.3)
    assert _cmd(proxy, cmd="switchover", to="b")["ok"]

    def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = httpx.get(f"{proxy.admin_url}/switchover.json", timeout=5).json()
        return status if not status["running"] and status["result"] else None

    status = wait_until(finished, timeout=30, message="the switchover ends")
    time.sleep(0.3)
    load.finish()
    assert status["result"] == "done", status
    assert load.errors == []
    assert [int(b.client().get(f"n:{i}") or 0) for i in range(8)] == load.acked  # b has every write, a was its source
    assert a.client().info("replication")["role"] == "slave"
