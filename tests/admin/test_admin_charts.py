"""The status page's charts in a real headless Chromium: uPlot draws history.json and keeps drawing it."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from admin_client import AdminClient
from chromium import confirm, console_errors, csp_violations, needs_chromium
from servers import RedisServer, proxy_config, wait_until

pytestmark = needs_chromium

CHARTS = ("chart-ops", "chart-p99", "chart-clients", "chart-held")


@pytest.fixture
def traffic(admin: AdminClient) -> Iterator[None]:
    """SET and GET through the proxy, one connection, for as long as the test runs."""
    client = admin.proxy.client()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                client.set(b"chart", b"1")
                client.get(b"chart")
            except Exception:
                if not stop.is_set():
                    raise

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    yield
    stop.set()
    worker.join(10)


def _points(page: Page, chart: str) -> int:
    return int(page.locator(f"#{chart}").get_attribute("data-points") or 0)


def _pixels(page: Page, chart: str) -> str:
    return str(page.evaluate(f"document.querySelector('#{chart} canvas').toDataURL()"))


def _keep(page: Page, tmp_path: Path, name: str) -> None:
    """A screenshot in the test's tmp dir, and a copy in /tmp to look at after a run."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    shutil.copy(path, Path("/tmp") / f"admin-{name}")


def _number(page: Page, selector: str, attribute: str | None = None) -> float:
    locator = page.locator(selector)
    text = locator.get_attribute(attribute) if attribute else locator.text_content()
    try:
        return float(text or "nan")
    except ValueError:
        return float("nan")  # "\u2014": no value yet


def _until(check: Callable[[], bool], what: str) -> None:
    # Polled from here: Playwright's wait_for_function evaluates a string, which
    # the page's CSP (no 'unsafe-eval') rightly refuses.
    wait_until(check, timeout=5.0, interval=0.1, message=what)


def _wait_for_charts(page: Page) -> None:
    for chart in CHARTS:
        canvas = page.locator(f"#{chart} canvas")
        expect(canvas).to_have_count(1)
        box = canvas.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50, (chart, box)
        _until(lambda: _number(page, f"#{chart}", "data-points") > 0, f"{chart} has points")


def test_charts_render_update_and_mark_a_pause(
    admin: AdminClient, traffic: None, page_factory: Callable[..., Page], tmp_path: Path
) -> None:
    page = page_factory(viewport={"width": 1100, "height": 1000})
    errors = console_errors(page)
    page.goto(admin.url + "/")
    _wait_for_charts(page)

    # They update: more points, other pixels, and the newest ops/s is the traffic's.
    before_points, before_pixels = _points(page, "chart-ops"), _pixels(page, "chart-ops")
    _until(lambda: _points(page, "chart-ops") >= before_points + 2, "two more points")
    assert _pixels(page, "chart-ops") != before_pixels
    _until(lambda: _number(page, "#chart-ops-now") > 0, "ops/s shown > 0")
    _until(lambda: _number(page, "#chart-p99-now") > 0, "p99 shown > 0")
    expect(page.locator("#chart-clients-now")).to_have_text("1")

    # A pause through the page: asked first, said in a sentence, marked on the charts.
    assert page.locator("#chart-ops").get_attribute("data-marks") == "0"
    page.get_by_role("button", name="Pause", exact=True).click()
    assert admin.info()["state_str"] == "running"  # nothing sent before the answer
    confirm(page)
    expect(page.locator("#result")).to_have_text(
        # The traffic's command is in flight, or already done: both are honest.
        re.compile(r"^Paus(ed|ing): 1 client held, (nothing in flight|waiting for 1 command in flight)\.$")
    )
    expect(page.locator("#state")).to_have_text("paused", timeout=5000)
    expect(page.locator("#paused-for")).to_contain_text("paused for ", timeout=5000)
    _until(lambda: _number(page, "#chart-ops", "data-marks") >= 1, "the pause marked")
    _until(lambda: _number(page, "#chart-held-now") >= 1, "the held command charted")
    _keep(page, tmp_path, "charts-paused.png")

    page.get_by_role("button", name="Unpause", exact=True).click()
    expect(page.locator("#result")).to_have_text(re.compile(r"^Unpaused: 1 held command released\.$"))
    expect(page.locator("#paused-for")).to_be_hidden(timeout=5000)
    _until(lambda: _number(page, "#chart-ops", "data-marks") >= 2, "the unpause marked")
    _keep(page, tmp_path, "charts-unpaused.png")
    assert errors == []
    assert csp_violations(page) == []


def test_page_opened_with_credentials_in_the_url(
    redis_server: RedisServer, admin_factory: Callable[..., AdminClient], page_factory: Callable[..., Page], tmp_path: Path
) -> None:
    config = proxy_config(redis_server)
    config["admin"]["pass"] = "url-Secret-1"
    admin = admin_factory(config, auth=("ops", "url-Secret-1"))
    admin.proxy.client().set(b"k", b"v")
    host = admin.url.split("://", 1)[1]
    page = page_factory(viewport={"width": 1100, "height": 900})  # no http_credentials: only those in the URL
    errors = console_errors(page)
    page.goto(f"http://ops:url-Secret-1@{host}/")
    # Every fetch() works: info.json (the live line), history.json (the charts), and a command.
    expect(page.locator("#live")).to_contain_text("live \u00b7 updated", timeout=5000)
    _wait_for_charts(page)
    expect(page.locator("#version")).to_contain_text("redis-proxy ")
    expect(page.locator("#config-path")).to_have_text(str(admin.proxy.config_path))
    page.get_by_role("button", name="Pause", exact=True).click()
    confirm(page)
    expect(page.locator("#result")).to_have_text("Paused: 1 client held, nothing in flight.")
    expect(page.locator("#state")).to_have_text("paused", timeout=5000)
    _keep(page, tmp_path, "charts-credentials-in-url.png")
    assert "url-Secret-1" not in page.content()
    assert errors == []
    assert csp_violations(page) == []
