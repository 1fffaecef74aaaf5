"""redis-proxy: a Redis-protocol-aware proxy for zero-downtime server replacement."""

__version__ = "0.1.0"
