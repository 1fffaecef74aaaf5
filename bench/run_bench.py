#!/usr/bin/env python3
"""End-to-end throughput/latency benchmark: redis-benchmark direct vs. through the proxy.

One invocation starts a private redis-server and the proxy (plus optional extra
proxies to compare), then runs redis-benchmark against each target, interleaved
round by round, and prints medians.  See bench/README.md for usage.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "latest.json"

# Defaults: sized so that a 3-round run against a Python proxy stays within a
# couple of minutes on a 2-core box; --quick is a smoke test that takes seconds.
DEFAULTS = {"requests_p1": 100_000, "requests_p16": 1_000_000, "rounds": 3, "latency_requests": 20_000}
QUICK = {"requests_p1": 10_000, "requests_p16": 100_000, "rounds": 1, "latency_requests": 2_000}

DIRECT = "direct"
STARTUP_TIMEOUT_S = 20.0
STDERR_TAIL_LINES = 40


class BenchError(Exception):
    """A failure we report as a readable message (no traceback) and exit non-zero."""


@dataclass
class Target:
    """Something redis-benchmark can be pointed at: the bare Redis or a proxy in front of it."""

    name: str
    port: int
    cmd: list[str] | None = None  # None for direct Redis
    proc: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None


@dataclass
class Processes:
    """Every child we start, so the finally-block can always reap them (also on Ctrl-C)."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def add(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.procs.append((name, proc))

    def stop_all(self) -> None:
        # Reverse order: proxies go down before the Redis they forward to, so they
        # don't spam reconnect errors while we tear down.
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    proc.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5.0
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def die(msg: str) -> NoReturn:
    raise BenchError(msg)


def free_port() -> int:
    # Bind to port 0 and release it: a tiny race, acceptable for a local benchmark.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path | None, lines: int = STDERR_TAIL_LINES) -> str:
    if path is None or not path.exists():
        return "(no output captured)"
    text = path.read_text(errors="replace").rstrip("\n").splitlines()
    if not text:
        return "(empty)"
    return "\n".join("    " + line for line in text[-lines:])


def ping(port: int, timeout: float = 1.0) -> bool:
    """True if a RESP PING round-trips.  Accepting the TCP connection alone would not
    prove that the proxy actually reaches its uplink."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            buf = b""
            while not buf.endswith(b"\r\n"):
                chunk = s.recv(64)
                if not chunk:
                    return False
                buf += chunk
            return buf == b"+PONG\r\n"
    except OSError:
        return False


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_ready(name: str, port: int, proc: subprocess.Popen[bytes], stderr_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    accepted = False
    while time.monotonic() < deadline:
        rc = proc.poll()
        if rc is not None:
            die(f"{name} exited with code {rc} during startup; last output:\n{tail(stderr_path)}")
        if port_accepts(port):
            accepted = True
            if ping(port):
                return
        time.sleep(0.1)
    what = "accepts connections but does not answer PING" if accepted else "never accepted connections"
    die(f"{name} {what} on 127.0.0.1:{port} within {STARTUP_TIMEOUT_S:.0f}s; last output:\n{tail(stderr_path)}")


def spawn(name: str, cmd: list[str], log_path: Path, procs: Processes, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # Output goes to a file, not a pipe: a chatty proxy must never block on a full
    # pipe buffer mid-benchmark.  New session: a terminal Ctrl-C reaches only us, and
    # we shut the children down in order (and without their own tracebacks).
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=REPO_ROOT, env=env, start_new_session=True,
        )
    except OSError as e:
        die(f"cannot start {name} ({shlex.join(cmd)}): {e}")
    finally:
        log.close()
    procs.add(name, proc)
    return proc


def start_redis(redis_server: str, workdir: Path, procs: Processes) -> Target:
    port = free_port()
    log = workdir / "redis-server.log"
    cmd = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           "--dir", str(workdir), "--daemonize", "no", "--protected-mode", "no"]
    proc = spawn("redis-server", cmd, log, procs)
    wait_ready("redis-server", port, proc, log)
    return Target(DIRECT, port, cmd, proc, log)


def start_proxy(name: str, base_cmd: list[str], uplink_port: int, workdir: Path, procs: Processes,
                extra_config: dict[str, Any] | None = None) -> Target:
    """Start a proxy taking `-f CONFIG.json`; `extra_config` keys (e.g. {"workers": 2})
    are added at the top level of the config."""
    port = free_port()
    config: dict[str, Any] = {"uplink": {"addr": f"127.0.0.1:{uplink_port}"}, "listen": {"addr": f"127.0.0.1:{port}"}}
    config.update(extra_config or {})
    cfg_path = workdir / f"{name}.json"
    cfg_path.write_text(json.dumps(config))
    log = workdir / f"{name}.stderr.log"
    cmd = [*base_cmd, "-f", str(cfg_path)]
    env = dict(os.environ)
    # Make `-m redis_proxy` import this checkout even when the package isn't installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    proc = spawn(f"proxy '{name}'", cmd, log, procs, env=env)
    wait_ready(f"proxy '{name}' ({shlex.join(cmd)})", port, proc, log)
    return Target(name, port, cmd, proc, log)


def parse_csv(stdout: str) -> dict[str, dict[str, float]]:
    """redis-benchmark --csv -> {test: {column: value}}.  Columns are taken from the
    header line, so older/newer redis-benchmark layouts still parse."""
    rows = [line for line in stdout.splitlines() if line.startswith('"')]
    out: dict[str, dict[str, float]] = {}
    for rec in csv.DictReader(io.StringIO("\n".join(rows))):
        test = rec.pop("test")
        # "SET: rps=..." style names exist in some versions; keep the command only.
        test = test.split(":")[0].strip()
        out[test] = {k: float(v) for k, v in rec.items() if v not in (None, "")}
    return out


def run_redis_benchmark(redis_benchmark: str, target: Target, *, clients: int, requests: int, pipeline: int,
                        tests: str, timeout: float, procs: Processes, redis: Target) -> dict[str, Any]:
    # Processes whose death would leave redis-benchmark hanging: the target and its uplink.
    watch = [("redis-server", redis)] + ([] if target is redis else [(f"proxy '{target.name}'", target)])
    cmd = [redis_benchmark, "-h", "127.0.0.1", "-p", str(target.port), "-c", str(clients), "-n", str(requests),
           "-P", str(pipeline), "-t", tests, "--csv"]
    t0 = time.perf_counter()
    # Popen (not run) so the process is registered for cleanup if we're interrupted.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    procs.add("redis-benchmark", proc)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                out_b, err_b = proc.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            # redis-benchmark 7 does not give up when its server disappears: it
            # reconnects in a busy loop forever.  So watch the processes ourselves.
            for name, t in watch:
                if t.proc is not None and t.proc.poll() is not None:
                    die(f"{name} exited with code {t.proc.returncode} while redis-benchmark was running against "
                        f"{target.name}; last output:\n{tail(t.stderr_path)}")
            if time.monotonic() > deadline:
                die(f"redis-benchmark against {target.name} timed out after {timeout:.0f}s ({shlex.join(cmd)})"
                    + proxy_status(target))
    finally:
        # Interrupted (Ctrl-C/SIGTERM) mid-run: it's in its own session and didn't get
        # the signal, so stop it here before forgetting about it.
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        procs.procs = [(n, p) for n, p in procs.procs if p is not proc]
    wall = time.perf_counter() - t0
    out, err = out_b.decode(errors="replace"), err_b.decode(errors="replace")
    results = parse_csv(out)
    expected = {t.upper() for t in tests.split(",")}
    # redis-benchmark 7 exits on the first error reply; it may still exit 0 with
    # missing rows, so check both the code and the rows.
    if proc.returncode != 0 or not expected <= set(results):
        msg = "\n".join(line for line in (out + err).splitlines() if line.strip() and not line.startswith('"'))
        die(f"redis-benchmark against {target.name} failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
            f"    {msg.strip() or '(no message)'}" + proxy_status(target))
    return {"cmd": cmd, "wall_s": round(wall, 3), "results": results,
            "stderr": err.strip() or None}


def proxy_status(target: Target) -> str:
    if target.proc is None or target.name == DIRECT:
        return ""
    rc = target.proc.poll()
    state = "still running" if rc is None else f"exited with code {rc}"
    return f"\n{target.name} is {state}; its last output:\n{tail(target.stderr_path)}"


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(runs: list[dict[str, Any]], targets: list[str]) -> list[dict[str, Any]]:
    """Medians per (target, test, pipeline); ratio = median of per-round ratios, because
    pairing runs from the same round cancels out slow drifts of a shared machine."""
    by_key: dict[tuple[str, str, int, int], dict[str, float]] = {}
    for r in runs:
        for test, m in r["results"].items():
            by_key[(r["target"], test, r["pipeline"], r["round"])] = m
    summary: list[dict[str, Any]] = []
    combos = sorted({(k[1], k[2]) for k in by_key}, key=lambda tp: (tp[1], tp[0] != "SET", tp[0]))
    rounds = sorted({k[3] for k in by_key})
    for name in targets:
        if name == DIRECT:
            continue
        for test, pipeline in combos:
            d = [by_key[(DIRECT, test, pipeline, rd)] for rd in rounds if (DIRECT, test, pipeline, rd) in by_key]
            p = [by_key[(name, test, pipeline, rd)] for rd in rounds if (name, test, pipeline, rd) in by_key]
            ratios = [by_key[(name, test, pipeline, rd)]["rps"] / by_key[(DIRECT, test, pipeline, rd)]["rps"]
                      for rd in rounds
                      if (name, test, pipeline, rd) in by_key and (DIRECT, test, pipeline, rd) in by_key]
            summary.append({
                "target": name, "test": test, "pipeline": pipeline, "rounds": len(ratios),
                "direct_rps": med([m["rps"] for m in d]), "proxy_rps": med([m["rps"] for m in p]),
                "ratio": med(ratios), "ratio_min": min(ratios, default=float("nan")),
                "ratio_max": max(ratios, default=float("nan")),
                "direct_p50_ms": med([m.get("p50_latency_ms", float("nan")) for m in d]),
                "proxy_p50_ms": med([m.get("p50_latency_ms", float("nan")) for m in p]),
                "direct_p99_ms": med([m.get("p99_latency_ms", float("nan")) for m in d]),
                "proxy_p99_ms": med([m.get("p99_latency_ms", float("nan")) for m in p]),
            })
    return summary


def direct_only_summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    acc: dict[tuple[str, int], list[dict[str, float]]] = {}
    for r in runs:
        for test, m in r["results"].items():
            acc.setdefault((test, r["pipeline"]), []).append(m)
    return [{"target": DIRECT, "test": t, "pipeline": p, "rounds": len(ms),
             "direct_rps": med([m["rps"] for m in ms]),
             "direct_p50_ms": med([m.get("p50_latency_ms", float("nan")) for m in ms]),
             "direct_p99_ms": med([m.get("p99_latency_ms", float("nan")) for m in ms])}
            for (t, p), ms in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0] != "SET", kv[0][0]))]


def fmt_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def print_report(summary: list[dict[str, Any]], latency: list[dict[str, Any]], direct_only: bool) -> None:
    print()
    if direct_only:
        rows = [[s["test"], f"P{s['pipeline']}", f"{s['direct_rps']:,.0f}", f"{s['direct_p50_ms']:.3f}",
                 f"{s['direct_p99_ms']:.3f}"] for s in summary]
        print(fmt_table(["test", "pipe", "direct rps", "p50 ms", "p99 ms"], rows))
    else:
        rows = [[s["target"], s["test"], f"P{s['pipeline']}", f"{s['direct_rps']:,.0f}", f"{s['proxy_rps']:,.0f}",
                 f"{s['ratio']:.2f}" + (f" [{s['ratio_min']:.2f}-{s['ratio_max']:.2f}]" if s["rounds"] > 1 else ""),
                 f"{s['direct_p50_ms']:.3f}", f"{s['proxy_p50_ms']:.3f}",
                 f"{s['direct_p99_ms']:.3f}", f"{s['proxy_p99_ms']:.3f}"] for s in summary]
        print(fmt_table(["proxy", "test", "pipe", "direct rps", "proxy rps", "ratio [min-max]",
                         "p50 direct", "p50 proxy", "p99 direct", "p99 proxy"], rows))
        print("(rps = median over rounds; ratio = median of per-round proxy/direct; latencies in ms)")
    if latency:
        print()
        parts = [f"{l['target']} p50 {l['p50_ms']:.3f} ms (p99 {l['p99_ms']:.3f}, {l['rps']:,.0f} rps)" for l in latency]
        print("single client GET -P 1 (" + ", ".join(parts) + ")")
        base = next((l for l in latency if l["target"] == DIRECT), None)
        if base is not None:
            for l in latency:
                if l["target"] != DIRECT:
                    print(f"  {l['target']}: +{(l['p50_ms'] - base['p50_ms']) * 1000:.0f} us p50 added per request")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy-cmd", default=shlex.join([sys.executable, "-m", "redis_proxy"]),
                    help="proxy command line (shell-quoted); '-f CONFIG.json' is appended (default: %(default)s)")
    ap.add_argument("--extra-proxy-cmd", action="append", default=[], metavar="NAME=CMD",
                    help="another proxy taking the same '-f CONFIG.json', benchmarked alongside (repeatable)")
    ap.add_argument("--direct-only", action="store_true", help="benchmark redis-server alone, start no proxy")
    ap.add_argument("--requests-p1", type=int, help=f"requests per -P 1 run (default {DEFAULTS['requests_p1']:,})")
    ap.add_argument("--requests-p16", type=int, help=f"requests per -P 16 run (default {DEFAULTS['requests_p16']:,})")
    ap.add_argument("--latency-requests", type=int,
                    help=f"requests for the single-client latency run (default {DEFAULTS['latency_requests']:,})")
    ap.add_argument("--rounds", type=int, help=f"interleaved rounds (default {DEFAULTS['rounds']})")
    ap.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default %(default)s)")
    ap.add_argument("--tests", default="set,get", help="redis-benchmark -t (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="small N and 1 round: a smoke run of a few seconds")
    ap.add_argument("--timeout", type=float, default=600.0, help="per redis-benchmark run, seconds (default %(default)s)")
    ap.add_argument("--redis-server", default="redis-server", help="redis-server binary (default: from PATH)")
    ap.add_argument("--redis-benchmark", default="redis-benchmark", help="redis-benchmark binary (default: from PATH)")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="raw results JSON (default %(default)s)")
    args = ap.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:  # explicit flags win over --quick
            setattr(args, key, value)
    for key in ("requests_p1", "requests_p16", "latency_requests", "rounds", "clients"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1")
    return args


def parse_extra(specs: list[str]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for spec in specs:
        name, sep, cmd = spec.partition("=")
        name = name.strip()
        if not sep or not name or not cmd.strip():
            die(f"--extra-proxy-cmd expects NAME=CMD, got {spec!r}")
        if name in (DIRECT, "proxy") or name in (n for n, _ in out) or not name.replace("-", "").replace("_", "").isalnum():
            die(f"--extra-proxy-cmd: bad or duplicate name {name!r}")
        out.append((name, shlex.split(cmd)))
    return out


def which_or_die(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        die(f"{binary!r} not found on PATH; install Redis (e.g. `apt-get install redis-server redis-tools`) "
            f"or pass --redis-server/--redis-benchmark")
    return path


def version_of(binary: str) -> str:
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def plan(args: argparse.Namespace) -> Iterator[tuple[int, int]]:
    """(pipeline, requests) pairs, P1 first: it is the latency-dominated case."""
    yield 1, args.requests_p1
    yield 16, args.requests_p16


def bench(args: argparse.Namespace, procs: Processes, workdir: Path) -> int:
    redis_server = which_or_die(args.redis_server)
    redis_benchmark = which_or_die(args.redis_benchmark)
    proxy_specs: list[tuple[str, list[str]]] = []
    if not args.direct_only:
        proxy_specs = [("proxy", shlex.split(args.proxy_cmd)), *parse_extra(args.extra_proxy_cmd)]

    redis = start_redis(redis_server, workdir, procs)
    targets = [redis] + [start_proxy(name, cmd, redis.port, workdir, procs) for name, cmd in proxy_specs]
    print(f"redis-server on :{redis.port}; " + ", ".join(f"{t.name} on :{t.port}" for t in targets[1:])
          if len(targets) > 1 else f"redis-server on :{redis.port} (direct only)", flush=True)

    started = time.time()
    runs: list[dict[str, Any]] = []
    latency_runs: list[dict[str, Any]] = []
    bench_kw: dict[str, Any] = {"timeout": args.timeout, "procs": procs, "redis": redis}
    for rnd in range(1, args.rounds + 1):
        for pipeline, requests in plan(args):
            # Interleave targets per configuration (direct, proxy, direct, proxy, ...)
            # so a noisy neighbour hurts both sides of a comparison, not just one.
            for t in targets:
                r = run_redis_benchmark(redis_benchmark, t, clients=args.clients, requests=requests,
                                        pipeline=pipeline, tests=args.tests, **bench_kw)
                runs.append({"round": rnd, "target": t.name, "pipeline": pipeline, "clients": args.clients,
                             "requests": requests, **r})
                brief = "  ".join(f"{k} {v['rps']:>11,.0f} rps p50 {v.get('p50_latency_ms', float('nan')):.3f}"
                                  for k, v in r["results"].items())
                print(f"round {rnd}/{args.rounds}  P{pipeline:<2} {t.name:<10} {brief}  ({r['wall_s']:.1f}s)",
                      flush=True)
        for t in targets:
            r = run_redis_benchmark(redis_benchmark, t, clients=1, requests=args.latency_requests, pipeline=1,
                                    tests="get", **bench_kw)
            latency_runs.append({"round": rnd, "target": t.name, "pipeline": 1, "clients": 1,
                                 "requests": args.latency_requests, **r})
            g = r["results"]["GET"]
            print(f"round {rnd}/{args.rounds}  c=1 {t.name:<10} GET p50 {g['p50_latency_ms']:.3f} ms "
                  f"p99 {g['p99_latency_ms']:.3f} ms", flush=True)

    # A proxy that died mid-run would have made redis-benchmark fail above, but a
    # crash right after the last run should still not go unnoticed.
    for t in targets[1:]:
        if t.proc is not None and t.proc.poll() is not None:
            die(f"proxy '{t.name}' exited (code {t.proc.returncode}) during the benchmark; last output:\n"
                f"{tail(t.stderr_path)}")

    names = [t.name for t in targets]
    summary = direct_only_summary(runs) if args.direct_only else summarize(runs, names)
    latency = [{"target": t.name,
                "p50_ms": med([r["results"]["GET"]["p50_latency_ms"] for r in latency_runs if r["target"] == t.name]),
                "p99_ms": med([r["results"]["GET"]["p99_latency_ms"] for r in latency_runs if r["target"] == t.name]),
                "rps": med([r["results"]["GET"]["rps"] for r in latency_runs if r["target"] == t.name])}
               for t in targets]
    print_report(summary, latency, args.direct_only)

    doc: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "duration_s": round(time.time() - started, 1),
            "host": platform.node(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "loadavg_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "python": sys.version.split()[0],
            "redis_server": version_of(redis_server), "redis_benchmark": version_of(redis_benchmark),
            "targets": {t.name: {"port": t.port, "cmd": t.cmd} for t in targets},
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "git_rev": git_rev(),
        },
        "summary": summary, "latency_single_client": latency, "runs": runs, "latency_runs": latency_runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nraw results: {args.output}  (total {doc['meta']['duration_s']}s)")
    return 0


def git_rev() -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_cleanly(name: str, body: Callable[[Processes, Path], int]) -> int:
    """Run `body` with a private tmp dir; every child process is stopped however it ends (errors: one line, exit 1)."""
    procs = Processes()

    # SIGTERM (e.g. from a CI timeout) takes the same cleanup path as Ctrl-C.
    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with tempfile.TemporaryDirectory(prefix=f"redis-proxy-{name}-") as tmp:
        try:
            return body(procs, Path(tmp))
        except BenchError as e:
            print(f"\n{name}: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"\n{name}: interrupted, stopping child processes", file=sys.stderr)
            return 130
        finally:
            procs.stop_all()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cleanly("run_bench", lambda procs, tmp: bench(args, procs, tmp))


if __name__ == "__main__":
    sys.exit(main())
