#!/usr/bin/env python3
"""Run redis-py's own test suite (from its PyPI sdist) against a fresh
redis-server directly and through redis-proxy, and compare test by test.

    python3 compat/redis_py.py                 # RESP2 and RESP3, about 7 minutes
    python3 compat/redis_py.py --protocol 2 -k pubsub

Exit status 0 only if every difference is listed in
compat/allowed_redis_py.txt (or did not happen again when re-run: flaky).
The report goes to compat/results/redis-py-report.txt (and stdout); each
run's per-test outcomes to compat/results/redis-py-<run>-<target>.jsonl.
Everything downloaded or built lives in compat/.cache (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CACHE, FAIL, PASS, RESULTS, SKIP, Allowed, Diff, Outcome, compare, log, proxy,
    proxy_source, redis_server, report, totals,
)

# redis-py 5.0.x is the last line whose tests pass cleanly against Redis 7.0
# (the Debian bookworm redis-server); newer test suites assume 7.2+ replies.
REDIS_PY_VERSION = "5.0.8"
# What its tests import (its dev_requirements, minus linters and coverage).
TEST_REQUIREMENTS = ["pytest==7.4.4", "pytest-asyncio==0.21.2", "pytest-timeout==2.3.1",
                     "mock==5.2.0", "packaging>=20.4", "numpy"]
# The sdist carries no pytest.ini; this is the one its repository uses, with
# a per-test timeout.
PYTEST_INI = """\
[pytest]
markers =
    redismod: run only the redis module tests
    pipeline: pipeline tests
    onlycluster: marks tests to be run only with cluster mode redis
    onlynoncluster: marks tests to be run only with standalone redis
    ssl: marker for only the ssl tests
    asyncio: marker for async tests
    replica: replica tests
    experimental: run only experimental tests
    graph: graph tests
asyncio_mode = auto
"""
# Needs what we do not start: a cluster, Redis Stack modules, stunnel, a replica.
MARKERS = "not onlycluster and not redismod and not ssl and not replica"
# Tests that connect to localhost:6379 whatever --redis-url says: they would
# touch whatever server happens to run there (and fail identically otherwise).
DESELECT = [
    "tests/test_connection.py::TestConnection::test_retry_connect_on_timeout_error",
    "tests/test_connection.py::test_create_single_connection_client_from_url",
    "tests/test_sentinel.py::test_dead_pool",
    "tests/test_sentinel.py::test_master_for",
    "tests/test_sentinel.py::test_slave_for",
    "tests/test_asyncio/test_sentinel.py::test_master_for",
    "tests/test_asyncio/test_sentinel.py::test_slave_for",
    "tests/test_asyncio/test_connection_pool.py::TestConnectionPool::test_multiple_connections",
    "tests/test_asyncio/test_connection_pool.py::TestConnectionPool::test_max_connections",
    "tests/test_asyncio/test_connection_pool.py::TestConnectionPool::test_reuse_previously_released_connection",
]
HERE = Path(__file__).resolve().parent


def run(cmd: list[str], **kw: object) -> None:
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def prepare(version: str) -> tuple[Path, Path]:
    """The unpacked sdist and a venv with its test requirements (cached)."""
    dl = CACHE / "downloads"
    src = CACHE / f"redis-py-{version}"
    venv = CACHE / f"venv-redis-py-{version}"
    sdist = dl / f"redis-{version}.tar.gz"
    if not sdist.exists():
        dl.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             f"redis=={version}", "-d", str(dl)])
    if not (src / "tests" / "conftest.py").exists():
        tmp = CACHE / f"unpack-{os.getpid()}"
        with tarfile.open(sdist) as t:
            t.extractall(tmp, filter="data")
        (tmp / f"redis-{version}").rename(src)
        tmp.rmdir()
    (src / "pytest.ini").write_text(PYTEST_INI)
    # ssl_utils looks the certificate directory up at import time; the ssl
    # tests themselves are deselected.
    (src / "dockers" / "stunnel" / "keys").mkdir(parents=True, exist_ok=True)
    stamp = venv / ".compat-installed"
    want = "\n".join(TEST_REQUIREMENTS + [version])
    if not stamp.exists() or stamp.read_text() != want:
        run([sys.executable, "-m", "venv", "--clear", str(venv)])
        py = str(venv / "bin" / "python")
        run([py, "-m", "pip", "install", "-q", *TEST_REQUIREMENTS])
        # redis-py itself: its dependencies only (async-timeout on old Pythons);
        # the tests import the package from the source tree.
        run([py, "-m", "pip", "install", "-q", "--no-deps", str(sdist)])
        stamp.write_text(want)
    return src, venv


def normalise(raw: str) -> str:
    return {"passed": PASS, "xfailed": PASS, "xpassed": PASS, "skipped": SKIP}.get(raw, FAIL)


def pytest_run(src: Path, venv: Path, url: str, server_port: int, protocol: str, out: Path, extra: list[str],
               timeout_s: int, per_test_s: int, only: list[str] | None = None) -> dict[str, Outcome]:
    cmd = [str(venv / "bin" / "python"), "-m", "pytest", "-p", "pytest_outcomes", "-p", "no:cacheprovider",
           f"--redis-url={url}", f"--protocol={protocol}", "-m", MARKERS, f"--timeout={per_test_s}",
           "-q", "-rN", "--tb=short"]
    cmd += [f"--deselect={d}" for d in DESELECT]
    cmd += extra
    cmd += only if only else ["tests"]
    env = dict(os.environ, PYTHONPATH=str(HERE), COMPAT_OUTCOMES=str(out), COMPAT_SERVER_PORT=str(server_port))
    out.unlink(missing_ok=True)
    log_path = out.with_suffix(".log")
    log(f"pytest {url} protocol {protocol} ({len(only) if only else 'all'} tests) > {log_path}")
    t0 = time.monotonic()
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=str(src), env=env, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log(f"pytest took more than {timeout_s}s; killing it (partial results kept)")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    outcomes: dict[str, Outcome] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            detail = f"{r['outcome']}: {r['first']}".rstrip(": ")
            if r.get("repaired"):
                detail += f" [{r['repaired']}]"
                log(f"  {r['id']}: {r['repaired']}")
            outcomes[r["id"]] = Outcome(normalise(r["outcome"]), detail)
    log(f"  {totals(outcomes)} in {time.monotonic() - t0:.0f}s (pytest exit {proc.returncode})")
    return outcomes


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so the servers and pytest are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", default=REDIS_PY_VERSION, help="redis-py version (sdist from PyPI)")
    ap.add_argument("--protocol", default="2,3", help="RESP versions to run, comma-separated (default 2,3)")
    ap.add_argument("--allow", type=Path, default=HERE / "allowed_redis_py.txt")
    ap.add_argument("--report", type=Path, default=RESULTS / "redis-py-report.txt")
    ap.add_argument("--per-test-timeout", type=int, default=30, help="seconds (pytest-timeout)")
    ap.add_argument("--run-timeout", type=int, default=1200, help="seconds for one whole pytest run")
    ap.add_argument("--no-rerun", action="store_true", help="do not re-run differing tests to tell flaky ones")
    ap.add_argument("-k", help="pytest -k expression (a subset, for a quick look)")
    args = ap.parse_args()

    t_start = time.monotonic()
    src, venv = prepare(args.version)
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = CACHE / "work"
    work.mkdir(parents=True, exist_ok=True)
    extra = ["-k", args.k] if args.k else []
    allowed = Allowed.load(args.allow)
    header = [f"redis-py {args.version} test suite, markers: {MARKERS}",
              f"redis-server: {subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.strip()}",
              f"redis-proxy: {proxy_source()}"]
    diffs: list[Diff] = []

    def both(run_name: str, protocol: str, only: list[str] | None) -> tuple[dict[str, Outcome], dict[str, Outcome]]:
        suffix = "-rerun" if only else ""
        with redis_server(work) as rport:
            direct = pytest_run(src, venv, f"redis://127.0.0.1:{rport}", rport, protocol,
                                RESULTS / f"redis-py-{run_name}-direct{suffix}.jsonl", extra,
                                args.run_timeout, args.per_test_timeout, only)
        with redis_server(work) as rport, \
                proxy(work, rport, RESULTS / f"redis-py-{run_name}-redis-proxy{suffix}.log") as pport:
            proxied = pytest_run(src, venv, f"redis://127.0.0.1:{pport}", rport, protocol,
                                 RESULTS / f"redis-py-{run_name}-proxy{suffix}.jsonl", extra,
                                 args.run_timeout, args.per_test_timeout, only)
        return direct, proxied

    for protocol in args.protocol.split(","):
        run_name = f"resp{protocol}"
        direct, proxied = both(run_name, protocol, None)
        header.append(f"[{run_name}] direct: {totals(direct)}; through the proxy: {totals(proxied)}")
        ds = compare(run_name, direct, proxied, allowed)
        if ds and not args.no_rerun:
            ids = [d.test_id for d in ds if d.allowed is None]
            if ids:
                log(f"re-running {len(ids)} differing tests on both sides")
                d2, p2 = both(run_name, protocol, ids)
                again = {d.test_id for d in compare(run_name, d2, p2, allowed)}
                for d in ds:
                    if d.allowed is None and d.test_id not in again and d.test_id in d2 and d.test_id in p2:
                        d.flaky = True
        diffs += ds
    header.append(f"runtime: {time.monotonic() - t_start:.0f}s")
    return report("redis-py test suite: direct vs through redis-proxy", header, diffs, allowed, args.report)


if __name__ == "__main__":
    sys.exit(main())
