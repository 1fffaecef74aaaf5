"""Conversation tests of the core for MONITOR, CLIENT REPLY, replication streams and a lost uplink (no sockets)."""

from __future__ import annotations

import random

from redis_proxy.gate import PAUSING
from redis_proxy.session.reply_mode import REPLY_OFF, REPLY_ON, REPLY_SKIP, ReplyMode
from redis_proxy.session.types import CloseClient, ConnectUplink, WriteClient

from test_core import cmd, kinds, ready, to_client, upstream

MONITOR_LINES = (
    b'+1700000000.000001 [0 127.0.0.1:5000] "SET" "k" "v"\r\n'
    b'+1700000000.000002 [0 127.0.0.1:5000] "GET" "k"\r\n'
)


# -- the CLIENT REPLY state machine, as Redis's flags move ---------------------------------------


def test_reply_mode_follows_redis_flags() -> None:
    mode = ReplyMode()
    assert mode.sent() and not mode.silent
    assert not mode.set(b"SKIP") and mode.silent
    assert not mode.sent()  # the next command, whatever it is (CLIENT ID too), is skipped
    assert mode.sent()
    assert not mode.set(b"OFF") and not mode.sent() and not mode.sent()
    assert not mode.set(b"SKIP") and mode.off and not mode.skip  # SKIP while OFF: an unseen syntax error
    assert mode.unfenced
    assert mode.fence() == [REPLY_ON, REPLY_OFF] and not mode.unfenced
    assert mode.set(b"ON") and not mode.silent
    assert mode.replay() is None
    mode.set(b"SKIP")
    assert mode.fence() == [REPLY_ON, REPLY_SKIP] and mode.replay() == REPLY_SKIP


# -- CLIENT REPLY through the core -------------------------------------------------------------


def test_commands_sent_while_replies_are_off_owe_nothing() -> None:
    core, gate, _ = ready()
    actions = core.client_data(cmd("CLIENT", "REPLY", "OFF") + cmd("SET", "a", "1") + cmd("SET", "b", "2"))
    assert upstream(actions) == cmd("CLIENT", "REPLY", "OFF") + cmd("SET", "a", "1") + cmd("SET", "b", "2")
    assert gate.inflight == 0 and not core.pending
    actions = core.client_data(cmd("CLIENT", "REPLY", "ON") + cmd("GET", "a"))
    assert gate.inflight == 2
    assert to_client(core.uplink_data(b"+OK\r\n$1\r\n1\r\n")) == b"+OK\r\n$1\r\n1\r\n"
    assert gate.inflight == 0


def test_a_pause_fences_silent_commands() -> None:
    """The drain waits for a reply that can only come after every silent command ran; the client never sees it."""
    core, gate, _ = ready()
    core.client_data(cmd("CLIENT", "REPLY", "OFF") + cmd("SET", "a", "1"))
    gate.state = PAUSING
    actions = core.pausing()
    assert upstream(actions) == REPLY_ON + REPLY_OFF
    assert gate.inflight == 1
    assert to_client(core.uplink_data(b"+O")) == b""
    assert to_client(core.uplink_data(b"K\r\n")) == b""
    assert gate.inflight == 0
    assert core.pausing() == []  # fenced already


def test_proxy_answers_are_silent_too_while_replies_are_off() -> None:
    core, _, _ = ready()
    actions = core.client_data(cmd("CLIENT", "REPLY", "OFF") + cmd("QUIT"))
    assert to_client(actions) == b"" and CloseClient in kinds(actions)


def test_a_transaction_while_replies_are_off_closes() -> None:
    core, _, _ = ready()
    actions = core.client_data(cmd("CLIENT", "REPLY", "SKIP") + cmd("MULTI"))
    assert CloseClient in kinds(actions) and cmd("MULTI") not in upstream(actions)


def test_client_commands_with_ids_are_sent_silently() -> None:
    core, gate, _ = ready()
    actions = core.client_data(cmd("CLIENT", "REPLY", "OFF") + cmd("CLIENT", "ID") + cmd("CLIENT", "KILL", "ID", "99"))
    assert CloseClient not in kinds(actions) and gate.inflight == 0
    assert cmd("CLIENT", "ID") in upstream(actions)


def test_a_new_uplink_connection_gets_the_reply_mode() -> None:
    core, gate, _ = ready()
    core.client_data(cmd("CLIENT", "REPLY", "OFF"))
    gate.generation += 1
    core.switch_uplink()
    actions = core.client_data(cmd("SET", "a", "1"))
    assert kinds(actions) == [ConnectUplink]
    actions = core.uplink_ready(gate.generation, 8, [], None)
    assert upstream(actions) == REPLY_OFF + cmd("SET", "a", "1")


# -- MONITOR -------------------------------------------------------------------------------------


def test_monitor_lines_are_not_replies_in_any_split() -> None:
    stream = b"+OK\r\n" + MONITOR_LINES + b"+PONG\r\n" + MONITOR_LINES + b"$3\r\nabc\r\n"
    rng = random.Random(7)
    for trial in range(40):
        core, gate, _ = ready()
        core.client_data(cmd("MONITOR") + cmd("PING") + cmd("ECHO", "abc"))
        assert gate.inflight == 3
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randrange(0, 12))) if trial else list(range(1, len(stream)))
        out = b""
        for start, end in zip([0, *cuts], [*cuts, len(stream)]):
            out += to_client(core.uplink_data(stream[start:end]))
        assert out == stream
        assert gate.inflight == 0 and core.monitoring and not core.closing
        assert to_client(core.uplink_data(MONITOR_LINES)) == MONITOR_LINES  # answers nothing, closes nothing


def test_a_second_monitor_gets_no_reply() -> None:
    """Redis ignores MONITOR on a monitoring connection: nothing is owed for it, so a pause can finish."""
    core, gate, _ = ready()
    core.client_data(cmd("MONITOR") + cmd("MONITOR") + cmd("PING"))
    assert gate.inflight == 2
    assert to_client(core.uplink_data(b"+OK\r\n" + MONITOR_LINES + b"+PONG\r\n")) == b"+OK\r\n" + MONITOR_LINES + b"+PONG\r\n"
    assert gate.inflight == 0 and not core.closing


def test_a_refused_monitor_leaves_the_stream_as_it_was() -> None:
    core, gate, _ = ready()
    core.client_data(cmd("MONITOR"))
    core.uplink_data(b"-NOPERM no\r\n")
    assert not core.monitoring and core.specials == 0 and gate.inflight == 0


def test_monitoring_client_reconnects_at_once_on_a_switch_and_monitors_again() -> None:
    core, gate, _ = ready()
    core.client_data(cmd("MONITOR"))
    core.uplink_data(b"+OK\r\n")
    assert core.state.monitor
    gate.generation += 1
    actions = core.switch_uplink()
    assert ConnectUplink in kinds(actions)  # not waiting for a command: the stream goes on


# -- SYNC / PSYNC --------------------------------------------------------------------------------


def test_psync_turns_the_connection_into_a_byte_stream() -> None:
    core, gate, _ = ready()
    actions = core.client_data(cmd("REPLCONF", "capa", "psync2") + cmd("PSYNC", "?", "-1") + b"*3\r\n$8\r\nREPL")
    assert upstream(actions) == cmd("REPLCONF", "capa", "psync2") + cmd("PSYNC", "?", "-1") + b"*3\r\n$8\r\nREPL"
    assert gate.inflight == 0  # a replica holds no pause
    assert upstream(core.client_data(b"CONF\r\n")) == b"CONF\r\n"
    rdb = b"+OK\r\n+FULLRESYNC abc 0\r\n$5\r\nREDIS"  # an RDB payload has no CRLF after it
    assert to_client(core.uplink_data(rdb)) == rdb
    gate.generation += 1
    actions = core.switch_uplink()
    assert CloseClient in kinds(actions)  # the replica resynchronises from the new server


# -- the client closing ------------------------------------------------------------------------------


def test_a_client_that_closes_while_blocked_is_let_go() -> None:
    """Redis frees a client that closes while blocked (redis-py's test_interrupted_command): no in-flight leak."""
    core, gate, _ = ready()
    core.client_data(cmd("BRPOP", "nonexist", "0"))
    assert gate.inflight == 1
    actions = core.client_eof()
    assert CloseClient in kinds(actions) and gate.inflight == 0


# -- a lost uplink ---------------------------------------------------------------------------------


def test_a_lost_uplink_closes_the_client_with_nothing_written() -> None:
    for setup in (b"", cmd("GET", "k"), cmd("SUBSCRIBE", "c")):
        core, gate, _ = ready()
        if setup:
            core.client_data(setup)
        actions = core.uplink_lost("reset by peer")
        assert not any(isinstance(a, WriteClient) for a in actions)
        assert CloseClient in kinds(actions) and gate.inflight == 0


def test_a_lost_stale_idle_uplink_is_replaced_quietly() -> None:
    core, gate, _ = ready()
    gate.generation += 1  # the switch happened; the session has not left its connection yet
    actions = core.uplink_lost("closed")
    assert CloseClient not in kinds(actions)
    assert kinds(core.client_data(cmd("PING"))) == [ConnectUplink]
