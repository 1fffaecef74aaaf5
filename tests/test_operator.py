"""Operator mistakes and process plumbing (issue 9): replicas refused, --check beside a running proxy,
relative certificate paths, one log line per event, --log-level/--log-format, --start-without-uplink,
--pidfile and the scripts.

Real processes throughout: `python -m redis_proxy` subprocesses against real redis-servers
(a replica is a real `redis-server --replicaof`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from inproc import InProcProxy, inproc_proxy  # noqa: F401
from redis_proxy.controller import ControlError
from servers import REPO_ROOT, ProxyProcess, RedisServer, free_port, proxy_config, wait_until
from test_cli import base, run_cli, write_config

Factory = Callable[..., Any]

# A text log line: ISO time, the program, the level, the message.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} redis-proxy (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def replica_of(redis_factory: Factory, master: RedisServer) -> RedisServer:
    replica: RedisServer = redis_factory(extra_args=["--replicaof", "127.0.0.1", str(master.port)])
    return replica


def log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- read-only replicas ---------------------------------------------------------------------------------------


def test_check_and_startup_refuse_a_replica_unless_allowed(redis_factory: Factory, tmp_path: Path) -> None:
    master = redis_factory()
    replica = replica_of(redis_factory, master)
    path = write_config(tmp_path, base(replica))
    expected = (
        f"uplink {replica.addr} is a replica (role slave of 127.0.0.1:{master.port}),"
        ' so every write would fail with READONLY; promote it or set "allow_replica": true'
    )
    checked = run_cli("-f", str(path), "--check")
    assert checked.returncode == 3, checked.stderr
    assert expected in checked.stderr
    assert "ok: uplink" not in checked.stdout
    # Starting is refused the same way (the exit code of an unusable uplink), even when told
    # to start without an uplink: a replica is a mistake, not an outage.
    for extra in ((), ("--start-without-uplink",)):
        started = run_cli("-f", str(path), *extra)
        assert started.returncode == 3, (extra, started.stderr)
        assert expected in started.stderr

    allowed = write_config(tmp_path, base(replica, uplink={"allow_replica": True}))
    checked = run_cli("-f", str(allowed), "--check")
    assert checked.returncode == 0, checked.stderr
    assert f"role slave of 127.0.0.1:{master.port} (read-only, allowed by allow_replica)" in checked.stdout
    # A master says so.
    checked = run_cli("-f", str(write_config(tmp_path, base(master))), "--check")
    assert checked.returncode == 0 and "role master" in checked.stdout, checked.stderr


def test_verify_and_reload_refuse_a_replica_unless_allowed(redis_factory: Factory, inproc_proxy: Factory) -> None:
    master = redis_factory()
    replica = replica_of(redis_factory, master)
    proxy: InProcProxy = inproc_proxy(proxy_config(master, admin=False, listen={"addr": "127.0.0.1:0"}))
    client = proxy.client()
    assert client.set(b"k", b"v")
    config = json.loads(json.dumps(proxy.config))
    config["uplink"] = {"addr": replica.addr}
    proxy.rewrite_config(config)
    for operation in (proxy.verify, proxy.reload):
        with pytest.raises(ControlError, match=f"uplink {replica.addr} is a replica .*READONLY.*allow_replica"):
            operation()
    assert proxy.info()["uplink"] == master.addr and proxy.info()["switches"] == []
    assert client.set(b"k", b"still-master")

    config["uplink"]["allow_replica"] = True
    proxy.rewrite_config(config)
    assert "allowed by allow_replica" in proxy.verify()
    assert proxy.reload()["switched"] is True
    assert proxy.info()["uplink"] == replica.addr


# -- --check beside a running proxy ------------------------------------------------------------------------------


def test_check_of_a_running_proxys_config_warns_about_the_address_and_checks_the_uplink(
    redis_server: RedisServer, proxy_factory: Factory
) -> None:
    proxy: ProxyProcess = proxy_factory(proxy_config(redis_server))
    result = run_cli("-f", str(proxy.config_path), "--check")
    assert result.returncode == 0, result.stderr
    for name in ("listen", "admin"):
        addr = proxy.config[name]["addr"]
        assert f"warning: {name}.addr: {addr} is already in use" in result.stderr
    assert f"ok: uplink {redis_server.addr} reachable" in result.stdout
    assert "error" not in result.stderr
    # With the uplink down it still fails, for that reason.
    redis_server.stop()
    result = run_cli("-f", str(proxy.config_path), "--check")
    assert result.returncode == 3 and "cannot connect to uplink" in result.stderr


# -- relative certificate paths ---------------------------------------------------------------------------------------


def test_relative_certificate_paths_resolve_against_the_config_file(
    redis_server: RedisServer, certs: Any, tmp_path: Path
) -> None:
    conf_dir = tmp_path / "etc"
    (conf_dir / "tls").mkdir(parents=True)
    shutil.copy(certs.cert, conf_dir / "tls" / "cert.pem")
    shutil.copy(certs.key, conf_dir / "tls" / "key.pem")
    config = base(redis_server, listen={"addr": f"127.0.0.1:{free_port()}", "tls": True,
                                        "certfile": "tls/cert.pem", "keyfile": "tls/key.pem"})
    path = conf_dir / "config.json"
    path.write_text(json.dumps(config))
    # run_cli runs in the repository root, not next to the config.
    result = run_cli("-f", str(path), "--check")
    assert result.returncode == 0, result.stderr
    assert "ok: listen TLS certificate and key" in result.stdout
    # A missing one is reported with the path that was tried.
    config["listen"]["keyfile"] = "tls/missing.pem"
    path.write_text(json.dumps(config))
    result = run_cli("-f", str(path), "--check")
    assert result.returncode == 2
    assert f"listen.keyfile: cannot read {conf_dir / 'tls' / 'missing.pem'}: No such file" in result.stderr


# -- logging -----------------------------------------------------------------------------------------------------------


def test_a_config_with_three_problems_is_three_complete_log_lines(tmp_path: Path) -> None:
    config = {"uplink": {"adr": "127.0.0.1:6379"}, "listen": {"addr": "127.0.0.1:99999"}}
    result = run_cli("-f", str(write_config(tmp_path, config)))
    assert result.returncode == 2
    lines = log_lines(result.stderr)
    assert len(lines) == 3, lines
    assert all(LOG_LINE.match(line) and " ERROR " in line for line in lines), lines
    assert 'uplink.adr: unknown key (did you mean "addr"?)' in result.stderr


def test_a_refused_reload_logs_one_complete_line_per_problem(redis_server: RedisServer, proxy_factory: Factory) -> None:
    proxy: ProxyProcess = proxy_factory(proxy_config(redis_server, admin=False))
    config = dict(proxy.config)
    config["listen"] = {"addr": f"127.0.0.1:{free_port()}"}
    config["listen_raw"] = {"addr": f"127.0.0.1:{free_port()}"}
    config["admin"] = {"addr": f"127.0.0.1:{free_port()}"}
    proxy.config_path.write_text(json.dumps(config))
    proxy.send_signal(signal.SIGHUP)
    wait_until(lambda: proxy.log().count("reload refused") == 3, message="three refusals logged")
    lines = log_lines(proxy.log())
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert proxy.running


def test_log_format_json_and_log_level(redis_server: RedisServer, proxy_factory: Factory) -> None:
    proxy: ProxyProcess = proxy_factory(proxy_config(redis_server, admin=False), extra_args=["--log-format", "json"])
    proxy.stop()
    entries = [json.loads(line) for line in log_lines(proxy.log())]
    assert entries and all({"time", "level", "message", "logger"} <= entry.keys() for entry in entries), entries
    assert any(e["level"] == "info" and "listening on" in e["message"] for e in entries), entries
    assert entries[-1]["message"] == "stopped" and entries[-1]["logger"] == "redis_proxy"

    quiet: ProxyProcess = proxy_factory(proxy_config(redis_server, admin=False), extra_args=["--log-level", "warning"])
    assert quiet.client().ping()
    quiet.stop()
    assert "listening on" not in quiet.log() and "INFO" not in quiet.log()
    assert run_cli("-f", "-", "--log-level", "loud").returncode == 2  # argparse's usage error


# -- --start-without-uplink -----------------------------------------------------------------------------------------------


def test_start_without_uplink_serves_errors_until_the_uplink_comes(
    redis_factory: Factory, proxy_factory: Factory, tmp_path: Path
) -> None:
    port = free_port()
    config = base(f"127.0.0.1:{port}")
    refused = run_cli("-f", str(write_config(tmp_path, config)))
    assert refused.returncode == 3 and "cannot connect to uplink" in refused.stderr

    proxy: ProxyProcess = proxy_factory(config, extra_args=["--start-without-uplink"])
    assert "starting without an uplink" in proxy.log() and " WARNING " in proxy.log()
    client = proxy.client()
    with pytest.raises(redis.ResponseError, match="upstream unavailable"):
        client.ping()
    redis_factory(port=port)
    assert client.ping() is True
    assert client.set(b"k", b"v") and client.get(b"k") == b"v"


# -- --pidfile --------------------------------------------------------------------------------------------------------


def test_pidfile_is_written_used_by_the_readme_reload_and_removed(
    redis_factory: Factory, proxy_factory: Factory, tmp_path: Path
) -> None:
    old, new = redis_factory(), redis_factory()
    pidfile = tmp_path / "run" / "redis-proxy.pid"
    pidfile.parent.mkdir()
    proxy: ProxyProcess = proxy_factory(proxy_config(old, admin=False), extra_args=["--pidfile", str(pidfile)])
    assert proxy.proc is not None
    wait_until(pidfile.exists, message="pid file written")
    assert pidfile.read_text() == f"{proxy.proc.pid}\n"

    # A second proxy with the same pid file refuses, and leaves the file alone.
    second = run_cli("-f", str(proxy.config_path), "--pidfile", str(pidfile))
    assert second.returncode == 1
    assert f"pid file {pidfile} names a running process (pid {proxy.proc.pid})" in second.stderr
    assert pidfile.read_text() == f"{proxy.proc.pid}\n"

    # The README's reload example, as written.
    readme = (REPO_ROOT / "README.md").read_text()
    example = re.search(r'^kill -HUP "\$\(cat (\S+)\)"', readme, re.MULTILINE)
    assert example is not None, "the README's reload example uses the pid file"
    # ...the one scripts/run.sh writes.
    assert example.group(1) == ".redis-proxy.pid"
    assert 'PIDFILE="${PIDFILE:-$PWD/.redis-proxy.pid}"' in (REPO_ROOT / "scripts" / "run.sh").read_text()
    config = dict(proxy.config)
    config["uplink"] = {"addr": new.addr}
    proxy.rewrite_config(config)
    subprocess.run(["bash", "-c", example.group(0).replace(example.group(1), str(pidfile))], check=True)
    wait_until(lambda: "switched uplink" in proxy.log(), message="reload by pid file")

    assert proxy.stop() == 0
    assert not pidfile.exists()


def test_a_stale_pidfile_is_replaced(redis_server: RedisServer, proxy_factory: Factory, tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pidfile = tmp_path / "proxy.pid"
    pidfile.write_text(f"{dead.pid}\n")
    proxy: ProxyProcess = proxy_factory(proxy_config(redis_server, admin=False), extra_args=["--pidfile", str(pidfile)])
    assert proxy.proc is not None
    wait_until(lambda: pidfile.read_text() == f"{proxy.proc.pid}\n", message="pid file rewritten")


# -- scripts --------------------------------------------------------------------------------------------------------


def test_scripts_use_the_venv_and_run_sh_cleans_up_its_redis() -> None:
    for name in ("test.sh", "run.sh"):
        script = (REPO_ROOT / "scripts" / name).read_text()
        assert "PIP_BREAK_SYSTEM_PACKAGES" not in script
        assert "-m venv .venv" in script and ".venv/bin/python" in script
    run_sh = (REPO_ROOT / "scripts" / "run.sh").read_text()
    assert "\nexec " not in run_sh and "trap stop_redis EXIT" in run_sh and "--pidfile" in run_sh
    assert ".venv/" in (REPO_ROOT / ".gitignore").read_text().splitlines()


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(
    not (REPO_ROOT / ".venv" / "bin" / "python").exists() or not all(_port_free(p) for p in (6379, 7010, 7011, 7012)),
    reason="needs the .venv scripts/test.sh makes and the quick start's ports (6379, 7010-7012) free",
)
def test_run_sh_stops_the_redis_server_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "proxy.pid"
    env = {**os.environ, "PIDFILE": str(pidfile), "REDIS_PROXY_SKIP_INSTALL": "1"}
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log_file:
        script = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until(pidfile.exists, timeout=120, message=f"proxy started by run.sh: {log_path.read_text()}")
        assert redis.Redis(port=7010, socket_timeout=5).ping()
        match = re.search(r"starting redis-server", log_path.read_text())
        assert match, log_path.read_text()
        script.send_signal(signal.SIGTERM)
        assert script.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if script.poll() is None:
            script.kill()
    assert not pidfile.exists()
    assert _port_free(6379), "the throwaway redis-server is still running"
    assert "stopping the redis-server it started" in log_path.read_text()
