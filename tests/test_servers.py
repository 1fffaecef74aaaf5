"""Tests of the process helpers themselves (no proxy involved)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from servers import ProxyProcess, RedisServer, free_port, proxy_config, wait_until

if TYPE_CHECKING:
    from certs import CertFiles


def test_free_port_gives_distinct_bindable_ports() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(1024 <= port <= 65535 for port in ports)


def test_two_servers_at_once(redis_factory: Callable[..., RedisServer]) -> None:
    first = redis_factory()
    second = redis_factory()
    assert first.port != second.port
    assert first.addr == f"127.0.0.1:{first.port}"

    first.client().set(b"k", b"one")
    second.client().set(b"k", b"two")
    assert first.client().get(b"k") == b"one"
    assert second.client().get(b"k") == b"two"


def test_kill_and_restart_same_port(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    other = redis_factory()
    client = server.client()
    client.set(b"k", b"v")
    port = server.port

    server.kill()
    assert not server.running
    with pytest.raises(redis.ConnectionError):
        server.client(socket_connect_timeout=1).ping()
    # The neighbour must not be affected by the crash.
    assert other.client().ping()

    server.restart()
    assert server.port == port
    # No persistence: the crash lost the data, which is what crash tests expect.
    assert server.client().get(b"k") is None
    # A client created before the crash reconnects to the new process.
    client.connection_pool.disconnect()
    assert client.ping()


def test_graceful_stop_and_start_again(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    assert server.stop() == 0
    server.start()
    assert server.client().ping()


def test_password_and_unixsocket(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory(password="s3cret", unixsocket=True)
    assert server.client().ping()
    assert server.unixsocket is not None and server.unixsocket.exists()
    assert server.unix_client().ping()
    with pytest.raises(redis.AuthenticationError):
        server.client(password=None).get(b"k")


def test_startup_failure_reports_log() -> None:
    server = RedisServer(extra_args=["--no-such-option", "x"])
    try:
        with pytest.raises(RuntimeError, match="no-such-option"):
            server.start()
    finally:
        server.close()


def test_tls_server_reachable_with_ca(
    redis_factory: Callable[..., RedisServer], certs: "CertFiles"
) -> None:
    server = redis_factory(tls=certs)
    client = server.client()
    client.set(b"k", b"tls")
    assert client.get(b"k") == b"tls"
    # Plain TCP on the TLS port must not work: the server really speaks TLS.
    with pytest.raises(redis.ConnectionError):
        server.client(ssl=False, socket_timeout=2).ping()


def test_wait_until_returns_value_and_times_out() -> None:
    values = iter([0, 0, 7])
    assert wait_until(lambda: next(values), timeout=1) == 7
    with pytest.raises(AssertionError, match="never true"):
        wait_until(lambda: False, timeout=0.1, message="never true")


# ProxyProcess is exercised against a tiny stand-in program (not a mock of
# Redis: it just binds the configured address) so these tests do not depend on
# the proxy being finished.
_FAKE_PROXY = """
import json, signal, socket, sys
cfg = json.load(open(sys.argv[sys.argv.index("-f") + 1]))
host, _, port = cfg["listen"]["addr"].rpartition(":")
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, int(port)))
srv.listen()
print("listening", cfg["listen"]["addr"], flush=True)
def on_hup(*_):
    print("reloaded", json.load(open(sys.argv[sys.argv.index("-f") + 1])).get("marker"), flush=True)
signal.signal(signal.SIGHUP, on_hup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    conn, _ = srv.accept()
    conn.close()
"""


class _FakeProxy(ProxyProcess):
    def command(self) -> list[str]:
        script = self.directory / "fake_proxy.py"
        script.write_text(_FAKE_PROXY, encoding="utf-8")
        return [sys.executable, str(script), "-f", str(self.config_path)]


def test_proxy_process_lifecycle(tmp_path: Path) -> None:
    config = proxy_config("127.0.0.1:1", admin=False)
    with _FakeProxy(config, directory=tmp_path / "p") as proxy:
        assert proxy.port is not None
        assert json.loads(proxy.config_path.read_text())["listen"] == config["listen"]
        assert "listening" in proxy.log()

        proxy.rewrite_config({**config, "marker": "second"})
        proxy.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded second" in proxy.log(), message="reload not logged")

        assert proxy.stop() == 0
        assert proxy.stop() == 0  # idempotent


def test_proxy_process_early_exit_reports_log(tmp_path: Path) -> None:
    class Crashing(ProxyProcess):
        def command(self) -> list[str]:
            return [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"]

    proxy = Crashing(proxy_config("127.0.0.1:1", admin=False), directory=tmp_path / "c")
    started = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match="boom: bad config"):
            proxy.start()
        # Early exit is detected at once, not after the 10 s timeout.
        assert time.monotonic() - started < 5
        assert proxy.stop() == 3
    finally:
        proxy.close()


def test_proxy_process_sigkill_after_timeout(tmp_path: Path) -> None:
    class Stubborn(_FakeProxy):
        def command(self) -> list[str]:
            cmd = super().command()
            script = Path(cmd[1])
            # Ignore SIGTERM to simulate a proxy that hangs on shutdown.
            script.write_text(
                _FAKE_PROXY.replace("lambda *_: sys.exit(0)", "signal.SIG_IGN"), encoding="utf-8"
            )
            return cmd

    with Stubborn(proxy_config("127.0.0.1:1", admin=False), directory=tmp_path / "s") as proxy:
        assert proxy.stop(timeout=0.5) == -signal.SIGKILL
        assert "sent SIGKILL" in proxy.log()


def test_subprocesses_are_reaped(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    assert server.proc is not None
    pid = server.proc.pid
    server.stop()
    # A reaped child no longer exists (no zombie left behind).
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
