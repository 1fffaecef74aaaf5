"""The hot modules compiled with mypyc (setup.py, REDIS_PROXY_COMPILE=1) or pure Python: both variants work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import redis_proxy

ROOT = Path(__file__).resolve().parent.parent


def _compiled_in(env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", "import redis_proxy; print(','.join(redis_proxy.compiled()))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    return out.split(",") if out else []


def test_all_of_the_group_or_none_is_compiled() -> None:
    assert redis_proxy.compiled() in ([], list(redis_proxy.COMPILED_MODULES))


def test_redis_proxy_pure_imports_the_sources() -> None:
    assert _compiled_in({**os.environ, "REDIS_PROXY_PURE": "1"}) == []


def test_the_other_variant_passes_the_session_core_tests() -> None:
    """The suite runs with whatever is installed; the core's conversation tests run here with the other variant."""
    if not redis_proxy.compiled():
        pytest.skip("not compiled (REDIS_PROXY_COMPILE=1 pip install -e .): the suite itself ran the pure modules")
    env = {**os.environ, "REDIS_PROXY_PURE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/session", "tests/test_resp.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
