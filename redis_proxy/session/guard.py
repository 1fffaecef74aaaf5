"""What the session core does about its client's limits: Redis's pre-AUTH framing, the idle timeout, the query buffer cap.

Functions of the core's state, called by `SessionCore` (core.py) at the
points named in each; kept apart so the core stays about forwarding. The
limits themselves are plain data in limits.py.
"""

from __future__ import annotations

import logging

from typing import TYPE_CHECKING

from redis_proxy.resp import RequestFramer
from redis_proxy.session.types import CONNECTING

if TYPE_CHECKING:
    from redis_proxy.session.core import SessionCore


def frame_after_auth(core: SessionCore) -> None:
    """Before AUTH the framer stops after each AUTH/HELLO; once its outcome is known, the limits follow it and framing goes on.

    While one is still held (the gate is shut), nothing after it is framed
    yet: `SessionCore.resume` comes back here.
    """
    requests = core.requests
    while requests.unauthenticated and not core.broken and not core.closing:
        requests.unauthenticated = not core.authed
        if core.queue or not requests.stopped:
            return
        if not core._frame(lambda _: requests.resume(), b""):
            return


def close_for_query_buffer(core: SessionCore) -> None:
    """client_query_buffer_limit: like Redis, close without a reply and say so in the log."""
    core.stats.proxy_errors += 1
    core.broken = True
    size = core.requests.buffered + core.held_bytes
    core.requests = RequestFramer()  # let the buffered bytes go now
    if core.queue:  # (a tuple, core.NO_QUEUE, when nothing was ever held)
        core.queue.clear()  # type: ignore[union-attr]
    core.held_bytes = 0
    core._close(
        f"closing client that reached max query buffer length ({size} bytes buffered, "
        f"client_query_buffer_limit {core.limits.query_buffer})",
        logging.WARNING,
    )


def close_if_idle(core: SessionCore) -> None:
    """client_idle_timeout_s (the glue's timer asks): close a client idle that long, as Redis's `timeout` does.

    Idle means nothing owed or held, not subscribed and not blocked (a
    blocked command is owed a reply). A half-sent command does not count
    as activity, as in Redis: a peer that stalls mid-command is idle.
    """
    timeout = core.limits.idle_timeout
    if (
        timeout
        and not core.closing
        and core.clock() - core.last_active >= timeout
        and not core.queue
        and not core.state.subscribed
        and core.uplink != CONNECTING
        and core._stream_idle()
    ):
        core._close(f"idle for more than {timeout:g} s (client_idle_timeout_s)")
