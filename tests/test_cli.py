"""The command line and the process: -f, -f -, --check, startup failures, signals, logging.

Every test runs `python -m redis_proxy` as a real subprocess against real
redis-servers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from servers import recv_line, REPO_ROOT, ProxyProcess, RedisServer, free_port, proxy_config, wait_until

ProxyFactory = Callable[..., ProxyProcess]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the proxy to completion; a proxy that starts serving instead fails the test by timing out."""
    return subprocess.run(
        [sys.executable, "-m", "redis_proxy", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=REPO_ROOT,
    )


def write_config(tmp_path: Path, config: dict[str, Any] | str) -> Path:
    path = tmp_path / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def base(server: RedisServer | str, uplink: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    config = proxy_config(server, admin=False, **extra)
    config["uplink"].update(uplink or {})
    return config


def unix_connect(path: Path, timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def test_check_prints_what_it_checked(redis_server: RedisServer, tmp_path: Path) -> None:
    config = base(redis_server)
    result = run_cli("-f", str(write_config(tmp_path, config)), "--check")
    assert result.returncode == 0, result.stderr
    assert "ok: config schema and files" in result.stdout
    assert f"ok: uplink {redis_server.addr} reachable" in result.stdout and "PING answered" in result.stdout
    # It did not start serving.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(config["listen"]["addr"].rsplit(":", 1)[1])), timeout=1).close()
    # The same through standard input.
    result = run_cli("-f", "-", "--check", stdin=json.dumps(config))
    assert result.returncode == 0 and "PING answered" in result.stdout, result.stderr


def _problem_cases() -> dict[str, tuple[Callable[[RedisServer, Callable[..., RedisServer]], Any], list[str]]]:
    wrong_pw = "Wr0ng-Upl1nk-Secret"

    def tls_listen(server: RedisServer, _: Any) -> dict[str, Any]:
        cfg = base(server)
        cfg["listen"].update(tls=True, certfile="/nonexistent/cert.pem", keyfile="/nonexistent/key.pem")
        return cfg

    def wrong_password(_: RedisServer, factory: Callable[..., RedisServer]) -> dict[str, Any]:
        server = factory(password="the-right-one")
        return base(server, uplink={"pass": wrong_pw})

    return {
        "bad json": (lambda s, f: '{"uplink": {"addr": "%s"},\n  "listen": }' % s.addr, ["invalid JSON at line 2"]),
        "unknown key": (lambda s, f: {**base(s), "listne": {"addr": "127.0.0.1:1"}}, ["listne: unknown key"]),
        "missing addr": (lambda s, f: {**base(s), "uplink": {}}, ["uplink.addr: field required"]),
        "unreadable cert": (tls_listen, ["listen.certfile: cannot read /nonexistent/cert.pem", "listen.keyfile"]),
        "tls uplink without ca": (
            lambda s, f: base(s, uplink={"tls": True}),
            ["uplink.tls: cacertfile is required when tls is true"],
        ),
        "unreachable uplink": (lambda s, f: base(f"127.0.0.1:{free_port()}"), ["cannot connect to uplink 127.0.0.1:"]),
        "wrong uplink password": (wrong_password, ["the uplink refused AUTH", "WRONGPASS"]),
        "several problems": (
            lambda s, f: {"uplink": {"adr": s.addr}, "listen": {"addr": "127.0.0.1:99999"}, "extra": 1},
            ["uplink.addr: field required", "uplink.adr: unknown key", "listen.addr: port must be", "extra: unknown key"],
        ),
    }


PROBLEMS = _problem_cases()


@pytest.mark.parametrize("case", list(PROBLEMS))
def test_rejected_config_is_reported_readably(
    case: str, redis_server: RedisServer, redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    build, expected = PROBLEMS[case]
    path = write_config(tmp_path, build(redis_server, redis_factory))
    for args in (("--check",), ()):
        result = run_cli("-f", str(path), *args)
        output = result.stdout + result.stderr
        assert result.returncode != 0, (args, output)
        assert "Traceback" not in output, output
        for text in expected:
            assert text in result.stderr, (args, text, output)
        assert "Wr0ng-Upl1nk-Secret" not in output
        if args:
            assert "ok: uplink" not in result.stdout


def test_unreachable_uplink_at_startup_is_one_readable_line(tmp_path: Path) -> None:
    port = free_port()
    config = base(f"127.0.0.1:{port}")
    result = run_cli("-f", str(write_config(tmp_path, config)))
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"cannot connect to uplink 127.0.0.1:{port}" in lines[0]


def test_config_from_stdin_serves_and_refuses_sighup_reload(redis_server: RedisServer, tmp_path: Path) -> None:
    config = base(redis_server)
    log_path = tmp_path / "stdin-proxy.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "redis_proxy", "-f", "-"],
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=tmp_path,
        )
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(config).encode())
        proc.stdin.close()
        port = int(config["listen"]["addr"].rsplit(":", 1)[1])
        client = redis.Redis(port=port, socket_timeout=5, single_connection_client=True)
        wait_until(client.ping, message="proxy with config from stdin serves")
        client.set("k", "v")
        assert redis_server.client().get("k") == b"v"

        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "standard input" in log_path.read_text(), message="reload error logged")
        log = log_path.read_text()
        assert "Traceback" not in log
        assert any("reload" in line and "ERROR" in line for line in log.splitlines()), log
        assert client.get("k") == b"v" and proc.poll() is None
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_finishes_blpop_in_flight_and_removes_unix_socket(
    redis_server: RedisServer, proxy_factory: ProxyFactory, sock_dir: Path
) -> None:
    path = sock_dir / "proxy.sock"
    proxy = proxy_factory(base(redis_server, listen={"addr": str(path), "network": "unix"}))
    busy, idle = unix_connect(path), unix_connect(path)
    for sock in (busy, idle):
        sock.sendall(b"PING\r\n")
        assert recv_line(sock) == b"+PONG\r\n"
    busy.sendall(b"*3\r\n$5\r\nBLPOP\r\n$5\r\nempty\r\n$1\r\n1\r\n")
    direct = redis_server.client()
    wait_until(lambda: any(c["cmd"] == "blpop" for c in direct.client_list()), message="BLPOP reached redis")

    proxy.send_signal(signal.SIGTERM)

    def refuses() -> bool:
        try:
            unix_connect(path, timeout=0.5).close()
        except OSError:
            return True
        return False

    wait_until(refuses, message="proxy stops accepting")
    assert read_to_eof(busy) == b"*-1\r\n"  # the BLPOP timed out normally, then the proxy closed
    assert read_to_eof(idle) == b""
    assert proxy.proc is not None and proxy.proc.wait(timeout=15) == 0
    assert not path.exists()
    assert "Traceback" not in proxy.log()
    busy.close()
    idle.close()


def test_sigint_finishes_debug_sleep_in_flight(redis_server: RedisServer, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(base(redis_server))
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    client.sendall(b"PING\r\n")
    assert recv_line(client) == b"+PONG\r\n"
    client.sendall(b"DEBUG SLEEP 1\r\n")

    def sleeping() -> bool:
        with socket.create_connection(("127.0.0.1", redis_server.port), timeout=1) as probe:
            probe.settimeout(0.3)
            probe.sendall(b"PING\r\n")
            try:
                probe.recv(10)
            except TimeoutError:
                return True
            return False

    wait_until(sleeping, message="DEBUG SLEEP reached redis")
    proxy.send_signal(signal.SIGINT)
    assert read_to_eof(client) == b"+OK\r\n"
    assert proxy.proc is not None and proxy.proc.wait(timeout=15) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    client.close()


def test_log_messages_shows_traffic_but_never_passwords(
    redis_factory: Callable[..., RedisServer], proxy_factory: ProxyFactory
) -> None:
    server = redis_factory(password="upl1nk-s3cret")
    config = base(server, uplink={"pass": "upl1nk-s3cret"}, listen={"pass": "c1ient-s3cret"})
    proxy = proxy_factory({**config, "log_messages": True})
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(b"AUTH wr0ng-s3cret\r\n")
    assert recv_line(sock).startswith(b"-WRONGPASS")
    sock.sendall(b"*2\r\n$4\r\nauth\r\n$13\r\nc1ient-s3cret\r\n")
    assert recv_line(sock) == b"+OK\r\n"
    sock.sendall(b"AUTH default c1ient-s3cret\r\n")
    assert recv_line(sock) == b"+OK\r\n"
    sock.close()
    r3 = proxy.client(protocol=3, username="default", password="c1ient-s3cret")
    assert r3.set("logkey", "logvalue-123") and r3.get("logkey") == b"logvalue-123"
    wait_until(lambda: proxy.log().count("logvalue-123") >= 2, message="command and reply logged")
    log = proxy.log()
    assert "logkey" in log and "GET" in log.upper()
    assert any("<-" in line and "logvalue-123" in line for line in log.splitlines()), log
    assert "s3cret" not in log, log


def test_log_messages_shows_replies_the_proxy_answers_itself(
    redis_server: RedisServer, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory({**base(redis_server), "log_messages": True})
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(b"MULTI\r\nCLIENT REPLY ON\r\nDISCARD\r\nAUTH nopass\r\n")
    assert recv_line(sock) == b"+OK\r\n"
    assert recv_line(sock).startswith(b"-ERR CLIENT REPLY inside MULTI is not supported")
    assert recv_line(sock) == b"+OK\r\n"
    assert recv_line(sock).startswith(b"-ERR AUTH <password> called without any password")
    sock.close()
    wait_until(lambda: "-> AUTH" in proxy.log(), message="commands logged")

    def replies_logged() -> str:
        return "\n".join(line for line in proxy.log().splitlines() if "<-" in line)

    wait_until(
        lambda: "not supported" in replies_logged() and "without any password" in replies_logged(),
        timeout=2,
        message="the proxy's own error replies logged",
    )
