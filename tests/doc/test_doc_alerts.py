"""doc/prometheus/alerts.yml: valid for promtool, and its unit tests (alerts_test.yml) pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS_DOC = Path(__file__).resolve().parents[2] / "doc" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not on PATH (Debian's `prometheus` package ships it: apt-get install prometheus)",
)


def promtool(*args: str) -> str:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS_DOC, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    assert "SUCCESS: 5 rules found" in promtool("check", "rules", "alerts.yml")


@needs_promtool
def test_promtool_runs_the_rules_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")
