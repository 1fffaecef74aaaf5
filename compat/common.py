"""What both compatibility runners share: free ports, a throwaway redis-server,
redis-proxy in front of it, the allow-list and the comparison report.

Nothing here imports redis_proxy: the proxy runs as `python -m redis_proxy`
from the repository this file belongs to, in a process of its own.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "compat" / ".cache"  # gitignored: sdists, venvs, sources
RESULTS = REPO / "compat" / "results"  # gitignored: reports and raw outcomes

# Outcomes are normalised to these words.
PASS, FAIL, SKIP = "pass", "fail", "skip"


def log(msg: str) -> None:
    print(f"[compat {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A port nothing listens on right now (the caller checks it got it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One RESP command on a fresh connection; the raw reply bytes."""
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(parts))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.endswith(b"\r\n") and _whole(data):
                return data
    return data


def _whole(data: bytes) -> bool:
    if data[:1] in (b"+", b"-", b":"):
        return True
    if data[:1] == b"$":
        n = int(data[1 : data.index(b"\r\n")])
        return n < 0 or len(data) >= data.index(b"\r\n") + 2 + n + 2
    return True


def _wait_ping(port: int, proc: subprocess.Popen[bytes], what: str, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before answering PING")
        try:
            if _command(port, "PING", timeout=1.0).startswith(b"+PONG"):
                return
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer PING on port {port} in {deadline_s}s ({last})")


def _stop(proc: subprocess.Popen[bytes], what: str) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        log(f"{what} (pid {proc.pid}) ignored SIGTERM; killing it")
        proc.kill()
        proc.wait(10)


REDIS_SERVER_ARGS = [
    "--save", "",
    "--appendonly", "no",
    "--enable-debug-command", "yes",
    "--enable-module-command", "yes",
    "--enable-protected-configs", "yes",
]


@contextlib.contextmanager
def redis_server(workdir: Path, extra: list[str] | None = None) -> Iterator[int]:
    """A fresh redis-server on a free loopback port; yields the port.

    The port is checked to be served by this very process (INFO process_id),
    so a server someone else started on a recycled port is never used.
    """
    for attempt in range(5):
        port = free_port()
        d = Path(tempfile.mkdtemp(prefix=f"redis-{port}-", dir=workdir))
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                "--logfile", str(d / "redis.log"), "--daemonize", "no", *REDIS_SERVER_ARGS, *(extra or [])]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_ping(port, proc, "redis-server", 10)
            info = _command(port, "INFO", "server").decode(errors="replace")
            if f"process_id:{proc.pid}\r\n" not in info:
                raise RuntimeError(f"port {port} is served by another redis-server")
        except RuntimeError as e:
            _stop(proc, "redis-server")
            log(f"redis-server attempt {attempt + 1}: {e}")
            continue
        try:
            yield port
        finally:
            _stop(proc, "redis-server")
            shutil.rmtree(d, ignore_errors=True)
        return
    raise RuntimeError("could not start redis-server on a free port")


@contextlib.contextmanager
def proxy(workdir: Path, uplink_port: int, log_path: Path, python: str = sys.executable,
          repo: Path = REPO) -> Iterator[int]:
    """redis-proxy from `repo` (its source tree, not whatever is installed),
    listening on a free port in front of 127.0.0.1:uplink_port; yields the port."""
    for attempt in range(5):
        port = free_port()
        cfg = {
            "uplink": {"addr": f"127.0.0.1:{uplink_port}"},
            # Pass-through AUTH: the suites authenticate as ACL users of their
            # own and expect Redis's answers (listen.pass would be the proxy's).
            "listen": {"addr": f"127.0.0.1:{port}", "auth": "passthrough"},
            "log_messages": False,
            "read_time_limit_ms": 0,
        }
        cfg_path = workdir / f"proxy-{port}.json"
        cfg_path.write_text(json.dumps(cfg, indent=2))
        env = dict(os.environ, PYTHONPATH=str(repo))
        logf = open(log_path, "ab")
        proc = subprocess.Popen([python, "-m", "redis_proxy", "-f", str(cfg_path), "--log-level", "warning"],
                                cwd=str(repo), env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_ping(port, proc, "redis-proxy", 20)
        except RuntimeError as e:
            _stop(proc, "redis-proxy")
            logf.close()
            log(f"redis-proxy attempt {attempt + 1}: {e} (log: {log_path})")
            continue
        try:
            yield port
        finally:
            _stop(proc, "redis-proxy")
            logf.close()
            cfg_path.unlink(missing_ok=True)
        return
    raise RuntimeError("could not start redis-proxy on a free port")


def proxy_source(python: str = sys.executable, repo: Path = REPO) -> str:
    """Where `python -m redis_proxy` imports the package from, for the report."""
    out = subprocess.run([python, "-c", "import redis_proxy; print(redis_proxy.__file__)"],
                         cwd=str(repo), env=dict(os.environ, PYTHONPATH=str(repo)),
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


# ---------------------------------------------------------------- comparison


@dataclass
class Outcome:
    outcome: str  # PASS, FAIL or SKIP
    detail: str = ""  # raw outcome word and first error line


@dataclass
class Allowed:
    patterns: list[tuple[str, str]] = field(default_factory=list)  # (glob, why)

    @classmethod
    def load(cls, path: Path) -> "Allowed":
        out = cls()
        if not path.exists():
            return out
        for line in path.read_text().splitlines():
            body, _, why = line.partition("#")
            body = body.strip()
            if body:
                out.patterns.append((body, why.strip()))
        return out

    def match(self, test_id: str) -> str | None:
        for pat, why in self.patterns:
            if test_id == pat or fnmatch.fnmatchcase(test_id, pat):
                return why or "(allowed)"
        return None


@dataclass
class Diff:
    run: str  # e.g. "resp2"
    test_id: str
    direct: Outcome | None
    proxied: Outcome | None
    allowed: str | None = None
    flaky: bool = False  # did not differ again when re-run

    def line(self) -> str:
        d = self.direct.outcome if self.direct else "missing"
        p = self.proxied.outcome if self.proxied else "missing"
        detail = ""
        side = self.proxied if p != PASS else self.direct
        if side and side.detail:
            detail = f"\n      {side.detail[:300]}"
        return f"  [{self.run}] {self.test_id}: direct {d}, proxy {p}{detail}"


def compare(run: str, direct: dict[str, Outcome], proxied: dict[str, Outcome], allowed: Allowed) -> list[Diff]:
    diffs = []
    for tid in sorted(set(direct) | set(proxied)):
        a, b = direct.get(tid), proxied.get(tid)
        if a and b and a.outcome == b.outcome:
            continue
        diffs.append(Diff(run, tid, a, b, allowed.match(tid)))
    return diffs


def totals(outcomes: dict[str, Outcome]) -> str:
    n = {PASS: 0, FAIL: 0, SKIP: 0}
    for o in outcomes.values():
        n[o.outcome] += 1
    return f"{len(outcomes)} tests: {n[PASS]} pass, {n[FAIL]} fail, {n[SKIP]} skipped"


def report(title: str, header: list[str], diffs: list[Diff], allowed: Allowed, out_path: Path) -> int:
    """Print and write the comparison; the exit status (0: only allowed or flaky differences)."""
    worse = [d for d in diffs if _rank(d.direct) > _rank(d.proxied)]
    better = [d for d in diffs if _rank(d.direct) < _rank(d.proxied)]
    other = [d for d in diffs if d not in worse and d not in better]
    bad = [d for d in diffs if d.allowed is None and not d.flaky]
    lines = [f"# {title}", *header, ""]

    def section(name: str, ds: list[Diff]) -> None:
        lines.append(f"{name}: {len(ds)}")
        for d in ds:
            tag = " (allowed: " + d.allowed + ")" if d.allowed else ""
            tag += " (flaky: did not differ when re-run)" if d.flaky else ""
            lines.append(d.line().replace(": direct", tag + ": direct", 1))
        lines.append("")

    section("Pass (or skip) directly, fail through the proxy", worse)
    section("Fail directly, pass through the proxy", better)
    section("Other differences (skipped on one side, missing)", other)
    seen = {d.test_id for d in diffs}
    stale = [p for p, _ in allowed.patterns if not any(p == t or fnmatch.fnmatchcase(t, p) for t in seen)]
    if stale:
        lines.append(f"Allow-list entries that no longer differ (could be removed): {len(stale)}")
        lines.extend(f"  {p}" for p in stale)
        lines.append("")
    lines.append(f"Differences: {len(diffs)} ({len(diffs) - len(bad)} allowed or flaky, {len(bad)} not allowed)")
    lines.append("RESULT: " + ("OK, no difference outside the allow-list" if not bad else "DIFFERENT"))
    text = "\n".join(lines) + "\n"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    print(text)
    log(f"report written to {out_path}")
    return 0 if not bad else 1


def _rank(o: Outcome | None) -> int:
    return {PASS: 2, SKIP: 1, FAIL: 0}.get(o.outcome, -1) if o else -1
