"""The asyncio side of a client session: feeds socket events to the core and performs its actions.

All socket I/O of a client connection and its uplink connection happens here.
Backpressure stays at this level: when the client reads slower than the
uplink answers, the uplink is not read; when the uplink's write buffer is
high, the client is not read.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Protocol

from redis_proxy.config import UplinkConfig
from redis_proxy.credentials import Credentials
from redis_proxy.gate import STOPPING, Gate
from redis_proxy.ratelog import peer_events
from redis_proxy.resp import encode_command
from redis_proxy.session.client_ids import ClientIds
from redis_proxy.session.core import SessionCore
from redis_proxy.session import handover
from redis_proxy.session.write_tracking import Marks, start_tracking
from redis_proxy.session import prepared
from redis_proxy.session.limits import MAX_CLIENTS_ERROR, ClientLimits, admits
from redis_proxy.session.prepared import PreparedUplink
from redis_proxy.session.trace import REDACTED, describe, describe_command, has_secret_reply
from redis_proxy.session.types import (
    Action, CloseClient, CloseUplink, ConnectUplink, Log, ReadClient, SetTimer, Unblock, WriteClient, WriteUplink,
)
from redis_proxy.session.unblock import Unblocker
from redis_proxy.sockets import set_keepalive, set_nodelay
from redis_proxy.stats import Stats
from redis_proxy.uplink import ReadyUplink, UplinkConnection, UplinkError, auth_command, connect_session

log = logging.getLogger("redis_proxy")

CONNECT_TIMEOUT = 10.0
CONNECT_RETRY_S = 0.1  # failover: how soon a session whose uplink was unreachable tries again
# An unreachable uplink fails every client's every attempt: one line per
# interval (with a count) says so without flooding the log.
_uplink_failures_log = peer_events


class SessionContext(Protocol):
    """What a session needs from the proxy that runs it."""

    gate: Gate
    stats: Stats
    sessions: set[ClientSession]
    unblocker: Unblocker
    client_ids: ClientIds

    @property
    def write_tracker(self) -> Marks | None: ...  # a copy-mode migration runs: new sessions' writes are tracked too
    @property
    def log_messages(self) -> bool: ...
    @property
    def listen_password(self) -> bytes | None: ...
    @property
    def passthrough_auth(self) -> bool: ...  # listen.auth "passthrough"
    @property
    def client_limits(self) -> ClientLimits: ...
    def uplink_trouble(self) -> None: ...  # a client's uplink connection was lost or refused: failover checks now
    def client_count(self) -> int: ...
    def uplink_settings(self) -> tuple[UplinkConfig, ssl.SSLContext | None]: ...


class ClientSession(asyncio.Protocol):
    # One per client connection: slots, not a dict (per-client memory).
    __slots__ = (
        "context", "limits", "core", "loop", "transport", "peer", "uplink", "_connect_task", "_prepared",
        "_unreachable_since", "_timer", "_idle_timer", "_client_paused", "_reading_paused_by", "_redacting", "adopting",
        "_early", "_early_eof",
    )

    def __init__(self, context: SessionContext) -> None:
        self.context = context
        self.limits = context.client_limits
        self.core = SessionCore(
            context.gate, context.stats, context.listen_password, time.monotonic, self.limits, context.passthrough_auth,
            context.client_ids,
        )
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.uplink: UplinkConnection | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._prepared: PreparedUplink | None = None  # a connection to the next uplink, opened ahead of a switch
        self._unreachable_since: float | None = None  # failover: held commands wait for the next uplink since
        self._timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._client_paused = False  # the client's write buffer is full: the uplink is not read
        self._reading_paused_by: set[str] | None = None  # why reading is paused (made at the first pause)
        # log_messages: a command whose reply may carry a secret was seen, so
        # replies are logged as redacted until nothing is owed any more.
        self._redacting = False
        self.set_tracing(context.log_messages)
        self.adopting: handover.Restored | None = None  # takeover: a session handed over, carried on once released
        self._early: list[bytes] | None = None  # takeover: read before adopted() (it goes after the handed-over input)
        self._early_eof = False

    def set_tracing(self, enabled: bool) -> None:
        """log_messages: every command and reply of this client is logged (changes on reload)."""
        self.core.trace = self._trace if enabled else None

    # -- the controller's view (SessionHandle) ------------------------------------------------

    @property
    def held(self) -> int:
        return self.core.held

    @property
    def in_txn(self) -> bool:
        return self.core.in_txn

    @property
    def credentials(self) -> Credentials | None:
        """Pass-through mode: what this client authenticated as (for checking a switch's target; never shown)."""
        return self.core.state.credentials

    def resume(self) -> None:
        self._perform(self.core.resume())

    def switch_uplink(self) -> None:
        self._perform(self.core.switch_uplink())

    def prepare_uplink(self, uplink: UplinkConfig, context: ssl.SSLContext | None) -> asyncio.Task[ReadyUplink] | None:
        """Open a connection to `uplink` now, replaying the session as it is, for the coming switch to `uplink`."""
        self.discard_prepared()
        core = self.core
        if core.closing or core.streaming or not prepared.eligible(core.state):
            return None
        state = prepared.snapshot(core.state)
        task = self.loop.create_task(
            connect_session(uplink, context, state, CONNECT_TIMEOUT, core.passthrough), name=f"uplink-prepare {self.peer}"
        )
        self._prepared = PreparedUplink(uplink, state, task)
        return task

    def abandon_stale_uplink(self, reason: str) -> None:
        """After a failover's switch: replies still owed by the old uplink will not come (it is dead or
        stalled); answer them as lost (or close the client) instead of waiting at a reply boundary forever."""
        uplink = self.uplink
        if uplink is None or not self.core.stale_with_pending():
            return
        self.uplink = None
        uplink.sink = None
        uplink.abort()
        self._resume_reading("uplink")
        self._perform(self.core.uplink_lost(reason))

    def fail_held(self, reason: str) -> None:
        self._perform(self.core.fail_held(reason))

    def discard_prepared(self) -> None:
        if self._prepared is not None:
            self._prepared.discard()
            self._prepared = None

    def pausing(self) -> None:
        self._perform(self.core.pausing())

    def rearm_timer(self) -> None:
        self._perform(self.core.rearm_timer())

    def end_for_time_limit(self, why: str) -> None:
        self.context.stats.time_limit_kills += 1
        self._perform(self.core.fail(f"ERR {why}", why))  # logged as a warning with the close

    def close(self) -> None:
        """Shutdown: close both connections now."""
        self._perform(self.core.fail(None, "the proxy is shutting down", logging.DEBUG))

    # -- takeover: handing this connection to another process (takeover/) -----------------------

    def freeze_for_handover(self) -> str | None:
        """Stop both sides until the takeover commits or rolls back; None, or why this session stays here."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return "closing"
        if transport.get_extra_info("ssl_object") is not None:
            return "TLS (its TLS state lives in this process)"
        reason = handover.why_not_movable(self.core)
        if reason is not None:
            return reason
        self._pause_reading("handover")
        if self.uplink is not None and self.uplink.transport is not None:
            self.uplink.transport.pause_reading()  # pub/sub messages and MONITOR lines wait in the kernel
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        return None

    def flushed(self) -> bool:
        """Everything written to the client has left this process (a connection moves only then)."""
        return self.transport is not None and self.transport.get_write_buffer_size() == 0

    def thaw(self) -> None:
        """The takeover rolled back: carry on as before."""
        if self.uplink is not None and self.uplink.transport is not None and not self._client_paused:
            self.uplink.transport.resume_reading()
        self._resume_reading("handover")
        if self.limits.idle_timeout and self._idle_timer is None and not self.core.closing:
            self._idle_timer = self.loop.call_later(self.limits.idle_timeout, self._idle_fired)

    def handed_over(self) -> None:
        """The new process has the connection: close this process's descriptor only (the client sees nothing).

        The session ends here first, so nothing it held is ever sent from this process.
        """
        transport = self.transport
        self.connection_lost(None)
        if transport is not None:
            transport.abort()

    @property
    def connect_task(self) -> asyncio.Task[None] | None:
        """The uplink connection being opened, if one is (a takeover waits for subscribers' before resuming)."""
        return self._connect_task

    def adopted(self) -> None:
        """The old process let go (new process): feed the input it handed over, connect, read."""
        restored, self.adopting = self.adopting, None
        if restored is None:
            return
        data = restored.input + b"".join(self._early or ())  # what the client sent, in the order it sent it
        self._early = None
        if data:
            self._perform(self.core.client_data(data))
        self._perform(self.core.connect_now(restored.connect))
        if self._early_eof:
            self._perform(self.core.client_eof())
        self._resume_reading("handover")

    # -- client side: asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
        set_nodelay(transport)
        if self.adopting is not None:
            # Handed over by the old process (takeover): an existing client, not counted
            # against max_clients; nothing is read until the old process has let go.
            self._pause_reading("handover")
        elif not admits(self.context.client_count(), self.limits):
            # As Redis: one error line, then close; this connection never becomes a session.
            peer_events.warning("max-clients", "client %s: refused: max_clients (%d) reached", self.peer, self.limits.max_clients)
            self.core.closing = True
            assert self.transport is not None
            self.transport.write(MAX_CLIENTS_ERROR)
            self.transport.close()
            return
        set_keepalive(transport, self.limits.keepalive)
        self.context.sessions.add(self)
        if self.context.write_tracker is not None:
            # A copy-mode migration runs: this session's writes are tracked from
            # its first command (sessions already in the set were converted).
            start_tracking(self.core, self.context.write_tracker)
        self.context.stats.clients_total += 1
        if self.context.gate.state == STOPPING:
            transport.close()
            return
        if self.limits.idle_timeout:
            self._idle_timer = self.loop.call_later(self.limits.idle_timeout, self._idle_fired)

    def data_received(self, data: bytes) -> None:
        if self.adopting is not None:
            # Takeover: uvloop starts reading a connection after connection_made even though
            # it paused it; what comes before the handed-over input is fed after it.
            if self._early is None:
                self._early = []
            self._early.append(data)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        actions = self.core.client_data_fast(data)
        if actions is None:  # the hot path: whole plain commands, forwarded as they came
            uplink = self.uplink
            if uplink is not None and uplink.transport is not None:
                uplink.transport.write(data)
        elif actions:
            self._perform(actions)

    def eof_received(self) -> bool:
        if self.adopting is not None:
            self._early_eof = True  # after the handed-over input (adopted)
            return True
        # Keep the connection open for writing: a client that half-closes
        # after its commands (`nc -N`) still gets their replies.
        self._perform(self.core.client_eof())
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.context.sessions.discard(self)
        self.core.client_lost()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._connect_task is not None:
            self._connect_task.cancel()
        self.discard_prepared()
        self._drop_uplink()

    def pause_writing(self) -> None:
        # The client reads slower than it is answered: stop reading the
        # uplink, and the client too (the proxy's own replies, -NOAUTH say,
        # would otherwise pile up for a client that never reads).
        self._client_paused = True
        if self.uplink is not None and self.uplink.transport is not None:
            self.uplink.transport.pause_reading()
        self._pause_reading("client-writes")

    def resume_writing(self) -> None:
        self._client_paused = False
        if self.uplink is not None and self.uplink.transport is not None:
            self.uplink.transport.resume_reading()
        self._resume_reading("client-writes")

    # -- uplink side (UplinkSink) ----------------------------------------------------------------

    def uplink_data(self, data: bytes) -> None:
        actions = self.core.uplink_data_fast(data)
        if actions is None:  # the hot path: replies counted, written through whole
            if self.transport is not None:
                self.transport.write(data)
        elif actions:
            self._perform(actions)

    def uplink_lost(self, uplink: UplinkConnection, exc: Exception | None) -> None:
        if uplink is not self.uplink:
            return
        self.uplink = None
        reason = f"{exc}" if exc else "the uplink closed the connection"
        _uplink_failures_log.info("lost", "client %s: uplink connection lost (%s)", self.peer, reason)
        self.context.uplink_trouble()
        self._resume_reading("uplink")
        self._perform(self.core.uplink_lost(reason))

    def uplink_pause_writing(self) -> None:
        self._pause_reading("uplink")

    def uplink_resume_writing(self) -> None:
        self._resume_reading("uplink")

    # -- performing actions ----------------------------------------------------------------------

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            kind = type(action)
            if kind is WriteUplink:
                assert isinstance(action, WriteUplink)
                uplink = self.uplink
                if uplink is not None and uplink.transport is not None:
                    chunks = action.chunks
                    if len(chunks) == 1:
                        uplink.transport.write(chunks[0])
                    else:
                        uplink.transport.writelines(chunks)
            elif kind is WriteClient:
                assert isinstance(action, WriteClient)
                if self.transport is not None:
                    self.transport.write(action.data)
                    if self.core.trace is not None:
                        self._trace_reply(action, actions)
            elif kind is SetTimer:
                assert isinstance(action, SetTimer)
                self._set_timer(action.deadline)
            elif kind is ConnectUplink:
                assert isinstance(action, ConnectUplink)
                self._connect(action.generation)
            elif kind is CloseUplink:
                self._drop_uplink()
            elif kind is CloseClient:
                assert isinstance(action, CloseClient)
                log.log(action.level, "client %s: closing: %s", self.peer, action.reason)
                if self.transport is not None:
                    self.transport.close()
            elif kind is ReadClient:
                assert isinstance(action, ReadClient)
                if action.enabled:
                    self._resume_reading("held")
                else:
                    self._pause_reading("held")
            elif kind is Log:
                assert isinstance(action, Log)
                if action.key is None:
                    log.log(action.level, "client %s: %s", self.peer, action.message)
                else:
                    peer_events.log(action.level, action.key, "client %s: %s", self.peer, action.message)
            elif kind is Unblock:
                assert isinstance(action, Unblock)
                core = self.core
                self.context.unblocker.request(action.client_id, lambda: core.unblocking is not None and not core.closing)

    def _set_timer(self, deadline: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self.loop.call_later(max(0.0, deadline - time.monotonic()), self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._perform(self.core.timer_fired())

    def _idle_fired(self) -> None:
        """client_idle_timeout_s: the core decides whether the client is idle; ask again when it next could be."""
        self._idle_timer = None
        core = self.core
        self._perform(core.idle_check())
        if not core.closing:
            timeout = self.limits.idle_timeout
            wait = core.last_active + timeout - time.monotonic()
            self._idle_timer = self.loop.call_later(wait if wait > 0 else timeout, self._idle_fired)

    def _pause_reading(self, why: str) -> None:
        if not self._reading_paused_by and self.transport is not None:
            self.transport.pause_reading()
        if self._reading_paused_by is None:
            self._reading_paused_by = set()
        self._reading_paused_by.add(why)

    def _resume_reading(self, why: str) -> None:
        if self._reading_paused_by is not None and why in self._reading_paused_by:
            self._reading_paused_by.discard(why)
            if not self._reading_paused_by and self.transport is not None and not self.core.closing:
                self.transport.resume_reading()

    # -- the uplink connection -----------------------------------------------------------------

    def _drop_uplink(self) -> None:
        uplink, self.uplink = self.uplink, None
        self._resume_reading("uplink")  # that connection's write buffer goes with it
        if uplink is not None:
            uplink.sink = None
            uplink.close()

    def _connect(self, generation: int) -> None:
        if self._connect_task is None:
            self._connect_task = self.loop.create_task(self._open_uplink(generation), name=f"uplink-connect {self.peer}")

    async def _open_uplink(self, generation: int) -> None:
        config, context = self.context.uplink_settings()
        ready = self._take_prepared(config)
        try:
            if ready is None:
                redirect = await self._redirect_target(generation)
                ready = await connect_session(
                    config, context, self.core.state, CONNECT_TIMEOUT, self.core.passthrough, redirect
                )
        except UplinkError as exc:
            self._connect_task = None
            _uplink_failures_log.warning("connect", "client %s: %s", self.peer, exc)
            self.context.uplink_trouble()
            if self._wait_for_failover():
                return
            self._unreachable_since = None
            self._perform(self.core.uplink_failed(str(exc)))
            return
        except asyncio.CancelledError:
            self._connect_task = None
            raise
        self._connect_task = None
        self._unreachable_since = None
        uplink = ready.connection
        if self.core.closing:
            uplink.close()
            return
        if uplink.closed:  # went away between the handshake and now (e.g. "max clients reached")
            _uplink_failures_log.warning(
                "closed-new", "client %s: the uplink closed the new connection: %s", self.peer, uplink.lost
            )
            self._perform(self.core.uplink_failed(str(uplink.lost or "connection closed")))
            return
        self.uplink = uplink
        if uplink.transport is not None:
            set_keepalive(uplink.transport, self.limits.keepalive)
        unclaimed = uplink.attach(self)
        if self._client_paused and uplink.transport is not None:
            uplink.transport.pause_reading()
        # The proxy's own AUTH, replayed behind a client's RESET; in pass-through
        # mode the connection is the client's own and RESET leaves it unauthenticated.
        auth = None if self.core.passthrough else auth_command(config)
        self._perform(
            self.core.uplink_ready(generation, ready.client_id, ready.forward, encode_command(auth) if auth else None)
        )
        for data in (ready.leftover, *unclaimed):
            if data and self.uplink is uplink:
                self.uplink_data(data)

    def _wait_for_failover(self) -> bool:
        """With automatic failover, held commands wait (bounded) for the next uplink instead of failing now.

        The failover monitor was just told; if it declares the uplink down,
        its release resumes this session on the new one. Meanwhile the
        session tries again every CONNECT_RETRY_S (a blip, not a failure).
        """
        wait = self.limits.unreachable_wait
        if not wait or not self.core.waits_for_uplink:
            return False  # subscribers, MONITOR, tracking: closed as before, and they reconnect themselves
        now = self.loop.time()
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._unreachable_since >= wait:
            return False
        self._perform(self.core.uplink_unavailable())
        self.loop.call_later(CONNECT_RETRY_S, self._retry_connect)
        return True

    def _retry_connect(self) -> None:
        if self.transport is not None and not self.core.closing:
            self._perform(self.core.resume())

    def _take_prepared(self, config: UplinkConfig) -> ReadyUplink | None:
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            return None
        ready = prepared.take(config, self.core.state)
        if ready is None:
            prepared.discard()
        return ready

    async def _redirect_target(self, generation: int) -> int | None:
        """The uplink id, on the server of `generation`, of the session this client's tracking redirects to.

        After a switch both sessions reconnect at once, in any order: this
        one waits (at most CONNECT_TIMEOUT) for the target's new connection.
        None (tracking replayed without REDIRECT) when there is no redirect,
        the target has gone, is itself (its new id is not known before the
        replay), or did not reconnect in time.
        """
        tracking = self.core.state.tracking
        target = tracking.redirect if tracking is not None else 0
        if not target or target == self.core.proxy_id:
            return None
        ids = self.context.client_ids
        deadline = self.loop.time() + CONNECT_TIMEOUT
        while ids.alive(target):
            target_generation, uplink_id = ids.uplink_of(target)
            if target_generation == generation and uplink_id is not None:
                return uplink_id
            if target_generation > generation or self.loop.time() >= deadline:
                return None
            changed: asyncio.Future[None] = self.loop.create_future()

            def wake(changed: asyncio.Future[None] = changed) -> None:
                if not changed.done():
                    changed.set_result(None)

            ids.watch(target, wake)
            try:
                await asyncio.wait_for(changed, deadline - self.loop.time())
            except TimeoutError:
                return None
        return None

    def _trace(self, direction: str, command: list[bytes]) -> None:
        log.info("client %s %s %s", self.peer, direction, describe_command(command))
        if has_secret_reply(command):
            self._redacting = True

    def _trace_reply(self, write: WriteClient, actions: list[Action]) -> None:
        """Log a write to the client, or only that it happened while a secret-bearing reply may be in it.

        The bytes written are not cut at reply boundaries (the hot path only
        counts them), so redaction lasts until the core owes nothing more (no
        reply, held command or open MULTI whose EXEC could carry one), checked
        after the last write of this batch of actions.
        """
        if not self._redacting:
            log.info("client %s <- %s", self.peer, describe(write.data))
            return
        log.info("client %s <- %s", self.peer, REDACTED)
        core = self.core
        later = actions[next(i for i, a in enumerate(actions) if a is write) + 1 :]
        if not any(type(a) is WriteClient for a in later) and (
            not core.pending and not core.queue and not core.in_multi and not core.replies.in_reply() and core.partial is None
        ):
            self._redacting = False

