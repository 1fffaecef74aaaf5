"""`cmd=compare`: the active uplink against another server, key by key, without switching.

For validation before a cutover: keys missing on either side, and type,
value and TTL differences, counted, with a sample of examples. Both
keyspaces are scanned; on a live source, keys written meanwhile may show
up as differences (compare again, or compare under a pause).
"""

from __future__ import annotations

import time
from typing import Any

from redis_proxy.migration.copier import Copier, CopyCounters, RateLimit, Side
from redis_proxy.migration.verify import CATEGORIES, EXAMPLES, MISSING_ON_SOURCE, TTL_TOLERANCE_MS, Mismatch


async def compare_servers(source: Side, target: Side) -> dict[str, Any]:
    """The report (JSON-ready); ControlPlaneError when a server fails."""
    began = time.monotonic()
    copier = Copier(source, target, RateLimit(0, 0), CopyCounters())
    counts = dict.fromkeys(CATEGORIES, 0)
    examples: list[Mismatch] = []
    seen_source = seen_target = identical = 0

    def note(found: list[Mismatch], compared: int) -> int:
        for mismatch in found:
            counts[mismatch.category] += 1
            if len(examples) < EXAMPLES:
                examples.append(mismatch)
        return compared - len(found)

    source_dbs, target_dbs = await source.keyspace(), await target.keyspace()
    for db in sorted(set(source_dbs) | set(target_dbs)):
        async for keys in source.batches(db):
            keys = sorted(set(keys))
            seen_source += len(keys)
            identical += note(await copier.compare(db, keys, TTL_TOLERANCE_MS), len(keys))
        async for keys in target.batches(db):
            seen_target += len(keys)
            only_target = sorted(set(await copier.missing_on_source(db, keys)))
            found = await copier.compare(db, only_target, TTL_TOLERANCE_MS)
            note([m for m in found if m.category == MISSING_ON_SOURCE], 0)
    return {
        "from": source.name,
        "to": target.name,
        "keys_source": seen_source,
        "keys_target": seen_target,
        "identical": identical,
        **{key if key.startswith("missing") else f"{key}_mismatches": value for key, value in counts.items()},
        "examples": [m.to_json() for m in examples],
        "took_s": round(time.monotonic() - began, 3),
    }
