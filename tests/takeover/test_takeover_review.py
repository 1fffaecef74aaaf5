"""Second review of --takeover: sessions in less common states, and races around the hand-over (real processes)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from resp_client import Conn
from servers import ProxyProcess, RedisServer, free_port, proxy_config, wait_until


def test_resp3_reply_off_patterns_monitor_and_auth_states_move(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], take_over: Callable[..., ProxyProcess],
) -> None:
    config = proxy_config(redis_server, listen={"addr": f"127.0.0.1:{free_port()}", "pass": "pw"})
    old = start_proxy(config)
    assert old.host is not None and old.port is not None
    host, port = old.host, old.port
    resp3 = Conn(host, port)
    assert resp3.call("AUTH", "pw") == b"OK"
    hello = resp3.call("HELLO", "3")
    assert isinstance(hello, dict), hello
    resp3_id = resp3.call("CLIENT", "ID")
    quiet = Conn(host, port)
    assert quiet.call("AUTH", "pw") == b"OK"
    quiet.send("CLIENT", "REPLY", "OFF")
    quiet.send("SET", "quiet", "1")
    time.sleep(0.1)
    pat = Conn(host, port)
    assert pat.call("AUTH", "pw") == b"OK"
    assert pat.call("PSUBSCRIBE", "ev.*") == [b"psubscribe", b"ev.*", 1]
    shard = Conn(host, port)
    assert shard.call("AUTH", "pw") == b"OK"
    assert shard.call("SSUBSCRIBE", "sh") == [b"ssubscribe", b"sh", 1]
    mon = Conn(host, port)
    assert mon.call("AUTH", "pw") == b"OK"
    assert mon.call("MONITOR") == b"OK"
    noauth = Conn(host, port)
    try:
        noauth.call("GET", "x")
        raise AssertionError("expected NOAUTH")
    except Exception as exc:  # hiredis.ReplyError
        assert "NOAUTH" in str(exc), exc
    # AUTH sent while the operator pauses: held, answered by the new process.
    assert httpx.post(f"{old.admin_url}/cmd/", data={"cmd": "pause"}).status_code == 200
    held_auth = Conn(host, port)
    held_auth.send("AUTH", "pw")
    held_auth.send("SET", "after-auth", "1")
    time.sleep(0.2)
    new = take_over(config)
    assert old.proc is not None and old.proc.wait(timeout=20) == 0, old.log()
    assert httpx.post(f"{new.admin_url}/cmd/", data={"cmd": "unpause"}).status_code == 200
    assert held_auth.read() == b"OK"
    assert held_auth.read() == b"OK"
    assert redis_server.client().get("after-auth") == b"1"
    # RESP3 carried over: a map reply stays a map; the client id too.
    assert resp3.call("CLIENT", "ID") == resp3_id
    assert isinstance(resp3.call("HGETALL", "nohash"), dict)
    # CLIENT REPLY OFF carried over: nothing answered, then ON answers.
    quiet.send("SET", "quiet", "2")
    quiet.send("CLIENT", "REPLY", "ON")
    assert quiet.read() == b"OK"
    assert redis_server.client().get("quiet") == b"2"
    # Still unauthenticated.
    try:
        noauth.call("GET", "x")
        raise AssertionError("expected NOAUTH after the takeover")
    except Exception as exc:
        assert "NOAUTH" in str(exc), exc
    assert noauth.call("AUTH", "pw") == b"OK"
    pub = Conn(host, port)
    assert pub.call("AUTH", "pw") == b"OK"
    assert pub.call("PUBLISH", "ev.1", "m") == 1
    assert pat.read() == [b"pmessage", b"ev.*", b"ev.1", b"m"]
    assert pub.call("SPUBLISH", "sh", "s") == 1
    assert shard.read() == [b"smessage", b"sh", b"s"]
    line = b""
    deadline = time.monotonic() + 5
    while b"marker" not in line and time.monotonic() < deadline:
        pub.call("GET", "marker")
        line = mon.read()
        while b"marker" not in line:
            line = mon.read()
    assert b"marker" in line
    # A new connection's id collides with no moved one's.
    fresh = Conn(host, port)
    assert fresh.call("AUTH", "pw") == b"OK"
    assert fresh.call("CLIENT", "ID") != resp3_id
    assert new.running


def test_bytes_still_in_the_kernel_come_after_the_handed_over_input(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], take_over: Callable[..., ProxyProcess],
) -> None:
    """A held AUTH stops the old process reading (Redis's pre-AUTH framing): what follows it is still in the
    socket when the connection moves. The new process must run it after the AUTH it was handed, not before
    (uvloop reads a connection as soon as it is attached, whatever connection_made asked)."""
    config = proxy_config(redis_server, listen={"addr": f"127.0.0.1:{free_port()}", "pass": "pw"})
    old = start_proxy(config)
    assert old.host is not None and old.port is not None
    assert httpx.post(f"{old.admin_url}/cmd/", data={"cmd": "pause"}).status_code == 200
    conn = Conn(old.host, old.port)
    conn.send("AUTH", "pw")
    time.sleep(0.1)  # read and held: the old process stops reading this client
    conn.send("SET", "after-auth", "1")
    conn.send("INCR", "n")
    time.sleep(0.2)
    new = take_over(config)
    assert old.proc is not None and old.proc.wait(timeout=20) == 0, old.log()
    assert httpx.post(f"{new.admin_url}/cmd/", data={"cmd": "unpause"}).status_code == 200
    assert [conn.read(), conn.read(), conn.read()] == [b"OK", b"OK", 1]
    assert redis_server.client().get("after-auth") == b"1"
    assert conn.same_socket()


def test_a_switch_that_ends_while_a_takeover_waits_for_it_is_not_undone(
    redis_factory: Callable[..., RedisServer], start_proxy: Callable[..., ProxyProcess],
    take_over: Callable[..., ProxyProcess],
) -> None:
    """The hello tells the new process the uplink in use; a cmd=switch still draining then ends before the
    takeover gets its turn: the new process must not carry on with the uplink the switch left."""
    import threading

    a, b = redis_factory(), redis_factory()
    config = dict(proxy_config(a), uplinks={"a": {"addr": a.addr}, "b": {"addr": b.addr}}, uplink="a")
    old = start_proxy(config)
    assert old.host is not None and old.port is not None
    txn = Conn(old.host, old.port)
    assert txn.call("MULTI") == b"OK"  # the switch's drain waits for this transaction
    answers: list[Any] = []
    switching = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{old.admin_url}/cmd/", data={"cmd": "switch", "to": "b"}, timeout=30)),
    )
    switching.start()
    wait_until(lambda: "state: running -> pausing" in old.log())
    taking: list[ProxyProcess] = []
    taker = threading.Thread(target=lambda: taking.append(take_over(config)))
    taker.start()
    wait_until(lambda: "asks to take over" in old.log(), timeout=20)
    time.sleep(0.5)  # the new process has checked the uplink it was told of and asked to take
    assert txn.call("EXEC") == []  # the switch completes; then the takeover runs
    switching.join(timeout=30)
    taker.join(timeout=30)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    # Refused (the new process was told of uplink a, now stale): the old process serves on, unpaused.
    assert taking and taking[0].proc is not None and taking[0].proc.wait(timeout=20) == 1
    assert "uplink name changed while the takeover waited" in taking[0].log(), taking[0].log()
    assert old.running and httpx.get(f"{old.admin_url}/info.json").json()["state_str"] == "running"
    conn = Conn(old.host, old.port)
    assert conn.call("SET", "where", "x") == b"OK"
    assert txn.call("SET", "where-txn", "x") == b"OK"
    # Every client goes on to b, the uplink the switch chose, whichever process serves it.
    assert b.client().get("where") == b"x" and b.client().get("where-txn") == b"x"
    assert a.client().get("where") is None and a.client().get("where-txn") is None


def test_an_operator_pause_after_the_hello_is_what_the_new_process_is_told(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], run_dir: Path,
) -> None:
    """The hello's operator_paused may be stale by the time the sessions are handed over: the hand-over says it again."""
    import asyncio
    import os

    from redis_proxy.takeover.wire import Channel

    old = start_proxy(proxy_config(redis_server))
    wait_until(lambda: (run_dir / "proxy.control").exists())  # started once the pid file is written

    async def take() -> tuple[dict[str, Any], dict[str, Any]]:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect(str(run_dir / "proxy.control"))
        channel = Channel(sock)
        await channel.send({"op": "hello", "pid": os.getpid(), "version": "test", "format": 1}, loop.time() + 5)
        info, _ = await channel.receive(loop.time() + 5)
        await asyncio.to_thread(httpx.post, f"{old.admin_url}/cmd/", data={"cmd": "pause"})
        await channel.send({"op": "take"}, loop.time() + 5)
        document, fds = await channel.receive(loop.time() + 10)
        for fd in fds:
            os.close(fd)
        channel.close()  # walks away: the old process rolls back
        return info, document

    info, document = asyncio.run(take())
    assert info["operator_paused"] is False
    assert document["operator_paused"] is True
    # Rolled back: the operator's pause stays.
    wait_until(lambda: httpx.get(f"{old.admin_url}/info.json").json()["state_str"] == "paused")
    assert httpx.post(f"{old.admin_url}/cmd/", data={"cmd": "unpause"}).status_code == 200


def test_what_stays_with_the_old_process_follows_the_new_process_s_operator_pause(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], take_over: Callable[..., ProxyProcess],
) -> None:
    config = proxy_config(redis_server, takeover_drain_s=3)
    old = start_proxy(config)
    assert old.host is not None and old.port is not None
    assert httpx.post(f"{old.admin_url}/cmd/", data={"cmd": "pause"}).status_code == 200
    half = Conn(old.host, old.port)
    half.send("SET", "half-closed", "1")
    half.sock.shutdown(socket.SHUT_WR)  # stays with the old process ("half-closed by the client")
    time.sleep(0.2)
    new = take_over(config)
    assert "1 half-closed by the client" in old.log(), old.log()
    assert httpx.post(f"{new.admin_url}/cmd/", data={"cmd": "unpause"}).status_code == 200
    assert half.read() == b"OK"  # the new process's unpause reached the old one (takeover/pause_link.py)
    assert redis_server.client().get("half-closed") == b"1"


def test_the_new_process_never_hands_out_an_id_the_old_one_did(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], take_over: Callable[..., ProxyProcess],
) -> None:
    """Client ids are never reused, as Redis's: not a closed client's, nor one still open in the old process."""
    config = proxy_config(redis_server)
    old = start_proxy(config)
    assert old.host is not None and old.port is not None
    kept = Conn(old.host, old.port)
    seen = {kept.call("CLIENT", "ID")}
    for _ in range(3):
        gone = Conn(old.host, old.port)
        seen.add(gone.call("CLIENT", "ID"))
        gone.close()
    time.sleep(0.2)
    take_over(config)
    assert old.proc is not None and old.proc.wait(timeout=20) == 0, old.log()
    fresh = Conn(old.host, old.port)
    assert fresh.call("CLIENT", "ID") > max(seen)
