"""POST /cmd/: read the request, run one operator command, describe the outcome.

Each command returns the extra fields of a successful reply; failures raise
`CommandError` with the HTTP status and a message for the operator.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from redis_proxy.admin.state import scrub
from redis_proxy.aio import consume
from redis_proxy.switchover.engine import Switchover
from redis_proxy.control.client import ControlPlaneError
from redis_proxy.migration.compare import compare_servers
from redis_proxy.migration.copier import Side
from redis_proxy.switchover.copy_mode import CopySwitchover
from redis_proxy.switchover.options import OptionError, parse_options
from redis_proxy.controller import STOPPING, ControlError, ControlTimeout, TargetRefused, UnknownUplink

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

log = logging.getLogger("redis_proxy")

MAX_BODY = 64 * 1024  # a command is a few bytes; anything bigger is a mistake or abuse
MAX_FIELDS = 32
DEFAULT_PAUSE_TIMEOUT_MS = 10_000
MAX_PAUSE_TIMEOUT_MS = 3_600_000


class CommandError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status < 400


Fields = Mapping[str, Any]
Handler = Callable[["Proxy", Fields], Awaitable[dict[str, Any]]]


# -- reading the request ---------------------------------------------------------------


async def _capped_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise CommandError(413, f"request body too large (limit {MAX_BODY} bytes)")
    chunks: list[bytes] = []
    size = 0
    # Read incrementally: a chunked upload has no Content-Length to refuse early.
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise CommandError(413, f"request body too large (limit {MAX_BODY} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_fields(request: Request) -> dict[str, Any]:
    """The request's fields from a urlencoded or multipart form, or a JSON object."""
    body = await _capped_body(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            data = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(400, f"invalid JSON body: {exc}") from None
        if not isinstance(data, dict):
            raise CommandError(400, 'the JSON body must be an object such as {"cmd": "pause"}')
        return data
    if media_type == "multipart/form-data":
        return await _multipart(request, body)
    # application/x-www-form-urlencoded, or no type at all (some clients omit it).
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(400, f"invalid form body: {exc}") from None
    return dict(pairs)


async def _multipart(request: Request, body: bytes) -> dict[str, Any]:
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body
        yield b""

    # No max_part_size (starlette >= 0.40 only): the whole body is capped already.
    parser = MultiPartParser(request.headers, stream(), max_files=0, max_fields=MAX_FIELDS)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise CommandError(400, f"invalid multipart body: {exc.message}") from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


# -- the commands --------------------------------------------------------------------------


async def _shielded(proxy: Proxy, coro: Coroutine[Any, Any, Any], name: str) -> Any:
    # The controller's multi-step operations must run to completion: cancelling
    # a reload between "pause" and "resume" (a client that hangs up, uvicorn's
    # shutdown timeout) would leave every client held. So they run as their own
    # task, and only our wait for them can be cancelled.
    task = proxy.spawn(coro, name)
    task.add_done_callback(consume)
    return await asyncio.shield(task)


def _no_switchover(proxy: Proxy) -> None:
    """An operator's pause or unpause would break a running switchover's hold: refused until it ends."""
    running = proxy.controller.switchover_running
    if running is not None:
        raise CommandError(409, f"a switchover is running ({running}): it holds and releases clients itself; abort it first")


def _expire_ms(fields: Fields) -> int:
    raw = fields.get("expire_ms", 0)
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= MAX_PAUSE_TIMEOUT_MS:
        raise CommandError(400, f"expire_ms must be an integer from 0 to {MAX_PAUSE_TIMEOUT_MS} (milliseconds)")
    return raw


async def _pause(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    _no_switchover(proxy)
    controller = proxy.controller
    controller.pause(_expire_ms(fields))
    # What the pause holds, so the page can say it in a sentence.
    return {"state": controller.state, "clients": proxy.clients(), "in_flight": proxy.in_flight()}


async def _unpause(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    _no_switchover(proxy)
    released = proxy.controller.waiting
    proxy.controller.unpause()
    return {"state": proxy.controller.state, "released": released}


def _timeout_ms(fields: Fields) -> int:
    raw = fields.get("timeout_ms", DEFAULT_PAUSE_TIMEOUT_MS)
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    # bool is an int in Python, but {"timeout_ms": true} is certainly a mistake.
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 < raw <= MAX_PAUSE_TIMEOUT_MS:
        raise CommandError(400, f"timeout_ms must be an integer from 1 to {MAX_PAUSE_TIMEOUT_MS} (milliseconds)")
    return raw


async def _pause_and_wait(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    _no_switchover(proxy)
    timeout_ms, expire_ms = _timeout_ms(fields), _expire_ms(fields)
    controller = proxy.controller
    try:
        waited = await _shielded(proxy, controller.pause_and_wait(timeout_ms / 1000, expire_ms), "admin-pause-and-wait")
    except ControlTimeout as exc:
        # The pause did not complete in time (the controller has already
        # unpaused): a gateway-style timeout, not a refusal.
        raise CommandError(504, str(exc)) from None
    return {"state": controller.state, "waited_ms": round(waited * 1000, 3)}


async def _reload(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    result: dict[str, Any] = await _shielded(proxy, proxy.controller.reload(), "admin-reload")
    return dict(result)


async def _verify(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    return {"result": await _shielded(proxy, proxy.controller.verify(), "admin-verify")}


def uplink_name_field(proxy: Proxy, fields: Fields, key: str = "to") -> str:
    """The named uplink a command is about; 400 when missing or unknown."""
    name = fields.get(key)
    known = ", ".join(sorted(proxy.config.uplinks)) or "none are configured"
    if not isinstance(name, str) or not name:
        raise CommandError(400, f"missing {key}=NAME (an entry of uplinks: {known})")
    if name not in proxy.config.uplinks:
        raise CommandError(400, f"no uplink named {name[:100]!r} (known: {known})")
    return name


async def _switch(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    name = uplink_name_field(proxy, fields)
    try:
        result: dict[str, Any] = await _shielded(proxy, proxy.controller.switch(name), "admin-switch")
    except UnknownUplink as exc:
        raise CommandError(400, str(exc)) from None
    except TargetRefused as exc:
        # The proxy stays on its uplink, running; the target is what failed.
        raise CommandError(502, str(exc)) from None
    return result


async def _switchover(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    name = uplink_name_field(proxy, fields)
    try:
        options = parse_options(fields)
    except OptionError as exc:
        raise CommandError(400, str(exc)) from None
    if proxy.switchover is not None and proxy.switchover.status.running:
        raise CommandError(409, f"a switchover is already running ({proxy.controller.switchover_running})")
    if name == proxy.config.uplink_name:
        raise CommandError(400, f"{name} is already the active uplink")
    if proxy.controller.switchover_running is not None or proxy.controller.busy:
        raise CommandError(409, "a reload or switch is running: try again when it is done")
    if proxy.controller.operator_paused:
        raise CommandError(409, "the proxy is paused by an operator: unpause it first (a switchover holds clients itself)")
    proxy.switchover = (CopySwitchover if options.mode == "copy" else Switchover)(proxy, name, options)
    proxy.switchover.start()
    return {"status_code": 202, "from": proxy.switchover.status.source, "to": name}


async def _compare(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    name = uplink_name_field(proxy, fields)
    if name == proxy.config.uplink_name:
        raise CommandError(400, f"{name} is the active uplink: compare it with another one")
    config = proxy.config
    source = Side(config.uplink_name or config.uplink.addr, config.uplink)
    target = Side(name, config.uplinks[name])
    try:
        report: dict[str, Any] = await _shielded(proxy, compare_servers(source, target), "admin-compare")
    except ControlPlaneError as exc:
        raise CommandError(502, f"compare failed: {exc}") from None
    finally:
        await source.close()
        await target.close()
    return report


async def _abort_switchover(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    switchover = proxy.switchover
    if switchover is None or not switchover.status.running:
        raise CommandError(409, "no switchover is running")
    switchover.abort()  # ControlError (409) once it is too late
    return {"phase": switchover.status.phase}


async def _terminate_raw(proxy: Proxy, fields: Fields) -> dict[str, Any]:
    pipes = list(proxy.raw_connections)  # closing a pipe removes it from the set
    for pipe in pipes:
        pipe.close()
    return {"terminated": len(pipes)}


COMMANDS: dict[str, Handler] = {
    "pause": _pause,
    "unpause": _unpause,
    "pause-and-wait": _pause_and_wait,
    "reload": _reload,
    "verify": _verify,
    "terminate-raw-connections": _terminate_raw,
    "switch": _switch,
    "switchover": _switchover,
    "abort-switchover": _abort_switchover,
    "compare": _compare,
}


async def run_command(proxy: Proxy, fields: Fields, peer: str = "?") -> Outcome:
    """Run the command named by fields["cmd"]; never raises for operator mistakes.

    `peer` (the HTTP client's address) goes into the log: who paused the proxy
    is the first question after an incident.
    """
    name = fields.get("cmd")
    try:
        if name is None or name == "":
            raise CommandError(400, f"missing cmd (one of: {', '.join(COMMANDS)})")
        handler = COMMANDS.get(name) if isinstance(name, str) else None
        if handler is None:
            shown = name if isinstance(name, str) else json.dumps(name)
            raise CommandError(400, f"unknown cmd {shown[:100]!r} (one of: {', '.join(COMMANDS)})")
        if proxy.controller.state == STOPPING:
            raise CommandError(503, "the proxy is shutting down")
        extra = await handler(proxy, fields)
    except CommandError as exc:
        return Outcome(exc.status, {"ok": False, "cmd": name, "error": scrub(proxy, exc.message)})
    except ControlError as exc:
        # The controller left the proxy as it was; the request conflicts with
        # its state or its config file. (The controller logs its own failures.)
        log.info("admin: %s from %s refused", name, peer)
        return Outcome(409, {"ok": False, "cmd": name, "error": scrub(proxy, str(exc))})
    except Exception:
        # The traceback goes to the log; the reply says only where to look, so
        # no internal detail (or secret) leaks through an unexpected message.
        log.exception("admin: %s from %s failed", name, peer)
        return Outcome(500, {"ok": False, "cmd": name, "error": "internal error (details in the proxy log)"})
    log.info("admin: %s from %s: ok", name, peer)
    status = extra.pop("status_code", 200)  # 202: started, runs in the background
    return Outcome(status, {"ok": True, "cmd": name, **extra})
