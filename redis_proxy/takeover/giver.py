"""The running proxy's side of a takeover: the control socket, and handing everything over to a new process.

A new process (`redis-proxy --takeover`) connects to the control socket and
says hello; this side answers with what the new one must match (listener
addresses, listen.auth, the uplink in use, whether an operator paused).
If the new one is content it asks to take over, and this side:

1. stops accepting (the listening sockets are kept, duplicated: connections
   wait in the kernel's backlog), the admin app included;
2. holds new commands and waits until nothing is in flight and no
   transaction is open (the same hold as a reload's, with its bound);
3. freezes every session that can move (plain TCP or unix, between replies)
   and waits, bounded, until what was written to each has left;
4. sends the listening sockets and the frozen sessions' sockets (SCM_RIGHTS)
   with each session's record (session/handover.py);
5. waits for "ready" (the new process serves them, still paused), then
   lets go: its own descriptors of the moved connections are closed (the
   kernel keeps each connection, open in the new process) and it answers
   "released". From then on it only serves what could not move (TLS
   clients, listen_raw pipes, sessions mid-reply), unpaused, until they close
   or takeover_drain_s passes, then exits 0.

Any failure before "ready" undoes every step: listeners reopened, sessions
thawed, the hold released (an operator's pause stays). The new process
proceeds after "ready" only on "released", or if this process has died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from typing import TYPE_CHECKING, Any

from redis_proxy import __version__
from redis_proxy.control_errors import ControlError
from redis_proxy.session import handover
from redis_proxy.sockets import remove_stale_socket, unix_socket_answers
from redis_proxy.systemd_notify import notify
from redis_proxy.takeover.pause_link import follow_pause
from redis_proxy.takeover.wire import Channel, ControlChannelError

if TYPE_CHECKING:
    from redis_proxy.server import Listening, Proxy
    from redis_proxy.session.protocol import ClientSession

log = logging.getLogger("redis_proxy")

HELLO_TIMEOUT_S = 10.0  # the new process's hello, and its answer to ours (it checks its uplink meanwhile)
READY_TIMEOUT_S = 30.0  # from sending the sockets to the new process's "ready" (it listens and adopts them)
FLUSH_TIMEOUT_S = 1.0  # a frozen session's replies still leaving: after this it stays with this process
LISTENERS = ("listen", "listen_raw", "admin")


class ControlServer:
    """The control socket (AF_UNIX SOCK_SEQPACKET, mode 0600) a running proxy listens on for takeovers."""

    def __init__(self, proxy: Proxy, path: str) -> None:
        self.proxy = proxy
        self.path = path
        self._sock: socket.socket | None = None
        self.busy = False  # a takeover is under way
        self.stop_after: str | None = None  # a stop asked for meanwhile (SIGTERM): done once it has ended
        self._closed = False

    def start(self) -> None:
        """Bind the path, replacing a stale socket left by a dead process (raises OSError with the path)."""
        _remove_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # Bound under a private name and renamed into place: the path never
            # names a half-set-up socket, and a takeover's new process replaces
            # the old one's without a moment when nothing answers there.
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            old_umask = os.umask(0o177)
            try:
                sock.bind(tmp)
            finally:
                os.umask(old_umask)
            sock.listen(4)
            os.replace(tmp, self.path)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"control_socket: cannot listen on {self.path}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept)
        log.info("control socket: %s (for redis-proxy --takeover)", self.path)

    def close(self, unlink: bool = True) -> None:
        """Stop listening; `unlink` False when a new process has (or is about to have) its own socket at the path."""
        if self._closed or self._sock is None:
            return
        self._closed = True
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        if unlink:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.stat(self.path).st_mode) and not unix_socket_answers(self.path, socket.SOCK_SEQPACKET):
                    os.unlink(self.path)

    def _accept(self) -> None:
        assert self._sock is not None
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        self.proxy.spawn(self._serve(Channel(conn)), "takeover-control")

    async def _serve(self, channel: Channel) -> None:
        try:
            if self.busy:
                await _refuse(channel, "a takeover is already under way")
                return
            self.busy = True
            try:
                await _take_over(self.proxy, channel, self)
            finally:
                self.busy = False
                if self.stop_after is not None:
                    self.proxy.request_stop(self.stop_after)
        except ControlChannelError as exc:
            log.warning("takeover: %s; this process keeps serving", exc)
        except Exception:  # never let a takeover's bug end the proxy
            log.exception("takeover: failed; this process keeps serving")
        finally:
            channel.close()


def _remove_stale(path: str) -> None:
    try:
        remove_stale_socket(path, socket.SOCK_SEQPACKET)
    except OSError as exc:
        hint = " (is the proxy already running? use --takeover)" if exc.errno == 98 else ""
        raise OSError(exc.errno, f"control_socket: {exc.strerror}{hint}") from None


async def _refuse(channel: Channel, why: str) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ControlChannelError):
        await channel.send({"ok": False, "error": why}, loop.time() + 1.0)


def _refusal(proxy: Proxy) -> str | None:
    if proxy.handed_over_to is not None:
        return f"this process already handed over to pid {proxy.handed_over_to}"
    if proxy.controller.closing:
        return "this process is shutting down"
    if proxy.switchover is not None and proxy.switchover.status.running:
        return "a switchover is running: wait for it to end or abort it, then take over"
    if proxy.write_tracker is not None:
        return "a copy-mode migration is tracking writes: wait for it to end or abort it, then take over"
    if proxy.controller.switchover_running is not None:
        return f"{proxy.controller.switchover_running} is running: wait for it to end, then take over"
    return None


def describe(proxy: Proxy) -> dict[str, Any]:
    """What the new process must match or carry on with (the hello's answer)."""
    config = proxy.config
    listeners: dict[str, Any] = {}
    for name in LISTENERS:
        section = getattr(config, name)
        if section is not None:
            listeners[name] = {"addr": section.addr, "network": getattr(section, "network", "tcp")}
    return {
        "ok": True,
        "pid": os.getpid(),
        "version": __version__,
        "format": handover.FORMAT,
        "listeners": listeners,
        "listen_auth": config.listen.auth,
        "uplink_name": config.uplink_name,
        "uplink_addr": config.uplink.addr,
        "operator_paused": proxy.controller.operator_paused,
    }


async def _take_over(proxy: Proxy, channel: Channel, control: ControlServer) -> None:
    loop = asyncio.get_running_loop()
    hello, stray = await channel.receive(loop.time() + HELLO_TIMEOUT_S)
    _close_all(stray)
    if hello.get("op") != "hello":
        await _refuse(channel, f"expected hello, got {hello.get('op')!r}")
        return
    why = _refusal(proxy)
    if why is None and hello.get("format") != handover.FORMAT:
        why = f"the new process's session format {hello.get('format')!r} is not this one's ({handover.FORMAT}): stop and start instead"
    if why is not None:
        log.warning("takeover by pid %s refused: %s", hello.get("pid"), why)
        await _refuse(channel, why)
        return
    new_pid = int(hello.get("pid", 0))
    log.info("takeover: pid %d (version %s) asks to take over", new_pid, hello.get("version"))
    described = describe(proxy)
    await channel.send(described, loop.time() + HELLO_TIMEOUT_S)
    take, stray = await channel.receive(loop.time() + HELLO_TIMEOUT_S)
    _close_all(stray)
    if take.get("op") != "take":
        log.info("takeover: pid %d gave up: %s", new_pid, take.get("error", take.get("op")))
        return
    why = _refusal(proxy)  # again: something may have started while the new process checked
    if why is not None:
        await _refuse(channel, why)
        return
    await Handover(proxy, channel, control, new_pid, described).run()


def _changed_since(proxy: Proxy, described: dict[str, Any]) -> str | None:
    """What the new process was told at hello that is no longer so (a switch or reload it waited for ended meanwhile)."""
    now = describe(proxy)
    for key in ("uplink_name", "uplink_addr", "listen_auth", "listeners"):
        if now[key] != described[key]:
            return f"{key.replace('_', ' ')} changed while the takeover waited (a switch or reload ended meanwhile): take over again"
    return None


class Handover:
    """One takeover from the moment the new process asked to take: every step, and undoing them."""

    def __init__(self, proxy: Proxy, channel: Channel, control: ControlServer, new_pid: int, described: dict[str, Any]) -> None:
        self.proxy = proxy
        self.described = described  # what the hello's answer told the new process
        self.channel = channel
        self.control = control
        self.new_pid = new_pid
        self.listening: Listening = {}
        self.frozen: list[ClientSession] = []
        self.held = False
        self.stayed = 0  # sessions left with this process

    async def run(self) -> None:
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        async with proxy.controller.switch_lock:  # no reload or switch meanwhile
            try:
                document, fds = await self._prepare()
            except (ControlError, OSError) as exc:
                await self._undo()
                log.warning("takeover by pid %d refused: %s", self.new_pid, exc)
                await _refuse(self.channel, str(exc))
                return
            try:
                await self.channel.send(document, loop.time() + READY_TIMEOUT_S, fds)
                answer, stray = await self.channel.receive(loop.time() + READY_TIMEOUT_S)
                _close_all(stray)
            except ControlChannelError as exc:
                await self._undo()
                log.warning("takeover by pid %d failed: %s; this process keeps serving", self.new_pid, exc)
                return
            if answer.get("op") != "ready":
                await self._undo()
                log.warning("takeover by pid %d failed: %s; this process keeps serving", self.new_pid, answer.get("error", answer))
                return
            self._let_go()
        with contextlib.suppress(ControlChannelError):
            await self.channel.send({"op": "released"}, loop.time() + 5.0)
        proxy.retire(self.new_pid)
        if self.stayed:  # the operator's pause, which the new process now holds, reaches them
            await follow_pause(proxy, self.channel, proxy.config.takeover_drain_s + 5.0)

    async def _prepare(self) -> tuple[dict[str, Any], list[int]]:
        proxy = self.proxy
        started = loop_time()
        self.listening = await proxy.detach_listeners()
        held_since = await proxy.controller.hold("takeover")  # time.monotonic(): CLOCK_MONOTONIC, the same in both processes
        self.held = True
        # Held, under the switch lock: nothing changes the uplink any more. A switch or reload
        # the takeover waited for may have changed it since the hello: the new process would
        # carry on with the old one.
        changed = _changed_since(proxy, self.described)
        if changed is not None:
            raise ControlError(changed)
        staying: dict[str, int] = {}
        for session in list(proxy.sessions):
            why = session.freeze_for_handover()
            if why is None:
                self.frozen.append(session)
            else:
                staying[why] = staying.get(why, 0) + 1
        await self._wait_flushed(staying)
        self.stayed = sum(staying.values())
        records = [handover.snapshot(session.core) for session in self.frozen]
        fds: list[int] = []
        listeners: list[dict[str, Any]] = []
        for name, sockets in self.listening.items():
            listeners.append({"name": name, "count": len(sockets)})
            fds += [sock.fileno() for sock in sockets]
        fds += [_fileno(session) for session in self.frozen]
        if staying:
            log.info("takeover: staying with this process: %s", ", ".join(f"{n} {why}" for why, n in sorted(staying.items())))
        log.info(
            "takeover: handing %d session(s) and %d listener(s) to pid %d (prepared in %.1f ms)",
            len(self.frozen), len(listeners), self.new_pid, (loop_time() - started) * 1000,
        )
        document = {
            "ok": True, "listeners": listeners, "sessions": records, "staying": staying, "held_since": held_since,
            "operator_paused": proxy.controller.operator_paused,  # as of now: the hello's may be stale
            "last_client_id": proxy.client_ids.last,  # the new process goes on from here: no id is reused
        }
        return document, fds

    async def _wait_flushed(self, staying: dict[str, int]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_TIMEOUT_S
        while any(not s.flushed() for s in self.frozen) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for session in [s for s in self.frozen if not s.flushed()]:
            self.frozen.remove(session)
            session.thaw()
            staying["replies still being written"] = staying.get("replies still being written", 0) + 1

    async def _undo(self) -> None:
        notify(f"MAINPID={os.getpid()}")  # systemd: the new process may have said it was the main one
        for session in self.frozen:
            session.thaw()
        self.frozen = []
        if self.listening:
            listening, self.listening = self.listening, {}
            try:
                await self.proxy.listen_all(listening)
            except OSError as exc:  # cannot happen with sockets that were listening a moment ago; say so if it does
                log.error("takeover: could not listen again after the failed takeover: %s", exc)
        if self.held:
            self.held = False
            self.proxy.controller.release_hold()

    def _let_go(self) -> None:
        """The new process serves everything it was sent: close this process's descriptors (no await: all at once)."""
        for session in self.frozen:
            session.handed_over()
        self.frozen = []
        for sockets in self.listening.values():
            for sock in sockets:
                sock.close()  # the new process has its own descriptors: the sockets keep listening
        self.listening = {}
        self.control.close(unlink=False)  # the new process puts its own control socket at the path
        if self.held:
            self.held = False
            self.proxy.controller.release_hold()  # what stays here carries on


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def _fileno(session: ClientSession) -> int:
    assert session.transport is not None
    sock = session.transport.get_extra_info("socket")
    return int(sock.fileno())


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
