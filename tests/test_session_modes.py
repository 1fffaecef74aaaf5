"""Connections that stop being plain request/reply, through the proxy and across a switch.

MONITOR streams, CLIENT REPLY OFF/SKIP, SYNC/PSYNC replication streams, and
a client whose uplink connection the server closes: each against real
redis-server processes, over real sockets.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from inproc import InProcProxy, encode, inproc_proxy  # noqa: F401
from servers import RedisServer, proxy_config, wait_until

Factory = Callable[..., Any]


def switch(proxy: InProcProxy, new: RedisServer) -> None:
    proxy.rewrite_config({**proxy.config, "uplink": {"addr": new.addr}})
    result = proxy.reload()
    assert result["switched"] is True, result


def monitor_until(raw: Any, needle: bytes, timeout: float = 5.0) -> list[bytes]:
    """MONITOR lines (their text) up to the first that contains `needle`."""
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while not out or needle.lower() not in out[-1].lower():
        assert time.monotonic() < deadline, f"no {needle!r} in {out!r}"
        value = raw.read(timeout=timeout)
        assert isinstance(value, bytes), value
        out.append(value)
    return out


def reply_among_lines(raw: Any) -> Any:
    """The next value that is not a MONITOR line: the reply to the monitoring client's own command."""
    while True:
        value = raw.read(timeout=5)
        if not (isinstance(value, bytes) and re.match(rb"\d+\.\d+ \[", value)):
            return value


# -- uplink loss ---------------------------------------------------------------------------


def test_a_client_whose_uplink_connection_is_killed_is_closed_as_redis_would(
    redis_server: RedisServer, inproc_proxy: Factory
) -> None:
    """No invented error reply: client libraries reconnect and resubscribe on a connection error."""
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False))
    subscriber = proxy.raw()
    subscriber.send(("SUBSCRIBE", "news"))
    assert subscriber.read() == [b"subscribe", b"news", 1]
    idle = proxy.raw()
    assert idle.call("PING") == b"PONG"
    before = len(subscriber.received)
    redis_server.client().client_kill_filter(_type="pubsub")
    redis_server.client().execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    for raw in (subscriber, idle):
        raw.sock.settimeout(5)
        assert raw.sock.recv(100) == b""  # closed, nothing written
    assert len(subscriber.received) == before


def test_redis_py_pubsub_reconnects_after_its_connection_is_killed(
    redis_server: RedisServer, inproc_proxy: Factory
) -> None:
    """redis-py's TestPubSubConnectionKilled, through the proxy."""
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False))
    client = proxy.client()
    pubsub = client.pubsub()
    pubsub.subscribe("foo")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    redis_server.client().client_kill_filter(_type="pubsub")
    with pytest.raises(redis.ConnectionError):
        for _ in range(20):
            pubsub.get_message(timeout=0.1)


def test_a_client_that_closes_while_blocked_leaves_nothing_in_flight(
    redis_server: RedisServer, inproc_proxy: Factory
) -> None:
    """redis-py's test_interrupted_command: BRPOP 0, then the client goes away; Redis frees it, so does the proxy."""
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False, read_time_limit_ms=0))
    client = proxy.raw()
    client.send(("BRPOP", "nonexist", "0"))
    wait_until(lambda: proxy.controller.gate.inflight == 1, timeout=5)
    client.close()
    wait_until(lambda: proxy.controller.gate.inflight == 0 and not proxy.proxy.sessions, timeout=5)
    proxy.pause_and_wait(5)
    proxy.unpause()


# -- MONITOR ---------------------------------------------------------------------------------


def test_monitor_streams_commands_before_and_after_a_switch(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy: InProcProxy = inproc_proxy(proxy_config(old, admin=False))
    watcher = proxy.raw()
    assert watcher.call("MONITOR") == b"OK"
    worker = proxy.client()
    worker.set("k", "before")
    monitor_until(watcher, b'"set" "k" "before"')
    assert proxy.controller.gate.inflight == 0  # a monitoring client is not in flight
    proxy.pause_and_wait(5)  # it never holds a pause
    proxy.unpause()
    switch(proxy, new)
    worker.set("k", "after")
    wait_until(lambda: new.client().get("k") == b"after", timeout=5)
    lines = monitor_until(watcher, b'"set" "k" "after"')
    assert all(re.match(rb"\d+\.\d+ \[", line) for line in lines)
    watcher.send(("PING",))
    assert reply_among_lines(watcher) == b"PONG"  # its own commands still get their replies, in between
    watcher.send(("GET", "k"))
    assert str(reply_among_lines(watcher)) == "ERR Replica can't interact with the keyspace"  # as Redis says
    watcher.send(("RESET",))
    assert reply_among_lines(watcher) == b"RESET"
    worker.set("k", "quiet")
    assert watcher.pending_bytes(0.3) == b""  # monitoring ended


def test_monitor_lines_in_the_same_read_as_its_ok(redis_server: RedisServer, inproc_proxy: Factory) -> None:
    """Lines may follow +OK at once; they are never counted as replies."""
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False))
    stop = threading.Event()

    def busy() -> None:
        client = redis_server.client()
        while not stop.is_set():
            client.incr("busy")

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    try:
        for _ in range(20):
            watcher = proxy.raw()
            watcher.send(("MONITOR",), ("PING",))
            assert watcher.read() == b"OK"
            assert reply_among_lines(watcher) == b"PONG"
            watcher.close()
    finally:
        stop.set()
        thread.join(5)


# -- CLIENT REPLY ----------------------------------------------------------------------------


def test_client_reply_off_bulk_load_then_a_pause_drains_exactly(redis_server: RedisServer, inproc_proxy: Factory) -> None:
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False))
    loader = proxy.raw()
    assert loader.call("PING") == b"PONG"
    count = 20000
    loader.send_bytes(
        encode("CLIENT", "REPLY", "OFF")
        + b"".join(encode("SET", f"bulk:{i}", "x" * 100) for i in range(count))
    )
    proxy.pause_and_wait(10)  # the fence: paused only once Redis ran every silent SET sent
    at_pause = redis_server.client().dbsize()
    time.sleep(0.3)
    assert redis_server.client().dbsize() == at_pause  # nothing was still running
    proxy.unpause()
    wait_until(lambda: redis_server.client().dbsize() == count, timeout=10)
    loader.send(("SET", "silent", "1"), ("CLIENT", "REPLY", "ON"), ("GET", "silent"))
    assert loader.read() == b"OK"
    assert loader.read() == b"1"
    assert loader.pending_bytes(0.2) == b""


def test_client_reply_skip_and_off_match_redis(redis_server: RedisServer, inproc_proxy: Factory) -> None:
    """Differential: the same stream to Redis and through the proxy gives the same bytes."""
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False))
    stream = b"".join(encode(*c) for c in [
        ("CLIENT", "REPLY", "SKIP"), ("SET", "a", "1"), ("GET", "a"),
        ("CLIENT", "REPLY", "SKIP"), ("CLIENT", "GETNAME"), ("GET", "a"), ("GET", "a"),
        ("CLIENT", "REPLY", "SKIP"), ("CLIENT", "SETNAME", "x"), ("CLIENT", "GETNAME"), ("PING",),
        ("CLIENT", "REPLY", "OFF"), ("INCR", "a"), ("CLIENT", "REPLY", "SKIP"), ("NOSUCH",),
        ("CLIENT", "REPLY", "ON"), ("GET", "a"), ("CLIENT", "REPLY", "BOGUS"), ("PING",),
        ("CLIENT", "REPLY", "SKIP"), ("CLIENT", "REPLY", "ON"), ("PING", "end"),
    ])
    replies = []
    for port in (redis_server.port, proxy.port):
        redis_server.client().flushall()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(stream)
            data = b""
            while not data.endswith(b"$3\r\nend\r\n"):
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
            sock.sendall(b"PING\r\n")  # still open, and nothing more was owed
            assert sock.recv(100) == b"+PONG\r\n"
            replies.append(data)
    assert replies[1] == replies[0]


def test_client_reply_off_survives_a_switch(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy: InProcProxy = inproc_proxy(proxy_config(old, admin=False))
    loader = proxy.raw()
    loader.send(("CLIENT", "REPLY", "OFF"), ("SET", "a", "1"))
    wait_until(lambda: old.client().get("a") == b"1", timeout=5)
    proxy.pause_and_wait(5)
    switch(proxy, new)
    proxy.unpause()
    loader.send(("SET", "b", "2"), ("CLIENT", "REPLY", "ON"), ("MGET", "a", "b"))
    assert loader.read() == b"OK"
    assert loader.read() == [None, b"2"]  # a went to the old server, b (silently) to the new one


def test_a_transaction_while_replies_are_off_closes_the_client(redis_server: RedisServer, inproc_proxy: Factory) -> None:
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False))
    client = proxy.raw()
    client.send(("CLIENT", "REPLY", "OFF"), ("MULTI",))
    client.sock.settimeout(5)
    assert client.sock.recv(100) == b""


@pytest.mark.parametrize("protocol", [2, 3])
def test_pubsub_while_replies_are_off_matches_redis(redis_server: RedisServer, inproc_proxy: Factory, protocol: int) -> None:
    """Redis sends pub/sub confirmations and messages even while replies are off (Redis's unit/pubsub tests)."""
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False))
    seen = []
    for port in (redis_server.port, proxy.port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            start = encode("HELLO", "3") if protocol == 3 else b""
            sock.sendall(start + encode("CLIENT", "REPLY", "OFF") + encode("SUBSCRIBE", "ch") + encode("PSUBSCRIBE", "c*"))
            data = b""
            while data.count(b"subscribe") < 2:
                data += sock.recv(65536)
            redis_server.client().publish("ch", "hello")
            sock.sendall(encode("CLIENT", "REPLY", "SKIP") + encode("UNSUBSCRIBE", "ch") + encode("PUNSUBSCRIBE", "c*"))
            while data.count(b"unsubscribe") < 2:
                data += sock.recv(65536)
            seen.append(data[data.index(b"subscribe") - 20 :])  # from the first confirmation (HELLO's id differs)
    assert seen[1] == seen[0]


# -- replication streams -----------------------------------------------------------------------


def test_a_replica_attached_through_the_proxy_resyncs_after_a_switch(
    redis_factory: Factory, inproc_proxy: Factory
) -> None:
    old, new = redis_factory(), redis_factory()
    for server in (old, new):
        server.client().config_set("repl-diskless-sync-delay", 0)  # the full sync starts at once
    old.client().set("origin", "old")
    new.client().set("origin", "new")
    proxy: InProcProxy = inproc_proxy(proxy_config(old, admin=False))
    replica = redis_factory()
    replica.client().replicaof("127.0.0.1", proxy.port)
    wait_until(lambda: replica.client().get("origin") == b"old", timeout=10, message="replica synced from old")
    old.client().set("live", "1")
    wait_until(lambda: replica.client().get("live") == b"1", timeout=10, message="the replication stream flows")
    assert proxy.controller.gate.inflight == 0
    proxy.pause_and_wait(5)  # a replica holds no pause
    switch(proxy, new)
    proxy.unpause()
    wait_until(lambda: replica.client().get("origin") == b"new", timeout=15, message="replica resynced from new")
    new.client().set("live", "2")
    wait_until(lambda: replica.client().get("live") == b"2", timeout=10)


def test_psync_bytes_pass_through_unchanged(redis_server: RedisServer, inproc_proxy: Factory) -> None:
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False))
    redis_server.client().config_set("repl-diskless-sync-delay", 0)
    redis_server.client().set("k", "v")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as sock:
        # As a Redis 7 replica asks: diskless (EOF-marked) RDB, PSYNC2; it waits for
        # REPLCONF's +OK (Redis refuses PSYNC "with pending output").
        sock.sendall(encode("REPLCONF", "capa", "eof", "capa", "psync2"))
        assert sock.recv(5) == b"+OK\r\n"
        sock.sendall(encode("PSYNC", "?", "-1"))
        data = b""
        deadline = time.monotonic() + 20
        while b"REDIS" not in data:  # +FULLRESYNC <id> <offset>, then $EOF:<mark> and the RDB
            assert time.monotonic() < deadline, data
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"got {data!r}; server log: {redis_server.log()[-3000:]}") from None
            assert chunk, data
            data += chunk
        assert data.startswith(b"+FULLRESYNC "), data[:100]
        sock.sendall(encode("REPLCONF", "ACK", "0"))  # no reply: a replication stream, not commands
    assert proxy.controller.gate.inflight == 0
