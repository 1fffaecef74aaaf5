"""A pytest plugin (loaded with `-p pytest_outcomes`, this directory on
PYTHONPATH) that writes one JSON object per test to $COMPAT_OUTCOMES:
{"id": nodeid, "outcome": "passed|failed|error|skipped|xfailed|xpassed",
 "first": the first error line}.  It runs inside redis-py's suite's venv, so
it uses nothing but pytest.
"""

from __future__ import annotations

import json
import os
from typing import Any

_results: dict[str, dict[str, str]] = {}


def _first_line(report: Any) -> str:
    text = getattr(report, "longreprtext", "") or ""
    for line in text.splitlines():
        if line.startswith("E "):
            return line[2:].strip()
    lines = [x for x in text.splitlines() if x.strip()]
    return lines[-1].strip() if lines else ""


def pytest_runtest_logreport(report: Any) -> None:
    cur = _results.setdefault(report.nodeid, {"id": report.nodeid, "outcome": "passed", "first": ""})
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            cur["outcome"] = "xfailed" if report.skipped else "xpassed"
        elif report.failed:
            cur["outcome"] = "failed"
            cur["first"] = cur["first"] or _first_line(report)
        elif report.skipped:
            cur["outcome"] = "skipped"
    elif report.failed:  # setup or teardown
        if cur["outcome"] != "failed":
            cur["outcome"] = "error"
        cur["first"] = cur["first"] or f"[{report.when}] " + _first_line(report)
    elif report.skipped and report.when == "setup":
        cur["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get("COMPAT_OUTCOMES")
    if not path:
        return
    with open(path, "w") as f:
        for r in _results.values():
            f.write(json.dumps(r) + "\n")
