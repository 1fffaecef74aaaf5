"""Client-side caching through the proxy: CLIENT TRACKING as state that follows a switch.

CLIENT TRACKING ON/OFF is forwarded (its REDIRECT id mapped, client_ids.py)
and, once its reply confirms it, kept as `Tracking` in the session's state,
so a new uplink connection replays it (`replay_commands`). A new server has
never seen the client's reads, so when a session leaves its old connection
for a switch, the client is sent what Redis sends on FLUSHALL: an
invalidation of everything (`flush_message`). Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

# What Redis sends on FLUSHALL (verified against redis-server 7.0): the RESP3
# push to a tracking client (or a RESP3 redirect target), and the pub/sub
# message to a RESP2 redirect target subscribed to __redis__:invalidate.
INVALIDATE_ALL_RESP3 = b">2\r\n$10\r\ninvalidate\r\n_\r\n"
INVALIDATE_ALL_RESP2 = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
INVALIDATE_CHANNEL = b"__redis__:invalidate"


@dataclass(frozen=True, slots=True)
class Tracking:
    """CLIENT TRACKING ON as the server holds it for this client."""

    redirect: int = 0  # a proxy client id; 0: none
    bcast: bool = False
    optin: bool = False
    optout: bool = False
    noloop: bool = False
    prefixes: tuple[bytes, ...] = ()  # every BCAST prefix given since tracking went on (b"": all keys)


@dataclass(frozen=True, slots=True)
class SetTracking:
    """CLIENT TRACKING ON (`on`, as this one command gives it) or OFF (None); applied when the reply is +OK."""

    on: Tracking | None

    def applied_to(self, old: Tracking | None) -> Tracking | None:
        """As Redis's enableTracking: options and redirect replaced, BCAST prefixes added to the ones held."""
        new = self.on
        if new is None:
            return None
        given = new.prefixes or ((b"",) if new.bcast else ())
        held = old.prefixes if old is not None and new.bcast else ()
        prefixes = held + tuple(p for p in given if p not in held)
        return Tracking(new.redirect, new.bcast, new.optin, new.optout, new.noloop, prefixes)


def parse(args: list[bytes]) -> tuple[SetTracking, list[int]] | None:
    """CLIENT TRACKING's arguments (after TRACKING): the effect and the indexes of REDIRECT's ids in `args`, or None.

    None means Redis will refuse the command (syntax): it is forwarded as it
    is and changes nothing. Option errors Redis finds (PREFIX without BCAST,
    OPTIN with OPTOUT...) come back as errors, and an error changes nothing.
    """
    if not args:
        return None
    mode = args[0].upper()
    if mode == b"OFF":
        # What OFF's options are, Redis checks (an error changes nothing); but
        # it looks REDIRECT's id up even then, so that id is mapped too.
        at, i = [], 1
        while i + 1 < len(args):
            option = args[i].upper()
            if option == b"REDIRECT":
                at.append(i + 1)
            i += 2 if option in (b"REDIRECT", b"PREFIX") else 1
        return SetTracking(None), at
    if mode != b"ON":
        return None
    redirect, redirect_at = 0, []
    bcast = optin = optout = noloop = False
    prefixes: list[bytes] = []
    i = 1
    while i < len(args):
        option = args[i].upper()
        more = i + 1 < len(args)
        if option == b"REDIRECT" and more:
            value = args[i + 1]
            if not value.isdigit() or value[:1] == b"0" or len(value) > 19:
                return None  # Redis's own error
            redirect = int(value)
            redirect_at.append(i + 1)
            i += 2
        elif option == b"PREFIX" and more:
            prefixes.append(args[i + 1])
            i += 2
        elif option == b"BCAST":
            bcast, i = True, i + 1
        elif option == b"OPTIN":
            optin, i = True, i + 1
        elif option == b"OPTOUT":
            optout, i = True, i + 1
        elif option == b"NOLOOP":
            noloop, i = True, i + 1
        else:
            return None
    return SetTracking(Tracking(redirect, bcast, optin, optout, noloop, tuple(prefixes))), redirect_at


def replay_commands(tracking: Tracking, redirect: int | None) -> list[list[bytes]]:
    """The commands that turn tracking on again on a new connection; `redirect` is the target's uplink id there.

    Prefixes go in one command, except the empty one (BCAST without
    PREFIX), which Redis accepts beside others only when it comes last.
    """
    base = [b"CLIENT", b"TRACKING", b"ON"]
    if tracking.redirect and redirect is not None:
        base += [b"REDIRECT", b"%d" % redirect]
    for flag, name in ((tracking.optin, b"OPTIN"), (tracking.optout, b"OPTOUT"), (tracking.noloop, b"NOLOOP")):
        if flag:
            base.append(name)
    if not tracking.bcast:
        return [base]  # OPTIN's CLIENT CACHING YES comes after the whole handshake (core.uplink_ready)
    named = [p for p in tracking.prefixes if p]
    commands = []
    if named:
        commands.append(base + [b"BCAST"] + [part for p in named for part in (b"PREFIX", p)])
    if b"" in tracking.prefixes or not named:
        commands.append(base + [b"BCAST"])
    return commands


def invalidates(tracking: Tracking | None, target: bool, channels: set[bytes]) -> bool:
    """Whether a session receives invalidations: tracking without redirect, a redirect target, or subscribed to their channel."""
    return (tracking is not None and not tracking.redirect) or target or INVALIDATE_CHANNEL in channels


def flush_message(tracking: Tracking | None, target: bool, channels: set[bytes], resp3: bool) -> bytes:
    """What the client is sent when its session leaves a connection for a switch: Redis's FLUSHALL invalidation, or b"".

    RESP3: the push (to a client tracking without redirect, or a redirect
    target); RESP2: the message on __redis__:invalidate (to a subscriber of
    it); a RESP2 client tracking without redirect gets nothing from Redis
    either.
    """
    if not invalidates(tracking, target, channels):
        return b""
    if resp3:
        return INVALIDATE_ALL_RESP3
    if INVALIDATE_CHANNEL in channels:
        return INVALIDATE_ALL_RESP2
    return b""


CACHING_YES = b"*3\r\n$6\r\nCLIENT\r\n$7\r\nCACHING\r\n$3\r\nYES\r\n"


def caching_yes_after_replay(tracking: Tracking | None) -> bool:
    """OPTIN: whether a new connection gets CLIENT CACHING YES right before the client's next command.

    A CLIENT CACHING yes sent on the old connection was meant for the next
    command, which may now go to this one; the proxy cannot tell (the hot
    path does not look), so the next command is tracked anyway: one
    invalidation too many at worst, never a stale cache. It must come after
    the handshake's subscriptions: Redis forgets the flag after any command
    that is not a CLIENT command.
    """
    return tracking is not None and tracking.optin and not tracking.bcast
