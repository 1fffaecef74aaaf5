"""Client sessions: the sans-I/O core (core.py, replies.py, routing.py) and its asyncio glue (protocol.py)."""
