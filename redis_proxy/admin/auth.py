"""The admin app's gate: HTTP Basic auth (when admin.pass is set), a Host check
(when it is not) and a cross-site check.

A plain ASGI middleware, so it runs before routing and guards every path,
unknown ones included.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from redis_proxy.passwords import password_matches

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

REALM_HEADER = 'Basic realm="redis-proxy"'
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Probes for load balancers and orchestrators: they reveal nothing secret and
# their callers have no admin password, so Basic auth does not apply to them.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def basic_auth_ok(header: str | None, password: str) -> bool:
    """Does an Authorization header carry `password` (any user name)?"""
    if not header:
        return False
    scheme, _, param = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(param.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _, sep, given = decoded.partition(b":")
    if not sep:
        return False
    return password_matches(given, password.encode("utf-8"))


def _strip_port(host: str) -> str | None:
    """The host part of a Host header, lower-case; None when it is malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[: end + 1], host[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return name
    name, sep, port = host.rpartition(":")
    if not sep:
        return host
    if ":" in name or not port.isdigit():
        return None  # an IPv6 address without brackets, or junk
    return name


def host_allowed(header: str | None, allowed: Iterable[str]) -> tuple[bool, str]:
    """May a request with this Host header reach an admin app that has no password?

    DNS rebinding: a page on evil.example makes its own name resolve to
    127.0.0.1, and the browser then sends requests to this app as same-origin
    (so the cross-site check cannot see them), but still with
    "Host: evil.example". IP literals and localhost cannot be rebound; other
    names must be listed in admin.allowed_hosts. Returns (allowed, why not).
    """
    if header is None:
        return False, "the request has no Host header"
    name = _strip_port(header)
    if name is None:
        return False, "the Host header is malformed"
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return False, "the Host header has an invalid IPv6 address"
        return True, ""
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return True, ""
    bare = name.rstrip(".")  # "localhost." is the same name as "localhost"
    if bare == "localhost" or bare in {h.lower().rstrip(".") for h in allowed}:
        return True, ""
    return False, f"host {name[:100]!r} is not an IP address, localhost, or listed in admin.allowed_hosts"


def _cross_site(headers: Headers, scope: Scope) -> bool:
    """Is a state-changing request coming from another site's page?

    Basic credentials are cached by browsers and sent with any request to this
    origin, so without this check a page elsewhere could pause the proxy with
    a hidden form. Browsers say where a request comes from; non-browser
    clients such as curl send neither header and are not affected.
    """
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        # Computed by the browser itself, so it stays right behind a reverse
        # proxy that rewrites Host. "none" is a user action (typed URL).
        return fetch_site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    # Older browsers: compare Origin with the address the request was sent to.
    scheme = scope.get("scheme", "http")
    return origin.lower() != f"{scheme}://{headers.get('host', '')}".lower()


class AdminGuard:
    def __init__(self, app: ASGIApp, proxy: Proxy) -> None:
        self.app = app
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # Read the settings per request: a reload may set or change admin.pass and allowed_hosts.
        admin = self.proxy.config.admin
        password = admin.password if admin is not None else None
        if password is None:
            # Without a password, a browser tricked by DNS rebinding could drive this app.
            ok, why = host_allowed(headers.get("host"), admin.allowed_hosts if admin is not None else ())
            if not ok:
                refusal = PlainTextResponse(
                    f"refused: {why} (a defence against DNS rebinding: add the name to admin.allowed_hosts"
                    " or set admin.pass)\n",
                    status_code=403,
                    headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
                )
                await refusal(scope, receive, send)
                return
        elif scope["path"] not in PROBE_PATHS and not basic_auth_ok(headers.get("authorization"), password):
            response = JSONResponse(
                {"ok": False, "error": "authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": REALM_HEADER, "Cache-Control": "no-store"},
            )
            await response(scope, receive, send)
            return
        if scope["method"] not in _SAFE_METHODS and _cross_site(headers, scope):
            response = JSONResponse({"ok": False, "error": "cross-site request refused"}, status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
