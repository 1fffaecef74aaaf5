#!/usr/bin/env python3
"""Switchover under load: how long clients are held, how long a probe client waits, total switchover time.

One run: (1) two private redis-servers and the proxy (uplinks a/b), redis-benchmark
looping with 50 clients through the proxy, a probe process sending INCR one at a
time, and N switchovers alternating a->b, b->a; (2) the total time of one
switchover to an empty target for an empty dataset (repl-diskless-sync-delay 0 and
Redis's default 5) and a ~1 GB one. See bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import redis
from run_bench import (REPO_ROOT, BenchError, Processes, die, fmt_table, free_port, git_rev, spawn, tail,
                       version_of, wait_ready, which_or_die)

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "switchover_hold.json"
TARGET_HOLD_MEDIAN_MS, TARGET_PROBE_MAX_MS = 20.0, 30.0
Sample = tuple[float, float, int]  # (wall-clock send time, latency s, INCR value)


@dataclass
class Rig:
    """Two redis-servers (a, b) and the proxy in front of them, with their own processes."""

    ports: dict[str, int]
    proxy_port: int
    admin: httpx.Client
    procs: Processes = field(default_factory=Processes)
    logs: dict[str, Path] = field(default_factory=dict)

    def redis(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], socket_timeout=30)

    def check_alive(self) -> None:
        for name, proc in self.procs.procs:
            if proc.poll() is not None and not name.startswith("redis-benchmark"):
                die(f"{name} exited with code {proc.returncode}; last output:\n{tail(self.logs.get(name))}")


def start_rig(args: argparse.Namespace, workdir: Path, delay: int, tag: str) -> Rig:
    procs, ports, logs = Processes(), {}, {}
    for name in ("a", "b"):
        port, d = free_port(), workdir / f"{tag}-{name}"
        d.mkdir()
        cmd = [args.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(d), "--daemonize", "no", "--protected-mode", "no", "--repl-diskless-sync", "yes",
               "--repl-diskless-sync-delay", str(delay), "--enable-debug-command", "yes"]
        logs[f"redis-{name}"] = d / "redis.log"
        wait_ready(f"redis-{name}", port, spawn(f"redis-{name}", cmd, logs[f"redis-{name}"], procs), logs[f"redis-{name}"])
        ports[name] = port
    proxy_port, admin_port = free_port(), free_port()
    config = {"uplinks": {n: {"addr": f"127.0.0.1:{p}"} for n, p in ports.items()}, "uplink": "a",
              "listen": {"addr": f"127.0.0.1:{proxy_port}"}, "admin": {"addr": f"127.0.0.1:{admin_port}"},
              "read_time_limit_ms": 5000}
    cfg = workdir / f"{tag}-proxy.json"
    cfg.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p))
    logs["proxy"] = workdir / f"{tag}-proxy.log"
    proc = spawn("proxy", [sys.executable, "-m", "redis_proxy", "-f", str(cfg)], logs["proxy"], procs, env=env)
    wait_ready("proxy", proxy_port, proc, logs["proxy"])
    rig = Rig(ports, proxy_port, httpx.Client(base_url=f"http://127.0.0.1:{admin_port}", timeout=10), procs, logs)
    rig.admin.get("/healthz").raise_for_status()
    return rig


def stop_rig(rig: Rig) -> None:
    rig.admin.close()
    rig.procs.stop_all()


def switchover(rig: Rig, to: str, timeout: float) -> dict[str, Any]:
    """cmd=switchover to=TO, then poll /switchover.json until it has a result; die unless "done"."""
    r = rig.admin.post("/cmd/", data={"cmd": "switchover", "to": to})
    if r.status_code != 202:
        die(f"switchover to {to} refused ({r.status_code}): {r.text[:300]}")
    deadline = time.monotonic() + timeout
    while True:
        st: dict[str, Any] = rig.admin.get("/switchover.json").json()
        if st.get("to") == to and st.get("result") is not None:
            break
        if time.monotonic() > deadline:
            die(f"switchover to {to} still running after {timeout:.0f}s: {st.get('phase')} {st.get('events', [])[-3:]}")
        rig.check_alive()
        time.sleep(0.02)
    if st["result"] != "done":
        die(f"switchover to {to} {st['result']}: {st.get('error')}\n  events: "
            + "\n  ".join(f"{e['t']:.3f} {e['msg']}" for e in st["events"]))
    return st


def phase_ms(st: dict[str, Any]) -> dict[str, float | None]:
    """Durations between the engine's events (ms): where a switchover's time went."""
    ev = st["events"]

    def t(prefix: str, last: bool = False) -> float | None:
        hits = [e["t"] for e in ev if e["msg"].startswith(prefix)]
        return (hits[-1] if last else hits[0]) if hits else None

    def d(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round((b - a) * 1000, 1)

    caught = next((e["msg"] for e in ev if e["msg"].startswith("caught up at offset")), "")
    held_so_far = float(caught.rsplit("held ", 1)[1].split(" ms")[0]) if "held " in caught else None
    marks = [t("phase preflight"), t("phase replicate"), t("phase catch-up"), t("phase catch-up", last=True),
             t("caught up at offset"), t("target ", last=True), t("switched to"), t("source fenced"), st["ended_at"]]
    # The engine's order: promote, switch (clients released), then fence the old server.
    return {"preflight": d(marks[0], marks[1]), "replicate": d(marks[1], marks[2]),
            "catch_up_phase": d(marks[3], marks[4]), "drain_and_catch_up": held_so_far,
            "promote": d(marks[4], marks[5]), "switch": d(marks[5], marks[6]), "fence": d(marks[6], marks[7]),
            "finish": d(marks[7], marks[8]), "total": d(st["started_at"], st["ended_at"])}


def wait_link_up(rig: Rig, name: str, timeout: float = 60.0) -> float:
    """Wait until server `name` is a replica with its link up; seconds waited."""
    t0, client = time.monotonic(), rig.redis(name)
    try:
        while time.monotonic() - t0 < timeout:
            info = client.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                return time.monotonic() - t0
            time.sleep(0.02)
    finally:
        client.close()
    die(f"{name}'s replication link not up after {timeout:.0f}s")


def probe_main(port: int, stop: Any, out: Connection) -> None:
    """Child process: INCR probe one at a time until `stop`; sends (samples, errors) back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    samples: list[Sample] = []
    errors: list[str] = []
    sock: socket.socket | None = None
    while not stop.is_set():
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                reader = sock.makefile("rb")
            tw, t0 = time.time(), time.perf_counter()
            sock.sendall(b"*2\r\n$4\r\nINCR\r\n$5\r\nprobe\r\n")
            line = reader.readline()
            lat = time.perf_counter() - t0
            if not line.startswith(b":"):
                raise OSError(f"unexpected reply {line[:100]!r}")
            samples.append((tw, lat, int(line[1:])))
        except OSError as e:
            errors.append(f"{time.time():.3f} {e}")
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.01)
    out.send((samples, errors))


def metrics(rig: Rig) -> dict[str, float]:
    names = ("error_replies", "proxy_errors", "client_connections", "uplink_failures", "time_limit_kills", "switches")
    out = {}
    for line in rig.admin.get("/metrics").text.splitlines():
        key, _, value = line.partition(" ")
        if key.startswith("redis_proxy_") and key.removeprefix("redis_proxy_").removesuffix("_total") in names:
            out[key.removeprefix("redis_proxy_").removesuffix("_total")] = float(value)
    return out


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(p * len(s)) - 1)] if s else float("nan")


def attribute(runs: list[dict[str, Any]], samples: list[Sample]) -> list[float]:
    """Per switchover: the probe's longest wait among commands overlapping its window, where that command sat
    relative to the hold (from "caught up ... held X ms so far" back to "switched to"), and a control: the
    longest wait in an equally long window just before the request. Returns the latencies (ms) outside all windows."""
    for r in runs:
        s, e = r["started_at"], r["ended_at"]
        win = [(tw, lat) for tw, lat, _ in samples if tw < e and tw + lat > s]
        ctl = [lat for tw, lat, _ in samples if s - 0.05 - (e - s) < tw and tw + lat < s - 0.05]
        r["probe_cmds"], r["probe_control_max_ms"] = len(win), round(max(ctl) * 1000, 2) if ctl else None
        r["probe_max_ms"] = round(max(lat for _, lat in win) * 1000, 2) if win else None
        ev = {k: next((x["t"] for x in r["events"] if x["msg"].startswith(k)), None) for k in ("caught up", "switched to")}
        if win and ev["caught up"] and ev["switched to"]:
            tw, lat = max(win, key=lambda x: x[1])
            hold_start = ev["caught up"] - (r["phases"]["drain_and_catch_up"] or 0) / 1000
            r["probe_worst"] = {"sent_vs_hold_start_ms": round((tw - hold_start) * 1000, 1),
                                "done_vs_hold_end_ms": round((tw + lat - ev["switched to"]) * 1000, 1)}
    windows = [(r["started_at"], r["ended_at"]) for r in runs]
    return [lat * 1000 for tw, lat, _ in samples if not any(tw < e and tw + lat > s for s, e in windows)]


def hold_run(args: argparse.Namespace, workdir: Path, rigs: list[Rig]) -> dict[str, Any]:
    rig = start_rig(args, workdir, 0, "hold")
    rigs.append(rig)
    # One redis-benchmark per test, the clients split between them, so all three run all the time
    # (one -t set,get,incr -l process runs the tests one after the other, reconnecting in between).
    tests = ("set", "get", "incr")
    benches: list[subprocess.Popen[bytes]] = []
    bench_cmds: list[list[str]] = []
    for i, test in enumerate(tests):
        clients = args.clients // len(tests) + (1 if i < args.clients % len(tests) else 0)
        cmd = [args.redis_benchmark, "-h", "127.0.0.1", "-p", str(rig.proxy_port), "-c", str(clients),
               "-n", "100000000", "-r", "100000", "-t", test, "-l", "-q"]
        rig.logs[f"redis-benchmark-{test}"] = workdir / f"redis-benchmark-{test}.log"
        benches.append(spawn(f"redis-benchmark-{test}", cmd, rig.logs[f"redis-benchmark-{test}"], rig.procs))
        bench_cmds.append(cmd)
    ctx = mp.get_context("fork")
    stop, (recv, send) = ctx.Event(), ctx.Pipe(duplex=False)
    probe = ctx.Process(target=probe_main, args=(rig.proxy_port, stop, send), daemon=True)
    probe.start()
    time.sleep(args.warmup)
    m0 = metrics(rig)
    runs: list[dict[str, Any]] = []
    where = "a"
    try:
        for i in range(1, args.switchovers + 1):
            to = "b" if where == "a" else "a"
            st = switchover(rig, to, args.timeout)
            link_s = wait_link_up(rig, where)
            for test, bench in zip(tests, benches):
                if bench.poll() is not None:
                    die(f"redis-benchmark -t {test} exited ({bench.returncode}) by switchover {i}:\n"
                        f"{tail(rig.logs[f'redis-benchmark-{test}'])}")
            run = {"n": i, "from": where, "to": to, "held_ms": st["held_ms"], "attempt": st["attempt"],
                   "started_at": st["started_at"], "ended_at": st["ended_at"], "phases": phase_ms(st),
                   "link_up_after_s": round(link_s, 3), "events": st["events"]}
            runs.append(run)
            print(f"switchover {i:2}/{args.switchovers} {where}->{to}  held {st['held_ms']:6.1f} ms  "
                  f"total {run['phases']['total']:7.1f} ms  fence {run['phases']['fence']:5.1f} ms", flush=True)
            where = to
            time.sleep(args.gap)
    finally:
        stop.set()
        samples, probe_errors = recv.recv() if probe.is_alive() or recv.poll(5) else ([], ["probe died"])
        probe.join(5)
    m1 = metrics(rig)
    bench_errors: list[str] = []
    for test, bench in zip(tests, benches):
        bench.terminate()
        bench.wait(5)
        text = rig.logs[f"redis-benchmark-{test}"].read_text(errors="replace").replace("\r", "\n")
        bench_errors += [f"{test}: {ln}" for ln in text.splitlines() if "error" in ln.lower()]
    outside = attribute(runs, samples)
    values = [v for _, _, v in samples]
    backwards = sum(1 for x, y in itertools.pairwise(values) if y <= x)
    gaps = sum(1 for x, y in itertools.pairwise(values) if y > x + 1)
    return {"runs": runs, "probe_errors": probe_errors, "probe_samples": len(samples), "probe_backwards": backwards,
            "probe_gaps": gaps, "probe_outside_ms": {"median": statistics.median(outside) if outside else None,
                                                     "p99": pct(outside, 0.99), "max": max(outside, default=None)},
            "bench_cmds": bench_cmds, "bench_errors": bench_errors[:20], "bench_error_count": len(bench_errors),
            "proxy_metrics_delta": {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}}


def total_case(args: argparse.Namespace, workdir: Path, rigs: list[Rig], label: str, delay: int, mb: int) -> dict[str, Any]:
    rig = start_rig(args, workdir, delay, label)
    rigs.append(rig)
    a = rig.redis("a")
    if mb:
        t0 = time.monotonic()
        a.execute_command("DEBUG", "POPULATE", str(mb * 1024 * 1024 // 1100), "key", "1000")  # type: ignore[no-untyped-call]
        print(f"  {label}: DEBUG POPULATE took {time.monotonic() - t0:.1f}s", flush=True)
    mem, keys = int(a.info("memory")["used_memory"]), int(a.dbsize())
    a.close()
    st = switchover(rig, "b", args.big_timeout)
    ph = phase_ms(st)
    print(f"  {label}: {keys} keys, used_memory {mem / 2**20:.0f} MiB, total {ph['total']:.0f} ms, "
          f"held {st['held_ms']:.1f} ms", flush=True)
    stop_rig(rig)
    rigs.remove(rig)
    return {"label": label, "repl_diskless_sync_delay": delay, "keys": keys, "used_memory": mem,
            "held_ms": st["held_ms"], "phases": ph, "events": st["events"]}


def summarize(hold: dict[str, Any], totals: list[dict[str, Any]]) -> dict[str, Any]:
    runs = hold["runs"]
    held = [r["held_ms"] for r in runs]
    probe = [r["probe_max_ms"] for r in runs if r["probe_max_ms"] is not None]
    ctl = [r["probe_control_max_ms"] for r in runs if r["probe_control_max_ms"] is not None]
    after = [r["probe_worst"]["done_vs_hold_end_ms"] for r in runs if r.get("probe_worst", {}).get("done_vs_hold_end_ms") is not None]
    keys = ("drain_and_catch_up", "promote", "fence", "switch", "finish", "preflight", "total")
    phases = {k: statistics.median([r["phases"][k] for r in runs if r["phases"][k] is not None] or [math.nan]) for k in keys}
    return {"switchovers": len(runs), "hold_ms": {"median": statistics.median(held), "p90": pct(held, 0.9), "max": max(held)},
            "probe_wait_ms": {"max": max(probe), "median": statistics.median(probe)},
            "phase_median_ms": phases, "first_total_ms": runs[0]["phases"]["total"],
            "probe_control_max_ms": {"max": max(ctl, default=None), "median": statistics.median(ctl) if ctl else None},
            "probe_worst_done_after_unpause_ms": statistics.median(after) if after else None,
            "probe_outside_ms": hold["probe_outside_ms"], "probe_errors": len(hold["probe_errors"]),
            "probe_backwards": hold["probe_backwards"], "probe_gaps": hold["probe_gaps"],
            "bench_errors": hold["bench_error_count"], "proxy_metrics_delta": hold["proxy_metrics_delta"],
            "target_met": statistics.median(held) <= TARGET_HOLD_MEDIAN_MS and max(probe) <= TARGET_PROBE_MAX_MS,
            "totals": [{"label": t["label"], "delay": t["repl_diskless_sync_delay"], "used_memory": t["used_memory"],
                        "keys": t["keys"], "total_ms": t["phases"]["total"], "held_ms": t["held_ms"],
                        "preflight_ms": t["phases"]["preflight"], "replicate_ms": t["phases"]["replicate"]} for t in totals]}


def print_report(s: dict[str, Any], args: argparse.Namespace) -> None:
    h, p, o = s["hold_ms"], s["probe_wait_ms"], s["probe_outside_ms"]
    print(f"\n{s['switchovers']} switchovers under redis-benchmark -c {args.clients} (set,get,incr, loop) through "
          "the proxy; redis-servers with --repl-diskless-sync-delay 0")
    print(f"  hold (pause to unpause): median {h['median']:.1f} ms, p90 {h['p90']:.1f} ms, max {h['max']:.1f} ms"
          f"   [target: median <= {TARGET_HOLD_MEDIAN_MS:g}]")
    print(f"  probe's longest wait per switchover: max {p['max']:.1f} ms, median {p['median']:.1f} ms"
          f"   [target: max <= {TARGET_PROBE_MAX_MS:g}]")
    print(f"  the probe's longest wait ended a median {s['probe_worst_done_after_unpause_ms']:.1f} ms after the unpause; "
          f"control (as long a window just before each request): max {s['probe_control_max_ms']['max']:.1f} ms, "
          f"median {s['probe_control_max_ms']['median']:.1f} ms")
    print(f"  probe outside switchovers: median {o['median']:.2f} ms, p99 {o['p99']:.2f} ms, max {o['max']:.1f} ms")
    print("  median phases (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in s["phase_median_ms"].items()))
    print(f"  first switchover (includes the full sync): {s['first_total_ms']:.0f} ms")
    print(f"  errors: probe {s['probe_errors']}, probe INCR backwards {s['probe_backwards']} / gaps {s['probe_gaps']}, "
          f"redis-benchmark {s['bench_errors']}; proxy counters: "
          + ", ".join(f"{k} +{v:g}" for k, v in s["proxy_metrics_delta"].items()))
    print(f"  target met: {'YES' if s['target_met'] else 'NO'}")
    if s["totals"]:
        print("\ntotal switchover time to an empty target (no load):")
        print(fmt_table(["dataset", "diskless-sync-delay", "keys", "used_memory", "total", "preflight", "replicate", "held"],
                        [[t["label"], f"{t['delay']} s", f"{t['keys']:,}", f"{t['used_memory'] / 2**20:,.0f} MiB",
                          f"{t['total_ms'] / 1000:.2f} s", f"{t['preflight_ms']:.0f} ms", f"{t['replicate_ms'] / 1000:.2f} s",
                          f"{t['held_ms']:.1f} ms"]
                         for t in s["totals"]]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--switchovers", type=int, help="switchovers under load (default 20; --quick 4)")
    ap.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default %(default)s)")
    ap.add_argument("--gap", type=float, default=0.75, help="seconds between switchovers, after the link is up (default %(default)s)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the first switchover (default %(default)s)")
    ap.add_argument("--dataset-mb", type=int, help="the big dataset's size, DEBUG POPULATE of 1000-byte values (default 1024; --quick 50; 0: skip)")
    ap.add_argument("--no-default-delay", action="store_true", help="skip the empty case with Redis's default repl-diskless-sync-delay 5")
    ap.add_argument("--no-totals", action="store_true", help="only the switchovers under load")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 switchovers, a 50 MB dataset")
    ap.add_argument("--timeout", type=float, default=60.0, help="per switchover under load, seconds (default %(default)s)")
    ap.add_argument("--big-timeout", type=float, default=900.0, help="per dataset switchover, seconds (default %(default)s)")
    ap.add_argument("--redis-server", default="redis-server", help="redis-server binary (default: from PATH)")
    ap.add_argument("--redis-benchmark", default="redis-benchmark", help="redis-benchmark binary (default: from PATH)")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON (default %(default)s)")
    args = ap.parse_args(argv)
    if args.switchovers is None:
        args.switchovers = 4 if args.quick else 20
    if args.dataset_mb is None:
        args.dataset_mb = 50 if args.quick else 1024
    if args.switchovers < 1:
        ap.error("--switchovers must be >= 1")
    return args


def run(args: argparse.Namespace, workdir: Path, rigs: list[Rig]) -> int:
    args.redis_server, args.redis_benchmark = which_or_die(args.redis_server), which_or_die(args.redis_benchmark)
    started = time.time()
    print(f"redis-servers: --save '' --appendonly no --repl-diskless-sync yes --repl-diskless-sync-delay 0 "
          f"(the default-delay case: 5); {args.switchovers} switchovers, {args.clients} clients", flush=True)
    hold = hold_run(args, workdir, rigs)
    stop_rig(rigs.pop())
    totals: list[dict[str, Any]] = []
    if not args.no_totals:
        print("\ntotal switchover time (fresh servers, no load):", flush=True)
        totals.append(total_case(args, workdir, rigs, "empty", 0, 0))
        if not args.no_default_delay:
            totals.append(total_case(args, workdir, rigs, "empty (default delay)", 5, 0))
        if args.dataset_mb:
            totals.append(total_case(args, workdir, rigs, f"{args.dataset_mb} MB", 0, args.dataset_mb))
    summary = summarize(hold, totals)
    print_report(summary, args)
    doc: dict[str, Any] = {"meta": {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                    "duration_s": round(time.time() - started, 1), "host": platform.node(), "cpus": os.cpu_count(),
                    "loadavg_end": os.getloadavg(), "python": sys.version.split()[0],
                    "redis_server": version_of(args.redis_server), "git_rev": git_rev(),
                    "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}},
           "summary": summary, "hold": hold, "totals": totals}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nresults: {args.output}  (total {doc['meta']['duration_s']}s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rigs: list[Rig] = []

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with tempfile.TemporaryDirectory(prefix="redis-proxy-switchover-") as tmp:
        try:
            return run(args, Path(tmp), rigs)
        except BenchError as e:
            print(f"\nswitchover_hold: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nswitchover_hold: interrupted, stopping child processes", file=sys.stderr)
            return 130
        finally:
            for rig in rigs:
                stop_rig(rig)


if __name__ == "__main__":
    sys.exit(main())
