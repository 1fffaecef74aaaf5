"""`redis-proxy switchover`: the command line that drives a running proxy's switchover.

Every test runs `python -m redis_proxy switchover` as a real subprocess (so
its output is plain lines: stdout is not a terminal), against real proxy
processes and real redis-servers.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from servers import ProxyProcess, RedisServer, free_port, proxy_config, run_cli

Factory = Callable[..., Any]


def switchover(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli("switchover", *args, timeout=timeout)


def write(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "cli-config.json"
    path.write_text(json.dumps(config))
    return str(path)


def named(a: str, b: str, **extra: Any) -> dict[str, Any]:
    """A config with uplinks a and b, on a, with an admin port."""
    config = proxy_config(a, **extra)
    config["uplinks"] = {"a": {"addr": a}, "b": {"addr": b}}
    config["uplink"] = "a"
    return config


# -- usage and config errors: exit 2 --------------------------------------------------


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, named("127.0.0.1:1", "127.0.0.1:2"))
    for args, says in [
        (["-f", path], "--to"),
        (["--to", "b"], "-f/--config"),
        (["-f", path, "--to", "b", "--max-hold-ms", "0"], "at least 1"),
        (["-f", path, "--to", "b", "--max-lag-bytes", "-1"], "negative"),
        (["-f", path, "--to", "b", "--retries", "many"], "whole number"),
        (["-f", path, "--to", "b", "--insecure", "--cacert", "x.pem"], "not allowed with"),
    ]:
        result = switchover(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert says in result.stderr, (args, result.stderr)


def test_config_problems_exit_2(tmp_path: Path) -> None:
    no_admin = named("127.0.0.1:1", "127.0.0.1:2")
    del no_admin["admin"]
    result = switchover("-f", write(tmp_path, no_admin), "--to", "b")
    assert result.returncode == 2
    assert 'the config has no "admin" section' in result.stderr

    result = switchover("-f", write(tmp_path, named("127.0.0.1:1", "127.0.0.1:2")), "--to", "c")
    assert result.returncode == 2
    assert "no uplink named 'c'" in result.stderr and "known: a, b" in result.stderr

    result = switchover("-f", str(tmp_path / "missing.json"), "--to", "b")
    assert result.returncode == 2 and "cannot read config file" in result.stderr

    # --cacert and --insecure are about an https admin API; this one is http.
    result = switchover("-f", write(tmp_path, named("127.0.0.1:1", "127.0.0.1:2")), "--to", "b", "--insecure")
    assert result.returncode == 2 and "https" in result.stderr


# -- the admin API unreachable or refusing: exit 3 -----------------------------------------


def test_admin_unreachable_exits_3(tmp_path: Path) -> None:
    # The config names an admin address nobody listens on.
    result = switchover("-f", write(tmp_path, named("127.0.0.1:1", "127.0.0.1:2")), "--to", "b")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "cannot reach the admin API at http://127.0.0.1:" in result.stderr


def test_wildcard_admin_address_connects_to_localhost(tmp_path: Path) -> None:
    config = named("127.0.0.1:1", "127.0.0.1:2")
    config["admin"]["addr"] = f"0.0.0.0:{free_port()}"
    result = switchover("-f", write(tmp_path, config), "--to", "b")
    assert result.returncode == 3
    assert "http://127.0.0.1:" in result.stderr


def test_wrong_admin_password_exits_3(redis_factory: Factory, proxy_factory: Factory, tmp_path: Path) -> None:
    a, b = redis_factory(), redis_factory()
    config = named(a.addr, b.addr)
    config["admin"]["pass"] = "right"
    proxy: ProxyProcess = proxy_factory(config)
    config["admin"]["pass"] = "wrong"  # the file the operator points at has another password
    result = switchover("-f", write(tmp_path, config), "--to", "b")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "refused the login: wrong admin password" in result.stderr
    assert "right" not in result.stderr + result.stdout and proxy.running


def test_https_admin_is_verified(redis_factory: Factory, proxy_factory: Factory, certs: Any) -> None:
    a, b = redis_factory(), redis_factory()
    config = named(a.addr, b.addr)
    config["admin"].update(tls=True, certfile=str(certs.cert), keyfile=str(certs.key))
    proxy: ProxyProcess = proxy_factory(config)
    # The admin certificate is signed by a CA the system does not know.
    result = switchover("-f", str(proxy.config_path), "--to", "b")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "cannot reach the admin API at https://127.0.0.1:" in result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr


# -- real switchovers through a real proxy process ------------------------------------------


def _diskless(redis_factory: Factory) -> RedisServer:
    # No 5 s wait for more replicas before a diskless full sync.
    server: RedisServer = redis_factory(extra_args=["--repl-diskless-sync-delay", "0"])
    return server


def test_switchover_to_a_live_uplink_is_done(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = _diskless(redis_factory), _diskless(redis_factory)
    proxy: ProxyProcess = proxy_factory(named(a.addr, b.addr))
    client = proxy.client()
    client.set("before", "switchover")

    result = switchover("-f", str(proxy.config_path), "--to", "b", "--max-hold-ms", "3000")

    assert result.returncode == 0, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0] == "switchover a -> b started"
    assert any(line.endswith(" phase preflight") for line in lines), result.stdout
    assert any(line.endswith(" phase switch") for line in lines), result.stdout
    assert lines[-1].startswith("result: done from=a to=b held_ms="), result.stdout
    assert client.get("before") == b"switchover"
    assert b.client().get("before") == b"switchover"
    info = httpx.get(f"{proxy.admin_url}/info.json").json()
    assert info["uplink_name"] == "b" and info["uplink"] == b.addr


def test_switchover_to_an_unreachable_uplink_fails(redis_factory: Factory, proxy_factory: Factory) -> None:
    a = _diskless(redis_factory)
    proxy: ProxyProcess = proxy_factory(named(a.addr, f"127.0.0.1:{free_port()}"))

    result = switchover("-f", str(proxy.config_path), "--to", "b")

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "result: failed from=a to=b" in result.stdout
    assert "\nerror: " in result.stdout, result.stdout
    assert proxy.client().ping()  # still serving, on a
    assert httpx.get(f"{proxy.admin_url}/info.json").json()["uplink_name"] == "a"


def test_https_admin_with_cacert_or_insecure(redis_factory: Factory, proxy_factory: Factory, certs: Any) -> None:
    a, b = redis_factory(), redis_factory()
    config = named(a.addr, b.addr)
    config["admin"].update(tls=True, certfile=str(certs.cert), keyfile=str(certs.key), **{"pass": "s3cret"})
    proxy: ProxyProcess = proxy_factory(config)
    # Past TLS and the password, the proxy itself answers: a is already its uplink (400: a usage error).
    for extra in (["--cacert", str(certs.ca_cert)], ["--insecure"]):
        result = switchover("-f", str(proxy.config_path), "--to", "a", *extra)
        assert result.returncode == 2, (extra, result.stdout, result.stderr)
        assert "a is already the active uplink" in result.stderr
