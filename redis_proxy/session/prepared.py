"""A connection to the next uplink, opened ahead of a switch, for a session to take over at the switch.

The I/O side of a session (like protocol.py): a switchover opens these while
clients still run on the old server, so that after the switch a client's
next command finds its connection ready instead of waiting for a connect
and a handshake among every other client doing the same at once (measured:
most of a client's wait after a switchover was that reconnect storm).

Only for sessions whose replayed state cannot bring unsolicited data:
subscribers, MONITOR and tracking sessions would receive messages on the
prepared connection too, and they reconnect at the switch as before. A
prepared connection is used only when the session's state is still the
one it was replayed with, and only for the uplink it was opened to.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from redis_proxy.aio import consume
from redis_proxy.config import UplinkConfig
from redis_proxy.uplink import ReadyUplink, SessionState


def eligible(state: SessionState) -> bool:
    return not state.subscribed and not state.monitor and state.tracking is None


def snapshot(state: SessionState) -> SessionState:
    """A copy that later changes to the session's state do not reach."""
    return dataclasses.replace(
        state, channels=set(state.channels), patterns=set(state.patterns), shard_channels=set(state.shard_channels)
    )


@dataclass
class PreparedUplink:
    uplink: UplinkConfig
    state: SessionState
    task: asyncio.Task[ReadyUplink]

    def __post_init__(self) -> None:
        self.task.add_done_callback(consume)

    def take(self, uplink: UplinkConfig, state: SessionState) -> ReadyUplink | None:
        """The ready connection, if it suits `uplink` and `state` now; None otherwise (then discard it)."""
        task = self.task
        if self.uplink != uplink or self.state != state or not task.done() or task.cancelled() or task.exception():
            return None
        ready = task.result()
        return None if ready.connection.closed else ready

    def discard(self) -> None:
        if not self.task.done():
            self.task.cancel()  # connect_session aborts its connection when cancelled
        elif not self.task.cancelled() and self.task.exception() is None:
            self.task.result().connection.close()
