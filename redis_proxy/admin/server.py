"""Serve the admin app with uvicorn inside the proxy's own event loop.

No second process or thread: uvicorn's `Server.serve()` runs as one more task
on the proxy's loop. We bind the listening sockets ourselves, which gives
bind errors a readable message (uvicorn would log and `sys.exit()` from inside
the task) and the real port when the config asks for port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn

from redis_proxy.admin.app import build_app
from redis_proxy.admin.sampler import Sampler
from redis_proxy.config import parse_tcp_addr

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

log = logging.getLogger("redis_proxy")

BACKLOG = 128
LINGER_S = 1.0  # at shutdown, connections still open after this long are aborted
GRACEFUL_SHUTDOWN_S = 5  # uvicorn's own limit for open requests; ours above comes first
STOP_TIMEOUT_S = 8.0  # then the serve task itself is cancelled


class _EmbeddedServer(uvicorn.Server):
    """uvicorn.Server that leaves signals to the proxy and says when it is serving."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn >= 0.29 wraps serve() in this: it replaces the process's
        # SIGINT/SIGTERM handlers with signal.signal(), and on exit restores the
        # old ones and re-raises any signal it caught. That would take SIGTERM
        # away from the proxy (which installed its handlers with
        # loop.add_signal_handler) and later overwrite them. The proxy owns
        # signals and calls stop() itself, so do nothing.
        yield

    def install_signal_handlers(self) -> None:
        # The same for uvicorn < 0.29, which called this from serve().
        return None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _format_addr(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _bind(addr: str) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for "host:port" (raises OSError)."""
    try:
        host, port = parse_tcp_addr(addr)
    except ValueError as exc:  # the config validated it; guards hand-built configs
        raise OSError(22, str(exc)) from None
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if port == 0:
        # Each address would get a different random port; one address, one port.
        infos = infos[:1]
    sockets: list[socket.socket] = []
    seen: set[Any] = set()
    try:
        for family, kind, proto, _, sockaddr in infos:
            if sockaddr in seen:
                continue
            seen.add(sockaddr)
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart without waiting out TIME_WAIT
            if family == socket.AF_INET6:
                # "localhost" may resolve to ::1 and 127.0.0.1; a dual-stack ::1
                # socket would collide with the IPv4 one.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _ssl_options(context: ssl.SSLContext | None) -> dict[str, Any]:
    """uvicorn options that make it use the proxy's live SSLContext.

    The proxy reloads certificates into that same object (load_cert_chain), so
    new handshakes pick up a rotated certificate without a restart. uvicorn
    >= 0.47 takes a context factory; older versions only build their own
    context from file names, so `_apply_ssl_fallback` swaps ours in after load.
    """
    if context is None or "ssl_context_factory" not in inspect.signature(uvicorn.Config).parameters:
        return {}
    return {"ssl_context_factory": lambda config, default_factory: context}


def _apply_ssl_fallback(config: uvicorn.Config, context: ssl.SSLContext | None) -> None:
    if context is not None and not getattr(config, "ssl_context_factory", None):
        config.load()  # serve() skips load() once loaded
        config.ssl = context


class AdminServer:
    """The running admin app: its bound address and a clean stop()."""

    def __init__(
        self, server: _EmbeddedServer, task: asyncio.Task[None], sockets: list[socket.socket], tls: bool, sampler: Sampler
    ) -> None:
        self._server = server
        self.sampler = sampler  # the status page's charts: sampling runs as long as the app serves
        self._task = task
        self._sockets = sockets
        self._stopping = False
        self.sockets = sockets  # listening; a takeover hands them over
        self.address = _format_addr(sockets[0].getsockname())
        self.url = f"{'https' if tls else 'http'}://{self.address}/"
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("admin: the HTTP server failed: %s", exc, exc_info=exc)
        elif not self._stopping:
            log.error("admin: the HTTP server stopped unexpectedly")

    def _abort_connections(self) -> None:
        # uvicorn closes idle keep-alive connections at shutdown, but closing a
        # TLS connection waits for the peer's close_notify, which an idle client
        # (a browser tab, a pooled HTTP client) never sends: shutdown would sit
        # out uvicorn's whole graceful timeout and log an error. Whatever is
        # still open by now gets dropped.
        for connection in list(self._server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:  # closing ones too: that is where TLS ones wait
                transport.abort()

    async def stop(self) -> None:
        """Stop accepting, let open admin requests finish (bounded), close the sockets."""
        self._stopping = True
        await self.sampler.stop()
        if not self._task.done():
            self._server.should_exit = True
            await asyncio.wait({self._task}, timeout=LINGER_S)
            if not self._task.done():
                self._abort_connections()
                await asyncio.wait({self._task}, timeout=STOP_TIMEOUT_S)
            if not self._task.done():
                log.warning("admin: the HTTP server did not stop within %.0f s; cancelling it", STOP_TIMEOUT_S)
                self._task.cancel()
                await asyncio.wait({self._task})
        for sock in self._sockets:
            sock.close()  # uvicorn closes them on a normal shutdown; this covers the others


def preload() -> None:
    """Import what uvicorn imports when it starts (its HTTP protocol modules: about 20 ms).

    A takeover calls this before clients are held, so starting the admin app
    afterwards does not stall the event loop that has just released them.
    """
    uvicorn.Config(_empty_app, log_level="warning", log_config=None, lifespan="off", ws="none").load()


async def _empty_app(scope: Any, receive: Any, send: Any) -> None:
    return None


async def start_admin(proxy: Proxy, inherited: list[socket.socket] | None = None) -> AdminServer:
    """Start serving the admin app on config.admin.addr (raises OSError when it cannot).

    `inherited`: listening sockets already bound (a takeover hands them over), used instead of binding.
    """
    section = proxy.config.admin
    if section is None:
        raise RuntimeError("start_admin called without an admin section in the config")
    try:
        sockets = inherited if inherited else await _bind(section.addr)
    except OSError as exc:
        raise OSError(exc.errno, f"admin: cannot listen on {section.addr}: {exc.strerror or exc}") from None
    context = proxy.tls.get("admin")
    host, port = parse_tcp_addr(section.addr)
    sampler = Sampler(proxy)
    config = uvicorn.Config(
        build_app(proxy, sampler),
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # keep the proxy's logging setup; uvicorn's records propagate to it
        access_log=False,
        lifespan="off",
        ws="none",
        proxy_headers=False,  # nothing in front of the admin app is trusted to set X-Forwarded-*
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **_ssl_options(context),
    )
    _apply_ssl_fallback(config, context)
    server = _EmbeddedServer(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=sockets), name="admin-http")
    ready = asyncio.ensure_future(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        for sock in sockets:
            sock.close()
        failure = task.exception() if not task.cancelled() else None
        raise OSError(0, f"admin: cannot start the HTTP server on {section.addr}: {failure or 'it stopped at startup'}")
    admin = AdminServer(server, task, sockets, tls=context is not None, sampler=sampler)
    sampler.start()
    log.info("admin: listening on %s%s", admin.url, " (TLS)" if context else "")
    return admin
