"""`redis-proxy demo [--clients 16] [--seconds 10]`: a switchover under load,
self-contained.

Starts two throwaway redis-servers ("a" and "b") on free ports, a proxy
(`python -m redis_proxy`) in front of "a", and N clients INCR-ing their own
counters (plus SET/GET checks) through it; half-way it switches the proxy
over to "b" with `redis-proxy switchover`'s own client, then checks every
acknowledged INCR on the server the proxy ends on. Exit 0 only when the
switchover is done with no client error and no lost write.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

import redis_proxy
from redis_proxy import cli_switchover
from redis_proxy.admin_client import AdminClient, AdminEndpoint, AdminError
from redis_proxy.demo_load import LoadClient, client, free_port, redis_server, spawn, stop, tail, wait_listening

EXIT_OK = 0
EXIT_FAILED = 1  # the demo ran and something went wrong (or it could not start its processes)
EXIT_USAGE = 2  # bad arguments, or no redis-server
EXIT_INTERRUPTED = 130
MIN_AFTER_SWITCH_S = 0.5  # of load after the switchover, so writes to the new server are checked too
PORT_ATTEMPTS = 3  # a free port can be taken by someone else before a server binds it


def _ranged(kind: type[int] | type[float], low: int, high: int, what: str, unit: str = "") -> Callable[[str], Any]:
    """An argparse type: a number of `kind` from `low` to `high`, with a readable error."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}{unit}, got {text}")
        return value

    return parse


_positive_int = _ranged(int, 1, 1000, "a whole number")
_seconds = _ranged(float, 1, 3600, "a number of seconds", " seconds")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="redis-proxy demo",
        description="Run a switchover under load with throwaway redis-servers and print what clients saw. "
        "Needs redis-server on PATH (scripts/run.sh installs it).",
    )
    p.add_argument("--clients", type=_positive_int, default=16, metavar="N", help="client connections (default: 16)")
    p.add_argument("--seconds", type=_seconds, default=10.0, metavar="S", help="load duration; the switchover starts half-way (default: 10)")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live display (the default when stdout is not a terminal)")
    return p


@dataclass
class Server:
    name: str
    port: int
    proc: Any  # subprocess.Popen[bytes]
    directory: Path

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Summary:
    clients: int
    seconds: float
    operations: int
    operations_after_switch: int
    errors: int
    lost: int
    stall_ms: float
    switchover: dict[str, Any]
    checked_on: str
    error_samples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.switchover.get("result") == "done" and self.errors == 0 and self.lost == 0

    def rows(self) -> list[tuple[str, str]]:
        status = self.switchover
        took = "-"
        if isinstance(status.get("started_at"), (int, float)) and isinstance(status.get("ended_at"), (int, float)):
            took = f"{status['ended_at'] - status['started_at']:.2f} s"
        return [
            ("clients", str(self.clients)),
            ("seconds", f"{self.seconds:.1f}"),
            ("operations", f"{self.operations} ({self.operations / max(self.seconds, 0.001):.0f}/s)"),
            ("operations after the switchover", str(self.operations_after_switch)),
            ("client errors", str(self.errors)),
            ("lost acknowledged writes", f"{self.lost} (counters checked on {self.checked_on})"),
            ("longest client stall", f"{self.stall_ms:.1f} ms"),
            ("switchover", f"{status.get('result')} ({status.get('from')} -> {status.get('to')}, took {took})"),
            ("held_ms", str(status.get("held_ms"))),
        ]


def print_summary(summary: Summary, plain: bool) -> None:
    verdict = "PASS" if summary.ok else "FAIL"
    if plain:
        print("summary:")
        for key, value in summary.rows():
            print(f"  {key}: {value}")
        for sample in summary.error_samples:
            print(f"  error: {sample}")
        print(f"demo: {verdict}", flush=True)
        return
    console = Console()
    table = Table(title="redis-proxy demo", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in summary.rows():
        table.add_row(key, value)
    console.print(table)
    for sample in summary.error_samples:
        console.print(f"[red]error:[/] {sample}", markup=True, highlight=False)
    console.print(f"[bold {'green' if summary.ok else 'red'}]demo: {verdict}[/]")


class Demo:
    def __init__(self, binary: str, clients: int, seconds: float, plain: bool) -> None:
        self.binary = binary
        self.n_clients = clients
        self.seconds = seconds
        self.plain = plain
        self.tmp = Path(tempfile.mkdtemp(prefix="redis-proxy-demo-"))
        self.servers: dict[str, Server] = {}
        self.proxy: Any = None  # subprocess.Popen[bytes]
        self.admin: AdminClient | None = None
        self.stop_event = threading.Event()
        self.load: list[LoadClient] = []

    def say(self, text: str) -> None:
        print(f"demo: {text}", flush=True)

    def start_server(self, name: str) -> Server:
        directory = self.tmp / name
        directory.mkdir()
        for attempt in range(PORT_ATTEMPTS):
            port = free_port()
            proc = redis_server(self.binary, port, directory)
            try:
                wait_listening(port, proc, f"redis-server {name}", directory / "redis.log")
            except RuntimeError:
                stop(proc)
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                continue
            server = Server(name, port, proc, directory)
            self.servers[name] = server
            return server
        raise AssertionError("not reached")

    def start_proxy(self) -> tuple[int, int]:
        listen, admin = free_port(), free_port()
        config = {
            "uplinks": {name: {"addr": server.addr} for name, server in self.servers.items()},
            "uplink": "a",
            "listen": {"addr": f"127.0.0.1:{listen}"},
            "admin": {"addr": f"127.0.0.1:{admin}"},
        }
        path = self.tmp / "config.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # The child must import this very package, installed or not (it runs in the temp dir).
        package_root = str(Path(redis_proxy.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        log_path = self.tmp / "proxy.log"
        self.proxy = spawn([sys.executable, "-m", "redis_proxy", "-f", str(path)], log_path, self.tmp, env)
        wait_listening(listen, self.proxy, "the proxy", log_path)
        wait_listening(admin, self.proxy, "the proxy's admin API", log_path)
        return listen, admin

    def run(self) -> int:
        a, b = self.start_server("a"), self.start_server("b")
        listen, admin_port = self.start_proxy()
        self.admin = AdminClient(AdminEndpoint(url=f"http://127.0.0.1:{admin_port}", password=None, tls=False))
        self.say(f"servers a={a.addr} b={b.addr}; proxy 127.0.0.1:{listen} (uplink a), admin http://127.0.0.1:{admin_port}")
        self.say(f"{self.n_clients} clients for {self.seconds:g} s; switchover a -> b after {self.seconds / 2:g} s")
        self.load = [LoadClient(n, listen, self.stop_event) for n in range(self.n_clients)]
        started = time.monotonic()
        for load in self.load:
            load.start()
        time.sleep(max(0.0, started + self.seconds / 2 - time.monotonic()))
        ops_before = sum(c.ops for c in self.load)
        status = cli_switchover.run(self.admin, "b", {}, plain=self.plain, abort_on_interrupt=False)
        ops_at_switch = sum(c.ops for c in self.load)
        time.sleep(max(MIN_AFTER_SWITCH_S, started + self.seconds - time.monotonic()))
        self.stop_clients()
        elapsed = time.monotonic() - started
        summary = self.check(status, elapsed, ops_at_switch)
        if ops_before == 0:
            summary.errors += 1
            summary.error_samples.append("no client completed an operation before the switchover")
        print_summary(summary, self.plain)
        if not summary.ok:
            self.say(f"proxy log (last lines):\n{tail(self.tmp / 'proxy.log')}")
        return EXIT_OK if summary.ok else EXIT_FAILED

    def stop_clients(self) -> None:
        self.stop_event.set()
        for load in self.load:
            load.join(15)

    def check(self, status: dict[str, Any], elapsed: float, ops_at_switch: int) -> Summary:
        """Compare each client's last acknowledged count with the counter on the server the proxy ends on."""
        assert self.admin is not None
        uplink = self.admin.info().get("uplink")
        final = next((s for s in self.servers.values() if s.addr == uplink), self.servers["b"])
        conn = client(final.port)
        try:
            stored = [int(conn.get(load.key) or 0) for load in self.load]  # type: ignore[arg-type]
        finally:
            conn.close()
        stuck = [load.name for load in self.load if load.is_alive()]
        samples = [f"{load.name}: {msg}" for load in self.load for msg in load.messages][:10]
        samples += [f"{name} did not stop (a command never returned)" for name in stuck]
        operations = sum(load.ops for load in self.load)
        return Summary(
            clients=self.n_clients,
            seconds=elapsed,
            operations=operations,
            operations_after_switch=operations - ops_at_switch,
            errors=sum(load.errors for load in self.load) + len(stuck),
            lost=sum(max(0, load.acked - value) for load, value in zip(self.load, stored)),
            stall_ms=max((load.stall_s for load in self.load), default=0.0) * 1000,
            switchover=status,
            checked_on=f"{final.name} {final.addr}",
            error_samples=samples,
        )

    def cleanup(self) -> None:
        """Stop every thread and process this demo started, and remove its files."""
        self.stop_clients()
        if self.admin is not None:
            self.admin.close()
        if self.proxy is not None:
            stop(self.proxy)
        for server in self.servers.values():
            stop(server.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    binary = shutil.which("redis-server")
    if binary is None:
        print(
            "error: redis-server is not on PATH: the demo starts two throwaway ones "
            "(bash scripts/run.sh installs it, or: apt-get install redis-server)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    plain = args.plain or not sys.stdout.isatty()
    demo = Demo(binary, args.clients, args.seconds, plain)
    try:
        return demo.run()
    except KeyboardInterrupt:
        print("demo: interrupted; stopping everything it started", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except (RuntimeError, AdminError, redis.RedisError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    finally:
        # A second Ctrl-C must not leave servers behind: cleanup runs to the end.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            demo.cleanup()
        finally:
            signal.signal(signal.SIGINT, previous)
