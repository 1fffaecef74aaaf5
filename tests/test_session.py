"""Client sessions through a real proxy process to a real redis-server.

Byte-level cases use raw sockets; the rest use redis-py. Nothing is mocked.
"""

from __future__ import annotations

import os
import random
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hiredis
import pytest

from servers import ProxyProcess, RedisServer, proxy_config, uplink_client_id, wait_until

ProxyFactory = Callable[..., ProxyProcess]
_MORE = object()


def cmd(*args: Any) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        arg = arg if isinstance(arg, bytes) else str(arg).encode()
        parts += [b"$%d\r\n" % len(arg), arg, b"\r\n"]
    return b"".join(parts)


_open_sockets: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_raw_sockets() -> Iterator[None]:
    yield
    while _open_sockets:
        _open_sockets.pop().close()


class Raw:
    """A raw TCP connection with a RESP reader for the replies."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        _open_sockets.append(self.sock)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader(notEnoughData=_MORE)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def replies(self, n: int = 1) -> list[Any]:
        out: list[Any] = []
        while len(out) < n:
            value = self.reader.gets()
            if value is _MORE:
                data = self.sock.recv(1 << 20)
                assert data, f"connection closed after {len(out)} of {n} replies: {out!r}"
                self.reader.feed(data)
            else:
                out.append(value)
        return out

    def call(self, *args: Any) -> Any:
        self.send(cmd(*args))
        return self.replies(1)[0]

    def until_eof(self) -> bytes:
        """Everything up to the peer closing the connection (socket timeout = no hang)."""
        chunks = []
        while data := self.sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


class Monitor:
    """MONITOR straight on the redis-server: what actually reached it."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.conn = Raw(server.port)
        if server.password:
            assert self.conn.call("AUTH", server.password) == b"OK"
        assert self.conn.call("MONITOR") == b"OK"
        self.seen = b""
        self.direct = server.client()

    def collect(self) -> str:
        marker = uuid.uuid4().hex.encode()
        self.direct.echo(marker)
        while marker not in self.seen:
            self.seen += self.conn.sock.recv(65536)
        return self.seen.decode(errors="replace")


def partial_bytes(server: RedisServer, client_id: int) -> int:
    """How much of an incomplete command Redis holds for this connection (query buffer + parsed args)."""
    line = server.client(single_connection_client=True).execute_command("CLIENT", "LIST", "ID", client_id).decode()
    fields = dict(re.findall(r"(\S+?)=(\S*)", line))
    return int(fields["qbuf"]) + int(fields["argv-mem"])


def config(server: RedisServer, uplink: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    cfg = proxy_config(server, admin=False, **extra)
    cfg["uplink"].update(uplink or {})
    return cfg


def uplink_alive(server: RedisServer, client_id: int) -> bool:
    return str(client_id) in {c["id"] for c in server.client(single_connection_client=True).client_list()}


def redis_is_sleeping(server: RedisServer) -> bool:
    """True while the server is inside DEBUG SLEEP (a PING gets no answer)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
        sock.settimeout(0.3)
        sock.sendall(b"PING\r\n")
        try:
            sock.recv(100)
        except socket.timeout:
            return True
    return False


@pytest.fixture
def proxy(redis_server: RedisServer, proxy_factory: ProxyFactory) -> ProxyProcess:
    return proxy_factory(config(redis_server))


def test_every_client_has_its_own_uplink_connection(redis_server: RedisServer, proxy: ProxyProcess) -> None:
    a = proxy.client(single_connection_client=True)
    b = proxy.client(single_connection_client=True)
    assert a.client_id() != b.client_id()
    a.client_setname("alpha")
    assert b.client_getname() is None
    assert a.client_getname() in ("alpha", b"alpha")
    # a, b, the direct client and the proxy's own health connection (redis_proxy/health.py, opened at startup)
    wait_until(lambda: len(redis_server.client().client_list()) == 4, message="four connections on the server")
    names = [c["name"] for c in redis_server.client().client_list()]
    assert names.count("alpha") == 1


def test_only_whole_commands_are_forwarded(redis_server: RedisServer, proxy: ProxyProcess) -> None:
    monitor = Monitor(redis_server)
    half = cmd("SET", "halfkey", "value")[:-4]
    # Control: the same partial bytes sent straight to Redis do show in qbuf.
    direct = Raw(redis_server.port)
    direct_id = direct.call("CLIENT", "ID")
    direct.send(half)
    wait_until(lambda: partial_bytes(redis_server, direct_id) > 0)
    direct.close()

    client = Raw(proxy.port)
    uplink_id = uplink_client_id(redis_server, client.call("CLIENT", "INFO"))
    client.send(half)
    time.sleep(0.3)
    assert partial_bytes(redis_server, uplink_id) == 0
    client.close()
    wait_until(lambda: not uplink_alive(redis_server, uplink_id), message="uplink closed")
    assert "halfkey" not in monitor.collect()
    assert redis_server.client().exists("halfkey") == 0

    # The same command in 1-byte pieces works; nothing goes up before the last byte.
    client = Raw(proxy.port)
    uplink_id = uplink_client_id(redis_server, client.call("CLIENT", "INFO"))
    set_cmd = cmd("SET", "bytekey", "v a l")
    for byte in set_cmd[:-1]:
        client.send(bytes([byte]))
        time.sleep(0.001)
    time.sleep(0.2)
    assert partial_bytes(redis_server, uplink_id) == 0
    assert "bytekey" not in monitor.collect()
    for byte in set_cmd[-1:] + b"PING\r\n":  # the last byte, then an inline command, byte by byte
        client.send(bytes([byte]))
    assert client.replies(2) == [b"OK", b"PONG"]
    assert redis_server.client().get("bytekey") == b"v a l"


def test_pipelined_commands_come_back_in_order(proxy: ProxyProcess) -> None:
    client = Raw(proxy.port)
    client.send(b"".join(cmd("ECHO", f"n{i}") for i in range(1000)))
    assert client.replies(1000) == [f"n{i}".encode() for i in range(1000)]

    # RESP mixed with inline (telnet-style) commands, quoted arguments included.
    payload = (
        b"PING\r\n"
        + cmd("DEL", "a")
        + b'SET a "b c"\r\n'
        + b"".join(cmd("RPUSH", "l", i) for i in range(500))
        + b"GET a\n"
        + b"  llen   l  \r\n"
        + b"SET q 'it\\'s'\r\n"
        + cmd("GET", "q")
        + b'ECHO "\\x41\\tB"\r\n'
    )
    client.send(payload)
    expected = [b"PONG", 0, b"OK", *range(1, 501), b"b c", 500, b"OK", b"it's", b"A\tB"]
    assert client.replies(len(expected)) == expected


def test_100mb_value_round_trip_and_proxy_memory(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(config(redis_server, read_time_limit_ms=0))
    client = proxy.client(socket_timeout=60)
    value = os.urandom(100 * 1024 * 1024)
    assert client.set("big", value)
    assert redis_server.client().strlen("big") == len(value)
    assert client.get("big") == value
    del value
    assert proxy.proc is not None
    status = Path(f"/proc/{proxy.proc.pid}/status").read_text()
    hwm_mb = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
    print(f"proxy VmHWM after 100 MB SET+GET: {hwm_mb:.0f} MB")
    assert hwm_mb < 450
    assert client.ping()


def test_client_auth_with_listen_pass(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(config(redis_server, listen={"pass": "proxy-pw"}))
    monitor = Monitor(redis_server)
    c = Raw(proxy.port)
    noauth = c.call("GET", "k")
    assert isinstance(noauth, hiredis.ReplyError) and str(noauth) == "NOAUTH Authentication required."
    assert str(c.call("AUTH", "wrong")).startswith("WRONGPASS")
    assert str(c.call("AUTH", "default", "wrong")).startswith("WRONGPASS")
    assert str(c.call("AUTH", "a", "b", "c")).startswith("ERR wrong number of arguments")
    assert str(c.call("SET", "k", "v")) == "NOAUTH Authentication required."
    assert c.call("AUTH", "proxy-pw") == b"OK"
    assert c.call("SET", "k", "v") == b"OK"
    c2 = Raw(proxy.port)
    assert c2.call("AUTH", "default", "proxy-pw") == b"OK"
    assert c2.call("GET", "k") == b"v"
    assert proxy.client(password="proxy-pw").get("k") == b"v"
    seen = monitor.collect().lower()
    assert '"set" "k" "v"' in seen and "auth" not in seen and "proxy-pw" not in seen


def test_auth_without_listen_pass_is_refused_locally(redis_server: RedisServer, proxy: ProxyProcess) -> None:
    monitor = Monitor(redis_server)
    c = Raw(proxy.port)
    assert str(c.call("AUTH", "whatever")).startswith("ERR AUTH <password> called without any password")
    assert isinstance(c.call("AUTH", "user", "whatever"), hiredis.ReplyError)
    assert c.call("PING") == b"PONG"
    assert "auth" not in monitor.collect().lower()


def test_hello_3_with_auth_gives_resp3(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(config(redis_server, listen={"pass": "pw3"}))
    monitor = Monitor(redis_server)
    r3 = proxy.client(protocol=3, username="default", password="pw3")
    r3.hset("h", mapping={"f": "v"})
    assert r3.hgetall("h") == {b"f": b"v"}
    assert r3.ping()

    raw = Raw(proxy.port)
    assert str(raw.call("HELLO", "3", "AUTH", "default", "nope")).startswith("WRONGPASS")
    raw.send(cmd("HELLO", "3", "AUTH", "default", "pw3"))
    hello = raw.replies(1)[0]
    assert isinstance(hello, dict) and hello[b"proto"] == 3
    raw.send(cmd("HGETALL", "h"))
    assert raw.sock.recv(100).startswith(b"%1\r\n")
    assert "pw3" not in monitor.collect()


def test_uplink_auth_with_pass_and_acl_user(redis_factory: Callable[..., RedisServer], proxy_factory: ProxyFactory) -> None:
    server = redis_factory(password="uplink-pw")
    server.client().execute_command("ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "&*", "+@all")
    by_pass = proxy_factory(config(server, uplink={"pass": "uplink-pw"}))
    by_user = proxy_factory(config(server, uplink={"user": "alice", "pass": "alice-pw"}))
    # redis-py decodes ACL WHOAMI itself (str), whatever decode_responses says.
    assert by_pass.client().acl_whoami() in ("default", b"default")
    assert by_user.client().acl_whoami() in ("alice", b"alice")
    # listen.pass differs from the uplink's requirepass: a forwarded AUTH would fail.
    guarded = proxy_factory(config(server, uplink={"pass": "uplink-pw"}, listen={"pass": "client-pw"}))
    c = guarded.client(password="client-pw")
    assert c.set("k", "v") and c.get("k") == b"v"


def test_read_time_limit_ends_slow_commands(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(config(redis_server, read_time_limit_ms=300))
    other = proxy.client(single_connection_client=True)
    assert other.ping()

    # A blocking command's limit is its own timeout plus read_time_limit_ms:
    # BLPOP 0.6 outlives the 300 ms limit and gets its own timeout reply.
    blocked = Raw(proxy.port)
    started = time.monotonic()
    blocked.send(cmd("BLPOP", "nolist", "0.6"))
    time.sleep(0.05)
    assert other.set("during", "blpop") and other.get("during") == b"blpop"
    assert blocked.replies(1) == [None]
    assert time.monotonic() - started >= 0.55
    assert blocked.call("PING") == b"PONG"

    slow = Raw(proxy.port)
    slow.send(cmd("DEBUG", "SLEEP", "2"))
    out = slow.until_eof()
    assert out.startswith(b"-ERR ") and b"timed out" in out and b"+OK" not in out, out
    wait_until(lambda: not redis_is_sleeping(redis_server), message="redis awake again")
    assert other.get("during") == b"blpop"


_NOISE = random.Random(7).randbytes(256)
BAD_INPUT = {
    "garbage after *": b"*" + bytes(b for b in _NOISE if b not in b"0123456789\r\n-") + b"\r\n",
    "not a bulk": b"*1\r\n" + bytes(b for b in _NOISE if b not in b"$\r\n") + b"\r\n",
    "huge bulk": b"*1\r\n$999999999999\r\n",
    "huge array": b"*2147483648\r\n",  # INT_MAX + 1: Redis 7 accepts up to INT_MAX
    "unbalanced quotes": b'SET a "b\r\n',
    "unbalanced single quote": b"SET a 'b\r\n",
}


def test_bad_input_gets_protocol_error_then_disconnect(proxy: ProxyProcess) -> None:
    healthy = proxy.client(single_connection_client=True)
    assert healthy.ping()
    for name, payload in BAD_INPUT.items():
        bad = Raw(proxy.port)
        bad.send(payload)
        out = bad.until_eof()
        assert re.fullmatch(rb"-ERR Protocol error: [^\r\n]+\r\n", out), (name, out)
        assert healthy.ping(), name


def test_negative_array_lengths_are_ignored_as_redis_does(proxy: ProxyProcess) -> None:
    client = Raw(proxy.port)
    client.send(b"*-5\r\n*-9223372036854775808\r\n*1\r\n$4\r\nPING\r\n")
    assert client.replies(1) == [b"PONG"]
    client.send(b"*-99999999999999999999\r\n")  # beyond a long long: Redis's error
    assert client.until_eof() == b"-ERR Protocol error: invalid multibulk length\r\n"


def test_commands_before_a_protocol_error_still_run(redis_server: RedisServer, proxy: ProxyProcess) -> None:
    bad = Raw(proxy.port)
    assert bad.call("PING") == b"PONG"  # the uplink connection is up
    bad.send(cmd("SET", "before", "1") + b"*abc\r\n")
    assert bad.until_eof() == b"+OK\r\n-ERR Protocol error: invalid multibulk length\r\n"
    assert redis_server.client().get("before") == b"1"


def test_commands_before_a_protocol_error_run_on_a_fresh_connection(redis_server: RedisServer, proxy: ProxyProcess) -> None:
    bad = Raw(proxy.port)
    bad.send(cmd("SET", "before", "1") + b"*abc\r\n")
    assert bad.until_eof() == b"+OK\r\n-ERR Protocol error: invalid multibulk length\r\n"
    assert redis_server.client().get("before") == b"1"


def test_uplink_crash_and_recovery(redis_server: RedisServer, proxy: ProxyProcess) -> None:
    inflight = Raw(proxy.port, timeout=3)
    idle = Raw(proxy.port, timeout=3)
    assert inflight.call("PING") == b"PONG" and idle.call("SET", "k", "v") == b"OK"
    inflight.send(cmd("DEBUG", "SLEEP", "2"))
    wait_until(lambda: redis_is_sleeping(redis_server), message="DEBUG SLEEP running")
    redis_server.kill()
    out = inflight.until_eof()  # socket timeout 3 s: an error and/or EOF, never a hang
    assert out == b"" or out.startswith(b"-ERR "), out

    assert idle.until_eof() == b""  # closed with its uplink connection, as Redis would close it
    fresh = Raw(proxy.port, timeout=3)
    assert str(fresh.call("PING")).startswith("ERR upstream unavailable")

    redis_server.start()
    assert fresh.call("PING") == b"PONG"  # a client that connected while Redis was down works now
    assert fresh.call("SET", "k", "w") == b"OK"
    assert Raw(proxy.port, timeout=3).call("GET", "k") == b"w"


def test_refusal_after_subscribe_comes_in_order(proxy: ProxyProcess) -> None:
    c = Raw(proxy.port)
    c.send(cmd("SUBSCRIBE", "ch") + cmd("MONITOR"))
    first, second = c.replies(2)
    assert first == [b"subscribe", b"ch", 1], (first, second)
    assert isinstance(second, hiredis.ReplyError)


# -- regressions: refused SUBSCRIBE, long error replies, protocol error after a split command ----------------------


def test_resp2_subscribe_refused_by_acl_is_one_error_and_leaks_nothing(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    from inproc import start as start_inproc

    server = redis_factory()
    server.client().execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "+@all")
    cfg = config(server, uplink={"user": "limited", "pass": "pw"})
    cfg["listen"] = {"addr": "127.0.0.1:0"}
    proxy = start_inproc(cfg, tmp_path / "inproc")
    try:
        c = Raw(proxy.port)
        assert c.call("ACL", "WHOAMI") == b"limited"
        c.send(cmd("SUBSCRIBE", "a", "b", "c"))
        refused = c.replies(1)[0]
        assert isinstance(refused, hiredis.ReplyError) and str(refused).startswith("NOPERM"), refused
        # Not in pub/sub mode: a RESP2 PING gets +PONG, not ["pong", ""].
        c.send(cmd("PING"))
        assert c.sock.recv(100) == b"+PONG\r\n"
        assert c.call("SET", "k", "v") == b"OK"
        proxy.wait_for(lambda i: i["active_requests"] == 0, timeout=2, what="no command in flight")
        assert proxy.pause_and_wait(1) < 0.2
        proxy.unpause()
        # Nothing else arrives (no stray error or confirmation).
        c.sock.settimeout(0.1)
        with pytest.raises(socket.timeout):
            c.sock.recv(100)
        assert proxy.loop_errors == []
    finally:
        proxy.stop()


@pytest.mark.parametrize("size", [100_000, 1_000_000])  # 1 MB: more than one 256 KiB read of the proxy's
def test_error_reply_longer_than_64k_reaches_the_client_whole(size: int, proxy: ProxyProcess) -> None:
    c = Raw(proxy.port)
    c.send(cmd("EVAL", f"return redis.error_reply(string.rep('x', {size}))", "0"))
    reply = c.replies(1)[0]
    assert isinstance(reply, hiredis.ReplyError), type(reply)
    text = str(reply)
    assert len(text) in (size, size + 4) and text.removeprefix("ERR ") == "x" * size, text[:40]
    assert c.call("PING") == b"PONG"
    assert c.call("ECHO", "after") == b"after"


def test_protocol_error_after_a_command_split_across_reads(proxy: ProxyProcess) -> None:
    c = Raw(proxy.port)
    assert c.call("PING") == b"PONG"  # the uplink connection is up
    c.send(b"*1\r\n$4\r\nPI")
    time.sleep(0.1)  # a read of its own
    c.send(b"NG\r\n*1\r\n$x\r\n")
    out = c.until_eof()
    assert re.fullmatch(rb"\+PONG\r\n-ERR Protocol error: [^\r\n]+\r\n", out), out
    assert out == b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_client_that_does_not_read_is_held_back_not_buffered(redis_server: RedisServer, proxy: ProxyProcess) -> None:
    """Backpressure: 200 pipelined GETs of a 1 MB value (200 MB of replies) from a
    client that reads nothing. The proxy stops reading from the uplink once the
    client's socket is full, so its memory stays bounded; then every reply arrives."""
    value = b"v" * (1024 * 1024)
    redis_server.client().set(b"big", value)
    assert proxy.proc is not None
    before = _rss_kb(proxy.proc.pid)
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    _open_sockets.append(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(cmd("GET", "big") * 200)
    time.sleep(2.0)  # the proxy does all it is going to do without the client reading
    grown_mb = (_rss_kb(proxy.proc.pid) - before) / 1024
    assert grown_mb < 60, f"the proxy buffered {grown_mb:.0f} MB for a client that does not read"
    reader = hiredis.Reader()
    replies = 0
    while replies < 200:
        data = sock.recv(1024 * 1024)
        assert data, "connection closed early"
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            assert reply == value
            replies += 1


def test_half_closed_client_gets_its_replies(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    """`nc -N` style: commands, then shutdown(SHUT_WR); Redis answers them and then closes, so does the proxy."""
    proxy = proxy_factory(config(redis_server))
    for stream, expected in (
        (cmd("SET", "hc", "v") + cmd("GET", "hc"), b"+OK\r\n$1\r\nv\r\n"),
        (b"PING\r\n", b"+PONG\r\n"),
        (cmd("SUBSCRIBE", "hc-ch"), b"*3\r\n$9\r\nsubscribe\r\n$5\r\nhc-ch\r\n:1\r\n"),
    ):
        raw = Raw(proxy.port)
        raw.send(stream)
        raw.sock.shutdown(socket.SHUT_WR)
        assert raw.until_eof() == expected


def test_why_a_client_was_closed_is_logged(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(config(redis_server, read_time_limit_ms=200))
    bad = Raw(proxy.port)
    bad.send(b"*1\r\n$x\r\n")
    assert bad.until_eof().startswith(b"-ERR Protocol error")
    slow = Raw(proxy.port)
    slow.send(cmd("DEBUG", "SLEEP", "0.5"))
    assert b"timed out" in slow.until_eof()
    wait_until(lambda: "protocol error" in proxy.log() and "read_time_limit_ms=200" in proxy.log(), message="logged")


def test_protocol_errors_do_not_flood_the_log(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    """Anyone who reaches the port can send garbage: the log says so once per interval, with a count."""
    proxy = proxy_factory(config(redis_server))
    for _ in range(30):
        bad = Raw(proxy.port)
        bad.send(b"*1\r\n$x\r\n")
        assert bad.until_eof().startswith(b"-ERR Protocol error")
    assert proxy.log().count("protocol error") == 1
