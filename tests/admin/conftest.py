"""Fixtures for the admin app tests: a real redis-server, a real proxy, an HTTP client."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Like tests/conftest.py does for tests/: make `from admin_client import ...`
# work whatever the pytest import mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from admin_client import AdminClient  # noqa: E402
from chromium import CHROMIUM, CHROMIUM_ARGS, RECORD_CSP_VIOLATIONS  # noqa: E402
from servers import ProxyProcess, RedisServer, proxy_config  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page


@pytest.fixture
def admin_factory(proxy_factory: Callable[..., ProxyProcess]) -> Iterator[Callable[..., AdminClient]]:
    """Start a proxy from a config dict and return an AdminClient for it.

    ``admin_factory(config, auth=..., verify=..., **proxy_kwargs)``.
    """
    clients: list[AdminClient] = []

    def create(
        config: Mapping[str, Any],
        *,
        auth: tuple[str, str] | None = None,
        verify: Any = True,
        **kwargs: Any,
    ) -> AdminClient:
        client = AdminClient(proxy_factory(config, **kwargs), auth=auth, verify=verify)
        clients.append(client)
        return client

    yield create
    for client in clients:
        client.close()


@pytest.fixture
def admin(redis_server: RedisServer, admin_factory: Callable[..., AdminClient]) -> AdminClient:
    """A proxy in front of a plain redis-server, with its admin app on a free port."""
    return admin_factory(proxy_config(redis_server))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (the browser tests are skipped without it: chromium.needs_chromium)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_factory(browser: Browser) -> Iterator[Callable[..., Page]]:
    """New pages, each in its own browser context (its own cookies and cached credentials)."""
    contexts: list[BrowserContext] = []

    def create(**context_options: Any) -> Page:
        context = browser.new_context(**context_options)
        context.add_init_script(RECORD_CSP_VIOLATIONS)
        contexts.append(context)
        return context.new_page()

    yield create
    for context in contexts:
        context.close()
