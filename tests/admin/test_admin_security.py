"""admin.pass (HTTP Basic auth) and keeping every password out of what the admin app shows."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from admin_client import AdminClient
from redis_proxy.admin.auth import basic_auth_ok
from servers import RedisServer, free_port, proxy_config

UPLINK_PW = "uplink-Secret-7f3a"
LISTEN_PW = "listen-Secret-91bc"
ADMIN_PW = "admin-Secret-c44e"
PASSWORDS = (UPLINK_PW, LISTEN_PW, ADMIN_PW)
PATHS = ("/", "/info.json", "/status.json", "/metrics", "/cmd/", "/nope", "/favicon.ico")


@pytest.fixture
def secured(
    redis_factory: Callable[..., RedisServer], admin_factory: Callable[..., AdminClient]
) -> tuple[AdminClient, RedisServer]:
    """A proxy with all three passwords set, and an AdminClient that authenticates."""
    server = redis_factory(password=UPLINK_PW)
    config = proxy_config(server)
    config["uplink"]["pass"] = UPLINK_PW
    config["listen"] = {"addr": f"127.0.0.1:{free_port()}", "pass": LISTEN_PW}
    config["admin"]["pass"] = ADMIN_PW
    return admin_factory(config, auth=("anyone", ADMIN_PW)), server


def _assert_clean(text: str, where: str) -> None:
    for password in PASSWORDS:
        assert password not in text, f"a password appears in {where}"


def test_every_path_needs_the_password(secured: tuple[AdminClient, RedisServer]) -> None:
    admin, _ = secured
    anonymous = httpx.Client(base_url=admin.url, timeout=10)
    wrong = httpx.Client(base_url=admin.url, timeout=10, auth=("anyone", "wrong"))
    try:
        for path in PATHS:
            for client in (anonymous, wrong):
                for method in ("GET", "POST"):
                    response = client.request(method, path, data={"cmd": "pause"} if method == "POST" else None)
                    assert response.status_code == 401, (method, path)
                    assert response.headers["www-authenticate"] == 'Basic realm="redis-proxy"'
                    _assert_clean(response.text, f"401 for {path}")
        assert admin.info()["state_str"] == "running"  # the refused POSTs did nothing
    finally:
        anonymous.close()
        wrong.close()


def test_any_user_name_with_the_password_gets_in(secured: tuple[AdminClient, RedisServer]) -> None:
    admin, _ = secured
    for user in ("admin", "", "someone else"):
        with httpx.Client(base_url=admin.url, timeout=10, auth=(user, ADMIN_PW)) as client:
            assert client.get("/info.json").status_code == 200
    token = base64.b64encode(f"x:{ADMIN_PW}".encode()).decode()
    response = httpx.get(f"{admin.url}/status.json", headers={"Authorization": f"basic {token}"}, timeout=10)
    assert response.status_code == 200


def test_no_password_anywhere(secured: tuple[AdminClient, RedisServer]) -> None:
    admin, server = secured
    client = admin.proxy.client(password=LISTEN_PW)
    client.set(b"k", b"v")
    texts: dict[str, str] = {}
    for path in ("/", "/info.json", "/status.json", "/metrics", "/nope"):
        response = admin.get(path)
        assert response.status_code in (200, 404)
        texts[path] = response.text
    info = admin.info()
    for section in ("uplink", "listen", "admin"):
        assert info["config"][section]["pass"] == "[removed]"
        assert admin.get("/status.json").json()["Config"][section]["pass"] == "[removed]"
    for cmd in ("verify", "reload", "pause", "unpause", "pause-and-wait", "unpause", "bogus", "terminate-raw-connections"):
        texts[f"cmd {cmd}"] = admin.cmd(cmd).text
    texts["html redirect"] = admin.http.post("/cmd/", data={"cmd": "verify"}, headers={"Accept": "text/html"}).headers[
        "location"
    ]
    # A reload refused because the new uplink password is wrong: the error
    # must not echo either password.
    config = {**admin.proxy.config, "uplink": {"addr": server.addr, "pass": "wrong-" + UPLINK_PW}}
    admin.proxy.rewrite_config(config)
    for cmd in ("verify", "reload"):
        response = admin.cmd(cmd)
        assert response.status_code == 409
        texts[f"refused {cmd}"] = response.text
    texts["page after refusal"] = admin.get("/").text
    for where, text in texts.items():
        _assert_clean(text, where)
        assert "wrong-" not in text, f"the new config's password appears in {where}"
    _assert_clean(admin.proxy.log(), "the proxy log")


def test_basic_auth_parser() -> None:
    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert basic_auth_ok(header("u", "pw"), "pw")
    assert basic_auth_ok(header("", "pw:with:colons"), "pw:with:colons")
    assert basic_auth_ok(header("u", "pässwörd"), "pässwörd")
    assert not basic_auth_ok(header("u", "pw2"), "pw")
    assert not basic_auth_ok(header("u", ""), "pw")
    assert not basic_auth_ok(None, "pw")
    assert not basic_auth_ok("", "pw")
    assert not basic_auth_ok("Bearer abc", "pw")
    assert not basic_auth_ok("Basic !!!not-base64", "pw")
    assert not basic_auth_ok("Basic " + base64.b64encode(b"no-colon").decode(), "pw")
