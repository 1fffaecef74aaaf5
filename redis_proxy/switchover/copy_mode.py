"""mode=copy: a switchover without replication, for servers that refuse REPLICAOF (managed services).

Preflight, copy, converge, cutover, switch. The proxy tracks the keys its
clients write (session/write_tracking.py) from before the first SCAN, copies
the whole keyspace once, then copies the keys written meanwhile again,
round after round, until few are left. The cutover holds clients as the
replica mode does, copies the last ones, verifies, and switches. Until the
switch the source stays authoritative; a failure or an abort releases
clients on it. The rules shared with replica mode (holds bounded by
max_hold_ms, retries, abort, prepared connections) live in engine.py.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from redis_proxy.aio import within
from redis_proxy.control.client import ControlPlaneError
from redis_proxy.migration.copier import Copier, CopyCounters, CopyError, RateLimit, Side
from redis_proxy.migration.keyspecs import KeySpecs
from redis_proxy.migration.tracker import Dirty, WriteTracker
from redis_proxy.migration.verify import EXAMPLES, TTL_TOLERANCE_MS, Mismatch
from redis_proxy.session.write_tracking import start_tracking, stop_tracking
from redis_proxy.switchover.engine import HoldExpired, Switchover, SwitchoverFailed
from redis_proxy.switchover.options import Options

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

BARRIER_S = 30.0  # commands in flight when tracking began must be answered within this
STALLED_ROUNDS = 3  # rounds without the dirty set shrinking before trying the cutover anyway
PROBE_S = 5.0  # the target's first write in preflight: a paused target never answers it
FENCE_PAUSE_MS = 3_600_000  # fence=pause: CLIENT PAUSE WRITE on the source for an hour


class CopySwitchover(Switchover):
    point_of_no_return = "switch"

    def __init__(self, proxy: Proxy, target: str, options: Options) -> None:
        super().__init__(proxy, target, options)
        self.status.mode = "copy"
        self.counters = CopyCounters()
        self.tracker: WriteTracker | None = None
        self.functions = False  # the source has FUNCTION (Redis 7): libraries are copied at the cutover
        self.copier = Copier(
            Side(self.source.name, self.source.config), Side(self.target.name, self.target.config),
            RateLimit(options.max_copy_ops, options.max_copy_bytes), self.counters, self._between_chunks,
            lambda seconds: self._io(asyncio.sleep(seconds)),
        )

    def _settings(self) -> str:
        o = self.options
        return (
            f"mode=copy max_hold_ms={o.max_hold_ms} retries={o.retries} force={str(o.force).lower()}"
            f" max_dirty_keys={o.max_dirty_keys} verify_sample={o.verify_sample} max_copy_ops={o.max_copy_ops}"
            f" max_copy_bytes={o.max_copy_bytes} fence={o.fence} trust_script_keys={str(o.trust_script_keys).lower()}"
        )

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            self._stop_tracking()
            await self.copier.close()

    def _between_chunks(self) -> None:
        """The copier's pause between chunks: an abort stops it there; the status shows its progress."""
        self._check_abort()
        self._counted()
        if self.status.phase == "copy":
            self._progress(
                f"copy: {self.counters.keys_scanned} of ~{self.status.keys_total} key(s) scanned,"
                f" {self.counters.keys_copied} copied ({self.counters.bytes_copied} bytes), {self.status.dirty_keys} dirty"
            )

    def _counted(self) -> None:
        status, counters = self.status, self.counters
        status.keys_scanned, status.keys_copied, status.bytes_copied = (
            counters.keys_scanned, counters.keys_copied, counters.bytes_copied,
        )
        if self.tracker is not None:
            status.dirty_keys = len(self.tracker)

    async def _before_promotion(self) -> float:
        self.status.enter("preflight")
        specs = await self._preflight_copy()
        self.status.enter("copy")
        await self._start_tracking(specs)
        await self._copy_all()
        started = await self._attempts("cutover", self._converge_and_cut_over)
        self.committing = True  # nothing to promote: the target takes writes already; the switch is next
        return started

    async def _converge_and_cut_over(self) -> float | None:
        self.status.enter("converge")
        await self._converge()
        self.status.enter("cutover")
        return await self._cut_over()

    # -- preflight --------------------------------------------------------------------------------

    async def _preflight_copy(self) -> KeySpecs:
        source, target, options = self.source, self.target, self.options
        if self.peers:
            raise SwitchoverFailed(
                "mode=copy tracks the writes of this proxy's clients only: with peers, their clients' writes would be"
                " missed (use the replica mode, or switch the peers' clients to this proxy first)"
            )
        if self.proxy.config.listen_raw is not None:
            raise SwitchoverFailed("mode=copy cannot see the writes of listen_raw connections: remove listen_raw first")
        if self.proxy.config.workers > 1:
            raise SwitchoverFailed(
                "mode=copy tracks writes inside the process that serves them: not yet with workers > 1 (use the replica mode)"
            )
        src = await self._io(source.replication())
        if not src.is_master:
            raise SwitchoverFailed(f"the source {source.name} is not a master (role {src.role})")
        self.uplink_ssl = await self._io(self.controller.check_target(self.new_config, target.name))
        await self._check_versions_and_memory()
        keys = await self._io(target.key_count())
        if keys and not options.force:
            raise SwitchoverFailed(
                f"the target holds {keys} key(s): the copy would overwrite and delete them (force=true to do it anyway)"
            )
        if keys:
            self.status.event(f"the target's {keys} key(s) will be replaced (force)", logging.WARNING)
        await self._check_restore()
        try:
            table = await self._io(self.copier.source.command_table())
            specs = KeySpecs.parse(table)
        except ControlPlaneError as exc:
            raise SwitchoverFailed(f"cannot read the source's command table (COMMAND): {exc}") from None
        self.status.event("the source's command table read: writes will be tracked by its key specifications")
        self.functions = any(entry and entry[0] in (b"function", "function") for entry in table)
        self.status.event(
            "scripts loaded on the source before now (SCRIPT LOAD) are not copied: Redis cannot list them;"
            " scripts clients load from now on are" + (", and functions (FUNCTION DUMP/RESTORE) are" if self.functions else "")
        )
        return specs

    async def _check_restore(self) -> None:
        """The target takes writes, and one key DUMPed on the source RESTOREs on it (RDB versions, modules)."""
        source, target = self.copier.source, self.copier.target
        probe = f"redis-proxy:restore-check:{secrets.token_hex(8)}"  # written to the target, deleted at once
        try:
            await within(target.call(0, "SET", probe, "1", "PX", 10_000), PROBE_S)
            await target.call(0, "DEL", probe)
        except TimeoutError:
            raise SwitchoverFailed(
                f"the target did not take a write within {PROBE_S:g} s: is it paused (CLIENT PAUSE, e.g. left by"
                " an earlier fence=pause: CLIENT UNPAUSE lifts it)?"
            ) from None
        except ControlPlaneError as exc:
            hint = (
                " (min-replicas-to-write, e.g. left by an earlier fence=refuse: CONFIG SET min-replicas-to-write 0"
                " lifts it)" if "NOREPLICAS" in str(exc) else ""
            )
            raise SwitchoverFailed(f"the target refuses writes: {exc}{hint}") from None
        for db in sorted(await self._io(source.keyspace())):
            key = await self._io(source.call(db, "RANDOMKEY"))
            payload = await self._io(source.call(db, "DUMP", key)) if key is not None else None
            if payload is None:
                continue
            try:
                await target.call(db, "RESTORE", probe, 10_000, payload)
                await target.call(db, "DEL", probe)
            except ControlPlaneError as exc:
                raise SwitchoverFailed(f"a key DUMPed on the source does not RESTORE on the target: {exc}") from None
            self.status.event("the target takes writes, and a key DUMPed on the source RESTOREs on it")
            return

    # -- tracking -----------------------------------------------------------------------------------

    async def _start_tracking(self, specs: KeySpecs) -> None:
        """From now on every session's writes are marked; then wait until what was in flight before is answered."""
        tracker = self.tracker = WriteTracker(specs, self.options.trust_script_keys)
        self.proxy.write_tracker = tracker  # sessions opened from now on start tracked
        cores = [start_tracking(session.core, tracker) for session in list(self.proxy.sessions)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BARRIER_S
        while not all(core.settled_before_tracking or core.closing for core in cores):
            if loop.time() > deadline:
                raise SwitchoverFailed(
                    f"commands sent before the write tracking began were not answered within {BARRIER_S:g} s"
                )
            await self._io(asyncio.sleep(0.01))
        self.status.event(f"tracking the writes of {len(cores)} client connection(s)")

    def _stop_tracking(self) -> None:
        if self.proxy.write_tracker is self.tracker and self.tracker is not None:
            self.proxy.write_tracker = None
            for session in list(self.proxy.sessions):
                stop_tracking(session.core)

    # -- copy and converge ------------------------------------------------------------------------

    async def _copy_all(self) -> None:
        source_dbs = await self._io(self.copier.source.keyspace())
        target_dbs = await self._io(self.copier.target.keyspace())  # force: its other databases are emptied too
        self.status.keys_total = sum(source_dbs.values())
        self.status.event(f"copying {self.status.keys_total} key(s) in {len(source_dbs)} database(s)")
        began = time.monotonic()
        for db in sorted(set(source_dbs) | set(target_dbs)):
            await self._guard(self.copier.full_pass(db))
            self._counted()
        took = time.monotonic() - began
        self.status.event(
            f"copied {self.counters.keys_copied} key(s), {self.counters.bytes_copied} bytes in {took:.1f} s;"
            f" {len(self._tracker)} written meanwhile"
        )

    @property
    def _tracker(self) -> WriteTracker:
        assert self.tracker is not None
        return self.tracker

    async def _guard(self, aw: Awaitable[None]) -> None:
        """A copy step: its failures are the switchover's, named."""
        try:
            await aw
        except (CopyError, ControlPlaneError) as exc:
            raise SwitchoverFailed(f"copy failed: {exc}") from None
        finally:
            self._counted()

    async def _copy_dirty(self, dirty: Dirty) -> None:
        copier = self.copier
        whole: set[int] = set(dirty.whole)
        if dirty.all_dbs:
            whole |= set(await copier.source.keyspace()) | set(await copier.target.keyspace()) | set(dirty.keys)
        for db in sorted(whole):
            await copier.full_pass(db)
        for db, keys in dirty.keys.items():
            if db not in whole:
                await copier.copy(db, keys)
        self._counted()

    async def _converge(self) -> None:
        tracker, options = self._tracker, self.options
        smallest: int | None = None
        stalled = 0
        while True:
            self._check_abort()
            dirty = tracker.take()
            self.status.rounds += 1
            await self._guard(self._copy_dirty(dirty))
            left = len(tracker)
            self._progress(f"round {self.status.rounds}: copied {len(dirty)} key(s), {left} written meanwhile")
            if left <= options.max_dirty_keys and not tracker.needs_whole:
                self.status.event(f"converged after {self.status.rounds} round(s): {left} key(s) left to copy")
                return
            if smallest is not None and left >= smallest:
                stalled += 1
                if stalled >= STALLED_ROUNDS:
                    self.status.event(
                        f"the dirty set stopped shrinking at {left} key(s): trying the cutover", logging.WARNING
                    )
                    return
            else:
                smallest, stalled = left, 0
            await self._io(asyncio.sleep(0))

    # -- cutover -----------------------------------------------------------------------------------

    async def _cut_over(self) -> float | None:
        """Hold clients, copy the last keys, verify; when held since, or None (released: converge again)."""
        await self._prepare_sessions()
        started = await self._hold()
        if started is None:
            return None
        deadline = started + self.options.max_hold_ms / 1000
        dirty = self._tracker.take()  # drained: every write the clients were answered is in it
        cut_short, self.copier.cut_short = self.copier.cut_short, {}
        for db, keys in cut_short.items():  # batches cut short earlier may have landed late: copied again now
            dirty.keys.setdefault(db, set()).update(keys)
        self.copier.paced = False
        try:
            await self._pause_source_writes(deadline)
            await self._bounded(self._guard(self._copy_dirty(dirty)), deadline)
            await self._bounded(self._guard(self._copy_scripts()), deadline)
            mismatches = await self._bounded(self._verify(dirty), deadline)
            if mismatches:
                raise SwitchoverFailed(
                    f"verification failed: {len(mismatches)} of {self.status.verify_checked} key(s) differ, e.g. "
                    + "; ".join(f"db {m.db} {m.key[:80]!r}: {m.problem}" for m in mismatches[:3])
                )
            self._check_still_held()
            self.status.event(
                f"cutover: copied {len(dirty)} key(s) and verified {self.status.verify_checked},"
                f" clients held {(time.monotonic() - started) * 1000:.1f} ms so far"
            )
            return started
        except HoldExpired:
            self._missed = (
                f"{len(dirty)} key(s) to copy and {self.status.verify_checked} verified so far did not fit:"
                " lower verify_sample or max_dirty_keys, or raise max_hold_ms"
            )
        except BaseException:
            self._tracker.mark_dirty(dirty)  # a failure rolls back; keep the set whole anyway
            raise
        finally:
            self.copier.paced = True
        self._tracker.mark_dirty(dirty)  # whatever the hold did not finish is copied again
        self._release()
        await self._unpause_source_writes()
        self.status.event(f"cutover not done within max_hold_ms ({self._missed}): clients released", logging.WARNING)
        return None

    async def _copy_scripts(self) -> None:
        """Functions (FUNCTION DUMP/RESTORE) and the scripts clients loaded during the migration."""
        source, target = self.copier.source, self.copier.target
        scripts = list(self._tracker.scripts)
        if scripts:
            refused = [r for r in await target.run(0, [("SCRIPT", "LOAD", body) for body in scripts]) if isinstance(r, Exception)]
            if refused:  # a client's EVAL of a script that does not compile: it failed on the source too
                self.status.event(f"{len(refused)} script(s) not loaded on the target, e.g. {refused[0]}", logging.WARNING)
        if self.functions:
            payload = await source.call(0, "FUNCTION", "DUMP")
            await target.call(0, "FUNCTION", "RESTORE", payload, "REPLACE")

    async def _verify(self, dirty: Dirty) -> list[Mismatch]:
        """Every key copied under the hold plus a random sample: the same on both servers."""
        copier, status = self.copier, self.status
        keyspace = await copier.source.keyspace()
        total = sum(keyspace.values()) or 1
        per_db: dict[int, set[bytes]] = {db: set(keys) for db, keys in dirty.keys.items()}
        for db, count in keyspace.items():
            share = max(1, self.options.verify_sample * count // total) if self.options.verify_sample else 0
            if share:
                per_db.setdefault(db, set()).update(await copier.random_keys(db, min(share, count)))
        mismatches: list[Mismatch] = []
        for db, keys in sorted(per_db.items()):
            mismatches += await copier.compare(db, sorted(keys), TTL_TOLERANCE_MS)
            status.verify_checked += len(keys)
        status.verify_mismatches += len(mismatches)
        status.verify_examples = [m.to_json() for m in mismatches[:EXAMPLES]]
        return mismatches

    # -- after the switch ------------------------------------------------------------------------------

    async def _fence(self) -> str | None:
        """As far as the source allows: this proxy no longer writes to it whatever else happens."""
        fence = self.options.fence
        self._stop_tracking()
        status = self.status
        if self.proxy.config.uplink_name != self.target.name:
            # The switch itself failed: clients may still be on the source, which must stay writable.
            status.fence = "not fenced: the switch did not happen"
            status.event(f"source {status.fence}", logging.ERROR)
            return status.fence
        if fence == "proxy":
            status.fence = "this proxy no longer writes to it; writers outside the proxy still can (fence=proxy)"
            status.event(f"source not fenced: {status.fence}")
            return None
        try:
            if fence == "pause":
                await self.source.pause_writes(FENCE_PAUSE_MS)
                self.source_paused = False  # stays paused: run() must not lift it
                status.fence = f"CLIENT PAUSE WRITE for {FENCE_PAUSE_MS // 1000} s"
            else:
                await self.source.fence_writes()
                status.fence = "writes refused (min-replicas-to-write)"
            status.event(f"source fenced: {status.fence}")
        except ControlPlaneError as exc:
            problem = f"the source could not be fenced ({exc}): this proxy no longer writes to it; other writers still can"
            status.fence = f"not fenced ({exc}); this proxy no longer writes to it"
            status.event(problem, logging.ERROR)
            return problem
        return None
