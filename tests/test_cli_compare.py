"""`redis-proxy compare` and the copy mode's command line, as real subprocesses against real servers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from rich.console import Console

from servers import ProxyProcess, run_cli
from test_cli_switchover import named

from redis_proxy.switchover_view import panel, result_line

Factory = Callable[..., Any]


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("compare", *args, timeout=60)


def test_identical_servers_exit_0(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(), redis_factory()
    for server in (a, b):
        server.client().set("k", "v")
        server.client(db=1).rpush("l", "x", "y")
    proxy: ProxyProcess = proxy_factory(named(a.addr, b.addr))
    result = compare("-f", str(proxy.config_path), "--to", "b")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "compared a (2 keys) with b (2 keys)" in result.stdout and ": 2 identical" in result.stdout


def test_differences_exit_1_with_examples(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(), redis_factory()
    a.client().set("only-a", "1")
    a.client().set("both", "1")
    b.client().set("both", "2")
    proxy: ProxyProcess = proxy_factory(named(a.addr, b.addr))
    result = compare("-f", str(proxy.config_path), "--to", "b")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "missing on target: 1" in result.stdout and "value mismatches: 1" in result.stdout
    assert "'only-a': missing on the target" in result.stdout
    as_json = compare("-f", str(proxy.config_path), "--to", "b", "--json")
    report = json.loads(as_json.stdout)
    assert report["missing_on_target"] == 1 and report["value_mismatches"] == 1 and report["identical"] == 0


def test_comparing_the_active_uplink_or_an_unknown_one_exits_2(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(), redis_factory()
    proxy: ProxyProcess = proxy_factory(named(a.addr, b.addr))
    same = compare("-f", str(proxy.config_path), "--to", "a")
    assert same.returncode == 2 and "is the active uplink" in same.stderr, same.stderr
    unknown = compare("-f", str(proxy.config_path), "--to", "zz")
    assert unknown.returncode == 2 and "no uplink named 'zz'" in unknown.stderr, unknown.stderr


def test_copy_mode_from_the_command_line(redis_factory: Factory, proxy_factory: Factory) -> None:
    a, b = redis_factory(), redis_factory()
    a.client().set("k", "v")
    proxy: ProxyProcess = proxy_factory(named(a.addr, b.addr))
    result = run_cli("switchover", "-f", str(proxy.config_path), "--to", "b", "--mode", "copy", "--verify-sample", "5", timeout=60)
    assert result.returncode == 0, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert any(line.endswith(" phase copy") for line in lines) and any(line.endswith(" phase cutover") for line in lines)
    assert lines[-1].startswith("result: done from=a to=b held_ms=") and "keys_copied=1 " in lines[-1], lines[-1]
    assert b.client().get("k") == b"v"


def test_the_live_panel_shows_the_scan_and_the_dirty_keys() -> None:
    status = {
        "phase": "copy", "mode": "copy", "from": "a", "to": "b", "keys_total": 1000, "keys_scanned": 250,
        "keys_copied": 240, "bytes_copied": 4096, "dirty_keys": 17, "rounds": 0, "started_at": None,
    }
    console = Console(width=100, record=True, color_system=None)
    console.print(panel(status))
    text = console.export_text()
    assert "scan 250 / ~1,000 keys (25%, approximate" in text and "dirty 17 keys" in text
    assert "copy" in text and "converge" in text and "cutover" in text
    status.update(phase="converge", rounds=3, result="done", held_ms=12.5, verify_checked=1017, verify_mismatches=0)
    assert "rounds=3" in result_line(status) and "verify_checked=1017" in result_line(status)


