"""The uplink health checker: /readyz, info.json, the page and metrics follow a real redis-server
going down and coming back, and a dead uplink does not flood the log."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from redis_proxy.ratelog import RateLimitedLog
from servers import ProxyProcess, RedisServer, proxy_config, recv_line, wait_until

Factory = Callable[..., ProxyProcess]


def _http(proxy: ProxyProcess) -> httpx.Client:
    assert proxy.admin_url is not None
    return httpx.Client(base_url=proxy.admin_url, timeout=10)


def _uplink_up_metric(http: httpx.Client) -> float:
    for family in text_string_to_metric_families(http.get("/metrics").text):
        if family.name == "redis_proxy_uplink_up":
            return family.samples[0].value
    raise AssertionError("no redis_proxy_uplink_up in /metrics")


def _ready(http: httpx.Client) -> bool:
    return http.get("/readyz").status_code == 200


def test_readyz_follows_the_uplink(redis_server: RedisServer, proxy_factory: Factory) -> None:
    proxy = proxy_factory(proxy_config(redis_server))
    with _http(proxy) as http:
        wait_until(lambda: _ready(http), timeout=3, message="readyz 200 after start")
        assert _uplink_up_metric(http) == 1

        redis_server.kill()
        killed_at = time.time()
        down = wait_until(
            lambda: (r := http.get("/readyz")).status_code == 503 and r, timeout=3, message="readyz 503 after the kill"
        )
        assert down.text.startswith(f"not ready: uplink {redis_server.addr} is down: ")
        assert "cannot connect" in down.text or "closed" in down.text, down.text
        assert http.get("/healthz").status_code == 200  # the process still serves
        assert _uplink_up_metric(http) == 0
        info = http.get("/info.json").json()
        assert info["uplink_up"] is False
        assert info["uplink_down_reason"] and info["uplink_down_reason"] in down.text
        assert killed_at - 1 <= info["uplink_down_since"] <= time.time()
        page = http.get("/").text
        assert 'class="health health-down"' in page and "DOWN since" in page

        redis_server.restart()
        wait_until(lambda: _ready(http), timeout=3, message="readyz 200 after the restart")
        assert _uplink_up_metric(http) == 1
        info = http.get("/info.json").json()
        assert (info["uplink_up"], info["uplink_down_reason"], info["uplink_down_since"]) == (True, None, None)
    log = proxy.log()
    assert log.count(f"uplink {redis_server.addr} is down") == 1, log
    assert log.count(f"uplink {redis_server.addr} is up again") == 1, log


def test_readyz_follows_a_switch(redis_factory: Callable[..., RedisServer], proxy_factory: Factory) -> None:
    """After a reload to another uplink, the health connection goes there: the old one's death does not matter."""
    old, new = redis_factory(), redis_factory()
    config = proxy_config(old)
    proxy = proxy_factory(config)
    with _http(proxy) as http:
        wait_until(lambda: _ready(http), timeout=3)
        proxy.rewrite_config({**config, "uplink": {"addr": new.addr}})
        reload = http.post("/cmd/", data={"cmd": "reload"})
        assert reload.status_code == 200 and reload.json()["switched"] is True, reload.text
        old.kill()
        time.sleep(1.5)  # more than one check interval: a check of the old uplink would have failed by now
        assert _ready(http), http.get("/readyz").text
        new.kill()
        wait_until(lambda: http.get("/readyz").status_code == 503, timeout=3, message="503 once the new uplink is gone")
        assert new.addr in http.get("/readyz").text


def test_dead_uplink_logs_once_per_interval(redis_server: RedisServer, proxy_factory: Factory) -> None:
    """10 clients sending PING against a dead uplink for 3 s: a handful of lines, not hundreds."""
    proxy = proxy_factory(proxy_config(redis_server))
    with _http(proxy) as http:
        wait_until(lambda: _ready(http), timeout=3)
        redis_server.kill()
        wait_until(lambda: http.get("/readyz").status_code == 503, timeout=3)
    before = len(proxy.log().splitlines())
    assert proxy.port is not None
    clients = [socket.create_connection(("127.0.0.1", proxy.port), timeout=10) for _ in range(10)]
    attempts = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for sock in clients:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            for sock in clients:
                line = recv_line(sock)
                assert line.startswith(b"-ERR upstream unavailable"), line
                attempts += 1
    finally:
        for sock in clients:
            sock.close()
    assert attempts >= 100  # each one an uplink connection attempt that failed
    new_lines = proxy.log().splitlines()[before:]
    about_uplink = [line for line in new_lines if "uplink" in line]
    assert 1 <= len(about_uplink) <= 3, "\n".join(new_lines)
    assert len(new_lines) <= 5, "\n".join(new_lines)


def test_rate_limited_log_counts_what_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    ratelog = RateLimitedLog(logging.getLogger("ratelog-test"), 10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="ratelog-test")
    assert ratelog.warning("a", "first %s", 1)
    for _ in range(5):
        now[0] += 1
        assert not ratelog.warning("a", "again")
    assert ratelog.info("b", "another key")  # keys are independent
    now[0] = 111.0
    assert ratelog.warning("a", "later %s", 2)
    now[0] = 125.0
    assert ratelog.warning("a", "quiet since")
    assert [r.getMessage() for r in caplog.records] == [
        "first 1",
        "another key",
        "later 2 (5 more like this in the last 11 s, not logged)",
        "quiet since",
    ]
