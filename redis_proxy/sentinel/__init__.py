"""Following Redis Sentinel: the master's address comes from the sentinels, and their failovers hold clients.

`events` parses what sentinels publish and answer (pure functions), `query`
asks them, `link` keeps one subscription per sentinel, `follower` turns
their events into holds and switches.
"""
