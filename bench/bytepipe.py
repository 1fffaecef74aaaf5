"""Reference point for the benchmark: a raw uvloop byte pipe, no parsing at all.

Same command line as the proxy (`bytepipe.py -f CONFIG.json`, reading
uplink.addr and listen.addr), so `run_bench.py --extra-proxy-cmd
"pipe=python bench/bytepipe.py"` measures the ceiling any Python proxy on
asyncio Protocols can reach on this machine, in the same run as the proxy.
Not part of the product: no TLS, no auth, no limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

import uvloop


class End(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: End | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-f", required=True)
    config = json.load(open(parser.parse_args().f))
    up_host, up_port = config["uplink"]["addr"].rsplit(":", 1)
    host, port = config["listen"]["addr"].rsplit(":", 1)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    class Client(End):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            task = loop.create_task(self.connect())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async def connect(self) -> None:
            _, uplink = await loop.create_connection(End, up_host, int(up_port))
            uplink.peer, self.peer = self, uplink
            if self.early:
                uplink.transport.writelines(self.early)  # type: ignore[union-attr]

    server = await loop.create_server(Client, host, int(port))
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
