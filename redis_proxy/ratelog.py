"""A log line per key per interval, the next one saying how many were left out.

Events that happen once per client per attempt (an uplink that refuses
connections, with thousands of clients retrying) would otherwise flood the
log and hide everything else; the operator needs to know that it happens and
how often, not every occurrence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Key:
    last: float  # when a line for this key was last written (the clock's time)
    suppressed: int = 0  # lines left out since then


class RateLimitedLog:
    """At most one line per key per `interval` seconds.

    Keys must come from a small fixed set (one per kind of event, not one per
    client): they are kept for the life of the object.
    """

    def __init__(self, logger: logging.Logger, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._keys: dict[str, _Key] = {}

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Write the line unless one for `key` was written less than `interval` ago; True if written."""
        now = self.clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry.last < self.interval:
            entry.suppressed += 1
            return False
        if entry is not None and entry.suppressed:
            msg += " (%d more like this in the last %.0f s, not logged)"
            args = (*args, entry.suppressed, now - entry.last)
        self._keys[key] = _Key(now)
        self.logger.log(level, msg, *args)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def info(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, key, msg, *args)


# Events any peer, or an unreachable uplink, can cause once per connection or
# attempt (protocol errors, max_clients refusals, failed connects): one line
# per kind per interval, with a count of the rest.
PEER_EVENTS_INTERVAL = 10.0
peer_events = RateLimitedLog(logging.getLogger("redis_proxy"), PEER_EVENTS_INTERVAL)
