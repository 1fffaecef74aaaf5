"""The Starlette app: routes for commands, JSON state, metrics, history and the status page."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

import redis_proxy
from redis_proxy.admin import metrics, page, state
from redis_proxy.admin.auth import AdminGuard
from redis_proxy.admin.commands import CommandError, Outcome, read_fields, run_command
from redis_proxy.admin.sampler import INTERVAL_S, Sampler
from redis_proxy.controller import STOPPING

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

NO_STORE = {"Cache-Control": "no-store"}  # state changes every second: never serve it from a cache
MAX_RESULT_CHARS = 1000  # what a redirect carries back to the page; URLs have practical limits
HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def _wants_html(request: Request) -> bool:
    # A browser submitting the page's form without JavaScript asks for HTML;
    # fetch() from the page, curl and scripts do not.
    return "text/html" in request.headers.get("accept", "")


def _back_to_page(name: Any, outcome: Outcome) -> RedirectResponse:
    text = page.describe(str(name or "?"), outcome.ok, outcome.body)
    query = urlencode(
        {"cmd": str(name or "?")[:100], "ok": "1" if outcome.ok else "0", "result": str(text)[:MAX_RESULT_CHARS]}
    )
    # 303: the browser follows with a GET, so reloading the page does not repeat the command.
    return RedirectResponse(f"/?{query}", status_code=303, headers=NO_STORE)


def _page_result(request: Request) -> page.Result | None:
    params = request.query_params
    if "result" not in params:
        return None
    return page.Result(cmd=params.get("cmd", "?")[:100], ok=params.get("ok") == "1", text=params["result"][:MAX_RESULT_CHARS])


def templates() -> Jinja2Templates:
    # Our own environment rather than Starlette's default: autoescaping for
    # every template whatever its name, and a missing variable is an error
    # (a typo would otherwise render as an empty string).
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


def _since(request: Request) -> float | None:
    raw = request.query_params.get("since")
    if raw is None or raw == "":
        return None
    try:
        since = float(raw)
    except ValueError:
        since = math.nan
    if not math.isfinite(since):
        raise HTTPException(400, "since must be a Unix time in seconds")
    return since


def build_app(proxy: Proxy, sampler: Sampler | None = None) -> Starlette:
    """The admin app. `sampler` fills the charts' history (start_admin runs it); without one, the charts stay empty."""
    registry = metrics.make_registry(proxy)
    sampler = sampler if sampler is not None else Sampler(proxy)
    pages = templates()

    async def home(request: Request) -> Response:
        nonce = page.new_nonce()
        now = sampler.now()
        extra = {
            "nonce": nonce,
            "version": redis_proxy.__version__,
            # Static files are cached by URL: a new version gets new URLs.
            "asset_version": redis_proxy.__version__,
            "config_path": proxy.config_path or "(none: the config was not read from a file)",
            "paused_for_s": now["paused_for_s"],
            "last_error": now["last_error"],
        }
        headers = {
            **NO_STORE,
            "Content-Security-Policy": page.content_security_policy(nonce),
            "X-Content-Type-Options": "nosniff",
            # Not "no-referrer": with it Chrome sends "Origin: null" on the
            # page's own form posts, which the cross-site check must refuse.
            "Referrer-Policy": "same-origin",
        }
        context = page.context(state.info(proxy), _page_result(request), extra)
        return pages.TemplateResponse(request, "index.html", context, headers=headers)

    async def history_json(request: Request) -> Response:
        return _json({"interval_s": INTERVAL_S, "now": sampler.now(), **sampler.history.to_json(_since(request))})

    async def cmd(request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            # Commands change state, so they are POST only; a GET (a bookmark,
            # a link) just lands on the page.
            return RedirectResponse("/", status_code=303)
        try:
            fields = await read_fields(request)
        except CommandError as exc:
            outcome = Outcome(exc.status, {"ok": False, "error": exc.message})
            fields = {}
        else:
            peer = f"{request.client.host}:{request.client.port}" if request.client else "?"
            outcome = await run_command(proxy, fields, peer)
        if _wants_html(request):
            return _back_to_page(fields.get("cmd"), outcome)
        return _json(outcome.body, outcome.status)

    async def info_json(request: Request) -> Response:
        return _json(state.info(proxy))

    async def status_json(request: Request) -> Response:
        return _json(state.legacy_status(proxy))

    async def switchover_json(request: Request) -> Response:
        return _json(state.switchover(proxy))  # scrubbed, as in info.json

    async def metrics_text(request: Request) -> Response:
        body, content_type = metrics.render(registry)
        return Response(body, headers={**NO_STORE, "Content-Type": content_type})

    async def healthz(request: Request) -> Response:
        # Answering at all is the point: the process and its event loop are alive.
        return PlainTextResponse("ok\n", headers=NO_STORE)

    async def readyz(request: Request) -> Response:
        # Ready means a client's command would reach a Redis that answers now.
        # The text says why not, scrubbed: the probe needs no password to read it.
        health = proxy.health
        if proxy.controller.state == STOPPING:
            return PlainTextResponse("not ready: the proxy is shutting down\n", status_code=503, headers=NO_STORE)
        if not health.up:
            why = state.scrub(proxy, f"uplink {proxy.config.uplink.addr} is down: {health.reason}")
            return PlainTextResponse(f"not ready: {why}\n", status_code=503, headers=NO_STORE)
        return PlainTextResponse("ready\n", headers=NO_STORE)

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)  # keeps browsers from logging a 404 on every visit

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"ok": False, "error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/cmd/", cmd, methods=["GET", "POST"]),
        Route("/info.json", info_json, methods=["GET"]),
        Route("/status.json", status_json, methods=["GET"]),
        Route("/switchover.json", switchover_json, methods=["GET"]),
        Route("/history.json", history_json, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        # The page's script, stylesheet and uPlot: behind the same guard as
        # everything else (AdminGuard wraps the whole app). They hold nothing
        # secret, but one rule for every path is simpler to trust than a list
        # of exceptions, and a browser that has the page has the credentials.
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(AdminGuard, proxy=proxy)],
        exception_handlers={HTTPException: http_error},
    )
