"""The admin HTTP server's life: binding, HTTPS and certificate rotation, signals, shutdown."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import shutil
import signal
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from admin_client import AdminClient
from redis_proxy.admin import server as admin_server
from redis_proxy.config import parse_config
from redis_proxy.server import Proxy
from servers import ProxyProcess, RedisServer, free_port, proxy_config, wait_until

from certs import CertFiles, make_ca_and_cert


def _with_admin(redis_server: RedisServer, section: dict[str, Any]) -> dict[str, Any]:
    config = proxy_config(redis_server)
    config["admin"] = section
    return config


def _port_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def _trusting(ca_cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_cert))


def test_sigterm_stops_the_admin_server(admin: AdminClient) -> None:
    port = admin.proxy.admin_port
    assert port is not None
    assert admin.get("/info.json").status_code == 200
    admin.http.close()  # no keep-alive connection left open: shutdown must not need it
    assert admin.proxy.stop(signal.SIGTERM) == 0
    assert _port_closed(port)
    assert "stopped" in admin.proxy.log()


def test_sigterm_during_a_waiting_admin_request(admin: AdminClient) -> None:
    """A pause-and-wait blocked on a slow command must not hold up shutdown."""
    client = admin.proxy.client()
    # Connect first: redis-py's connection handshake (CLIENT SETINFO) would
    # otherwise pass for the slow command in flight.
    assert client.ping()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(client.execute_command, "DEBUG", "SLEEP", "3")
        wait_until(lambda: admin.info()["active_requests"] == 1, message="DEBUG SLEEP in flight")
        waiting = pool.submit(admin.cmd, "pause-and-wait", timeout_ms=30_000)
        wait_until(lambda: admin.info()["state_str"] == "pausing", message="pause-and-wait started")
        started = time.monotonic()
        assert admin.proxy.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 10
        try:
            response = waiting.result(timeout=10)
        except httpx.HTTPError:
            pass  # the connection closed before a reply: acceptable during shutdown
        else:
            assert response.status_code >= 400
            assert response.json()["ok"] is False
        slow.exception(timeout=10)  # finished one way or the other
    log = admin.proxy.log()
    assert "Traceback" not in log, log


def test_sighup_still_reaches_the_proxy(
    admin: AdminClient, redis_factory: Callable[..., RedisServer]
) -> None:
    """uvicorn must not have taken over the proxy's signal handlers."""
    second = redis_factory()
    admin.proxy.rewrite_config({**admin.proxy.config, "uplink": {"addr": second.addr}})
    admin.proxy.send_signal(signal.SIGHUP)
    wait_until(lambda: admin.info()["uplink"] == second.addr, message="SIGHUP reload switched the uplink")
    admin.proxy.send_signal(signal.SIGINT)
    assert admin.proxy.stop(timeout=10) == 0


def test_bind_failure_is_reported(redis_server: RedisServer, proxy_factory: Callable[..., ProxyProcess]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proxy = proxy_factory(_with_admin(redis_server, {"addr": f"127.0.0.1:{port}"}), start=False)
        # The busy port accepts connections, so do not wait for it: wait for the exit.
        try:
            proxy.start(wait_admin=False)
        except RuntimeError as exc:
            assert "exited early with code 1" in str(exc)
        assert proxy.proc is not None
        assert proxy.proc.wait(timeout=10) == 1
    assert f"admin: cannot listen on 127.0.0.1:{port}: " in proxy.log()
    assert "Address already in use" in proxy.log()
    assert "Traceback" not in proxy.log()


def test_port_zero(redis_server: RedisServer, proxy_factory: Callable[..., ProxyProcess]) -> None:
    proxy = proxy_factory(_with_admin(redis_server, {"addr": "127.0.0.1:0"}), start=False)
    proxy.start(wait_admin=False)
    match = wait_until(
        lambda: re.search(r"admin: listening on http://127\.0\.0\.1:(\d+)/", proxy.log()), message="admin address logged"
    )
    assert match is not None
    port = int(match.group(1))
    assert port != 0
    admin = AdminClient(proxy, url=f"http://127.0.0.1:{port}")
    try:
        assert admin.info()["addresses"]["admin"] == f"127.0.0.1:{port}"
    finally:
        admin.close()


def test_no_admin_section_no_admin_server(redis_server: RedisServer, proxy_factory: Callable[..., ProxyProcess]) -> None:
    proxy = proxy_factory(proxy_config(redis_server, admin=False))
    assert proxy.client().ping()
    assert "admin:" not in proxy.log()
    assert proxy.stop() == 0


def _tls_config(redis_server: RedisServer, certs: CertFiles) -> dict[str, Any]:
    section = {"addr": f"127.0.0.1:{free_port()}", "tls": True, "certfile": str(certs.cert), "keyfile": str(certs.key)}
    return _with_admin(redis_server, section)


def test_https_admin(
    redis_server: RedisServer, admin_factory: Callable[..., AdminClient], certs: CertFiles
) -> None:
    admin = admin_factory(_tls_config(redis_server, certs), verify=_trusting(certs.ca_cert))
    assert admin.url.startswith("https://")
    assert admin.info()["state_str"] == "running"
    assert admin.ok("pause")["cmd"] == "pause"
    admin.ok("unpause")
    # Plain HTTP on the TLS port gets nowhere.
    with pytest.raises(httpx.HTTPError):
        httpx.get(admin.url.replace("https://", "http://") + "/info.json", timeout=3)
    # An untrusted client refuses the certificate.
    with pytest.raises(httpx.ConnectError):
        httpx.get(admin.url + "/info.json", timeout=3)
    assert admin.get("/status.json").status_code == 200  # the server survived both


def test_https_certificate_rotation_on_reload(
    redis_server: RedisServer, admin_factory: Callable[..., AdminClient], certs: CertFiles, tmp_path: Path
) -> None:
    admin = admin_factory(_tls_config(redis_server, certs), verify=_trusting(certs.ca_cert))
    assert admin.info()["state_str"] == "running"

    # Replace the files in place with a certificate from another CA, then reload.
    rotated = make_ca_and_cert(tmp_path / "rotated")
    shutil.copyfile(rotated.cert, certs.cert)
    shutil.copyfile(rotated.key, certs.key)
    assert admin.ok("reload")["switched"] is False

    # New handshakes present the new certificate: the old CA no longer verifies it.
    with pytest.raises(httpx.ConnectError):
        httpx.get(admin.url + "/info.json", verify=_trusting(certs.ca_cert), timeout=5)
    response = httpx.get(admin.url + "/info.json", verify=_trusting(rotated.ca_cert), timeout=5)
    assert response.status_code == 200


@pytest.mark.parametrize("factory", [True, False], ids=["ssl_context_factory", "uvicorn<0.47 fallback"])
def test_in_process_admin_serves_the_live_tls_context(
    certs: CertFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factory: bool
) -> None:
    """In the proxy's own loop: both ways of handing uvicorn the live SSLContext
    serve it, and a certificate loaded into it later is used by new handshakes."""
    if not factory:
        monkeypatch.setattr(admin_server, "_ssl_options", lambda context: {})
    text = json.dumps(
        {
            "uplink": {"addr": "127.0.0.1:1"},  # never contacted here
            "listen": {"addr": "127.0.0.1:0"},
            "admin": {"addr": "127.0.0.1:0", "tls": True, "certfile": str(certs.cert), "keyfile": str(certs.key)},
        }
    )
    rotated = make_ca_and_cert(tmp_path / "rotated")

    async def main() -> None:
        proxy = Proxy(parse_config(text), None)
        admin = await admin_server.start_admin(proxy)
        url = f"https://{admin.address}/status.json"
        try:
            async with httpx.AsyncClient(verify=_trusting(certs.ca_cert)) as client:
                assert (await client.get(url)).json()["State"] == "running"
            proxy.tls["admin"].load_cert_chain(str(rotated.cert), str(rotated.key))  # what a reload does
            async with httpx.AsyncClient(verify=_trusting(rotated.ca_cert)) as client:
                assert (await client.get(url)).status_code == 200
        finally:
            await admin.stop()
        host, port = admin.address.rsplit(":", 1)
        assert _port_closed(int(port)) and host == "127.0.0.1"

    asyncio.run(main())
