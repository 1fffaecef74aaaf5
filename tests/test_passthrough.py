"""AUTH pass-through mode (listen.auth "passthrough", issue 8) against real redis-servers.

Every application authenticates as its own ACL user on Redis, through the
proxy, and keeps exactly its permissions across a switch to another server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import hiredis
import pytest
import redis

from inproc import InProcProxy, RawClient, inproc_proxy  # noqa: F401
from redis_proxy.admin import metrics, state
from redis_proxy.config import ConfigError, parse_config
from redis_proxy.controller import ControlError
from servers import RedisServer, wait_until

Factory = Callable[..., Any]

ADMIN_PW = "admin-pw-0"  # requirepass: the default user's password, and the proxy's own uplink.pass
SECRETS = ("alice-pw-1", "bob-pw-2", "wrong-pw-3", ADMIN_PW)


def add_users(server: RedisServer, *names: str) -> None:
    """alice may only GET/SET a:* keys, bob only b:* keys."""
    rules = {
        "alice": ["on", ">alice-pw-1", "~a:*", "+get", "+set"],
        "bob": ["on", ">bob-pw-2", "~b:*", "+get", "+set"],
    }
    for name in names or tuple(rules):
        assert server.client().execute_command("ACL", "SETUSER", name, "reset", *rules[name]) == b"OK"


def config_for(server: RedisServer, **extra: Any) -> dict[str, Any]:
    return {
        "uplink": {"addr": server.addr, "pass": ADMIN_PW},
        "listen": {"addr": "127.0.0.1:0", "auth": "passthrough"},
        "read_time_limit_ms": 5000,
        **extra,
    }


def switch_config(proxy: InProcProxy, server: RedisServer) -> dict[str, Any]:
    config = json.loads(json.dumps(proxy.config))
    config["uplink"]["addr"] = server.addr
    return config


def nopass(fn: Callable[[], Any]) -> str:
    with pytest.raises(redis.exceptions.NoPermissionError) as info:
        fn()
    return str(info.value)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text


def test_two_acl_users_keep_their_permissions_across_a_switch(
    redis_factory: Factory, inproc_proxy: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="redis_proxy")
    old, new = redis_factory(password=ADMIN_PW), redis_factory(password=ADMIN_PW)
    add_users(old)
    proxy = inproc_proxy(config_for(old, log_messages=True))
    alice = proxy.client(username="alice", password="alice-pw-1", single_connection_client=True)
    bob = proxy.raw()
    assert bob.call("HELLO", "3", "AUTH", "bob", "bob-pw-2")[b"proto"] == 3

    def permissions() -> None:
        assert alice.set("a:1", "x") is True and alice.get("a:1") == b"x"
        refused = nopass(lambda: alice.set("b:x", "y"))
        assert "NOPERM" in refused or "permission" in refused  # redis-py strips the NOPERM prefix
        assert bob.call("SET", "b:1", "y") == b"OK"
        denied = bob.call("SET", "a:x", "z")
        assert isinstance(denied, hiredis.ReplyError) and str(denied).startswith("NOPERM")

    permissions()
    direct = old.client(username="alice", password="alice-pw-1")
    assert nopass(lambda: direct.set("b:x", "y")) == nopass(lambda: alice.set("b:x", "y"))  # as directly

    add_users(new)  # the same users, set on the target with ACL SETUSER
    proxy.rewrite_config(switch_config(proxy, new))
    checked = proxy.verify()
    assert "session users accepted (alice, bob)" in checked
    assert proxy.reload()["switched"] is True
    permissions()
    # Each client is its own user on the new server (no proxy identity in between).
    users = {c["user"] for c in new.client().client_list()}
    assert {"alice", "bob"} <= users
    assert new.client().get("a:1") == b"x" and new.client().get("b:1") == b"y"
    assert nopass(lambda: new.client(username="alice", password="alice-pw-1").set("b:x", "y")) == nopass(
        lambda: alice.set("b:x", "y")
    )
    # Nothing was shown in the clear: logs (log_messages on), info.json, metrics.
    assert "AUTH [arguments removed]" in caplog.text or "HELLO [arguments removed]" in caplog.text
    assert_no_secret(caplog.text)
    assert_no_secret(json.dumps(proxy.info(), default=str))
    for shown in (state.info(proxy.proxy), state.legacy_status(proxy.proxy)):
        assert_no_secret(json.dumps(shown, default=str))
    assert_no_secret(proxy.run(lambda: metrics.render(metrics.make_registry(proxy.proxy)))[0].decode())
    assert_no_secret(repr([s.core.state for s in proxy.proxy.sessions]))


def test_verify_and_reload_report_users_the_target_would_refuse(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(password=ADMIN_PW), redis_factory(password=ADMIN_PW)
    add_users(old)
    proxy = inproc_proxy(config_for(old))
    alice = proxy.client(username="alice", password="alice-pw-1", single_connection_client=True)
    bob = proxy.client(username="bob", password="bob-pw-2", single_connection_client=True)
    default = proxy.client(password=ADMIN_PW, single_connection_client=True)  # AUTH <password>: user "default"
    assert alice.get("a:k") is None and bob.get("b:k") is None and default.ping()  # each authenticated
    add_users(new, "alice")
    new.client().execute_command("ACL", "SETUSER", "alice", "resetpass", ">another-pw")
    proxy.rewrite_config(switch_config(proxy, new))
    with pytest.raises(ControlError) as info:
        proxy.verify()
    message = str(info.value)
    assert "user 'bob' does not exist on " + new.addr in message
    assert "user 'alice' does not accept the password its sessions use" in message
    assert "'default'" not in message  # requirepass is the same on both servers
    assert_no_secret(message)
    # A reload refuses before any client is held; nothing changes.
    with pytest.raises(ControlError, match="user 'bob' does not exist"):
        proxy.reload()
    assert proxy.info()["uplink"] == old.addr and proxy.state() == "running"
    assert alice.set("a:k", "v") and bob.set("b:k", "v")
    # Fixed on the target: verify passes and the switch goes through.
    add_users(new)
    assert "session users accepted (alice, bob, default)" in proxy.verify()
    assert proxy.reload()["switched"] is True
    assert alice.get("a:k") is None and bob.set("b:k", "w") and default.dbsize() == 1


def test_wrong_password_passes_redis_wrongpass_through_and_keeps_the_identity(
    redis_factory: Factory, inproc_proxy: Factory
) -> None:
    old, new = redis_factory(password=ADMIN_PW), redis_factory(password=ADMIN_PW)
    add_users(old)
    add_users(new)
    proxy = inproc_proxy(config_for(old))
    raw = proxy.raw()
    assert raw.call("AUTH", "alice", "alice-pw-1") == b"OK"
    wrong = raw.call("AUTH", "bob", "wrong-pw-3")
    direct = RawClient(socket.create_connection(("127.0.0.1", old.port), timeout=10))
    try:
        assert str(wrong) == str(direct.call("AUTH", "bob", "wrong-pw-3"))  # Redis's own WRONGPASS
    finally:
        direct.close()
    assert str(wrong).startswith("WRONGPASS")
    assert raw.call("SET", "a:k", "v") == b"OK"  # still alice
    assert str(raw.call("SET", "b:k", "v")).startswith("NOPERM")
    proxy.rewrite_config(switch_config(proxy, new))
    assert proxy.reload()["switched"] is True
    assert raw.call("SET", "a:k", "v") == b"OK"  # alice on the new server too
    assert str(raw.call("SET", "b:k", "v")).startswith("NOPERM")


def test_requirepass_without_auth_gets_redis_own_noauth(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory(password=ADMIN_PW)
    proxy = inproc_proxy(config_for(server))
    raw = proxy.raw()
    noauth = raw.call("GET", "k")
    assert isinstance(noauth, hiredis.ReplyError) and str(noauth).startswith("NOAUTH")
    # Not the proxy's uplink.pass: the client's connection is its own.
    assert raw.call("AUTH", ADMIN_PW) == b"OK" and raw.call("GET", "k") is None
    assert raw.call("RESET") == b"RESET"  # de-authenticates, as directly
    assert str(raw.call("GET", "k")).startswith("NOAUTH")


def test_passthrough_without_requirepass_works_without_auth(redis_factory: Factory, inproc_proxy: Factory) -> None:
    server = redis_factory()
    proxy = inproc_proxy({"uplink": {"addr": server.addr}, "listen": {"addr": "127.0.0.1:0", "auth": "passthrough"}})
    client = proxy.client(single_connection_client=True)
    assert client.set("k", "v") and client.get("k") == b"v"
    assert proxy.verify().endswith("session users accepted (default (no AUTH))")
    # A target whose default user needs a password would refuse these sessions: said before any switch.
    target = redis_factory(password=ADMIN_PW)
    proxy.rewrite_config({**proxy.config, "uplink": {"addr": target.addr, "pass": ADMIN_PW}})
    with pytest.raises(ControlError, match="1 live session that never sent AUTH would get NOAUTH after a switch"):
        proxy.verify()


def test_an_auth_after_the_connection_opened_learns_its_id(redis_factory: Factory, inproc_proxy: Factory) -> None:
    """With requirepass, the connection opens before AUTH (its CLIENT ID refused): ids still map after AUTH."""
    server = redis_factory(password=ADMIN_PW)
    for name in ("alice", "bob"):
        server.client().execute_command("ACL", "SETUSER", name, "on", f">{name}-pw", "~*", "&*", "+@all")
    proxy = inproc_proxy(config_for(server, read_time_limit_ms=0))
    target, tracker = proxy.raw(), proxy.raw()
    for raw in (target, tracker):
        assert str(raw.call("PING")).startswith("NOAUTH")  # the uplink connection is open, unauthenticated
    assert target.call("AUTH", "bob", "bob-pw") == b"OK"
    target_id = target.call("CLIENT", "ID")
    assert target.call("CLIENT", "INFO").startswith(b"id=%d " % target_id)
    assert target.call("SUBSCRIBE", "__redis__:invalidate")[0] == b"subscribe"
    assert tracker.call("AUTH", "alice", "alice-pw") == b"OK"
    assert tracker.call("CLIENT", "TRACKING", "ON", "REDIRECT", target_id) == b"OK"
    assert tracker.call("GET", "a:1") is None
    server.client(password=ADMIN_PW).set("a:1", "changed")
    assert target.read(timeout=5) == [b"message", b"__redis__:invalidate", [b"a:1"]]
    blocked = proxy.raw()
    assert blocked.call("AUTH", "alice", "alice-pw") == b"OK"
    blocked.send(("BLPOP", "a:list", "0"))
    wait_until(lambda: proxy.info()["active_requests"] == 1, timeout=5)
    proxy.pause_and_wait(5)  # the BLPOP is unblocked on the server (CLIENT UNBLOCK needs its id)
    proxy.unpause()


def test_passthrough_with_listen_pass_is_a_config_error() -> None:
    base = {"uplink": {"addr": "127.0.0.1:6379"}}
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps({**base, "listen": {"addr": "127.0.0.1:7010", "pass": "s3cret", "auth": "passthrough"}}))
    assert info.value.problems == [
        'listen.pass: must not be set with auth "passthrough": clients authenticate to Redis itself '
        '(remove listen.pass, or set listen.auth to "proxy")'
    ]
    assert "s3cret" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps({**base, "listen": {"addr": "127.0.0.1:7010", "auth": "pass-through"}}))
    assert info.value.problems == ["listen.auth: must be 'proxy' or 'passthrough'"]
    config = parse_config(json.dumps({**base, "listen": {"addr": "127.0.0.1:7010"}}))
    assert config.listen.auth == "proxy"
    passthrough = parse_config(json.dumps({**base, "listen": {"addr": "127.0.0.1:7010", "auth": "passthrough"}}))
    assert config.listen_addresses_changed(passthrough) == ["listen.auth cannot change on reload (proxy -> passthrough)"]
