"""Conversation tests of the sans-I/O session core: bytes and events in, actions out (no sockets)."""

from __future__ import annotations

import logging
import random

from redis_proxy.gate import PAUSING, Gate
from redis_proxy.session.core import SessionCore
from redis_proxy.session.limits import ClientLimits
from redis_proxy.session.routing import POISON
from redis_proxy.session.types import (
    Action, CloseClient, CloseUplink, ConnectUplink, ReadClient, Unblock, WriteClient, WriteUplink,
)
from redis_proxy.stats import Stats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cmd(*args: str | bytes) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def to_client(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, WriteClient))


def upstream(actions: list[Action]) -> bytes:
    return b"".join(b"".join(a.chunks) for a in actions if isinstance(a, WriteUplink))


def kinds(actions: list[Action]) -> list[type]:
    return [type(a) for a in actions]


def ready(password: bytes | None = None) -> tuple[SessionCore, Gate, Clock]:
    """A core with a ready uplink connection (client id 7)."""
    gate, clock = Gate(0.0), Clock()
    core = SessionCore(gate, Stats(), password, clock)
    actions = core.client_data(cmd("PING"))
    assert kinds(actions) == [ConnectUplink]
    actions = core.uplink_ready(0, 7, [], None)
    assert upstream(actions) == cmd("PING")
    assert to_client(core.uplink_data(b"+PONG\r\n")) == b"+PONG\r\n"
    return core, gate, clock


def test_plain_commands_pass_through_and_are_counted() -> None:
    core, gate, _ = ready()
    actions = core.client_data(cmd("SET", "k", "v") + cmd("GET", "k"))
    assert upstream(actions) == cmd("SET", "k", "v") + cmd("GET", "k")
    assert gate.inflight == 2
    assert to_client(core.uplink_data(b"+OK\r\n$1\r")) == b"+OK\r\n$1\r"
    assert gate.inflight == 2  # a batch is in flight until its last reply
    assert to_client(core.uplink_data(b"\nv\r\n")) == b"\nv\r\n"
    assert gate.inflight == 0 and not core.pending


def test_no_uplink_connection_before_auth() -> None:
    gate, clock = Gate(0.0), Clock()
    core = SessionCore(gate, Stats(), b"secret", clock)
    actions = core.client_data(cmd("PING") + cmd("GET", "k"))
    assert to_client(actions) == b"-NOAUTH Authentication required.\r\n" * 2
    assert not any(isinstance(a, ConnectUplink) for a in actions)
    actions = core.client_data(cmd("AUTH", "secret") + cmd("PING"))
    assert to_client(actions) == b"+OK\r\n" and kinds(actions)[-1] is ConnectUplink


def test_half_close_answers_then_closes() -> None:
    """Item 3: `nc -N` sends its commands, then shuts its side; it still gets every reply."""
    core, _, _ = ready()
    core.client_data(cmd("INCR", "n") + cmd("INCR", "n"))
    actions = core.client_eof()
    assert not any(isinstance(a, CloseClient) for a in actions)
    actions = core.uplink_data(b":1\r\n:2\r\n")
    assert to_client(actions) == b":1\r\n:2\r\n"
    assert kinds(actions)[-1] is CloseClient


def test_shard_subscriptions_are_counted_apart() -> None:
    """Item 4: SUNSUBSCRIBE's count 0 is the shard count; the client is still subscribed to `a`."""
    core, _, _ = ready()
    core.client_data(cmd("SUBSCRIBE", "a") + cmd("SSUBSCRIBE", "b") + cmd("SUNSUBSCRIBE", "b"))
    replies = (
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
        b"*3\r\n$10\r\nssubscribe\r\n$1\r\nb\r\n:1\r\n"
        b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\nb\r\n:0\r\n"
    )
    assert to_client(core.uplink_data(replies)) == replies
    message = b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"
    actions = core.uplink_data(message)
    assert to_client(actions) == message and CloseClient not in kinds(actions)


def test_refused_command_inside_multi_aborts_the_transaction() -> None:
    """Item 5: a command the proxy answers itself inside MULTI behaves as one Redis rejects at queue time."""
    core, _, _ = ready()
    actions = core.client_data(cmd("MULTI") + cmd("SET", "k", "v") + cmd("AUTH", "x") + cmd("EXEC"))
    assert upstream(actions) == cmd("MULTI") + cmd("SET", "k", "v") + POISON + cmd("EXEC")
    redis = (
        b"+OK\r\n+QUEUED\r\n-ERR unknown command 'REDIS-PROXY-REFUSED-IN-MULTI', with args beginning with: \r\n"
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    )
    out = b"".join(to_client(core.uplink_data(redis[i : i + 1])) for i in range(len(redis)))
    assert out == (
        b"+OK\r\n+QUEUED\r\n-ERR AUTH inside MULTI is not supported by redis-proxy\r\n"
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    )
    assert not core.in_txn


def test_hello_inside_multi_applies_only_if_exec_runs() -> None:
    core, _, _ = ready()
    core.client_data(cmd("MULTI") + cmd("HELLO", "3") + cmd("DISCARD"))
    core.uplink_data(b"+OK\r\n+QUEUED\r\n+OK\r\n")
    assert core.state.resp3 is False
    core.client_data(cmd("MULTI") + cmd("SELECT", "2") + cmd("EXEC"))
    core.uplink_data(b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n")
    assert core.state.db == 2


def test_slow_subscriber_is_not_cut_mid_message_by_a_switch() -> None:
    """Item 2: the old uplink connection is left only at a reply boundary."""
    core, gate, _ = ready()
    core.client_data(cmd("SUBSCRIBE", "ch"))
    core.uplink_data(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
    body = b"x" * 100_000
    message = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$%d\r\n%s\r\n" % (len(body), body)
    assert to_client(core.uplink_data(message[:3000])) == message[:3000]
    gate.generation += 1
    actions = core.switch_uplink() + core.client_data(cmd("PING"))
    assert CloseUplink not in kinds(actions) and not upstream(actions)
    actions = core.uplink_data(message[3000:])
    assert to_client(actions) == message[3000:]
    assert kinds(actions)[-2:] == [CloseUplink, ConnectUplink]
    actions = core.uplink_ready(1, 8, [], None)
    assert upstream(actions) == cmd("PING")


def test_blocked_command_is_unblocked_for_a_pause_and_sent_again() -> None:
    """Item 7: the timeout reply after CLIENT UNBLOCK is swallowed; the command goes again with what is left."""
    core, gate, clock = ready()
    assert upstream(core.client_data(cmd("BLPOP", "q", "10"))) == cmd("BLPOP", "q", "10")
    clock.now += 4
    gate.state, gate.open = PAUSING, False
    actions = core.pausing()
    assert actions == [Unblock(7)]
    for cut in (b"*-1", b"\r\n"):
        assert to_client(core.uplink_data(cut)) == b""
    assert gate.inflight == 0 and core.held == 1
    gate.state, gate.open = "running", True
    clock.now += 1
    assert upstream(core.resume()) == cmd("BLPOP", "q", "6.000")
    assert to_client(core.uplink_data(b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n")) == b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n"


def test_a_real_reply_that_races_the_unblock_is_delivered() -> None:
    core, gate, _ = ready()
    core.client_data(cmd("BLPOP", "q", "0"))
    gate.state, gate.open = PAUSING, False
    core.pausing()
    reply = b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n"
    assert to_client(core.uplink_data(reply)) == reply
    assert core.held == 0 and gate.inflight == 0


def test_proxy_replies_keep_their_place_in_any_split() -> None:
    """A whole conversation, fed in random splits: the client sees Redis's order."""
    stream = cmd("GET", "a") + cmd("QUIT")
    for seed in range(50):
        core, _, _ = ready()
        actions = core.client_data(stream)
        assert upstream(actions) == cmd("GET", "a")
        rng = random.Random(seed)
        reply = b"$5\r\nhello\r\n"
        out = b""
        i = 0
        closed = False
        while i < len(reply):
            j = i + rng.randint(1, 4)
            acts = core.uplink_data(reply[i:j])
            out += to_client(acts)
            closed = closed or CloseClient in kinds(acts)
            i = j
        assert out == reply + b"+OK\r\n" and closed


def test_xread_with_dollar_is_not_unblocked() -> None:
    """Sent again later, `$` would skip entries added meanwhile: such a read holds the pause instead."""
    core, gate, _ = ready()
    core.client_data(cmd("XREAD", "BLOCK", "0", "STREAMS", "s", "$"))
    gate.state, gate.open = PAUSING, False
    assert core.pausing() == []
    core2, gate2, _ = ready()
    core2.client_data(cmd("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"))
    gate2.state, gate2.open = PAUSING, False
    assert core2.pausing() == [Unblock(7)]


def test_a_late_hello_reply_does_not_undo_a_newer_hello() -> None:
    """HELLO 3, SUBSCRIBE, HELLO 2 pipelined: the first HELLO's reply must not put routing back in RESP3."""
    core, _, _ = ready()
    core.client_data(cmd("HELLO", "3") + cmd("SUBSCRIBE", "a") + cmd("HELLO", "2"))
    assert core.resp3 is False
    core.uplink_data(b"%1\r\n$5\r\nproto\r\n:3\r\n")  # HELLO 3 answered; HELLO 2 still in flight
    assert core.resp3 is False
    upstream_bytes = upstream(core.client_data(cmd("MULTI")))
    assert upstream_bytes == cmd("MULTI") and not core.in_multi  # RESP2 pub/sub: Redis refuses MULTI


# -- issue 9: limits and unauthenticated clients ----------------------------------------------------

UNAUTH_ARRAY = b"-ERR Protocol error: unauthenticated multibulk length\r\n"
UNAUTH_BULK = b"-ERR Protocol error: unauthenticated bulk length\r\n"


def locked() -> tuple[SessionCore, Gate, Clock]:
    """A core whose client must AUTH (password b"secret"), default limits."""
    gate, clock = Gate(0.0), Clock()
    return SessionCore(gate, Stats(), b"secret", clock), gate, clock


def test_unauthenticated_multibulk_longer_than_10_closes() -> None:
    core, _, _ = locked()
    actions = core.client_data(cmd(*["x"] * 10))  # 10 is still allowed
    assert to_client(actions) == b"-NOAUTH Authentication required.\r\n"
    actions = core.client_data(b"*11\r\n")
    assert to_client(actions) == UNAUTH_ARRAY and kinds(actions)[-1] is CloseClient
    assert not any(isinstance(a, ConnectUplink) for a in actions)


def test_unauthenticated_bulk_longer_than_16384_closes_before_the_body() -> None:
    core, _, _ = locked()
    actions = core.client_data(b"*1\r\n$16384\r\n" + b"x" * 100)  # allowed: waits for the rest
    assert actions == [] and core.requests.buffered > 0
    core, _, _ = locked()
    actions = core.client_data(b"*1\r\n$67108864\r\n" + b"x" * 1000)
    assert to_client(actions) == UNAUTH_BULK and kinds(actions)[-1] is CloseClient
    assert core.requests.buffered == 0


def test_auth_in_the_same_read_lifts_the_limits_for_what_follows() -> None:
    core, _, _ = locked()
    big = cmd("SET", "k", "v" * 20000)
    actions = core.client_data(cmd("AUTH", "secret") + big)
    assert to_client(actions) == b"+OK\r\n" and kinds(actions)[-1] is ConnectUplink
    assert upstream(core.uplink_ready(0, 7, [], None)) == big


def test_failed_auth_keeps_the_limits_for_what_follows() -> None:
    core, _, _ = locked()
    actions = core.client_data(cmd("AUTH", "wrong") + b"*1\r\n$20000\r\n")
    data = to_client(actions)
    assert data.startswith(b"-WRONGPASS") and data.endswith(UNAUTH_BULK) and kinds(actions)[-1] is CloseClient


def test_auth_held_by_a_pause_decides_the_limits_when_it_runs() -> None:
    core, gate, _ = locked()
    gate.open = False
    big = cmd("SET", "k", "v" * 20000)
    assert to_client(core.client_data(cmd("AUTH", "secret") + big)) == b""
    actions = core.client_data(b"*1\r\n$5\r\nRESET\r\n"[:4])  # more bytes while held: kept, not framed
    assert not any(isinstance(a, CloseClient) for a in actions)
    gate.open = True
    actions = core.resume()
    assert to_client(actions) == b"+OK\r\n" and kinds(actions)[-1] is ConnectUplink
    assert upstream(core.uplink_ready(0, 7, [], None)) == big


def test_reset_brings_the_unauthenticated_limits_back() -> None:
    core, _, _ = locked()
    core.client_data(cmd("AUTH", "secret"))
    # (Commands in the same read as RESET were framed by a client that knew
    # the password; the limits apply from the next read on.)
    assert to_client(core.client_data(cmd("RESET"))) == b"+RESET\r\n"
    actions = core.client_data(b"*11\r\n")
    assert to_client(actions) == UNAUTH_ARRAY and kinds(actions)[-1] is CloseClient


def test_query_buffer_limit_closes_the_client_with_a_warning() -> None:
    gate, clock = Gate(0.0), Clock()
    core = SessionCore(gate, Stats(), None, clock, ClientLimits(query_buffer=1024 * 1024))
    core.client_data(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n")
    assert core.client_data(b"x" * 1000_000) == []  # 1 MB of it: still within the limit
    actions = core.client_data(b"x" * 100_000)
    closes = [a for a in actions if isinstance(a, CloseClient)]
    assert closes and closes[0].level == logging.WARNING and "max query buffer length" in closes[0].reason
    assert core.requests.buffered == 0 and to_client(actions) == b""  # like Redis: no reply, the bytes let go


def test_idle_client_is_closed_after_the_timeout_but_not_while_something_is_owed() -> None:
    gate, clock = Gate(0.0), Clock()
    core = SessionCore(gate, Stats(), None, clock, ClientLimits(idle_timeout=10.0))
    core.client_data(cmd("PING"))
    core.uplink_ready(0, 7, [], None)
    clock.now += 60
    assert core.idle_check() == []  # PING is owed its reply: not idle
    core.uplink_data(b"+PONG\r\n")
    clock.now += 9
    assert core.idle_check() == []
    core.client_data(cmd("SUBSCRIBE", "c"))
    core.uplink_data(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n")
    clock.now += 60
    assert core.idle_check() == []  # subscribed clients are never idle (as Redis)
    core.client_data(cmd("UNSUBSCRIBE"))
    core.uplink_data(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n")
    clock.now += 10
    actions = core.idle_check()
    assert kinds(actions)[-1] is CloseClient and "idle" in actions[-1].reason  # type: ignore[union-attr]


def test_hello_auth_pipelined_with_commands_does_not_stall() -> None:
    """HELLO ... AUTH needs an uplink; the commands read with it are framed once it has answered."""
    core, _, _ = locked()
    actions = core.client_data(cmd("HELLO", "2", "AUTH", "default", "secret") + cmd("GET", "k"))
    assert ConnectUplink in kinds(actions) and ReadClient(False) in actions
    actions = core.uplink_ready(0, 7, [], None)
    assert upstream(actions) == cmd("HELLO", "2") + cmd("GET", "k")


def test_a_held_auth_stops_reading_the_client() -> None:
    """While an AUTH waits (paused), nothing past Redis's unauthenticated limits may pile up: the client is not read."""
    core, gate, _ = locked()
    gate.open = False
    actions = core.client_data(cmd("AUTH", "wrong") + b"*1\r\n$1048576\r\n" + b"x" * 65536)
    assert ReadClient(False) in actions
    gate.open = True
    actions = core.resume()
    assert to_client(actions).startswith(b"-WRONGPASS")
    assert to_client(actions).endswith(UNAUTH_BULK) and kinds(actions)[-1] is CloseClient
