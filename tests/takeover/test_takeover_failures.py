"""Takeovers that fail or refuse leave the old process serving, unpaused; what cannot move stays with the old process."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from redis_proxy.takeover.wire import Channel
from resp_client import Conn
from servers import REPO_ROOT, ProxyProcess, RedisServer, free_port, proxy_config, wait_until


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _takeover_cli(config_path: Path, run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redis_proxy", "-f", str(config_path), "--pidfile", str(run_dir / "proxy.pid"), "--takeover"],
        capture_output=True, text=True, timeout=60, env=_env(), cwd=REPO_ROOT,
    )


def _state(proxy: ProxyProcess) -> dict[str, Any]:
    info: dict[str, Any] = httpx.get(f"{proxy.admin_url}/info.json", timeout=5).json()
    return info


def _serving(proxy: ProxyProcess, conn: Conn) -> None:
    """The old process serves: the old connection, a new one, the admin app; and it is not paused."""
    assert conn.call("INCR", "still") >= 1 and conn.same_socket()
    assert proxy.host is not None and proxy.port is not None
    fresh = Conn(proxy.host, proxy.port)
    assert fresh.call("PING") == b"PONG"
    fresh.close()
    state = _state(proxy)
    assert state["state_str"] == "running" and state["waiting_requests"] == 0, state


def test_a_config_that_cannot_carry_on_is_refused_before_anything_pauses(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], run_dir: Path, tmp_path: Path,
) -> None:
    config = proxy_config(redis_server)
    old = start_proxy(config)
    assert old.host is not None and old.port is not None
    conn = Conn(old.host, old.port)
    other = dict(config, listen={"addr": f"127.0.0.1:{free_port()}"})
    path = tmp_path / "other.json"
    path.write_text(__import__("json").dumps(other))
    result = _takeover_cli(path, run_dir)
    assert result.returncode == 1
    assert "takeover failed: listen: the running proxy listens on" in result.stderr, result.stderr
    assert "a takeover keeps the listening sockets" in result.stderr
    _serving(old, conn)
    assert _state(old)["paused_seconds"] == 0  # it never paused
    assert (run_dir / "proxy.pid").read_text().strip() == str(old.proc.pid if old.proc else "")


def test_takeover_without_a_running_proxy_says_so(redis_server: RedisServer, run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(__import__("json").dumps(proxy_config(redis_server)))
    result = _takeover_cli(path, run_dir)
    assert result.returncode == 1
    assert "cannot connect to the control socket" in result.stderr and "is the proxy running" in result.stderr, result.stderr


async def _take_and_walk_away(path: str) -> dict[str, Any]:
    """A new process that receives everything and dies before saying "ready" (its descriptors close with it)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(path)
    channel = Channel(sock)
    await channel.send({"op": "hello", "pid": os.getpid(), "version": "test", "format": 1}, loop.time() + 5)
    info, _ = await channel.receive(loop.time() + 5)
    await channel.send({"op": "take"}, loop.time() + 5)
    document, fds = await channel.receive(loop.time() + 10)
    for fd in fds:
        os.close(fd)
    channel.close()
    return {"info": info, "sessions": len(document["sessions"]), "fds": len(fds)}


def test_a_new_process_that_dies_mid_takeover_leaves_the_old_one_serving(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], take_over: Callable[..., ProxyProcess],
    run_dir: Path,
) -> None:
    config = proxy_config(redis_server)
    old = start_proxy(config)
    assert old.host is not None and old.port is not None
    conn = Conn(old.host, old.port)
    assert conn.call("SET", "k", "before") == b"OK"
    subscriber = Conn(old.host, old.port)
    assert subscriber.call("SUBSCRIBE", "ch") == [b"subscribe", b"ch", 1]
    walked = asyncio.run(_take_and_walk_away(str(run_dir / "proxy.control")))
    assert walked["sessions"] == 2 and walked["fds"] == 2 + 2  # listen + admin, two clients
    # Rolled back: listening again, the clients' connections intact and unpaused.
    wait_until(lambda: _state(old)["state_str"] == "running")
    _serving(old, conn)
    assert conn.call("GET", "k") == b"before"
    publisher = Conn(old.host, old.port)
    assert publisher.call("PUBLISH", "ch", "after") == 1
    assert subscriber.read() == [b"message", b"ch", b"after"]
    assert "takeover by pid" in old.log() and "keeps serving" in old.log()
    # The control socket still works: a real takeover now succeeds.
    new = take_over(config)
    assert old.proc is not None and old.proc.wait(timeout=20) == 0
    assert conn.call("GET", "k") == b"before" and conn.same_socket()
    assert new.running


def test_tls_clients_stay_with_the_old_process_until_the_drain_bound(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], take_over: Callable[..., ProxyProcess],
    certs: Any,
) -> None:
    tls = {"tls": True, "certfile": str(certs.cert), "keyfile": str(certs.key)}
    config = proxy_config(redis_server, listen={"addr": f"127.0.0.1:{free_port()}", **tls}, takeover_drain_s=2)
    old = start_proxy(config)
    assert old.port is not None
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    raw = socket.create_connection(("127.0.0.1", old.port), timeout=10)
    client = context.wrap_socket(raw, server_hostname="localhost")
    client.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert client.recv(100) == b"+PONG\r\n"
    new = take_over(config)
    # The old process still serves its TLS client, unpaused...
    client.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\ntls\r\n$3\r\nold\r\n")
    assert client.recv(100) == b"+OK\r\n"
    assert old.running and "1 TLS" in old.log()
    # ...while new TLS connections reach the new process.
    fresh = context.wrap_socket(socket.create_connection(("127.0.0.1", old.port), timeout=10), server_hostname="localhost")
    fresh.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\ntls\r\n")
    assert fresh.recv(100) == b"$3\r\nold\r\n"
    # After takeover_drain_s the old process closes what stayed and exits 0.
    started = time.monotonic()
    assert old.proc is not None and old.proc.wait(timeout=20) == 0
    assert time.monotonic() - started < 10
    assert client.recv(100) == b""
    assert new.running


def test_detach_returns_once_the_new_process_serves(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], run_dir: Path,
) -> None:
    """`--takeover --detach`: what systemd's ExecReload runs; it ends, the new proxy runs on."""
    config = proxy_config(redis_server)
    old = start_proxy(config)
    assert old.host is not None and old.port is not None
    conn = Conn(old.host, old.port)
    assert conn.call("SET", "k", "v") == b"OK"
    log = run_dir / "detach.log"
    with open(log, "wb") as out:  # not a pipe: the new process keeps it open (as it keeps the journal's)
        result = subprocess.run(
            [sys.executable, "-m", "redis_proxy", "-f", str(old.config_path), "--pidfile", str(run_dir / "proxy.pid"),
             "--takeover", "--detach"],
            stdout=out, stderr=out, timeout=60, env=_env(), cwd=REPO_ROOT,
        )
    new_pid = int((run_dir / "proxy.pid").read_text())
    try:
        assert result.returncode == 0, log.read_text()
        assert f"takeover done: pid {new_pid} serves" in log.read_text()
        assert old.proc is not None and old.proc.wait(timeout=20) == 0
        assert conn.call("GET", "k") == b"v" and conn.same_socket()
    finally:
        os.kill(new_pid, 15)
    wait_until(lambda: not (run_dir / "proxy.pid").exists(), message="the detached proxy stopped on SIGTERM")


def test_systemd_hears_the_new_main_pid_before_the_old_process_exits(
    redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess], take_over: Callable[..., ProxyProcess],
    sock_dir: Path,
) -> None:
    """Under Type=notify with NotifyAccess=all (packaging/systemd/takeover.conf): MAINPID moves, no STOPPING=1."""
    path = sock_dir / "notify.sock"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(path))
    systemd.settimeout(10)
    env = {"NOTIFY_SOCKET": str(path)}
    config = proxy_config(redis_server)
    old = start_proxy(config, env=env)
    assert old.proc is not None and old.host is not None and old.port is not None
    conn = Conn(old.host, old.port)

    def heard() -> list[dict[str, str]]:
        out = []
        systemd.settimeout(0.2)
        while True:
            try:
                data = systemd.recv(4096).decode()
            except TimeoutError:
                return out
            out.append(dict(line.split("=", 1) for line in data.split("\n")))

    assert any(m.get("READY") == "1" and m.get("MAINPID") == str(old.proc.pid) for m in wait_until(heard))
    new = take_over(config, env=env)
    assert new.proc is not None
    assert old.proc.wait(timeout=20) == 0
    messages = heard()
    mainpids = [m["MAINPID"] for m in messages if "MAINPID" in m]
    assert mainpids and mainpids[0] == str(new.proc.pid), messages  # before the old process exited: first
    assert any(m.get("READY") == "1" for m in messages)
    assert not any("STOPPING" in m for m in messages), messages  # the unit goes on
    assert conn.call("PING") == b"PONG"
    systemd.close()

