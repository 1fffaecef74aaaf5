"""The switchover itself: preflight, replicate, catch up, promote and fence, switch.

One runs at a time, as a background task of the proxy. Until the target is
promoted, any failure or an operator's abort rolls back: clients and peers
are released on the source, the target is detached if this switchover
attached it, and the source stays authoritative. From the promotion on there
is no way back, only forward: the switch is finished whatever else fails.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from redis_proxy.aio import consume, within
from redis_proxy.config import Config, parse_tcp_addr
from redis_proxy.control.client import ControlPlaneError, Replication
from redis_proxy.controller import PAUSED, ControlError
from redis_proxy.switchover.options import Options
from redis_proxy.switchover.peers import PeerError, Peers
from redis_proxy.switchover.servers import Server, version_tuple
from redis_proxy.switchover.status import SwitchoverStatus

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

log = logging.getLogger("redis_proxy")
T = TypeVar("T")

POLL_S = 0.2  # replication progress while not holding clients
SOURCE_PAUSE_MARGIN_MS = 5000  # the source's write pause outlasts the hold by this, to cover promotion and fence
PEER_PAUSE_MARGIN_MS = 30_000  # a peer's pause ends by itself this long after the hold could: a dead leader
MIN_PROMOTE_S = 0.2  # REPLICAOF NO ONE gets at least this long, even at the end of the hold
PREPARE_S = 2.0  # how long opening client connections on the target ahead of the switch may take
FAST_POLL_S, FAST_POLL_FOR_S = 0.01, 2.0  # ...and during the first seconds of each wait
PROGRESS_EVENT_S = 5.0  # a progress event at most this often during a sync
LINK_DOWN_LIMIT_S = 30.0  # the target's link to the source down this long, with no sync under way: give up


def _port(addr: str) -> int | None:
    try:
        return parse_tcp_addr(addr)[1]
    except ValueError:  # a unix socket path
        return None


class SwitchoverFailed(Exception):
    """A switchover cannot go on; the message is for the operator."""


class HoldExpired(Exception):
    """The hold reached max_hold_ms before the target caught up (or a server answered in time)."""


class Aborted(Exception):
    """The operator (or the proxy's shutdown) asked to stop before the promotion."""


class Switchover:
    point_of_no_return = "promotion"  # what an abort must come before
    def __init__(self, proxy: Proxy, target: str, options: Options) -> None:
        config = proxy.config
        self.proxy = proxy
        self.controller = proxy.controller
        self.options = options
        self.source = Server(config.uplink_name or config.uplink.addr, config.uplink)
        self.target = Server(target, config.uplinks[target])
        self.new_config: Config = config.with_uplink(target)
        self.uplink_ssl: ssl.SSLContext | None = None
        self.peers = Peers(list(config.peers))
        self.status = SwitchoverStatus(source=self.source.name, target=target, started_at=time.time())
        self.task: asyncio.Task[None] | None = None
        self.committing = False  # promotion under way or done: no abort any more
        self.abort_requested = False
        self._aborted = asyncio.Event()
        self.restore: dict[str, str] | None = None  # the target's settings, when this switchover attached it
        self.restore_master: str | None = None  # ...and the master it replicated before, if any
        self.source_paused = False  # CLIENT PAUSE WRITE on the source, until the fence
        self._pause_warned = False
        self.holding = False  # clients are held by this switchover
        self._last_progress = 0.0
        self._missed = ""  # why the last catch-up attempt ran out of time

    # -- control ------------------------------------------------------------------

    def start(self) -> None:
        self.proxy.switchover_status = self.status
        self.controller.switchover_running = f"{self.source.name} -> {self.target.name}"
        self.status.event(
            f"switchover {self.source.name} ({self.source.config.addr}) -> {self.target.name} ({self.target.config.addr})"
            f" requested: {self._settings()}"
        )
        self.task = self.proxy.spawn(self.run(), "switchover")

    def _settings(self) -> str:
        o = self.options
        return (
            f"max_lag_bytes={o.max_lag_bytes} max_hold_ms={o.max_hold_ms} retries={o.retries}"
            f" reverse={str(o.reverse).lower()} force={str(o.force).lower()}"
        )

    def abort(self, why: str = "aborted by the operator") -> None:
        """Stop before the promotion, the source still authoritative; ControlError once it is too late."""
        if self.status.result is not None:
            raise ControlError("no switchover is running")
        if self.committing:
            raise ControlError(f"too late to abort: the {self.point_of_no_return} is under way; the switch will finish")
        if not self.abort_requested:
            self.abort_requested = True
            self.status.event(f"abort requested ({why})", logging.WARNING)
            self._aborted.set()

    def _check_abort(self) -> None:
        if self.abort_requested:
            raise Aborted()

    async def _io(self, aw: Awaitable[T]) -> T:
        """Wait for a request that changes nothing, or for an abort, whichever comes first.

        Requests that change a server (REPLICAOF, CONFIG SET) are never cut
        short this way: one cut in the middle could land after the roll-back.
        """
        self._check_abort()
        task = asyncio.ensure_future(aw)
        if task.done():
            return task.result()
        aborted = asyncio.ensure_future(self._aborted.wait())
        done, _ = await asyncio.wait({task, aborted}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            aborted.cancel()
            return task.result()
        task.cancel()
        task.add_done_callback(consume)
        raise Aborted()

    async def wait(self) -> None:
        if self.task is not None:
            await asyncio.shield(self.task)

    # -- the run -------------------------------------------------------------------

    async def run(self) -> None:
        try:
            try:
                started = await self._before_promotion()
            except Aborted:
                await self._roll_back()
                self._finish("aborted", f"aborted before the {self.point_of_no_return}: the source stays authoritative")
                return
            except Exception as exc:
                reason = str(exc)
                if not isinstance(exc, (SwitchoverFailed, ControlPlaneError, ControlError, PeerError)):
                    log.exception("switchover: unexpected error")  # a bug: still never leave clients held
                    reason = f"internal error: {exc}"
                await self._roll_back()
                self._finish("failed", reason)
                return
            warnings = await self._after_promotion(started)
            self._finish("done", "; ".join(warnings) if warnings else None)
        finally:
            self.controller.switchover_running = None
            await asyncio.gather(self.source.close(), self.target.close(), self.peers.close(), return_exceptions=True)

    def _finish(self, result: str, error: str | None) -> None:
        self.status.finish(result, error)
        self.proxy.stats.switchovers[result] = self.proxy.stats.switchovers.get(result, 0) + 1

    async def _before_promotion(self) -> float:
        """Everything up to the promotion; returns when clients are held and the target has caught up."""
        self.status.enter("preflight")
        await self._preflight()
        self.status.enter("replicate")
        await self._replicate()
        started = await self._attempts("catch-up", self._catch_up_attempt)
        await self._promote(started + self.options.max_hold_ms / 1000)
        return started

    async def _catch_up_attempt(self) -> float | None:
        self.status.enter("catch-up")
        return await self._catch_up()

    async def _attempts(self, what: str, attempt: Callable[[], Awaitable[float | None]]) -> float:
        """Up to 1 + retries attempts at holding clients for the last step; when the successful hold began."""
        for number in range(1, self.options.retries + 2):
            self.status.attempt = number
            started = await attempt()
            if started is not None:
                return started
            if number <= self.options.retries:
                self.status.event(f"retrying the {what} ({number} of {self.options.retries} retries)")
        raise SwitchoverFailed(
            f"no {what} within max_hold_ms={self.options.max_hold_ms} in {self.options.retries + 1} attempt(s);"
            f" the last time {self._missed}"
        )

    # -- 1. preflight -----------------------------------------------------------------

    async def _preflight(self) -> None:
        source, target, options = self.source, self.target, self.options
        # Replicas reach their master over TCP: a unix-socket uplink needs the address they use.
        replicated_from = [(source, "source")] + ([(target, "target")] if options.reverse else [])
        for server, role in replicated_from:
            if server.config.network == "unix" and not server.config.replicate_from:
                raise SwitchoverFailed(
                    f"the {role} {server.name} is a unix socket: set its replicate_from to the host:port"
                    " the other server replicates from"
                )
        src = await self._io(source.replication())
        if not src.is_master:
            raise SwitchoverFailed(f"the source {source.name} is not a master (role {src.role})")
        self.uplink_ssl = await self._io(self.controller.check_target(self.new_config, target.name, replica_ok=True))
        tgt = await self._io(target.replication())
        self.status.event(f"source is a master, target reachable ({tgt.role})")
        await self._check_versions_and_memory()
        if not target.is_replica_of(tgt, source, src):
            keys = await self._io(target.key_count())
            if keys and not options.force:
                raise SwitchoverFailed(
                    f"the target holds {keys} key(s) and does not replicate the source: replicating would replace"
                    " them (force=true to do it anyway)"
                )
            if keys:
                self.status.event(f"the target's {keys} key(s) will be replaced (force)", logging.WARNING)
        if self.peers:
            for line in await self._io(self.peers.check(source.config.addr, target.name)):
                self.status.event(line)

    async def _check_versions_and_memory(self) -> None:
        """The target runs the same Redis or newer, and its maxmemory holds the source's data."""
        source, target = self.source, self.target
        src_server, tgt_server = await self._io(source.info("server")), await self._io(target.info("server"))
        src_version, tgt_version = str(src_server.get("redis_version", "0")), str(tgt_server.get("redis_version", "0"))
        if version_tuple(tgt_version) < version_tuple(src_version):
            raise SwitchoverFailed(
                f"the target runs Redis {tgt_version}, older than the source's {src_version}: a replica cannot load"
                " a newer server's data reliably"
            )
        src_memory, tgt_memory = await self._io(source.info("memory")), await self._io(target.info("memory"))
        used, limit = int(src_memory.get("used_memory", 0)), int(tgt_memory.get("maxmemory", 0))
        if limit and limit < used:
            raise SwitchoverFailed(
                f"the target's maxmemory ({limit} bytes) cannot hold the source's used_memory ({used} bytes)"
            )
        self.status.event(f"versions {src_version} -> {tgt_version}, source uses {used} bytes, target maxmemory {limit or 'unlimited'}")

    # -- 2. replicate -------------------------------------------------------------------

    async def _replicate(self) -> None:
        source, target = self.source, self.target
        src, tgt = await self._io(source.replication()), await self._io(target.replication())
        if target.is_replica_of(tgt, source, src):
            self.status.event(f"the target already replicates the source (link {tgt.link_status})")
        else:
            self.restore = await self._io(target.saved_settings())
            self.restore_master = None if tgt.is_master else tgt.master_addr
            self.status.event(f"REPLICAOF {source.config.replication_addr} on the target")
            await target.attach(source)
            self._check_abort()
        await self._wait_close_enough()

    async def _wait_close_enough(self) -> Replication:
        """Poll until the target's link is up and its lag is within max_lag_bytes."""
        loop = asyncio.get_running_loop()
        down_since = begun = loop.time()
        while True:
            src, tgt = await self._io(self.source.replication()), await self._io(self.target.replication())
            status = self.status
            status.sync_total_bytes, status.sync_read_bytes = (
                (tgt.sync_total_bytes, tgt.sync_read_bytes) if tgt.sync_in_progress else (0, 0)
            )
            if tgt.link_status == "up" and self._streaming(src, tgt):
                status.lag_bytes = max(0, src.offset - tgt.offset)
                if status.lag_bytes <= self.options.max_lag_bytes:
                    return tgt
                self._progress(f"replicating: lag {status.lag_bytes} bytes")
            elif tgt.sync_in_progress:
                down_since = loop.time()
                total = f" of {tgt.sync_total_bytes}" if tgt.sync_total_bytes > 0 else ""
                self._progress(f"full sync: {tgt.sync_read_bytes}{total} bytes received")
            elif loop.time() - down_since > LINK_DOWN_LIMIT_S:
                raise SwitchoverFailed(
                    f"the target's link to the source ({self.source.config.replication_addr}) stayed down for"
                    f" {LINK_DOWN_LIMIT_S:g} s: check that the target can reach that address (replicate_from),"
                    " the source's credentials, TLS, and the target's log"
                )
            # Fast at first: a small dataset syncs in milliseconds, and the wait is the whole switchover.
            await self._io(asyncio.sleep(POLL_S if loop.time() - begun > FAST_POLL_FOR_S else FAST_POLL_S))

    def _streaming(self, src: Replication, tgt: Replication) -> bool:
        """Does the source stream its writes to the target yet?

        Right after a full sync the target says its link is up while its
        offset can still read 0, and the source lists it as waiting until its
        first acknowledgement: a lag computed then is meaningless, and a
        catch-up started then would hold clients until the stream starts
        (measured: up to 0.8 s).
        """
        if src.offset > 0 and tgt.offset == 0:
            return False
        ports = {port for a in (self.target.config.addr, self.target.config.replication_addr) if (port := _port(a))}
        listed = [entry for entry in src.replicas if entry.port in ports]
        # Not listed under any port we know (an announced port, NAT): the target's word is all there is.
        return not listed or any(entry.state == "online" for entry in listed)

    def _progress(self, msg: str) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVENT_S:
            self._last_progress = now
            self.status.event(msg)

    # -- 3. catch up -----------------------------------------------------------------------

    async def _catch_up(self) -> float | None:
        """Hold clients (and peers) until the target has the source's last write; when held since, or None."""
        options = self.options
        await self._wait_close_enough()
        await self._prepare_sessions()
        await self._wait_close_enough()  # the lag may have grown meanwhile
        if self.peers:
            await self.peers.pause(options.max_hold_ms, expire_ms=options.max_hold_ms + PEER_PAUSE_MARGIN_MS)
            self._check_abort()
        started = await self._hold()
        if started is None:
            return None
        deadline = started + options.max_hold_ms / 1000
        try:
            await self._pause_source_writes(deadline)
            await self._until_caught_up(deadline, started)
            # Nothing may have let clients (or peers) go meanwhile: a promotion then would lose their writes.
            self._check_still_held()
            if self.peers:
                await self._bounded(self.peers.all_paused(), deadline)
            return started
        except HoldExpired:
            self._missed = (
                f"the target stayed {self.status.lag_bytes} bytes behind, or a server was slow to answer: is something"
                " other than this proxy (and its peers) writing to the source?"
            )
        self._release()
        await self._unpause_source_writes()
        await self._release_peers()
        self.status.event(
            f"not caught up within max_hold_ms (lag {self.status.lag_bytes} bytes): clients released", logging.WARNING
        )
        return None

    async def _prepare_sessions(self) -> None:
        ready, sessions = await self._io(self.controller.prepare_sessions(self.new_config, self.uplink_ssl, PREPARE_S))
        self.status.event(f"{ready} of {sessions} client connection(s) opened on the target ahead of the switch")

    async def _hold(self) -> float | None:
        """Hold clients, once in-flight commands have drained: since when; None (peers released) if they did not."""
        self.holding = True
        try:
            return await self._io(self.controller.hold("switchover", timeout=self.options.max_hold_ms / 1000))
        except ControlError as exc:
            self.holding = False
            await self._release_peers()
            self._missed = "in-flight commands or open transactions did not finish (see read_time_limit_ms)"
            self.status.event(f"clients not drained in time: {exc}", logging.WARNING)
            return None

    def _check_still_held(self) -> None:
        if self.controller.state != PAUSED or not self.holding:
            raise SwitchoverFailed("clients were released during the hold (the proxy is not paused any more)")

    async def _until_caught_up(self, deadline: float, started: float) -> None:
        while True:
            # Source first: whatever the target has afterwards is at least what the source had.
            src = await self._bounded(self.source.replication(), deadline)
            tgt = await self._bounded(self.target.replication(), deadline)
            self.status.lag_bytes = max(0, src.offset - tgt.offset)
            if tgt.link_status == "up" and tgt.offset >= src.offset:
                self.status.event(
                    f"caught up at offset {src.offset}, clients held {(time.monotonic() - started) * 1000:.1f} ms so far"
                )
                return
            await asyncio.sleep(0)

    async def _bounded(self, aw: Awaitable[T], deadline: float) -> T:
        """A request inside the hold: HoldExpired once the hold's deadline passes (an abort is honoured first)."""
        self._check_abort()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HoldExpired()
        try:
            return await within(aw, remaining)
        except TimeoutError:
            raise HoldExpired() from None

    async def _pause_source_writes(self, deadline: float) -> None:
        """CLIENT PAUSE WRITE on the source: writers that do not go through the proxy (listen_raw, other
        programs) are held too, until the fence, so nothing the source acknowledges is left behind."""
        pause_ms = int((deadline - time.monotonic()) * 1000) + SOURCE_PAUSE_MARGIN_MS
        try:
            await self._bounded(self.source.pause_writes(pause_ms), deadline)
            self.source_paused = True
        except ControlPlaneError as exc:
            if not self._pause_warned:  # Redis < 6.2, or an ACL without CLIENT: the proxy's clients are held anyway
                self._pause_warned = True
                self.status.event(f"writes on the source not paused ({exc}): only this proxy's clients are held", logging.WARNING)

    async def _unpause_source_writes(self) -> None:
        if self.source_paused:
            self.source_paused = False
            try:
                await self.source.unpause_writes()
            except ControlPlaneError as exc:
                self.status.event(f"CLIENT UNPAUSE on the source failed ({exc}): its pause ends by itself", logging.WARNING)

    def _release(self) -> None:
        if self.holding:
            self.holding = False
            self.controller.release_hold()

    async def _release_peers(self) -> None:
        for problem in await self.peers.unpause():
            self.status.event(problem, logging.ERROR)

    # -- 4. promote, fence, switch --------------------------------------------------------------

    async def _promote(self, deadline: float) -> None:
        """REPLICAOF NO ONE on the target: from here on there is no abort."""
        self._check_abort()
        self.committing = True
        self.status.enter("promote")
        try:
            await self._bounded(self.target.promote(), max(deadline, time.monotonic() + MIN_PROMOTE_S))
        except (ControlPlaneError, HoldExpired) as exc:
            # Not a master, or no answer in time: going back is still safe (run() rolls back, re-attaching
            # a target whose promotion may have happened), and clients stay on the source.
            raise SwitchoverFailed(f"promotion failed: {exc or 'no answer within max_hold_ms'}") from None
        self.status.event(f"target {self.target.name} promoted to master")

    async def _after_promotion(self, started: float) -> list[str]:
        """Switch, release, fence, switch peers; never raises. The problems worth a warning.

        The fence comes after the release: this proxy's clients no longer go
        to the source and its peers are still paused, so only writers outside
        the fleet could reach the source, and they can until the fence
        whenever it comes. Every millisecond out of the hold is a
        millisecond less for every client.
        """
        warnings: list[str] = []
        self.status.enter("switch")
        old_addr = self.proxy.config.uplink.addr
        try:
            self.controller.switch_sessions(self.new_config, self.uplink_ssl, "switchover")
        except ControlError as exc:  # switch_sessions released the clients; fence and peers still matter
            self.holding = False
            warnings.append(f"switching sessions failed: {exc}")
            self.status.event(warnings[-1], logging.ERROR)
        else:
            self.holding = False
            held = self.controller.release(started, old_addr, self.new_config)
            self.status.held_ms = held * 1000
            if self.status.mode == "replica":
                self.status.lag_bytes = 0
            self.status.event(f"switched to {self.target.name}; clients held {held * 1000:.1f} ms")
        problem = await self._fence()
        if problem:
            warnings.append(problem)
        await self._unpause_source_writes()  # writers still there now get READONLY (or NOREPLICAS)
        if self.peers:
            problems = await self.peers.switch(self.target.name)
            for problem in problems:
                self.status.event(problem, logging.ERROR)
            warnings.extend(problems)
            if not problems:
                self.status.event(f"{len(self.peers.peers)} peer(s) switched and unpaused")
        return warnings

    async def _fence(self) -> str | None:
        """Keep anything from writing to the old server; the problem, if it could not be done."""
        try:
            if self.options.reverse:
                await self.source.attach(self.target)
                self.status.fence = f"a replica of {self.target.config.replication_addr}"
            else:
                await self.source.fence_writes()
                self.status.fence = "writes refused (min-replicas-to-write)"
            self.status.event(f"source fenced: {self.status.fence}")
        except ControlPlaneError as exc:
            problem = f"the source could not be fenced ({exc}): it may still accept writes from other clients"
            self.status.fence = f"not fenced: {exc}"
            self.status.event(problem, logging.ERROR)
            return problem
        return None

    # -- rolling back -------------------------------------------------------------------------------

    async def _roll_back(self) -> None:
        """Before the promotion: release everyone on the source, detach the target if we attached it."""
        self._release()
        await self._unpause_source_writes()
        await self._release_peers()
        self.controller.discard_prepared()
        try:
            if self.restore is not None:
                await self.target.detach(self.restore, self.restore_master)
                again = f"a replica of {self.restore_master} again" if self.restore_master else "detached (REPLICAOF NO ONE)"
                self.status.event(f"the target is {again}, its replication settings restored")
            elif self.committing:
                # It replicated the source before; a promotion whose answer was lost may have happened.
                await self.target.attach(self.source)
                self.status.event("the target replicates the source again (its promotion's outcome was unknown)")
        except ControlPlaneError as exc:
            self.status.event(f"could not restore the target: {exc}", logging.ERROR)
