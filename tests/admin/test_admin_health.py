"""The admin app's Host check (DNS rebinding), the probes' access rules, and the newer metrics."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from admin_client import AdminClient
from redis_proxy import __version__
from redis_proxy.admin.auth import host_allowed
from servers import RedisServer, proxy_config, wait_until

ADMIN_PW = "admin-Secret-5d21"


def scrape(admin: AdminClient) -> dict[str, list[Sample]]:
    response = admin.get("/metrics")
    assert response.status_code == 200, response.text
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def sample(families: dict[str, list[Sample]], family: str, name: str | None = None, **labels: str) -> float:
    matches = [
        s.value
        for s in families[family]
        if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (family, name, labels, families[family])
    return matches[0]


# -- Host check (no admin.pass) ------------------------------------------------------------------


def test_foreign_host_cannot_pause_or_read(admin: AdminClient) -> None:
    """DNS rebinding: a page on evil.example reaches 127.0.0.1 with its own name in Host."""
    response = admin.http.post("/cmd/", data={"cmd": "pause"}, headers={"Host": "evil.example"})
    assert response.status_code == 403
    assert "allowed_hosts" in response.text and "evil.example" in response.text
    assert response.headers["content-type"].startswith("text/plain")
    for path in ("/", "/info.json", "/metrics", "/healthz", "/readyz", "/nope"):
        refused = admin.get(path, headers={"Host": f"evil.example:{admin.proxy.admin_port}"})
        assert refused.status_code == 403, path
    assert admin.info()["state_str"] == "running"  # the refused POST did nothing
    assert admin.info()["operator_paused"] is False


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}", "127.0.0.1", "localhost", "LOCALHOST:{port}", "localhost.", "[::1]", "[::1]:{port}", "10.1.2.3:{port}"],
)
def test_ip_literals_and_localhost_are_served(admin: AdminClient, host: str) -> None:
    headers = {"Host": host.format(port=admin.proxy.admin_port)}
    assert admin.get("/info.json", headers=headers).status_code == 200
    assert admin.http.post("/cmd/", data={"cmd": "unpause"}, headers=headers).status_code == 200


def test_allowed_hosts_are_served(redis_server: RedisServer, admin_factory: Callable[..., AdminClient]) -> None:
    config = proxy_config(redis_server)
    config["admin"]["allowed_hosts"] = ["proxy.internal", "Admin.Example.COM"]
    admin = admin_factory(config)
    port = admin.proxy.admin_port
    for host in ("proxy.internal", f"proxy.internal:{port}", "admin.example.com", "ADMIN.example.com:80"):
        assert admin.get("/info.json", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "proxy.internal.evil.example", "sub.proxy.internal", "::1", "[nope]", "127.0.0.1:x"):
        assert admin.get("/info.json", headers={"Host": host}).status_code == 403, host
    response = admin.http.post("/cmd/", data={"cmd": "pause"}, headers={"Host": "proxy.internal"})
    assert response.status_code == 200
    assert admin.ok("unpause")


def test_host_rule_edge_cases() -> None:
    assert host_allowed(None, [])[0] is False
    assert host_allowed("[fe80::1%eth0]:80", [])[0] is True
    assert host_allowed("[::1", [])[0] is False
    assert host_allowed("[::1]x", [])[0] is False
    assert host_allowed("1.2.3.4.evil.example", [])[0] is False
    assert host_allowed("999.1.1.1", [])[0] is False


# -- with admin.pass: Basic auth as before, probes open ------------------------------------------


def test_with_password_host_is_not_checked_and_probes_need_no_auth(
    redis_server: RedisServer, admin_factory: Callable[..., AdminClient]
) -> None:
    config = proxy_config(redis_server)
    config["admin"]["pass"] = ADMIN_PW
    admin = admin_factory(config, auth=("ops", ADMIN_PW))
    assert admin.get("/info.json", headers={"Host": "evil.example"}).status_code == 200
    with httpx.Client(base_url=admin.url, timeout=10) as anonymous:
        assert anonymous.get("/info.json").status_code == 401
        assert anonymous.get("/metrics").status_code == 401
        healthz = anonymous.get("/healthz")
        assert (healthz.status_code, healthz.text) == (200, "ok\n")
        readyz = wait_until(lambda: (r := anonymous.get("/readyz")).status_code == 200 and r, timeout=5)
        assert readyz.text == "ready\n"
        assert ADMIN_PW not in healthz.text + readyz.text
        # Only the probes are open: their paths with a suffix are not.
        assert anonymous.get("/readyz/x").status_code == 401


def test_probes_answer_while_serving(admin: AdminClient) -> None:
    healthz = admin.get("/healthz")
    assert healthz.status_code == 200 and healthz.text == "ok\n"
    assert healthz.headers["cache-control"] == "no-store"
    wait_until(lambda: admin.get("/readyz").status_code == 200, timeout=5, message="readyz 200")
    info = admin.info()
    assert info["uplink_up"] is True
    assert info["uplink_down_reason"] is None and info["uplink_down_since"] is None
    page = admin.get("/").text
    assert 'id="uplink-health" class="health health-up"' in page


# -- metrics ------------------------------------------------------------------------------------


def test_uplink_up_build_info_and_pause_limit_metrics(admin: AdminClient) -> None:
    wait_until(lambda: admin.get("/readyz").status_code == 200, timeout=5, message="readyz 200")
    families = scrape(admin)
    assert sample(families, "redis_proxy_uplink_up") == 1
    build = families["redis_proxy_build_info"]
    assert len(build) == 1 and build[0].value == 1
    assert build[0].labels["version"] == __version__
    assert sample(families, "redis_proxy_pause_limit_hits", "redis_proxy_pause_limit_hits_total") == 0
    assert sample(families, "redis_proxy_paused_seconds", "redis_proxy_paused_seconds_total") == 0


def test_paused_seconds_grow_while_paused(admin: AdminClient) -> None:
    admin.ok("pause")
    try:
        first = sample(scrape(admin), "redis_proxy_paused_seconds", "redis_proxy_paused_seconds_total")
        time.sleep(0.3)
        second = sample(scrape(admin), "redis_proxy_paused_seconds", "redis_proxy_paused_seconds_total")
        assert 0 <= first < second
        assert second - first >= 0.25
    finally:
        admin.ok("unpause")


def test_latency_histograms_resolve_sub_millisecond(admin: AdminClient) -> None:
    """A few hundred GETs on loopback land in the sub-millisecond buckets, with real (not 1 ms-quantized) values."""
    client = admin.proxy.client()
    client.set(b"k", b"v")
    for _ in range(300):
        client.get(b"k")
    families = scrape(admin)
    for histogram in ("redis_proxy_latency_seconds", "redis_proxy_proxy_delay_seconds"):
        samples = families[histogram]
        buckets = {s.labels["le"]: s.value for s in samples if s.name.endswith("_bucket")}
        count = next(s.value for s in samples if s.name.endswith("_count"))
        total = next(s.value for s in samples if s.name.endswith("_sum"))
        assert count >= 301
        sub_ms = buckets["0.0005"]
        assert sub_ms >= count / 2, (histogram, buckets)  # most loopback round trips are well under 0.5 ms
        # A 1 ms clock feeds durations of exactly 0 or k ms; a real one does not.
        assert total > 0, histogram
        assert not math.isclose(total * 1000, round(total * 1000), abs_tol=1e-6), (histogram, total)
