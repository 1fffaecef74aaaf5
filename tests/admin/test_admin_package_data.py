"""The admin page's templates and static files ship in the package (a wheel, not only this checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ROOT / "redis_proxy" / "admin"


def _shipped_files() -> set[str]:
    return {
        str(path.relative_to(ADMIN))
        for folder in ("templates", "static")
        for path in (ADMIN / folder).rglob("*")
        if path.is_file()
    }


def test_package_data_declares_every_template_and_static_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["redis_proxy.admin"]
    declared = {str(path.relative_to(ADMIN)) for pattern in patterns for path in ADMIN.glob(pattern) if path.is_file()}
    files = _shipped_files()
    assert {"templates/index.html", "static/page.js", "static/vendor/uplot/uPlot.iife.min.js", "static/vendor/uplot/LICENSE"} <= files
    assert files - declared == set(), "add these to [tool.setuptools.package-data] in pyproject.toml"


def test_a_built_wheel_holds_them(tmp_path: Path) -> None:
    # A copy of what the build reads, so the checkout gets no build/ or egg-info.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "redis_proxy", source / "redis_proxy", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "out"), str(source)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    if build.returncode != 0 and "setuptools" in build.stderr and "No matching distribution" in build.stderr:
        pytest.skip("pip cannot fetch setuptools to build a wheel here")  # offline without a cache
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "out").glob("redis_proxy-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = {name for name in _shipped_files() if f"redis_proxy/admin/{name}" not in names}
    assert missing == set()
