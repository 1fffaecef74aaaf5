"""The controller: pause, drain, reload and switch, against real Redis servers.

The proxy runs in this process (tests/inproc.py) so the tests can call its
controller API directly, the way the signal handlers and the admin app do;
clients are real redis-py clients or raw sockets over real TCP, upstreams are
real redis-server processes.  A few tests run the proxy as a subprocess and
reload it with SIGHUP.
"""

from __future__ import annotations

import json
import socket
import logging
import signal
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis

from inproc import InProcProxy, encode, inproc_proxy  # noqa: F401
from redis_proxy.controller import ControlError
from servers import ProxyProcess, RedisServer, free_port, proxy_config, wait_until

Factory = Callable[..., Any]


# -- helpers ----------------------------------------------------------------------------


def bg(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run fn(*args) in a daemon thread; the Future has its result or exception."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = fn(*args)
    return result, time.monotonic() - started


def start_proxy(inproc_proxy: Factory, uplink: RedisServer | str, **extra: Any) -> InProcProxy:
    admin = extra.pop("admin", None)
    config = proxy_config(uplink, admin=False, **extra)
    if admin is not None:
        config["admin"] = admin
    if "listen" not in extra:
        config["listen"] = {"addr": "127.0.0.1:0"}
    return inproc_proxy(config)


def new_config(proxy: InProcProxy, uplink: RedisServer | str, **changes: Any) -> dict[str, Any]:
    """The proxy's current config with another uplink (and other top-level changes)."""
    config = json.loads(json.dumps(proxy.config))
    config["uplink"] = {"addr": uplink.addr if isinstance(uplink, RedisServer) else uplink}
    if isinstance(uplink, RedisServer) and uplink.password:
        config["uplink"]["pass"] = uplink.password
    config.update(changes)
    return config


def warm(client: redis.Redis) -> redis.Redis:
    """Open the client's connection now (redis-py sends CLIENT SETINFO on connect)."""
    assert client.ping()
    return client


def in_flight(proxy: InProcProxy, n: int = 1) -> dict[str, Any]:
    return proxy.wait_for(lambda i: i["active_requests"] == n, what=f"{n} command(s) in flight")


def waiting(proxy: InProcProxy, n: int) -> dict[str, Any]:
    return proxy.wait_for(lambda i: i["waiting_requests"] == n, what=f"{n} waiting command(s)")


def still_pending(future: Future[Any], wait: float = 0.2) -> bool:
    time.sleep(wait)
    return not future.done()


# -- states ---------------------------------------------------------------------------------


def test_pause_is_pausing_while_a_command_is_in_flight_then_paused(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    client = warm(proxy.client())
    assert proxy.state() == "running"

    sleeper = bg(client.execute_command, "DEBUG", "SLEEP", "0.5")
    in_flight(proxy, 1)
    _, took = timed(proxy.pause)
    assert took < 0.1, "pause must return at once"
    info = proxy.info()
    assert info["state_str"] == "pausing"
    assert info["active_requests"] == 1
    assert info["operator_paused"] is True

    assert sleeper.result(5) in (b"OK", True)
    # The reply went through the proxy before the client saw it: the proxy
    # is already paused, with nothing in flight.
    info = proxy.info()
    assert info["state_str"] == "paused"
    assert info["active_requests"] == 0

    proxy.unpause()
    assert proxy.state() == "running"
    assert client.ping()


def test_pause_with_nothing_in_flight_is_paused_at_once(redis_factory: Factory, inproc_proxy: Factory) -> None:
    proxy = start_proxy(inproc_proxy, redis_factory())
    warm(proxy.client())
    proxy.pause()
    assert proxy.state() == "paused"
    proxy.unpause()
    assert proxy.state() == "running"


# -- held commands -------------------------------------------------------------------------


def test_commands_while_paused_are_held_then_sent_in_order(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    direct = server.client()
    proxy = start_proxy(inproc_proxy, server)
    first, second = warm(proxy.client()), warm(proxy.client())
    proxy.pause()
    assert proxy.state() == "paused"

    def pipeline() -> list[Any]:
        pipe = first.pipeline(transaction=False)
        pipe.set(b"k", b"1").incr(b"k").append(b"k", b"x").get(b"k").rpush(b"l", b"a", b"b").lrange(b"l", 0, -1)
        return pipe.execute()

    held = bg(pipeline)
    other = bg(second.incrby, b"other", 5)
    info = waiting(proxy, 7)
    assert info["active_requests"] == 0
    assert info["state_str"] == "paused"
    # Held means: not sent (the server has none of it), not answered, not errored.
    assert still_pending(held) and still_pending(other, 0)
    assert direct.exists(b"k", b"l", b"other") == 0

    proxy.unpause()
    assert held.result(5) == [True, 2, 2, b"2x", 2, [b"a", b"b"]]
    assert other.result(5) == 5
    info = proxy.info()
    assert info["state_str"] == "running" and info["waiting_requests"] == 0


def test_command_arriving_while_pausing_is_held_past_the_drain(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    slow, other = warm(proxy.client()), warm(proxy.client())
    sleeper = bg(slow.execute_command, "DEBUG", "SLEEP", "0.4")
    in_flight(proxy, 1)
    proxy.pause()
    held = bg(other.set, b"k", b"v")
    info = waiting(proxy, 1)
    assert info["state_str"] == "pausing"
    sleeper.result(5)
    assert proxy.state() == "paused"
    assert still_pending(held)
    assert server.client().get(b"k") is None
    proxy.unpause()
    assert held.result(5) is True
    assert server.client().get(b"k") == b"v"


def test_pipelined_batch_straddling_the_pause_is_split_on_a_command_boundary(
    redis_factory: Factory, inproc_proxy: Factory
) -> None:
    server = redis_factory()
    direct = server.client()
    proxy = start_proxy(inproc_proxy, server)
    raw = proxy.raw()
    assert raw.call("PING") == b"PONG"

    commands = [("DEBUG", "SLEEP", "0.3")] + [("SET", f"k{i}", f"v{i}") for i in range(1, 9)]
    data = b"".join(encode(*c) for c in commands)
    # Cut in the middle of the 6th command (SET k5 v5): the first part has
    # DEBUG SLEEP and SET k1..k4 whole, and half of SET k5.
    cut = sum(len(encode(*c)) for c in commands[:5]) + 7
    raw.send_bytes(data[:cut])
    in_flight(proxy, 5)
    proxy.pause()
    assert proxy.state() == "pausing"
    raw.send_bytes(data[cut:])
    info = waiting(proxy, 4)  # SET k5 (completed by the second part) .. SET k8
    assert info["state_str"] == "pausing"

    # What was forwarded finishes: DEBUG SLEEP and k1..k4 are answered.
    assert [raw.read(5) for _ in range(5)] == [b"OK"] * 5
    assert proxy.state() == "paused"
    assert direct.mget([f"k{i}" for i in range(1, 9)]) == [b"v1", b"v2", b"v3", b"v4", None, None, None, None]
    assert raw.pending_bytes(0.2) == b"", "held commands must not be answered"

    proxy.unpause()
    assert [raw.read(5) for _ in range(4)] == [b"OK"] * 4
    assert direct.mget([f"k{i}" for i in range(1, 9)]) == [f"v{i}".encode() for i in range(1, 9)]


def test_large_pipeline_paused_midway_keeps_every_reply_in_order(redis_factory: Factory, inproc_proxy: Factory) -> None:
    """A pause landing while a long pipeline streams in: nothing lost, nothing reordered."""
    server = redis_factory()
    direct = server.client()
    proxy = start_proxy(inproc_proxy, server)
    client = warm(proxy.client())
    count = 40000

    def pipeline() -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for _ in range(count):
            pipe.incr(b"n")
        return pipe.execute()

    results = bg(pipeline)
    wait_until(lambda: int(direct.get(b"n") or 0) > 0, timeout=10, interval=0.001)
    proxy.pause_and_wait(5)
    at_pause = int(direct.get(b"n") or 0)
    print(f"large pipeline: paused after {at_pause} of {count}, {proxy.info()['waiting_requests']} waiting")
    time.sleep(0.1)
    assert int(direct.get(b"n")) == at_pause, "nothing may reach the server while paused"
    proxy.unpause()
    assert results.result(20) == list(range(1, count + 1))
    assert int(direct.get(b"n")) == count


# -- transactions -----------------------------------------------------------------------------


def test_client_inside_multi_keeps_flowing_while_pausing_until_exec(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    direct = server.client()
    proxy = start_proxy(inproc_proxy, server)
    txn = proxy.raw()
    other = warm(proxy.client())
    assert txn.call("MULTI") == b"OK"
    assert txn.call("SET", "a", "1") == b"QUEUED"

    proxy.pause()
    info = proxy.info()
    assert info["state_str"] == "pausing"
    assert info["open_transactions"] == 1
    held = bg(other.set, b"b", b"2")
    waiting(proxy, 1)

    # The transaction's commands keep going while pausing ...
    assert txn.call("INCR", "c") == b"QUEUED"
    assert proxy.state() == "pausing"
    # ... until EXEC, after which the proxy is paused.
    assert txn.call("EXEC") == [b"OK", 1]
    info = proxy.info()
    assert info["state_str"] == "paused"
    assert info["open_transactions"] == 0
    assert direct.mget(b"a", b"b", b"c") == [b"1", None, b"1"]
    assert not held.done()
    # The transaction client is held like everyone else now.
    txn.send(("GET", "a"))
    waiting(proxy, 2)
    proxy.unpause()
    assert txn.read(5) == b"1"
    assert held.result(5) is True


@pytest.mark.parametrize("ending", ["EXEC", "DISCARD", "UNWATCH"])
def test_watching_client_keeps_flowing_while_pausing_until_it_ends(
    ending: str, redis_factory: Factory, inproc_proxy: Factory
) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    txn = proxy.raw()
    assert txn.call("WATCH", "w") == b"OK"
    proxy.pause()
    info = proxy.info()
    assert info["state_str"] == "pausing" and info["open_transactions"] == 1
    assert txn.call("GET", "w") is None  # flows while pausing
    assert txn.call("SET", "w", "1") == b"OK"
    assert proxy.state() == "pausing"
    if ending == "UNWATCH":
        assert txn.call("UNWATCH") == b"OK"
    else:
        assert txn.call("MULTI") == b"OK"
        assert txn.call("INCR", "w") == b"QUEUED"
        # EXEC: aborted, the watched key was changed (by this very client).
        assert txn.call(ending) == (None if ending == "EXEC" else b"OK")
    info = proxy.info()
    assert info["state_str"] == "paused"
    assert info["open_transactions"] == 0 and info["active_requests"] == 0
    proxy.unpause()
    assert server.client().get(b"w") == b"1"


def test_rejected_discard_does_not_end_a_watch(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    txn = proxy.raw()
    assert txn.call("WATCH", "w") == b"OK"
    proxy.pause()
    reply = txn.call("DISCARD")  # without MULTI: an error, and the WATCH stays in force on the server
    assert isinstance(reply, hiredis.ReplyError) and "without MULTI" in str(reply)
    info = proxy.info()
    assert (info["state_str"], info["open_transactions"]) == ("pausing", 1)


def test_state_is_not_paused_while_exec_is_in_flight(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    txn = proxy.raw()
    assert txn.call("MULTI") == b"OK"
    assert txn.call("DEBUG", "SLEEP", "0.5") == b"QUEUED"
    proxy.pause()
    assert proxy.state() == "pausing"
    txn.send(("EXEC",))
    info = in_flight(proxy, 1)  # EXEC runs for 0.5 s
    observed = (info["state_str"], info["active_requests"])
    assert txn.read(5) == [b"OK"]
    assert proxy.state() == "paused"
    assert observed == ("pausing", 1), f"state while EXEC was in flight: {observed}"


def test_reload_waiting_for_a_transaction_does_not_switch_under_its_exec(
    redis_factory: Factory, inproc_proxy: Factory
) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old, read_time_limit_ms=1500)
    txn = proxy.raw(timeout=5)
    assert txn.call("MULTI") == b"OK"
    assert txn.call("SET", "t", "old") == b"QUEUED"
    assert txn.call("DEBUG", "SLEEP", "0.5") == b"QUEUED"
    proxy.rewrite_config(new_config(proxy, new))
    reload = proxy.reload_async()
    proxy.wait_state("pausing")
    txn.send(("EXEC",))
    result = reload.result(10)
    assert result["switched"] is True
    assert txn.read(5) == [b"OK", b"OK"]
    assert txn.call("GET", "t") is None  # the next command goes to the new server
    assert old.client().get(b"t") == b"old"


# -- blocking commands and the read time limit ------------------------------------------------------


def test_blocked_client_is_unblocked_for_a_pause_and_blocks_again(redis_factory: Factory, inproc_proxy: Factory) -> None:
    """A client blocked in BLPOP does not hold a pause: the proxy unblocks it on the server,
    swallows the timeout reply and sends BLPOP again after the pause; the client sees one reply."""
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    client = warm(proxy.client())
    blpop = bg(client.blpop, [b"q"], 0)
    in_flight(proxy, 1)
    took = proxy.pause_and_wait(2)
    assert took < 1.0, f"pause took {took:.2f} s"
    assert proxy.info()["active_requests"] == 0 and still_pending(blpop)
    server.client().rpush(b"q", b"x")  # while paused: BLPOP is not on the server now
    assert still_pending(blpop)
    proxy.unpause()
    assert blpop.result(5) in ((b"q", b"x"), [b"q", b"x"])

    # Its own timeout still counts from when the client sent it: 1.0 s in all, pause included.
    started = time.monotonic()
    blpop = bg(client.blpop, [b"q"], 1)
    in_flight(proxy, 1)
    time.sleep(0.2)
    proxy.pause_and_wait(2)
    time.sleep(0.3)
    proxy.unpause()
    assert blpop.result(5) is None
    assert 0.9 <= time.monotonic() - started < 1.6

    # Woken by a push before the pause: the real reply is delivered, once.
    blpop = bg(client.blpop, [b"q"], 5)
    in_flight(proxy, 1)
    server.client().rpush(b"q", b"y")
    assert blpop.result(5) in ((b"q", b"y"), [b"q", b"y"])
    assert client.ping()


def test_blocked_client_follows_a_switch(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    client = warm(proxy.client())
    new.client().xgroup_create("s", "g", id="0", mkstream=True)
    old.client().xgroup_create("s", "g", id="0", mkstream=True)
    blpop = bg(client.blpop, [b"jobs"], 0)
    xread = bg(warm(proxy.client()).xreadgroup, "g", "c", {"s": ">"}, None, 0)
    in_flight(proxy, 2)
    proxy.rewrite_config(new_config(proxy, new))
    result = proxy.reload()
    assert result["switched"] and result["held_ms"] < 1000
    new.client().rpush(b"jobs", b"job-1")
    new.client().xadd("s", {"f": "v"}, id="1-1")
    assert blpop.result(5) in ((b"jobs", b"job-1"), [b"jobs", b"job-1"])
    got = xread.result(5)
    assert got and b"1-1" in repr(got).encode()
    assert old.client().llen(b"jobs") == 0


def test_read_time_limit_bounds_a_blocking_command(redis_factory: Factory, inproc_proxy: Factory) -> None:
    """A blocking command's limit is its own timeout plus read_time_limit_ms; it never holds a pause."""
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server, read_time_limit_ms=300)
    warm(proxy.client())
    raw = proxy.raw()
    raw.send(("BLPOP", "q", "0.8"))
    in_flight(proxy, 1)
    assert raw.read(5) is None  # its own timeout, not the 300 ms limit
    raw.send(("BLPOP", "q", "0"))
    in_flight(proxy, 1)
    took = proxy.pause_and_wait(2)
    assert took < 1.0, f"pause took {took:.2f} s"
    proxy.unpause()
    server.client().rpush(b"q", b"z")
    assert raw.read(5) == [b"q", b"z"]


# -- pause / unpause semantics --------------------------------------------------------------------------


def test_pause_is_idempotent(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    client = warm(proxy.client())
    proxy.pause()
    proxy.pause()
    assert proxy.pause_and_wait(1) < 0.1
    assert proxy.state() == "paused"
    held = bg(client.set, b"k", b"v")
    waiting(proxy, 1)
    proxy.pause()
    assert proxy.info()["waiting_requests"] == 1
    proxy.unpause()  # one unpause releases all
    assert held.result(5) is True
    assert proxy.state() == "running"
    proxy.unpause()  # unpausing a running proxy changes nothing
    assert proxy.state() == "running"
    assert client.get(b"k") == b"v"


def test_unpause_while_pausing_cancels_the_pause_and_releases_held_commands(
    redis_factory: Factory, inproc_proxy: Factory
) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    slow, other = warm(proxy.client()), warm(proxy.client())
    sleeper = bg(slow.execute_command, "DEBUG", "SLEEP", "1")
    in_flight(proxy, 1)
    proxy.pause()
    held = bg(timed, other.set, b"k", b"v")
    waiting(proxy, 1)
    proxy.unpause()
    assert proxy.state() == "running"
    # Released at once, not after the DEBUG SLEEP: the server is single
    # threaded, so the SET runs when the sleep ends; what matters is that the
    # proxy sent it, which the waiting count shows.
    assert proxy.info()["waiting_requests"] == 0
    assert proxy.info()["active_requests"] == 2
    result, _ = held.result(5)
    assert result is True
    sleeper.result(5)
    info = proxy.info()
    assert info["state_str"] == "running", "the cancelled pause must not complete later"
    assert info["active_requests"] == 0


def test_concurrent_pause_and_unpause_from_many_threads_is_safe(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    direct = server.client()
    proxy = start_proxy(inproc_proxy, server)
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(n: int) -> int:
        client = proxy.client()
        last = 0
        while not stop.is_set():
            value = client.incr(f"w{n}")
            assert value == last + 1
            last = value
        return last

    def operator(n: int) -> None:
        for i in range(60):
            try:
                if (i + n) % 3 == 0:
                    proxy.pause()
                elif (i + n) % 3 == 1:
                    proxy.unpause()
                else:
                    try:
                        proxy.pause_and_wait(0.05)
                    except ControlError:
                        pass  # cancelled by another thread's unpause, or timed out
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    workers = [bg(worker, n) for n in range(4)]
    operators = [threading.Thread(target=operator, args=(n,)) for n in range(6)]
    for thread in operators:
        thread.start()
    for thread in operators:
        thread.join(30)
    assert not errors, errors
    proxy.unpause()
    assert proxy.state() == "running"
    time.sleep(0.1)
    stop.set()
    lasts = [w.result(10) for w in workers]
    assert all(last > 0 for last in lasts)
    assert [int(direct.get(f"w{n}")) for n in range(4)] == lasts
    info = proxy.info()
    assert info["active_requests"] == 0 and info["waiting_requests"] == 0


# -- pause_and_wait -----------------------------------------------------------------------------------


def test_pause_and_wait_returns_once_paused(redis_factory: Factory, inproc_proxy: Factory) -> None:
    proxy = start_proxy(inproc_proxy, redis_factory())
    client = warm(proxy.client())
    sleeper = bg(client.execute_command, "DEBUG", "SLEEP", "0.3")
    in_flight(proxy, 1)
    took = proxy.pause_and_wait(5)
    assert 0.15 < took < 2.0
    assert proxy.state() == "paused"
    assert proxy.info()["active_requests"] == 0
    assert sleeper.result(5) in (b"OK", True)
    proxy.unpause()


def test_pause_and_wait_timeout_unpauses_and_raises(redis_factory: Factory, inproc_proxy: Factory) -> None:
    proxy = start_proxy(inproc_proxy, redis_factory())
    slow, other = warm(proxy.client()), warm(proxy.client())
    sleeper = bg(slow.execute_command, "DEBUG", "SLEEP", "1")
    in_flight(proxy, 1)
    held = bg(lambda: (time.sleep(0.05), other.set(b"k", b"v"))[1])
    started = time.monotonic()
    with pytest.raises(ControlError, match="timed out"):
        proxy.pause_and_wait(0.2)
    assert time.monotonic() - started < 0.8
    info = proxy.info()
    assert info["state_str"] == "running"
    assert info["operator_paused"] is False
    assert held.result(5) is True
    sleeper.result(5)
    assert proxy.state() == "running"


def test_pause_and_wait_cancelled_by_unpause_raises_and_leaves_running(
    redis_factory: Factory, inproc_proxy: Factory
) -> None:
    proxy = start_proxy(inproc_proxy, redis_factory())
    slow = warm(proxy.client())
    sleeper = bg(slow.execute_command, "DEBUG", "SLEEP", "0.5")
    in_flight(proxy, 1)
    waiter = bg(proxy.pause_and_wait, 5)
    proxy.wait_state("pausing")
    proxy.unpause()
    with pytest.raises(ControlError, match="cancelled"):
        waiter.result(5)
    assert proxy.state() == "running"
    sleeper.result(5)
    assert proxy.state() == "running"


# -- reload -----------------------------------------------------------------------------------------------


def _bad_json(proxy: InProcProxy, servers: dict[str, RedisServer]) -> None:
    proxy.write_text('{"uplink": {"addr": ')


def _bad_schema(proxy: InProcProxy, servers: dict[str, RedisServer]) -> None:
    proxy.rewrite_config(new_config(proxy, servers["new"], read_time_limit_ms="soon"))


def _unreachable(proxy: InProcProxy, servers: dict[str, RedisServer]) -> None:
    proxy.rewrite_config(new_config(proxy, f"127.0.0.1:{free_port()}"))


def _wrong_password(proxy: InProcProxy, servers: dict[str, RedisServer]) -> None:
    config = new_config(proxy, servers["secured"])
    config["uplink"]["pass"] = "not-the-password"
    proxy.rewrite_config(config)


def _missing_password(proxy: InProcProxy, servers: dict[str, RedisServer]) -> None:
    config = new_config(proxy, servers["secured"])
    del config["uplink"]["pass"]
    proxy.rewrite_config(config)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_bad_json, "invalid JSON"),
        (_bad_schema, "read_time_limit_ms"),
        (_unreachable, "cannot connect"),
        (_wrong_password, "AUTH"),
        (_missing_password, "NOAUTH"),
    ],
    ids=["bad-json", "bad-schema", "unreachable-uplink", "wrong-uplink-password", "missing-uplink-password"],
)
def test_invalid_reload_is_refused_and_changes_nothing(
    breakage: Callable[..., None], message: str, redis_factory: Factory, inproc_proxy: Factory
) -> None:
    old = redis_factory()
    servers = {"new": redis_factory(), "secured": redis_factory(password="s3cret")}
    proxy = start_proxy(inproc_proxy, old)
    client = warm(proxy.client())
    client.set(b"k", b"old")
    before = proxy.info()
    breakage(proxy, servers)

    with pytest.raises(ControlError) as failure:
        proxy.reload()
    assert message in str(failure.value), str(failure.value)
    info = proxy.info()
    assert info["state_str"] == "running"
    assert info["uplink"] == old.addr == before["uplink"]
    assert info["switches"] == []
    assert proxy.proxy.stats.reload_failures == 1
    # Same connection, same server.
    assert client.get(b"k") == b"old"
    assert warm(proxy.client()).get(b"k") == b"old"


def test_invalid_reload_while_operator_paused_stays_paused(redis_factory: Factory, inproc_proxy: Factory) -> None:
    proxy = start_proxy(inproc_proxy, redis_factory())
    client = warm(proxy.client())
    proxy.pause()
    proxy.write_text("not json")
    with pytest.raises(ControlError):
        proxy.reload()
    assert proxy.state() == "paused"
    held = bg(client.ping)
    waiting(proxy, 1)
    proxy.unpause()
    assert held.result(5) is True


def test_reload_pauses_drains_switches_and_resumes(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    slow, client = warm(proxy.client()), warm(proxy.client())
    client.set(b"where", b"old")
    new.client().set(b"where", b"new")

    # A slow command in flight on the old server finishes there; a command
    # sent during the reload is held and goes to the new one.
    sleeper = bg(slow.execute_command, "DEBUG", "SLEEP", "0.3")
    in_flight(proxy, 1)
    proxy.rewrite_config(new_config(proxy, new))
    reload = proxy.reload_async()
    proxy.wait_state("pausing")
    held = bg(client.get, b"where")
    waiting(proxy, 1)

    result = reload.result(10)
    assert result["switched"] is True
    assert result["uplink"] == new.addr
    assert 200 <= result["held_ms"] < 2000, result
    assert sleeper.result(5) in (b"OK", True)
    assert held.result(5) == b"new"
    info = proxy.info()
    assert info["state_str"] == "running"
    assert info["uplink"] == new.addr
    assert info["switches"][0]["from"] == old.addr and info["switches"][0]["to"] == new.addr
    # Both connections now talk to the new server, without reconnecting.
    assert slow.get(b"where") == b"new"
    assert slow.connection_pool._created_connections == 1  # type: ignore[attr-defined]


def test_reload_with_the_same_uplink_does_not_pause(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    slow = warm(proxy.client())
    # BLPOP, not DEBUG SLEEP: reload checks the uplink with a PING, which a
    # sleeping server would not answer.
    blocked = bg(slow.blpop, [b"q"], 0.5)
    in_flight(proxy, 1)
    result, took = timed(proxy.reload)
    assert result["switched"] is False and result["held_ms"] == 0
    assert took < 0.3
    info = proxy.info()
    assert info["state_str"] == "running" and info["active_requests"] == 1
    assert blocked.result(5) is None


def test_reload_keeps_an_operator_pause(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    client = warm(proxy.client())
    proxy.pause_and_wait(2)
    held = bg(client.set, b"k", b"v")
    waiting(proxy, 1)
    proxy.rewrite_config(new_config(proxy, new))
    result = proxy.reload()
    assert result["switched"] is True and result["paused"] is True
    info = proxy.info()
    assert info["state_str"] == "paused" and info["operator_paused"] is True
    assert info["waiting_requests"] == 1
    assert still_pending(held)
    proxy.unpause()
    assert held.result(5) is True
    assert new.client().get(b"k") == b"v"
    assert old.client().get(b"k") is None


def test_pause_requested_while_a_reload_drains_is_kept(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    slow = warm(proxy.client())
    sleeper = bg(slow.execute_command, "DEBUG", "SLEEP", "0.4")
    in_flight(proxy, 1)
    proxy.rewrite_config(new_config(proxy, new))
    reload = proxy.reload_async()
    proxy.wait_state("pausing")
    proxy.pause()  # the operator wants the proxy paused
    assert reload.result(10)["switched"] is True
    sleeper.result(5)
    info = proxy.info()
    assert (info["state_str"], info["operator_paused"]) == ("paused", True)


def test_a_transaction_left_open_is_bounded_by_the_time_limit(redis_factory: Factory, inproc_proxy: Factory) -> None:
    """A transaction is in flight as a whole, so read_time_limit_ms bounds it like
    any command: a client that opens MULTI and goes quiet is ended with an error
    once the pause has waited that long, and the switch goes ahead."""
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old, read_time_limit_ms=300)
    txn = proxy.raw()
    other = warm(proxy.client())
    assert txn.call("MULTI") == b"OK"
    proxy.rewrite_config(new_config(proxy, new))
    started = time.monotonic()
    result = proxy.reload()
    assert result["switched"] is True
    assert time.monotonic() - started < 3
    reply = txn.read(5)
    assert isinstance(reply, hiredis.ReplyError) and "transaction still open" in str(reply), reply
    info = proxy.info()
    assert info["state_str"] == "running" and info["uplink"] == new.addr
    assert other.set(b"k", b"v") is True
    assert new.client().get(b"k") == b"v"


def test_verify_checks_the_file_without_applying_it(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory(password="pw")
    proxy = start_proxy(inproc_proxy, old)
    proxy.rewrite_config(new_config(proxy, new))
    checked = proxy.verify()
    assert new.addr in checked and "AUTH accepted" in checked and "PING answered" in checked
    info = proxy.info()
    assert info["uplink"] == old.addr and info["state_str"] == "running" and info["switches"] == []
    config = new_config(proxy, new)
    config["uplink"]["pass"] = "wrong"
    proxy.rewrite_config(config)
    with pytest.raises(ControlError, match="AUTH"):
        proxy.verify()
    assert proxy.info()["uplink"] == old.addr


def test_concurrent_reloads_are_serialized(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    client = warm(proxy.client())
    proxy.rewrite_config(new_config(proxy, new))
    reloads = [bg(proxy.reload) for _ in range(4)]
    results = [r.result(10) for r in reloads]
    assert sorted(r["switched"] for r in results) == [False, False, False, True]
    assert proxy.state() == "running"
    assert client.set(b"k", b"v") is True
    assert new.client().get(b"k") == b"v"
    assert len(proxy.info()["switches"]) == 1


@pytest.mark.parametrize(
    ("listener", "change"),
    [("listen", "changed")] + [(name, change) for name in ("listen_raw", "admin") for change in ("changed", "added", "removed")],
)
def test_reload_refuses_to_change_listener_addresses(
    listener: str, change: str, redis_factory: Factory, inproc_proxy: Factory
) -> None:
    old, new = redis_factory(), redis_factory()
    initial: dict[str, Any] = {}
    if change != "added" and listener != "listen":
        initial[listener] = {"addr": f"127.0.0.1:{free_port()}"}
    proxy = start_proxy(inproc_proxy, old, **initial)
    config = new_config(proxy, new)
    if change == "removed":
        del config[listener]
    else:
        config[listener] = {"addr": f"127.0.0.1:{free_port()}"}
    proxy.rewrite_config(config)
    with pytest.raises(ControlError) as failure:
        proxy.reload()
    text = str(failure.value)
    expected = {"changed": f"{listener}.addr cannot change on reload", "added": f"{listener} cannot be added on reload",
                "removed": f"{listener} cannot be removed on reload"}[change]
    assert expected in text, text
    assert proxy.info()["uplink"] == old.addr
    assert proxy.state() == "running"
    with pytest.raises(ControlError, match="cannot"):
        proxy.verify()


def test_reload_refuses_to_turn_listen_tls_on(redis_factory: Factory, inproc_proxy: Factory, tmp_path: Path) -> None:
    from certs import make_ca_and_cert

    cert = make_ca_and_cert(tmp_path / "certs")
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    config = new_config(proxy, server)
    config["listen"] = {**config["listen"], "tls": True, "certfile": str(cert.cert), "keyfile": str(cert.key)}
    proxy.rewrite_config(config)
    with pytest.raises(ControlError, match="listen.tls cannot change"):
        proxy.reload()


def test_reload_applies_read_time_limit(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server, read_time_limit_ms=0)
    proxy.rewrite_config(new_config(proxy, server, read_time_limit_ms=300))
    assert proxy.reload()["switched"] is False
    raw = proxy.raw()
    raw.send(("DEBUG", "SLEEP", "1"))
    reply, took = timed(raw.read, 5)
    assert isinstance(reply, hiredis.ReplyError) and "300 ms" in str(reply), reply
    assert took < 0.9

    # And back to no limit: a 0.6 s command is not cut.
    proxy.rewrite_config(new_config(proxy, server, read_time_limit_ms=0))
    proxy.reload()
    raw = proxy.raw()
    assert raw.call("BLPOP", "q", "0.6") is None


def test_lowered_read_time_limit_applies_to_a_connection_that_was_already_used(
    redis_factory: Factory, inproc_proxy: Factory
) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server, read_time_limit_ms=1500)
    raw = proxy.raw()
    assert raw.call("PING") == b"PONG"  # arms the session's timer for +1.5 s
    proxy.rewrite_config(new_config(proxy, server, read_time_limit_ms=300))
    proxy.reload()
    raw.send(("DEBUG", "SLEEP", "1.2"))
    reply, took = timed(raw.read, 5)
    assert isinstance(reply, hiredis.ReplyError)
    assert took < 1.0, f"DEBUG SLEEP was cut after {took:.2f} s with read_time_limit_ms=300"


def test_reload_applies_log_messages(
    redis_factory: Factory, inproc_proxy: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server, log_messages=False)
    client = warm(proxy.client())
    with caplog.at_level(logging.INFO, logger="redis_proxy"):
        client.set(b"before-reload", b"1")
        proxy.rewrite_config(new_config(proxy, server, log_messages=True))
        proxy.reload()
        client.set(b"after-reload", b"1")
        proxy.rewrite_config(new_config(proxy, server, log_messages=False))
        proxy.reload()
        client.set(b"after-second-reload", b"1")
    text = caplog.text
    assert "after-reload" in text
    assert "before-reload" not in text
    assert "after-second-reload" not in text


def test_tls_certificate_rotation_on_reload(redis_factory: Factory, inproc_proxy: Factory, tmp_path: Path) -> None:
    from certs import make_ca_and_cert

    cert_a = make_ca_and_cert(tmp_path / "a")
    cert_b = make_ca_and_cert(tmp_path / "b")  # another CA
    der_a = ssl.PEM_cert_to_DER_cert(cert_a.cert.read_text())
    der_b = ssl.PEM_cert_to_DER_cert(cert_b.cert.read_text())
    server = redis_factory()
    listen = {"addr": "127.0.0.1:0", "tls": True, "certfile": str(cert_a.cert), "keyfile": str(cert_a.key)}
    proxy = inproc_proxy(proxy_config(server, admin=False, listen=listen))

    def context(ca: Path | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    existing = proxy.raw(ssl_context=context(cert_a.ca_cert))
    assert existing.sock.getpeercert(binary_form=True) == der_a  # type: ignore[attr-defined]
    assert existing.call("SET", "k", "v") == b"OK"
    client_a = warm(proxy.client(ssl=True, ssl_ca_certs=str(cert_a.ca_cert), ssl_cert_reqs="required"))

    config = json.loads(json.dumps(proxy.config))
    config["listen"].update(certfile=str(cert_b.cert), keyfile=str(cert_b.key))
    proxy.rewrite_config(config)
    assert proxy.reload()["switched"] is False

    # Open connections are untouched.
    assert existing.call("GET", "k") == b"v"
    assert client_a.get(b"k") == b"v"
    # New handshakes see certificate B.
    fresh = proxy.raw(ssl_context=context(None))
    assert fresh.sock.getpeercert(binary_form=True) == der_b  # type: ignore[attr-defined]
    assert fresh.call("GET", "k") == b"v"
    verified = proxy.raw(ssl_context=context(cert_b.ca_cert))
    assert verified.call("PING") == b"PONG"
    with pytest.raises(ssl.SSLError):
        proxy.raw(ssl_context=context(cert_a.ca_cert))


# -- session replay on a switch -----------------------------------------------------------------------------


def switch(proxy: InProcProxy, new: RedisServer) -> dict[str, Any]:
    proxy.rewrite_config(new_config(proxy, new))
    result = proxy.reload()
    assert result["switched"] is True, result
    return result


def test_switch_replays_selected_db(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    client = warm(proxy.client(db=3))  # redis-py sends SELECT 3 on connect
    raw = proxy.raw()
    assert raw.call("SELECT", "5") == b"OK"
    client.set(b"k", b"before")
    switch(proxy, new)
    client.set(b"k", b"after")
    assert raw.call("SET", "r", "after") == b"OK"
    assert new.client(db=3).get(b"k") == b"after"
    assert new.client(db=5).get(b"r") == b"after"
    assert new.client(db=0).exists(b"k", b"r") == 0
    assert old.client(db=3).get(b"k") == b"before"


def test_switch_replays_resp3(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    raw = proxy.raw()
    hello = raw.call("HELLO", "3")
    assert hello[b"proto"] == 3
    assert raw.call("HSET", "h", "f", "v") == 1
    switch(proxy, new)
    assert raw.call("HSET", "h", "g", "w") == 1
    start = len(raw.received)
    assert raw.call("HGETALL", "h") == {b"g": b"w"}
    assert bytes(raw.received[start:]).startswith(b"%1\r\n"), bytes(raw.received[start:])
    # redis-py with protocol=3 too.
    client = warm(proxy.client(protocol=3))
    switch(proxy, old)
    assert client.hgetall(b"h") == {b"f": b"v"}
    assert client.execute_command("HELLO")[b"proto"] == 3


def test_switch_replays_client_name(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    client = warm(proxy.client(client_name="worker-7"))
    raw = proxy.raw()
    assert raw.call("CLIENT", "SETNAME", "raw-1") == b"OK"
    switch(proxy, new)
    assert client.client_getname() in ("worker-7", b"worker-7")
    assert raw.call("CLIENT", "GETNAME") == b"raw-1"
    names = {c["name"] for c in new.client().client_list()}
    assert {"worker-7", "raw-1"} <= names


def test_switch_authenticates_with_the_new_uplink_password(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory(password="n3w-pass")
    proxy = start_proxy(inproc_proxy, old)
    client = warm(proxy.client())
    raw = proxy.raw()
    assert raw.call("HELLO", "3")[b"proto"] == 3
    config = new_config(proxy, new)
    assert config["uplink"]["pass"] == "n3w-pass"
    proxy.rewrite_config(config)
    assert proxy.reload()["switched"] is True
    assert client.set(b"k", b"v") is True
    assert raw.call("GET", "k") == b"v"
    assert new.client().get(b"k") == b"v"
    assert old.client().get(b"k") is None


# -- pub/sub -----------------------------------------------------------------------------------------------------


def _subscribe(client: redis.Redis, kind: str) -> Any:
    pubsub = client.pubsub()
    if kind == "channel":
        pubsub.subscribe(b"news")
    else:
        pubsub.psubscribe(b"ne*")
    confirmation = pubsub.get_message(timeout=5)
    assert confirmation is not None and confirmation["type"] in ("subscribe", "psubscribe"), confirmation
    return pubsub


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("kind", ["channel", "pattern"])
def test_subscriber_does_not_block_a_pause(protocol: int, kind: str, redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    pubsub = _subscribe(proxy.client(protocol=protocol), kind)
    assert proxy.pause_and_wait(1) < 0.2
    assert proxy.info()["active_requests"] == 0
    proxy.unpause()
    assert server.client().publish(b"news", b"hello") == 1
    message = pubsub.get_message(timeout=5)
    assert message is not None and message["data"] == b"hello"
    pubsub.close()


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("kind", ["channel", "pattern"])
def test_subscriber_follows_a_switch(protocol: int, kind: str, redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory(password="pw")
    proxy = start_proxy(inproc_proxy, old)
    pubsub = _subscribe(proxy.client(protocol=protocol), kind)
    assert old.client().publish(b"news", b"on-old") == 1
    assert pubsub.get_message(timeout=5)["data"] == b"on-old"  # type: ignore[index]

    switch(proxy, new)
    # The client does nothing: the proxy resubscribes on the new server.
    publisher = new.client()
    wait_until(lambda: publisher.publish(b"news", b"on-new") == 1, timeout=5, message="subscription on the new server")
    message = pubsub.get_message(timeout=5)
    assert message is not None, "no message after the switch"
    assert message["type"] in ("message", "pmessage"), f"stray message after the switch: {message}"
    assert message["data"] == b"on-new"
    assert pubsub.get_message(timeout=0.3) is None
    assert old.client().publish(b"news", b"lost") == 0
    # The connection is still a working subscriber: unsubscribe is confirmed.
    if kind == "channel":
        pubsub.unsubscribe(b"news")
    else:
        pubsub.punsubscribe(b"ne*")
    message = pubsub.get_message(timeout=5)
    assert message is not None and message["type"] in ("unsubscribe", "punsubscribe"), message
    pubsub.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_raw_subscriber_keeps_its_stream_across_a_switch(protocol: int, redis_factory: Factory, inproc_proxy: Factory) -> None:
    """Byte for byte: after the switch the client sees exactly its own replies and the new server's messages."""
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    raw = proxy.raw()
    if protocol == 3:
        assert raw.call("HELLO", "3")[b"proto"] == 3
    assert raw.call("SUBSCRIBE", "ch") == [b"subscribe", b"ch", 1]
    # RESP3 subscribers may run any command; RESP2 ones only PING and (un)subscribe.
    ping = [b"pong", b""] if protocol == 2 else b"PONG"
    assert raw.call("PING") == ping
    if protocol == 3:
        assert raw.call("SET", "k", "old") == b"OK"
    proxy.pause_and_wait(1)
    switch(proxy, new)
    proxy.unpause()
    publisher = new.client()
    wait_until(lambda: publisher.publish(b"ch", b"m1") == 1, timeout=5, message="resubscribed on the new server")
    assert raw.read(5) == [b"message", b"ch", b"m1"]
    assert raw.call("PING") == ping
    if protocol == 3:
        assert raw.call("GET", "k") is None
        assert raw.call("SET", "k", "new") == b"OK"
        assert new.client().get(b"k") == b"new"
    assert raw.pending_bytes(0.2) == b"", "stray data after the switch"
    assert raw.call("UNSUBSCRIBE") == [b"unsubscribe", b"ch", 0]
    assert raw.call("GET", "k") == (b"new" if protocol == 3 else None)


def test_sighup_reload_switches_a_subprocess_proxy(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new = redis_factory(), redis_factory(password="pw")
    old.client().set(b"where", b"old")
    new.client().set(b"where", b"new")
    proxy: ProxyProcess = proxy_factory(proxy_config(old, admin=False))
    client = proxy.client()
    raw = proxy.client(protocol=3, db=2)
    raw.set(b"db2", b"x")
    assert client.get(b"where") == b"old"
    config = dict(proxy.config)
    config["uplink"] = {"addr": new.addr, "pass": "pw"}
    proxy.rewrite_config(config)
    proxy.send_signal(signal.SIGHUP)
    wait_until(lambda: "switched uplink" in proxy.log(), timeout=10, message="switch logged")
    assert client.get(b"where") == b"new"
    assert raw.set(b"db2", b"y") is True
    assert new.client(db=2).get(b"db2") == b"y"
    assert client.connection_pool._created_connections == 1  # type: ignore[attr-defined]
    assert proxy.running


def test_sighup_with_an_invalid_config_keeps_the_old_one(redis_factory: Factory, proxy_factory: Factory) -> None:
    old = redis_factory()
    old.client().set(b"where", b"old")
    proxy: ProxyProcess = proxy_factory(proxy_config(old, admin=False))
    client = proxy.client()
    assert client.get(b"where") == b"old"
    proxy.config_path.write_text('{"uplink": ', encoding="utf-8")
    proxy.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in proxy.log(), timeout=10, message="refusal logged")
    assert "invalid JSON" in proxy.log()
    assert client.get(b"where") == b"old"
    assert proxy.client().get(b"where") == b"old"
    # An unreachable uplink is refused the same way.
    config = dict(proxy.config)
    config["uplink"] = {"addr": f"127.0.0.1:{free_port()}"}
    proxy.rewrite_config(config)
    proxy.send_signal(signal.SIGHUP)
    wait_until(lambda: proxy.log().count("reload refused") == 2, timeout=10, message="second refusal logged")
    assert client.get(b"where") == b"old"
    assert proxy.running


# -- regressions: session state across a switch, HELLO 3 with pub/sub ------------------------------------------------


def test_select_inside_a_discarded_multi_is_not_replayed_on_a_switch(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    raw = proxy.raw()
    assert raw.call("MULTI") == b"OK"
    assert raw.call("SELECT", "5") == b"QUEUED"
    assert raw.call("DISCARD") == b"OK"
    assert raw.call("SET", "k", "before") == b"OK"
    assert old.client(db=0).get(b"k") == b"before"
    switch(proxy, new)
    # The SELECT never ran: the new connection stays on db 0.
    assert raw.call("SET", "k", "after") == b"OK"
    assert new.client(db=0).get(b"k") == b"after"
    assert new.client(db=5).exists(b"k") == 0


def test_select_inside_an_executed_multi_is_replayed_on_a_switch(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    raw = proxy.raw()
    assert raw.call("MULTI") == b"OK"
    assert raw.call("SELECT", "5") == b"QUEUED"
    assert raw.call("EXEC") == [b"OK"]
    assert raw.call("SET", "k", "before") == b"OK"
    assert old.client(db=5).get(b"k") == b"before"
    switch(proxy, new)
    assert raw.call("SET", "k", "after") == b"OK"
    assert new.client(db=5).get(b"k") == b"after"
    assert new.client(db=0).exists(b"k") == 0


def test_hello_3_pipelined_with_subscribe_leaves_nothing_in_flight(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server)
    raw = proxy.raw()
    raw.send(("HELLO", "3"), ("SUBSCRIBE", "ch"))  # one write
    hello = raw.read(5)
    assert isinstance(hello, dict) and hello[b"proto"] == 3, hello
    assert raw.read(5) == [b"subscribe", b"ch", 1]
    assert b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n" in bytes(raw.received)  # a push, not a reply
    proxy.wait_for(lambda i: i["active_requests"] == 0, timeout=2, what="no command in flight")
    assert proxy.pause_and_wait(1) < 0.2
    assert proxy.state() == "paused" and proxy.info()["active_requests"] == 0
    proxy.unpause()
    assert server.client().publish(b"ch", b"m1") == 1
    assert raw.read(5) == [b"message", b"ch", b"m1"]
    assert raw.call("PING") == b"PONG"
    assert proxy.info()["active_requests"] == 0


@pytest.mark.parametrize("command", ["UNSUBSCRIBE", "PUNSUBSCRIBE"])
def test_resp3_unsubscribe_with_nothing_subscribed(command: str, redis_factory: Factory, inproc_proxy: Factory) -> None:
    proxy = start_proxy(inproc_proxy, redis_factory())
    raw = proxy.raw()
    assert raw.call("HELLO", "3")[b"proto"] == 3
    start = len(raw.received)
    assert raw.call(command) == [command.lower().encode(), None, 0]
    assert bytes(raw.received[start:]).startswith(b">3\r\n"), bytes(raw.received[start:])
    start = len(raw.received)
    assert raw.call("PING") == b"PONG"
    assert bytes(raw.received[start:]) == b"+PONG\r\n"
    assert raw.call("SET", "k", "v") == b"OK"
    assert raw.pending_bytes(0.1) == b""
    assert proxy.info()["active_requests"] == 0


# -- honest hold times and max_pause_ms --------------------------------------------------------------


def test_held_ms_counts_an_operator_pause_before_the_reload(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy = start_proxy(inproc_proxy, old)
    warm(proxy.client())
    proxy.pause_and_wait(2)
    time.sleep(0.5)
    proxy.rewrite_config(new_config(proxy, new))
    result = proxy.reload()
    assert result["switched"] and result["held_ms"] >= 500, result
    assert result["paused"] is True  # the operator's pause stays
    proxy.unpause()
    assert proxy.info()["paused_seconds"] >= 0.5


def test_max_pause_ms_ends_a_forgotten_pause(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server, max_pause_ms=300)
    client = warm(proxy.client())
    proxy.pause()
    held = bg(client.incr, "n")
    assert still_pending(held, 0.1)
    proxy.wait_state("running", 3)
    assert held.result(3) == 1
    info = proxy.info()
    assert info["pause_limit_hits"] == 1 and not info["operator_paused"]
    # An unpause before the limit cancels it.
    proxy.pause()
    proxy.unpause()
    time.sleep(0.4)
    assert proxy.info()["pause_limit_hits"] == 1


def test_max_pause_ms_firing_during_a_refused_reload_does_not_leave_the_proxy_paused(
    redis_factory: Factory, inproc_proxy: Factory
) -> None:
    server = redis_factory()
    proxy = start_proxy(inproc_proxy, server, max_pause_ms=200)
    client = warm(proxy.client())
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers: the reload's check times out
    try:
        proxy.pause()
        proxy.rewrite_config(new_config(proxy, f"127.0.0.1:{silent.getsockname()[1]}", max_pause_ms=200))
        with pytest.raises(ControlError):
            proxy.reload()
        assert proxy.state() == "running"
        assert client.incr("after") == 1
    finally:
        silent.close()
