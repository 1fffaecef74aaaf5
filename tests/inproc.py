"""Run a real `redis_proxy.server.Proxy` inside the test process.

The proxy gets its own asyncio event loop in a background thread (plain
asyncio, no uvloop), listens on a real TCP port and talks to real
redis-servers; clients are real redis-py clients or raw sockets in the test's
own threads.  What the in-process form adds over `ProxyProcess` is direct
access to the controller's Python API (pause, unpause, pause_and_wait,
reload, info), which is what the signal handlers and the admin app call.

Every controller operation is run on the proxy's loop thread
(`asyncio.run_coroutine_threadsafe`), so calling the methods below from any
number of test threads at once is safe, and their results (or exceptions,
e.g. `ControlError`) come back to the caller.

    proxy = start(config_dict, tmp_path)   # or the `inproc_proxy` fixture
    proxy.pause(); proxy.info()["waiting_requests"]; proxy.unpause()
    proxy.rewrite_config(new_dict); proxy.reload()
    proxy.stop()
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import hiredis
import pytest
import redis

from redis_proxy.config import load_config
from redis_proxy.server import Proxy
from servers import _no_retry

T = TypeVar("T")

#: How long a controller operation may take before the caller gives up.
CALL_TIMEOUT = 30.0


class InProcProxy:
    """A Proxy on its own event loop thread. Create with `start()`."""

    def __init__(self, config: Mapping[str, Any], directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path = self.directory / "config.json"
        self.config: dict[str, Any] = {}
        self._write(config)
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_loop_error)
        #: Exceptions the event loop reported (a callback raised, a protocol
        #: failed): the fixture fails the test if there are any.
        self.loop_errors: list[dict[str, Any]] = []
        self._clients: list[redis.Redis] = []
        self._sockets: list[socket.socket] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._run_loop, name="inproc-proxy", daemon=True)
        self._thread.start()
        try:
            self.proxy: Proxy = self.run(self._create)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            raise

    # -- loop thread ----------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.loop_errors.append(context)
        loop.default_exception_handler(context)

    async def _create(self) -> Proxy:
        proxy = Proxy(load_config(str(self.config_path)), str(self.config_path))
        await proxy.start()
        return proxy

    # -- running things on the loop --------------------------------------------

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float = CALL_TIMEOUT) -> Any:
        """Run `fn(*args)` on the loop thread and return its result (or raise its exception).

        `fn` may be a coroutine function (awaited) or a plain function.
        """

        async def call() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Like run(), but return the concurrent.futures.Future at once."""

        async def call() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(call(), self.loop)

    # -- controller API --------------------------------------------------------

    @property
    def controller(self) -> Any:
        return self.proxy.controller

    def pause(self) -> None:
        self.run(self.controller.pause)

    def unpause(self) -> None:
        self.run(self.controller.unpause)

    def pause_and_wait(self, timeout: float) -> float:
        return self.run(self.controller.pause_and_wait, timeout, timeout=timeout + CALL_TIMEOUT)

    def reload(self) -> dict[str, Any]:
        return self.run(self.controller.reload)

    def reload_async(self) -> Any:
        """Start a reload; returns a Future for its result."""
        return self.submit(self.controller.reload)

    def verify(self) -> str:
        return self.run(self.controller.verify)

    def info(self) -> dict[str, Any]:
        return self.run(self.proxy.info)

    def state(self) -> str:
        return self.run(lambda: self.controller.state)

    def wait_for(self, predicate: Callable[[dict[str, Any]], Any], timeout: float = 5.0, what: str = "") -> dict[str, Any]:
        """Poll info() until predicate(info) is true; return that info."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.info()
            if predicate(info):
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}: last info {info}")
            time.sleep(0.005)

    def wait_state(self, state: str, timeout: float = 5.0) -> dict[str, Any]:
        return self.wait_for(lambda i: i["state_str"] == state, timeout, f"state {state}")

    # -- config ---------------------------------------------------------------------

    def _write(self, config: Mapping[str, Any]) -> None:
        cfg = copy.deepcopy(dict(config))
        listen = dict(cfg.get("listen") or {})
        if not listen.get("addr"):
            # Keep the listen address across rewrites (a change would be refused).
            listen["addr"] = self.config.get("listen", {}).get("addr") or "127.0.0.1:0"
        cfg["listen"] = listen
        self.config = cfg
        self.write_text(json.dumps(cfg, indent=2, default=str))

    def write_text(self, text: str) -> None:
        """Replace the config file with exactly this text (write-then-rename)."""
        tmp = self.config_path.with_suffix(".json.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.config_path)

    def rewrite_config(self, config: Mapping[str, Any]) -> None:
        """Replace the config file; reload() makes the proxy read it."""
        self._write(config)

    # -- addresses and clients -----------------------------------------------------

    @property
    def addr(self) -> str:
        return self.proxy.addresses["listen"]

    @property
    def port(self) -> int:
        return int(self.addr.rpartition(":")[2])

    def client(self, **kw: Any) -> redis.Redis:
        """A redis-py client of the proxy: bytes, no retries; closed by stop()."""
        params: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "decode_responses": False,
            "socket_timeout": 10.0,
            "socket_connect_timeout": 5.0,
            "retry": _no_retry(),
        }
        params.update(kw)
        client = redis.Redis(**params)
        self._clients.append(client)
        return client

    def raw(self, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> RawClient:
        """A raw RESP connection to the proxy; closed by stop()."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname="localhost")
        self._sockets.append(sock)
        return RawClient(sock)

    # -- shutdown -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the proxy (as at shutdown), then its loop and thread."""
        if self._stopped:
            return
        self._stopped = True
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        try:
            self.run(self.proxy.stop, timeout=20)
        finally:
            self.run(self._cancel_leftovers, timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self.loop.close()

    async def _cancel_leftovers(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)


class RawClient:
    """A raw socket speaking RESP: send commands, read parsed replies (and the raw bytes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = hiredis.Reader()
        self.received = bytearray()  # every byte received so far

    def send(self, *commands: tuple[Any, ...] | list[Any]) -> None:
        self.sock.sendall(b"".join(encode(*c) for c in commands))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float | None = None) -> Any:
        """The next whole reply (errors are returned as hiredis.ReplyError values)."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while True:
            value = self.reader.gets()
            if value is not False:
                return value
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the proxy closed the connection")
            self.received += data
            self.reader.feed(data)

    def call(self, *args: Any) -> Any:
        self.send(args)
        return self.read()

    def pending_bytes(self, wait: float) -> bytes:
        """Whatever arrives within `wait` seconds (b"" if nothing); also fed to the parser."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return b""
        finally:
            self.sock.settimeout(10.0)
        self.received += data
        self.reader.feed(data)
        return data

    def close(self) -> None:
        self.sock.close()


def encode(*args: Any) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def start(config: Mapping[str, Any], tmp_path: Path) -> InProcProxy:
    """Write `config` to `tmp_path/config.json` and start a proxy on it in a background thread."""
    return InProcProxy(config, tmp_path)


@pytest.fixture
def inproc_proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Mapping[str, Any]], InProcProxy]]:
    """Factory: inproc_proxy(config_dict) -> a started InProcProxy; all are stopped at teardown.

    A test whose proxy's event loop reported an unexpected exception fails at
    teardown (unless it is an expected failure).
    """
    proxies: list[InProcProxy] = []

    def create(config: Mapping[str, Any]) -> InProcProxy:
        proxy = start(config, tmp_path / f"inproc{len(proxies)}")
        proxies.append(proxy)
        return proxy

    yield create
    errors: list[str] = []
    for proxy in proxies:
        proxy.stop()
        errors += [str(e.get("exception") or e.get("message")) for e in proxy.loop_errors]
    if errors and request.node.get_closest_marker("xfail") is None:
        pytest.fail("the proxy's event loop reported errors:\n" + "\n".join(errors))
