"""The status page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from admin_client import AdminClient
from chromium import confirm, console_errors, needs_chromium
from inproc import InProcProxy, inproc_proxy  # noqa: F401
from redis_proxy.switchover.status import SwitchoverStatus
from servers import RedisServer, proxy_config

SCREENSHOT = "/tmp/admin-page.png"

pytestmark = needs_chromium


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
    errors = console_errors(page)
    page.goto(admin.url + "/")
    state = page.locator("#state")
    expect(state).to_have_text("running")
    expect(page.locator("#live")).to_contain_text("live")  # the script is polling
    expect(page.locator("#uplink")).to_have_text(second.addr)
    expect(page.locator("#switches")).to_contain_text(redis_server.addr)

    page.get_by_role("button", name="Pause", exact=True).click()
    assert "Pause the proxy?" in confirm(page)
    expect(state).to_have_text("paused", timeout=5000)
    expect(state).to_have_class("state state-paused")
    expect(page.locator("#result")).to_have_text("Paused: 1 client held, nothing in flight.")
    expect(page.locator("#paused-for")).to_contain_text("paused for ", timeout=5000)
    assert page.url == admin.url + "/"  # fetch, not a form navigation

    # A change made elsewhere shows up without reloading the page.
    admin.ok("unpause")
    expect(state).to_have_text("running", timeout=5000)
    client.set(b"more", b"1")
    expect(page.locator("#c-commands")).to_have_text(str(admin.info()["counters"]["commands"]), timeout=5000)

    page.get_by_role("button", name="Pause", exact=True).click()
    confirm(page)
    expect(state).to_have_text("paused", timeout=5000)
    page.screenshot(path=SCREENSHOT, full_page=True)
    page.get_by_role("button", name="Unpause", exact=True).click()  # releasing holds nothing: no question
    expect(state).to_have_text("running", timeout=5000)
    expect(page.locator("#result")).to_have_text("Unpaused: 0 held commands released.")
    expect(page.locator("#paused-for")).to_be_hidden(timeout=5000)

    page.get_by_role("button", name="Reload", exact=True).click()
    assert "Reload the config file?" in confirm(page)
    expect(page.locator("#result")).to_have_text(
        f"Reloaded: the uplink did not change ({second.addr}).", timeout=10000
    )
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
    expect(page.locator("#result")).to_contain_text("Paused: ")  # the same sentence as with JavaScript
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
    errors = console_errors(page)
    page.goto(admin.url + "/")
    expect(page.locator("#live")).to_contain_text("live")  # fetch() carries the credentials too
    page.get_by_role("button", name="Pause", exact=True).click()
    confirm(page)
    expect(page.locator("#state")).to_have_text("paused", timeout=5000)
    assert "browser-Secret-1" not in page.content()
    assert errors == []


# -- named uplinks: the table, its Switch control and the switchover panel ------------------

FAST_SYNC = ("--repl-diskless-sync-delay", "0")  # no 5 s wait for more replicas before a full sync


def _named(redis_factory: Callable[..., RedisServer]) -> tuple[dict[str, Any], RedisServer, RedisServer]:
    a, b, r = redis_factory(extra_args=FAST_SYNC), redis_factory(), redis_factory()
    r.client().replicaof("127.0.0.1", a.port)
    config = proxy_config(a)
    config["uplinks"] = {"a": {"addr": a.addr}, "b": {"addr": b.addr}, "r": {"addr": r.addr}}
    config["uplink"] = "a"
    return config, a, b


def _row(page: Page, name: str) -> Any:
    return page.locator(f'#uplinks tr[data-uplink="{name}"]')


def test_uplinks_table_and_switch_behind_a_confirmation(
    redis_factory: Callable[..., RedisServer],
    admin_factory: Callable[..., AdminClient],
    page_factory: Callable[..., Page],
) -> None:
    config, a, b = _named(redis_factory)
    admin = admin_factory(config)
    page = page_factory(viewport={"width": 1100, "height": 1000})
    errors = console_errors(page)
    page.goto(admin.url + "/")
    expect(_row(page, "a").locator("td.active-mark")).to_have_text("active")
    expect(_row(page, "a").locator("td.addr")).to_have_text(a.addr)
    expect(_row(page, "b")).to_contain_text("yes", timeout=10000)
    # The replica's link comes up after the page loaded: the table follows by itself.
    expect(_row(page, "r")).to_contain_text("replica of a", timeout=10000)
    expect(_row(page, "r").locator("td.good", has_text="up")).to_have_count(1, timeout=10000)
    expect(page.get_by_role("button", name="Switch to a")).to_have_count(0)  # the active one has no controls
    expect(page.get_by_role("button", name="Switchover to r")).to_be_visible()
    expect(page.locator("#so-none")).to_have_text("none yet")
    expect(page.locator("#so-body")).to_be_hidden()

    # Cancelled: nothing is posted.
    page.get_by_role("button", name="Switch to b").click()
    question = confirm(page, yes=False)
    assert "Switch the proxy to uplink b" in question and b.addr in question
    page.wait_for_timeout(300)
    assert admin.info()["uplink_name"] == "a"
    expect(page.locator("#result")).to_have_text("Cancelled: nothing was sent.")

    page.get_by_role("button", name="Switch to b").click()
    confirm(page)
    expect(page.locator("#result")).to_contain_text("Switched: now on b; clients were held ", timeout=10000)
    assert admin.info()["uplink_name"] == "b"
    expect(_row(page, "b").locator("td.active-mark")).to_have_text("active", timeout=5000)
    expect(page.locator("#uplink")).to_have_text(b.addr)
    expect(page.get_by_role("button", name="Switch to a")).to_be_visible()  # rebuilt: a is no longer active
    page.screenshot(path="/tmp/admin-page-uplinks.png", full_page=True)

    # The rebuilt controls work too.
    page.get_by_role("button", name="Switch to a").click()
    confirm(page)
    expect(_row(page, "a").locator("td.active-mark")).to_have_text("active", timeout=5000)
    assert admin.info()["uplink_name"] == "a"
    assert errors == []


def test_switch_control_without_javascript(
    redis_factory: Callable[..., RedisServer],
    admin_factory: Callable[..., AdminClient],
    page_factory: Callable[..., Page],
) -> None:
    config, _, b = _named(redis_factory)
    admin = admin_factory(config)
    page = page_factory(java_script_enabled=False)
    page.goto(admin.url + "/")
    page.get_by_role("button", name="Switch to b").click()
    page.wait_for_url(re.compile(r"/\?cmd=switch&ok=1&"))
    expect(page.locator("#result")).to_contain_text("Switched: now on b")
    expect(_row(page, "b").locator("td.active-mark")).to_have_text("active")
    assert admin.info()["uplink_name"] == "b"


def test_switchover_panel_follows_the_status(
    redis_server: RedisServer, inproc_proxy: Callable[..., InProcProxy], page_factory: Callable[..., Page]
) -> None:
    proxy = inproc_proxy(proxy_config(redis_server))
    url = "http://" + proxy.proxy.addresses["admin"] + "/"
    evil = '<img src=x onerror="alert(1)">'

    def begin() -> None:
        status = SwitchoverStatus(source="a", target="b", started_at=time.time())
        status.enter("preflight")
        for i in range(12):
            status.event(f"check {i}")
        status.enter("catch-up")
        status.lag_bytes = 1234
        status.attempt = 1
        proxy.proxy.switchover_status = status  # as the engine does: a new object per switchover

    page = page_factory()
    errors = console_errors(page)
    page.goto(url)
    expect(page.locator("#so-none")).to_be_visible()
    proxy.run(begin)
    summary = page.locator("#so-summary")
    expect(summary).to_contain_text("catch-up (running)", timeout=5000)
    expect(summary).to_contain_text("a \u2192 b")
    expect(summary).to_contain_text("1234")
    expect(page.locator("#so-none")).to_be_hidden()
    events = page.locator("#so-events tr")
    expect(events).to_have_count(10)
    expect(events.last).to_contain_text("phase catch-up")
    page.screenshot(path="/tmp/admin-page-switchover.png", full_page=True)

    proxy.run(lambda: proxy.proxy.switchover_status.finish("failed", evil))
    expect(summary).to_contain_text(f"failed: {evil}", timeout=5000)  # shown as text, never run
    expect(summary).not_to_contain_text("(running)")
    # The server-rendered page (no script) says the same, escaped.
    html = httpx.get(url).text
    assert evil not in html and "failed: &lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert errors == []
