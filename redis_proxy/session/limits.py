"""Per-client limits an operator expects of a Redis front end (max_clients, timeout, query buffer, keepalive).

Plain data and pure decisions, no I/O: the session core reads the query
buffer limit and decides idleness; the asyncio glue (protocol.py) admits
connections, runs the idle timer and sets socket options.
"""

from __future__ import annotations

from dataclasses import dataclass

# Redis's own reply when `maxclients` is reached (networking.c, acceptCommonHandler).
MAX_CLIENTS_ERROR = b"-ERR max number of clients reached\r\n"


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """The config keys that bound one client connection (config.py has their validation and defaults)."""

    max_clients: int = 10000
    query_buffer: int = 1024 * 1024 * 1024  # client_query_buffer_limit, as Redis's default
    idle_timeout: float = 0.0  # client_idle_timeout_s; 0: never
    keepalive: int = 300  # tcp_keepalive_s; 0: off
    # With automatic failover: a client whose uplink connection is lost stays,
    # its commands in flight answered with an error, instead of being closed;
    # and commands that find the uplink unreachable wait this long (failover's
    # max_hold_ms) for the next one instead of failing at once.
    outlive_uplink: bool = False
    unreachable_wait: float = 0.0


def admits(connections: int, limits: ClientLimits) -> bool:
    """Whether one more client connection may be served.

    `connections` counts every client connection the proxy has open, managed
    sessions and listen_raw pipes alike: Redis counts all of its connections
    against maxclients, and a raw pipe costs the proxy (and Redis) as much.
    """
    return connections < limits.max_clients
