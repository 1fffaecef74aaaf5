"""Differential test: Redis itself is the specification of the proxy.

Every seeded stream from `command_streams.make_stream` is sent, as the same
bytes cut at random offsets, to a reference redis-server directly and to an
identical fresh redis-server through the proxy; the two reply byte strings
must be identical (after normalizing the client id inside HELLO replies).
Switch streams move the proxy onto a promoted replica in the middle.

Replay one stream:   python3 tests/test_differential.py --seed N [--direct] [--dump]
or, under pytest:     REDIS_PROXY_DIFF_SEED=N python3 -m pytest tests/test_differential.py
REDIS_PROXY_DIFF_DIRECT=1 runs every test direct-vs-direct (no proxy): this
must always pass, else the generator is not deterministic.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from command_streams import KIND_NAMES, KIND_SWITCH, KIND_TRACKING, SEED_BLOCK, Stream, make_stream, stream_kind  # noqa: E402
from servers import ProxyProcess, RedisServer, proxy_config, wait_until  # noqa: E402

STREAM_TIMEOUT = 30.0  # seconds for all replies of one stream
CONTEXT = 200  # bytes of context either side of the first difference
BATCHES, PER_BATCH = 10, 10  # 100 RESP2 streams and 100 HELLO 3 streams
SWITCH_BATCHES, SWITCH_PER_BATCH = 4, 5  # 20 switch streams
TRACKING_BATCHES = 3  # 30 streams with CLIENT TRACKING (half of them RESP3)
DIRECT = os.environ.get("REDIS_PROXY_DIFF_DIRECT", "") not in ("", "0")
ONLY_SEED = int(os.environ["REDIS_PROXY_DIFF_SEED"]) if os.environ.get("REDIS_PROXY_DIFF_SEED") else None

# The only field of a reply that legitimately differs: HELLO's connection id.
_HELLO_ID = re.compile(rb"\$2\r\nid\r\n:\d+\r\n")


def normalize(replies: bytes) -> bytes:
    return _HELLO_ID.sub(b"$2\r\nid\r\n:0\r\n", replies)


# --------------------------------------------------------------------------
# sending and collecting
# --------------------------------------------------------------------------


def chunk_plan(stream: Stream, must_cut: int | None) -> list[tuple[int, float]]:
    """Chunk end offsets (and a sleep after each) for sending the stream; seeded too.

    Sizes range from 1 byte (in runs) to 256 KB; `must_cut` is always a boundary.
    """
    rng = random.Random(stream.seed * 7919 + 17)
    total, pos, ends = len(stream.data), 0, []
    while pos < total:
        if rng.random() < 0.06:
            for _ in range(rng.randint(1, 40)):  # a run of 1-byte chunks
                pos += 1
                ends.append(pos)
            continue
        lo, hi = rng.choices([(2, 16), (17, 512), (513, 8192), (8193, 262144)], [25, 35, 30, 10])[0]
        pos += rng.randint(lo, hi)
        ends.append(pos)
    cuts = sorted({min(e, total) for e in ends} | ({must_cut} if must_cut else set()))
    return [(end, rng.uniform(0.0002, 0.002) if rng.random() < 0.03 else 0.0) for end in cuts]


class Collector(threading.Thread):
    """Reads everything from a socket until the replies end with `tail` (or EOF/timeout)."""

    def __init__(self, sock: socket.socket, tail: bytes) -> None:
        super().__init__(daemon=True)
        self.sock, self.tail = sock, tail
        self.data = bytearray()
        self.closed = False
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.data.endswith(self.tail):
                chunk = self.sock.recv(262144)
                if not chunk:
                    self.closed = True
                    break
                self.data += chunk
        except OSError:
            self.closed = True
        finally:
            self.done.set()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=STREAM_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run_stream(stream: Stream, ref_port: int, sut_port: int, switch: Callable[[], None] | None = None,
               switch_at: int | None = None) -> tuple[bytes, bytes, str]:
    """Send the stream to both; return (reference replies, replies under test, problem or "")."""
    offsets = stream.offsets()
    cut = offsets[switch_at] if switch_at is not None else None
    socks = [connect(ref_port), connect(sut_port)]
    collectors = [Collector(s, stream.expected_tail) for s in socks]
    problem = ""
    try:
        for c in collectors:
            c.start()
        data, start = stream.data, 0
        for end, pause in chunk_plan(stream, cut):
            if switch is not None and start == cut:
                switch()  # between two chunks, at a quiet point of the stream
            for sock in socks:
                sock.sendall(data[start:end])
            start = end
            if pause:
                time.sleep(pause)
        deadline = time.monotonic() + STREAM_TIMEOUT
        for name, c in zip(("reference", "under test"), collectors):
            if not c.done.wait(max(deadline - time.monotonic(), 0.01)):
                problem += f"{name}: no final ECHO reply within {STREAM_TIMEOUT:.0f}s; "
            elif c.closed:
                problem += f"{name}: connection closed before the final ECHO reply; "
    except OSError as exc:
        problem += f"send failed: {exc!r}; "
    finally:
        for s in socks:
            s.close()
        for c in collectors:
            c.join(2)
    return bytes(collectors[0].data), bytes(collectors[1].data), problem


def describe(stream: Stream, ref: bytes, sut: bytes, problem: str) -> str | None:
    """None if the replies agree, else a report: seed, first differing offset, context."""
    ref_n, sut_n = normalize(ref), normalize(sut)
    if ref_n == sut_n and not problem:
        return None
    at = next((i for i, (a, b) in enumerate(zip(ref_n, sut_n)) if a != b), min(len(ref_n), len(sut_n)))
    lo = max(at - CONTEXT, 0)
    return (
        f"seed {stream.seed} ({KIND_NAMES[stream_kind(stream.seed)]}, {len(stream.commands)} commands): "
        f"replies differ at byte {at} (reference {len(ref_n)} bytes, under test {len(sut_n)} bytes). {problem}\n"
        f"  reference : {ref_n[lo:at]!r} >>> {ref_n[at:at + CONTEXT]!r}\n"
        f"  under test: {sut_n[lo:at]!r} >>> {sut_n[at:at + CONTEXT]!r}\n"
        f"  replay: python3 tests/test_differential.py --seed {stream.seed}"
    )


# --------------------------------------------------------------------------
# the servers: reference, and a server behind the proxy (or direct)
# --------------------------------------------------------------------------


@dataclass
class Pair:
    ref: RedisServer
    sut: RedisServer
    sut_port: int  # the proxy's port, or the server's own in direct mode
    ref_ctl: redis.Redis
    sut_ctl: redis.Redis

    def flush(self) -> None:
        self.ref_ctl.flushall()
        self.sut_ctl.flushall()


def open_pair(direct: bool) -> tuple[Pair, list[ProxyProcess]]:
    ref, sut = RedisServer().start(), RedisServer().start()
    proxies = [] if direct else [ProxyProcess(proxy_config(sut, admin=False)).start()]
    port = sut.port if direct else int(proxies[0].port or 0)
    return Pair(ref, sut, port, ref.client(), sut.client()), proxies


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    p, proxies = open_pair(DIRECT)
    yield p
    for proxy in proxies:
        proxy.close()
    p.ref.close()
    p.sut.close()


def check_streams(p: Pair, seeds: list[int]) -> list[str]:
    failures = []
    for seed in seeds:
        stream = make_stream(seed)
        p.flush()
        report = describe(stream, *run_stream(stream, p.ref.port, p.sut_port))
        if report:
            failures.append(report)
    return failures


def batch_seeds(base: int, batch: int, per_batch: int) -> list[int]:
    seeds = [base + batch * per_batch + i for i in range(per_batch)]
    if ONLY_SEED is not None:
        seeds = [s for s in seeds if s == ONLY_SEED]
        if not seeds:
            pytest.skip(f"REDIS_PROXY_DIFF_SEED={ONLY_SEED} is not in this batch")
    return seeds


def fail_if_any(failures: list[str], total: int) -> None:
    if failures:
        pytest.fail(f"{len(failures)} of {total} streams differ:\n\n" + "\n\n".join(failures), pytrace=False)


@pytest.mark.parametrize("batch", range(BATCHES))
def test_streams_starting_in_resp2(pair: Pair, batch: int) -> None:
    seeds = batch_seeds(0, batch, PER_BATCH)
    fail_if_any(check_streams(pair, seeds), len(seeds))


@pytest.mark.parametrize("batch", range(BATCHES))
def test_streams_starting_with_hello_3(pair: Pair, batch: int) -> None:
    seeds = batch_seeds(SEED_BLOCK, batch, PER_BATCH)
    fail_if_any(check_streams(pair, seeds), len(seeds))


@pytest.mark.parametrize("batch", range(TRACKING_BATCHES))
def test_streams_with_client_tracking(pair: Pair, batch: int) -> None:
    seeds = batch_seeds(KIND_TRACKING * SEED_BLOCK, batch, PER_BATCH)
    fail_if_any(check_streams(pair, seeds), len(seeds))


def test_harness_direct_vs_direct() -> None:
    """The harness itself: two plain redis-servers must always agree (else the generator is not deterministic)."""
    if ONLY_SEED is not None:
        pytest.skip("replaying one seed")
    p, _ = open_pair(direct=True)
    try:
        seeds = list(range(0, 100, 9)) + list(range(SEED_BLOCK, SEED_BLOCK + 100, 9)) + [2 * SEED_BLOCK + 3]
        seeds += list(range(KIND_TRACKING * SEED_BLOCK, KIND_TRACKING * SEED_BLOCK + 30, 3))
        fail_if_any(check_streams(p, seeds), len(seeds))
    finally:
        p.ref.close()
        p.sut.close()


# --------------------------------------------------------------------------
# switch streams: the proxy moves from master A to its promoted replica B mid-stream
# --------------------------------------------------------------------------


class SwitchRig:
    """Reference R; A and B replicate each other in turn, the in-process proxy follows the master."""

    def __init__(self, directory: Path) -> None:
        from inproc import start  # imports redis_proxy: only needed for switch streams

        args = ["--repl-diskless-sync-delay", "0"]
        self.ref = RedisServer().start()
        self.master, self.replica = RedisServer(extra_args=args).start(), RedisServer(extra_args=args).start()
        self.ctl = {s.port: s.client() for s in (self.ref, self.master, self.replica)}
        self.follow(self.replica, self.master)
        self.proxy = start(proxy_config(self.master, admin=False, listen={"addr": "127.0.0.1:0"}), directory)

    def follow(self, replica: RedisServer, master: RedisServer) -> None:
        self.ctl[replica.port].replicaof("127.0.0.1", master.port)
        wait_until(lambda: self.ctl[replica.port].info("replication").get("master_link_status") == "up",
                   timeout=15, message="replica link up")

    def caught_up(self) -> bool:
        target = self.ctl[self.master.port].info("replication")["master_repl_offset"]
        return self.ctl[self.replica.port].info("replication")["slave_repl_offset"] >= target

    def prepare(self) -> None:
        """Empty data everywhere, before a stream (FLUSHALL on the master replicates)."""
        self.ctl[self.ref.port].flushall()
        self.ctl[self.master.port].flushall()
        wait_until(self.caught_up, timeout=15, interval=0.002, message="replica caught up before the stream")

    def switch(self) -> None:
        """The operator's switch: pause, catch up, promote, rewrite, reload, unpause."""
        self.proxy.pause_and_wait(10)
        wait_until(self.caught_up, timeout=15, interval=0.002, message="replica caught up in the pause")
        self.ctl[self.replica.port].replicaof("NO", "ONE")
        self.proxy.rewrite_config({**self.proxy.config, "uplink": {"addr": self.replica.addr}})
        result = self.proxy.reload()
        assert result["switched"] is True, result
        self.proxy.unpause()
        self.master, self.replica = self.replica, self.master

    def after(self) -> None:
        """The old master becomes a replica of the new one (partial resync), ready for the next switch."""
        self.follow(self.replica, self.master)

    def close(self) -> list[str]:
        errors: list[str] = []
        try:
            self.proxy.stop()
            errors = [str(e.get("exception") or e.get("message")) for e in self.proxy.loop_errors]
        finally:
            for server in (self.ref, self.master, self.replica):
                server.close()
        return errors


def check_switch_streams(rig: SwitchRig, seeds: list[int]) -> list[str]:
    failures = []
    for seed in seeds:
        stream = make_stream(seed)
        rig.prepare()
        at = random.Random(seed).choice(stream.switch_points)
        report = describe(stream, *run_stream(stream, rig.ref.port, rig.proxy.port, rig.switch, at))
        if report:
            failures.append(report + f" (switch before command {at})")
        rig.after()
    return failures


@pytest.fixture(scope="module")
def rig() -> Iterator[SwitchRig]:
    r = SwitchRig(Path(tempfile.mkdtemp(prefix="rp-diff-")))
    yield r
    errors = r.close()
    assert not errors, f"the proxy's event loop reported errors: {errors}"


@pytest.mark.skipif(DIRECT, reason="a switch needs the proxy")
@pytest.mark.parametrize("batch", range(SWITCH_BATCHES))
def test_streams_with_a_switch_to_a_promoted_replica(rig: SwitchRig, batch: int) -> None:
    seeds = batch_seeds(KIND_SWITCH * SEED_BLOCK, batch, SWITCH_PER_BATCH)
    fail_if_any(check_switch_streams(rig, seeds), len(seeds))


# --------------------------------------------------------------------------
# command line: replay one seed
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--direct", action="store_true", help="compare two plain redis-servers (no proxy)")
    parser.add_argument("--dump", action="store_true", help="print the stream's commands")
    args = parser.parse_args(argv)
    stream = make_stream(args.seed)
    if args.dump:
        for i, cmd in enumerate(stream.commands):
            print(f"{i:4d} {cmd[:300]!r}")
    if stream_kind(args.seed) == KIND_SWITCH and not args.direct:
        rig = SwitchRig(Path(tempfile.mkdtemp(prefix="rp-diff-")))
        try:
            failures = check_switch_streams(rig, [args.seed])
        finally:
            print("event loop errors:", rig.close())
    else:
        p, proxies = open_pair(args.direct)
        try:
            failures = check_streams(p, [args.seed])
        finally:
            for proxy in proxies:
                proxy.close()
            p.ref.close()
            p.sut.close()
    print("\n\n".join(failures) if failures else f"seed {args.seed}: identical replies")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
