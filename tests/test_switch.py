"""THE switch: replace the Redis server behind busy clients with zero downtime.

16 client threads INCR their own keys in a loop through the proxy while the
operator moves the data to a new server and switches the proxy over: no
client may see an error, and every acknowledged write must be on the new
server.  The hold times measured here (the longest any client command took,
and the reload's own held_ms) are printed; run with -s to see them.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from inproc import InProcProxy, inproc_proxy  # noqa: F401
from servers import ProxyProcess, RedisServer, proxy_config, wait_until

Factory = Callable[..., Any]

CLIENTS = 16
LOAD_SECONDS = 0.6  # of load before and after the switch


class Worker(threading.Thread):
    """One client: runs `step(client, n)` in a loop, timing every command."""

    def __init__(self, n: int, make_client: Callable[[int], redis.Redis], step: Callable[[redis.Redis, int], Any]) -> None:
        super().__init__(name=f"worker-{n}", daemon=True)
        self.n = n
        self.make_client = make_client
        self.step = step
        self.stop = threading.Event()
        self.results: list[Any] = []  # every acknowledged reply, in order
        self.error: BaseException | None = None
        self.max_latency = 0.0
        self.commands = 0
        self.timings: list[tuple[float, float]] = []  # (started, latency) of every command

    def run(self) -> None:
        try:
            client = self.make_client(self.n)
            while not self.stop.is_set():
                started = time.perf_counter()
                reply = self.step(client, self.n)
                latency = time.perf_counter() - started
                self.results.append(reply)
                self.commands += 1
                self.max_latency = max(self.max_latency, latency)
                self.timings.append((started, latency))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def run_workers(workers: list[Worker]) -> None:
    for worker in workers:
        worker.start()
    wait_until(lambda: all(w.commands > 0 or w.error for w in workers), timeout=10, message="every client has started")


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        worker.stop.set()
    for worker in workers:
        worker.join(15)
        assert not worker.is_alive(), f"{worker.name} is stuck"


def progress_after(workers: list[Worker], marks: list[int], seconds: float) -> None:
    """Let the load run; every client must have completed commands since `marks`."""
    time.sleep(seconds)
    wait_until(
        lambda: all(w.commands > mark or w.error for w, mark in zip(workers, marks)),
        timeout=10,
        message="every client made progress",
    )


def replication(server: RedisServer) -> dict[str, Any]:
    return server.client().info("replication")


def warm_client(client: redis.Redis) -> redis.Redis:
    assert client.ping()
    return client


def report(title: str, **values: Any) -> None:
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in values.items()))


def test_switch_to_a_promoted_replica_under_load(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old = redis_factory(extra_args=["--repl-diskless-sync-delay", "0"])
    new = redis_factory(password="new-secret")
    new.client().config_set("masterauth", "")  # the old master has no password
    new.client().replicaof("127.0.0.1", old.port)
    wait_until(lambda: replication(new).get("master_link_status") == "up", timeout=10, message="replica link up")

    config = proxy_config(old, admin=False, listen={"addr": "127.0.0.1:0"})
    proxy: InProcProxy = inproc_proxy(config)

    # A mix of clients: RESP2 and RESP3, db 0 and db 1.
    def make_client(n: int) -> redis.Redis:
        return proxy.client(protocol=3 if n % 2 else 2, db=1 if n % 4 == 3 else 0, client_name=f"w{n}")

    def incr(client: redis.Redis, n: int) -> int:
        return client.incr(f"counter:{n}")

    workers = [Worker(n, make_client, incr) for n in range(CLIENTS)]
    run_workers(workers)
    progress_after(workers, [0] * CLIENTS, LOAD_SECONDS)

    # The switch, as an operator does it (connections opened beforehand).
    master, replica = warm_client(old.client()), warm_client(new.client())
    switch_started = time.perf_counter()
    pause_took = proxy.pause_and_wait(5)
    assert proxy.state() == "paused"
    target = master.info("replication")["master_repl_offset"]
    catchup_started = time.perf_counter()
    wait_until(lambda: replica.info("replication")["slave_repl_offset"] >= target, timeout=10, interval=0.002, message="replica caught up")
    catchup_took = time.perf_counter() - catchup_started
    assert master.info("replication")["master_repl_offset"] == target, "writes reached the old server while paused"
    replica.replicaof("NO", "ONE")
    proxy.rewrite_config({**proxy.config, "uplink": {"addr": new.addr, "pass": "new-secret"}})
    reload_started = time.perf_counter()
    result = proxy.reload()
    reload_took = time.perf_counter() - reload_started
    assert result["switched"] is True and result["paused"] is True
    proxy.unpause()
    switch_ended = time.perf_counter()
    switch_took = switch_ended - switch_started

    marks = [w.commands for w in workers]
    progress_after(workers, marks, LOAD_SECONDS)
    stop_workers(workers)

    errors = [f"{w.name}: {type(w.error).__name__}: {w.error}" for w in workers if w.error]
    assert not errors, errors
    new_client = {db: new.client(db=db) for db in (0, 1)}
    old_client = {db: old.client(db=db) for db in (0, 1)}
    for worker in workers:
        db = 1 if worker.n % 4 == 3 else 0
        # Every reply is the previous plus one: no write lost, doubled or reordered.
        assert worker.results == list(range(1, len(worker.results) + 1)), f"{worker.name}: replies out of sequence"
        on_new = int(new_client[db].get(f"counter:{worker.n}"))
        assert worker.results[-1] == on_new, f"{worker.name}: last acknowledged {worker.results[-1]}, new server has {on_new}"
        on_old = int(old_client[db].get(f"counter:{worker.n}"))
        assert worker.commands > marks[worker.n] and on_old < on_new, f"{worker.name} did not write to the new server"
    info = proxy.info()
    assert info["uplink"] == new.addr and info["state_str"] == "running"
    names = {c["name"] for c in new.client().client_list()}
    assert {f"w{n}" for n in range(CLIENTS)} <= names

    max_latency_ms = max(w.max_latency for w in workers) * 1000
    # Commands that overlapped the pause, and the rest (the baseline under
    # this load, GIL contention of 16 client threads included).
    spanning = [lat for w in workers for start, lat in w.timings if start < switch_ended and start + lat > switch_started]
    others = [lat for w in workers for start, lat in w.timings if not (start < switch_ended and start + lat > switch_started)]
    report(
        "switch in-process",
        held_commands=len(spanning),
        max_latency_of_held_ms=round(max(spanning, default=0) * 1000, 1),
        max_latency_otherwise_ms=round(max(others) * 1000, 1),
        clients=CLIENTS,
        commands=sum(w.commands for w in workers),
        pause_and_wait_ms=round(pause_took * 1000, 1),
        replica_catchup_ms=round(catchup_took * 1000, 1),
        reload_call_ms=round(reload_took * 1000, 1),
        reload_held_ms=result["held_ms"],
        pause_to_unpause_ms=round(switch_took * 1000, 1),
        max_client_latency_ms=round(max_latency_ms, 1),
    )
    # A client is held from the pause to the unpause, plus its own round trip.
    assert max_latency_ms < switch_took * 1000 + 1000


def test_sighup_switch_of_a_subprocess_proxy_under_load(redis_factory: Factory, proxy_factory: Factory) -> None:
    """The same switch through a real proxy process and SIGHUP.

    Without an operator pause (that is the admin app's job) there is no
    window to promote a replica, so the new server starts empty and each
    client appends its sequence numbers to its own list: the old server's
    list followed by the new server's must be exactly what the client had
    acknowledged, with no gap, repeat or interleaving.
    """
    old, new = redis_factory(), redis_factory(password="pw")
    proxy: ProxyProcess = proxy_factory(proxy_config(old, admin=False, read_time_limit_ms=5000))

    def make_client(n: int) -> redis.Redis:
        return proxy.client(protocol=3 if n % 2 else 2)

    sequence = [0] * CLIENTS

    def push(client: redis.Redis, n: int) -> int:
        sequence[n] += 1
        client.rpush(f"seq:{n}", sequence[n])
        return sequence[n]

    workers = [Worker(n, make_client, push) for n in range(CLIENTS)]
    run_workers(workers)
    progress_after(workers, [0] * CLIENTS, LOAD_SECONDS)

    proxy.rewrite_config({**proxy.config, "uplink": {"addr": new.addr, "pass": "pw"}})
    proxy.send_signal(signal.SIGHUP)
    wait_until(lambda: "switched uplink" in proxy.log(), timeout=10, message="switch logged")
    marks = [w.commands for w in workers]
    progress_after(workers, marks, LOAD_SECONDS)
    stop_workers(workers)

    errors = [f"{w.name}: {type(w.error).__name__}: {w.error}" for w in workers if w.error]
    assert not errors, errors
    old_client, new_client = old.client(), new.client()
    for worker in workers:
        on_old = [int(v) for v in old_client.lrange(f"seq:{worker.n}", 0, -1)]
        on_new = [int(v) for v in new_client.lrange(f"seq:{worker.n}", 0, -1)]
        acked = worker.results[-1]
        assert on_old + on_new == list(range(1, acked + 1)), f"{worker.name}: old {on_old[-3:]} new {on_new[:3]}"
        assert on_old and on_new, f"{worker.name} did not write to both servers"
    held = re.search(r"clients held ([0-9.]+) ms", proxy.log())
    assert held is not None
    report(
        "switch via SIGHUP",
        clients=CLIENTS,
        commands=sum(w.commands for w in workers),
        reload_held_ms=held.group(1),
        max_client_latency_ms=round(max(w.max_latency for w in workers) * 1000, 1),
    )


def test_repeated_switches_under_load_with_optimistic_transactions(redis_factory: Factory, inproc_proxy: Factory) -> None:
    """Clients doing WATCH / GET / MULTI / SET / EXEC (redis-py's transaction()) while the proxy switches back and forth.

    The transaction includes a short DEBUG SLEEP, standing for a command that
    takes a moment, so EXEC is still running when a reload resumes.
    """
    servers = [redis_factory(), redis_factory()]
    config = proxy_config(servers[0], admin=False, read_time_limit_ms=300, listen={"addr": "127.0.0.1:0"})
    proxy: InProcProxy = inproc_proxy(config)

    def make_client(n: int) -> redis.Redis:
        return proxy.client()

    def transaction(client: redis.Redis, n: int) -> Any:
        def body(pipe: redis.client.Pipeline) -> None:
            value = int(pipe.get(f"t:{n}") or 0)
            pipe.multi()
            pipe.set(f"t:{n}", value + 1)
            pipe.execute_command("DEBUG", "SLEEP", "0.002")
            pipe.get(f"t:{n}")

        return client.transaction(body, f"t:{n}")

    workers = [Worker(n, make_client, transaction) for n in range(6)]
    run_workers(workers)
    held: list[float] = []
    for i in range(25):
        target = servers[(i + 1) % 2]
        proxy.rewrite_config({**proxy.config, "uplink": {"addr": target.addr}})
        result = proxy.reload()
        assert result["switched"] is True
        held.append(result["held_ms"])
        if any(w.error for w in workers):
            break
        time.sleep(0.02)
    stop_workers(workers)
    errors = [f"{w.name}: {type(w.error).__name__}: {w.error}" for w in workers if w.error]
    assert not errors, errors
    for worker in workers:
        for reply in worker.results:
            assert reply[0] is True and int(reply[2]) >= 1, reply
    report("switches with transactions", switches=len(held), max_reload_held_ms=max(held))
    assert max(held) < 250, held
