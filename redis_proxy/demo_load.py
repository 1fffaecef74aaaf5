"""The pieces of `redis-proxy demo`: throwaway child processes and client load.

Each client is a thread with its own redis-py connection and no retries: a
retried INCR could be applied twice, and a hidden retry would hide exactly
the errors the demo is there to count.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

CHECK_EVERY = 10  # every Nth operation of a client is a SET/GET check instead of an INCR
ERROR_PAUSE_S = 0.05  # after an error, so a broken connection does not spin


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (another process may still take it: callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(command: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child in its own session: a Ctrl-C in the terminal reaches only the
    demo, which then stops its children in order (clients first, then the
    proxy, then the servers) instead of all dying at once."""
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time (only this child, by its pid)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log_path: Path, timeout: float = 15.0) -> None:
    """Wait until 127.0.0.1:port accepts connections; RuntimeError (with the log) if the process exits or it takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; its log ({log_path}):\n{tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s; its log:\n{tail(log_path)}")


def redis_server(binary: str, port: int, directory: Path) -> subprocess.Popen[bytes]:
    # No persistence (a throwaway), and no delay before a diskless full sync:
    # Redis waits 5 s by default for more replicas to join one, which would be
    # most of a short demo. Not daemonized, so its pid is ours to stop.
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--daemonize", "no", "--protected-mode", "no", "--dir", str(directory),
        "--repl-diskless-sync-delay", "0", "--logfile", "",
    ]  # fmt: skip
    return spawn(command, directory / "redis.log", directory)


def client(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=10.0, socket_connect_timeout=5.0, retry=Retry(NoBackoff(), 0)
    )


class LoadClient(threading.Thread):
    """INCRs its own counter `demo:{n}`; every CHECK_EVERY-th operation SETs a
    random value and GETs it back. Remembers the last acknowledged count and
    its longest single command (a "stall": what a switchover costs a client)."""

    def __init__(self, n: int, port: int, stop_event: threading.Event) -> None:
        super().__init__(name=f"demo-client-{n}", daemon=True)
        self.n = n
        self.key = f"demo:{n}"
        self.port = port
        self.stop_event = stop_event
        self.acked = 0  # the last INCR reply: that many increments are acknowledged
        self.ops = 0
        self.errors = 0
        self.messages: list[str] = []  # the first few errors, for the summary
        self.stall_s = 0.0
        self.rng = random.Random(n)

    def _error(self, text: str) -> None:
        self.errors += 1
        if len(self.messages) < 3:
            self.messages.append(text)

    def _timed(self, call: Callable[[], object]) -> object:
        started = time.perf_counter()
        reply = call()
        self.stall_s = max(self.stall_s, time.perf_counter() - started)
        return reply

    def _step(self, conn: redis.Redis, certain: bool) -> bool:
        """One operation; returns whether the counter's state is known afterwards."""
        if self.ops % CHECK_EVERY == CHECK_EVERY - 1:
            value = os.urandom(8).hex() + str(self.rng.random())
            self._timed(lambda: conn.set(f"{self.key}:check", value))
            got = self._timed(lambda: conn.get(f"{self.key}:check"))
            self.ops += 2
            if got != value.encode():
                self._error(f"GET {self.key}:check returned {got!r}, not the value just SET")
            return certain
        reply = self._timed(lambda: conn.incr(self.key))
        self.ops += 1
        assert isinstance(reply, int)
        # After an error the failed INCR may or may not have been applied, so
        # only a reply following a known count can be checked.
        if certain and reply != self.acked + 1:
            self._error(f"INCR {self.key} returned {reply} after {self.acked}")
        self.acked = reply
        return True

    def run(self) -> None:
        conn = client(self.port)
        certain = True
        try:
            while not self.stop_event.is_set():
                try:
                    certain = self._step(conn, certain)
                except redis.RedisError as exc:
                    self._error(f"{type(exc).__name__}: {exc}")
                    certain = False
                    time.sleep(ERROR_PAUSE_S)
        finally:
            conn.close()

