"""The proxy process: listeners, the shared state every connection sees, and shutdown.

`Proxy` holds the live config, the sessions, the raw pipes, the controller and
the counters. `run` starts it, wires signals (SIGTERM/SIGINT stop, SIGHUP
reloads) and waits until it has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import ssl
from typing import Any

from redis_proxy.admin.server import start_admin
from redis_proxy.config import LISTENERS, Config, ConfigError, UplinkConfig, parse_tcp_addr
from redis_proxy.controller import ControlError, Controller
from redis_proxy.failover.monitor import FailoverMonitor
from redis_proxy.gate import Gate
from redis_proxy.health import HealthChecker
from redis_proxy.loop_lag import LoopLagProbe
from redis_proxy.pidfile import PidFileError, remove_pidfile, write_pidfile
from redis_proxy.raw import RawPipe, raw_protocol_factory
from redis_proxy.session.client_ids import ClientIds
from redis_proxy.session.limits import ClientLimits
from redis_proxy.session.protocol import ClientSession
from redis_proxy.sentinel.events import MasterState
from redis_proxy.sentinel.follower import SentinelFollower
from redis_proxy.sentinel.query import with_master
from redis_proxy.session.unblock import Unblocker
from redis_proxy.sockets import remove_stale_socket
from redis_proxy.stats import Stats
from redis_proxy.migration.tracker import WriteTracker
from redis_proxy.switchover.engine import Switchover
from redis_proxy.switchover.status import SwitchoverStatus
from redis_proxy.systemd_notify import notify_ready, notify_stopping
from redis_proxy.takeover.giver import ControlServer
from redis_proxy.tls import server_context, uplink_context
from redis_proxy.uplinks_status import UplinksPoller

log = logging.getLogger("redis_proxy")

# Listening sockets by listener name ("listen", "listen_raw", "admin"): what a takeover hands over.
Listening = dict[str, list[socket.socket]]

SHUTDOWN_SWITCHOVER_WAIT_S = 30.0  # a switchover's roll-back (or, once promoted, its switch and peers) at shutdown



class Proxy:
    def __init__(self, config: Config, config_path: str | None, sentinel_master: MasterState | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.log_messages = config.log_messages
        self.stats = Stats()
        self.sessions: set[ClientSession] = set()
        self.raw_connections: set[RawPipe] = set()
        self.tls = self.prepare_tls(config)
        self.uplink_ssl = self.make_uplink_ssl(config)
        self.controller = Controller(self)
        self.gate: Gate = self.controller.gate
        self.unblocker = Unblocker(self.uplink_settings, self.spawn)
        self.client_ids = ClientIds()  # the client ids sessions hand out, and their uplink connections' ids
        self.write_tracker: WriteTracker | None = None  # set while a copy-mode switchover tracks writes
        self.health = HealthChecker(self.uplink_settings)  # /readyz, uplink_up; started by start()
        self.loop_lag = LoopLagProbe(self.stats.loop_lag)  # the loop_lag_seconds metric; started by start()
        self.switchover_status = SwitchoverStatus()  # the running or last switchover (GET /switchover.json)
        self.switchover: Switchover | None = None
        self.failover = FailoverMonitor(self)  # automatic failover (config.failover); started by start()
        self.uplinks_status = UplinksPoller(lambda: self.config)  # every named uplink's role and lag; started by start()
        # With a sentinel section: follows Sentinel's failovers (`sentinel_master`: what it said at startup).
        self.sentinel = SentinelFollower(self, config.sentinel, sentinel_master) if config.sentinel is not None else None
        if self.sentinel is not None:
            self.controller.adjust_config = self._sentinel_master
        self.addresses: dict[str, str] = {}  # listener name -> the address it is bound to
        self.admin: Any = None  # the admin app's server, when configured
        self._servers: dict[str, asyncio.Server] = {}  # listener name -> its server
        self.control: Any = None  # the takeover control socket's server (takeover/giver.py), when it has a path
        self.reuse_port = False  # a worker (workers/): TCP listeners share their address with the other workers
        self.handed_over_to: int | None = None  # a takeover moved this proxy's clients to that process: it only drains
        self._unix_paths: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = asyncio.Event()
        self._stopping = False

    # -- config and TLS -----------------------------------------------------------

    def prepare_tls(self, config: Config) -> dict[str, ssl.SSLContext]:
        return listener_tls(config)

    def make_uplink_ssl(self, config: Config) -> ssl.SSLContext | None:
        return uplink_context(config.uplink)

    def _sentinel_master(self, new: Config) -> Config:
        """A reloaded file's uplink.addr is where Sentinel said the master was at startup: the master is where the proxy is now."""
        return with_master(new, self.config.uplink.addr) if new.sentinel is not None else new

    def uplink_settings(self) -> tuple[UplinkConfig, ssl.SSLContext | None]:
        """Where new uplink connections go, as of now."""
        return self.config.uplink, self.uplink_ssl

    @property
    def listen_password(self) -> bytes | None:
        password = self.config.listen.password
        return password.encode() if password is not None else None

    @property
    def passthrough_auth(self) -> bool:
        return self.config.listen.auth == "passthrough"

    @property
    def client_limits(self) -> ClientLimits:
        config = self.config
        return ClientLimits(
            max_clients=config.max_clients,
            query_buffer=config.client_query_buffer_limit,
            idle_timeout=float(config.client_idle_timeout_s),
            keepalive=config.tcp_keepalive_s,
            # Automatic failover or Sentinel will bring another uplink: a lost connection or an
            # unreachable uplink need not end clients, nor fail their commands at once.
            outlive_uplink=config.failover is not None or config.sentinel is not None,
            unreachable_wait=_unreachable_wait(config),
        )

    def uplink_trouble(self) -> None:
        """A client's uplink connection was lost or refused: automatic failover looks at once."""
        self.failover.uplink_trouble()

    def client_count(self) -> int:
        """Client connections open now, managed and raw: what max_clients bounds."""
        return len(self.sessions) + len(self.raw_connections)

    def rotate_certificates(self, new: Config) -> None:
        """Load the new config's listener certificates into the live TLS contexts,
        so new handshakes use them and open connections are untouched.
        Done while validating a reload, before any pause (raises ConfigError)."""
        for name, context in self.tls.items():
            section = getattr(new, name)
            if section is not None and section.tls:
                try:
                    context.load_cert_chain(section.certfile, section.keyfile)
                except (OSError, ssl.SSLError) as exc:
                    raise ConfigError([f"{name}.certfile: cannot load the certificate: {exc}"]) from None
                cafile = getattr(section, "cacertfile", None)
                if cafile:
                    # Adds the file's CAs to the context's store: a CA taken out
                    # of the file stays trusted until a restart (OpenSSL cannot
                    # remove one from a live context).
                    try:
                        context.load_verify_locations(cafile=cafile)
                    except (OSError, ssl.SSLError) as exc:
                        raise ConfigError([f"{name}.cacertfile: cannot load {cafile}: {exc}"]) from None

    def reload_problems(self, new: Config) -> list[str]:
        problems = self.config.listen_addresses_changed(new)
        if new.control_socket != self.config.control_socket:
            problems.append("control_socket cannot change on reload (restart the proxy, or take it over with --takeover)")
        if new.sentinel != self.config.sentinel:
            problems.append("sentinel cannot be added, removed or changed on reload (restart the proxy)")
        for name in LISTENERS:
            old_section, new_section = getattr(self.config, name), getattr(new, name)
            if old_section is not None and new_section is not None and old_section.tls != new_section.tls:
                line = f"{name}.tls cannot change on reload ({str(old_section.tls).lower()} -> {str(new_section.tls).lower()})"
                if line not in problems:
                    problems.append(line)
            if old_section is not None and new_section is not None and bool(
                getattr(old_section, "cacertfile", None)
            ) != bool(getattr(new_section, "cacertfile", None)):
                # Whether clients must present a certificate is fixed in the live TLS context.
                problems.append(f"{name}.cacertfile cannot be added or removed on reload")
        return problems

    def apply_config(self, new: Config, uplink_ssl: ssl.SSLContext | None) -> None:
        """Take a validated config (no I/O: certificates were loaded while validating)."""
        self.config = new
        self.log_messages = new.log_messages
        self.uplink_ssl = uplink_ssl
        for session in self.sessions:
            session.set_tracing(new.log_messages)

    # -- listeners --------------------------------------------------------------------

    async def start(self, inherited: Listening | None = None, admin: bool = True) -> None:
        """Bind every listener (raises OSError with the address on failure); `inherited`: sockets a takeover handed over.

        `admin` False: the admin app is started later (`start_admin_app`), after a takeover's hold.
        """
        self.health.start()
        self.loop_lag.start()
        self.uplinks_status.start()
        self.failover.start()
        if self.sentinel is not None:
            self.sentinel.start()
        if self.config.listen_raw is not None:
            warning = raw_exposure_warning(self.config)
            if warning:
                log.warning("%s", warning)
        await self.listen_all(inherited or {}, admin)

    async def listen_all(self, inherited: Listening, admin: bool = True) -> None:
        """Start the listeners and the admin app, on `inherited` sockets where given."""
        config = self.config
        await self._listen("listen", config.listen.addr, config.listen.network, lambda: ClientSession(self), inherited.get("listen"))
        if config.listen_raw is not None:
            await self._listen(
                "listen_raw", config.listen_raw.addr, config.listen_raw.network, lambda: raw_protocol_factory(self),
                inherited.get("listen_raw"),
            )
        if admin:
            await self.start_admin_app(inherited.get("admin"))

    async def start_admin_app(self, inherited: list[socket.socket] | None = None) -> None:
        if self.config.admin is not None:
            self.admin = await start_admin(self, inherited)
            self.addresses["admin"] = self.admin.address

    async def _listen(self, name: str, addr: str, network: str, factory: Any, inherited: list[socket.socket] | None) -> None:
        loop = asyncio.get_running_loop()
        context = self.tls.get(name)
        sock = inherited[0] if inherited else None
        try:
            if network == "unix":
                if sock is None:
                    remove_stale_socket(addr)
                server = await loop.create_unix_server(factory, None if sock else addr, sock=sock, ssl=context)
                if addr not in self._unix_paths:
                    self._unix_paths.append(addr)
                bound = addr
            else:
                if sock is None:
                    host, port = parse_tcp_addr(addr)
                    server = await loop.create_server(
                        factory, host, port, ssl=context, reuse_address=True, reuse_port=self.reuse_port or None
                    )
                else:
                    server = await loop.create_server(factory, sock=sock, ssl=context)
                sockname = server.sockets[0].getsockname()
                bound = f"[{sockname[0]}]:{sockname[1]}" if ":" in sockname[0] else f"{sockname[0]}:{sockname[1]}"
        except OSError as exc:
            raise OSError(exc.errno, f"{name}: cannot listen on {addr}: {exc.strerror or exc}") from None
        self._servers[name] = server
        self.addresses[name] = bound
        log.info("%s: listening on %s%s%s", name, bound, " (TLS)" if context else "", " (handed over)" if sock else "")

    async def detach_listeners(self) -> Listening:
        """Stop accepting (takeover): the listening sockets, duplicated, for the new process or to listen again.

        Connections that arrive meanwhile wait in the kernel's backlog for
        whichever process listens next.
        """
        detached: Listening = {}
        for name, server in self._servers.items():
            detached[name] = [_dup(sock) for sock in server.sockets]
            server.close()
        self._servers = {}
        if self.admin is not None:
            detached["admin"] = [_dup(sock) for sock in self.admin.sockets]
            admin, self.admin = self.admin, None
            await admin.stop()
        return detached

    # -- lifecycle ----------------------------------------------------------------------

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run a background task, keeping a reference so it is not collected mid-flight."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def request_stop(self, why: str) -> None:
        if self.control is not None and self.control.busy and self.handed_over_to is None:
            # Closing now would close connections a new process may be adopting: after the takeover.
            log.info("%s: a takeover is under way; stopping once it has ended", why)
            self.control.stop_after = why
            return
        if not self._stopping:
            log.info("%s: shutting down", why)
            self.spawn(self.stop(), "shutdown")

    def request_reload(self) -> None:
        if self.handed_over_to is not None:
            log.warning("SIGHUP ignored: this process handed over to pid %d; reload that one", self.handed_over_to)
            return

        async def reload() -> None:
            try:
                result = await self.controller.reload()
                log.info("SIGHUP reload done: %s", result)
            except ControlError:
                pass  # already logged by the controller

        self.spawn(reload(), "sighup-reload")

    async def stop(self) -> None:
        """Stop accepting, let in-flight commands finish (bounded), close everything."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        if self.handed_over_to is None:  # after a takeover the unit goes on, in the new process
            notify_stopping()  # systemd: the unit is deactivating, not failed
        for server in self._servers.values():
            server.close()
        if self.control is not None:
            self.control.close()
        await self._end_switchover()
        if self.sentinel is not None:
            await self.sentinel.stop()  # first: no failover is followed while the proxy stops (a hold it took ends)
        await self.controller.stop()
        for session in list(self.sessions):
            session.close()
        for pipe in list(self.raw_connections):
            pipe.close()
        await self._clients_closed()
        if self.admin is not None:
            await self.admin.stop()
        await self._stop_watching()
        for path in self._unix_paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        await asyncio.sleep(0)  # let transports deliver their close callbacks
        self._stopped.set()

    async def _clients_closed(self) -> None:
        """Stopping, once every client was told to close (a workers' control process waits for its workers here)."""
        return None

    # -- takeover (takeover/) ----------------------------------------------------------------

    def retire(self, new_pid: int) -> None:
        """A takeover moved this proxy's listeners and clients to `new_pid`: serve what stayed, then stop."""
        self.handed_over_to = new_pid
        self._unix_paths.clear()  # the new process listens on them now: never unlink them
        self.spawn(self._drain_after_handover(new_pid), "takeover-drain")

    async def _drain_after_handover(self, new_pid: int) -> None:
        await self._stop_watching()  # the new process checks health, follows failovers and Sentinel from now on
        left = len(self.sessions) + len(self.raw_connections)
        if left:
            log.info(
                "takeover: serving %d connection(s) that could not move until they close (at most takeover_drain_s=%d s)",
                left, self.config.takeover_drain_s,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.takeover_drain_s
        # Polled: connections close on their own schedule and this runs once per process.
        while (self.sessions or self.raw_connections) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        left = len(self.sessions) + len(self.raw_connections)
        if left:
            log.info("takeover: closing %d connection(s) still open after takeover_drain_s", left)
        self.request_stop(f"handed over to pid {new_pid}")

    async def abandon(self) -> None:
        """A takeover's new process gives up before the old one let go: stop without touching a client or a socket path."""
        self._unix_paths.clear()
        for server in self._servers.values():
            server.close()
        self._servers = {}
        if self.admin is not None:
            await self.admin.stop()
            self.admin = None
        await self._stop_watching()

    async def _stop_watching(self) -> None:
        """Stop the background tasks that watch the uplinks and the loop (each stop is idempotent)."""
        await self.health.stop()
        await self.uplinks_status.stop()
        await self.failover.stop()
        await self.loop_lag.stop()
        if self.sentinel is not None:
            await self.sentinel.stop()

    async def _end_switchover(self) -> None:
        """At shutdown: a switchover before its promotion is aborted (rolled back); after it, finished."""
        switchover = self.switchover
        if switchover is None or not switchover.status.running:
            return
        with contextlib.suppress(Exception):
            switchover.abort("the proxy is shutting down")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(switchover.wait(), SHUTDOWN_SWITCHOVER_WAIT_S)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- what is connected and in flight (a workers' control process sums its workers': workers/control.py) --

    def clients(self) -> int:
        return len(self.sessions)

    def raw_clients(self) -> int:
        return len(self.raw_connections)

    def in_flight(self) -> int:
        return self.controller.inflight

    def open_transactions(self) -> int:
        return self.controller.txn

    def info(self) -> dict[str, Any]:
        return {
            **self.controller.info(),
            "active_requests": self.in_flight(),
            "open_transactions": self.open_transactions(),
            "clients": self.clients(),
            "raw_connections": self.raw_clients(),
            "uplink": self.config.uplink.addr,
            "uplink_name": self.config.uplink_name,
            "addresses": dict(self.addresses),
        }


def _dup(sock: Any) -> socket.socket:
    """An independent descriptor for a listening socket (asyncio's and uvloop's socket wrappers have no dup())."""
    return socket.socket(fileno=os.dup(sock.fileno()))


def _unreachable_wait(config: Config) -> float:
    """How long a command that finds the uplink unreachable waits for the next one (seconds; 0: fails at once)."""
    if config.failover is not None:
        return config.failover.max_hold_ms / 1000
    if config.sentinel is not None:
        return config.sentinel.max_hold_ms / 1000
    return 0.0


def listener_tls(config: Config) -> dict[str, ssl.SSLContext]:
    """Server TLS contexts for the listeners that use TLS (raises ConfigError)."""
    contexts: dict[str, ssl.SSLContext] = {}
    for name in LISTENERS:
        section = getattr(config, name)
        if section is not None and section.tls:
            assert section.certfile and section.keyfile
            contexts[name] = server_context(
                section.certfile, section.keyfile, where=name, cacertfile=getattr(section, "cacertfile", None)
            )
    return contexts


def raw_exposure_warning(config: Config) -> str | None:
    """listen_raw has no AUTH of its own: reachable from other hosts without client certificates, anyone there reaches Redis."""
    raw = config.listen_raw
    if raw is None or raw.network == "unix" or raw.cacertfile:
        return None
    host, _ = parse_tcp_addr(raw.addr)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return None
    return (
        f"listen_raw: {raw.addr} is not a loopback address and listen_raw.cacertfile is not set: "
        "raw connections bypass the proxy's AUTH, so anyone who reaches this port reaches Redis "
        "(set tls with cacertfile to require client certificates, or listen on 127.0.0.1 or a unix socket)"
    )


def control_socket_path(config: Config, pidfile: str | None) -> str | None:
    """Where the takeover control socket is: control_socket, else next to the pid file, else nowhere."""
    if config.control_socket is not None:
        return os.path.abspath(config.control_socket)
    if pidfile is not None:
        return os.path.splitext(os.path.abspath(pidfile))[0] + ".control"
    return None


async def run(
    config: Config,
    config_path: str | None,
    pidfile: str | None = None,
    sentinel_master: MasterState | None = None,
    takeover: bool = False,
    log_args: list[str] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; the process's exit code.

    The pid file is written once every listener is bound (so a script that
    waits for it can connect) and removed when the proxy has stopped.
    `takeover`: take the listeners and clients of the proxy already running
    (its control socket), instead of binding.
    """
    from redis_proxy.takeover.taker import TakeoverError, take_over  # it imports this module: here, not at the top

    proxy: Proxy | None = None
    control_path = control_socket_path(config, pidfile)
    if config.workers > 1 and control_path is not None:
        # The clients are the workers', each its own process: one control socket cannot hand them over.
        log.info("workers: %d; no takeover control socket (--takeover is for a single process)", config.workers)
        control_path = None
    try:
        if takeover and config.workers > 1:
            raise TakeoverError("--takeover is not supported with workers > 1")
        if takeover:
            if control_path is None:
                raise TakeoverError("--takeover needs control_socket in the config, or --pidfile (the control socket is next to it)")
            proxy = await take_over(config, config_path, control_path)
        elif config.workers > 1:
            from redis_proxy.workers.control import ControlProxy  # it imports this module

            proxy = ControlProxy(config, config_path, log_args or [])
            await proxy.start()
        else:
            proxy = Proxy(config, config_path, sentinel_master)
            await proxy.start()
        loop = asyncio.get_running_loop()
        # Before the pid file: a script that signals as soon as it appears must not kill the process.
        loop.add_signal_handler(signal.SIGTERM, proxy.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, proxy.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, proxy.request_reload)
        if control_path is not None:  # before the pid file too: once it names this process, it can be taken over
            control = ControlServer(proxy, control_path)
            try:
                control.start()
            except OSError as exc:
                if not takeover:
                    raise
                # Clients are already served here: a missing control socket only means no next takeover.
                log.error("%s; this process cannot be taken over", exc.strerror or exc)
            else:
                proxy.control = control
        if pidfile is not None:
            try:
                write_pidfile(pidfile)
            except PidFileError as exc:
                if not takeover:
                    raise
                log.error("%s", exc)  # clients are served here already: the file is what is missing, not the proxy
    except TakeoverError as exc:
        log.error("takeover failed: %s", exc)
        return 1
    except (ConfigError, OSError, PidFileError) as exc:
        if isinstance(exc, ConfigError):
            for line in exc.problems:
                log.error("%s", line)
        else:
            log.error("%s", exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
        if proxy is not None:
            await proxy.stop()  # listeners and the health task that did start
        return 2 if isinstance(exc, ConfigError) else 1
    try:
        # systemd: ready only now, with the SIGHUP handler in place (a reload sent at once must not kill it).
        notify_ready(proxy.addresses)
        await proxy.wait_stopped()
    finally:
        if pidfile is not None:
            remove_pidfile(pidfile)
    log.info("stopped")
    return 0
