#!/usr/bin/env python3
"""Copy-mode migration: what write tracking costs clients, how fast the copy goes, how it converges under load.

One run, on private redis-servers (a source filled with DEBUG POPULATE, an
empty target), the proxy in front of them and the byte pipe:

1. Throughput, interleaved round by round: redis-benchmark SET/GET with 50
   clients, P1 and P16, against direct Redis, the byte pipe, the proxy with
   no migration, the proxy while a copy-mode switchover only tracks writes
   (its copy paced to a standstill), and the proxy while it tracks and copies
   at --copy-ops keys/s. Each tracked run starts a switchover and aborts it.
2. Copy rate: a copy-mode switchover with no rate limit and no load:
   keys/s and MB/s of the copy phase.
3. Under load: a copy-mode switchover while redis-benchmark writes random
   keys through the proxy: rounds to converge, keys left, clients held.

See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from run_bench import (REPO_ROOT, Processes, Target, fmt_table, free_port, git_rev, run_redis_benchmark, spawn,
                       version_of, wait_ready, which_or_die)

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "copy_mode.json"
CONDITIONS = ("direct", "pipe", "proxy", "tracking", "tracking+copy")


def start_redis(name: str, redis_server: str, workdir: Path, procs: Processes) -> Target:
    port = free_port()
    cmd = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           "--dir", str(workdir), "--protected-mode", "no", "--enable-debug-command", "local"]
    log = workdir / f"{name}.log"
    proc = spawn(name, cmd, log, procs)
    wait_ready(name, port, proc, log)
    return Target(name, port, cmd, proc, log)


def start_proxy(source: int, target: int, workdir: Path, procs: Processes) -> tuple[Target, httpx.Client]:
    port, admin = free_port(), free_port()
    config = {
        "uplinks": {"src": {"addr": f"127.0.0.1:{source}"}, "tgt": {"addr": f"127.0.0.1:{target}"}},
        "uplink": "src",
        "listen": {"addr": f"127.0.0.1:{port}"},
        "admin": {"addr": f"127.0.0.1:{admin}"},
    }
    path = workdir / "proxy.json"
    path.write_text(json.dumps(config))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    log = workdir / "proxy.log"
    proc = spawn("proxy", [sys.executable, "-m", "redis_proxy", "-f", str(path)], log, procs, env=env)
    wait_ready("proxy", port, proc, log)
    return Target("proxy", port, None, proc, log), httpx.Client(base_url=f"http://127.0.0.1:{admin}", timeout=30)


def status(admin: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = admin.get("/switchover.json").json()
    return body


def start_copy(admin: httpx.Client, **options: Any) -> None:
    response = admin.post("/cmd/", data={"cmd": "switchover", "to": "tgt", "mode": "copy", **options})
    if response.status_code != 202:
        raise SystemExit(f"switchover refused: {response.status_code} {response.text}")


def wait_for(admin: httpx.Client, done: Any, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = status(admin)
        if done(body):
            return body
        if body.get("result") is not None:
            raise SystemExit(f"switchover ended early: {body['result']} {body.get('error')}")
        time.sleep(0.05)
    raise SystemExit(f"timed out; switchover status: {status(admin)}")


def tracking_started(body: dict[str, Any]) -> bool:
    return any("tracking the writes" in e["msg"] for e in body.get("events", []))


def abort(admin: httpx.Client) -> None:
    admin.post("/cmd/", data={"cmd": "abort-switchover"})
    deadline = time.monotonic() + 120
    while status(admin).get("result") is None:
        if time.monotonic() > deadline:
            raise SystemExit("the abort did not finish")
        time.sleep(0.05)


def event_time(body: dict[str, Any], text: str) -> float:
    return next(e["t"] for e in body["events"] if e["msg"] == text)


def reset_target(port: int) -> None:
    redis.Redis(port=port).flushall()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=200_000, help="keys on the source (DEBUG POPULATE)")
    p.add_argument("--value-size", type=int, default=64, help="bytes per value (DEBUG POPULATE)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=100_000, help="redis-benchmark requests per P1 run (P16: x10)")
    p.add_argument("--copy-ops", type=int, default=5000, help="the copy's rate while the bench measures tracking+copy")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = p.parse_args(argv)
    redis_server, redis_benchmark = which_or_die("redis-server"), which_or_die("redis-benchmark")
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="rp-copy-bench-") as tmp:
        workdir = Path(tmp)
        try:
            src = start_redis("source", redis_server, workdir, procs)
            tgt = start_redis("target", redis_server, workdir, procs)
            redis.Redis(port=src.port).execute_command("DEBUG", "POPULATE", args.keys, "pre", args.value_size)
            proxy, admin = start_proxy(src.port, tgt.port, workdir, procs)
            pipe_port = free_port()
            pipe_config = workdir / "pipe.json"
            pipe_config.write_text(json.dumps({"uplink": {"addr": f"127.0.0.1:{src.port}"},
                                               "listen": {"addr": f"127.0.0.1:{pipe_port}"}}))
            pipe_proc = spawn("pipe", [sys.executable, "bench/bytepipe.py", "-f", str(pipe_config)],
                              workdir / "pipe.log", procs)
            wait_ready("pipe", pipe_port, pipe_proc, workdir / "pipe.log")
            pipe = Target("pipe", pipe_port, None, pipe_proc, workdir / "pipe.log")
            runs: list[dict[str, Any]] = []
            for rnd in range(args.rounds):
                for pipeline, requests in ((1, args.requests), (16, args.requests * 10)):
                    for name in CONDITIONS:
                        target = {"direct": src, "pipe": pipe}.get(name, proxy)
                        if name != "direct" and name != "pipe" and name != "proxy":
                            reset_target(tgt.port)
                            ops = 1 if name == "tracking" else args.copy_ops
                            start_copy(admin, max_copy_ops=ops, force="true")
                            wait_for(admin, tracking_started)
                        out = run_redis_benchmark(redis_benchmark, target, clients=50, requests=requests,
                                                  pipeline=pipeline, tests="set,get", timeout=600, procs=procs,
                                                  redis=src)
                        if name.startswith("tracking"):
                            abort(admin)
                        for test in ("SET", "GET"):
                            runs.append({"round": rnd, "condition": name, "pipeline": pipeline, "test": test,
                                         "rps": out["results"][test]["rps"]})
                        print(f"round {rnd} P{pipeline} {name}: " + ", ".join(
                            f"{t} {out['results'][t]['rps']:,.0f}/s" for t in ("SET", "GET")), flush=True)
            rows, summary = [], []
            for pipeline in (1, 16):
                for test in ("SET", "GET"):
                    medians = {c: statistics.median(r["rps"] for r in runs if r["condition"] == c
                                                    and r["pipeline"] == pipeline and r["test"] == test)
                               for c in CONDITIONS}
                    summary.append({"pipeline": pipeline, "test": test, "median_rps": medians})
                    rows.append([f"P{pipeline} {test}"] + [f"{medians[c]:,.0f} ({medians[c] / medians['direct']:.2f})"
                                                           for c in CONDITIONS])
            print(fmt_table(["median rps (ratio to direct)", *CONDITIONS], rows))

            # 2. The copy rate, unthrottled, no load.
            reset_target(tgt.port)
            start_copy(admin, max_copy_ops=0, max_copy_bytes=0, force="true")
            body = wait_for(admin, lambda b: b.get("result") is not None)
            copy_s = event_time(body, "phase converge") - event_time(body, "phase copy")
            rate = {"keys": body["keys_copied"], "bytes": body["bytes_copied"], "seconds": round(copy_s, 3),
                    "keys_per_s": round(body["keys_copied"] / copy_s), "mb_per_s": round(body["bytes_copied"] / copy_s / 1e6, 1),
                    "held_ms": body["held_ms"], "result": body["result"]}
            print(f"copy rate: {rate}")
            admin.post("/cmd/", data={"cmd": "switch", "to": "src"})

            # 3. Under load: writers through the proxy while a copy switchover converges and cuts over.
            reset_target(tgt.port)
            load = spawn("load", [redis_benchmark, "-p", str(proxy.port), "-c", "50", "-n", "100000000", "-t", "set",
                                  "-r", str(args.keys), "-q"], workdir / "load.log", procs)
            time.sleep(1)
            start_copy(admin, force="true")
            body = wait_for(admin, lambda b: b.get("result") is not None)
            load.kill()
            under_load = {"result": body["result"], "error": body.get("error"), "rounds": body["rounds"],
                          "held_ms": body["held_ms"], "keys_copied": body["keys_copied"],
                          "verify_checked": body["verify_checked"], "verify_mismatches": body["verify_mismatches"],
                          "events": [e["msg"] for e in body["events"] if "round" in e["msg"] or "cutover" in e["msg"]]}
            print(f"under load: {json.dumps(under_load, indent=1)}")
            result = {"machine": platform.node(), "cpus": os.cpu_count(), "git": git_rev(),
                      "redis": version_of(redis_server), "keys": args.keys, "value_size": args.value_size, "throughput": summary, "runs": runs,
                      "copy_rate": rate, "under_load": under_load}
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(result, indent=1))
            print(f"written to {args.output}")
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
