"""`redis-proxy compare -f config.json --to NAME`: compare a running proxy's active uplink with another
server, key by key, without switching (validation before a cutover).

Exit codes: 0 identical; 1 differences found; 2 usage or config error; 3 the
admin API is unreachable or refused the request (or a server failed).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from redis_proxy.admin_client import AdminError, AdminRefused
from redis_proxy.cli_switchover import EXIT_ADMIN, EXIT_USAGE, _error, _positive, add_admin_arguments, admin_for

EXIT_SAME, EXIT_DIFFERENT = 0, 1
COUNTS = ("missing_on_target", "missing_on_source", "type_mismatches", "value_mismatches", "ttl_mismatches")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="redis-proxy compare",
        description=(
            "Compare the running proxy's active uplink with another of its named uplinks, key by key: keys missing "
            "on either side, type, value and TTL differences. Nothing is switched or written. Keys written while "
            "it runs may show up as differences."
        ),
        epilog="Exit codes: 0 identical, 1 differences, 2 usage or config error, 3 admin API unreachable or refused.",
    )
    add_admin_arguments(p, "the uplink to compare with (a key of the config's uplinks)")
    p.add_argument("--timeout", type=_positive, default=600, metavar="S", help="how long the comparison may take (default 600 s)")
    p.add_argument("--json", action="store_true", help="print the proxy's report as JSON")
    return p


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"compared {report.get('from')} ({report.get('keys_source')} keys) with {report.get('to')}"
        f" ({report.get('keys_target')} keys) in {report.get('took_s')} s: {report.get('identical')} identical",
    ]
    lines += [f"  {name.replace('_', ' ')}: {report.get(name, 0)}" for name in COUNTS]
    for example in report.get("examples") or []:
        lines.append(f"  e.g. db {example['db']} {example['key']!r}: {example['problem']}")
    return "\n".join(lines)


def different(report: dict[str, Any]) -> bool:
    return any(report.get(name) for name in COUNTS)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    client = admin_for(args)
    if isinstance(client, int):
        return client
    try:
        with client:
            report = client.compare(args.to, args.timeout)
    except AdminRefused as exc:
        _error(str(exc))
        return EXIT_USAGE if exc.status == 400 else EXIT_ADMIN
    except AdminError as exc:
        _error(str(exc))
        return EXIT_ADMIN
    print(json.dumps(report, indent=2) if args.json else summary(report), file=sys.stdout, flush=True)
    return EXIT_DIFFERENT if different(report) else EXIT_SAME
