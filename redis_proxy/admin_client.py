"""A client for a running proxy's admin API, found from its config file: used by
`redis-proxy switchover` and `redis-proxy demo`.

Only what a switchover needs: start one, read its status, ask it to abort.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from redis_proxy.config import Config, parse_tcp_addr

# A status poll or a command reply is small and local; a proxy that takes
# longer than this to answer is as good as unreachable for an operator.
REQUEST_TIMEOUT_S = 10.0
# Basic auth needs a user name; the admin app accepts any (see admin/auth.py).
AUTH_USER = "admin"
SWITCHOVER_STATUS_PATH = "/switchover.json"


class AdminError(Exception):
    """The admin API could not be used: unreachable, or it refused us (not a switchover's own failure)."""


class AdminUnreachable(AdminError):
    pass


class AdminRefused(AdminError):
    """The admin API answered, but not with what was asked (auth, conflict, missing endpoint)."""

    def __init__(self, message: str, status: int, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class NoAdminSection(Exception):
    """The config has no admin section: there is no API to drive."""


@dataclass(frozen=True)
class AdminEndpoint:
    url: str  # scheme://host:port, no trailing slash
    password: str | None
    tls: bool


def connect_host(host: str) -> str:
    """The address to connect to for a listening host: a wildcard means this machine."""
    if host == "0.0.0.0":
        return "127.0.0.1"
    if host in ("::", "0:0:0:0:0:0:0:0"):
        return "::1"
    return host


def admin_endpoint(config: Config) -> AdminEndpoint:
    """Where the proxy of this config serves its admin API, and how to log in."""
    admin = config.admin
    if admin is None:
        raise NoAdminSection(
            'the config has no "admin" section: a switchover is driven through the admin API '
            '(add e.g. "admin": {"addr": "127.0.0.1:7012"} and restart the proxy)'
        )
    host, port = parse_tcp_addr(admin.addr)  # validated with the config: cannot fail here
    host = connect_host(host)
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if admin.tls else "http"
    return AdminEndpoint(url=f"{scheme}://{shown}:{port}", password=admin.password, tls=admin.tls)


def tls_verify(insecure: bool, cacert: str | None) -> ssl.SSLContext | bool:
    """What httpx should verify an https admin API against.

    The default is the system's CA store (not httpx's bundled certifi, which
    knows nothing of a company CA installed on this machine). An admin
    certificate is often self-signed: --cacert names it (or its CA), and
    --insecure skips verification altogether.
    """
    if insecure:
        return False
    if cacert is not None:
        return ssl.create_default_context(cafile=cacert)
    return ssl.create_default_context()


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _reason(response: httpx.Response) -> str:
    """What the admin API said about a refusal, in one line."""
    error = _body(response).get("error")
    if isinstance(error, str) and error:
        return error
    text = response.text.strip().splitlines()
    return text[0][:200] if text else response.reason_phrase


class AdminClient:
    """Synchronous: the callers are a command line loop and a demo's main thread."""

    def __init__(self, endpoint: AdminEndpoint, verify: ssl.SSLContext | bool = True) -> None:
        self.endpoint = endpoint
        auth = httpx.BasicAuth(AUTH_USER, endpoint.password) if endpoint.password is not None else None
        # trust_env=False: an http(s)_proxy variable meant for the internet
        # must not swallow requests to a local admin port.
        self.http = httpx.Client(
            base_url=endpoint.url, auth=auth, verify=verify, timeout=REQUEST_TIMEOUT_S, trust_env=False
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(
        self, method: str, path: str, data: dict[str, str] | None = None, timeout: float | None = None
    ) -> httpx.Response:
        try:
            response = self.http.request(method, path, data=data, timeout=timeout or REQUEST_TIMEOUT_S)
        except httpx.TransportError as exc:
            # Connection refused, DNS, TLS verification, timeouts: all "cannot talk to it".
            detail = str(exc) or type(exc).__name__
            raise AdminUnreachable(f"cannot reach the admin API at {self.endpoint.url}: {detail}") from None
        if response.status_code == 401:
            why = "wrong admin password" if self.endpoint.password else "it needs a password and the config has no admin.pass"
            raise AdminRefused(f"the admin API at {self.endpoint.url} refused the login: {why}", 401)
        return response

    def switchover_status(self) -> dict[str, Any]:
        response = self._request("GET", SWITCHOVER_STATUS_PATH)
        if response.status_code == 404:
            raise AdminRefused(
                f"the proxy at {self.endpoint.url} has no {SWITCHOVER_STATUS_PATH}: it predates switchover (upgrade it)",
                404,
            )
        if response.status_code != 200:
            raise AdminRefused(f"GET {SWITCHOVER_STATUS_PATH}: HTTP {response.status_code}: {_reason(response)}", response.status_code)
        body = _body(response)
        if "phase" not in body:
            raise AdminRefused(f"GET {SWITCHOVER_STATUS_PATH}: not a switchover status: {response.text[:200]}", 200)
        return body

    def start_switchover(self, to: str, options: dict[str, str]) -> dict[str, Any]:
        """POST cmd=switchover; the 202 reply. AdminRefused with the HTTP status otherwise (400: a bad name or option)."""
        response = self._request("POST", "/cmd/", data={"cmd": "switchover", "to": to, **options})
        body = _body(response)
        if response.status_code not in (200, 202) or body.get("ok") is not True:
            raise AdminRefused(f"switchover refused (HTTP {response.status_code}): {_reason(response)}", response.status_code, body)
        return body

    def abort_switchover(self) -> tuple[bool, str]:
        """Ask the running switchover to stop: (accepted, what the proxy said)."""
        response = self._request("POST", "/cmd/", data={"cmd": "abort-switchover"})
        body = _body(response)
        if response.status_code == 200 and body.get("ok") is True:
            phase = body.get("phase")
            return True, f"abort requested in phase {phase}" if phase else "abort requested"
        return False, _reason(response)

    def compare(self, to: str, timeout: float) -> dict[str, Any]:
        """POST cmd=compare: the report; AdminRefused with the HTTP status otherwise (400: a bad name)."""
        response = self._request("POST", "/cmd/", data={"cmd": "compare", "to": to}, timeout=timeout)
        body = _body(response)
        if response.status_code != 200 or body.get("ok") is not True:
            raise AdminRefused(f"compare refused (HTTP {response.status_code}): {_reason(response)}", response.status_code, body)
        return body

    def info(self) -> dict[str, Any]:
        """GET /info.json: the proxy's state, its uplink ("uplink", "uplink_name") and counters."""
        response = self._request("GET", "/info.json")
        if response.status_code != 200:
            raise AdminRefused(f"GET /info.json: HTTP {response.status_code}: {_reason(response)}", response.status_code)
        return _body(response)
