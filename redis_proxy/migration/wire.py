"""A pipelining connection for the copier: commands out in one write, raw replies in (hiredis).

redis-py's pipelines spend ~12 µs of Python per command on packing,
response callbacks and timeouts; the cutover copies and verifies
thousands of keys while clients are held, so that cost is the hold. Here
a command costs its encoding and one hiredis parse.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import hiredis

from redis_proxy.config import UplinkConfig
from redis_proxy.control.client import ControlPlaneError
from redis_proxy.resp import encode_command
from redis_proxy.tls import uplink_context
from redis_proxy.uplink import UplinkError, auth_command, open_uplink


def _arg(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class Pipe(asyncio.Protocol):
    """One connection: `run` sends a batch and waits for exactly as many replies (errors in their places)."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.replies: list[Any] = []
        self.want = 0
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        replies = self.replies
        gets = self.reader.gets
        while (reply := gets()) is not False:
            replies.append(reply)
        if self.waiter is not None and len(replies) >= self.want and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed by the server")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    async def run(self, commands: list[tuple[Any, ...]], timeout: float) -> list[Any]:
        if self.lost is not None or self.transport is None:
            raise ConnectionResetError(f"connection lost: {self.lost}")
        assert self.waiter is None, "one batch at a time"
        self.replies, self.want = [], len(commands)
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            self.transport.write(b"".join(encode_command([_arg(a) for a in args]) for args in commands))
            if len(self.replies) < self.want:
                await asyncio.wait_for(self.waiter, timeout)
        except BaseException as exc:
            # Cut short (a timeout, a cancelled hold): the replies still to
            # come would be taken for the next batch's. The connection goes.
            self.lost = self.lost or exc
            self.close()
            raise
        finally:
            self.waiter = None
        replies, self.replies = self.replies, []
        return replies

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # not close(): what is still buffered must not be sent


async def open_pipe(uplink: UplinkConfig, db: int, timeout: float, name: str) -> Pipe:
    """Connected, authenticated with the uplink's credentials, `db` selected; ControlPlaneError naming `name`."""
    try:
        pipe = await open_uplink(uplink, uplink_context(uplink), timeout, Pipe)
    except UplinkError as exc:
        raise ControlPlaneError(f"{name}: {exc}") from None
    setup: list[tuple[Any, ...]] = []
    auth = auth_command(uplink)
    if auth is not None:
        setup.append(tuple(auth))
    setup.append(("SELECT", db))
    try:
        replies = await pipe.run(setup, timeout)
    except (OSError, TimeoutError) as exc:
        pipe.close()
        raise ControlPlaneError(f"{name}: {exc or 'no answer'}") from None
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            pipe.close()
            raise ControlPlaneError(f"{name}: {'AUTH' if auth and reply is replies[0] else 'SELECT'} refused: {reply}")
    return pipe
