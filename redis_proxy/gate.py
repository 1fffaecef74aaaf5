"""The narrow interface between client sessions and the controller.

Sessions see only a `Gate`: whether they may forward, the uplink generation
they must be on, the per-command time limit, and the proxy-wide in-flight and
transaction counts they keep up to date. The controller sees sessions only as
`SessionHandle`s. Neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from redis_proxy.credentials import Credentials

if TYPE_CHECKING:  # the session core imports this module and never asyncio
    import asyncio
    import ssl

    from redis_proxy.config import UplinkConfig

RUNNING, PAUSING, PAUSED, STOPPING = "running", "pausing", "paused", "stopping"
# The active uplink is down and a candidate is being chosen: new commands are held, as when paused.
FAILING_OVER = "failing-over"


class Gate:
    """What every session reads before forwarding, and the counts it keeps.

    `inflight` and `txn` are plain integers that sessions bump directly (the
    hot path cannot afford a method call per command); they call `check_idle`
    when a count they lowered may have reached zero while the gate is shut.
    """

    __slots__ = ("state", "open", "generation", "time_limit", "inflight", "txn", "on_idle")

    def __init__(self, time_limit: float) -> None:
        self.state = RUNNING
        self.open = True  # state == RUNNING: new commands may be forwarded
        self.generation = 0  # bumped on every uplink switch; older uplink connections are retired
        self.time_limit = time_limit  # seconds; 0 = none
        self.inflight = 0  # commands forwarded without a complete reply, proxy-wide
        self.txn = 0  # sessions inside MULTI or holding WATCHed keys
        self.on_idle: Callable[[], None] = lambda: None

    @property
    def draining(self) -> bool:
        """Pausing: sessions inside a transaction may still forward until it ends."""
        return self.state == PAUSING

    def check_idle(self) -> None:
        self.on_idle()


class SessionHandle(Protocol):
    """What the controller may ask of a client session."""

    @property
    def held(self) -> int: ...  # commands held (not yet forwarded)
    @property
    def in_txn(self) -> bool: ...
    @property
    def credentials(self) -> Credentials | None: ...  # listen.auth "passthrough": what the client authenticated as
    def resume(self) -> None: ...  # the gate opened
    def switch_uplink(self) -> None: ...  # the generation changed: move to a new uplink connection
    # A switchover's catch-up: open a connection to the coming uplink now (None: this session cannot).
    def prepare_uplink(self, uplink: UplinkConfig, context: ssl.SSLContext | None) -> asyncio.Future[Any] | None: ...
    def discard_prepared(self) -> None: ...
    def fail_held(self, reason: str) -> None: ...  # failover found no uplink in time: every held command gets -ERR
    def abandon_stale_uplink(self, reason: str) -> None: ...  # failover switched: stop waiting for the dead uplink
    def pausing(self) -> None: ...  # the gate shut: unblock blocking commands
    def rearm_timer(self) -> None: ...  # time_limit changed
    def end_for_time_limit(self, why: str) -> None: ...
    def close(self) -> None: ...
