"""CLIENT REPLY ON | OFF | SKIP: which commands Redis will not answer, as of the commands sent.

Redis (networking.c) keeps two flags per client: OFF, and SKIP for the one
command being run. `CLIENT REPLY SKIP` sets "skip the next", which becomes
SKIP once the CLIENT command itself is done (`resetClient`); after the next
command, whatever it is, SKIP is cleared. `CLIENT REPLY ON` clears both
flags before answering, so its +OK is always sent; OFF and SKIP never
answer.

The proxy must know this to count replies: a command Redis will not answer
gets no pending entry at all. Commands sent without a reply also cannot be
seen to finish, so before a pause counts the session as drained, a fence is
sent (`CLIENT REPLY ON`, whose +OK is swallowed, then the mode again): its
reply arrives only after Redis has run everything sent before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis_proxy.resp import encode_command

REPLY_ON = encode_command([b"CLIENT", b"REPLY", b"ON"])
REPLY_OFF = encode_command([b"CLIENT", b"REPLY", b"OFF"])
REPLY_SKIP = encode_command([b"CLIENT", b"REPLY", b"SKIP"])

MODES = (b"ON", b"OFF", b"SKIP")


@dataclass(slots=True)
class ReplyMode:
    off: bool = False
    skip: bool = False  # the next command sent gets no reply
    unfenced: bool = False  # commands went out without a reply since the last one that has one

    @property
    def silent(self) -> bool:
        """Whether the next command sent will get no reply."""
        return self.off or self.skip

    def set(self, mode: bytes) -> bool:
        """CLIENT REPLY `mode` (upper case) is being sent; returns whether it gets a reply (+OK)."""
        if mode == b"ON":
            self.off = self.skip = False
            self.unfenced = False  # its +OK comes after everything before it
            return True
        if mode == b"OFF":
            self.off = True
        elif not self.off:  # SKIP while OFF is a syntax error nobody sees
            self.skip = True
        self.unfenced = True
        return False

    def sent(self) -> bool:
        """Any other command is being sent: returns whether it gets a reply, and moves SKIP on."""
        silent = self.off or self.skip
        self.skip = False
        self.unfenced = silent
        return not silent

    def fence(self) -> list[bytes]:
        """What to send so that one reply (CLIENT REPLY ON's +OK, to swallow) follows every silent command.

        The mode is restored after it; the fence itself changes nothing the client can see.
        """
        restore = REPLY_OFF if self.off else REPLY_SKIP if self.skip else None
        self.unfenced = False
        return [REPLY_ON] if restore is None else [REPLY_ON, restore]

    def replay(self) -> bytes | None:
        """For a new uplink connection: the command that brings it to this mode (it gets no reply)."""
        return REPLY_OFF if self.off else REPLY_SKIP if self.skip else None
