"""A switchover's parameters, from the admin command's fields (form or JSON) or the command line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_HOLD_LIMIT_MS = 60_000  # clients are held this long at most: beyond, a pause is an outage


class OptionError(ValueError):
    """A parameter is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Options:
    max_lag_bytes: int = 1024 * 1024  # start catching up (pause) when the target is this close
    max_hold_ms: int = 2000  # how long clients may be held while the target catches up
    retries: int = 3  # catch-up attempts after the first that ran out of max_hold_ms
    reverse: bool = True  # fence the source by making it a replica of the target
    force: bool = False  # replace a target's keys even when it does not replicate the source
    # mode=copy (migration/): no replication, the proxy copies keys and tracks its clients' writes.
    mode: str = "replica"
    max_dirty_keys: int = 1000  # converge until at most this many keys are left to copy under the hold
    verify_sample: int = 1000  # random keys verified at the cutover, besides every key copied under the hold
    max_copy_ops: int = 50_000  # keys copied per second at most (0: no limit)
    max_copy_bytes: int = 64 * 1024 * 1024  # DUMP payload bytes copied per second at most (0: no limit)
    fence: str = "proxy"  # copy mode: "proxy" (only this proxy stops writing), "pause" or "refuse"
    trust_script_keys: bool = True  # copy mode: scripts write only the keys they declare (else: their whole database)


def _int(fields: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    raw = fields.get(key)
    if raw is None or raw == "":
        return default
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if not isinstance(raw, int) or isinstance(raw, bool) or not low <= raw <= high:
        raise OptionError(f"{key} must be an integer from {low} to {high}")
    return raw


def _bool(fields: Mapping[str, Any], key: str, default: bool) -> bool:
    raw = fields.get(key)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(raw, str) and raw.lower() in ("false", "0", "no", "off"):
        return False
    raise OptionError(f"{key} must be true or false")


def _choice(fields: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    raw = fields.get(key)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise OptionError(f"{key} must be one of: {', '.join(choices)}")
    return str(raw)


MODES = ("replica", "copy")
FENCES = ("proxy", "pause", "refuse")


COMMON = frozenset(("cmd", "to", "mode", "max_hold_ms", "retries", "force"))
REPLICA_ONLY = frozenset(("max_lag_bytes", "reverse"))
COPY_ONLY = frozenset(("max_dirty_keys", "verify_sample", "max_copy_ops", "max_copy_bytes", "fence", "trust_script_keys"))


def _check_fields(fields: Mapping[str, Any], mode: str) -> None:
    """A misspelt field, or one of the other mode's, is an operator's mistake to report, not to ignore."""
    unknown = set(fields) - COMMON - REPLICA_ONLY - COPY_ONLY
    if unknown:
        known = ", ".join(sorted((COMMON | REPLICA_ONLY | COPY_ONLY) - {"cmd"}))
        raise OptionError(f"unknown field(s) {', '.join(sorted(unknown))[:200]} (known: {known})")
    other = COPY_ONLY if mode == "replica" else REPLICA_ONLY
    given = sorted(key for key in other if fields.get(key) not in (None, ""))
    if given:
        raise OptionError(f"{', '.join(given)} apply only to mode={'copy' if mode == 'replica' else 'replica'}")


def parse_options(fields: Mapping[str, Any]) -> Options:
    """Options from request fields; OptionError for a bad value (absent keys take their defaults)."""
    defaults = Options()
    _check_fields(fields, _choice(fields, "mode", defaults.mode, MODES))
    return Options(
        max_lag_bytes=_int(fields, "max_lag_bytes", defaults.max_lag_bytes, 0, 1 << 40),
        max_hold_ms=_int(fields, "max_hold_ms", defaults.max_hold_ms, 1, MAX_HOLD_LIMIT_MS),
        retries=_int(fields, "retries", defaults.retries, 0, 100),
        reverse=_bool(fields, "reverse", defaults.reverse),
        force=_bool(fields, "force", defaults.force),
        mode=_choice(fields, "mode", defaults.mode, MODES),
        max_dirty_keys=_int(fields, "max_dirty_keys", defaults.max_dirty_keys, 0, 10_000_000),
        verify_sample=_int(fields, "verify_sample", defaults.verify_sample, 0, 1_000_000),
        max_copy_ops=_int(fields, "max_copy_ops", defaults.max_copy_ops, 0, 100_000_000),
        max_copy_bytes=_int(fields, "max_copy_bytes", defaults.max_copy_bytes, 0, 1 << 40),
        fence=_choice(fields, "fence", defaults.fence, FENCES),
        trust_script_keys=_bool(fields, "trust_script_keys", defaults.trust_script_keys),
    )
