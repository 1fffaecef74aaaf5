"""Starting a switchover through a proxy's admin API and waiting for its result."""

from __future__ import annotations

import time
from typing import Any

from admin_client import AdminClient
from load import Load
from servers import RedisServer, free_port, proxy_config, wait_until

# Redis waits 5 s by default before a diskless full sync, for more replicas
# to join; tests have one, and no reason to wait.
FAST_SYNC = ["--repl-diskless-sync-delay", "0"]


def named_config(servers: dict[str, RedisServer | str], active: str, **extra: Any) -> dict[str, Any]:
    """A proxy config with `uplinks` for `servers` ({name: server}), `active` the active one."""
    uplinks: dict[str, Any] = {}
    for name, server in servers.items():
        if isinstance(server, str):
            uplinks[name] = {"addr": server}
        else:
            uplinks[name] = {"addr": server.addr}
            if server.password is not None:
                uplinks[name]["pass"] = server.password
    config = proxy_config(uplinks[active]["addr"], **extra)
    config["uplinks"] = uplinks
    config["uplink"] = active
    return config


def over_tls(config: dict[str, Any], certs: Any) -> dict[str, Any]:
    """`config` with every named uplink reached over TLS, verified against the test CA."""
    for section in config["uplinks"].values():
        section.update({"tls": True, "cacertfile": str(certs.ca_cert)})
    return config


def dead_addr() -> str:
    return f"127.0.0.1:{free_port()}"


def start(admin: AdminClient, to: str, **options: Any) -> None:
    response = admin.cmd("switchover", to=to, **options)
    assert response.status_code == 202, (response.status_code, response.text)
    assert response.json()["ok"] is True


def status(admin: AdminClient) -> dict[str, Any]:
    response = admin.get("/switchover.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_phase(admin: AdminClient, phase: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = status(admin)
        if body["phase"] == phase or body["result"] is not None:
            assert body["phase"] == phase, body
            return body
        time.sleep(0.01)
    raise AssertionError(f"phase {phase} not reached: {status(admin)}")


def wait_result(admin: AdminClient, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = status(admin)
        if body["result"] is not None:
            return body
        time.sleep(0.02)
    raise AssertionError(f"no result after {timeout} s: {status(admin)}")


def messages(body: dict[str, Any]) -> str:
    return "\n".join(event["msg"] for event in body["events"])


def switchover_under_load(admin: AdminClient, load: Load, to: str, **options: Any) -> tuple[dict[str, Any], list[str]]:
    """Run a switchover while `load` runs, until every client made progress after it; (result, client errors)."""
    try:
        start(admin, to, **options)
        body = wait_result(admin)
        marks = load.marks()
        wait_until(lambda: load.progressed_since(marks), timeout=20, message="every client progressed after the switchover")
    finally:
        errors = load.finish()
    return body, errors
