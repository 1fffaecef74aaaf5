"""`redis-proxy switchover -f config.json --to NAME`: drive a running proxy's
one-command switchover through its admin API, show its progress, and exit
with its outcome.

Exit codes: 0 done; 1 failed or aborted; 2 usage or config error (an unknown
uplink name included); 3 the admin API is unreachable or refused the request;
130 interrupted twice (the switchover may still be running on the proxy).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from redis_proxy.admin_client import (
    AdminClient,
    AdminEndpoint,
    AdminError,
    AdminRefused,
    NoAdminSection,
    admin_endpoint,
    tls_verify,
)
from redis_proxy.config import ConfigError, load_config
from redis_proxy.switchover_view import make_view, result_line, watch

EXIT_DONE = 0
EXIT_FAILED = 1  # the switchover ran and failed, or was aborted
EXIT_USAGE = 2
EXIT_ADMIN = 3
EXIT_INTERRUPTED = 130  # as a shell reports a process stopped by SIGINT


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_admin_arguments(p: argparse.ArgumentParser, to_help: str) -> None:
    """-f, --to and the admin API's TLS options: what admin_for reads."""
    p.add_argument("-f", "--config", required=True, metavar="FILE", help="the running proxy's config file (JSON)")
    p.add_argument("--to", required=True, metavar="NAME", help=to_help)
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--cacert", metavar="FILE", help="verify an https admin API against this CA (or self-signed) certificate instead of the system CAs")
    tls.add_argument("--insecure", action="store_true", help="do not verify the https admin API's certificate")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="redis-proxy switchover",
        description=(
            "Move a running proxy to another of its named uplinks without losing a write: the target "
            "replicates from the current uplink, catches up, is promoted, and clients are switched "
            "(see doc/switching.md); with --mode copy, for servers that refuse REPLICAOF, the proxy copies the "
            "keys itself (doc/migration.md). Talks to the proxy's admin API, found in the config file."
        ),
        epilog="Exit codes: 0 done, 1 failed or aborted, 2 usage or config error, 3 admin API unreachable or refused. "
        "Ctrl-C asks the proxy to abort (before the switch, the current uplink stays authoritative); "
        "a second Ctrl-C stops watching.",
    )
    add_admin_arguments(p, "the uplink to switch to (a key of the config's uplinks)")
    p.add_argument("--max-lag-bytes", type=_non_negative, metavar="N", help="replication lag under which clients are held for the final catch-up (proxy default: 1048576)")
    p.add_argument("--max-hold-ms", type=_positive, metavar="N", help="longest time clients may be held; beyond it the attempt is undone (proxy default: 2000)")
    p.add_argument("--retries", type=_non_negative, metavar="N", help="catch-up attempts after the first one (proxy default: 3)")
    p.add_argument("--no-reverse", action="store_true", help="do not make the old uplink a replica of the new one afterwards")
    p.add_argument("--force", action="store_true", help="replace the target's keys even when it does not replicate the current uplink (copy mode: overwrite them, and delete those the source lacks)")
    copy = p.add_argument_group("copy mode (no replication: for servers that refuse REPLICAOF; see doc/migration.md)")
    copy.add_argument("--mode", choices=("replica", "copy"), help="replica (the default) or copy")
    copy.add_argument("--max-dirty-keys", type=_non_negative, metavar="N", help="keys left to copy under which clients are held for the cutover (proxy default: 1000)")
    copy.add_argument("--verify-sample", type=_non_negative, metavar="N", help="random keys verified at the cutover besides those copied then (proxy default: 1000)")
    copy.add_argument("--max-copy-ops", type=_non_negative, metavar="N", help="keys copied per second at most, 0 for no limit (proxy default: 50000)")
    copy.add_argument("--max-copy-bytes", type=_non_negative, metavar="N", help="bytes copied per second at most, 0 for no limit (proxy default: 67108864)")
    copy.add_argument("--fence", choices=("proxy", "pause", "refuse"), help="what stops writes to the old server after the switch (proxy default: proxy)")
    copy.add_argument("--no-trust-script-keys", action="store_true", help="every script marks its whole database dirty (for scripts that write keys they do not declare)")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live display (the default when stdout is not a terminal)")
    return p


def options(args: argparse.Namespace) -> dict[str, str]:
    """The request's optional fields: only those given, so the proxy's defaults stay the defaults."""
    fields: dict[str, str] = {}
    for key in (
        "max_lag_bytes", "max_hold_ms", "retries", "mode", "max_dirty_keys", "verify_sample", "max_copy_ops",
        "max_copy_bytes", "fence",
    ):
        value = getattr(args, key)
        if value is not None:
            fields[key] = str(value)
    if args.no_reverse:
        fields["reverse"] = "false"
    if args.force:
        fields["force"] = "true"
    if args.no_trust_script_keys:
        fields["trust_script_keys"] = "false"
    return fields


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)


def exit_code(status: dict[str, Any]) -> int:
    return EXIT_DONE if status.get("result") == "done" else EXIT_FAILED


def run(
    client: AdminClient, to: str, fields: dict[str, str], plain: bool = False, abort_on_interrupt: bool = True
) -> dict[str, Any]:
    """Start a switchover and follow it to its end; its final status.

    Raises AdminError when the admin API cannot be used, KeyboardInterrupt
    when interrupted (twice with abort_on_interrupt).
    """
    before = client.switchover_status()  # also checks reachability and the password first
    if before.get("running"):
        raise AdminRefused(f"a switchover {before.get('from')} -> {before.get('to')} is already running", 409, before)
    reply = client.start_switchover(to, fields)
    view = make_view(force_plain=plain)
    view.note(f"switchover {reply.get('from', '?')} -> {reply.get('to', to)} started")
    status = watch(client, before.get("started_at"), view, abort_on_interrupt=abort_on_interrupt)
    print(result_line(status), flush=True)
    return status


def admin_for(args: argparse.Namespace) -> AdminClient | int:
    """The admin API of the proxy the config file (-f) runs, with --to checked; an exit code on a problem."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.problems:
            _error(line)
        return EXIT_USAGE
    try:
        endpoint: AdminEndpoint = admin_endpoint(config)
    except NoAdminSection as exc:
        _error(str(exc))
        return EXIT_USAGE
    if args.to not in config.uplinks:
        known = ", ".join(sorted(config.uplinks)) or 'none: the config has no "uplinks"'
        _error(f"no uplink named {args.to!r} in {args.config} (known: {known})")
        return EXIT_USAGE
    if not endpoint.tls and (args.cacert or args.insecure):
        _error("--cacert and --insecure are for an https admin API (admin.tls), and this one is http")
        return EXIT_USAGE
    try:
        verify = tls_verify(args.insecure, args.cacert)
    except OSError as exc:
        _error(f"--cacert {args.cacert}: {exc.strerror or exc}")
        return EXIT_USAGE
    return AdminClient(endpoint, verify)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # exits 2 on a usage error
    client = admin_for(args)
    if isinstance(client, int):
        return client
    try:
        with client:
            status = run(client, args.to, options(args), plain=args.plain)
    except AdminRefused as exc:
        _error(str(exc))
        # A name or option the proxy rejects is the operator's usage error
        # (its config may differ from the file: not reloaded yet).
        return EXIT_USAGE if exc.status == 400 else EXIT_ADMIN
    except AdminError as exc:
        _error(str(exc))
        return EXIT_ADMIN
    except KeyboardInterrupt:
        _error(f"interrupted: the switchover may still be running; see {client.endpoint.url}/switchover.json")
        return EXIT_INTERRUPTED
    return exit_code(status)
