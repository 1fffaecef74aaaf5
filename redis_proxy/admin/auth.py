"""The admin app's gate: HTTP Basic auth (when admin.pass is set) and a cross-site check.

A plain ASGI middleware, so it runs before routing and guards every path,
unknown ones included.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

REALM_HEADER = 'Basic realm="redis-proxy"'
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _digest(secret: bytes) -> bytes:
    # Comparing fixed-size digests keeps compare_digest's timing independent
    # of the password's length too, not only of its content.
    return hashlib.sha256(secret).digest()


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
    return hmac.compare_digest(_digest(given), _digest(password.encode("utf-8")))


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
        # Read the password per request: a reload may set or change admin.pass.
        admin = self.proxy.config.admin
        password = admin.password if admin is not None else None
        if password is not None and not basic_auth_ok(headers.get("authorization"), password):
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
