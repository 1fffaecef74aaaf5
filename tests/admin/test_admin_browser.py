"""The status page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from admin_client import AdminClient
from servers import RedisServer, proxy_config

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = "/tmp/admin-page.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is missing: install Debian's chromium to run browser tests"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_factory(browser: Browser) -> Iterator[Callable[..., Page]]:
    contexts: list[BrowserContext] = []

    def create(**context_options: Any) -> Page:
        context = browser.new_context(**context_options)
        contexts.append(context)
        return context.new_page()

    yield create
    for context in contexts:
        context.close()


def _console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_buttons_and_live_update_with_javascript(
    admin: AdminClient,
    redis_server: RedisServer,
    redis_factory: Callable[..., RedisServer],
    page_factory: Callable[..., Page],
) -> None:
    # Some history, so the screenshot shows a switch and counters.
    client = admin.proxy.client()
    for i in range(25):
        client.set(f"key{i}", i)
        client.get(f"key{i}")
    second = redis_factory()
    admin.proxy.rewrite_config({**admin.proxy.config, "uplink": {"addr": second.addr}})
    admin.ok("reload")

    page = page_factory(viewport={"width": 1100, "height": 900})
    errors = _console_errors(page)
    page.goto(admin.url + "/")
    state = page.locator("#state")
    expect(state).to_have_text("running")
    expect(page.locator("#live")).to_contain_text("live")  # the script is polling
    expect(page.locator("#uplink")).to_have_text(second.addr)
    expect(page.locator("#switches")).to_contain_text(redis_server.addr)

    page.get_by_role("button", name="Pause", exact=True).click()
    expect(state).to_have_text("paused", timeout=5000)
    expect(state).to_have_class("state state-paused")
    expect(page.locator("#result")).to_contain_text('pause: {"ok":true')
    assert page.url == admin.url + "/"  # fetch, not a form navigation

    # A change made elsewhere shows up without reloading the page.
    admin.ok("unpause")
    expect(state).to_have_text("running", timeout=5000)
    client.set(b"more", b"1")
    expect(page.locator("#c-commands")).to_have_text(str(admin.info()["counters"]["commands"]), timeout=5000)

    page.get_by_role("button", name="Pause", exact=True).click()
    expect(state).to_have_text("paused", timeout=5000)
    page.screenshot(path=SCREENSHOT, full_page=True)
    page.get_by_role("button", name="Unpause", exact=True).click()
    expect(state).to_have_text("running", timeout=5000)
    expect(page.locator("#result")).to_contain_text('unpause: {"ok":true')

    page.get_by_role("button", name="Reload", exact=True).click()
    expect(page.locator("#result")).to_contain_text('reload: {"ok":true', timeout=10000)
    assert admin.info()["state_str"] == "running"
    assert errors == []


def test_pause_button_without_javascript(admin: AdminClient, page_factory: Callable[..., Page]) -> None:
    page = page_factory(java_script_enabled=False)
    page.goto(admin.url + "/")
    state = page.locator("#state")
    expect(state).to_have_text("running")
    expect(page.locator("#live")).to_contain_text("JavaScript is off")

    page.get_by_role("button", name="Pause", exact=True).click()
    page.wait_for_url(re.compile(r"/\?cmd=pause&.*result="))
    expect(state).to_have_text("paused")
    expect(page.locator("#result")).to_contain_text("pause: ")
    expect(page.locator("#result")).to_have_class("result ok")
    assert admin.info()["state_str"] == "paused"

    page.get_by_role("button", name="Unpause", exact=True).click()
    page.wait_for_url(re.compile(r"/\?cmd=unpause&"))
    expect(state).to_have_text("running")
    assert admin.info()["state_str"] == "running"


def test_page_with_basic_auth(
    redis_server: RedisServer, admin_factory: Callable[..., AdminClient], page_factory: Callable[..., Page]
) -> None:
    config = proxy_config(redis_server)
    config["admin"]["pass"] = "browser-Secret-1"
    admin = admin_factory(config, auth=("x", "browser-Secret-1"))
    page = page_factory(http_credentials={"username": "ops", "password": "browser-Secret-1"})
    errors = _console_errors(page)
    page.goto(admin.url + "/")
    expect(page.locator("#live")).to_contain_text("live")  # fetch() carries the credentials too
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.locator("#state")).to_have_text("paused", timeout=5000)
    assert "browser-Secret-1" not in page.content()
    assert errors == []
