"""The control socket's documents with descriptors, over a real SEQPACKET socket pair."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from redis_proxy.takeover.wire import CHUNK, Channel, ControlChannelError


def _pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def test_a_large_document_and_hundreds_of_descriptors_arrive_whole() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        left, right = Channel(a), Channel(b)
        pipes = [os.pipe() for _ in range(450)]  # more than two messages' worth of descriptors
        document = {"blob": "x" * (3 * CHUNK + 17), "n": 450}
        sending = asyncio.ensure_future(left.send(document, loop.time() + 5, [w for _, w in pipes]))
        received, fds = await right.receive(loop.time() + 5)
        await sending
        assert received == document and len(fds) == 450
        # Each received descriptor is the same pipe: written here, read from the original end.
        for (r, w), fd in zip(pipes, fds, strict=True):
            os.write(fd, b"!")
            assert os.read(r, 1) == b"!"
            for end in (r, w, fd):
                os.close(end)
        left.close()
        right.close()

    asyncio.run(main())


def test_a_peer_that_goes_away_or_stays_silent_is_an_error_not_a_hang() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        left, right = Channel(a), Channel(b)
        with pytest.raises(ControlChannelError, match="timed out"):
            await right.receive(loop.time() + 0.1)
        left.close()
        with pytest.raises(ControlChannelError, match="closed the connection"):
            await right.receive(loop.time() + 1)
        right.close()

    asyncio.run(main())


def test_a_malformed_header_is_refused() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        right = Channel(b)
        a.send(b"not json")
        with pytest.raises(ControlChannelError, match="malformed control message header"):
            await right.receive(loop.time() + 1)
        a.send(b'{"len": 99999999999999, "fds": 0}')
        with pytest.raises(ControlChannelError, match="too large"):
            await right.receive(loop.time() + 1)
        a.close()
        right.close()

    asyncio.run(main())
