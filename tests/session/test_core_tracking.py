"""Conversation tests of the core for client ids and CLIENT TRACKING (issue 8): bytes and events in, actions out."""

from __future__ import annotations

import random

from redis_proxy.config import UplinkConfig
from redis_proxy.gate import Gate
from redis_proxy.session.client_ids import NO_SUCH_CLIENT, PROXY_ID_BASE, ClientIds
from redis_proxy.session.core import SessionCore
from redis_proxy.session.tracking import INVALIDATE_ALL_RESP2, INVALIDATE_ALL_RESP3, Tracking
from redis_proxy.session.types import CloseClient, CloseUplink, ConnectUplink
from redis_proxy.stats import Stats
from redis_proxy.uplink import SessionState, replay_commands

from test_core import Clock, cmd, kinds, to_client, upstream

def hello3(client_id: int) -> bytes:
    return (
        b"%%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"
        b"$2\r\nid\r\n:%d\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
    ) % client_id
SUBSCRIBED_INVALIDATE = b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n"


def session(gate: Gate, ids: ClientIds, uplink_id: int, clock: Clock | None = None) -> SessionCore:
    """A core with a ready uplink connection whose CLIENT ID on the server is `uplink_id`."""
    core = SessionCore(gate, Stats(), None, clock or Clock(), ids=ids)
    assert kinds(core.client_data(cmd("PING"))) == [ConnectUplink]
    core.uplink_ready(gate.generation, uplink_id, [], None)
    assert to_client(core.uplink_data(b"+PONG\r\n")) == b"+PONG\r\n"
    return core


def fed_in_splits(core: SessionCore, data: bytes, rng: random.Random) -> bytes:
    out, i = b"", 0
    while i < len(data):
        j = i + rng.randint(1, 7)
        out += to_client(core.uplink_data(data[i:j]))
        i = j
    return out


def test_client_id_and_hello_show_the_proxy_id_in_any_split() -> None:
    for seed in range(30):
        rng = random.Random(seed)
        ids, gate = ClientIds(), Gate(0.0)
        for _ in range(3):
            ids.register()  # the proxy id differs from the uplink's
        core = session(gate, ids, 2107)
        assert core.proxy_id == PROXY_ID_BASE + 4
        actions = core.client_data(cmd("CLIENT", "ID") + cmd("GET", "k") + cmd("HELLO", "3") + cmd("client", "id"))
        assert upstream(actions) == cmd("CLIENT", "ID") + cmd("GET", "k") + cmd("HELLO", "3") + cmd("client", "id")
        replies = b":2107\r\n$1\r\nv\r\n" + hello3(2107) + b":2107\r\n"
        own = PROXY_ID_BASE + 4
        assert fed_in_splits(core, replies, rng) == b":%d\r\n$1\r\nv\r\n" % own + hello3(own) + b":%d\r\n" % own
        assert not core.pending and core.state.resp3


def test_redirect_ids_are_mapped_both_ways() -> None:
    ids, gate = ClientIds(), Gate(0.0)
    target = session(gate, ids, 50)
    tracker = session(gate, ids, 51)
    actions = tracker.client_data(cmd("CLIENT", "TRACKING", "ON", "REDIRECT", str(target.proxy_id), "OPTIN"))
    assert upstream(actions) == cmd("CLIENT", "TRACKING", "ON", "REDIRECT", "50", "OPTIN")
    assert target.pushes and tracker.pushes  # both now frame replies exactly
    tracker.uplink_data(b"+OK\r\n")
    assert tracker.state.tracking == Tracking(redirect=target.proxy_id, optin=True)
    assert ids.is_target(target.proxy_id)
    actions = tracker.client_data(cmd("CLIENT", "GETREDIR") + cmd("CLIENT", "TRACKINGINFO"))
    info = b"*6\r\n$5\r\nflags\r\n*2\r\n$2\r\non\r\n$5\r\noptin\r\n$8\r\nredirect\r\n:50\r\n$8\r\nprefixes\r\n*0\r\n"
    out = to_client(tracker.uplink_data(b":50\r\n" + info))
    assert out == b":%d\r\n" % target.proxy_id + info.replace(b":50\r\n", b":%d\r\n" % target.proxy_id)
    # Proxy ids that name no session with a connection on this server: Redis's own error.
    gone = str(PROXY_ID_BASE + 999)
    actions = tracker.client_data(cmd("CLIENT", "TRACKING", "ON", "REDIRECT", gone) + cmd("CLIENT", "KILL", "ID", gone))
    assert upstream(actions) == cmd("CLIENT", "TRACKING", "ON", "REDIRECT", NO_SUCH_CLIENT) + cmd(
        "CLIENT", "KILL", "ID", NO_SUCH_CLIENT
    )
    tracker.uplink_data(b"-ERR The client ID you want redirect to does not exist\r\n-ERR No such client\r\n")
    assert tracker.state.tracking == Tracking(redirect=target.proxy_id, optin=True)  # an error changes nothing
    actions = tracker.client_data(
        cmd("CLIENT", "UNBLOCK", str(target.proxy_id), "ERROR") + cmd("CLIENT", "LIST", "ID", str(tracker.proxy_id), "0")
    )
    assert upstream(actions) == cmd("CLIENT", "UNBLOCK", "50", "ERROR") + cmd("CLIENT", "LIST", "ID", "51", "0")
    # An id below the proxy's range is a connection that is not the proxy's (CLIENT LIST shows it as it is).
    actions = tracker.client_data(cmd("CLIENT", "KILL", "ID", "7") + cmd("CLIENT", "TRACKING", "OFF", "REDIRECT", "7"))
    assert upstream(actions) == cmd("CLIENT", "KILL", "ID", "7") + cmd("CLIENT", "TRACKING", "OFF", "REDIRECT", "7")
    # OFF looks its REDIRECT id up too (Redis checks it exists), so it is mapped as well.
    actions = tracker.client_data(cmd("CLIENT", "TRACKING", "OFF", "REDIRECT", str(target.proxy_id)))
    assert upstream(actions) == cmd("CLIENT", "TRACKING", "OFF", "REDIRECT", "50")


def test_client_info_and_list_show_proxy_ids() -> None:
    ids, gate = ClientIds(), Gate(0.0)
    other = session(gate, ids, 50)
    core = session(gate, ids, 51)
    core.client_data(cmd("CLIENT", "INFO") + cmd("CLIENT", "LIST"))
    info = b"id=51 addr=1.2.3.4:5 fd=8 name= redir=50 resp=3\n"
    lines = b"id=50 addr=x redir=-1 resp=2\nid=51 addr=y redir=50 resp=3\nid=7 addr=z redir=0 resp=2\n"
    out = to_client(core.uplink_data(b"=%d\r\ntxt:%s\r\n" % (len(info) + 4, info) + b"$%d\r\n%s\r\n" % (len(lines), lines)))
    p, o = core.proxy_id, other.proxy_id
    new_info = b"txt:id=%d addr=1.2.3.4:5 fd=8 name= redir=%d resp=3\n" % (p, o)
    new_lines = b"id=%d addr=x redir=-1 resp=2\nid=%d addr=y redir=%d resp=3\nid=7 addr=z redir=0 resp=2\n" % (o, p, o)
    assert out == b"=%d\r\n%s\r\n" % (len(new_info), new_info) + b"$%d\r\n%s\r\n" % (len(new_lines), new_lines)


def test_resp3_tracking_client_gets_the_flush_at_a_switch_and_tracking_is_replayed() -> None:
    """The issue's done-when, in the core: cache a key, switch, the client is told to drop everything."""
    ids, gate = ClientIds(), Gate(0.0)
    core = session(gate, ids, 9)
    core.client_data(cmd("HELLO", "3") + cmd("CLIENT", "TRACKING", "ON", "NOLOOP"))
    core.uplink_data(hello3(9) + b"+OK\r\n")
    assert upstream(core.client_data(cmd("GET", "k"))) == cmd("GET", "k")
    # An invalidation push in the middle of pipelined replies answers nothing.
    core.client_data(cmd("GET", "a") + cmd("GET", "b"))
    push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
    data = b"$1\r\nv\r\n" + b"$1\r\n1\r\n" + push + b"_\r\n"
    assert to_client(core.uplink_data(data)) == data and not core.pending
    gate.generation += 1
    actions = core.switch_uplink()
    assert kinds(actions) == [CloseUplink, type(actions[1]), ConnectUplink]
    assert to_client(actions) == INVALIDATE_ALL_RESP3
    state = SessionState(resp3=True, tracking=core.state.tracking)
    assert replay_commands(UplinkConfig(addr="127.0.0.1:6379"), state)[:2] == [
        [b"HELLO", b"3"], [b"CLIENT", b"TRACKING", b"ON", b"NOLOOP"],
    ]
    actions = core.uplink_ready(1, 12, [], None)
    assert upstream(core.client_data(cmd("GET", "k"))) == cmd("GET", "k")


def test_redirect_target_subscribed_in_resp2_gets_the_flush_message() -> None:
    ids, gate = ClientIds(), Gate(0.0)
    target = session(gate, ids, 20)
    target.client_data(cmd("SUBSCRIBE", "__redis__:invalidate"))
    target.uplink_data(SUBSCRIBED_INVALIDATE)
    tracker = session(gate, ids, 21)
    tracker.client_data(cmd("CLIENT", "TRACKING", "ON", "REDIRECT", str(target.proxy_id)))
    tracker.uplink_data(b"+OK\r\n")
    gate.generation += 1
    tracker_actions = tracker.switch_uplink()
    assert to_client(tracker_actions) == b"" and ConnectUplink in kinds(tracker_actions)  # tracking kept on
    actions = target.switch_uplink()
    assert to_client(actions) == INVALIDATE_ALL_RESP2 and ConnectUplink in kinds(actions)


def test_tracking_options_replay() -> None:
    state = SessionState(tracking=Tracking(redirect=3, bcast=True, noloop=True, prefixes=(b"a", b"", b"b")))
    commands = replay_commands(UplinkConfig(addr="127.0.0.1:6379"), state, redirect=77)
    assert commands[:2] == [
        [b"CLIENT", b"TRACKING", b"ON", b"REDIRECT", b"77", b"NOLOOP", b"BCAST", b"PREFIX", b"a", b"PREFIX", b"b"],
        [b"CLIENT", b"TRACKING", b"ON", b"REDIRECT", b"77", b"NOLOOP", b"BCAST"],
    ]
    assert replay_commands(UplinkConfig(addr="127.0.0.1:6379"), state, redirect=None)[1] == [b"CLIENT", b"TRACKING", b"ON", b"NOLOOP", b"BCAST"]
    optin = SessionState(tracking=Tracking(optin=True))
    assert replay_commands(UplinkConfig(addr="127.0.0.1:6379"), optin)[:2] == [
        [b"CLIENT", b"TRACKING", b"ON", b"OPTIN"], [b"CLIENT", b"ID"],  # CACHING YES comes after the subscriptions
    ]


def test_optin_gets_caching_yes_after_the_whole_handshake() -> None:
    """Redis forgets CLIENT CACHING yes after any non-CLIENT command (a replayed SUBSCRIBE too): it goes last."""
    ids, gate = ClientIds(), Gate(0.0)
    core = session(gate, ids, 5)
    core.client_data(cmd("HELLO", "3") + cmd("CLIENT", "TRACKING", "ON", "OPTIN") + cmd("SUBSCRIBE", "ch"))
    core.uplink_data(hello3(5) + b"+OK\r\n>3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
    gate.generation += 1
    core.switch_uplink()
    actions = core.uplink_ready(gate.generation, 6, [], None)
    assert upstream(actions) == cmd("CLIENT", "CACHING", "YES")
    assert to_client(core.uplink_data(b"+OK\r\n")) == b""  # the proxy's


def test_prefixes_accumulate_and_off_or_reset_clears() -> None:
    ids, gate = ClientIds(), Gate(0.0)
    core = session(gate, ids, 5)
    core.client_data(cmd("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a") + cmd("CLIENT", "TRACKING", "on", "bcast", "prefix", "b"))
    core.uplink_data(b"+OK\r\n+OK\r\n")
    assert core.state.tracking == Tracking(bcast=True, prefixes=(b"a", b"b"))
    core.client_data(cmd("CLIENT", "TRACKING", "OFF"))
    core.uplink_data(b"+OK\r\n")
    assert core.state.tracking is None
    core.client_data(cmd("CLIENT", "TRACKING", "ON") + cmd("RESET"))
    core.uplink_data(b"+OK\r\n+RESET\r\n")
    assert core.state.tracking is None


def test_tracking_client_is_closed_when_its_uplink_is_lost() -> None:
    ids, gate = ClientIds(), Gate(0.0)
    core = session(gate, ids, 5)
    core.client_data(cmd("CLIENT", "TRACKING", "ON"))
    core.uplink_data(b"+OK\r\n")
    assert CloseClient in kinds(core.uplink_lost("gone"))
    assert ids.uplink_of(core.proxy_id) == (0, None)
    core.client_lost()
    assert not ids.alive(core.proxy_id)
