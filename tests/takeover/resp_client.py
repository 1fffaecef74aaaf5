"""A minimal blocking RESP client over one socket that never reconnects: a test can tell the connection never changed."""

from __future__ import annotations

import socket
from typing import Any

import hiredis


def encode(*args: str | bytes | int) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Conn:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.local = self.sock.getsockname()  # the same before and after: the connection never changed
        self.reader = hiredis.Reader(replyError=hiredis.ReplyError)

    def send(self, *args: str | bytes | int) -> None:
        self.sock.sendall(encode(*args))

    def read(self) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise reply
                return reply
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the proxy closed the connection")
            self.reader.feed(data)

    def call(self, *args: str | bytes | int) -> Any:
        self.send(*args)
        return self.read()

    def same_socket(self) -> bool:
        return self.sock.getsockname() == self.local and self.sock.fileno() != -1

    def close(self) -> None:
        self.sock.close()
