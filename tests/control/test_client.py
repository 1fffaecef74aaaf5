"""The control-plane client against real servers: credentials, TLS, errors that name the server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from redis_proxy.config import UplinkConfig
from redis_proxy.control.client import ControlPlaneError, call, control_client, parse_replication, replication
from servers import RedisServer, free_port, wait_until


def ask(uplink: UplinkConfig, *command: Any) -> Any:
    async def run() -> Any:
        client = control_client(uplink)
        try:
            if command:
                return await call(client, "srv", *command)
            return await replication(client, "srv")
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_replication_of_a_master_and_its_replica(redis_factory: Callable[..., RedisServer]) -> None:
    master, replica = redis_factory(), redis_factory()
    replica.client().replicaof("127.0.0.1", master.port)
    wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up", timeout=20)
    master.client().set("k", "v")
    # The master lists a new replica as waiting until its first acknowledgement.
    wait_until(lambda: master.client().info("replication")["slave0"]["state"] == "online", timeout=20)
    repl = ask(UplinkConfig(addr=master.addr))
    assert repl.is_master and repl.offset > 0 and len(repl.replicas) == 1
    entry = repl.replicas[0]
    assert entry.addr == f"127.0.0.1:{replica.port}" and entry.port == replica.port and entry.state == "online"
    other = ask(UplinkConfig(addr=replica.addr))
    assert not other.is_master and other.link_status == "up" and other.master_addr == master.addr
    assert other.replid == repl.replid


def test_credentials_and_tls_are_those_of_the_uplink(redis_factory: Callable[..., RedisServer], certs: Any) -> None:
    server = redis_factory(password="s3cret", tls=certs)
    uplink = UplinkConfig.model_validate(
        {"addr": server.addr, "pass": "s3cret", "tls": True, "cacertfile": str(certs.ca_cert)}
    )
    assert ask(uplink, "PING") is True
    wrong = uplink.model_copy(update={"password": "nope"})
    with pytest.raises(ControlPlaneError, match="srv: PING failed"):
        ask(wrong, "PING")


def test_an_unreachable_server_is_named() -> None:
    with pytest.raises(ControlPlaneError, match="srv: INFO replication failed"):
        ask(UplinkConfig(addr=f"127.0.0.1:{free_port()}"))


def test_parse_replication_of_a_syncing_replica() -> None:
    info = {
        "role": "slave",
        "master_host": "::1",
        "master_port": 6379,
        "master_link_status": "down",
        "master_sync_in_progress": 1,
        "master_sync_total_bytes": 1000,
        "master_sync_read_bytes": 250,
        "slave_repl_offset": 7,
        "master_repl_offset": 7,
        "master_replid": "abc",
    }
    repl = parse_replication(info)
    assert repl.master_addr == "[::1]:6379" and repl.sync_in_progress and repl.sync_read_bytes == 250
    assert repl.offset == 7 and repl.replid == "abc"
