"""Asking sentinels where the master is: one sentinel, or each in turn until one answers."""

from __future__ import annotations

import contextlib

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from redis_proxy.config import Config, SentinelConfig, UplinkConfig
from redis_proxy.control.client import control_client
from redis_proxy.sentinel.events import MasterState, parse_addr_reply, parse_master_reply

QUERY_TIMEOUT_S = 2.0  # a sentinel answers from memory: anything slower is as good as down


class SentinelError(Exception):
    """A sentinel could not tell; one readable line."""


class SentinelUnavailable(SentinelError):
    """No sentinel could tell where the master is."""


def sentinel_client(settings: SentinelConfig, addr: str, timeout: float = QUERY_TIMEOUT_S) -> aioredis.Redis:
    """A redis.asyncio client for one sentinel, with the sentinels' own credentials and TLS settings."""
    fields = ("user", "tls", "cacertfile", "skipverify", "certfile", "keyfile")
    section = UplinkConfig.model_validate(
        {"addr": addr, "pass": settings.password, **{field: getattr(settings, field) for field in fields}}
    )
    return control_client(section, timeout)


async def ask_master(client: aioredis.Redis, name: str) -> MasterState:
    """Where this sentinel says the master is (SentinelError when it cannot say).

    SENTINEL MASTER also gives the config epoch, which tells a sentinel that
    has not heard of the last failover from one that has; an ACL that only
    allows GET-MASTER-ADDR-BY-NAME (the command Sentinel's clients use) gives
    the address without it.
    """
    try:
        try:
            return parse_master_reply(await client.execute_command("SENTINEL", "MASTER", name))
        except ResponseError as exc:
            if "no such master" in str(exc).lower():
                raise SentinelError(f"monitors no master named {name!r}") from None
            state = parse_addr_reply(await client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name))
    except (RedisError, OSError, ValueError) as exc:
        raise SentinelError(str(exc) or type(exc).__name__) from None
    if state is None:
        raise SentinelError(f"monitors no master named {name!r}")
    return state


async def ask_one(settings: SentinelConfig, addr: str) -> MasterState:
    """Ask the sentinel at `addr` on a connection of its own (SentinelError naming it)."""
    client = sentinel_client(settings, addr)
    try:
        return await ask_master(client, settings.master_name)
    except SentinelError as exc:
        raise SentinelError(f"sentinel {addr}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


async def resolve_master(settings: SentinelConfig) -> tuple[MasterState, str]:
    """Ask the sentinels in turn; the first answer and who gave it. SentinelUnavailable with every problem."""
    problems = []
    for addr in settings.addrs:
        try:
            return await ask_one(settings, addr), addr
        except SentinelError as exc:
            problems.append(str(exc))
    raise SentinelUnavailable(
        f"no sentinel told where master {settings.master_name!r} is: {'; '.join(problems)}"
    )


async def ask_all(settings: SentinelConfig) -> list[tuple[str, MasterState | SentinelError]]:
    """Every sentinel's answer or problem, in the config's order (for --check)."""
    results: list[tuple[str, MasterState | SentinelError]] = []
    for addr in settings.addrs:
        try:
            results.append((addr, await ask_one(settings, addr)))
        except SentinelError as exc:
            results.append((addr, exc))
    return results


def with_master(config: Config, addr: str) -> Config:
    """The config with the uplink at `addr` (the uplink section's credentials and TLS settings kept)."""
    return config.model_copy(update={"uplink": config.uplink.model_copy(update={"addr": addr})})
