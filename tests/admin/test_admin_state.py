"""GET /info.json, /status.json and the status page's HTML (without a browser)."""

from __future__ import annotations

import concurrent.futures
import re
from typing import Any

import pytest
import redis

from admin_client import AdminClient
from servers import RedisServer, wait_until

COUNTERS = {
    "commands",
    "error_replies",
    "proxy_errors",
    "bytes_from_clients",
    "bytes_to_clients",
    "clients_total",
    "time_limit_kills",
    "uplink_failures",
    "reloads",
    "reload_failures",
    "switches",
}


def test_info_json(admin: AdminClient, redis_server: RedisServer) -> None:
    client = admin.proxy.client()
    client.set(b"a", b"1")
    client.get(b"a")
    client.get(b"a")
    with pytest.raises(redis.ResponseError):
        client.execute_command("LPUSH", "a", "x")  # WRONGTYPE: an error reply from Redis
    response = admin.get("/info.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    info: dict[str, Any] = response.json()

    assert info["state_str"] == "running"
    assert info["active_requests"] == 0
    assert info["waiting_requests"] == 0
    assert info["open_transactions"] == 0
    assert info["switches"] == []
    assert info["clients"] == 1
    assert info["raw_connections"] == 0
    assert info["uplink"] == redis_server.addr
    assert info["addresses"]["listen"] == admin.proxy.addr
    assert info["addresses"]["admin"] == admin.url.split("://", 1)[1]
    assert 0 <= info["uptime_s"] < 120

    counters = info["counters"]
    assert set(counters) == COUNTERS
    assert counters["commands"] >= 4
    assert counters["error_replies"] >= 1
    assert counters["clients_total"] >= 1
    assert counters["bytes_from_clients"] > 0 and counters["bytes_to_clients"] > 0

    by_name = info["commands_by_name"]
    assert by_name["GET"] == 2
    assert by_name["SET"] == 1
    assert by_name["LPUSH"] == 1
    assert all(isinstance(name, str) for name in by_name)

    config = info["config"]
    assert config["uplink"]["addr"] == redis_server.addr
    assert config["listen"]["addr"] == admin.proxy.addr
    assert config["read_time_limit_ms"] == 5000


def test_unknown_command_names_are_folded(admin: AdminClient) -> None:
    client = admin.proxy.client()
    client.execute_command("get", "k")
    client.execute_command("Get", "k")
    with pytest.raises(redis.ResponseError):
        client.execute_command("xyzzy", "k")
    by_name = admin.info()["commands_by_name"]
    assert by_name["GET"] == 2
    assert "xyzzy" not in by_name and "XYZZY" not in by_name
    assert by_name["OTHER"] == 1


def test_info_json_while_paused_shows_waiting(admin: AdminClient) -> None:
    client = admin.proxy.client()
    client.ping()
    admin.ok("pause")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(client.get, b"x")
        info = wait_until(
            lambda: (i := admin.info())["waiting_requests"] == 1 and i, message="a held command is counted"
        )
        assert info["state_str"] == "paused"
        assert info["operator_paused"] is True
        status = admin.get("/status.json").json()
        assert status["WaitingRequests"] == 1
        assert status["State"] == "paused"
        admin.ok("unpause")
        assert held.result(timeout=5) is None


def test_status_json_legacy_shape(admin: AdminClient, redis_server: RedisServer) -> None:
    response = admin.get("/status.json")
    assert response.status_code == 200
    status = response.json()
    assert set(status) == {"ActiveRequests", "WaitingRequests", "State", "Config", "RawConnections"}
    assert status["ActiveRequests"] == 0
    assert status["WaitingRequests"] == 0
    assert status["State"] == "running"
    assert status["RawConnections"] == 0
    # Config uses the keys of the JSON config file ("pass", not "password").
    assert status["Config"]["uplink"]["addr"] == redis_server.addr
    assert "pass" in status["Config"]["uplink"]
    assert "password" not in status["Config"]["uplink"]
    assert status["Config"] == admin.info()["config"]


def test_status_page_html(admin: AdminClient, redis_server: RedisServer) -> None:
    response = admin.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    html = response.text
    assert 'id="state" class="state state-running">running<' in html
    assert redis_server.addr in html
    for cmd in ("pause", "unpause", "reload"):
        assert f'name="cmd" value="{cmd}"' in html
    assert 'method="post" action="cmd/"' in html
    # Scripts and stylesheets are files of ours, each with this response's nonce; nothing inline.
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce is not None and "unsafe-inline" not in csp
    for path in ("static/vendor/uplot/uPlot.iife.min.js", "static/page.js", "static/charts.js"):
        assert re.search(rf'<script src="{re.escape(path)}\?v=[^"]+" nonce="{nonce.group(1)}"></script>', html), path
    assert re.search(rf'<link rel="stylesheet" href="static/page.css\?v=[^"]+" nonce="{nonce.group(1)}">', html)
    assert "<script>" not in html and "<style" not in html
    assert "https://" not in html  # nothing loaded from a CDN


def test_status_page_escapes_what_it_shows(admin: AdminClient) -> None:
    evil = '<script>alert("x")</script>'
    response = admin.get("/", params={"cmd": evil, "ok": "0", "result": evil})
    assert response.status_code == 200
    assert evil not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in response.text


def test_unknown_path_is_404_json(admin: AdminClient) -> None:
    response = admin.get("/nope")
    assert response.status_code == 404
    assert response.json()["ok"] is False
