"""listen_raw (an unparsed byte pipe) and unix sockets for listen, listen_raw and uplink."""

from __future__ import annotations

import os
import re
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from servers import recv_line, ProxyProcess, RedisServer, free_port, proxy_config, uplink_client_id, wait_until

ProxyFactory = Callable[..., ProxyProcess]

_open: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def tcp(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    _open.append(sock)
    return sock


def unix(path: Path | str, timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _open.append(sock)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def talk(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return recv_line(sock)


def to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def config(server: RedisServer, uplink: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    cfg = proxy_config(server, admin=False, listen_raw={"addr": f"127.0.0.1:{free_port()}"}, **extra)
    cfg["uplink"].update(uplink or {})
    return cfg


def raw_port(proxy: ProxyProcess) -> int:
    """The listen_raw TCP port, once it accepts connections (ProxyProcess only waits for listen)."""
    port = int(proxy.config["listen_raw"]["addr"].rsplit(":", 1)[1])
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True)
    return port


def client_info(server: RedisServer, client_id: int) -> dict[str, str]:
    text = server.client(single_connection_client=True).execute_command("CLIENT", "LIST", "ID", client_id).decode()
    return dict(re.findall(r"(\S+?)=(\S*)", text))


def test_unix_sockets_for_listen_listen_raw_and_uplink(
    redis_factory: Callable[..., RedisServer], proxy_factory: ProxyFactory, sock_dir: Path
) -> None:
    server = redis_factory(unixsocket=True)
    assert server.unixsocket is not None
    listen, listen_raw = sock_dir / "proxy.sock", sock_dir / "raw.sock"
    proxy = proxy_factory(
        {
            "uplink": {"addr": str(server.unixsocket), "network": "unix"},
            "listen": {"addr": str(listen), "network": "unix"},
            "listen_raw": {"addr": str(listen_raw), "network": "unix"},
            "read_time_limit_ms": 5000,
        }
    )
    client = proxy.client(single_connection_client=True)  # over the unix listen socket
    assert client.set("k", "via-unix") and client.get("k") == b"via-unix"
    assert "U" in client_info(server, uplink_client_id(server, client.client_info()))["flags"]  # the uplink is a unix socket too

    wait_until(lambda: unix(listen_raw, timeout=1), message="listen_raw accepts connections")
    raw = unix(listen_raw)
    assert talk(raw, b"GET k\r\n") == b"$8\r\n"
    assert recv_line(raw) == b"via-unix\r\n"
    raw_id = int(talk(raw, b"CLIENT ID\r\n")[1:])
    assert "U" in client_info(server, raw_id)["flags"]

    # Shutdown removes the socket files the proxy created, and only those.
    assert proxy.stop() == 0
    assert to_eof(raw) == b""
    assert not listen.exists() and not listen_raw.exists()
    assert server.unixsocket.exists()


def test_raw_bytes_pass_through_unparsed(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(config(redis_server))
    port = raw_port(proxy)

    pipe = tcp(port)
    assert talk(pipe, b"PING\r\n") == b"+PONG\r\n"
    assert talk(pipe, b"*-5\r\n*1\r\n$4\r\nPING\r\n") == b"+PONG\r\n"  # Redis's reading, not the proxy's
    # Half a command reaches Redis at once: no framing on the way.
    pipe_id = int(talk(pipe, b"CLIENT ID\r\n")[1:])
    pipe.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nabc")
    wait_until(lambda: int(client_info(redis_server, pipe_id)["qbuf"]) + int(client_info(redis_server, pipe_id)["argv-mem"]) > 0)
    assert talk(pipe, b"defghij\r\n") == b"+OK\r\n"
    assert redis_server.client().get("half") == b"abcdefghij"

    # MONITOR is refused on listen but is just bytes here.
    mon = tcp(port)
    assert talk(mon, b"MONITOR\r\n") == b"+OK\r\n"
    redis_server.client().set("seen-by-monitor", "1")
    wait_until(lambda: b"seen-by-monitor" in recv_line(mon))

    # A protocol error is Redis's to report; Redis closes, so the proxy closes the client.
    bad = tcp(port)
    bad.sendall(b"*abc\r\n")
    assert to_eof(bad) == b"-ERR Protocol error: invalid multibulk length\r\n"

    # A large value round-trips intact.
    value = os.urandom(10 * 1024 * 1024)
    big = tcp(port, timeout=30)
    big.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n" % (len(value), value))
    assert recv_line(big) == b"+OK\r\n"
    assert talk(big, b"GET big\r\n") == b"$%d\r\n" % len(value)
    body = bytearray()
    while len(body) < len(value) + 2:
        chunk = big.recv(1 << 20)
        assert chunk
        body += chunk
    assert body == value + b"\r\n"

    # Half-close on an established pipe: the reply still arrives, then the end of the stream.
    eof = tcp(port)
    assert talk(eof, b"PING\r\n") == b"+PONG\r\n"
    eof.sendall(b"ECHO bye\r\n")
    eof.shutdown(socket.SHUT_WR)
    assert to_eof(eof) == b"$3\r\nbye\r\n"


def test_half_close_right_after_connect_still_gets_the_reply(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(config(redis_server))
    for attempt in range(10):  # e.g. `printf 'PING\r\n' | nc -N host port`
        sock = tcp(raw_port(proxy), timeout=3)
        sock.sendall(b"PING\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert to_eof(sock) == b"+PONG\r\n", attempt


def test_raw_auth_goes_to_redis(redis_factory: Callable[..., RedisServer], proxy_factory: ProxyFactory) -> None:
    server = redis_factory(password="redis-pw")
    proxy = proxy_factory(config(server, uplink={"pass": "redis-pw"}, listen={"pass": "proxy-pw"}))
    raw = tcp(raw_port(proxy))
    assert talk(raw, b"GET k\r\n") == b"-NOAUTH Authentication required.\r\n"
    assert talk(raw, b"AUTH proxy-pw\r\n").startswith(b"-WRONGPASS")
    assert talk(raw, b"AUTH redis-pw\r\n") == b"+OK\r\n"
    assert talk(raw, b"SET k raw\r\n") == b"+OK\r\n"

    parsed = tcp(proxy.port)
    assert talk(parsed, b"AUTH redis-pw\r\n").startswith(b"-WRONGPASS")
    assert talk(parsed, b"AUTH proxy-pw\r\n") == b"+OK\r\n"
    assert talk(parsed, b"GET k\r\n") == b"$3\r\n"


def test_raw_with_uplink_down_closes_promptly(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(config(redis_server))
    port = raw_port(proxy)
    before = tcp(port, timeout=3)
    assert talk(before, b"PING\r\n") == b"+PONG\r\n"
    redis_server.kill()
    assert to_eof(before) == b""  # socket timeout 3 s: no hang
    down = tcp(port, timeout=3)
    try:
        down.sendall(b"PING\r\n")
    except OSError:
        pass  # already closed by the proxy
    try:
        assert to_eof(down) == b""  # closed promptly, with nothing written
    except ConnectionResetError:
        pass  # the same, said with a reset: the PING was still unread when the proxy closed
    redis_server.start()
    again = tcp(port, timeout=3)
    assert talk(again, b"PING\r\n") == b"+PONG\r\n"
    # SIGTERM closes raw connections too.
    proxy.send_signal(signal.SIGTERM)
    assert to_eof(again) == b""
    assert proxy.proc is not None and proxy.proc.wait(timeout=15) == 0


def test_bytes_sent_right_after_connect_are_not_lost(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(config(redis_server))
    for _ in range(3):
        sock = tcp(raw_port(proxy), timeout=2)
        assert talk(sock, b"PING\r\n") == b"+PONG\r\n"
    client = redis.Redis(port=raw_port(proxy), socket_timeout=2)
    try:
        assert client.ping()
    finally:
        client.close()


def test_closed_pipes_are_unregistered_and_release_their_fds(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    """A pipe whose both directions have ended is closed: no entry left in
    raw_connections, no file descriptors kept (a load balancer's TCP health
    check, connect then close, used to leak one pipe per probe)."""
    port = free_port()
    # With admin configured the proxy is ready only once admin answers, and
    # listen_raw is bound before admin: no probe connection is needed.
    proxy = proxy_factory(proxy_config(redis_server, listen_raw={"addr": f"127.0.0.1:{port}"}))
    assert proxy.admin_url is not None and proxy.proc is not None
    pid = proxy.proc.pid

    def raw_connections() -> int:
        count: int = httpx.get(proxy.admin_url + "/info.json", timeout=5).json()["raw_connections"]
        return count

    def fds() -> int:
        return len(os.listdir(f"/proc/{pid}/fd"))

    assert raw_connections() == 0
    baseline = fds()

    for _ in range(20):  # a short session, closed by the client
        sock = tcp(port)
        assert talk(sock, b"PING\r\n") == b"+PONG\r\n"
        sock.close()
    for _ in range(10):  # a TCP health check: connect, then close without a byte
        tcp(port).close()
    for _ in range(3):  # closed by Redis first, then by the client
        sock = tcp(port)
        sock.sendall(b"QUIT\r\n")
        assert to_eof(sock) == b"+OK\r\n"
        sock.close()
    # Half-close: the reply still comes through before the proxy closes.
    half = tcp(port)
    half.sendall(b"PING\r\n")
    half.shutdown(socket.SHUT_WR)
    assert to_eof(half) == b"+PONG\r\n"
    half.close()

    state: dict[str, int] = {}

    def released() -> bool:
        state.update(raw_connections=raw_connections(), fds=fds())
        return state["raw_connections"] == 0 and state["fds"] <= baseline

    try:
        wait_until(released, timeout=5)
    except AssertionError:
        raise AssertionError(f"pipes not released: {state}, fd baseline {baseline}") from None
    # The proxy still serves raw connections afterwards.
    sock = tcp(port)
    assert talk(sock, b"PING\r\n") == b"+PONG\r\n"
