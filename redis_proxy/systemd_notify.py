"""systemd's readiness protocol (sd_notify) without libsystemd: one datagram per state change.

Under a `Type=notify` unit systemd passes an AF_UNIX datagram socket in
$NOTIFY_SOCKET (a path, or an abstract name written with a leading "@") and
reads newline-separated `KEY=value` fields from it: READY=1 once the proxy
serves, RELOADING=1 ... READY=1 around a reload, STOPPING=1 at shutdown.
Without $NOTIFY_SOCKET (not started by systemd) every call does nothing.
The protocol is a few lines of socket code, not worth a dependency.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping

log = logging.getLogger("redis_proxy")

# systemd's socket is local and drained at once; the bound only keeps a wedged
# manager from stalling the event loop (the send is blocking, as sd_notify's is).
SEND_TIMEOUT_S = 1.0
STATUS_MAX = 200  # a STATUS line systemctl shows; longer says nothing more

_warned = False


def notify_address(value: str) -> str | bytes:
    """The socket address $NOTIFY_SOCKET names: "@name" is the abstract name "\\0name" (Linux)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def notify(*fields: str) -> bool:
    """Send `fields` (each "KEY=value") as one datagram; False when there is nowhere to send or it failed.

    A failure is logged once and otherwise ignored: systemd's bookkeeping must
    never stop the proxy from serving.
    """
    global _warned
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.sendto("\n".join(fields).encode(), notify_address(target))
    except OSError as exc:
        if not _warned:
            _warned = True
            log.warning("systemd notification to NOTIFY_SOCKET=%s failed: %s", target, exc)
        return False
    return True


def _status(text: str) -> str:
    # One field per line: a newline in the text would start a bogus field.
    line = " ".join(text.split())
    return "STATUS=" + (line[: STATUS_MAX - 3] + "..." if len(line) > STATUS_MAX else line)


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: what systemd compares RELOADING=1's MONOTONIC_USEC with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def notify_ready(addresses: Mapping[str, str]) -> bool:
    """Every listener and the admin app are up: systemd may start what depends on the proxy."""
    where = ", ".join(f"{name} {addr}" for name, addr in addresses.items())
    return notify("READY=1", f"MAINPID={os.getpid()}", _status(f"serving: {where}"))


def notify_stopping() -> bool:
    return notify("STOPPING=1", _status("shutting down: draining clients"))


@contextlib.contextmanager
def reload_notice() -> Iterator[None]:
    """RELOADING=1 while the body runs, then READY=1 whatever its outcome.

    A refused reload leaves the proxy serving with the config it had, so it is
    "ready" either way; STATUS= says which. The exception is not swallowed.
    """
    notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", _status("reloading the config"))
    try:
        yield
    except BaseException as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        notify("READY=1", _status(f"reload refused: {first}; serving with the previous config"))
        raise
    notify("READY=1", _status("reload done; serving"))
