"""Real TLS through the proxy: TLS listeners, a TLS uplink, verification and skipverify."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis

from servers import recv_line, REPO_ROOT, ProxyProcess, RedisServer, free_port, proxy_config, wait_until

if TYPE_CHECKING:
    from certs import CertFiles

ProxyFactory = Callable[..., ProxyProcess]


def run_cli(config: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "cli-config.json"
    path.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "redis_proxy", "-f", str(path), *args],
        capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL,
    )


def config(server: RedisServer, uplink: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    cfg = proxy_config(server, admin=False, **extra)
    cfg["uplink"].update(uplink or {})
    return cfg


def other_ca(tmp_path: Path) -> "CertFiles":
    from certs import make_ca_and_cert

    return make_ca_and_cert(tmp_path / "other-ca")


def tls_socket(port: int, ca: Path) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca))
    return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1")


def test_tls_listen_and_listen_raw(
    redis_server: RedisServer, proxy_factory: ProxyFactory, certs: "CertFiles", tmp_path: Path
) -> None:
    tls = {"tls": True, "certfile": str(certs.cert), "keyfile": str(certs.key)}
    raw_port = free_port()
    proxy = proxy_factory(
        config(redis_server, listen=tls, listen_raw={"addr": f"127.0.0.1:{raw_port}", **tls})
    )
    client = proxy.client(ssl=True, ssl_ca_certs=str(certs.ca_cert))
    assert client.set("k", "over-tls") and client.get("k") == b"over-tls"
    assert redis_server.client().get("k") == b"over-tls"

    # A client that does not trust the proxy's CA, or does not speak TLS, gets nowhere...
    with pytest.raises(redis.ConnectionError):
        proxy.client(ssl=True, ssl_ca_certs=str(other_ca(tmp_path).ca_cert), socket_timeout=3).ping()
    with pytest.raises(redis.ConnectionError):
        proxy.client(socket_timeout=3).ping()
    # ... and the proxy keeps serving.
    assert client.get("k") == b"over-tls"

    # listen_raw over TLS (ProxyProcess only waits for listen, so wait for it).
    raw = wait_until(lambda: tls_socket(raw_port, certs.ca_cert), message="listen_raw accepts TLS")
    raw.sendall(b"GET k\r\n")
    assert recv_line(raw) == b"$8\r\n" and recv_line(raw) == b"over-tls\r\n"
    raw.close()


def test_tls_uplink_verified_with_cacertfile(
    redis_factory: Callable[..., RedisServer], proxy_factory: ProxyFactory, certs: "CertFiles", tmp_path: Path
) -> None:
    server = redis_factory(tls=certs)  # TLS only: the plain port is disabled
    cfg = config(server, uplink={"tls": True, "cacertfile": str(certs.ca_cert)})
    check = run_cli(cfg, tmp_path, "--check")
    assert check.returncode == 0, check.stderr
    assert "TLS verified" in check.stdout and "PING answered" in check.stdout

    proxy = proxy_factory(cfg)
    client = proxy.client(single_connection_client=True)
    assert client.set("k", "through-tls-uplink") and client.get("k") == b"through-tls-uplink"
    assert server.client().get("k") == b"through-tls-uplink"
    # Both ends TLS at once, on the same proxy config plus a TLS listener.
    tls = {"tls": True, "certfile": str(certs.cert), "keyfile": str(certs.key)}
    both = proxy_factory(config(server, uplink={"tls": True, "cacertfile": str(certs.ca_cert)}, listen=tls))
    assert both.client(ssl=True, ssl_ca_certs=str(certs.ca_cert)).get("k") == b"through-tls-uplink"


@pytest.mark.parametrize("problem", ["wrong CA", "host name mismatch"])
def test_unverifiable_tls_uplink_is_refused_readably(
    problem: str, redis_factory: Callable[..., RedisServer], certs: "CertFiles", tmp_path: Path
) -> None:
    if problem == "wrong CA":
        server = redis_factory(tls=certs)
        cfg = config(server, uplink={"tls": True, "cacertfile": str(other_ca(tmp_path).ca_cert)})
        expected = ("self-signed certificate", "unable to get local issuer certificate", "certificate verify failed")
    else:
        # The certificate names 127.0.0.1 and localhost, not 127.0.0.2.
        server = redis_factory(tls=certs, extra_args=["--bind", "127.0.0.1 127.0.0.2"])
        cfg = config(server, uplink={"addr": f"127.0.0.2:{server.port}", "tls": True, "cacertfile": str(certs.ca_cert)})
        expected = ("mismatch",)
    for args in (("--check",), ()):
        result = run_cli(cfg, tmp_path, *args)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "Traceback" not in output, output
        assert "TLS verification of uplink" in result.stderr, output
        assert any(text in result.stderr for text in expected), output


def test_skipverify_accepts_a_wrong_ca(
    redis_factory: Callable[..., RedisServer], proxy_factory: ProxyFactory, certs: "CertFiles", tmp_path: Path
) -> None:
    server = redis_factory(tls=certs)
    wrong = other_ca(tmp_path).ca_cert
    cfg = config(server, uplink={"tls": True, "cacertfile": str(wrong), "skipverify": True})
    check = run_cli(cfg, tmp_path, "--check")
    assert check.returncode == 0, check.stderr
    assert "TLS (verification skipped)" in check.stdout
    client = proxy_factory(cfg).client()
    assert client.set("k", "unverified") and client.get("k") == b"unverified"
