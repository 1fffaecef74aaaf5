#!/usr/bin/env python3
"""Micro-benchmark of the session core alone (no sockets, no event loop).

One round is what the hot path does for one client read and one uplink
read: `client_data` with N pipelined requests (framed, routed, one write
upstream) and `uplink_data` with their N replies (counted off, written
through). Prints the CPU time per round and per command (this thread's
CPU time, so other load on the machine matters less), the median and the
minimum of --repeats timings, and where `redis_proxy.session.core` was imported from (a mypyc
build puts a .so next to the .py; see bench/README.md).

    python bench/core_bench.py [--rounds 50000] [--repeats 5] [--pipeline 1,16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# Run from a checkout without installing: make `redis_proxy` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis_proxy.session.core  # noqa: E402
from redis_proxy.gate import Gate  # noqa: E402
from redis_proxy.session.core import SessionCore  # noqa: E402
from redis_proxy.stats import Stats  # noqa: E402

SET = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000001\r\n$3\r\nxxx\r\n"
GET = b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000001\r\n"
OK = b"+OK\r\n"
BULK = b"$3\r\nxxx\r\n"


def ready_core() -> SessionCore:
    core = SessionCore(Gate(0.0), Stats(), None, time.monotonic)
    core.client_data(b"*1\r\n$4\r\nPING\r\n")
    core.uplink_ready(0, 7, [], None)
    core.uplink_data(b"+PONG\r\n")
    return core


def run(request: bytes, reply: bytes, pipeline: int, rounds: int) -> float:
    core = ready_core()
    requests, replies = request * pipeline, reply * pipeline
    client_data, uplink_data = core.client_data, core.uplink_data
    start = time.thread_time()  # CPU time: the machine may be shared
    for _ in range(rounds):
        client_data(requests)
        uplink_data(replies)
    elapsed = time.thread_time() - start
    assert not core.pending and not core.closing
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pipeline", default="1,16")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}; session core: {redis_proxy.session.core.__file__}")
    for pipeline in (int(p) for p in args.pipeline.split(",")):
        for name, request, reply in (("SET", SET, OK), ("GET", GET, BULK)):
            times = [run(request, reply, pipeline, args.rounds) for _ in range(args.repeats)]
            med = statistics.median(times)
            per_round_us = med / args.rounds * 1e6
            print(
                f"{name} -P {pipeline:<3} {per_round_us:7.2f} µs/round  {per_round_us / pipeline:6.3f} µs/command"
                f"  {args.rounds * pipeline / med / 1e6:6.2f} M commands/s  [min {min(times) / args.rounds * 1e6:.2f} µs/round]"
            )


if __name__ == "__main__":
    main()
