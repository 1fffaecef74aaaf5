"""With automatic failover, a lost uplink connection does not end the client when it need not."""

from __future__ import annotations

from redis_proxy.gate import Gate
from redis_proxy.session.core import SessionCore
from redis_proxy.session.limits import ClientLimits
from redis_proxy.session.replies import LOST_IN_FLIGHT
from redis_proxy.session.types import CloseClient, ConnectUplink
from redis_proxy.stats import Stats
from test_core import Clock, cmd, kinds, to_client, upstream

LOST = b"-" + LOST_IN_FLIGHT.encode() + b"\r\n"


def failover_ready() -> tuple[SessionCore, Gate]:
    gate = Gate(0.0)
    core = SessionCore(gate, Stats(), None, Clock(), ClientLimits(outlive_uplink=True))
    assert kinds(core.client_data(cmd("PING"))) == [ConnectUplink]
    core.uplink_ready(0, 7, [], None)
    assert to_client(core.uplink_data(b"+PONG\r\n")) == b"+PONG\r\n"
    return core, gate


def test_commands_in_flight_get_an_error_and_the_client_stays() -> None:
    core, gate = failover_ready()
    core.client_data(cmd("INCR", "a") + cmd("INCR", "b") + cmd("GET", "c"))
    assert to_client(core.uplink_data(b":1\r\n")) == b":1\r\n"  # one answered before the loss
    actions = core.uplink_lost("connection reset")
    assert to_client(actions) == LOST * 2
    assert CloseClient not in kinds(actions) and gate.inflight == 0
    # The next command goes to a new uplink connection.
    actions = core.client_data(cmd("PING"))
    assert ConnectUplink in kinds(actions)
    assert upstream(core.uplink_ready(0, 8, [], None)) == cmd("PING")


def test_an_idle_client_is_not_closed() -> None:
    core, gate = failover_ready()
    actions = core.uplink_lost("connection reset")
    assert to_client(actions) == b"" and CloseClient not in kinds(actions)


def test_a_client_mid_reply_or_in_a_transaction_is_closed() -> None:
    core, _ = failover_ready()
    core.client_data(cmd("GET", "k"))
    core.uplink_data(b"$10\r\nhal")  # half a reply: the stream cannot continue
    assert CloseClient in kinds(core.uplink_lost("reset"))
    core, _ = failover_ready()
    core.client_data(cmd("MULTI"))
    core.uplink_data(b"+OK\r\n")
    assert CloseClient in kinds(core.uplink_lost("reset"))
    core, _ = failover_ready()
    core.client_data(cmd("SELECT", "2"))  # its effect is unknown
    assert CloseClient in kinds(core.uplink_lost("reset"))


def test_without_failover_the_client_is_closed_as_redis_would() -> None:
    gate = Gate(0.0)
    core = SessionCore(gate, Stats(), None, Clock())
    core.client_data(cmd("PING"))
    core.uplink_ready(0, 7, [], None)
    core.uplink_data(b"+PONG\r\n")
    assert CloseClient in kinds(core.uplink_lost("reset"))


def test_a_replication_stream_is_closed_on_loss() -> None:
    core, _ = failover_ready()
    core.client_data(cmd("SYNC"))
    core.uplink_data(b"$100\r\nREDIS0011")  # part of the RDB
    assert CloseClient in kinds(core.uplink_lost("reset"))


def test_a_resp3_session_keeps_its_mark_for_pushes() -> None:
    from test_core_tracking import hello3

    core, _ = failover_ready()
    core.client_data(cmd("HELLO", "3"))
    core.uplink_data(hello3(7))
    core.client_data(cmd("CLIENT", "TRACKING", "ON"))
    core.uplink_data(b"+OK\r\n")
    core.client_data(cmd("CLIENT", "TRACKING", "OFF"))
    core.uplink_data(b"+OK\r\n")
    core.client_data(cmd("GET", "k"))
    assert CloseClient not in kinds(core.uplink_lost("reset"))
    core.client_data(cmd("CLIENT", "TRACKING", "ON"))
    core.uplink_ready(0, 8, [], None)
    core.uplink_data(b"+OK\r\n")
    core.client_data(cmd("GET", "k"))
    # An invalidation push alone, then GET's reply: the push is not taken for the reply.
    core.uplink_data(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")
    actions = core.uplink_data(b"$1\r\nv\r\n")
    assert CloseClient not in kinds(actions) and not core.pending


def test_a_subscriber_whose_reconnect_fails_is_not_left_silent() -> None:
    core, gate = failover_ready()
    core.client_data(cmd("SUBSCRIBE", "ch"))
    core.uplink_data(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
    gate.generation += 1
    assert ConnectUplink in kinds(core.switch_uplink())
    assert not core.waits_for_uplink  # so the I/O layer fails it (closing it) instead of holding
    assert CloseClient in kinds(core.uplink_failed("refused"))


def test_a_half_closed_client_is_closed_once_answered() -> None:
    core, _ = failover_ready()
    core.client_data(cmd("INCR", "a"))
    core.client_eof()
    actions = core.uplink_lost("reset")
    assert to_client(actions) == LOST and CloseClient in kinds(actions)


def test_held_commands_inside_a_transaction_close_the_client() -> None:
    core, gate = failover_ready()
    core.client_data(cmd("MULTI"))
    core.uplink_data(b"+OK\r\n")
    gate.open = False  # failing over: commands are held
    core.client_data(cmd("INCR", "a"))
    assert CloseClient in kinds(core.fail_held("ERR failover: no usable uplink"))
