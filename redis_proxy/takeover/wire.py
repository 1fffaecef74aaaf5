"""The takeover control socket's wire format: JSON documents with file descriptors, over AF_UNIX SOCK_SEQPACKET.

SEQPACKET keeps message boundaries, so each sendmsg arrives as one recvmsg
with its descriptors (SCM_RIGHTS) and nothing has to be re-framed. A
document is a header message `{"len": N, "fds": K}` followed by data
messages of at most CHUNK bytes, which carry the K descriptors, at most
FDS_PER_MESSAGE each (the kernel's SCM_MAX_FD is 253); trailing empty
messages carry descriptors the data did not need.

Every wait is bounded by the caller's deadline; a peer that goes away or
sends something malformed raises ControlChannelError.
"""

from __future__ import annotations

import array
import asyncio
import json
import socket
from typing import Any

CHUNK = 32 * 1024
FDS_PER_MESSAGE = 200
MAX_DOCUMENT = 1 << 31  # a header asking for more is malformed
MAX_FDS = 1 << 20


class ControlChannelError(Exception):
    """The control socket's peer went away, timed out or sent something malformed. One readable line."""


def _recvmsg(sock: socket.socket, maxfds: int) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    msg, ancdata, flags, _ = sock.recvmsg(CHUNK + 1024, socket.CMSG_LEN(maxfds * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    received = list(fds)
    if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        for fd in received:
            _close_fd(fd)
        raise ControlChannelError("a control message was truncated")
    return msg, received


def _close_fd(fd: int) -> None:
    try:
        socket.close(fd)
    except OSError:
        pass


class Channel:
    """One connected control socket, used from the event loop (non-blocking, with deadlines)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.loop = asyncio.get_running_loop()

    def close(self) -> None:
        self.sock.close()

    async def _wait(self, writable: bool, deadline: float) -> None:
        remaining = deadline - self.loop.time()
        if remaining <= 0:
            raise ControlChannelError("timed out on the control socket")
        ready: asyncio.Future[None] = self.loop.create_future()
        fd = self.sock.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        add, remove = (self.loop.add_writer, self.loop.remove_writer) if writable else (self.loop.add_reader, self.loop.remove_reader)
        add(fd, wake)
        try:
            await asyncio.wait_for(ready, remaining)
        except TimeoutError:
            raise ControlChannelError("timed out on the control socket") from None
        finally:
            remove(fd)

    async def _send(self, data: bytes, fds: list[int], deadline: float) -> None:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        while True:
            try:
                self.sock.sendmsg([data], ancillary)
                return
            except (BlockingIOError, InterruptedError):
                await self._wait(True, deadline)
            except OSError as exc:
                raise ControlChannelError(f"the control socket's peer went away ({exc.strerror or exc})") from None

    async def _recv(self, deadline: float, maxfds: int) -> tuple[bytes, list[int]]:
        while True:
            try:
                msg, fds = _recvmsg(self.sock, maxfds)
            except (BlockingIOError, InterruptedError):
                await self._wait(False, deadline)
                continue
            except OSError as exc:
                raise ControlChannelError(f"the control socket's peer went away ({exc.strerror or exc})") from None
            if not msg and not fds:
                raise ControlChannelError("the control socket's peer closed the connection")
            return msg, fds

    async def send(self, document: dict[str, Any], deadline: float, fds: list[int] | None = None) -> None:
        """Send one document and its descriptors (the caller keeps its own copies of them)."""
        fds = list(fds or [])
        body = json.dumps(document, separators=(",", ":")).encode()
        await self._send(json.dumps({"len": len(body), "fds": len(fds)}).encode(), [], deadline)
        offset = 0
        while offset < len(body) or fds:
            chunk, offset = body[offset : offset + CHUNK], offset + CHUNK
            batch, fds = fds[:FDS_PER_MESSAGE], fds[FDS_PER_MESSAGE:]
            await self._send(chunk or b" ", batch, deadline)  # a zero-length SEQPACKET reads as the peer closing

    async def receive(self, deadline: float) -> tuple[dict[str, Any], list[int]]:
        """The next document and the descriptors it carried (now this process's: close what is not used)."""
        header, stray = await self._recv(deadline, 1)
        for fd in stray:
            _close_fd(fd)
        try:
            sizes = json.loads(header)
            length, count = int(sizes["len"]), int(sizes["fds"])
        except (ValueError, KeyError, TypeError):
            raise ControlChannelError(f"malformed control message header: {header[:100]!r}") from None
        if not 0 <= length <= MAX_DOCUMENT or not 0 <= count <= MAX_FDS:
            raise ControlChannelError(f"control message too large ({length} bytes, {count} descriptors)")
        body = bytearray()
        fds: list[int] = []
        try:
            while len(body) < length or len(fds) < count:
                chunk, more = await self._recv(deadline, FDS_PER_MESSAGE)
                fds += more
                if len(body) < length:
                    body += chunk
            if len(fds) != count:
                raise ControlChannelError(f"expected {count} descriptors, received {len(fds)}")
            document = json.loads(bytes(body[:length]))
            if not isinstance(document, dict):
                raise ValueError("not an object")
        except BaseException as exc:
            for fd in fds:
                _close_fd(fd)
            if isinstance(exc, ControlChannelError):
                raise
            if isinstance(exc, ValueError):
                raise ControlChannelError(f"malformed control document: {exc}") from None
            raise
        return document, fds


async def connect(path: str, deadline: float) -> Channel:
    """Connect to a running proxy's control socket (raises ControlChannelError with the path)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, path), max(0.0, deadline - loop.time()))
    except (OSError, TimeoutError) as exc:
        sock.close()
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ControlChannelError(f"cannot connect to the control socket {path}: {why}") from None
    return Channel(sock)
