"""log_messages: one line per command and per reply, without secrets."""

from __future__ import annotations

# Commands whose arguments may carry passwords: logged without them.
_SECRET_ARGS = {b"AUTH": 1, b"HELLO": 1, b"CONFIG": 2, b"ACL": 2, b"MIGRATE": 1}


def describe_command(command: list[bytes]) -> str:
    name = command[0].upper()
    keep = _SECRET_ARGS.get(name)
    if keep is not None:
        shown = " ".join(repr(arg)[2:-1] for arg in command[:keep])
        return f"{shown} [arguments removed]"
    text = " ".join(repr(arg)[2:-1] for arg in command[:8])
    if len(command) > 8:
        text += f" ... ({len(command)} arguments)"
    return text[:200]


def describe(data: bytes) -> str:
    return repr(data)[:200]
