"""listen_raw: an unmanaged full-duplex byte pipe to the uplink.

No parsing, no AUTH by the proxy, no pause: bytes go through as they are.
The proxy keeps a registry of these pipes so the admin app can count and
terminate them (after a switch they still point at the old uplink).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from redis_proxy.ratelog import peer_events
from redis_proxy.session.limits import MAX_CLIENTS_ERROR, admits
from redis_proxy.sockets import set_keepalive, set_nodelay
from redis_proxy.uplink import UplinkError, open_uplink

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

log = logging.getLogger("redis_proxy")


class _End(asyncio.Protocol):
    """One side of a pipe: what it reads, the other side writes."""

    def __init__(self, pipe: RawPipe) -> None:
        self.pipe = pipe
        self.transport: asyncio.Transport | None = None
        self.other: _End | None = None
        self.early: list[bytes] = []
        self.eof = False  # this side sent EOF: nothing more will be read from it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses
        set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.write(data)
        else:
            # The uplink side is not up yet (reading is paused, but a read
            # already under way still lands here): keep it for then.
            self.early.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.other is None:
            # Half-closed before the uplink side is up (`printf PING | nc -N`):
            # `_connect` passes the EOF on once the early bytes are through.
            return True
        if self.other.transport is not None and self.other.transport.can_write_eof():
            # Half-close passes through: the other side may still answer.
            self.other.transport.write_eof()
            if self.other.eof:
                # Both directions have ended: nothing can flow any more.
                # Without this the pipe would stay registered, holding two
                # fds, since neither transport closes itself on EOF.
                # close() flushes what is still buffered first.
                self.pipe.close()
            return True
        return False  # no half-close (TLS): the transport closes, and with it the pipe

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pipe.close()

    # A side that cannot keep up stops the other side's reading.
    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()


class RawPipe:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client = _End(self)
        self.uplink: _End | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        assert self.client.transport is not None
        self.proxy.raw_connections.add(self)
        # Nothing is read from the client until the uplink side exists.
        self.client.transport.pause_reading()
        self._task = asyncio.get_running_loop().create_task(self._connect(), name="raw-uplink-connect")

    async def _connect(self) -> None:
        config = self.proxy.config.uplink
        try:
            uplink = await open_uplink(config, self.proxy.uplink_ssl, 10.0, lambda: _End(self))
        except UplinkError as exc:
            peer_events.warning("raw-connect", "raw connection: %s", exc)
            self.close()
            return
        if self.closed:
            if uplink.transport is not None:
                uplink.transport.close()
            return
        self.uplink = uplink
        if uplink.transport is not None:
            set_keepalive(uplink.transport, self.proxy.client_limits.keepalive)
        uplink.other, self.client.other = self.client, uplink
        if self.client.early and uplink.transport is not None:
            uplink.transport.writelines(self.client.early)
            self.client.early = []
        if self.client.eof and uplink.transport is not None:
            if not uplink.transport.can_write_eof():
                self.close()  # no half-close (TLS): as in _End.eof_received; close() flushes the early bytes
                return
            uplink.transport.write_eof()
        if self.client.transport is not None:
            self.client.transport.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.raw_connections.discard(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        for end in (self.client, self.uplink):
            if end is not None and end.transport is not None:
                end.transport.close()


class _RawListenerProtocol(_End):
    """The client side, created by the listener; it starts its pipe on connect."""

    def __init__(self, proxy: Proxy) -> None:
        super().__init__(RawPipe(proxy))
        self.pipe.client = self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        proxy = self.pipe.proxy
        if proxy.controller.closing:
            transport.close()
            return
        limits = proxy.client_limits
        if not admits(proxy.client_count(), limits):
            # Raw pipes count against max_clients too (see limits.admits); Redis's own refusal.
            peer_events.warning("max-clients", "raw connection: refused: max_clients (%d) reached", limits.max_clients)
            assert self.transport is not None
            self.transport.write(MAX_CLIENTS_ERROR)
            self.transport.close()
            return
        set_keepalive(transport, limits.keepalive)
        self.pipe.start()


def raw_protocol_factory(proxy: Proxy) -> _RawListenerProtocol:
    return _RawListenerProtocol(proxy)
