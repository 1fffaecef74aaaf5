"""sd_notify: the datagrams systemd would receive, on a real AF_UNIX socket this test binds.

The end-to-end test runs the proxy as a real subprocess with NOTIFY_SOCKET
pointing at the test's socket, as systemd would start it under Type=notify.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redis_proxy import systemd_notify
from servers import ProxyProcess, RedisServer, proxy_config

ProxyFactory = Callable[..., ProxyProcess]


def receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    return sock


def fields(sock: socket.socket) -> dict[str, str]:
    """The next datagram, as systemd parses it: one KEY=value per line."""
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


@pytest.fixture
def notify_socket(sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = sock_dir / "notify.sock"
    sock = receiver(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd_notify.notify("READY=1") is False


def test_ready_to_a_path(notify_socket: socket.socket) -> None:
    assert systemd_notify.notify_ready({"listen": "127.0.0.1:7010", "admin": "127.0.0.1:7012"})
    got = fields(notify_socket)
    assert got["READY"] == "1"
    assert got["MAINPID"] == str(os.getpid())
    assert got["STATUS"] == "serving: listen 127.0.0.1:7010, admin 127.0.0.1:7012"


def test_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    # systemd writes an abstract socket name with a leading "@"; on the wire it is a leading NUL.
    name = f"redis-proxy-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = receiver(b"\0" + name.encode())
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd_notify.notify_stopping()
        assert fields(sock)["STOPPING"] == "1"
    finally:
        sock.close()


def test_an_unreachable_socket_is_not_an_error(sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_dir / "nobody-listens.sock"))
    assert systemd_notify.notify("READY=1") is False


def test_reload_notice_reports_the_outcome(notify_socket: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    with systemd_notify.reload_notice():
        pass
    starting = fields(notify_socket)
    assert starting["RELOADING"] == "1"
    assert before <= int(starting["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert fields(notify_socket) == {"READY": "1", "STATUS": "reload done; serving"}

    with pytest.raises(ValueError), systemd_notify.reload_notice():
        raise ValueError("listen.addr cannot change on reload\nsecond line")
    assert fields(notify_socket)["RELOADING"] == "1"
    refused = fields(notify_socket)  # one line: a newline would have started another field
    assert refused == {
        "READY": "1",
        "STATUS": "reload refused: listen.addr cannot change on reload; serving with the previous config",
    }


def test_the_proxy_under_type_notify(
    redis_server: RedisServer, proxy_factory: ProxyFactory, notify_socket: socket.socket
) -> None:
    proxy = proxy_factory(proxy_config(redis_server), start=False, env={"NOTIFY_SOCKET": os.environ["NOTIFY_SOCKET"]})
    # start() blocks until the ports answer; READY=1 is awaited meanwhile, so
    # the ports are probed right when it arrives, not after start() saw them.
    starter = threading.Thread(target=proxy.start)
    starter.start()
    try:
        ready = fields(notify_socket)
        for section in ("listen", "admin"):
            host, port = proxy.config[section]["addr"].rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=1).close()
    finally:
        starter.join()
    assert ready["READY"] == "1"
    assert proxy.proc is not None and ready["MAINPID"] == str(proxy.proc.pid)
    assert proxy.addr in ready["STATUS"]

    proxy.send_signal(signal.SIGHUP)
    assert fields(notify_socket)["RELOADING"] == "1"
    assert fields(notify_socket) == {"READY": "1", "STATUS": "reload done; serving"}

    # A refused reload: still ready (it serves with the old config), and STATUS says so.
    broken = dict(proxy.config, listen={"addr": "127.0.0.1:1"})
    proxy.config_path.write_text(json.dumps(broken))
    proxy.send_signal(signal.SIGHUP)
    assert fields(notify_socket)["RELOADING"] == "1"
    refused = fields(notify_socket)
    assert refused["READY"] == "1" and refused["STATUS"].startswith("reload refused: listen.addr cannot change")
    assert proxy.client().ping()

    assert proxy.stop(signal.SIGTERM) == 0
    assert fields(notify_socket)["STOPPING"] == "1"
