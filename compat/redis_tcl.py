#!/usr/bin/env python3
"""Run units of Redis's own Tcl test suite in external-server mode against a
fresh redis-server directly and through redis-proxy, and compare test by test.

    python3 compat/redis_tcl.py                       # the default units, about 17 minutes
    python3 compat/redis_tcl.py --unit unit/multi --unit unit/pubsub

The suite is the source of the installed redis-server's Debian package
(`apt-get source redis=<installed version>`, Debian patches applied, so the
tests match the binary), unpacked into compat/.cache. It needs tclsh 8.5+
and dpkg-source (dpkg-dev). Each unit runs in its own `./runtest --host
127.0.0.1 --port P --single UNIT --durable` against its own fresh server, so
an exception in one unit cannot hide the others.

Exit status 0 only if every difference is listed in
compat/allowed_redis_tcl.txt (or did not happen again when the unit was re-run).
The report goes to compat/results/redis-tcl-report.txt (and stdout).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CACHE, FAIL, PASS, RESULTS, SKIP, Allowed, Diff, Outcome, compare, log, proxy,
    proxy_source, redis_server, report, totals,
)

HERE = Path(__file__).resolve().parent
# Units that run in external mode against one server (the default test list
# minus integration/, cluster and the ones whose tests are all external:skip).
# Each runs in well under a minute except where noted.
DEFAULT_UNITS = [
    "unit/dump", "unit/auth", "unit/protocol", "unit/keyspace", "unit/scan", "unit/info-command",
    "unit/type/string", "unit/type/incr", "unit/type/list", "unit/type/list-2", "unit/type/list-3",
    "unit/type/set", "unit/type/zset", "unit/type/hash", "unit/type/stream", "unit/type/stream-cgroups",
    "unit/sort", "unit/expire", "unit/other", "unit/multi", "unit/quit", "unit/acl", "unit/acl-v2",
    "unit/pubsub", "unit/pubsubshard", "unit/slowlog", "unit/scripting", "unit/functions",
    "unit/introspection", "unit/introspection-2", "unit/limits", "unit/bitops", "unit/bitfield",
    "unit/geo", "unit/hyperloglog", "unit/info", "unit/latency-monitor", "unit/lazyfree",
    "unit/tracking", "unit/querybuf", "unit/networking",
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LINE = re.compile(r"^\[(ok|err|exception|skip|ignore|TIMEOUT)\]: (.*)$")
IN_PROGRESS = re.compile(r"=> \(IN PROGRESS\) (.*)$")
OK_TIME = re.compile(r" \(\d+ ms\)$")


def run(cmd: list[str], **kw: object) -> None:
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def installed_version() -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "redis-server"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def fetch_source() -> Path:
    """The patched source tree of the installed redis-server's package."""
    full = installed_version()  # e.g. 5:7.0.15-1~deb12u10
    ver = full.split(":", 1)[-1]
    src = CACHE / f"redis-src-{ver}"
    if (src / "tests" / "test_helper.tcl").exists():
        return src
    dl = CACHE / "downloads" / "debian"
    dl.mkdir(parents=True, exist_ok=True)
    dsc = dl / f"redis_{ver}.dsc"
    if not dsc.exists():
        try:
            run(["apt-get", "source", "--download-only", f"redis={full}"], cwd=str(dl))
        except (subprocess.CalledProcessError, FileNotFoundError):
            log("apt-get source failed (no deb-src entry?); fetching from the Debian mirror pool")
            _fetch_from_pool(dl, ver)
    run(["dpkg-source", "-x", str(dsc), str(src)])
    return src


def _fetch_from_pool(dl: Path, ver: str) -> None:
    for base in ("http://deb.debian.org/debian-security/pool/updates/main/r/redis/",
                 "http://deb.debian.org/debian/pool/main/r/redis/"):
        try:
            dsc_text = urllib.request.urlopen(base + f"redis_{ver}.dsc", timeout=30).read().decode()
        except OSError:
            continue
        (dl / f"redis_{ver}.dsc").write_text(dsc_text)
        files = re.findall(r"^ [0-9a-f]{32} \d+ (\S+)$", dsc_text, re.M)
        for name in files:
            log(f"downloading {base}{name}")
            with urllib.request.urlopen(base + name, timeout=120) as r, open(dl / name, "wb") as f:
                f.write(r.read())
        return
    raise RuntimeError(f"redis {ver} source not found; add a deb-src line for Debian to apt's sources")


def prepare_tree(src: Path) -> None:
    # A few tests run src/redis-cli or src/redis-benchmark; use the installed ones.
    (src / "src").mkdir(exist_ok=True)
    for b in ("redis-server", "redis-cli", "redis-benchmark", "redis-check-aof", "redis-check-rdb"):
        link = src / "src" / b
        target = subprocess.run(["sh", "-c", f"command -v {b}"], capture_output=True, text=True).stdout.strip()
        if target and not link.exists():
            link.symlink_to(target)


def parse(text: str, unit: str) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    lines = ANSI.sub("", text).splitlines()
    seen: dict[str, int] = {}

    def add(name: str, o: Outcome) -> None:
        key = f"{unit}: {name}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key += f" #{seen[key]}"
        out[key] = o

    for i, line in enumerate(lines):
        m = LINE.match(line)
        if not m:
            continue
        kind, rest = m.groups()
        if kind == "ok":
            add(OK_TIME.sub("", rest), Outcome(PASS, "ok"))
        elif kind == "skip":
            add(rest, Outcome(SKIP, "skip"))
        elif kind == "ignore":
            # "NAME: reason" (tags not acceptable); the name may hold colons.
            name, _, why = rest.rpartition(": ")
            add(name or rest, Outcome(SKIP, f"ignore: {why}"))
        elif kind == "err":
            name, n = re.subn(r" in tests/\S+\.tcl$", "", rest)
            if not n:  # an error outside any test (in a start_server body): no name
                add("[error outside a test]", Outcome(FAIL, f"err: {rest.strip()}"))
                continue
            detail = lines[i + 1].strip() if i + 1 < len(lines) else ""
            # An error that is not an assertion comes cut (its first 10
            # characters dropped) and then whole, as errorInfo's first line.
            full = lines[i + 2].strip() if i + 2 < len(lines) else ""
            if detail and full.endswith(detail) and not full.startswith("["):
                detail = full
            add(name, Outcome(FAIL, f"err: {detail}"))
        elif kind == "TIMEOUT":  # no progress for --timeout seconds: the rest did not run
            stuck = next((m2.group(1) for m2 in map(IN_PROGRESS.search, lines[i + 1:i + 5]) if m2), "?")
            add(stuck.strip(), Outcome(FAIL, "timeout: no reply within runtest's --timeout"))
            out[f"{unit}: [timeout]"] = Outcome(FAIL, f"timeout in: {stuck.strip()}")
        else:  # exception: the rest of the unit did not run
            detail = rest.strip() or (lines[i + 1].strip() if i + 1 < len(lines) else "")
            out[f"{unit}: [exception]"] = Outcome(FAIL, f"exception: {detail}")
    finished = "All tests passed" in text or "The following tests failed" in text
    if not finished and not any(k.endswith(("[exception]", "[timeout]")) for k in out):
        out[f"{unit}: [did not finish]"] = Outcome(FAIL, "runtest ended without a summary")
    return out


def runtest(src: Path, port: int, unit: str, log_path: Path, timeout_s: int) -> dict[str, Outcome]:
    cmd = ["./runtest", "--host", "127.0.0.1", "--port", str(port), "--single", unit,
           "--durable", "--timeout", "120", "--clients", "1"]
    t0 = time.monotonic()
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=str(src), stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log(f"{unit}: more than {timeout_s}s; killing it (partial results kept)")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            else:  # its test clients are in the same group; none should be left
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    res = parse(log_path.read_text(errors="replace"), unit)
    log(f"  {unit} on port {port}: {totals(res)} in {time.monotonic() - t0:.0f}s")
    return res


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so the servers and runtest are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unit", action="append", help="a unit (repeatable); default: the list in this file")
    ap.add_argument("--allow", type=Path, default=HERE / "allowed_redis_tcl.txt")
    ap.add_argument("--report", type=Path, default=RESULTS / "redis-tcl-report.txt")
    ap.add_argument("--unit-timeout", type=int, default=600, help="seconds for one unit")
    ap.add_argument("--no-rerun", action="store_true", help="do not re-run units with differences")
    args = ap.parse_args()

    t_start = time.monotonic()
    src = fetch_source()
    prepare_tree(src)
    work = CACHE / "work"
    work.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / "redis-tcl"
    logs.mkdir(parents=True, exist_ok=True)
    allowed = Allowed.load(args.allow)
    units = args.unit or DEFAULT_UNITS

    def both(unit: str, suffix: str) -> tuple[dict[str, Outcome], dict[str, Outcome]]:
        name = unit.replace("/", "_")
        with redis_server(work) as rport:
            direct = runtest(src, rport, unit, logs / f"{name}-direct{suffix}.log", args.unit_timeout)
        with redis_server(work) as rport, proxy(work, rport, logs / f"{name}-proxy{suffix}-redis-proxy.log") as pport:
            proxied = runtest(src, pport, unit, logs / f"{name}-proxy{suffix}.log", args.unit_timeout)
        return direct, proxied

    all_direct: dict[str, Outcome] = {}
    all_proxied: dict[str, Outcome] = {}
    diffs: list[Diff] = []
    for unit in units:
        direct, proxied = both(unit, "")
        all_direct.update(direct)
        all_proxied.update(proxied)
        ds = compare("tcl", direct, proxied, allowed)
        cut_short = any(k.endswith(("[exception]", "[timeout]", "[did not finish]")) for k in proxied)
        if cut_short:
            log(f"  {unit}: cut short through the proxy; not run again")
        elif any(d.allowed is None for d in ds) and not args.no_rerun:
            log(f"  {unit}: {len(ds)} differences; running the unit again on both sides")
            d2, p2 = both(unit, "-rerun")
            again = {d.test_id for d in compare("tcl", d2, p2, allowed)}
            for d in ds:
                if d.allowed is None and d.test_id not in again and d.test_id in d2 and d.test_id in p2:
                    d.flaky = True
        diffs += ds
    header = [f"Redis {installed_version()} Tcl suite, external-server mode, {len(units)} units: {' '.join(units)}",
              f"redis-proxy: {proxy_source()}",
              f"direct: {totals(all_direct)}; through the proxy: {totals(all_proxied)}",
              f"runtime: {time.monotonic() - t_start:.0f}s (logs: {logs})"]
    return report("Redis Tcl test suite: direct vs through redis-proxy", header, diffs, allowed, args.report)


if __name__ == "__main__":
    sys.exit(main())
