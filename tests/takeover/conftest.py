"""Fixtures for takeover tests: a proxy started with a pid file (so it has a control socket), and taking it over."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from servers import ProxyProcess, wait_until

Start = Callable[..., ProxyProcess]


@pytest.fixture
def run_dir(sock_dir: Path) -> Path:
    """Where the pid file and the control socket live: a short path (unix socket paths are limited)."""
    return sock_dir


@pytest.fixture
def start_proxy(proxy_factory: Start, run_dir: Path) -> Start:
    """Start a proxy with `--pidfile RUN_DIR/proxy.pid` (its control socket: RUN_DIR/proxy.control)."""

    def start(config: Mapping[str, Any], *args: str, **kwargs: Any) -> ProxyProcess:
        return proxy_factory(config, extra_args=["--pidfile", str(run_dir / "proxy.pid"), *args], **kwargs)

    return start


@pytest.fixture
def take_over(proxy_factory: Start, run_dir: Path) -> Callable[..., ProxyProcess]:
    """Run `redis-proxy --takeover` with `config`; returns it once it owns the pid file (the old one may still drain)."""

    def take(config: Mapping[str, Any], **kwargs: Any) -> ProxyProcess:
        new = proxy_factory(config, start=False, extra_args=["--pidfile", str(run_dir / "proxy.pid"), "--takeover"], **kwargs)
        new.start(wait_admin=False)  # the listen address answers already: the old process's
        assert new.proc is not None
        pid = str(new.proc.pid)
        wait_until(
            lambda: new.proc is not None and (new.proc.poll() is not None or _read(run_dir / "proxy.pid") == pid),
            timeout=20,
            message=f"the new process (pid {pid}) never wrote the pid file; its log:\n{new.log()}",
        )
        return new

    return take


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
