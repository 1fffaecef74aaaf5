"""What the controller's operations raise: one readable message for the operator each."""

from __future__ import annotations


class ControlError(Exception):
    """An operation failed; the message is for the operator. The proxy is left running as it was."""


class ControlTimeout(ControlError):
    """A pause did not complete in time (the proxy was unpaused again)."""


class UnknownUplink(ControlError):
    """A command named an uplink the config does not have."""


class TargetRefused(ControlError):
    """A target uplink failed its check (unreachable, TLS, AUTH, not a master, session users)."""
