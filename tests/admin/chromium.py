"""What the browser tests share: Debian's Chromium, driven by Playwright, and page helpers.

The `browser` and `page_factory` fixtures are in conftest.py.
"""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import Page, expect

CHROMIUM = "/usr/bin/chromium"
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

needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is missing: install Debian's chromium to run browser tests"
)

# Installed before any of the page's own scripts run (Playwright injects it,
# outside the page's CSP): every Content-Security-Policy violation is kept.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def csp_violations(page: Page) -> list[str]:
    found: list[str] = page.evaluate("window.__cspViolations || []")
    return found


def confirm(page: Page, yes: bool = True) -> str:
    """Answer the page's own confirmation step (buttons that hold traffic ask first); the question asked."""
    box = page.locator("#confirm")
    expect(box).to_be_visible()
    question = page.locator("#confirm-text").inner_text()
    page.locator("#confirm-yes" if yes else "#confirm-no").click()
    expect(box).to_be_hidden()
    return question
