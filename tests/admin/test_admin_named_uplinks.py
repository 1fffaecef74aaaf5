"""Named uplinks: `cmd=switch to=NAME` and how a reload treats a runtime switch, against real servers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from admin_client import AdminClient
from servers import RedisServer, free_port, proxy_config, wait_until


def named_config(**uplinks: RedisServer | str) -> dict[str, Any]:
    sections = {name: {"addr": s.addr if isinstance(s, RedisServer) else s} for name, s in uplinks.items()}
    config = proxy_config(next(iter(sections.values()))["addr"])
    config["uplinks"] = sections
    config["uplink"] = next(iter(sections))
    return config


def test_switch_to_a_named_uplink_moves_clients(
    redis_factory: Callable[..., RedisServer], admin_factory: Callable[..., AdminClient]
) -> None:
    a, b = redis_factory(), redis_factory()
    admin = admin_factory(named_config(a=a, b=b))
    client = admin.proxy.client()
    client.set("where", "a")
    info = admin.info()
    assert info["uplink"] == a.addr and info["uplink_name"] == "a"
    reply = admin.ok("switch", to="b")
    assert reply["uplink"] == "b" and reply["held_ms"] >= 0
    assert client.get("where") is None  # the same connection now reads b
    client.set("where", "b")
    assert b.client().get("where") == b"b" and a.client().get("where") == b"a"
    info = admin.info()
    assert info["uplink"] == b.addr and info["uplink_name"] == "b"
    assert admin.ok("switch", to="b")["switched"] is False  # already there


def test_switch_refuses_unknown_names_unreachable_targets_and_replicas(
    redis_factory: Callable[..., RedisServer], admin_factory: Callable[..., AdminClient]
) -> None:
    a, replica = redis_factory(), redis_factory()
    host, port = a.addr.rsplit(":", 1)
    replica.client().replicaof(host, port)
    dead = f"127.0.0.1:{free_port()}"
    admin = admin_factory(named_config(a=a, dead=dead, replica=replica))
    client = admin.proxy.client()

    response = admin.cmd("switch", to="nope")
    assert response.status_code == 400 and "no uplink named 'nope'" in response.json()["error"]
    assert admin.cmd("switch").status_code == 400

    response = admin.cmd("switch", to="dead")
    assert response.status_code == 502, response.text
    assert "uplink dead refused" in response.json()["error"]
    response = admin.cmd("switch", to="replica")
    assert response.status_code == 502 and "replica" in response.json()["error"]
    info = admin.info()
    assert info["uplink_name"] == "a" and info["state_str"] == "running"
    assert client.ping() is True


def test_a_reload_keeps_a_runtime_switch_unless_the_file_changed_its_uplink(
    redis_factory: Callable[..., RedisServer], admin_factory: Callable[..., AdminClient]
) -> None:
    a, b, c = redis_factory(), redis_factory(), redis_factory()
    config = named_config(a=a, b=b, c=c)
    admin = admin_factory(config)
    admin.ok("switch", to="b")
    # The file still says "a", as when it was loaded: the runtime choice stays.
    reply = admin.ok("reload")
    assert reply["switched"] is False and admin.info()["uplink_name"] == "b"
    wait_until(lambda: "keeping the runtime uplink 'b'" in admin.proxy.log())
    # The file now says "c": that is a new choice, applied.
    admin.proxy.rewrite_config({**config, "uplink": "c"})
    reply = admin.ok("reload")
    assert reply["switched"] is True and admin.info()["uplink_name"] == "c"
    # Switched back at runtime, then a file that drops the active uplink: refused, nothing changes.
    admin.ok("switch", to="a")
    admin.proxy.rewrite_config({**config, "uplinks": {"b": config["uplinks"]["b"], "c": config["uplinks"]["c"]}, "uplink": "c"})
    response = admin.cmd("reload")
    assert response.status_code == 409
    assert "the active uplink 'a' (switched to at runtime) is not in the new file's uplinks" in response.json()["error"]
    assert admin.info()["uplink_name"] == "a" and admin.info()["state_str"] == "running"
