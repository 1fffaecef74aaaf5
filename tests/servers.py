"""Helpers that run REAL redis-server and redis-proxy processes for tests.

Nothing here is mocked: every helper starts an actual process on a free port
on 127.0.0.1 and talks to it over real sockets, so the tests exercise the
same code paths as production.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REPO_ROOT: Path = Path(__file__).resolve().parent.parent

#: How long a process may take to become reachable before the helper gives up.
STARTUP_TIMEOUT: float = 10.0
#: Grace period after SIGTERM before a redis-server gets SIGKILL.
REDIS_STOP_TIMEOUT: float = 5.0
#: How much of a log is quoted in exception messages (the tail is the useful part).
LOG_TAIL_CHARS: int = 8000

T = TypeVar("T")


class TLSFiles(Protocol):
    """What the helpers need from ``tests/certs.py``'s ``CertFiles``.

    A Protocol instead of an import so this module works before (or without)
    certs.py.
    """

    ca_cert: Path
    cert: Path
    key: Path


# --------------------------------------------------------------------------
# ports, polling
# --------------------------------------------------------------------------

# Ports handed out by free_port() in this process.  The kernel may return the
# same ephemeral port twice once the probe socket is closed; several ports are
# often reserved before any of them is bound (listen + admin of a proxy), so
# we remember them to never give one out twice.
_handed_out_ports: set[int] = set()
_ports_lock = threading.Lock()


def recv_line(sock: socket.socket) -> bytes:
    """One CRLF-terminated line from a raw socket (byte by byte: tests only)."""
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is currently free.

    There is an unavoidable race between this call and the moment the real
    server binds the port; RedisServer retries with a new port when it loses
    that race.
    """
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out_ports:
                _handed_out_ports.add(port)
                return port
    raise RuntimeError("could not find a free TCP port")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition not met",
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Exceptions raised by the predicate count as "not yet" (a server that is
    still coming up refuses connections), but the last one is reported if the
    deadline passes so a real bug is not hidden.  Meant for tests only.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
        except Exception as exc:  # noqa: BLE001 - see docstring
            last_error = exc
        else:
            if result:
                return result
            last_error = None
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise AssertionError(f"timed out after {timeout:.1f}s: {message}{detail}")
        time.sleep(interval)


def short_tmp_dir(prefix: str = "rp-") -> Path:
    """Create a temporary directory with a short path.

    Unix socket paths are limited to ~107 bytes and pytest's tmp_path is often
    longer than that, so sockets go into directories made here.
    """
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.path.isdir("/tmp") else None))


def _tail(text: str) -> str:
    if len(text) <= LOG_TAIL_CHARS:
        return text
    return "...[log truncated]...\n" + text[-LOG_TAIL_CHARS:]


def _read_log(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _no_retry() -> Retry:
    # redis-py retries failed commands by default; tests must see each failure
    # exactly as the proxy produced it, so helper clients never retry.
    return Retry(NoBackoff(), 0)


# Every process started here, so that an interrupted test run does not leave
# redis-servers or proxies running in the background.
_live_processes: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_live_processes):
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    _live_processes.clear()


def _terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> tuple[int, bool]:
    """Send ``sig``, wait up to ``timeout``, SIGKILL if needed.

    Returns (exit code, whether SIGKILL was needed).
    """
    killed = False
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
    _live_processes.discard(proc)
    return proc.returncode, killed


# --------------------------------------------------------------------------
# redis-server
# --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def redis_server_binary() -> str | None:
    """Path of ``redis-server`` on PATH, or None."""
    return shutil.which("redis-server")


@lru_cache(maxsize=1)
def redis_server_version() -> tuple[int, ...]:
    """Version of the installed redis-server, e.g. (7, 0, 15); () if unknown."""
    binary = redis_server_binary()
    if binary is None:
        return ()
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in match.groups()) if match else ()


class _Managed:
    """A process a test starts and closes: usable as a context manager."""

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RedisServer(_Managed):
    """A real ``redis-server`` on 127.0.0.1, without persistence, in its own tmp dir.

    ``unixsocket``: a path, or True for a socket in the server's own
    (short-path) tmp dir, or None for no unix socket.
    ``tls``: serve TLS only (the plain port is disabled) with these files.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        unixsocket: str | Path | bool | None = None,
        tls: TLSFiles | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        # A port chosen by the caller must be kept; a port we picked may be
        # replaced if another process grabs it before redis binds it.
        self._port_is_fixed = port is not None
        self.port: int = port if port is not None else free_port()
        self.password = password
        self.tls = tls
        self.extra_args: list[str] = list(extra_args)
        self.directory: Path = short_tmp_dir("redis-")
        self.log_path: Path = self.directory / "redis.log"
        self.unixsocket: Path | None
        if unixsocket is True:
            self.unixsocket = self.directory / "redis.sock"
        elif unixsocket is None or unixsocket is False:
            self.unixsocket = None
        else:
            self.unixsocket = Path(unixsocket)
        self.proc: subprocess.Popen[bytes] | None = None
        self._clients: list[redis.Redis] = []
        self._closed = False

    # -- properties -------------------------------------------------------

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """Everything redis-server has logged (across restarts)."""
        return _read_log(self.log_path)

    # -- lifecycle --------------------------------------------------------

    def _command(self) -> list[str]:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        cmd = [
            binary,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--dir", str(self.directory),
            # Log to stdout, which start() redirects into log_path.
            "--logfile", "",
        ]
        if self.tls is not None:
            cmd += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert),
                "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca_cert),
                "--tls-auth-clients", "no",
            ]
        else:
            cmd += ["--port", str(self.port)]
        if self.password is not None:
            cmd += ["--requirepass", self.password]
        if self.unixsocket is not None:
            cmd += ["--unixsocket", str(self.unixsocket), "--unixsocketperm", "700"]
        if redis_server_version() >= (7,):
            # Redis 7 refuses DEBUG by default; tests use DEBUG SLEEP to fake a
            # slow server.  Older servers do not know the option at all.
            cmd += ["--enable-debug-command", "yes"]
        cmd += self.extra_args
        return cmd

    def start(self) -> Self:
        """Start the server and wait until it answers PING (10 s at most)."""
        if self._closed:
            raise RuntimeError("RedisServer was closed")
        if self.running:
            return self
        attempts = 1 if self._port_is_fixed else 5
        for attempt in range(attempts):
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log_file:
                self.proc = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                )
            _live_processes.add(self.proc)
            try:
                self._wait_ready()
                # From now on restart() must reuse this port.
                self._port_is_fixed = True
                return self
            except RuntimeError:
                new_output = self.log()[log_start:]
                lost_port_race = "Address already in use" in new_output
                if lost_port_race and attempt + 1 < attempts:
                    self.port = free_port()
                    continue
                raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _live_processes.discard(self.proc)
                raise RuntimeError(
                    f"redis-server on port {self.port} exited early with code "
                    f"{self.proc.returncode}; log:\n{_tail(self.log())}"
                )
            probe = self._make_client(socket_timeout=1.0, socket_connect_timeout=0.5)
            try:
                if probe.ping():
                    return
            except (redis.RedisError, OSError) as exc:
                last_error = exc
            finally:
                probe.close()
            time.sleep(0.02)
        _terminate(self.proc, signal.SIGKILL, 5)
        raise RuntimeError(
            f"redis-server on port {self.port} did not answer PING within "
            f"{STARTUP_TIMEOUT:.0f}s (last error: {last_error!r}); log:\n{_tail(self.log())}"
        )

    def stop(self) -> int | None:
        """Stop gracefully: SIGTERM, SIGKILL only if it is still alive after 5 s.

        Returns the exit code, or None if the server was never started.
        """
        if self.proc is None:
            return None
        code, _ = _terminate(self.proc, signal.SIGTERM, REDIS_STOP_TIMEOUT)
        return code

    def kill(self) -> int | None:
        """SIGKILL at once, to simulate a crash."""
        if self.proc is None:
            return None
        code, _ = _terminate(self.proc, signal.SIGKILL, 5)
        return code

    def restart(self) -> Self:
        """Stop (if still running) and start again on the same port."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server, close helper clients and delete the tmp dir."""
        if self._closed:
            return
        self.stop()
        for client in self._clients:
            client.close()
        self._clients.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        self._closed = True

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.addr} {state}{' tls' if self.tls else ''}>"

    # -- clients ----------------------------------------------------------

    def _make_client(self, **kw: Any) -> redis.Redis:
        params: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "password": self.password,
            "decode_responses": False,
            "socket_timeout": 10.0,
            "socket_connect_timeout": 5.0,
            "retry": _no_retry(),
        }
        if self.tls is not None:
            # The server certificate doubles as a client certificate, so a
            # server started with `--tls-auth-clients yes` can be reached too.
            params.update(
                ssl=True, ssl_ca_certs=str(self.tls.ca_cert), ssl_cert_reqs="required",
                ssl_certfile=str(self.tls.cert), ssl_keyfile=str(self.tls.key),
            )
        params.update(kw)
        return redis.Redis(**params)

    def client(self, **kw: Any) -> redis.Redis:
        """A redis-py client talking straight to this server (bypassing any proxy).

        Bytes in and out, no retries, TLS verified against the CA when the
        server uses TLS.  Keyword arguments override the defaults.  Clients are
        closed by close().
        """
        client = self._make_client(**kw)
        self._clients.append(client)
        return client

    def unix_client(self, **kw: Any) -> redis.Redis:
        """Like client(), but over the server's unix socket."""
        if self.unixsocket is None:
            raise RuntimeError("this RedisServer has no unix socket")
        params: dict[str, Any] = {
            "unix_socket_path": str(self.unixsocket),
            "password": self.password,
            "decode_responses": False,
            "socket_timeout": 10.0,
            "retry": _no_retry(),
        }
        params.update(kw)
        client = redis.Redis(**params)
        self._clients.append(client)
        return client


# --------------------------------------------------------------------------
# redis-proxy
# --------------------------------------------------------------------------


def _connect_host(host: str) -> str:
    # A wildcard listen address is reachable through loopback.
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _split_tcp_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return _connect_host(host), int(port)


def _is_unix(section: Mapping[str, Any]) -> bool:
    # TCP addresses always have a ":port"; anything else is a socket path.
    return section.get("network") == "unix" or ":" not in str(section.get("addr", ""))


def uplink_client_id(server: RedisServer, proxied_info: bytes | dict[str, Any]) -> int:
    """The CLIENT ID, on `server`, of the uplink connection of a proxy client, from CLIENT INFO asked through the proxy.

    The proxy shows clients its own ids (issue 8); CLIENT INFO's `addr` (the
    uplink connection's, as the server sees it) finds the server's one.
    """
    if isinstance(proxied_info, dict):
        addr = str(proxied_info["addr"])
    else:
        addr = dict(re.findall(r"(\S+?)=(\S*)", proxied_info.decode()))["addr"]
    for client in server.client(single_connection_client=True).client_list():
        if client["addr"] == addr:
            return int(client["id"])
    raise AssertionError(f"no connection from {addr} on {server.addr}")


def proxy_config(
    uplink: RedisServer | str,
    *,
    admin: bool = True,
    read_time_limit_ms: int = 5000,
    **extra: Any,
) -> dict[str, Any]:
    """A minimal proxy config dict with free listen (and admin) ports.

    ``uplink`` is a RedisServer or an "host:port" string; ``extra`` keys are
    merged in at the top level (e.g. ``pass="secret"``).
    """
    uplink_addr = uplink.addr if isinstance(uplink, RedisServer) else uplink
    config: dict[str, Any] = {
        "uplink": {"addr": uplink_addr},
        "listen": {"addr": f"127.0.0.1:{free_port()}"},
        "read_time_limit_ms": read_time_limit_ms,
    }
    if admin:
        config["admin"] = {"addr": f"127.0.0.1:{free_port()}"}
    config.update(extra)
    return config


class ProxyProcess(_Managed):
    """``python -m redis_proxy -f CONFIG`` as a real child process.

    The config dict is written to ``<directory>/config.json``; stdout and
    stderr go to ``<directory>/proxy.log``.  A missing ``listen.addr`` is
    filled with a free port on 127.0.0.1.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        directory: Path | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._owns_directory = directory is None
        self.directory: Path = directory if directory is not None else short_tmp_dir("proxy-")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path: Path = self.directory / "config.json"
        self.log_path: Path = self.directory / "proxy.log"
        self.extra_env: dict[str, str] = dict(env or {})
        self.extra_args: list[str] = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._clients: list[redis.Redis] = []
        self._closed = False
        self.config: dict[str, Any] = {}
        self._apply_config(config)

    # -- config -----------------------------------------------------------

    def _apply_config(self, config: Mapping[str, Any]) -> None:
        cfg = copy.deepcopy(dict(config))
        listen = cfg.get("listen")
        if not isinstance(listen, dict) or not listen.get("addr"):
            # Keep the current listen address on rewrite; pick one initially.
            previous = self.config.get("listen", {}).get("addr")
            listen = dict(listen or {})
            listen["addr"] = previous or f"127.0.0.1:{free_port()}"
            cfg["listen"] = listen
        self.config = cfg
        # Write-then-rename so a SIGHUP never makes the proxy read half a file.
        tmp = self.config_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(cfg, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, self.config_path)

    def rewrite_config(self, config: Mapping[str, Any]) -> None:
        """Replace the config file (same path); send SIGHUP to make the proxy reload it."""
        self._apply_config(config)

    # -- addresses --------------------------------------------------------

    @property
    def listen_is_unix(self) -> bool:
        return _is_unix(self.config["listen"])

    @property
    def unix_path(self) -> Path | None:
        return Path(self.config["listen"]["addr"]) if self.listen_is_unix else None

    @property
    def host(self) -> str | None:
        if self.listen_is_unix:
            return None
        return _split_tcp_addr(self.config["listen"]["addr"])[0]

    @property
    def port(self) -> int | None:
        """The TCP listen port (None when listening on a unix socket)."""
        if self.listen_is_unix:
            return None
        return _split_tcp_addr(self.config["listen"]["addr"])[1]

    @property
    def addr(self) -> str:
        return str(self.config["listen"]["addr"])

    @property
    def admin_port(self) -> int | None:
        admin = self.config.get("admin")
        if not isinstance(admin, dict) or not admin.get("addr") or _is_unix(admin):
            return None
        return _split_tcp_addr(admin["addr"])[1]

    @property
    def admin_url(self) -> str | None:
        """``http://host:port`` of the admin server, if configured over TCP."""
        admin = self.config.get("admin")
        if self.admin_port is None or not isinstance(admin, dict):
            return None
        host, port = _split_tcp_addr(admin["addr"])
        scheme = "https" if admin.get("tls") else "http"
        return f"{scheme}://{host}:{port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """Everything the proxy wrote to stdout/stderr so far."""
        return _read_log(self.log_path)

    # -- lifecycle --------------------------------------------------------

    def command(self) -> list[str]:
        return [sys.executable, "-m", "redis_proxy", "-f", str(self.config_path), *self.extra_args]

    def start(self, *, wait_admin: bool = True) -> Self:
        """Start the proxy and wait until its listen address accepts connections.

        With ``wait_admin`` the admin TCP address (if configured) must accept
        connections too, so tests can use it right away.  Fails with the log
        after 10 s or as soon as the process exits.
        """
        if self._closed:
            raise RuntimeError("ProxyProcess was closed")
        if self.running:
            return self
        env = dict(os.environ)
        # The package must be importable even when it is not pip-installed.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=env,
            )
        _live_processes.add(self.proc)
        self._wait_ready(wait_admin)
        return self

    def _probe(self, admin: bool) -> bool:
        """Can a connection be opened to the listen (or admin) address?"""
        section = self.config["admin"] if admin else self.config["listen"]
        try:
            if _is_unix(section):
                path = str(section["addr"])
                if not os.path.exists(path):
                    return False
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(0.5)
                    sock.connect(path)
            else:
                host, port = _split_tcp_addr(str(section["addr"]))
                with socket.create_connection((host, port), timeout=0.5):
                    pass
        except OSError:
            return False
        return True

    def _wait_ready(self, wait_admin: bool) -> None:
        assert self.proc is not None
        check_admin = wait_admin and isinstance(self.config.get("admin"), dict) and bool(
            self.config["admin"].get("addr")
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        listen_ok = False
        admin_ok = not check_admin
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _live_processes.discard(self.proc)
                raise RuntimeError(
                    f"redis-proxy exited early with code {self.proc.returncode}; "
                    f"config:\n{json.dumps(self.config, indent=2, default=str)}\n"
                    f"log:\n{_tail(self.log())}"
                )
            listen_ok = listen_ok or self._probe(admin=False)
            admin_ok = admin_ok or self._probe(admin=True)
            if listen_ok and admin_ok:
                return
            time.sleep(0.02)
        _terminate(self.proc, signal.SIGKILL, 5)
        waiting_for = "listen address" if not listen_ok else "admin address"
        raise RuntimeError(
            f"redis-proxy {waiting_for} did not accept connections within "
            f"{STARTUP_TIMEOUT:.0f}s; log:\n{_tail(self.log())}"
        )

    def send_signal(self, sig: int) -> None:
        if self.proc is None:
            raise RuntimeError("proxy not started")
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send ``sig`` and wait for the exit code.

        If the proxy is still alive after ``timeout`` it gets SIGKILL (the
        returned code is then -9, and a note is appended to the log).
        Calling stop() on an exited proxy just returns its exit code.
        """
        if self.proc is None:
            raise RuntimeError("proxy not started")
        code, killed = _terminate(self.proc, sig, timeout)
        if killed:
            with open(self.log_path, "a", encoding="utf-8") as log_file:
                log_file.write(
                    f"\n[test harness] proxy still running {timeout}s after signal {sig}; sent SIGKILL\n"
                )
        return code

    def close(self) -> None:
        """Stop the proxy, close helper clients, delete the tmp dir if we made it."""
        if self._closed:
            return
        if self.proc is not None:
            self.stop()
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        self._closed = True

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ProxyProcess {self.addr} {state}>"

    # -- clients ----------------------------------------------------------

    def client(self, **kw: Any) -> redis.Redis:
        """A redis-py client connected to the proxy's listen address.

        Bytes in and out, no retries.  Pass e.g. ``password=`` or
        ``ssl=True, ssl_ca_certs=...`` as needed; keyword arguments override
        the defaults.  Clients are closed by close().
        """
        params: dict[str, Any] = {
            "decode_responses": False,
            "socket_timeout": 10.0,
            "retry": _no_retry(),
        }
        unix_path = self.unix_path
        if unix_path is not None:
            params["unix_socket_path"] = str(unix_path)
        else:
            params.update(host=self.host, port=self.port, socket_connect_timeout=5.0)
        params.update(kw)
        client = redis.Redis(**params)
        self._clients.append(client)
        return client


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m redis_proxy ARGS` from this checkout, as a user would run it; its exit code and output."""
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "redis_proxy", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=REPO_ROOT,
    )
