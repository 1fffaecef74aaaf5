"""The control plane: the proxy's own connections to Redis servers for INFO, ROLE, REPLICAOF and CONFIG.

Built on redis-py's asyncio client (with hiredis): these are a few commands a
second at most, where a well-kept client is worth more than speed. Client
traffic never goes through here; it stays on the hand-written hot path.
"""
