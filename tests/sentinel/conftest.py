"""The sentinel_setup fixture (helpers in sentinel_servers.py, importable whatever conftest another directory has)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from sentinel_servers import FAST_SYNC, MASTER_NAME, SentinelServer, Setup  # noqa: E402,F401
from servers import RedisServer, redis_server_binary, wait_until  # noqa: E402,F401

@pytest.fixture
def sentinel_setup(redis_factory: Callable[..., RedisServer]) -> Iterator[Setup]:
    master = redis_factory(extra_args=FAST_SYNC)
    replica = redis_factory(extra_args=[*FAST_SYNC, "--replicaof", "127.0.0.1", str(master.port)])
    wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up", timeout=20, message="replica in sync")
    sentinels = [SentinelServer(master) for _ in range(3)]
    try:
        for sentinel in sentinels:
            sentinel.start()
        # Sentinels find the replica through the master's INFO, each other through hello messages (every 2 s).
        wait_until(lambda: all(s.ready() for s in sentinels), timeout=30, interval=0.1, message="sentinels know each other")
        yield Setup(master, replica, sentinels)
    finally:
        for sentinel in sentinels:
            sentinel.close()
