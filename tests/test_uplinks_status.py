"""The named uplinks' poller against real redis-servers: roles, the replication link, lag, and
servers that refuse or hang, which must not stop the others from being polled."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_proxy.config import Config
from redis_proxy.uplinks_status import NOT_CHECKED, UplinksPoller
from servers import RedisServer, free_port, wait_until

PASSWORD = "master-Secret-7"
# Redis 7 waits 5 s for more replicas before a diskless full sync: none are coming.
FAST_SYNC = ("--repl-diskless-sync-delay", "0")


def config(active: str, **uplinks: dict[str, Any]) -> Config:
    return Config.model_validate(
        {"uplinks": uplinks, "uplink": active, "listen": {"addr": "127.0.0.1:0"}}
    )


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def replicate(replica: RedisServer, master: RedisServer, masterauth: str | None = None) -> None:
    client = replica.client()
    if masterauth:
        client.config_set("masterauth", masterauth)
    client.replicaof("127.0.0.1", master.port)
    wait_until(
        lambda: client.info("replication")["master_link_status"] == "up", timeout=10, message="replica link up"
    )


def test_roles_link_lag_and_failures(redis_factory: Callable[..., RedisServer], silent_port: int) -> None:
    a = redis_factory(password=PASSWORD, extra_args=FAST_SYNC)
    r = redis_factory()
    replicate(r, a, masterauth=PASSWORD)
    dead = f"127.0.0.1:{free_port()}"
    cfg = config(
        "a",
        a={"addr": a.addr, "pass": PASSWORD},
        r={"addr": r.addr},
        dead={"addr": dead},
        hang={"addr": f"127.0.0.1:{silent_port}"},
        wrongpass={"addr": a.addr.replace("127.0.0.1", "localhost"), "pass": "not-the-Secret-9"},
    )
    poller = UplinksPoller(lambda: cfg, interval=0.1, timeout=0.5)

    async def scenario() -> None:
        before = poller.snapshot()
        assert before["a"].error == NOT_CHECKED and before["a"].reachable is False and before["a"].active is True

        started = time.monotonic()
        states = await poller.refresh()
        # Concurrent and bounded: the silent server costs one timeout, not one per uplink.
        assert time.monotonic() - started < 1.5
        assert list(states) == ["a", "r", "dead", "hang", "wrongpass"]

        master, replica = states["a"], states["r"]
        assert master.reachable and master.role == "master" and master.active
        assert master.master_link_status is None and master.lag_bytes is None and master.master is None
        assert replica.reachable and replica.role == "replica" and not replica.active
        assert replica.master_link_status == "up" and replica.master == "a"
        assert replica.lag_bytes is not None and replica.lag_bytes >= 0
        assert replica.checked_at is not None and abs(replica.checked_at - time.time()) < 5

        assert states["dead"].reachable is False
        assert states["dead"].error == f"cannot connect to {dead}: Connection refused"
        assert states["hang"].reachable is False
        assert states["hang"].error == "no reply to INFO replication within 0.5 s"
        wrong = states["wrongpass"]
        assert wrong.reachable is False and wrong.error
        assert "not-the-Secret-9" not in wrong.error and PASSWORD not in wrong.error

        json_record = poller.to_json()["r"]
        assert set(json_record) == {
            "addr", "active", "reachable", "error", "role", "master_link_status", "master", "lag_bytes", "offset", "checked_at",
        }

        # A broken link (the replica's masterauth goes wrong) while the master
        # takes writes: the link shows down and the lag is the bytes it misses.
        r.client().config_set("masterauth", "wrong-auth")
        r.client().client_kill_filter(_type="master")
        await asyncio.sleep(0.2)
        for i in range(50):
            a.client().set(f"k{i}", "x" * 100)
        states = await poller.refresh()
        replica = states["r"]
        assert replica.master_link_status == "down"
        assert replica.lag_bytes is not None and replica.lag_bytes > 5000
        assert replica.lag_bytes == (states["a"].offset or 0) - (replica.offset or 0)

        # The master gone: the replica's lag is unknown rather than wrong.
        a.kill()
        states = await poller.refresh()
        assert states["a"].reachable is False and states["r"].lag_bytes is None and states["r"].master == "a"
        await poller.stop()

    asyncio.run(scenario())


def test_a_replica_matched_by_replicate_from(redis_factory: Callable[..., RedisServer]) -> None:
    a, r = redis_factory(extra_args=FAST_SYNC), redis_factory()
    replicate(r, a)
    # The proxy reaches a as "localhost", replicas as 127.0.0.1 (replicate_from): still matched.
    cfg = config("a", a={"addr": f"localhost:{a.port}", "replicate_from": a.addr}, r={"addr": r.addr})
    poller = UplinksPoller(lambda: cfg, interval=0.1, timeout=1.0)

    async def scenario() -> None:
        states = await poller.refresh()
        assert states["r"].master == "a" and states["r"].lag_bytes is not None
        await poller.stop()

    asyncio.run(scenario())


def test_follows_config_changes_and_stops_cleanly(redis_factory: Callable[..., RedisServer]) -> None:
    a, b, c = redis_factory(), redis_factory(), redis_factory()
    current = {"config": config("a", a={"addr": a.addr}, b={"addr": b.addr})}
    poller = UplinksPoller(lambda: current["config"], interval=0.05, timeout=0.5)

    async def scenario() -> None:
        poller.start()
        for _ in range(100):
            if all(s.reachable for s in poller.snapshot().values()):
                break
            await asyncio.sleep(0.02)
        assert [n for n, s in poller.snapshot().items() if s.reachable] == ["a", "b"]
        first_client = poller._clients["b"][1]

        # A switch changes only which one is active; a reload may move or drop uplinks.
        current["config"] = current["config"].with_uplink("b")
        assert poller.snapshot()["b"].active and not poller.snapshot()["a"].active
        current["config"] = config("a", a={"addr": a.addr}, b={"addr": c.addr})
        # What was polled at b's old address is not shown as b's state.
        assert poller.snapshot()["b"].error == NOT_CHECKED and poller.snapshot()["b"].addr == c.addr
        for _ in range(100):
            if poller.snapshot()["b"].reachable:
                break
            await asyncio.sleep(0.02)
        assert poller.snapshot()["b"].reachable and poller._clients["b"][1] is not first_client
        current["config"] = config("a", a={"addr": a.addr})
        await poller.refresh()
        assert list(poller.snapshot()) == ["a"] and list(poller._clients) == ["a"]

        await poller.stop()
        assert poller._clients == {}

    asyncio.run(scenario())
    # The poller's connections are gone from the server too.
    wait_until(
        lambda: not any(c.get("name") == "redis-proxy-control" for c in a.client().client_list()),
        timeout=5,
        message="control connections closed",
    )
