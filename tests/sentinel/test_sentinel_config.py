"""The `sentinel` config section: rules and readable errors (no processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from redis_proxy.config import ConfigError, load_config, parse_config, redacted


def config(**sentinel: Any) -> dict[str, Any]:
    section = {"addrs": ["127.0.0.1:26379", "127.0.0.1:26380"], "master_name": "mymaster", **sentinel}
    return {"uplink": {"addr": "127.0.0.1:6379", "pass": "redis-secret"}, "listen": {"addr": "127.0.0.1:7010"}, "sentinel": section}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(json.dumps(data))
    return caught.value.problems


def test_defaults() -> None:
    parsed = parse_config(json.dumps(config(**{"pass": "sentinel-secret"})))
    assert parsed.sentinel is not None
    assert parsed.sentinel.max_hold_ms == 10000 and parsed.sentinel.password == "sentinel-secret"
    assert parse_config(json.dumps({k: v for k, v in config().items() if k != "sentinel"})).sentinel is None


def test_password_is_redacted() -> None:
    parsed = parse_config(json.dumps(config(**{"pass": "sentinel-secret"})))
    assert "sentinel-secret" not in json.dumps(redacted(parsed))
    assert redacted(parsed)["sentinel"]["pass"] == "[removed]"


@pytest.mark.parametrize(
    ("sentinel", "expected"),
    [
        ({"addrs": []}, "sentinel.addrs: list at least one sentinel (host:port)"),
        ({"addrs": ["127.0.0.1"]}, "sentinel.addrs.0: expected host:port, got '127.0.0.1'"),
        ({"addrs": ["127.0.0.1:1", "127.0.0.1:1"]}, "sentinel.addrs.1: 127.0.0.1:1 is listed twice"),
        ({"master_name": "my master"}, "sentinel.master_name: the name Sentinel monitors the master under (no spaces)"),
        ({"tls": True}, "sentinel.tls: cacertfile is required when tls is true (or set skipverify to true)"),
        ({"user": "u"}, "sentinel.user: pass is required when user is set"),
        ({"max_hold_ms": 0}, "sentinel.max_hold_ms: must be >= 1"),
        ({"adrs": []}, 'sentinel.adrs: unknown key (did you mean "addrs"?)'),
    ],
)
def test_rules(sentinel: dict[str, Any], expected: str) -> None:
    assert expected in problems(config(**sentinel))


def test_master_name_is_required() -> None:
    data = config()
    del data["sentinel"]["master_name"]
    assert "sentinel.master_name: field required" in problems(data)


def test_named_uplinks_are_refused_with_sentinel() -> None:
    data = config()
    data["uplinks"] = {"a": {"addr": "127.0.0.1:6379"}}
    data["uplink"] = "a"
    assert any(p.startswith("sentinel: cannot be combined with uplinks: Sentinel chooses the master") for p in problems(data))


def test_a_unix_uplink_is_refused_with_sentinel() -> None:
    data = config()
    data["uplink"] = {"addr": "/tmp/redis.sock", "network": "unix"}
    assert 'uplink.network: must be "tcp" with sentinel: Sentinel names masters by host:port' in problems(data)


def test_tls_files_resolve_against_the_config_and_are_checked(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("placeholder\n")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(tls=True, cacertfile="ca.pem")))
    loaded = load_config(str(path))
    assert loaded.sentinel is not None and loaded.sentinel.cacertfile == str(tmp_path / "ca.pem")
    path.write_text(json.dumps(config(tls=True, cacertfile="missing.pem")))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert caught.value.problems == [f"sentinel.cacertfile: cannot read {tmp_path / 'missing.pem'}: No such file or directory"]
