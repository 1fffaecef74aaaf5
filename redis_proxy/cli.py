"""Command line: `redis-proxy -f config.json [--check] [options]`. A thin layer over config and server.

Subcommands `redis-proxy switchover ...`, `redis-proxy compare ...` and `redis-proxy demo ...` are
dispatched on the first argument, before this parser: the proxy's own
command line stays exactly what it was.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
from collections.abc import Coroutine
from typing import Any

from redis_proxy import __version__
from redis_proxy.config import LISTENERS, Config, ConfigError, load_config, parse_tcp_addr
from redis_proxy.detach import detach
from redis_proxy.logs import FORMATS, LEVELS, setup_logging
from redis_proxy.pidfile import PidFileError, check_pidfile
from redis_proxy.sentinel.events import MasterState
from redis_proxy.sentinel.query import SentinelUnavailable, ask_all, resolve_master, with_master
from redis_proxy.server import listener_tls, run
from redis_proxy.tls import uplink_context
from redis_proxy.uplink import UplinkError, UplinkUnreachable, check_uplink

log = logging.getLogger("redis_proxy")

EXIT_CONFIG = 2  # the config was rejected
EXIT_UPLINK = 3  # the config is valid but the uplink cannot be used
EXIT_START = 1  # a listener could not be bound, or the pid file names a running process


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis-proxy",
        description="A Redis-protocol-aware proxy: pause, drain and switch the Redis behind your clients without breaking their connections.",
        epilog="Other commands: `redis-proxy switchover -f config.json --to NAME` moves a running proxy to another uplink; "
        "`redis-proxy compare -f config.json --to NAME` compares it with another uplink, key by key; "
        "`redis-proxy demo` shows a switchover under load with throwaway servers. Each has its own --help.",
    )
    parser.add_argument("-f", "--config", required=True, metavar="FILE", help="config file (JSON); - reads it from standard input")
    parser.add_argument(
        "--check", action="store_true", help="validate the config, connect to the uplink (TLS and AUTH included), print what was checked and exit"
    )
    parser.add_argument(
        "--start-without-uplink",
        action="store_true",
        help="start even when the uplink cannot be reached; clients get -ERR until it can",
    )
    parser.add_argument(
        "--pidfile", metavar="PATH", help="write the process id here once listening; removed at exit"
    )
    parser.add_argument(
        "--takeover",
        action="store_true",
        help="take over from the proxy already running with this config (its control socket): its listeners and clients "
        "move to this process without a client noticing, and it exits",
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help="with --takeover and --pidfile: run the new process in the background and exit once it serves "
        "(0) or has failed (1); for systemd's ExecReload",
    )
    parser.add_argument("--log-level", choices=LEVELS, default="info", help="least severe level logged (default: info)")
    parser.add_argument(
        "--log-format", choices=FORMATS, default="text", help="text lines, or one JSON object per line (default: text)"
    )
    parser.add_argument("--version", action="version", version=f"redis-proxy {__version__}")
    return parser


def _run_loop(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed: it roughly halves the event loop's cost per read."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _check(config: Config) -> int:
    try:
        contexts = listener_tls(config)
        print("ok: config schema and files")
        for name in contexts:
            print(f"ok: {name} TLS certificate and key")
        for name, addr in _tcp_listeners(config):
            if _probe_bind(name, addr):
                print(f"ok: {name} can listen on {addr}")
            else:
                # Checking the config of a proxy that is already running (before
                # a reload, say) must still check everything else: the address
                # being taken is what a running proxy looks like from outside.
                print(
                    f"warning: {name}.addr: {addr} is already in use (expected if this proxy is running;"
                    " otherwise starting it would fail)",
                    file=sys.stderr,
                )
        if config.sentinel is not None:
            master = _print_sentinels(config, await ask_all(config.sentinel))
            if master is None:
                return EXIT_UPLINK
            config = with_master(config, master)
        uplink_ssl = uplink_context(config.uplink)
        print(f"ok: {await check_uplink(config.uplink, uplink_ssl)}")
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    except UplinkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UPLINK
    return 0


def _print_sentinels(config: Config, answers: list[tuple[str, Any]]) -> str | None:
    """Each sentinel's answer; the master's address as the proxy would take it (the first answer), or None."""
    assert config.sentinel is not None
    name = config.sentinel.master_name
    masters = [(addr, answer) for addr, answer in answers if isinstance(answer, MasterState)]
    for addr, answer in answers:
        if isinstance(answer, MasterState):
            print(f"ok: sentinel {addr} says master {name} is at {answer.addr} (config epoch {answer.epoch})")
        else:
            print(f"warning: {answer}", file=sys.stderr)
    if not masters:
        print(f"error: no sentinel told where master {name} is", file=sys.stderr)
        return None
    if len({answer.addr for _, answer in masters}) > 1:
        print("warning: the sentinels disagree (a failover in progress?); the proxy follows the newest config epoch", file=sys.stderr)
    return masters[0][1].addr


def _tcp_listeners(config: Config) -> list[tuple[str, str]]:
    out = []
    for name in LISTENERS:
        section = getattr(config, name)
        if section is not None and getattr(section, "network", "tcp") == "tcp":
            out.append((name, section.addr))
    return out


def _probe_bind(name: str, addr: str) -> bool:
    """Bind (and release) a listener's address, so --check catches a port it cannot use.

    False when the address is in use (a warning: it may be this proxy);
    any other failure (no such address, permission) is a ConfigError.
    """
    host, port = parse_tcp_addr(addr)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        raise ConfigError([f"{name}.addr: cannot listen on {addr}: {exc.strerror or exc}"]) from None
    return True


async def _start(
    config: Config, path: str, without_uplink: bool, pidfile: str | None, takeover: bool, log_args: list[str]
) -> int:
    """Refuse to start against an uplink that cannot be used (unless told to wait for it); then serve."""
    if takeover:
        # The uplink is the one the running proxy uses now, checked once it is known (takeover/taker.py).
        return await run(config, path, pidfile=pidfile, takeover=True, log_args=log_args)
    sentinel_master: MasterState | None = None
    if config.sentinel is not None:
        # Before anything else: the file's uplink.addr may be a master Sentinel has replaced since.
        try:
            sentinel_master, told_by = await resolve_master(config.sentinel)
        except SentinelUnavailable as exc:
            if not without_uplink:
                log.error("%s", exc)
                return EXIT_UPLINK
            log.warning("%s; starting on uplink.addr %s until a sentinel answers (--start-without-uplink)", exc, config.uplink.addr)
        else:
            log.info(
                "sentinel %s: master %s is at %s (config epoch %s)",
                told_by, config.sentinel.master_name, sentinel_master.addr, sentinel_master.epoch,
            )
            config = with_master(config, sentinel_master.addr)
    try:
        await check_uplink(config.uplink, uplink_context(config.uplink))
    except ConfigError as exc:
        for line in exc.problems:
            log.error("%s", line)
        return EXIT_CONFIG
    except UplinkUnreachable as exc:
        if not without_uplink:
            log.error("%s", exc)
            return EXIT_UPLINK
        # Only "down" is tolerated: a reachable uplink that refuses (AUTH, TLS,
        # a replica) is a config mistake that waiting will not fix.
        log.warning(
            "starting without an uplink (--start-without-uplink): %s; clients get -ERR until it is reachable", exc
        )
    except UplinkError as exc:
        log.error("%s", exc)
        return EXIT_UPLINK
    return await run(config, path, pidfile=pidfile, sentinel_master=sentinel_master, log_args=log_args)


SUBCOMMANDS = ("switchover", "compare", "demo")


def _subcommand(name: str, argv: list[str]) -> int:
    # Imported on demand: the proxy itself does not need rich, nor the demo's code.
    if name == "switchover":
        from redis_proxy import cli_switchover

        return cli_switchover.main(argv)
    if name == "compare":
        from redis_proxy import cli_compare

        return cli_compare.main(argv)
    from redis_proxy import demo

    return demo.main(argv)


def _worker(argv: list[str]) -> int:
    """`--worker FD --worker-index I [--log-level L] [--log-format F]`: a worker process of `workers: N` (internal)."""
    parser = argparse.ArgumentParser(prog="redis-proxy --worker", description="internal: started by the proxy itself")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--worker-index", type=int, default=0)
    parser.add_argument("--log-level", choices=LEVELS, default="info")
    parser.add_argument("--log-format", choices=FORMATS, default="text")
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format, worker=args.worker_index)
    from redis_proxy.workers.worker import serve

    try:
        return _run_loop(serve(args.worker, args.worker_index))
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv[0], argv[1:])
    if argv and argv[0] == "--worker":
        return _worker(argv)
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.problems:
            if args.check:
                print(f"error: {line}", file=sys.stderr)
            else:
                log.error("%s", line)  # one complete log line (time, level) per problem
        return EXIT_CONFIG
    if args.check:
        return _run_loop(_check(config))
    if args.detach:
        if not (args.takeover and args.pidfile):
            log.error("--detach goes with --takeover and --pidfile")
            return EXIT_START
        return detach([a for a in argv if a != "--detach"], os.path.abspath(args.pidfile))
    pidfile = os.path.abspath(args.pidfile) if args.pidfile else None
    if pidfile is not None and not args.takeover:  # taking over: the pid file names the process taken over
        try:
            check_pidfile(pidfile)
        except PidFileError as exc:
            log.error("%s", exc)
            return EXIT_START
    try:
        log_args = ["--log-level", args.log_level, "--log-format", args.log_format]  # what workers log with (workers: N)
        return _run_loop(_start(config, args.config, args.start_without_uplink, pidfile, args.takeover, log_args))
    except KeyboardInterrupt:
        return 0
