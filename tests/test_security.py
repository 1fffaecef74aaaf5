"""Issue 9, security and limits, against real processes: real redis-server, real sockets, real TLS."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from inproc import inproc_proxy  # noqa: F401
from servers import REPO_ROOT, ProxyProcess, RedisServer, free_port, proxy_config, recv_line, wait_until

if TYPE_CHECKING:
    from certs import CertFiles
    from inproc import InProcProxy

ProxyFactory = Callable[..., ProxyProcess]
MiB = 1024 * 1024


def connect(proxy: ProxyProcess, timeout: float = 10.0) -> socket.socket:
    assert proxy.port is not None
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the peer closed (EOF or reset) within `timeout`, skipping whatever it sent first."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def with_password(server: RedisServer, **extra: Any) -> dict[str, Any]:
    cfg = proxy_config(server, admin=False, **extra)
    cfg["listen"]["pass"] = "secret"
    return cfg


def connected_clients(direct: Any) -> int:
    return int(direct.info("clients")["connected_clients"])


# -- 1. no uplink connection before AUTH ---------------------------------------------------------


def test_unauthenticated_clients_open_no_uplink_connection(
    redis_server: RedisServer, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(with_password(redis_server))
    direct = redis_server.client()  # one connection of the test's own, counted in both figures
    # The test's own connection and the proxy's health connection, which opens at startup.
    wait_until(lambda: connected_clients(direct) == 2, message="the health connection is open")
    before = connected_clients(direct)
    sockets = [connect(proxy) for _ in range(20)]
    for sock in sockets:
        sock.sendall(b"PING\r\n")
    for sock in sockets:
        assert recv_line(sock) == b"-NOAUTH Authentication required.\r\n"
    # Counted on the server itself: the 20 clients made no connection to it.
    assert connected_clients(direct) == before
    assert len(direct.client_list()) == before
    for sock in sockets:
        sock.close()


# -- 2. Redis's unauthenticated limits ------------------------------------------------------------


def test_unauthenticated_huge_argument_is_refused_before_it_is_buffered(
    redis_server: RedisServer, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(with_password(redis_server))
    assert proxy.proc is not None
    warm = connect(proxy)  # one client served first, so the baseline includes a session's cost
    warm.sendall(b"PING\r\n")
    recv_line(warm)
    before = rss_kb(proxy.proc.pid)
    sock = connect(proxy)
    sock.sendall(b"*1\r\n$67108864\r\n")
    chunk = b"x" * MiB
    sent = 0
    try:
        for _ in range(64):
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the proxy closed as soon as it saw the header: the rest has nowhere to go
    sock.settimeout(5)
    try:
        line = recv_line(sock)
    except ConnectionResetError:
        line = b"(reset before the error line could be read)"
    after = rss_kb(proxy.proc.pid)
    growth_kb = after - before
    print(f"unauthenticated 64 MiB argument: RSS {before} kB -> {after} kB (growth {growth_kb} kB), sent {sent} bytes")
    assert line == b"-ERR Protocol error: unauthenticated bulk length\r\n"
    assert closed(sock)
    assert growth_kb < 4 * 1024
    sock.close()
    warm.close()


def test_unauthenticated_multibulk_longer_than_10_is_refused(
    redis_server: RedisServer, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(with_password(redis_server))
    sock = connect(proxy)
    sock.sendall(b"*11\r\n")
    assert recv_line(sock) == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    assert closed(sock)
    # After AUTH the same sizes are fine, as in Redis.
    client = proxy.client(password="secret")
    assert client.set("k", "v" * 100_000) and len(client.get("k") or b"") == 100_000
    assert client.execute_command("DEL", *[f"k{i}" for i in range(20)]) == 0


# -- 3. query buffer cap --------------------------------------------------------------------------


def test_query_buffer_limit_closes_the_client_and_logs_it(
    redis_server: RedisServer, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(proxy_config(redis_server, admin=False, client_query_buffer_limit=MiB))
    ok = proxy.client()
    assert ok.set("small", "x" * (MiB // 2))  # under the limit: served
    sock = connect(proxy)
    sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000000\r\n")
    try:
        for _ in range(3):
            sock.sendall(b"x" * (MiB // 2))
            time.sleep(0.05)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed(sock)
    wait_until(lambda: "max query buffer length" in proxy.log(), timeout=5)
    assert ok.ping()  # other clients are untouched


# -- 4. TLS client certificates, both ways ---------------------------------------------------------


def run_check(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "check-config.json"
    path.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "redis_proxy", "-f", str(path), "--check"],
        capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL,
    )


def test_uplink_client_certificate(
    redis_factory: Callable[..., RedisServer], proxy_factory: ProxyFactory, certs: "CertFiles", tmp_path: Path
) -> None:
    server = redis_factory(tls=certs, extra_args=["--tls-auth-clients", "yes"])  # Redis's default
    cfg = proxy_config(server, admin=False)
    cfg["uplink"].update(tls=True, cacertfile=str(certs.ca_cert))
    check = run_check(cfg, tmp_path)
    assert check.returncode != 0
    assert "requires a TLS client certificate" in check.stderr, check.stderr
    cfg["uplink"].update(certfile=str(certs.cert), keyfile=str(certs.key))
    check = run_check(cfg, tmp_path)
    assert check.returncode == 0, check.stderr
    proxy = proxy_factory(cfg)
    client = proxy.client()
    assert client.set("k", "mtls") and server.client().get("k") == b"mtls"


def client_context(certs: "CertFiles", cert: "CertFiles | None") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    return context


def tls_ping(port: int, context: ssl.SSLContext) -> bytes:
    """PING over TLS; what came back, or b"" when the connection failed (the handshake, or right after it in TLS 1.3)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(b"PING\r\n")
                return recv_line(sock)
    except (ssl.SSLError, ConnectionError, OSError, AssertionError):  # AssertionError: recv_line saw EOF
        return b""


@pytest.mark.parametrize("listener", ["listen", "listen_raw"])
def test_listeners_require_client_certificates_signed_by_cacertfile(
    redis_server: RedisServer, proxy_factory: ProxyFactory, certs: "CertFiles", tmp_path: Path, listener: str
) -> None:
    from certs import make_ca_and_cert

    stranger = make_ca_and_cert(tmp_path / "stranger")  # a certificate from another CA
    tls = {"tls": True, "certfile": str(certs.cert), "keyfile": str(certs.key), "cacertfile": str(certs.ca_cert)}
    port = free_port()
    cfg = proxy_config(redis_server, admin=False)
    if listener == "listen":
        cfg["listen"] = {"addr": f"127.0.0.1:{port}", **tls}
    else:
        cfg["listen_raw"] = {"addr": f"127.0.0.1:{port}", **tls}
    proxy_factory(cfg)
    assert tls_ping(port, client_context(certs, certs)) == b"+PONG\r\n"
    assert tls_ping(port, client_context(certs, None)) == b""
    assert tls_ping(port, client_context(certs, stranger)) == b""


# -- 5. secrets in logs ---------------------------------------------------------------------------------


def test_log_messages_never_shows_secrets(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(proxy_config(redis_server, admin=False, log_messages=True))
    client = proxy.client()
    assert client.config_set("masterauth", "s3cret-x")
    assert b"s3cret-x" in client.execute_command("CONFIG", "GET", "masterauth").values()
    assert b"s3cret-x" in client.execute_command("CONFIG", "GET", "*").values()
    assert client.execute_command("ACL", "SETUSER", "u", "on", ">pw-s3cret", "~*", "+@all") == b"OK"
    assert any(b"u" in line for line in client.execute_command("ACL", "LIST"))
    assert client.execute_command("ACL", "GETUSER", "u")
    generated = client.execute_command("ACL", "GENPASS")
    pipe = client.pipeline(transaction=True)
    pipe.get("k").execute_command("CONFIG", "GET", "masterauth").get("k")
    assert b"s3cret-x" in pipe.execute()[1].values()
    assert client.get("after") is None  # logging goes on normally afterwards
    wait_until(lambda: proxy.log().rstrip().endswith("<- b'_\\r\\n'"), timeout=5)
    log = proxy.log()
    for secret in ("s3cret-x", "pw-s3cret", generated.decode()):
        assert secret not in log
    # The pw-s3cret hash as ACL GETUSER/LIST show it must not be there either.
    import hashlib

    assert hashlib.sha256(b"pw-s3cret").hexdigest() not in log
    assert "[reply redacted]" in log


# -- 6. listen_raw exposed without client certificates ----------------------------------------------


@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("127.0.0.1", False)])
def test_listen_raw_on_a_public_address_without_client_certificates_warns(
    redis_server: RedisServer, proxy_factory: ProxyFactory, host: str, warned: bool
) -> None:
    cfg = proxy_config(redis_server, admin=False, listen_raw={"addr": f"{host}:{free_port()}"})
    proxy = proxy_factory(cfg)
    assert ("not a loopback address and listen_raw.cacertfile is not set" in proxy.log()) is warned


# -- 7. max_clients, client_idle_timeout_s, tcp_keepalive_s -----------------------------------------


def test_max_clients_refuses_the_client_beyond_it(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    raw_port = free_port()
    cfg = proxy_config(redis_server, admin=False, max_clients=3, listen_raw={"addr": f"127.0.0.1:{raw_port}"})
    proxy = proxy_factory(cfg)
    wait_until(lambda: "listen_raw: listening" in proxy.log(), message="the raw listener is up")  # opened after listen
    served = [connect(proxy), connect(proxy)]
    raw = socket.create_connection(("127.0.0.1", raw_port), timeout=5)  # raw pipes count too
    for sock in (*served, raw):
        sock.sendall(b"PING\r\n")
        assert recv_line(sock) == b"+PONG\r\n"
    extra = connect(proxy)
    assert recv_line(extra) == b"-ERR max number of clients reached\r\n" and closed(extra)
    extra_raw = socket.create_connection(("127.0.0.1", raw_port), timeout=5)
    assert recv_line(extra_raw) == b"-ERR max number of clients reached\r\n" and closed(extra_raw)
    raw.close()
    time.sleep(0.2)
    again = connect(proxy)  # a slot is free again
    again.sendall(b"PING\r\n")
    assert recv_line(again) == b"+PONG\r\n"
    for sock in (*served, again):
        sock.close()


def test_idle_clients_are_closed_but_not_blocked_or_subscribed_ones(
    redis_server: RedisServer, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(proxy_config(redis_server, admin=False, client_idle_timeout_s=1))
    idle, blocked, subscriber, busy = (connect(proxy) for _ in range(4))
    idle.sendall(b"PING\r\n")
    assert recv_line(idle) == b"+PONG\r\n"
    blocked.sendall(b"BLPOP nothing 0\r\n")
    subscriber.sendall(b"SUBSCRIBE c\r\n")
    for _ in range(3):
        recv_line(subscriber)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # a client that keeps talking is not idle
        busy.sendall(b"PING\r\n")
        assert recv_line(busy) == b"+PONG\r\n"
        time.sleep(0.3)
    assert closed(idle, timeout=1)
    assert not closed(blocked, timeout=0.5) and not closed(subscriber, timeout=0.5)
    redis_server.client().rpush("nothing", "x")
    assert recv_line(blocked) == b"*2\r\n"
    for sock in (blocked, subscriber, busy):
        sock.close()


def test_keepalive_on_client_and_uplink_sockets(redis_server: RedisServer, inproc_proxy: Any) -> None:
    proxy: InProcProxy = inproc_proxy(proxy_config(redis_server, admin=False, tcp_keepalive_s=120))
    client = proxy.raw()
    client.sock.sendall(b"PING\r\n")
    assert recv_line(client.sock) == b"+PONG\r\n"

    def options() -> list[tuple[int, int, int, int]]:
        out = []
        for session in proxy.proxy.sessions:
            for transport in (session.transport, session.uplink.transport if session.uplink else None):
                assert transport is not None
                sock = transport.get_extra_info("socket")
                out.append((
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                ))
        return out

    assert proxy.run(options) == [(1, 120, 40, 3), (1, 120, 40, 3)]


def test_client_certificate_requirement_cannot_change_on_reload(
    redis_server: RedisServer, inproc_proxy: Any, certs: "CertFiles"
) -> None:
    """Whether clients must present a certificate is fixed in the live TLS context: a reload may not add or drop it."""
    from redis_proxy.controller import ControlError

    tls = {"tls": True, "certfile": str(certs.cert), "keyfile": str(certs.key)}
    cfg = proxy_config(redis_server, admin=False)
    cfg["listen"].update(tls)
    proxy: InProcProxy = inproc_proxy(cfg)
    cfg["listen"]["cacertfile"] = str(certs.ca_cert)
    proxy.rewrite_config(cfg)
    with pytest.raises(ControlError, match="listen.cacertfile cannot be added or removed on reload"):
        proxy.reload()


def test_max_clients_refusals_do_not_flood_the_log(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(proxy_config(redis_server, admin=False, max_clients=1))
    time.sleep(0.3)  # the startup probe's connection is gone
    held = connect(proxy)
    held.sendall(b"PING\r\n")
    assert recv_line(held) == b"+PONG\r\n"
    before = proxy.log().count("max_clients")
    for _ in range(20):
        extra = connect(proxy)
        assert recv_line(extra) == b"-ERR max number of clients reached\r\n" and closed(extra)
    assert proxy.log().count("max_clients") - before <= 1
    held.close()


def test_a_client_that_never_reads_stops_being_read(redis_server: RedisServer, inproc_proxy: Any) -> None:
    """The proxy's own replies (-NOAUTH here) to a client that never reads would pile up: its reading stops."""
    cfg = with_password(redis_server)
    proxy: InProcProxy = inproc_proxy(cfg)
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    def reading() -> list[bool]:
        return [session.transport.is_reading() for session in proxy.proxy.sessions if session.transport is not None]

    # A send that blocks only says the proxy is slow (a busy 2-core machine);
    # what counts is that, once blocked, the proxy has stopped reading.
    sent, state, deadline = 0, [True], time.monotonic() + 60
    while sent < 64 * 1024 * 1024 and time.monotonic() < deadline:  # 64 MiB of PING: 360 MB of -NOAUTH
        try:
            sock.sendall(b"PING\r\n" * 10000)
            sent += 60000
        except (TimeoutError, OSError):
            state = proxy.run(reading)
            if state == [False]:
                break
    assert state == [False], f"still reading a client that reads nothing after {sent} bytes"
    sock.close()
