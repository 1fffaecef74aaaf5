"""`redis-proxy demo`: the self-contained switchover under load, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from servers import redis_server_binary, run_cli


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("demo", *args, env=env, timeout=90)


def _demo_dirs() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("redis-proxy-demo-")}


@pytest.mark.skipif(redis_server_binary() is None, reason="the demo needs redis-server on PATH")
def test_demo_passes_and_cleans_up() -> None:
    before = _demo_dirs()
    result = demo("--clients", "4", "--seconds", "4")
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout
    for line in (
        "  clients: 4",
        "  client errors: 0",
        "  lost acknowledged writes: 0 (counters checked on b 127.0.0.1:",
        "  switchover: done (a -> b, took ",
        "  held_ms: ",
        "  longest client stall: ",
        "demo: PASS",
    ):
        assert line in out, (line, out)
    assert "result: done from=a to=b" in out  # the switchover's own result line
    operations = next(line for line in out.splitlines() if line.startswith("  operations: "))
    assert int(operations.split()[1]) > 0
    # Its temp dir (config, logs, the servers' files) is gone.
    assert _demo_dirs() - before == set()


def test_demo_without_redis_server_says_so(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # an empty directory: no redis-server there
    result = demo("--seconds", "2", env=env)
    assert result.returncode == 2
    assert "redis-server is not on PATH" in result.stderr


def test_demo_usage_errors() -> None:
    result = demo("--clients", "0")
    assert result.returncode == 2 and "from 1 to 1000" in result.stderr
