"""info.json's `uplinks` and `switchover`, and their metrics, from a real proxy in front of real servers:
a master, its replica, a second master and an address nobody listens on."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from admin_client import AdminClient
from servers import RedisServer, free_port, proxy_config, wait_until
from test_admin_metrics import scrape, value

SECRET = "replica-Secret-3"
FAST_SYNC = ("--repl-diskless-sync-delay", "0")  # no 5 s wait for more replicas before a full sync
RECORD_KEYS = {
    "addr", "active", "reachable", "error", "role", "master_link_status", "master", "lag_bytes", "offset", "checked_at",
}


@pytest.fixture
def cluster(redis_factory: Callable[..., RedisServer], admin_factory: Callable[..., AdminClient]) -> dict[str, Any]:
    a = redis_factory(extra_args=FAST_SYNC)
    r = redis_factory(password=SECRET)
    b = redis_factory()
    r.client().replicaof("127.0.0.1", a.port)
    dead = f"127.0.0.1:{free_port()}"
    config = proxy_config(a)
    config["uplinks"] = {"a": {"addr": a.addr}, "r": {"addr": r.addr, "pass": SECRET}, "b": {"addr": b.addr}, "dead": {"addr": dead}}
    config["uplink"] = "a"
    admin = admin_factory(config)
    # The poller asks every 2 s: wait for a poll that saw the replica's link up.
    wait_until(
        lambda: admin.info()["uplinks"]["r"]["master_link_status"] == "up", timeout=15, message="replica link up in info.json"
    )
    return {"admin": admin, "a": a, "r": r, "b": b, "dead": dead}


def test_info_json_shows_every_named_uplink(cluster: dict[str, Any]) -> None:
    admin: AdminClient = cluster["admin"]
    response = admin.get("/info.json")
    assert SECRET not in response.text
    info = response.json()
    uplinks = info["uplinks"]
    assert list(uplinks) == ["a", "r", "b", "dead"]
    assert all(set(record) == RECORD_KEYS for record in uplinks.values())

    a, r, b, dead = (uplinks[n] for n in ("a", "r", "b", "dead"))
    assert a["addr"] == cluster["a"].addr and a["active"] is True and a["reachable"] is True
    assert a["role"] == "master" and a["lag_bytes"] is None and a["error"] is None
    assert r["role"] == "replica" and r["master"] == "a" and r["active"] is False
    assert isinstance(r["lag_bytes"], int) and r["lag_bytes"] >= 0 and isinstance(r["offset"], int)
    assert b["role"] == "master" and b["reachable"] is True
    assert dead["reachable"] is False and dead["error"] == f"cannot connect to {cluster['dead']}: Connection refused"
    assert dead["role"] is None and isinstance(dead["checked_at"], float)

    switchover = info["switchover"]
    assert switchover["phase"] == "idle" and switchover["running"] is False and switchover["events"] == []

    # A switch moves the active marker at once (it is read from the config, not the last poll).
    admin.ok("switch", to="b")
    uplinks = admin.info()["uplinks"]
    assert uplinks["b"]["active"] is True and uplinks["a"]["active"] is False


def test_metrics_for_uplinks_and_switchovers(cluster: dict[str, Any]) -> None:
    admin: AdminClient = cluster["admin"]
    families = scrape(admin)
    reachable = {s.labels["uplink"]: s.value for s in families["redis_proxy_uplink_reachable"]}
    assert reachable == {"a": 1, "r": 1, "b": 1, "dead": 0}
    lag = families["redis_proxy_uplink_replication_lag_bytes"]
    assert [s.labels["uplink"] for s in lag] == ["r"] and lag[0].value >= 0

    phases = {s.labels["phase"]: s.value for s in families["redis_proxy_switchover_phase"]}
    assert phases == dict.fromkeys(("preflight", "replicate", "catch-up", "promote", "copy", "converge", "cutover", "switch"), 0)
    assert "redis_proxy_switchover_lag_bytes" not in families  # unknown: absent
    finished = families["redis_proxy_switchovers"]
    for result in ("done", "failed", "aborted"):
        assert value(finished, "redis_proxy_switchovers_total", result=result) == 0


def test_without_named_uplinks(admin: AdminClient) -> None:
    info = admin.info()
    assert info["uplinks"] == {} and info["uplink_name"] is None
    assert info["switchover"]["phase"] == "idle"
    families = scrape(admin)
    assert families["redis_proxy_uplink_reachable"] == []
    assert "switch" in {s.labels["phase"] for s in families["redis_proxy_switchover_phase"]}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_accepts_the_metrics(cluster: dict[str, Any]) -> None:
    text = cluster["admin"].get("/metrics").text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_status_page_lists_uplinks_with_controls(cluster: dict[str, Any]) -> None:
    html = cluster["admin"].get("/").text
    for name in ("a", "r", "b", "dead"):
        assert f'<tr data-uplink="{name}">' in html
    assert "replica of a" in html and f"no: cannot connect to {cluster['dead']}: Connection refused" in html
    # Controls for every uplink but the active one, each asking first.
    assert html.count('name="cmd" value="switch">') == 3 and html.count('name="cmd" value="switchover">') == 3
    assert 'name="to" value="a"' not in html and 'name="to" value="b"' in html
    assert html.count("data-confirm=") == 6 + 2  # and Pause and Reload above
    assert 'id="so-none" class="muted">none yet' in html
    assert SECRET not in html
