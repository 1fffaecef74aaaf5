"""Unit tests for redis_proxy.config: schema, rules, messages, loading."""

from __future__ import annotations

import copy
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from redis_proxy.config import (
    AdminConfig,
    Config,
    ConfigError,
    ListenConfig,
    ListenRawConfig,
    UplinkConfig,
    check_files,
    load_config,
    parse_config,
    parse_tcp_addr,
    redacted,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def minimal() -> dict[str, Any]:
    return {"uplink": {"addr": "127.0.0.1:6379"}, "listen": {"addr": "127.0.0.1:7010"}}


def full(tmp_path: Path) -> dict[str, Any]:
    # Certificate contents are irrelevant to config.py: it only checks that
    # the files can be read.
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder\n")
    return {
        "uplink": {
            "addr": "redis.internal:6380",
            "pass": "uplink-secret",
            "user": "proxy",
            "network": "tcp",
            "tls": True,
            "cacertfile": str(tmp_path / "ca.pem"),
            "skipverify": False,
        },
        "listen": {
            "addr": "0.0.0.0:7010",
            "pass": "client-secret",
            "network": "tcp",
            "tls": True,
            "certfile": str(tmp_path / "cert.pem"),
            "keyfile": str(tmp_path / "key.pem"),
        },
        "listen_raw": {
            "addr": str(tmp_path / "raw.sock"),
            "network": "unix",
        },
        "admin": {
            "addr": "127.0.0.1:7012",
            "tls": True,
            "certfile": str(tmp_path / "cert.pem"),
            "keyfile": str(tmp_path / "key.pem"),
            "pass": "admin-secret",
        },
        "log_messages": True,
        "read_time_limit_ms": 2500,
    }


def problems_of(data: Any) -> list[str]:
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="config.json")
    return info.value.problems


# --- valid configs -----------------------------------------------------------


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(json.dumps(minimal()))
    assert config.uplink == UplinkConfig(addr="127.0.0.1:6379")
    assert config.uplink.network == "tcp" and config.uplink.tls is False
    assert config.uplink.password is None and config.uplink.user is None
    assert config.listen.network == "tcp" and config.listen.password is None
    assert config.listen_raw is None and config.admin is None
    assert config.log_messages is False
    assert config.read_time_limit_ms == 0


def test_full_config_parses(tmp_path: Path) -> None:
    config = load_config_from(tmp_path, full(tmp_path))
    assert config.uplink.password == "uplink-secret"
    assert config.uplink.user == "proxy"
    assert config.listen.password == "client-secret"
    assert config.listen_raw == ListenRawConfig(addr=str(tmp_path / "raw.sock"), network="unix")
    assert isinstance(config.admin, AdminConfig) and config.admin.tls
    assert config.read_time_limit_ms == 2500


def test_example_config_in_repo_parses() -> None:
    config = load_config(str(REPO_ROOT / "config_example.json"))
    assert config.uplink.addr == "127.0.0.1:6379" and not config.uplink.tls
    assert config.listen.addr == "127.0.0.1:7010"
    assert config.admin is not None and config.admin.addr == "127.0.0.1:7012"
    assert config.log_messages is False and config.read_time_limit_ms == 5000
    assert redacted(config)["uplink"]["pass"] is None  # ships without passwords


def test_models_are_frozen() -> None:
    config = parse_config(json.dumps(minimal()))
    with pytest.raises(ValidationError):
        config.listen.addr = "127.0.0.1:1"  # type: ignore[misc]


def test_python_code_may_use_field_name_password() -> None:
    assert ListenConfig(addr="127.0.0.1:0", password="x").password == "x"
    assert ListenConfig.model_validate({"addr": "127.0.0.1:0", "pass": "x"}).password == "x"


def test_password_is_not_in_repr() -> None:
    config = ListenConfig(addr="127.0.0.1:0", password="hunter2")
    assert "hunter2" not in repr(config)


def test_empty_pass_means_no_password() -> None:
    data = minimal()
    data["uplink"]["pass"] = ""
    data["listen"]["pass"] = ""
    config = parse_config(json.dumps(data))
    assert config.uplink.password is None and config.listen.password is None


def test_unix_sockets_and_ipv6() -> None:
    data = {
        "uplink": {"addr": "/run/redis/redis.sock", "network": "unix", "tls": True, "skipverify": True},
        "listen": {"addr": "[::1]:0", "network": "tcp"},
        "listen_raw": {"addr": "relative/raw.sock", "network": "unix"},
    }
    config = parse_config(json.dumps(data))
    assert config.uplink.network == "unix"
    assert config.listen.addr == "[::1]:0"


def test_port_zero_allowed_for_listeners() -> None:
    data = minimal()
    data["listen"]["addr"] = "127.0.0.1:0"
    data["listen_raw"] = {"addr": "127.0.0.1:0"}
    data["admin"] = {"addr": "127.0.0.1:0"}
    parse_config(json.dumps(data))


# --- schema errors -------------------------------------------------------------


def test_unknown_keys_are_named() -> None:
    data = minimal()
    data["bogus"] = 1
    data["listen"]["foo"] = "bar"
    data["uplink"]["tsl"] = True
    problems = problems_of(data)
    assert "bogus: unknown key" in problems
    assert "listen.foo: unknown key" in problems
    assert 'uplink.tsl: unknown key (did you mean "tls"?)' in problems


def test_field_name_password_is_unknown_in_files() -> None:
    data = minimal()
    data["listen"]["password"] = "x"
    assert problems_of(data) == ['listen.password: unknown key (did you mean "pass"?)']


def test_admin_has_no_network_key() -> None:
    data = minimal()
    data["admin"] = {"addr": "127.0.0.1:7012", "network": "tcp"}
    assert problems_of(data) == ["admin.network: unknown key"]


def test_missing_sections_and_addr() -> None:
    assert problems_of({}) == ["uplink: field required", "listen: field required"]
    data = minimal()
    del data["uplink"]["addr"]
    data["listen_raw"] = {}
    assert problems_of(data) == ["uplink.addr: field required", "listen_raw.addr: field required"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("log_messages", "yes", "log_messages: must be true or false"),
        ("log_messages", 1, "log_messages: must be true or false"),
        ("read_time_limit_ms", -1, "read_time_limit_ms: must be >= 0"),
        ("read_time_limit_ms", "5000", "read_time_limit_ms: must be an integer"),
        ("read_time_limit_ms", 1.5, "read_time_limit_ms: must be an integer"),
        ("listen", [], "listen: must be a JSON object"),
    ],
)
def test_wrong_types(key: str, value: Any, expected: str) -> None:
    data = minimal()
    data[key] = value
    assert problems_of(data) == [expected]


def test_bad_network() -> None:
    data = minimal()
    data["listen"]["network"] = "udp"
    assert problems_of(data) == ["listen.network: must be 'tcp' or 'unix'"]


@pytest.mark.parametrize(
    "addr",
    ["127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:http", ":6379", "::1:6379", "[::1:6379", "[nope]:1", ""],
)
def test_bad_tcp_addr(addr: str) -> None:
    data = minimal()
    data["listen"]["addr"] = addr
    problems = problems_of(data)
    assert len(problems) == 1 and problems[0].startswith("listen.addr: ")


def test_uplink_port_zero_rejected() -> None:
    data = minimal()
    data["uplink"]["addr"] = "127.0.0.1:0"
    (problem,) = problems_of(data)
    assert problem.startswith("uplink.addr: port must be from 1 to 65535")


def test_tls_listener_requires_cert_and_key() -> None:
    data = minimal()
    data["listen"]["tls"] = True
    data["listen_raw"] = {"addr": "127.0.0.1:0", "tls": True, "certfile": "c.pem"}
    data["admin"] = {"addr": "127.0.0.1:0", "tls": True, "keyfile": "k.pem"}
    assert problems_of(data) == [
        "listen.tls: certfile and keyfile are required when tls is true",
        "listen_raw.tls: certfile and keyfile are required when tls is true",
        "admin.tls: certfile and keyfile are required when tls is true",
    ]


def test_uplink_tls_requires_cacertfile_unless_skipverify() -> None:
    data = minimal()
    data["uplink"]["tls"] = True
    (problem,) = problems_of(data)
    assert problem.startswith("uplink.tls: cacertfile is required")
    data["uplink"]["skipverify"] = True
    assert parse_config(json.dumps(data)).uplink.skipverify is True


def test_uplink_user_requires_pass() -> None:
    data = minimal()
    data["uplink"]["user"] = "proxy"
    assert problems_of(data) == ["uplink.user: pass is required when user is set"]


def test_all_problems_reported_at_once() -> None:
    data = {
        "uplink": {"addr": "127.0.0.1:0", "tls": True},
        "listen": {"addr": "nope", "tls": True, "extra": 1},
        "read_time_limit_ms": -5,
    }
    problems = problems_of(data)
    assert [p.split(":")[0] for p in problems] == ["uplink.addr", "uplink.tls", "listen.extra", "read_time_limit_ms"]


def test_rules_also_apply_to_python_construction() -> None:
    with pytest.raises(ValidationError, match="certfile and keyfile are required"):
        ListenConfig(addr="127.0.0.1:0", tls=True)


def test_passwords_never_in_messages() -> None:
    data = minimal()
    data["uplink"]["pass"] = ["hunter2"]  # wrong type: pydantic would echo input
    data["listen"]["pass"] = 12345678
    data["uplink"]["user"] = "u"
    text = str(ConfigError(problems_of(data)))
    assert "hunter2" not in text and "12345678" not in text
    assert "uplink.pass: must be a string" in text


# --- JSON errors ---------------------------------------------------------------


def test_invalid_json_reports_line_and_column() -> None:
    text = '{\n  "uplink": {"addr": "127.0.0.1:6379"}\n  "listen": {}\n}'
    assert problems_of(text) == ["config.json: invalid JSON at line 3 column 3: Expecting ',' delimiter"]


def test_top_level_must_be_object() -> None:
    assert problems_of("[]") == ["config.json: must be a JSON object"]


def test_duplicate_keys_are_reported() -> None:
    text = '{"uplink": {"addr": "127.0.0.1:1", "addr": "127.0.0.1:2"}, "listen": {"addr": "127.0.0.1:0"}}'
    assert problems_of(text) == ["uplink.addr: duplicate key"]


def test_config_error_str_is_one_problem_per_line() -> None:
    err = ConfigError(["a: one", "b: two"])
    assert str(err) == "a: one\nb: two"
    assert err.problems == ["a: one", "b: two"]


# --- loading and files -----------------------------------------------------------


def load_config_from(tmp_path: Path, data: dict[str, Any]) -> Config:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return load_config(str(path))


def test_load_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems == [f"{path}: cannot read config file: No such file or directory"]


def test_load_tolerates_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(minimal()).encode())
    assert load_config(str(path)).listen.addr == "127.0.0.1:7010"


def test_load_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(minimal())))
    assert load_config("-").uplink.addr == "127.0.0.1:6379"


def test_stdin_errors_name_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("{"))
    with pytest.raises(ConfigError) as info:
        load_config("-")
    assert info.value.problems[0].startswith("<stdin>: invalid JSON at line 1")


def test_unreadable_cert_files_all_reported(tmp_path: Path) -> None:
    data = full(tmp_path)
    data["listen"]["certfile"] = "/x/y.pem"
    data["admin"]["keyfile"] = str(tmp_path)  # a directory cannot be read as a file
    (tmp_path / "ca.pem").unlink()
    with pytest.raises(ConfigError) as info:
        load_config_from(tmp_path, data)
    assert info.value.problems == [
        f"uplink.cacertfile: cannot read {tmp_path / 'ca.pem'}: No such file or directory",
        "listen.certfile: cannot read /x/y.pem: No such file or directory",
        f"admin.keyfile: cannot read {tmp_path}: Is a directory",
    ]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read anything")
def test_permission_denied_cert_file(tmp_path: Path) -> None:
    data = full(tmp_path)
    (tmp_path / "key.pem").chmod(0)
    problems = check_files(parse_config(json.dumps(data)))
    assert f"listen.keyfile: cannot read {tmp_path / 'key.pem'}: Permission denied" in problems


def test_unused_files_are_not_checked(tmp_path: Path) -> None:
    data = minimal()
    data["listen"].update(certfile="/missing/cert.pem", keyfile="/missing/key.pem")  # tls off
    data["uplink"].update(tls=True, skipverify=True, cacertfile="/missing/ca.pem")
    assert check_files(parse_config(json.dumps(data))) == []


# --- redaction -----------------------------------------------------------------


def test_redacted_hides_passwords_without_mutating(tmp_path: Path) -> None:
    config = parse_config(json.dumps(full(tmp_path)))
    before = config.model_dump()
    shown = redacted(config)
    assert shown["uplink"]["pass"] == "[removed]"
    assert shown["listen"]["pass"] == "[removed]"
    assert shown["admin"]["pass"] == "[removed]"
    assert "secret" not in json.dumps(shown)
    assert shown["uplink"]["user"] == "proxy"  # user names are not secret
    assert config.model_dump() == before
    assert config.uplink.password == "uplink-secret"


def test_redacted_keeps_unset_passwords_none() -> None:
    data = minimal()
    data["admin"] = {"addr": "127.0.0.1:7012"}
    shown = redacted(parse_config(json.dumps(data)))
    assert shown["uplink"]["pass"] is None and shown["listen"]["pass"] is None
    assert shown["admin"]["pass"] is None and shown["listen_raw"] is None


def test_redacted_round_trips_through_parse(tmp_path: Path) -> None:
    # by_alias output uses the file's key names, so it is a valid config.
    config = parse_config(json.dumps(full(tmp_path)))
    reparsed = parse_config(json.dumps(redacted(config)))
    assert reparsed.listen.password == "[removed]"
    assert reparsed.model_dump(exclude={"uplink", "listen", "admin"}) == config.model_dump(
        exclude={"uplink", "listen", "admin"}
    )


# --- reload comparison ---------------------------------------------------------


def with_changes(base: dict[str, Any], **sections: Any) -> Config:
    data = copy.deepcopy(base)
    for key, value in sections.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return parse_config(json.dumps(data))


def test_reload_same_addresses_allowed(tmp_path: Path) -> None:
    base = full(tmp_path)
    old = parse_config(json.dumps(base))
    changed = copy.deepcopy(base)
    changed["uplink"] = {"addr": "10.0.0.2:6379"}
    changed["listen"]["pass"] = "new"
    changed["listen"]["tls"] = False
    changed["log_messages"] = False
    changed["read_time_limit_ms"] = 0
    assert old.listen_addresses_changed(parse_config(json.dumps(changed))) == []


def test_reload_listen_addr_change_refused() -> None:
    base = minimal()
    old = parse_config(json.dumps(base))
    new = with_changes(base, listen={"addr": "127.0.0.1:7020"})
    assert old.listen_addresses_changed(new) == [
        "listen.addr cannot change on reload (127.0.0.1:7010 -> 127.0.0.1:7020)"
    ]
    new = with_changes(base, listen={"addr": "/tmp/p.sock", "network": "unix"})
    assert old.listen_addresses_changed(new) == [
        "listen.addr cannot change on reload (127.0.0.1:7010 -> /tmp/p.sock)",
        "listen.network cannot change on reload (tcp -> unix)",
    ]


def test_reload_optional_listeners() -> None:
    base = minimal()
    old = parse_config(json.dumps(base))
    raw = {"addr": "127.0.0.1:7011"}
    admin = {"addr": "127.0.0.1:7012"}
    new = with_changes(base, listen_raw=raw, admin=admin)
    assert old.listen_addresses_changed(new) == [
        "listen_raw cannot be added on reload",
        "admin cannot be added on reload",
    ]
    assert new.listen_addresses_changed(old) == [
        "listen_raw cannot be removed on reload",
        "admin cannot be removed on reload",
    ]
    newer = with_changes(base, listen_raw={"addr": "127.0.0.1:7111"}, admin={"addr": "127.0.0.1:7112", "pass": "p"})
    assert new.listen_addresses_changed(newer) == [
        "listen_raw.addr cannot change on reload (127.0.0.1:7011 -> 127.0.0.1:7111)",
        "admin.addr cannot change on reload (127.0.0.1:7012 -> 127.0.0.1:7112)",
    ]


def test_reload_admin_tls_change_refused(tmp_path: Path) -> None:
    base = full(tmp_path)
    old = parse_config(json.dumps(base))
    new = with_changes(base, admin={"addr": "127.0.0.1:7012", "pass": "admin-secret"})
    assert old.listen_addresses_changed(new) == ["admin.tls cannot change on reload (true -> false)"]


# --- parse_tcp_addr --------------------------------------------------------------


def test_parse_tcp_addr_examples() -> None:
    assert parse_tcp_addr("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert parse_tcp_addr("[::1]:6379") == ("::1", 6379)
    assert parse_tcp_addr("redis.example.com:0") == ("redis.example.com", 0)
    with pytest.raises(ValueError, match="brackets"):
        parse_tcp_addr("::1:6379")


hostnames = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}", fullmatch=True)


@given(host=st.one_of(hostnames, st.ip_addresses(v=4).map(str)), port=st.integers(0, 65535))
def test_parse_tcp_addr_round_trips(host: str, port: int) -> None:
    assert parse_tcp_addr(f"{host}:{port}") == (host, port)


@given(host=st.ip_addresses(v=6).map(str), port=st.integers(0, 65535))
def test_parse_tcp_addr_round_trips_ipv6(host: str, port: int) -> None:
    assert parse_tcp_addr(f"[{host}]:{port}") == (host, port)


@given(text=st.text(max_size=40))
def test_parse_tcp_addr_only_raises_value_error(text: str) -> None:
    try:
        host, port = parse_tcp_addr(text)
    except ValueError:
        return
    assert host and 0 <= port <= 65535


# --- relative file paths -------------------------------------------------------


def test_relative_file_paths_resolve_against_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc"
    (conf_dir / "tls").mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (conf_dir / "tls" / name).write_text("placeholder\n")
    data = minimal()
    data["uplink"].update(tls=True, cacertfile="tls/ca.pem", certfile="tls/cert.pem", keyfile="./tls/key.pem")
    data["listen"].update(tls=True, certfile="tls/cert.pem", keyfile="tls/key.pem", cacertfile="tls/ca.pem")
    data["admin"] = {"addr": "127.0.0.1:7012", "tls": True, "certfile": "tls/cert.pem", "keyfile": str(conf_dir / "tls" / "key.pem")}
    (conf_dir / "config.json").write_text(json.dumps(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(str(Path("..") / "etc" / "config.json"))  # a relative config path works too
    tls = conf_dir / "tls"
    assert (config.uplink.cacertfile, config.uplink.certfile, config.uplink.keyfile) == (
        str(tls / "ca.pem"), str(tls / "cert.pem"), str(tls / "key.pem"))
    assert (config.listen.certfile, config.listen.keyfile, config.listen.cacertfile) == (
        str(tls / "cert.pem"), str(tls / "key.pem"), str(tls / "ca.pem"))
    assert config.admin is not None and config.admin.certfile == str(tls / "cert.pem")

    # Errors name the resolved path.
    data["listen"]["keyfile"] = "tls/missing.pem"
    (conf_dir / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        load_config(str(conf_dir / "config.json"))
    assert info.value.problems == [f"listen.keyfile: cannot read {tls / 'missing.pem'}: No such file or directory"]


def test_relative_file_paths_from_stdin_resolve_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cert.pem").write_text("placeholder\n")
    (tmp_path / "key.pem").write_text("placeholder\n")
    data = minimal()
    data["listen"].update(tls=True, certfile="cert.pem", keyfile="key.pem")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(data)))
    config = load_config("-")
    assert config.listen.certfile == str(tmp_path / "cert.pem")


def test_tcp_keepalive_s_is_bounded_by_what_linux_accepts() -> None:
    text = '{"uplink": {"addr": "127.0.0.1:6379"}, "listen": {"addr": "127.0.0.1:0"}, "tcp_keepalive_s": 86400}'
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert "tcp_keepalive_s" in str(err.value) and "32767" in str(err.value)


# -- named uplinks -----------------------------------------------------------------------


def named(**extra: Any) -> dict[str, Any]:
    data = minimal()
    data["uplinks"] = {"a": {"addr": "127.0.0.1:6379", "pass": "secret-a"}, "b": {"addr": "127.0.0.1:6380"}}
    data["uplink"] = "a"
    data.update(extra)
    return data


def test_uplink_may_name_an_entry_of_uplinks() -> None:
    config = parse_config(json.dumps(named()))
    assert config.uplink_name == "a" and config.uplink == config.uplinks["a"]
    assert config.with_uplink("b").uplink.addr == "127.0.0.1:6380"
    shown = redacted(config)
    assert shown["uplink"] == "a" and shown["uplinks"]["a"]["pass"] == "[removed]"
    assert parse_config(json.dumps(redacted(config))).uplinks["a"].password == "[removed]"


def test_named_uplink_problems_are_readable() -> None:
    assert problems_of(named(uplink="c")) == ["uplink: no uplink named 'c' in uplinks (known: a, b)"]
    data = named()
    data["uplinks"]["b"]["addr"] = "127.0.0.1:6379"
    assert problems_of(data) == ["uplinks.b.addr: same address as uplinks.a (127.0.0.1:6379)"]
    data = named()
    data["uplinks"]["a"]["adr"] = "x"
    assert problems_of(data) == ['uplinks.a.adr: unknown key (did you mean "addr"?)']  # once, not under uplink too
    assert problems_of(named(uplink=5)) == ["uplink: must be a JSON object or the name of an entry in uplinks"]
    assert problems_of(named(uplink_name="a")) == ['uplink_name: unknown key (name the active uplink with "uplink": "NAME")']
    data = named()
    data["uplinks"]["a b"] = {"addr": "127.0.0.1:1"}
    assert problems_of(data)[0].startswith("uplinks.a b: a name is 1 to 64 letters")
    data = named()
    data["uplinks"]["a"]["replicate_from"] = "10.0.0.1"
    assert problems_of(data) == ["uplinks.a.replicate_from: expected host:port, got '10.0.0.1'"]


def test_a_legacy_uplink_beside_named_ones() -> None:
    # Equal to an entry: it is that entry.
    config = parse_config(json.dumps(named(uplink={"addr": "127.0.0.1:6380"})))
    assert config.uplink_name == "b"
    # Another server: unnamed.
    config = parse_config(json.dumps(named(uplink={"addr": "127.0.0.1:7000"})))
    assert config.uplink_name is None
    # The same address with other settings is ambiguous.
    assert problems_of(named(uplink={"addr": "127.0.0.1:6379"})) == [
        'uplink.addr: same address as uplinks.a with other settings: name it instead ("uplink": "a")'
    ]


def test_named_uplink_files_resolve_against_the_config(tmp_path: Path) -> None:
    data = named()
    data["uplinks"]["b"].update({"tls": True, "cacertfile": "ca.pem"})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems == [f"uplinks.b.cacertfile: cannot read {tmp_path / 'ca.pem'}: No such file or directory"]


def test_failover_candidates_and_scripts_are_checked(tmp_path: Path) -> None:
    data = named(failover={"candidates": ["b", "c"]})
    assert problems_of(data) == ["failover.candidates: no uplink named 'c' (known: a, b)"]
    assert problems_of(named(failover={"candidates": []})) == ["failover.candidates: name at least one entry of uplinks"]
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(named(failover={"candidates": ["b"], "check_script": "check.sh"})))
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems == [f"failover.check_script: {script} is not an executable file"]
    script.chmod(0o755)
    assert load_config(str(path)).failover.check_script == str(script)  # type: ignore[union-attr]
