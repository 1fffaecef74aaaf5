"""doc/switching.md, step by step, against a real proxy process and its admin HTTP API.

12 client threads INCR their own keys through the proxy while the operator
replicates the old Redis to a new one, pauses the proxy (POST /cmd/
pause-and-wait), waits for the replica to catch up, promotes it, points the
config at it, reloads (POST /cmd/ reload) and unpauses.  No client may see
an error and every acknowledged INCR must be on the new server.  The longest
client hold is printed (run with -s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


from admin_client import AdminClient
from load import Incrementer, all_progressed
from servers import ProxyProcess, RedisServer, proxy_config, wait_until

CLIENTS = 12


def replication(server: RedisServer) -> dict[str, Any]:
    return server.client().info("replication")


def test_operator_switch_through_the_admin_api_under_load(
    redis_factory: Callable[..., RedisServer], proxy_factory: Callable[..., ProxyProcess]
) -> None:
    # 1. old and new servers; new replicates old.
    old = redis_factory(extra_args=["--repl-diskless-sync-delay", "0"])
    new = redis_factory()
    new.client().replicaof("127.0.0.1", old.port)
    wait_until(lambda: replication(new).get("master_link_status") == "up", timeout=20, message="replica link up")

    proxy = proxy_factory(proxy_config(old.addr, read_time_limit_ms=5000))
    admin = AdminClient(proxy)
    workers: list[Incrementer] = []
    try:
        # 2. load: every client INCRs its own key through the proxy.
        workers += [Incrementer(n, proxy.client(socket_timeout=20)) for n in range(CLIENTS)]
        for worker in workers:
            assert worker.client.ping()  # connect (and handshake) before the load starts
            worker.start()
        wait_until(lambda: all_progressed(workers, [0] * CLIENTS), timeout=20, message="every client has started")
        time.sleep(0.3)

        master, replica = old.client(), new.client()
        assert master.ping() and replica.ping()
        # 3. pause and wait until nothing is in flight.
        switch_started = time.perf_counter()
        response = admin.cmd("pause-and-wait", timeout_ms=10000)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "paused", response.text
        assert admin.info()["state_str"] == "paused"

        # 4. the replica catches up with every acknowledged write; promote it.
        def caught_up() -> bool:
            target = master.info("replication")["master_repl_offset"]
            return bool(replica.info("replication")["slave_repl_offset"] == target)

        wait_until(caught_up, timeout=20, interval=0.005, message="replica offset == master offset")
        assert replica.replicaof("NO", "ONE")

        # 5. point the config at the new server and reload: switched, still paused.
        proxy.rewrite_config({**proxy.config, "uplink": {"addr": new.addr}})
        response = admin.cmd("reload")
        assert response.status_code == 200, response.text
        reload_body = response.json()
        assert reload_body["ok"] is True and reload_body["switched"] is True, reload_body
        assert reload_body["uplink"] == new.addr, reload_body
        assert admin.info()["state_str"] == "paused"

        # 6. unpause; the held commands go to the new server.
        response = admin.cmd("unpause")
        assert response.status_code == 200, response.text
        switch_ms = (time.perf_counter() - switch_started) * 1000
        marks = [w.commands for w in workers]
        time.sleep(0.3)
        wait_until(lambda: all_progressed(workers, marks), timeout=20, message="every client progressed after unpause")
        for worker in workers:
            worker.stop.set()
        for worker in workers:
            worker.join(20)
            assert not worker.is_alive(), f"{worker.name} is stuck"

        # 7. no error, every acknowledged INCR on the new server, one switch recorded.
        errors = [f"{w.name}: {type(w.error).__name__}: {w.error}" for w in workers if w.error]
        assert not errors, errors
        on_new = new.client()
        for worker in workers:
            stored = int(on_new.get(worker.key) or 0)
            assert stored == worker.last_acked, f"{worker.name}: acknowledged {worker.last_acked}, new server has {stored}"
            assert worker.commands > marks[worker.n], f"{worker.name} made no progress on the new server"
        info = admin.info()
        assert info["uplink"] == new.addr, info["uplink"]
        assert info["state_str"] == "running"
        assert len(info["switches"]) == 1, info["switches"]
        assert (info["switches"][0]["from"], info["switches"][0]["to"]) == (old.addr, new.addr)

        max_hold_ms = max(w.max_latency for w in workers) * 1000
        print(
            f"\n[admin switch] clients={CLIENTS} commands={sum(w.commands for w in workers)} "
            f"max_client_hold_ms={max_hold_ms:.1f} pause_to_unpause_ms={switch_ms:.1f} "
            f"reload_held_ms={reload_body.get('held_ms')}"
        )
        assert max_hold_ms < 10_000, f"a client was held {max_hold_ms:.0f} ms"
    finally:
        for worker in workers:
            worker.stop.set()
        admin.close()
