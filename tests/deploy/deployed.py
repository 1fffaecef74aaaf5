"""Shared by the deployment tests: a deployment's config made runnable here, and plain HTTP requests.

A config written for a container or a pod listens on 0.0.0.0 at fixed ports,
reaches Redis by a service name and reads its admin password from a mounted
secret; here the same config gets 127.0.0.1 and free ports, a test
redis-server, and a password file in the test's tmp dir. Nothing else changes.
"""

from __future__ import annotations

import base64
import copy
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER_PASSWORD = "test-only-admin-password"


def tcp_port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def localized(config: dict[str, Any], uplink_addr: str, tmp_path: Path) -> dict[str, Any]:
    """`config` listening on free loopback ports, forwarding to `uplink_addr`, its pass_file in tmp_path."""
    out = copy.deepcopy(config)
    out["uplink"]["addr"] = uplink_addr
    for section in ("listen", "admin"):
        out[section]["addr"] = f"127.0.0.1:{free_port()}"
    if out["admin"].get("pass_file"):
        secret = tmp_path / "admin-pass"
        secret.write_text(PLACEHOLDER_PASSWORD + "\n")
        out["admin"]["pass_file"] = str(secret)
    return out


def get(url: str, password: str | None = None) -> tuple[int, str]:
    """GET url: (status, body), error statuses included."""
    request = urllib.request.Request(url)
    if password is not None:
        token = base64.b64encode(f"prometheus:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
