"""Conversation tests of the session core in AUTH pass-through mode (listen.auth "passthrough").

AUTH and HELLO ... AUTH go to Redis; its reply decides. Accepted credentials
are session state, replayed on a new uplink connection instead of the proxy's
own uplink.pass.
"""

from __future__ import annotations

from redis_proxy.config import UplinkConfig
from redis_proxy.credentials import Credentials
from redis_proxy.gate import Gate
from redis_proxy.session.core import SessionCore
from redis_proxy.session.routing import POISON
from redis_proxy.session.types import ConnectUplink, SetAuth, Tracked
from redis_proxy.stats import Stats
from redis_proxy.uplink import SessionState, replay_commands

from test_core import Clock, cmd, to_client, upstream

WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
ALICE = Credentials(b"alice", b"alice-pw")


def passthrough() -> tuple[SessionCore, Gate]:
    """A pass-through core whose first command (unauthenticated, as a direct connection) opened its uplink."""
    gate = Gate(0.0)
    core = SessionCore(gate, Stats(), None, Clock(), passthrough=True)
    actions = core.client_data(cmd("PING"))
    assert any(isinstance(a, ConnectUplink) for a in actions) and not to_client(actions)
    assert upstream(core.uplink_ready(0, 7, [], None)) == cmd("PING")
    core.uplink_data(b"+PONG\r\n")
    return core, gate


def authed() -> tuple[SessionCore, Gate]:
    core, gate = passthrough()
    assert upstream(core.client_data(cmd("AUTH", "alice", "alice-pw"))) == cmd("AUTH", "alice", "alice-pw")
    assert to_client(core.uplink_data(b"+OK\r\n")) == b"+OK\r\n"
    assert core.state.credentials == ALICE
    return core, gate


def test_an_auth_on_a_connection_whose_id_was_refused_learns_it() -> None:
    """The connection was opened before AUTH (CLIENT ID got NOAUTH): the id is asked again once AUTH is sent."""
    gate = Gate(0.0)
    core = SessionCore(gate, Stats(), None, Clock(), passthrough=True)
    core.client_data(cmd("PING"))
    core.uplink_ready(0, None, [], None)
    core.uplink_data(b"-NOAUTH Authentication required.\r\n")
    actions = core.client_data(cmd("AUTH", "alice", "alice-pw") + cmd("GET", "a:1"))
    assert upstream(actions) == cmd("AUTH", "alice", "alice-pw") + cmd("CLIENT", "ID") + cmd("GET", "a:1")
    assert to_client(core.uplink_data(b"+OK\r\n:42\r\n$1\r\nv\r\n")) == b"+OK\r\n$1\r\nv\r\n"
    assert core.uplink_id == 42 and core.ids.uplink_of(core.proxy_id) == (0, 42)
    assert not core.pending and gate.inflight == 0
    assert upstream(core.client_data(cmd("AUTH", "bob", "bob-pw"))) == cmd("AUTH", "bob", "bob-pw")  # known now


def test_nothing_is_refused_before_auth_redis_decides() -> None:
    gate = Gate(0.0)
    core = SessionCore(gate, Stats(), None, Clock(), passthrough=True)
    assert not core.requests.unauthenticated  # Redis applies its own pre-AUTH limits
    core.client_data(cmd("GET", "k"))
    actions = core.uplink_ready(0, 7, [], None)
    assert upstream(actions) == cmd("GET", "k")
    noauth = b"-NOAUTH Authentication required.\r\n"
    assert to_client(core.uplink_data(noauth)) == noauth  # Redis's own, as directly


def test_accepted_auth_becomes_the_sessions_credentials_and_is_replayed_first() -> None:
    core, gate = authed()
    core.client_data(cmd("SELECT", "3"))
    core.uplink_data(b"+OK\r\n")
    gate.generation += 1
    assert any(isinstance(a, ConnectUplink) for a in core.switch_uplink() + core.client_data(cmd("GET", "a:1")))
    # The new connection: the client's AUTH first, never the proxy's uplink.pass.
    config = UplinkConfig(addr="127.0.0.1:6379", password="proxy-pw", user="proxy")
    assert replay_commands(config, core.state, passthrough=True)[:2] == [
        [b"AUTH", b"alice", b"alice-pw"], [b"SELECT", b"3"]
    ]
    assert replay_commands(config, SessionState(), passthrough=True) == [[b"CLIENT", b"ID"]]
    assert replay_commands(config, core.state)[0] == [b"AUTH", b"proxy", b"proxy-pw"]  # proxy mode


def test_auth_with_the_password_only_is_the_default_user_and_replayed_as_sent() -> None:
    core, _ = passthrough()
    core.client_data(cmd("AUTH", "pw"))
    core.uplink_data(b"+OK\r\n")
    assert core.state.credentials == Credentials(None, b"pw")
    assert core.state.credentials.user_name == "default"
    assert replay_commands(UplinkConfig(addr="h:1"), core.state, True)[0] == [b"AUTH", b"pw"]


def test_refused_auth_passes_through_and_keeps_the_previous_identity() -> None:
    core, _ = authed()
    assert upstream(core.client_data(cmd("AUTH", "bob", "wrong"))) == cmd("AUTH", "bob", "wrong")
    assert to_client(core.uplink_data(WRONGPASS)) == WRONGPASS
    assert core.state.credentials == ALICE


def test_hello_auth_goes_upstream_as_sent_and_its_reply_decides() -> None:
    core, _ = authed()
    hello = cmd("HELLO", "3", "AUTH", "bob", "bob-pw", "SETNAME", "w1")
    assert upstream(core.client_data(hello)) == hello
    assert core.resp3  # commands behind it are framed as RESP3 already
    reply = b"%1\r\n$5\r\nproto\r\n:3\r\n"
    assert to_client(core.uplink_data(reply)) == reply
    assert core.state.credentials == Credentials(b"bob", b"bob-pw") and core.state.name == b"w1"
    # Refused: the protocol goes back, the identity stays bob.
    core.client_data(cmd("HELLO", "2", "AUTH", "alice", "nope"))
    assert to_client(core.uplink_data(WRONGPASS)) == WRONGPASS
    assert core.resp3 and core.state.credentials == Credentials(b"bob", b"bob-pw")


def test_auth_inside_multi_is_refused_and_aborts_the_transaction() -> None:
    """Whether a queued AUTH succeeded is one element of EXEC's reply, which the proxy does not read."""
    core, _ = authed()
    actions = core.client_data(cmd("MULTI") + cmd("AUTH", "bob", "bob-pw") + cmd("EXEC"))
    assert upstream(actions) == cmd("MULTI") + POISON + cmd("EXEC")
    out = to_client(core.uplink_data(
        b"+OK\r\n-ERR unknown command\r\n-EXECABORT Transaction discarded because of previous errors.\r\n"
    ))
    assert b"AUTH inside MULTI is not supported" in out and out.endswith(b"-EXECABORT Transaction discarded because of previous errors.\r\n")
    assert core.state.credentials == ALICE


def test_auth_with_a_wrong_number_of_arguments_is_answered_by_redis() -> None:
    core, _ = authed()
    assert upstream(core.client_data(cmd("AUTH"))) == cmd("AUTH")
    error = b"-ERR wrong number of arguments for 'auth' command\r\n"
    assert to_client(core.uplink_data(error)) == error
    assert core.state.credentials == ALICE


def test_reset_deauthenticates_even_with_an_auth_pipelined_before_it() -> None:
    core, _ = authed()
    actions = core.client_data(cmd("AUTH", "bob", "bob-pw") + cmd("SELECT", "2") + cmd("RESET"))
    # No AUTH of the proxy's own behind RESET: the connection is the default user's again, as directly.
    assert upstream(actions) == cmd("AUTH", "bob", "bob-pw") + cmd("SELECT", "2") + cmd("RESET")
    assert to_client(core.uplink_data(b"+OK\r\n+OK\r\n+RESET\r\n")) == b"+OK\r\n+OK\r\n+RESET\r\n"
    assert core.state.credentials is None and core.state.db == 0


def test_an_auth_sent_after_reset_counts() -> None:
    core, _ = authed()
    core.client_data(cmd("RESET") + cmd("AUTH", "bob", "bob-pw"))
    core.uplink_data(b"+RESET\r\n+OK\r\n")
    assert core.state.credentials == Credentials(b"bob", b"bob-pw")


def test_the_password_never_shows_in_a_repr() -> None:
    core, _ = authed()
    core.client_data(cmd("AUTH", "bob", "s3cret-pw"))
    pending = list(core.pending)
    assert isinstance(pending[0], Tracked) and isinstance(pending[0].effect, SetAuth)
    for shown in (repr(core.state), str(core.state.credentials), repr(pending), repr(SetAuth(ALICE))):
        assert "alice-pw" not in shown and "s3cret-pw" not in shown
    assert "alice" in repr(core.state)  # the user name is not a secret
