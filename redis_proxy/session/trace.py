"""log_messages: one line per command and per reply, without secrets."""

from __future__ import annotations

# Commands whose arguments may carry passwords: logged without them.
_SECRET_ARGS = {b"AUTH": 1, b"HELLO": 1, b"CONFIG": 2, b"ACL": 2, b"MIGRATE": 1}


# Commands whose replies may carry secrets: CONFIG GET (a pattern such as `*`
# matches requirepass and masterauth), ACL GETUSER/LIST (password hashes),
# ACL GENPASS (a fresh password). Their replies are logged as redacted.
_SECRET_REPLIES = {b"CONFIG": (b"GET",), b"ACL": (b"GETUSER", b"LIST", b"GENPASS")}

REDACTED = "[reply redacted]"


def has_secret_reply(command: list[bytes]) -> bool:
    """Whether the reply to this command may carry a password or its hash (only asked while log_messages is on)."""
    subcommands = _SECRET_REPLIES.get(command[0].upper())
    return subcommands is not None and len(command) > 1 and command[1].upper() in subcommands


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
