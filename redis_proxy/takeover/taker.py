"""The new process's side of a takeover (`redis-proxy -f config.json --takeover`).

It connects to the running proxy's control socket and says hello; checks
that its own config can carry on from the running one (same listener
addresses and listen.auth, the uplink in use known to it, reachable with
its credentials) before anything is paused; asks to take over; receives the
listening sockets and the sessions; adopts them while still paused (nothing
read from any client); says "ready"; and once the old process answers
"released" feeds each session its handed-over input, connects the uplinks
and resumes. See giver.py for the old process's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

from redis_proxy import __version__
from redis_proxy.admin.server import preload as preload_admin
from redis_proxy.config import Config
from redis_proxy.control_errors import ControlError
from redis_proxy.reloading import file_choice
from redis_proxy.sentinel.query import with_master
from redis_proxy.server import Listening, Proxy
from redis_proxy.session import handover
from redis_proxy.session.protocol import ClientSession
from redis_proxy.systemd_notify import notify
from redis_proxy.takeover.giver import HELLO_TIMEOUT_S, READY_TIMEOUT_S
from redis_proxy.takeover.pause_link import forward_pause
from redis_proxy.pidfile import process_alive
from redis_proxy.takeover.wire import Channel, ControlChannelError, connect
from redis_proxy.tls import uplink_context
from redis_proxy.uplink import UplinkError, check_uplink

log = logging.getLogger("redis_proxy")

RELEASE_TIMEOUT_S = 10.0
UPLINKS_WAIT_S = 2.0  # then held commands go ahead (a subscriber still connecting may miss a message)


class TakeoverError(Exception):
    """The takeover did not happen; the running proxy keeps serving. One readable line."""


def mismatches(config: Config, info: dict[str, Any]) -> list[str]:
    """What in this config cannot carry on from the running proxy's (its listening sockets and sessions come as they are)."""
    problems: list[str] = []
    running = info.get("listeners", {})
    for name in ("listen", "listen_raw", "admin"):
        section = getattr(config, name)
        mine = {"addr": section.addr, "network": getattr(section, "network", "tcp")} if section is not None else None
        theirs = running.get(name)
        if mine != theirs:
            shown = [f"{v['addr']} ({v['network']})" if v else "none" for v in (theirs, mine)]
            problems.append(f"{name}: the running proxy listens on {shown[0]}, this config says {shown[1]}: a takeover keeps the listening sockets")
    if info.get("listen_auth") != config.listen.auth:
        problems.append(f"listen.auth: the running proxy's is {info.get('listen_auth')!r}, this config's {config.listen.auth!r}")
    return problems


def runtime_config(config: Config, info: dict[str, Any]) -> Config:
    """This config with the uplink the running proxy uses now (a runtime switch or failover is not undone)."""
    name, addr = info.get("uplink_name"), info.get("uplink_addr")
    if name is not None:
        if name not in config.uplinks:
            raise TakeoverError(f"the running proxy uses uplink {name!r}, which this config's uplinks do not have")
        return config.with_uplink(name)
    if addr == config.uplink.addr:
        return config
    if config.sentinel is not None:
        return with_master(config, str(addr))  # the master Sentinel named, with this config's credentials
    raise TakeoverError(f"the running proxy uses uplink {addr}, this config's uplink is {config.uplink.addr}")


async def take_over(config: Config, config_path: str | None, control_path: str) -> Proxy:
    """Take over from the proxy at `control_path`: a serving Proxy, or TakeoverError (the old one serves on)."""
    loop = asyncio.get_running_loop()
    try:
        channel = await connect(control_path, loop.time() + HELLO_TIMEOUT_S)
    except ControlChannelError as exc:
        raise TakeoverError(f"{exc} (is the proxy running, with this control_socket?)") from None
    kept = False
    try:
        proxy, kept = await _take_over(channel, config, config_path)
        return proxy
    except ControlChannelError as exc:
        raise TakeoverError(f"the running proxy's control socket: {exc}") from None
    finally:
        if not kept:
            channel.close()


async def _take_over(channel: Channel, file_config: Config, config_path: str | None) -> tuple[Proxy, bool]:
    """The serving Proxy, and whether `channel` was kept open (something stayed with the old process: pause_link.py)."""
    loop = asyncio.get_running_loop()
    hello = {"op": "hello", "pid": os.getpid(), "version": __version__, "format": handover.FORMAT}
    await channel.send(hello, loop.time() + HELLO_TIMEOUT_S)
    info, stray = await channel.receive(loop.time() + HELLO_TIMEOUT_S)
    _close_fds(stray)
    if not info.get("ok"):
        raise TakeoverError(f"the running proxy refused: {info.get('error')}")
    old_pid = int(info["pid"])
    try:
        problems = mismatches(file_config, info)
        if problems:
            raise TakeoverError("; ".join(problems))
        config = runtime_config(file_config, info)
        try:
            checked = await check_uplink(config.uplink, uplink_context(config.uplink), timeout=5.0)
        except UplinkError as exc:
            raise TakeoverError(f"the uplink in use cannot be used with this config: {exc}") from None
    except TakeoverError as exc:
        with contextlib.suppress(ControlChannelError):
            await channel.send({"op": "cancel", "error": str(exc)}, loop.time() + 1.0)
        raise
    log.info("takeover: pid %d (version %s) agrees; %s", old_pid, info.get("version"), checked)
    if file_config.admin is not None:
        preload_admin()
    await channel.send({"op": "take"}, loop.time() + HELLO_TIMEOUT_S)
    started = loop.time()
    document, fds = await channel.receive(loop.time() + READY_TIMEOUT_S + HELLO_TIMEOUT_S)
    if not document.get("ok"):
        _close_fds(fds)
        raise TakeoverError(f"the running proxy refused: {document.get('error')}")
    proxy = Proxy(config, config_path)
    proxy.client_ids.skip_past(int(document.get("last_client_id", 0)))  # closed clients' and staying ones' ids too
    proxy.controller.file_uplink = file_choice(file_config)  # a reload compares the file with this, as in the old process
    listening: Listening = {}
    adopting: list[tuple[ClientSession, socket.socket]] = []
    try:
        paused = document.get("operator_paused", info.get("operator_paused"))  # as of the hand-over, not the hello
        await _adopt(proxy, document, fds, bool(paused), listening, adopting)
    except Exception as exc:
        await _abandon(proxy, listening, adopting)
        with contextlib.suppress(ControlChannelError):
            await channel.send({"ok": False, "error": f"the new process could not adopt: {exc}"}, loop.time() + 1.0)
        if isinstance(exc, (OSError, ControlError, handover.RecordError, ValueError)):
            raise TakeoverError(f"could not adopt what the running proxy handed over: {exc}") from None
        raise
    # systemd (NotifyAccess=all): this process is the unit's main one before the old one may exit;
    # the old one says it is again if the takeover is undone.
    notify(f"MAINPID={os.getpid()}")
    await channel.send({"op": "ready"}, loop.time() + RELEASE_TIMEOUT_S)
    if not await _released(channel, old_pid):
        await _abandon(proxy, listening, adopting)
        raise TakeoverError(f"pid {old_pid} did not let go (it keeps serving)")
    # Only now are the connections attached to the loop: a transport reads as soon as it
    # is attached (uvloop starts reading after connection_made, whatever it asked), and
    # nothing may be read from a client before the old process has let go (it would be
    # lost if the takeover rolled back, and come before the handed-over input).
    sessions = await _attach(adopting)
    for session in sessions:
        session.adopted()
    # Uplink connections are opened again before anything is released: a PUBLISH held
    # during the takeover must find every subscription back in place, and the first
    # command after it need not wait for a connection.
    connecting = [task for session in sessions if (task := session.connect_task) is not None]
    if connecting:
        await asyncio.wait(connecting, timeout=UPLINKS_WAIT_S)
    proxy.controller.release_hold()  # an operator's pause carried over stays
    held_ms = (time.monotonic() - float(document.get("held_since", time.monotonic()))) * 1000
    try:
        await proxy.start_admin_app(listening.get("admin"))
    except OSError as exc:  # clients are served here already: say so, do not end them
        log.error("takeover: the admin app could not start: %s", exc.strerror or exc)
    log.info(
        "takeover: serving %d session(s) from pid %d; clients held %.1f ms; %.1f ms after asking; %s stayed with it",
        len(sessions), old_pid, held_ms, (loop.time() - started) * 1000, _staying(document.get("staying", {})),
    )
    if not document.get("staying"):
        return proxy, False
    proxy.spawn(forward_pause(proxy, channel, old_pid, bool(paused)), "takeover-pause-link")
    return proxy, True


async def _adopt(
    proxy: Proxy, document: dict[str, Any], fds: list[int], operator_paused: bool, listening: Listening,
    adopting: list[tuple[ClientSession, socket.socket]],
) -> None:
    """Listeners (filled into `listening`) and restored sessions with their sockets (into `adopting`, not attached to the loop yet)."""
    sockets: list[socket.socket] = []
    try:
        for fd in fds:
            sockets.append(socket.socket(fileno=fd))
    except OSError:
        for sock in sockets:
            sock.close()
        _close_fds(fds[len(sockets):])
        raise
    index = 0
    for item in document["listeners"]:
        count = int(item["count"])
        listening[str(item["name"])] = sockets[index : index + count]
        index += count
    records = document["sessions"]
    client_sockets = sockets[index:]
    if len(records) != len(client_sockets):
        for sock in sockets:
            sock.close()
        raise ValueError(f"{len(records)} session records for {len(client_sockets)} sockets")
    await proxy.controller.hold("takeover")  # nothing is forwarded before the old process lets go
    if operator_paused:
        proxy.controller.pause()  # the operator's pause carries over
    try:
        for record, sock in zip(records, client_sockets, strict=True):
            session = ClientSession(proxy)
            session.adopting = handover.restore(session.core, record)
            adopting.append((session, sock))
        # Listening only now: a client that connects meanwhile gets an id no moved session has.
        # The admin app starts once clients are released (it is not what they wait for).
        await proxy.start(listening, admin=False)
    except BaseException:
        for sock in client_sockets[len(adopting):]:
            sock.close()
        raise


async def _attach(adopting: list[tuple[ClientSession, socket.socket]]) -> list[ClientSession]:
    """The old process has let go: attach each connection to the loop (its session reads once adopted())."""
    loop = asyncio.get_running_loop()
    sessions: list[ClientSession] = []
    for session, sock in adopting:
        try:
            await loop.connect_accepted_socket(lambda session=session: session, sock)  # type: ignore[misc]
        except OSError as exc:  # the connection is this process's alone now: nothing else can serve it
            log.warning("takeover: could not serve a handed-over connection: %s", exc.strerror or exc)
            sock.close()
            continue
        sessions.append(session)
    adopting.clear()
    return sessions


async def _released(channel: Channel, old_pid: int) -> bool:
    """Whether the old process let go: it said so, or it is gone (its descriptors closed with it)."""
    loop = asyncio.get_running_loop()
    try:
        answer, stray = await channel.receive(loop.time() + RELEASE_TIMEOUT_S)
        _close_fds(stray)
        return answer.get("op") == "released"
    except ControlChannelError:
        return not process_alive(old_pid)


async def _abandon(proxy: Proxy, listening: Listening, adopting: list[tuple[ClientSession, socket.socket]]) -> None:
    """Undo a partial adoption without a byte to any client: the old process still has every connection."""
    for _, sock in adopting:
        sock.close()  # never attached to the loop: nothing was read from it
    adopting.clear()
    for session in list(proxy.sessions):
        if session.transport is not None:
            session.transport.abort()
    await proxy.abandon()
    for sock in listening.get("admin", []):
        sock.close()  # this process's descriptors only: the old process listens on its own




def _staying(staying: dict[str, int]) -> str:
    return ", ".join(f"{n} ({why})" for why, n in sorted(staying.items())) if staying else "nothing"


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
