"""Socket options every proxy connection gets."""

from __future__ import annotations

import asyncio
import os
import socket
import stat


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


def unix_socket_answers(path: str, kind: int = socket.SOCK_STREAM) -> bool:
    """Whether a process listens on the unix socket at `path`."""
    probe = socket.socket(socket.AF_UNIX, kind)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def remove_stale_socket(path: str, kind: int = socket.SOCK_STREAM) -> None:
    """Remove a unix socket left by a dead process; refuse (OSError) to steal a live one or touch other files."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(17, f"{path} exists and is not a socket")
    if unix_socket_answers(path, kind):
        raise OSError(98, f"another process is listening on {path}")
    os.unlink(path)  # nobody listens: stale
