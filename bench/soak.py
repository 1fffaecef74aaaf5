"""Soak: thousands of authenticated clients plus unauthenticated garbage senders, memory watched.

    python bench/soak.py                     # 5,000 clients + 200 garbage connections, ~1 min
    python bench/soak.py --clients 500 --garbage 20 --rounds 5   # a small run

Starts a private redis-server and the proxy (with `listen.pass`), opens
`--clients` connections that AUTH and then SET/GET their own key `--rounds`
times, while `--garbage` unauthenticated connections send random bytes and
reconnect whenever the proxy closes them. Prints the proxy's resident memory
idle, with every client connected, and at the end; KB per client; how many
authenticated clients were served; errors. Every loop is bounded in count and
time, and all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSWORD = "soak-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readline()
    if line[:1] == b"$" and line[1:3] != b"-1":
        await reader.readexactly(int(line[1:]) + 2)
    return line


async def client(port: int, index: int, rounds: int, connected: asyncio.Event, go: asyncio.Event,
                 counts: dict[str, int]) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"AUTH {PASSWORD}\r\n".encode())
        if await reader.readline() != b"+OK\r\n":
            counts["errors"] += 1
            return
        counts["connected"] += 1
        if counts["connected"] == counts["wanted"]:
            connected.set()
        await go.wait()
        for i in range(rounds):
            writer.write(f"SET soak:{index} {i}\r\nGET soak:{index}\r\n".encode())
            if await read_reply(reader) != b"+OK\r\n":
                counts["errors"] += 1
            await read_reply(reader)
        counts["served"] += 1
        writer.close()
    except (OSError, asyncio.IncompleteReadError, ValueError):
        counts["errors"] += 1


async def garbage(port: int, stop: asyncio.Event, counts: dict[str, int], seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(200):  # bounded per connection
                if stop.is_set():
                    break
                writer.write(rng.randbytes(rng.randint(1, 4096)))
                await writer.drain()
                await asyncio.sleep(0.005)
            writer.close()
        except OSError:
            counts["garbage_closed"] += 1
            await asyncio.sleep(0.01)


async def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4 * args.clients + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    work = Path(tempfile.mkdtemp(prefix="rp-soak-"))
    redis_port, proxy_port = free_port(), free_port()
    redis = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--maxclients", str(args.clients * 2 + 1000), "--dir", str(work)],
        stdout=subprocess.DEVNULL,
    )
    config = {
        "uplink": {"addr": f"127.0.0.1:{redis_port}"},
        "listen": {"addr": f"127.0.0.1:{proxy_port}", "pass": PASSWORD},
        "max_clients": args.clients + args.garbage + 100,
    }
    (work / "config.json").write_text(json.dumps(config))
    proxy = subprocess.Popen([sys.executable, "-m", "redis_proxy", "-f", str(work / "config.json")],
                             stdout=open(work / "proxy.log", "wb"), stderr=subprocess.STDOUT)
    counts = {"wanted": args.clients, "connected": 0, "served": 0, "errors": 0, "garbage_closed": 0}
    try:
        await wait_port(redis_port, time.monotonic() + 10)
        await wait_port(proxy_port, time.monotonic() + 10)
        await asyncio.sleep(0.5)
        idle = rss_kb(proxy.pid)
        stop, connected, go = asyncio.Event(), asyncio.Event(), asyncio.Event()
        junk = [asyncio.create_task(garbage(proxy_port, stop, counts, i), name=f"garbage-{i}") for i in range(args.garbage)]
        tasks = []
        for i in range(args.clients):
            tasks.append(asyncio.create_task(client(proxy_port, i, args.rounds, connected, go, counts), name=f"client-{i}"))
            if i % 200 == 199:
                await asyncio.sleep(0.05)  # a connection storm, not a SYN flood
        try:
            await asyncio.wait_for(connected.wait(), args.timeout)
        except TimeoutError:
            pass
        full = rss_kb(proxy.pid)
        go.set()
        started = time.monotonic()
        done, pending = await asyncio.wait(tasks, timeout=args.timeout)
        took = time.monotonic() - started
        peak_after = rss_kb(proxy.pid)
        stop.set()
        await asyncio.gather(*junk, return_exceptions=True)
        for task in pending:
            task.cancel()
        print(f"clients: {args.clients} connected {counts['connected']}, served {counts['served']} "
              f"({args.rounds} SET+GET each, {took:.1f} s), errors {counts['errors']}, unfinished {len(pending)}")
        print(f"garbage connections: {args.garbage}, reconnects after being closed {counts['garbage_closed']}")
        print(f"proxy RSS: idle {idle / 1024:.1f} MB, all connected {full / 1024:.1f} MB, after the run "
              f"{peak_after / 1024:.1f} MB; {(full - idle) / max(1, counts['connected']):.1f} KB per connected client")
        log = (work / "proxy.log").read_text(errors="replace").splitlines()
        print(f"proxy log: {len(log)} lines")
    finally:
        proxy.send_signal(signal.SIGTERM)
        redis.send_signal(signal.SIGTERM)
        proxy.wait(15)
        redis.wait(15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--garbage", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=60.0)
    asyncio.run(main(parser.parse_args()))
    os._exit(0)
