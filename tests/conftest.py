"""Shared fixtures: real redis-server and redis-proxy processes.

Helpers live in ``tests/servers.py``; tests import them as ``from servers
import ...`` (this directory is put on sys.path below, whatever the pytest
import mode).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))

from servers import ProxyProcess, RedisServer, redis_server_binary, short_tmp_dir  # noqa: E402

if TYPE_CHECKING:
    from certs import CertFiles

# Tests that use one of these fixtures need a real redis-server.
_NEEDS_REDIS = frozenset({"redis_server", "redis_factory", "proxy_factory"})
_NO_REDIS_REASON = (
    "redis-server is not on PATH: integration tests need a real Redis "
    "(install it with `apt-get install redis-server`, or run `bash scripts/test.sh`)"
)

# Proxies started by proxy_factory for the current test, so a failing test's
# report can include their logs.
_PROXIES_KEY = pytest.StashKey[list[ProxyProcess]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if redis_server_binary() is not None:
        return
    skip = pytest.mark.skip(reason=_NO_REDIS_REASON)
    for item in items:
        if _NEEDS_REDIS.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # Attach proxy logs to the failure report itself: output printed during
    # teardown would not be shown for a test that failed in its call phase.
    if report.failed and report.when in ("setup", "call"):
        for index, proxy in enumerate(item.stash.get(_PROXIES_KEY, [])):
            report.sections.append((f"redis-proxy #{index} log ({proxy.addr})", proxy.log()))
    return report


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start RedisServer(**kwargs) instances; all are stopped at teardown."""
    servers: list[RedisServer] = []

    def start(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def redis_server(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    """A started plain redis-server on a free port."""
    return redis_factory()


@pytest.fixture
def proxy_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., ProxyProcess]]:
    """Create ProxyProcess instances from config dicts; all are stopped at teardown.

    ``proxy_factory(config, start=True, **kwargs)``; kwargs go to ProxyProcess.
    Logs of every proxy are added to the report of a failing test.
    """
    proxies: list[ProxyProcess] = []
    request.node.stash[_PROXIES_KEY] = proxies

    def create(config: Mapping[str, Any], *, start: bool = True, **kwargs: Any) -> ProxyProcess:
        kwargs.setdefault("directory", tmp_path / f"proxy{len(proxies)}")
        proxy = ProxyProcess(config, **kwargs)
        proxies.append(proxy)
        return proxy.start() if start else proxy

    yield create
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short-path tmp dir for unix sockets (tmp_path may exceed the ~107 byte limit)."""
    directory = short_tmp_dir("sock-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def certs(tmp_path: Path) -> "CertFiles":
    """A CA plus a server cert for localhost/127.0.0.1 signed by it (tests/certs.py)."""
    # Imported here so the rest of the suite works while certs.py does not exist.
    try:
        from certs import make_ca_and_cert
    except ModuleNotFoundError as exc:
        if exc.name != "certs":
            raise
        pytest.skip("tests/certs.py is not available yet")
    directory = tmp_path / "certs"
    directory.mkdir()
    return make_ca_and_cert(directory)
