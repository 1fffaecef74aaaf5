"""Socket options every proxy connection gets."""

from __future__ import annotations

import asyncio
import socket


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY: a proxy forwards small request/reply messages and must not let Nagle hold them back."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def set_keepalive(transport: asyncio.BaseTransport, idle_s: int) -> None:
    """tcp_keepalive_s: probe a silent peer after `idle_s` seconds, so one that vanished behind a NAT is noticed.

    As Redis's anetKeepAlive: probes every idle/3 seconds, 3 unanswered ones
    drop the connection (so a dead peer is noticed after about twice `idle_s`).
    """
    sock = transport.get_extra_info("socket")
    if idle_s <= 0 or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; other systems keep their defaults
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, idle_s // 3))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
