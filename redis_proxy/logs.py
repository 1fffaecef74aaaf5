"""Log output: one event, one line (text) or one JSON object per line.

A log line that cannot be told apart from the next event (a second line
without a timestamp) breaks every log shipper that splits on newlines, so the
text format repeats the prefix on each line of a multi-line message, and the
JSON format escapes newlines inside the object.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")


def _timestamp(record: logging.LogRecord) -> str:
    # ISO 8601 with milliseconds and the UTC offset: unambiguous for a shipper.
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
    offset = time.strftime("%z", time.localtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}{offset}"


class TextFormatter(logging.Formatter):
    """`TIME redis-proxy LEVEL message`, with that prefix on every line of the message.

    A worker process (`workers: N`) says which it is: `redis-proxy[worker 1]`.
    """

    def __init__(self, process: str = "redis-proxy") -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        prefix = f"{_timestamp(record)} {self.process} {record.levelname} "
        return "\n".join(prefix + line for line in message.splitlines() or [""])


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception when there is one)."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None, worker: int | None = None) -> None:
    """Send every logger's records to stderr (or `stream`) in the chosen format; `worker`: a worker process's index."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    process = "redis-proxy" if worker is None else f"redis-proxy[worker {worker}]"
    handler.setFormatter(JSONFormatter(worker) if fmt == "json" else TextFormatter(process))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
