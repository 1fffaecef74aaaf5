"""packaging/systemd/redis-proxy.service, checked by systemd's own parser (`systemd-analyze verify`).

verify also checks that ExecStart's binary exists and is executable; the unit
names where the install guide puts it (/opt/redis-proxy/bin/redis-proxy), so
the test checks a copy whose ExecStart points at a stand-in executable.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIT = REPO_ROOT / "packaging" / "systemd" / "redis-proxy.service"
INSTALLED = "/opt/redis-proxy/bin/redis-proxy"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: the systemd package); the unit is only checked where it is",
)


def service_section() -> dict[str, list[str]]:
    """[Service] as systemd reads it: a key may repeat (SystemCallFilter=), comments are dropped."""
    values: dict[str, list[str]] = {}
    section = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def copy_for_verify(tmp_path: Path, text: str | None = None) -> Path:
    stand_in = tmp_path / "redis-proxy"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text((text if text is not None else UNIT.read_text()).replace(INSTALLED, str(stand_in)))
    return unit


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30, cwd=unit.parent
    )


def test_the_unit_says_what_the_proxy_does() -> None:
    service = service_section()
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["ExecStart"][0].startswith(INSTALLED + " -f /etc/redis-proxy/config.json")
    assert "--pidfile /run/redis-proxy/" in service["ExecStart"][0] and service["RuntimeDirectory"] == ["redis-proxy"]
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }.items():
        assert service[key] == [value], key
    assert "@system-service" in service["SystemCallFilter"]
    # The admin password comes in as a credential, never in the unit or config.json.
    assert service["LoadCredential"] == ["admin-pass:/etc/redis-proxy/admin-pass"]
    assert not any("pass" in value for value in service.get("Environment", []))


@needs_analyze
def test_systemd_analyze_verify_accepts_it(tmp_path: Path) -> None:
    result = verify(copy_for_verify(tmp_path))
    # Unknown or misspelt keys are only warnings (exit 0): any line about this unit is a failure.
    ours = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


@needs_analyze
def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt hardening key is reported."""
    broken = UNIT.read_text().replace("ProtectHome=yes", "ProtectHom=yes")
    result = verify(copy_for_verify(tmp_path, broken))
    assert "Unknown key 'ProtectHom'" in result.stdout + result.stderr


@needs_analyze
def test_exposure_is_low(tmp_path: Path) -> None:
    """`systemd-analyze security` scores the sandbox (0 = locked down, 10 = none; --threshold is in tenths): 2.0 or less."""
    unit = copy_for_verify(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


@needs_analyze
@pytest.mark.parametrize("typo", [False, True])
def test_the_takeover_drop_in_verifies_and_replaces_exec_reload(tmp_path: Path, typo: bool) -> None:
    """packaging/systemd/takeover.conf: `systemctl reload` becomes `--takeover --detach` (doc/takeover.md).

    verify reads drop-ins from the unit path: SYSTEMD_UNIT_PATH puts the test's
    copy there; the typo case shows the drop-in really is read.
    """
    unit = copy_for_verify(tmp_path)
    drop_in_dir = tmp_path / f"{UNIT.name}.d"
    drop_in_dir.mkdir()
    drop_in = (REPO_ROOT / "packaging" / "systemd" / "takeover.conf").read_text()
    assert "ExecReload=\n" in drop_in and "--takeover --detach" in drop_in and "NotifyAccess=all" in drop_in
    text = drop_in.replace(INSTALLED, str(tmp_path / "redis-proxy"))
    (drop_in_dir / "takeover.conf").write_text(text.replace("TimeoutSec=", "TimeoutSecc=") if typo else text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30, cwd=tmp_path,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},
    )
    output = result.stdout + result.stderr
    if typo:
        assert "takeover.conf" in output and "Unknown key 'TimeoutSecc'" in output, output
    else:
        ours = [line for line in output.splitlines() if UNIT.name in line or "takeover.conf" in line]
        assert result.returncode == 0 and not ours, output
