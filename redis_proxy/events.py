"""A bounded list of timestamped events, each also logged: what a switchover or a failover did, for people."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("redis_proxy")

MAX_EVENTS = 200  # a long sync reports progress; the first and last events are what matter
KEEP_FIRST = 10  # ...the first ones say what was checked and decided


class Events:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # for the log line: "switchover a -> b"
        self.items: list[dict[str, Any]] = []

    def add(self, msg: str, level: int = logging.INFO) -> None:
        self.items.append({"t": round(time.time(), 3), "msg": msg})
        if len(self.items) > MAX_EVENTS:
            del self.items[KEEP_FIRST]
        log.log(level, "%s: %s", self.prefix, msg)

    def to_json(self) -> list[dict[str, Any]]:
        return list(self.items)
