"""constraints.txt pins every dependency the project declares, so an install with -c is reproducible."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503: PyYAML, pyyaml and py_yaml are one project


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line!r}"
            out[normalized(name)] = version
    return out


def test_every_declared_dependency_is_pinned() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"]) + [d for extra in project["optional-dependencies"].values() for d in extra]
    names = {normalized(re.split(r"[\[<>=!~;\s]", spec, maxsplit=1)[0]) for spec in declared}
    assert names - pins().keys() == set()
    assert "redis-proxy" not in pins()  # the project itself is what is installed, not a constraint


def test_the_install_scripts_use_it() -> None:
    for script in ("scripts/test.sh", "scripts/run.sh"):
        assert "-c constraints.txt" in (REPO_ROOT / script).read_text(), script
