#!/usr/bin/env python3
"""One command, one table: Redis direct, the proxy, the byte pipe and twemproxy, side by side.

    python bench/compare.py            # full run (~4-5 min on a shared 2-core box)
    python bench/compare.py --quick    # smoke run (~20 s)

Starts a private redis-server, the proxy from this checkout, the raw uvloop byte
pipe (bench/bytepipe.py), twemproxy (`nutcracker`, if on PATH) and any
`--extra-proxy-cmd`, all in front of the same redis-server, then:

1. memory: each target's idle RSS, then RSS with `--idle-clients` connected
   clients that have each sent one PING (so each has its uplink connection);
2. rounds of redis-benchmark (50 clients, SET+GET, -P 1 then -P 16), targets
   interleaved round by round, with each target's CPU time (/proc/PID/stat
   utime+stime) sampled around every run;
3. one single-client GET latency run per target per round;

and prints one Markdown table (medians over rounds, ratios as the median of
per-round ratios) plus memory lines and the issue's goals.  Built on
run_bench.py's helpers.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_bench import (
    DIRECT,
    REPO_ROOT,
    BenchError,
    Processes,
    Target,
    die,
    free_port,
    git_rev,
    parse_extra,
    run_cleanly,
    run_redis_benchmark,
    spawn,
    start_proxy,
    start_redis,
    version_of,
    wait_ready,
    which_or_die,
)

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "compare.json"
PROXY, PIPE, TWEM = "proxy", "pipe", "twemproxy"
RESERVED = {DIRECT, PROXY, PIPE, TWEM}

DEFAULTS = {"requests_p1": 100_000, "requests_p16": 1_000_000, "rounds": 3, "latency_requests": 20_000,
            "idle_clients": 2000}
QUICK = {"requests_p1": 10_000, "requests_p16": 100_000, "rounds": 1, "latency_requests": 2_000,
         "idle_clients": 1000}

# The goals, checked at the end of the report.
GOAL_P16_X_DIRECT = 0.45
GOAL_P1_X_PIPE = 0.95
GOAL_ADDED_US = 30.0
GOAL_KB_PER_IDLE = 8.0

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc helpers -----------------------------------------------------------------

def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name; field n (1-based, man proc) is [n - 3]."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rfind(")") + 2:].split()


def process_tree(pid: int) -> list[int]:
    """pid and all its live descendants (a proxy with workers forks them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of pid and its live descendants, in seconds."""
    total = 0
    for p in process_tree(pid):
        try:
            f = _stat_fields(p)
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass  # exited meanwhile
    return total / CLK_TCK


def rss_kb(pid: int) -> int:
    """VmRSS of pid and its live descendants, in KB."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


def raise_fd_limit(wanted: int) -> int:
    """Idle clients need fds here and twice as many in a proxy (client + uplink):
    raise our soft limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


# --- targets ---------------------------------------------------------------------

def start_twemproxy(nutcracker: str, redis_port: int, workdir: Path, procs: Processes) -> Target:
    """twemproxy with one pool, one server: no hashing choice matters, every key goes there."""
    port, stats_port = free_port(), free_port()
    conf = workdir / "nutcracker.yml"
    conf.write_text(
        "bench:\n"
        f"  listen: 127.0.0.1:{port}\n"
        "  redis: true\n"
        "  hash: fnv1a_64\n"
        "  distribution: ketama\n"
        "  auto_eject_hosts: false\n"
        "  preconnect: true\n"
        "  server_connections: 1\n"
        "  servers:\n"
        f"   - 127.0.0.1:{redis_port}:1\n"
    )
    log = workdir / "nutcracker.log"
    cmd = [nutcracker, "-c", str(conf), "-s", str(stats_port), "-a", "127.0.0.1", "-o", str(log),
           "-p", str(workdir / "nutcracker.pid")]
    check = subprocess.run([nutcracker, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=10,
                           check=False)
    if check.returncode != 0:
        die(f"nutcracker rejects its config {conf}:\n{check.stdout}{check.stderr}")
    proc = spawn(TWEM, cmd, workdir / "nutcracker.stdout.log", procs)
    wait_ready(f"{TWEM} ({shlex.join(cmd)})", port, proc, log)
    return Target(TWEM, port, cmd, proc, log)


# --- memory: idle clients --------------------------------------------------------

async def _open_idle(port: int, n: int) -> list[asyncio.StreamWriter]:
    """n connections that each sent PING and got +PONG, kept open."""
    sem = asyncio.Semaphore(100)  # stay well under the listen backlogs
    writers: list[asyncio.StreamWriter] = []

    async def one() -> None:
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
            writer.write(b"*1\r\n$4\r\nPING\r\n")
            line = await asyncio.wait_for(reader.readline(), 10)
            if line != b"+PONG\r\n":
                raise BenchError(f"idle client on :{port} got {line!r} to PING")

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        for w in writers:
            w.close()
        die(f"{len(errors)} of {n} idle clients on :{port} failed, first: {errors[0]!r}")
    return writers


async def _close_all(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


def redis_connected_clients(port: int) -> int | None:
    """INFO clients' connected_clients (our own INFO connection included)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"*2\r\n$4\r\nINFO\r\n$7\r\nclients\r\n")
            buf = b""
            while b"connected_clients:" not in buf or not buf.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        for line in buf.decode(errors="replace").splitlines():
            if line.startswith("connected_clients:"):
                return int(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def measure_memory(t: Target, n: int, settle_s: float, redis_port: int) -> dict[str, Any]:
    """RSS idle, then with n connected clients that each sent one PING; the
    redis-server's connected_clients shows how many uplink connections that made."""
    assert t.proc is not None
    pid = t.proc.pid
    idle = rss_kb(pid)
    before = redis_connected_clients(redis_port)

    async def run() -> dict[str, Any]:
        writers = await _open_idle(t.port, n)
        await asyncio.sleep(settle_s)  # let the target finish its uplink connects
        connected = rss_kb(pid)
        on_redis = redis_connected_clients(redis_port)
        await _close_all(writers)
        await asyncio.sleep(settle_s)
        return {"rss_idle_kb": idle, "rss_connected_kb": connected, "rss_after_close_kb": rss_kb(pid),
                "idle_clients": n, "kb_per_idle_client": (connected - idle) / n,
                "redis_connections_added": None if on_redis is None or before is None else on_redis - before}

    return asyncio.run(run())


# --- benchmark ---------------------------------------------------------------------

def ops(results: dict[str, dict[str, float]]) -> float:
    """One figure per run: the mean of the tests' rps (SET and GET)."""
    return statistics.fmean(m["rps"] for m in results.values())


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def per_round(runs: list[dict[str, Any]], key: str, target: str, ref: str, pipeline: int | None,
              fn: Any) -> list[float]:
    """fn(target's value, ref's value) for each round that has both."""
    def by_round(name: str) -> dict[int, float]:
        return {r["round"]: r[key] for r in runs if r["target"] == name and r.get("pipeline") == pipeline}
    a, b = by_round(target), by_round(ref)
    return [fn(a[rd], b[rd]) for rd in sorted(a) if rd in b]


def summarize(names: list[str], runs: list[dict[str, Any]], lat: list[dict[str, Any]],
              pipe: str | None) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        row: dict[str, Any] = {"target": name}
        for p in (1, 16):
            mine = [r for r in runs if r["target"] == name and r["pipeline"] == p]
            row[f"p{p}_ops"] = med([r["ops"] for r in mine])
            row[f"p{p}_x_direct"] = med(per_round(runs, "ops", name, DIRECT, p, lambda a, b: a / b))
            row[f"p{p}_x_pipe"] = med(per_round(runs, "ops", name, pipe, p, lambda a, b: a / b)) if pipe else None
            row[f"p{p}_cpu_us_per_req"] = med([r["cpu_us_per_req"] for r in mine if r["cpu_us_per_req"] is not None])
        mine_l = [r for r in lat if r["target"] == name]
        row["get_p50_us"] = med([r["p50_us"] for r in mine_l])
        row["get_p99_us"] = med([r["p99_us"] for r in mine_l])
        row["added_us_vs_direct"] = med(per_round(lat, "p50_us", name, DIRECT, None, lambda a, b: a - b))
        row["added_us_vs_pipe"] = (med(per_round(lat, "p50_us", name, pipe, None, lambda a, b: a - b))
                                   if pipe else None)
        rows.append(row)
    return rows


def f0(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:,.0f}{unit}"


def f2(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def fsigned(x: float | None) -> str:
    return "-" if x is None else f"{x:+.0f}"


def f1(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def report(summary: list[dict[str, Any]], memory: dict[str, dict[str, Any]], meta: dict[str, Any],
           pipe: str | None) -> str:
    headers = ["target", "-P 1 ops/s", "× direct", "× pipe", "-P 16 ops/s", "× direct", "× pipe",
               "GET p50 µs", "p99 µs", "added µs", "vs pipe µs", "CPU µs/req -P 1", "-P 16"]
    rows = [[s["target"], f0(s["p1_ops"]), f2(s["p1_x_direct"]), f2(s["p1_x_pipe"]),
             f0(s["p16_ops"]), f2(s["p16_x_direct"]), f2(s["p16_x_pipe"]),
             f0(s["get_p50_us"]), f0(s["get_p99_us"]),
             "-" if s["target"] == DIRECT else fsigned(s["added_us_vs_direct"]),
             "-" if s["target"] in (DIRECT, pipe) else fsigned(s["added_us_vs_pipe"]),
             f1(s["p1_cpu_us_per_req"]), f1(s["p16_cpu_us_per_req"])] for s in summary]
    a = meta["args"]
    out = [
        f"{meta['started']}, {meta['cpus']} CPUs, {meta['platform']}, Python {meta['python']}, "
        f"{meta['redis_server'].split(' sha=')[0]}, git {meta['git_rev']}; one run of "
        f"`{meta['command']}` ({meta['duration_s']:.0f} s)",
        f"redis-benchmark -c {a['clients']} -t set,get: -P 1 -n {a['requests_p1']:,}, -P 16 -n {a['requests_p16']:,}; "
        f"single client GET -n {a['latency_requests']:,}; {a['rounds']} interleaved round(s)",
        "",
        markdown_table(headers, rows),
        "",
        "ops/s: median over rounds of the mean of SET and GET rps; × direct, × pipe: median of per-round ratios;",
        "GET p50/p99: single client (-c 1 -P 1), median over rounds; added µs: median of per-round p50 differences;",
        "CPU µs/req: the target's utime+stime (process and children) over each 50-client run / requests, median.",
        "",
    ]
    for name, m in memory.items():
        out.append(f"memory {name}: idle RSS {m['rss_idle_kb'] / 1024:.1f} MB; {m['idle_clients']:,} idle clients "
                   f"(one PING each): {m['rss_connected_kb'] / 1024:.1f} MB, {m['kb_per_idle_client']:.1f} KB per "
                   f"idle client; {m['rss_after_close_kb'] / 1024:.1f} MB after they closed; "
                   f"redis-server: {m['redis_connections_added']:+,} connections")
    prox = next((s for s in summary if s["target"] == PROXY), None)
    if prox is not None:
        checks = [
            (f"-P 16 ≥ {GOAL_P16_X_DIRECT:.2f}× direct", prox["p16_x_direct"], GOAL_P16_X_DIRECT, True, "{:.2f}×"),
            (f"-P 1 ≥ {GOAL_P1_X_PIPE:.2f}× byte pipe", prox["p1_x_pipe"], GOAL_P1_X_PIPE, True, "{:.2f}×"),
            (f"GET p50 added ≤ {GOAL_ADDED_US:.0f} µs", prox["added_us_vs_direct"], GOAL_ADDED_US, False, "{:.0f} µs"),
            (f"≤ {GOAL_KB_PER_IDLE:.0f} KB per idle client", memory.get(PROXY, {}).get("kb_per_idle_client"),
             GOAL_KB_PER_IDLE, False, "{:.2f} KB"),
        ]
        out.append("")
        parts = []
        for label, value, goal, higher, fmt in checks:
            if value is None:
                parts.append(f"{label}: not measured")
            else:
                ok = value >= goal if higher else value <= goal
                parts.append(f"{label}: {fmt.format(value)} {'met' if ok else 'NOT met'}")
        out.append("goals (proxy): " + "; ".join(parts))
    return "\n".join(out)


def run_all(args: argparse.Namespace, procs: Processes, workdir: Path) -> int:
    redis_server = which_or_die(args.redis_server)
    redis_benchmark = which_or_die(args.redis_benchmark)
    nutcracker = None if args.no_twemproxy else shutil.which(args.nutcracker)
    if nutcracker is None and not args.no_twemproxy:
        print(f"({args.nutcracker} not on PATH: no twemproxy row; `apt-get install nutcracker` adds it)", flush=True)
    extras = parse_extra(args.extra_proxy_cmd)
    for name, _ in extras:
        if name in RESERVED:
            die(f"--extra-proxy-cmd: name {name!r} is taken")
    limit = raise_fd_limit(max(4 * args.idle_clients + 1024, 8192))
    if limit < 3 * args.idle_clients + 100:
        die(f"open-files limit {limit} is too low for --idle-clients {args.idle_clients}")

    redis = start_redis(redis_server, workdir, procs)
    targets: list[Target] = [redis]
    proxy_specs: list[tuple[str, list[str], dict[str, Any] | None]] = []
    if args.workers:
        for w in args.workers:
            name = PROXY if len(args.workers) == 1 else f"{PROXY}-w{w}"
            proxy_specs.append((name, shlex.split(args.proxy_cmd), {"workers": w}))
    else:
        proxy_specs.append((PROXY, shlex.split(args.proxy_cmd), None))
    if not args.no_pipe:
        proxy_specs.append((PIPE, [sys.executable, str(REPO_ROOT / "bench" / "bytepipe.py")], None))
    proxy_specs += [(name, cmd, None) for name, cmd in extras]
    for name, cmd, extra in proxy_specs:
        targets.append(start_proxy(name, cmd, redis.port, workdir, procs, extra_config=extra))
    if nutcracker is not None:
        targets.append(start_twemproxy(nutcracker, redis.port, workdir, procs))
    pipe = None if args.no_pipe else PIPE
    print("started: " + ", ".join(f"{t.name} :{t.port} pid {t.proc.pid if t.proc else '?'}" for t in targets),
          flush=True)
    started = time.time()

    # 1. Memory, on fresh processes (before any benchmark traffic grows their heaps).
    time.sleep(args.settle)
    memory: dict[str, dict[str, Any]] = {}
    if args.idle_clients > 0:
        for t in targets:
            memory[t.name] = measure_memory(t, args.idle_clients, args.settle, redis.port)
            m = memory[t.name]
            print(f"memory {t.name:<10} idle {m['rss_idle_kb'] / 1024:6.1f} MB, {args.idle_clients} idle clients "
                  f"{m['rss_connected_kb'] / 1024:6.1f} MB: {m['kb_per_idle_client']:.1f} KB each", flush=True)

    # 2 + 3. Interleaved rounds; the order of targets rotates each round so that no
    # target always runs first (or right after the same neighbour).
    runs: list[dict[str, Any]] = []
    lat: list[dict[str, Any]] = []
    kw: dict[str, Any] = {"timeout": args.timeout, "procs": procs, "redis": redis}
    for rnd in range(1, args.rounds + 1):
        k = (rnd - 1) % len(targets)
        order = targets[k:] + targets[:k]
        for pipeline, requests in ((1, args.requests_p1), (16, args.requests_p16)):
            for t in order:
                assert t.proc is not None
                c0 = cpu_seconds(t.proc.pid)
                r = run_redis_benchmark(redis_benchmark, t, clients=args.clients, requests=requests,
                                        pipeline=pipeline, tests="set,get", **kw)
                cpu = cpu_seconds(t.proc.pid) - c0
                total_requests = requests * len(r["results"])
                run = {"round": rnd, "target": t.name, "pipeline": pipeline, "clients": args.clients,
                       "requests": requests, "ops": ops(r["results"]), "cpu_s": round(cpu, 3),
                       "cpu_us_per_req": cpu * 1e6 / total_requests, **r}
                runs.append(run)
                print(f"round {rnd}/{args.rounds} -P {pipeline:<2} {t.name:<10} {run['ops']:>11,.0f} ops/s  "
                      f"CPU {run['cpu_us_per_req']:5.1f} µs/req  ({r['wall_s']:.1f} s)", flush=True)
        for t in order:
            r = run_redis_benchmark(redis_benchmark, t, clients=1, requests=args.latency_requests, pipeline=1,
                                    tests="get", **kw)
            g = r["results"]["GET"]
            lat.append({"round": rnd, "target": t.name, "pipeline": None, "requests": args.latency_requests,
                        "p50_us": g["p50_latency_ms"] * 1000, "p99_us": g["p99_latency_ms"] * 1000, **r})
            print(f"round {rnd}/{args.rounds} c=1   {t.name:<10} GET p50 {g['p50_latency_ms'] * 1000:4.0f} µs  "
                  f"p99 {g['p99_latency_ms'] * 1000:4.0f} µs", flush=True)

    for t in targets[1:]:
        if t.proc is not None and t.proc.poll() is not None:
            die(f"{t.name} exited (code {t.proc.returncode}) during the benchmark")
    rss_end = {t.name: rss_kb(t.proc.pid) for t in targets if t.proc is not None}

    names = [t.name for t in targets]
    summary = summarize(names, runs, lat, pipe)
    meta = {
        "started": time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "command": shlex.join(["python", "bench/compare.py", *args.argv]),
        "host": platform.node(), "platform": f"{platform.system()} {platform.machine()}", "cpus": os.cpu_count(),
        "loadavg_end": os.getloadavg(), "python": sys.version.split()[0],
        "redis_server": version_of(redis_server), "redis_benchmark": version_of(redis_benchmark),
        "nutcracker": version_of(nutcracker) if nutcracker else None,
        "targets": {t.name: {"port": t.port, "cmd": t.cmd} for t in targets},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "argv"},
        "git_rev": git_rev(),
    }
    text = report(summary, memory, meta, pipe)
    print("\n" + text)
    doc = {"meta": meta, "summary": summary, "memory": memory, "rss_end_kb": rss_end, "report": text,
           "runs": runs, "latency_runs": lat}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nJSON: {args.output}  (total {time.time() - started:.0f} s)")
    return 0


def parse_workers(text: str) -> list[int]:
    try:
        ws = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N,M,...: {text!r}") from None
    if not ws or any(w < 1 for w in ws) or len(set(ws)) != len(ws):
        raise argparse.ArgumentTypeError(f"expected distinct numbers >= 1: {text!r}")
    return ws


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small N, 1 round, 1000 idle clients: ~20 s")
    ap.add_argument("--rounds", type=int, help=f"interleaved rounds (default {DEFAULTS['rounds']})")
    ap.add_argument("--requests-p1", type=int, help=f"-n per -P 1 run (default {DEFAULTS['requests_p1']:,})")
    ap.add_argument("--requests-p16", type=int, help=f"-n per -P 16 run (default {DEFAULTS['requests_p16']:,})")
    ap.add_argument("--latency-requests", type=int,
                    help=f"-n per single-client GET run (default {DEFAULTS['latency_requests']:,})")
    ap.add_argument("--idle-clients", type=int, help=f"idle clients for KB/client, 0 skips (default {DEFAULTS['idle_clients']})")
    ap.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default %(default)s)")
    ap.add_argument("--proxy-cmd", default=shlex.join([sys.executable, "-m", "redis_proxy"]),
                    help="the proxy's command line; '-f CONFIG.json' is appended (default: %(default)s)")
    ap.add_argument("--extra-proxy-cmd", action="append", default=[], metavar="NAME=CMD",
                    help="another proxy taking the same '-f CONFIG.json', measured alongside (repeatable)")
    ap.add_argument("--workers", type=parse_workers, metavar="N[,M...]",
                    help="put \"workers\": N in the proxy's config (only when given); N,M starts one proxy per value "
                         "(proxy-wN, proxy-wM) in the same run")
    ap.add_argument("--no-pipe", action="store_true", help="leave out the byte pipe")
    ap.add_argument("--no-twemproxy", action="store_true", help="leave out twemproxy even if installed")
    ap.add_argument("--nutcracker", default="nutcracker", help="twemproxy binary (default: from PATH)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait before RSS readings (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per redis-benchmark run, seconds")
    ap.add_argument("--redis-server", default="redis-server")
    ap.add_argument("--redis-benchmark", default="redis-benchmark")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results (default %(default)s)")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("requests_p1", "requests_p16", "latency_requests", "rounds", "clients"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.idle_clients < 0:
        ap.error("--idle-clients must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cleanly("compare", lambda procs, tmp: run_all(args, procs, tmp))


if __name__ == "__main__":
    sys.exit(main())
