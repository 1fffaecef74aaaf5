"""`cmd=switchover mode=copy`: a migration without replication, against real redis-servers and a real proxy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from admin_client import AdminClient
from copy_load import Writers, check_target, dump_differences, fill
from servers import ProxyProcess, RedisServer, wait_until
from switchover_helpers import messages, named_config, over_tls, start, status, wait_phase, wait_result

Factory = Callable[..., Any]

COPY_FIELDS = (
    "keys_scanned", "keys_copied", "bytes_copied", "dirty_keys", "rounds", "verify_checked", "verify_mismatches",
)


def two_servers(redis_factory: Factory, proxy_factory: Factory, **extra: Any) -> tuple[RedisServer, RedisServer, ProxyProcess, AdminClient]:
    old, new = redis_factory(), redis_factory()
    proxy: ProxyProcess = proxy_factory(named_config({"old": old, "new": new}, "old", **extra))
    return old, new, proxy, AdminClient(proxy)


def test_copy_mode_under_eight_writers_loses_nothing(redis_factory: Factory, proxy_factory: Factory) -> None:
    """The issue's done-when: 100,000 keys of every type, 8 writers throughout, nothing lost, no error."""
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    keys = 100_000
    fill(old.client(), keys)
    old.client(db=2).set("in-db-2", "yes")
    writers = Writers([proxy.client(socket_timeout=30) for _ in range(8)], keys).start()
    try:
        wait_until(lambda: writers.progressed([0] * 8), timeout=10, message="writers started")
        start(admin, "new", mode="copy", max_copy_ops=0, max_copy_bytes=0)
        body = wait_result(admin, timeout=240)
        writers.wait_progress("every writer progressed after the switch")
    finally:
        errors = writers.stop()
    assert body["result"] == "done", messages(body)
    assert errors == []
    assert admin.info()["uplink_name"] == "new"
    for name in COPY_FIELDS:
        assert isinstance(body[name], int), name
    assert body["mode"] == "copy" and body["keys_scanned"] >= keys and body["verify_mismatches"] == 0
    assert body["verify_checked"] >= 1000 and body["rounds"] >= 1
    target, source = new.client(), old.client()
    assert check_target(target, writers) == []
    assert dump_differences(source, target, "pre:[1-5]:*") == []  # never touched by the writers
    assert dump_differences(source, target, "large:*") == []
    assert new.client(db=2).get("in-db-2") == b"yes"
    assert target.ttl("pre:4:10") > 3000  # TTLs came along
    print(
        f"\n[copy] keys_copied={body['keys_copied']} bytes={body['bytes_copied']} rounds={body['rounds']}"
        f" held_ms={body['held_ms']} verify_checked={body['verify_checked']}\n" + messages(body)
    )


def test_copy_refuses_a_target_with_keys_and_is_readable(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    new.client().set("already", "here")
    start(admin, "new", mode="copy")
    body = wait_result(admin)
    assert body["result"] == "failed" and "holds 1 key(s)" in body["error"] and "force=true" in body["error"]
    assert admin.info()["uplink_name"] == "old"
    assert proxy.client().ping()


def test_force_empties_what_the_source_lacks(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    old.client().set("a", "1")
    new.client().set("stale", "x")
    new.client(db=5).set("stale5", "x")
    start(admin, "new", mode="copy", force="true")
    body = wait_result(admin)
    assert body["result"] == "done", messages(body)
    assert new.client().keys() == [b"a"] and new.client(db=5).keys() == []


def test_fence_refuse_makes_the_source_refuse_writes(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    old.client().set("a", "1")
    start(admin, "new", mode="copy", fence="refuse")
    body = wait_result(admin)
    assert body["result"] == "done", messages(body)
    with pytest.raises(Exception, match="NOREPLICAS"):
        old.client().set("b", "2")
    assert proxy.client().get("a") == b"1"


def test_flushdb_during_the_copy_is_copied_as_a_whole_database(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    fill(old.client(), 20_000, large=0)
    client = proxy.client()
    start(admin, "new", mode="copy", max_copy_ops=5000)
    wait_phase(admin, "copy")
    time.sleep(0.5)
    client.flushdb()
    client.set("after-flush", "1")
    body = wait_result(admin, timeout=60)
    assert body["result"] == "done", messages(body)
    assert new.client().keys() == [b"after-flush"]


@pytest.mark.parametrize("phase", ["copy", "converge"])
def test_abort_leaves_the_source_serving(redis_factory: Factory, proxy_factory: Factory, phase: str) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    fill(old.client(), 20_000, large=0)
    writers = Writers([proxy.client(socket_timeout=30) for _ in range(4)], 20_000).start()
    try:
        # Slow copying of a fast-changing keyspace: the copy, then converge, take seconds.
        start(admin, "new", mode="copy", max_copy_ops=2000, max_dirty_keys=0, max_hold_ms=5)
        wait_phase(admin, phase, timeout=30)
        metrics = admin.get("/metrics").text
        if phase == "copy":  # seconds long; converge and cutover alternate here
            assert 'redis_proxy_switchover_phase{phase="copy"} 1.0' in metrics
        assert "redis_proxy_switchover_dirty_keys " in metrics and "redis_proxy_switchover_keys_copied " in metrics
        response = admin.cmd("abort-switchover")
        assert response.status_code == 200, response.text
        body = wait_result(admin)
        writers.wait_progress("writers go on after the abort")
    finally:
        errors = writers.stop()
    assert body["result"] == "aborted", messages(body)
    assert errors == []
    info = admin.info()
    assert info["uplink_name"] == "old" and info["state_str"] == "running"
    assert check_target(old.client(), writers) == []


def test_abort_during_the_cutover_leaves_the_source_serving(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    fill(old.client(), 100_000, large=0)
    client = proxy.client(socket_timeout=30)
    # Verifying every key keeps the cutover (clients held) busy for a while. keeps the cutover (clients held) busy for a while.
    start(admin, "new", mode="copy", verify_sample=1_000_000, max_hold_ms=30_000)
    wait_phase(admin, "cutover", timeout=30)
    response = admin.cmd("abort-switchover")
    assert response.status_code == 200, response.text
    body = wait_result(admin)
    assert body["result"] == "aborted", messages(body)
    assert client.set("after", "1") and old.client().get("after") == b"1"
    assert admin.info()["state_str"] == "running"


def test_compare_reports_differences_without_switching(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    a, b = old.client(), new.client()
    for key in ("same", "differs", "only-source", "ttl"):
        a.set(key, "1")
    b.set("same", "1")
    b.set("differs", "2")
    b.set("only-target", "1")
    b.set("ttl", "1")
    a.expire("ttl", 1000)
    response = admin.cmd("compare", to="new")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["missing_on_target"] == 1 and body["missing_on_source"] == 1
    assert body["value_mismatches"] == 1 and body["ttl_mismatches"] == 1 and body["identical"] == 1
    problems = {e["key"]: e["problem"] for e in body["examples"]}
    assert set(problems) == {"differs", "only-source", "only-target", "ttl"}
    assert admin.info()["uplink_name"] == "old"
    assert status(admin)["phase"] == "idle"


LIBRARY = "#!lua name=mylib\nredis.register_function('myincr', function(keys, args) return redis.call('INCR', keys[1]) end)"


def test_scripts_loaded_meanwhile_and_functions_come_along(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    fill(old.client(), 20_000, large=0)
    old.client().function_load(LIBRARY)
    client = proxy.client()
    start(admin, "new", mode="copy", max_copy_ops=10_000)
    wait_phase(admin, "copy")
    sha = client.script_load("return redis.call('INCR', KEYS[1])")
    assert client.evalsha(sha, 1, "by-script") == 1
    with pytest.raises(redis.ResponseError):
        client.eval("this is not lua", 0)  # remembered, refused by the target too: a warning, not a failure
    body = wait_result(admin, timeout=60)
    assert body["result"] == "done", messages(body)
    assert client.evalsha(sha, 1, "by-script") == 2  # on the target now
    assert client.fcall("myincr", 1, "by-function") == 1
    assert "script(s) not loaded on the target" in messages(body)
    assert body["fence"].startswith("this proxy no longer writes to it")


def test_writes_in_other_databases_move_and_swapdb(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    fill(old.client(), 20_000, large=0)
    old.client(db=3).set("in-3", "x")
    client = proxy.client()
    pipe = client.pipeline(transaction=False)
    start(admin, "new", mode="copy", max_copy_ops=10_000)
    wait_phase(admin, "copy")
    time.sleep(0.3)
    pipe.execute_command("SELECT", "1").set("db1-key", "1").execute_command("MOVE", "db1-key", "2")
    pipe.execute_command("SWAPDB", "3", "4").execute_command("SELECT", "0").delete("pre:0:0").set("last", "1")
    pipe.execute()
    body = wait_result(admin, timeout=60)
    assert body["result"] == "done", messages(body)
    assert new.client(db=1).exists("db1-key") == 0 and new.client(db=2).get("db1-key") == b"1"
    assert new.client(db=3).keys() == [] and new.client(db=4).get("in-3") == b"x"
    assert new.client().exists("pre:0:0") == 0 and new.client().get("last") == b"1"


def test_copy_over_tls_with_each_servers_own_password(redis_factory: Factory, proxy_factory: Factory, certs: Any) -> None:
    old = redis_factory(tls=certs, password="pw-old")
    new = redis_factory(tls=certs, password="pw-new")
    proxy: ProxyProcess = proxy_factory(over_tls(named_config({"old": old, "new": new}, "old"), certs))
    admin = AdminClient(proxy)
    client = proxy.client()
    for n in range(500):
        client.set(f"k{n}", n)
    client.hset("h", mapping={"a": 1})
    start(admin, "new", mode="copy")
    body = wait_result(admin)
    assert body["result"] == "done", messages(body)
    assert body["keys_copied"] >= 501 and body["verify_mismatches"] == 0
    assert new.client().get("k499") == b"499" and client.hgetall("h") == {b"a": b"1"}
    compared = admin.cmd("compare", to="old").json()
    assert compared["identical"] == 501 and compared["missing_on_target"] == 0, compared


def test_a_writer_outside_the_proxy_fails_the_verification(redis_factory: Factory, proxy_factory: Factory) -> None:
    """Writes that bypass the proxy are not tracked: the cutover's verification finds them, before the switch."""
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    direct = old.client()
    direct.mset({f"k{n}": "v0" for n in range(2000)})
    start(admin, "new", mode="copy", max_copy_ops=1000, verify_sample=100_000)
    version = 0
    while status(admin)["phase"] in ("preflight", "copy"):
        version += 1
        direct.mset({f"k{n}": f"v{version}" for n in range(2000)})
    body = wait_result(admin)
    assert body["result"] == "failed" and "verification failed" in body["error"], messages(body)
    assert body["verify_mismatches"] > 0 and body["verify_examples"][0]["problem"] == "value differs"
    info = admin.info()
    assert info["uplink_name"] == "old" and info["state_str"] == "running"
    assert proxy.client().get("k0") == f"v{version}".encode()


def test_a_target_fenced_earlier_is_refused_with_the_way_out(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    old.client().set("k", "v")
    new.client().config_set("min-replicas-to-write", 1)
    start(admin, "new", mode="copy")
    body = wait_result(admin)
    assert body["result"] == "failed" and "CONFIG SET min-replicas-to-write 0" in body["error"], body["error"]
    new.client().config_set("min-replicas-to-write", 0)
    new.client().execute_command("CLIENT", "PAUSE", "60000", "WRITE")
    try:
        start(admin, "new", mode="copy")
        body = wait_result(admin)
    finally:
        new.client().execute_command("CLIENT", "UNPAUSE")
    assert body["result"] == "failed" and "CLIENT UNPAUSE" in body["error"], body["error"]
    assert admin.info()["uplink_name"] == "old" and proxy.client().get("k") == b"v"


def test_fields_of_the_other_mode_or_misspelt_are_refused(redis_factory: Factory, proxy_factory: Factory) -> None:
    old, new, proxy, admin = two_servers(redis_factory, proxy_factory)
    for fields, says in (
        ({"mode": "copy", "reverse": "false"}, "reverse apply only to mode=replica"),
        ({"fence": "pause"}, "fence apply only to mode=copy"),
        ({"mode": "copy", "max_copy_op": "5"}, "unknown field(s) max_copy_op"),
    ):
        response = admin.cmd("switchover", to="new", **fields)
        assert response.status_code == 400 and says in response.json()["error"], (fields, response.text)
    assert status(admin)["phase"] == "idle"
