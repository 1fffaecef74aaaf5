#!/usr/bin/env python3
"""Micro-benchmark of RESP framing: hiredis.Reader vs. redis_proxy.resp framers.

Each buffer holds 16 pipelined `SET key:000000000001 xxx` requests (or 16 `+OK`
replies), the shape of a redis-benchmark -P 16 read.  Prints commands (replies)
per second, median of --repeats timings.  Standalone:

    python bench/framer_bench.py [--buffers 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

# Run from a checkout without installing: make `redis_proxy` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hiredis  # noqa: E402

PER_BUFFER = 16
REQUEST = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000001\r\n$3\r\nxxx\r\n"
REPLY = b"+OK\r\n"
REQ_BUF = REQUEST * PER_BUFFER
REPLY_BUF = REPLY * PER_BUFFER

# A case: given the number of buffers, build a zero-arg function that parses them
# all and returns how many commands/replies it saw (so we can check correctness).
Case = Callable[[int], Callable[[], int]]


def count_items(parsed: list[Any]) -> int:
    """RequestFramer returns batches (objects with .commands); others return one item per message."""
    return sum(len(x.commands) if hasattr(x, "commands") else 1 for x in parsed)


def hiredis_case(buf: bytes) -> Case:
    def make(n: int) -> Callable[[], int]:
        def run() -> int:
            # One long-lived reader, as a connection would have.
            reader = hiredis.Reader()
            feed, gets = reader.feed, reader.gets
            seen = 0
            for _ in range(n):
                feed(buf)
                while gets() is not False:
                    seen += 1
            return seen
        return run
    return make


def framer_case(factory: Callable[[], Any], chunks: list[bytes]) -> Case:
    """`chunks` is one buffer as it arrives in reads; more than one chunk models
    a TCP read boundary falling inside a command."""
    def make(n: int) -> Callable[[], int]:
        def run() -> int:
            framer = factory()  # reused across buffers, like a connection's framer
            feed = framer.feed
            seen = 0
            for _ in range(n):
                for chunk in chunks:
                    seen += count_items(feed(chunk))
            return seen
        return run
    return make


def exact_reply_framer() -> Any:
    from redis_proxy.resp import ReplyFramer
    f = ReplyFramer()
    f.set_fast_path(False)  # the pure-Python path used while replies must be inspected
    return f


def build_cases() -> list[tuple[str, Case]]:
    cases: list[tuple[str, Case]] = [
        ("hiredis.Reader  requests", hiredis_case(REQ_BUF)),
        ("hiredis.Reader  replies", hiredis_case(REPLY_BUF)),
    ]
    try:
        from redis_proxy import resp
    except ImportError as e:
        print(f"redis_proxy.resp not available ({e})")
        return cases
    # Cut 5 bytes into the 9th command: the framer must carry a partial command over.
    cut = len(REQUEST) * 8 + 5
    if hasattr(resp, "RequestFramer"):
        cases.append(("RequestFramer   requests", framer_case(resp.RequestFramer, [REQ_BUF])))
        cases.append(("RequestFramer   requests, split read", framer_case(resp.RequestFramer, [REQ_BUF[:cut], REQ_BUF[cut:]])))
    else:
        print("redis_proxy.resp.RequestFramer not available")
    if hasattr(resp, "ReplyFramer"):
        cases.append(("ReplyFramer     replies", framer_case(resp.ReplyFramer, [REPLY_BUF])))
        if hasattr(resp.ReplyFramer, "set_fast_path"):
            cases.append(("ReplyFramer     replies, exact path", framer_case(exact_reply_framer, [REPLY_BUF])))
    else:
        print("redis_proxy.resp.ReplyFramer not available")
    return cases


def time_case(make: Case, buffers: int, repeats: int) -> tuple[float, list[float], int]:
    """Median msgs/s over `repeats` runs (median resists a noisy shared machine)."""
    make(min(buffers, 500))()  # warm-up: imports, caches, first allocations
    run = make(buffers)
    rates: list[float] = []
    seen = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        seen = run()
        dt = time.perf_counter() - t0
        rates.append(seen / dt if dt > 0 else float("inf"))
    return statistics.median(rates), rates, seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buffers", type=int, default=20_000, help="buffers per timed run (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per case; median reported (default %(default)s)")
    args = ap.parse_args(argv)
    if args.buffers < 1 or args.repeats < 1:
        ap.error("--buffers and --repeats must be >= 1")

    print(f"python {sys.version.split()[0]}, hiredis {getattr(hiredis, '__version__', '?')}; "
          f"{PER_BUFFER} messages/buffer, {args.buffers:,} buffers, median of {args.repeats}")
    cases = build_cases()
    width = max(len(name) for name, _ in cases)
    expected = args.buffers * PER_BUFFER
    baseline: dict[str, float] = {}
    failed = False
    for name, make in cases:
        try:
            rate, rates, seen = time_case(make, args.buffers, args.repeats)
        except Exception as e:  # a half-written framer must not hide the other numbers
            print(f"{name:<{width}}  FAILED: {type(e).__name__}: {e}")
            failed = True
            continue
        kind = "replies" if "replies" in name else "requests"
        baseline.setdefault(kind, rate)  # hiredis cases come first and are the baseline
        spread = f"[{min(rates) / 1e6:.2f}-{max(rates) / 1e6:.2f}]"
        note = "" if seen == expected else f"  WARNING: parsed {seen:,}, expected {expected:,}"
        print(f"{name:<{width}}  {rate / 1e6:7.2f} M/s {spread:>13}  "
              f"{rate / baseline[kind]:5.2f}x hiredis{note}")
        failed = failed or bool(note)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
