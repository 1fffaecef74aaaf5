"""After a takeover: the operator's pause, as the new process has it, reaches the connections left with the old one.

What stays with the old process (TLS clients, a client that half-closed)
stays under an operator's pause that was on at the takeover, and the
operator's admin app and control socket are the new process's now. So the
control channel stays open while something stays: the new process sends
its operator-pause flag whenever it changes, and the old one pauses or
unpauses to match, until it has finished draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

from redis_proxy.pidfile import process_alive
from redis_proxy.takeover.wire import Channel, ControlChannelError

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

log = logging.getLogger("redis_proxy")

POLL_S = 0.05  # how often the new process looks at its pause flag; a pause is an operator's action, not a hot path


async def forward_pause(proxy: Proxy, channel: Channel, old_pid: int, paused: bool) -> None:
    """New process: send the operator-pause flag each time it changes, while the old process lives. Owns `channel`."""
    loop = asyncio.get_running_loop()
    try:
        while process_alive(old_pid) and not proxy.controller.closing:
            now = proxy.controller.operator_paused
            if now != paused:
                await channel.send({"op": "operator_paused", "paused": now}, loop.time() + 5.0)
                paused = now
            await asyncio.sleep(POLL_S)
    except ControlChannelError:
        pass  # the old process has gone: nothing left to tell
    finally:
        channel.close()


async def follow_pause(proxy: Proxy, channel: Channel, bound_s: float) -> None:
    """Old process: pause or unpause what stayed here as the new process says, for at most `bound_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound_s
    with contextlib.suppress(ControlChannelError):
        while loop.time() < deadline:
            message, stray = await channel.receive(deadline)
            for fd in stray:
                os.close(fd)
            if message.get("op") != "operator_paused":
                continue
            if message.get("paused"):
                log.info("takeover: the new process was paused by its operator: pausing what stayed here too")
                proxy.controller.pause()
            else:
                log.info("takeover: the new process was unpaused by its operator: releasing what stayed here too")
                proxy.controller.unpause()
