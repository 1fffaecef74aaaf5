"""Configuration file: schema, validation and readable error reporting.

The config is plain data (frozen pydantic models).  Building SSL contexts from
it is a separate step in `redis_proxy.tls`, so the config can be validated,
compared and logged without touching key material.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from redis_proxy.config_errors import duplicate_problems, object_hook, translate
from redis_proxy.config_files import LISTENERS, check_files, read_pass_files, resolve_paths

__all__ = ["LISTENERS", "Config", "ConfigError", "check_files", "load_config", "parse_config", "resolve_paths"]


class ConfigError(Exception):
    """One or more problems with the configuration, one readable line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems: list[str] = list(problems)
        # Exception.__str__ returns this single argument: one problem a line.
        super().__init__("\n".join(self.problems))


_PORT_RE = re.compile(r"[0-9]{1,5}")


def parse_tcp_addr(addr: str) -> tuple[str, int]:
    """Split "host:port" (IPv6 as "[::1]:port") into (host, port).

    Raises ValueError with a readable message.  Port 0 is returned as-is;
    whether it is acceptable depends on the caller.
    """
    host, sep, port_text = addr.rpartition(":")
    if not sep:
        raise ValueError(f"expected host:port, got {addr!r}")
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")):
            raise ValueError(f"unbalanced brackets in {addr!r}")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    elif ":" in host:
        # Without brackets "::1:6379" is ambiguous, so insist on them.
        raise ValueError(f"IPv6 addresses must be in brackets, e.g. [::1]:6379, got {addr!r}")
    if not host:
        raise ValueError(f"host is missing in {addr!r} (use 0.0.0.0:PORT to listen on all interfaces)")
    if not _PORT_RE.fullmatch(port_text) or int(port_text) > 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port_text!r}")
    return host, int(port_text)


def _addr_problem(addr: str, network: str, allow_port_zero: bool) -> str | None:
    if not addr:
        return "must not be empty"
    if network == "unix":
        if "\0" in addr:
            return "unix socket path must not contain NUL characters"
        return None
    try:
        _, port = parse_tcp_addr(addr)
    except ValueError as exc:
        return str(exc)
    if port == 0 and not allow_port_zero:
        return "port must be from 1 to 65535 (port 0 is only allowed for listening addresses)"
    return None


def _empty_to_none(value: Any) -> Any:
    # An empty string in JSON almost always means "not set" (e.g. a templated
    # config with an unset variable); treating it as a real empty password or
    # path would only produce confusing errors later.
    return None if value == "" else value


OptStr = Annotated[str | None, BeforeValidator(_empty_to_none)]
Network = Literal["tcp", "unix"]

# strict: a config file should say what it means; "true" is not a bool and
# "6379" is not an int.
_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


def _rules_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    # Carries (field, message) pairs so the translator can report one line per
    # problem under the right key path, even for cross-field rules.
    summary = "; ".join(f"{field}: {msg}" for field, msg in problems)
    return PydanticCustomError("config_rules", "{summary}", {"summary": summary, "problems": problems})


class _Section(BaseModel):
    model_config = _MODEL_CONFIG

    @model_validator(mode="before")
    @classmethod
    def _no_field_names_in_files(cls, data: Any, info: ValidationInfo) -> Any:
        # populate_by_name lets Python code say password=...; in a config file
        # only the documented key "pass" is accepted.
        if info.context and info.context.get("from_file") and isinstance(data, dict):
            if "password" in data and "password" in cls.model_fields:
                raise _rules_error([("password", 'unknown key (did you mean "pass"?)')])
        return data

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems = self._rule_problems()
        if problems:
            raise _rules_error(problems)
        return self

    def _rule_problems(self) -> list[tuple[str, str]]:
        return []


class _ListenerSection(_Section):
    """Fields and rules shared by sections that accept connections."""

    addr: str
    tls: bool = False
    certfile: OptStr = None
    keyfile: OptStr = None

    def _rule_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        problem = _addr_problem(self.addr, getattr(self, "network", "tcp"), allow_port_zero=True)
        if problem:
            problems.append(("addr", problem))
        if self.tls and not (self.certfile and self.keyfile):
            problems.append(("tls", "certfile and keyfile are required when tls is true"))
        return problems


def _client_problems(section: Any) -> list[tuple[str, str]]:
    """The rules of a section the proxy connects as a client with (an uplink, the sentinels): TLS and AUTH."""
    problems: list[tuple[str, str]] = []
    if bool(section.certfile) != bool(section.keyfile):
        problems.append(("certfile", "certfile and keyfile go together"))
    if section.certfile and not section.tls:
        problems.append(("certfile", "a client certificate needs tls: true"))
    if section.tls and not section.skipverify and not section.cacertfile:
        problems.append(("tls", "cacertfile is required when tls is true (or set skipverify to true)"))
    if section.user and not section.password:
        problems.append(("user", "pass is required when user is set"))
    return problems


class UplinkConfig(_Section):
    """The Redis server the proxy forwards to."""

    addr: str
    password: OptStr = Field(default=None, alias="pass", repr=False)
    user: OptStr = None
    network: Network = "tcp"
    tls: bool = False
    cacertfile: OptStr = None
    skipverify: bool = False
    certfile: OptStr = None  # the client certificate the proxy presents to a TLS Redis
    keyfile: OptStr = None
    allow_replica: bool = False  # accept an uplink whose ROLE is not master (read-only use)
    # The address other Redis servers use to replicate from this one (a
    # switchover's REPLICAOF): defaults to addr, set it when servers see each
    # other under other addresses than the proxy sees them (NAT, a TLS port).
    replicate_from: OptStr = None

    def _rule_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        problem = _addr_problem(self.addr, self.network, allow_port_zero=False)
        if problem:
            problems.append(("addr", problem))
        problems.extend(_client_problems(self))
        if self.replicate_from is not None:
            problem = _addr_problem(self.replicate_from, "tcp", allow_port_zero=False)
            if problem:
                problems.append(("replicate_from", problem))
        return problems

    @property
    def replication_addr(self) -> str:
        """host:port a replica of this server connects to."""
        return self.replicate_from or self.addr


class _ClientListenerSection(_ListenerSection):
    """A listener for Redis clients, which may require client certificates."""

    network: Network = "tcp"
    cacertfile: OptStr = None  # when set, clients must present a certificate signed by it

    def _rule_problems(self) -> list[tuple[str, str]]:
        problems = super()._rule_problems()
        if self.cacertfile and not self.tls:
            problems.append(("cacertfile", "client certificates need tls: true"))
        return problems


class ListenConfig(_ClientListenerSection):
    """The proxy's main client-facing listener."""

    password: OptStr = Field(default=None, alias="pass", repr=False)
    # "proxy": clients AUTH to the proxy (pass), the proxy AUTHs upstream itself.
    # "passthrough": AUTH and HELLO ... AUTH go to Redis; each client is its own ACL user.
    auth: Literal["proxy", "passthrough"] = "proxy"

    def _rule_problems(self) -> list[tuple[str, str]]:
        problems = super()._rule_problems()
        if self.auth == "passthrough" and self.password:
            problems.append((
                "pass",
                'must not be set with auth "passthrough": clients authenticate to Redis itself '
                '(remove listen.pass, or set listen.auth to "proxy")',
            ))
        return problems


class ListenRawConfig(_ClientListenerSection):
    """Optional second listener (no password of its own)."""


class AdminConfig(_ListenerSection):
    """Optional HTTP admin interface (TCP only, so no network key)."""

    password: OptStr = Field(default=None, alias="pass", repr=False)
    # The password in a file of its own (a Docker or Kubernetes secret, a
    # systemd credential): config.json then holds no secret and can live in a
    # ConfigMap or a repository. Read at load, so a reload reads it again.
    pass_file: OptStr = None
    # Host names (besides IP literals and localhost) the admin app answers
    # when it has no password: a defence against DNS rebinding.
    allowed_hosts: list[str] = Field(default_factory=list)

    def _rule_problems(self) -> list[tuple[str, str]]:
        problems = super()._rule_problems()
        if self.password and self.pass_file:
            problems.append(("pass_file", "pass and pass_file cannot both be set"))
        return problems


class PeerConfig(_Section):
    """Another proxy in front of the same Redis: a switchover pauses and switches it too, through its admin API."""

    url: str  # its admin app, e.g. https://10.0.0.2:7012
    password: OptStr = Field(default=None, alias="pass", repr=False)  # its admin.pass
    cacertfile: OptStr = None  # to verify an https admin app's certificate (default: the system's CAs)
    skipverify: bool = False

    def _rule_problems(self) -> list[tuple[str, str]]:
        if not re.fullmatch(r"https?://[^/\s]+/?", self.url):
            return [("url", f"expected http(s)://HOST:PORT of the peer's admin app, got {self.url[:100]!r}")]
        return []


class FailoverConfig(_Section):
    """Automatic failover when the active uplink dies: which named uplinks may take over, and how."""

    candidates: list[str]  # names in uplinks, tried in this order
    check_interval_ms: int = Field(default=500, ge=50)
    down_after_ms: int = Field(default=3000, ge=100)
    max_hold_ms: int = Field(default=10000, ge=0)  # commands are held this long for a new uplink, then fail
    promote: bool = False  # a replica candidate is promoted (REPLICAOF NO ONE) once chosen
    check_script: OptStr = None  # called with host:port; exit 0: usable
    trigger_scripts: list[str] = Field(default_factory=list)  # called with the new host:port before releasing
    script_timeout_ms: int = Field(default=5000, ge=100)
    max_backoff_ms: int = Field(default=30000, ge=100)

    def _rule_problems(self) -> list[tuple[str, str]]:
        if not self.candidates:
            return [("candidates", "name at least one entry of uplinks")]
        return []
class SentinelConfig(_Section):
    """Redis Sentinel tells which server is the master: the sentinels to ask, and how to connect to them.

    Credentials and TLS here are the sentinels' own; the Redis servers' come
    from the `uplink` section, whose addr Sentinel's answer replaces.
    """

    addrs: list[str]
    master_name: str
    password: OptStr = Field(default=None, alias="pass", repr=False)
    user: OptStr = None
    tls: bool = False
    cacertfile: OptStr = None
    skipverify: bool = False
    certfile: OptStr = None
    keyfile: OptStr = None
    max_hold_ms: int = Field(default=10000, ge=1)  # clients are never held longer by a Sentinel failover

    def _rule_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.addrs:
            problems.append(("addrs", "list at least one sentinel (host:port)"))
        for index, addr in enumerate(self.addrs):
            problem = _addr_problem(addr, "tcp", allow_port_zero=False)
            if problem:
                problems.append((f"addrs.{index}", problem))
            elif addr in self.addrs[:index]:
                problems.append((f"addrs.{index}", f"{addr} is listed twice"))
        if not self.master_name or any(c.isspace() for c in self.master_name):
            problems.append(("master_name", "the name Sentinel monitors the master under (no spaces)"))
        problems.extend(_client_problems(self))
        return problems


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Config(BaseModel):
    """The whole configuration file.

    `uplink` is the active uplink's section. In the file it is either that
    section (the legacy form) or the name of an entry of `uplinks`, which the
    loader resolves, recording the name in `uplink_name` (not a file key).
    """

    model_config = _MODEL_CONFIG

    uplinks: dict[str, UplinkConfig] = Field(default_factory=dict)
    uplink: UplinkConfig
    uplink_name: str | None = None
    peers: list[PeerConfig] = Field(default_factory=list)
    failover: FailoverConfig | None = None
    sentinel: SentinelConfig | None = None
    listen: ListenConfig
    listen_raw: ListenRawConfig | None = None
    admin: AdminConfig | None = None
    log_messages: bool = False
    read_time_limit_ms: int = Field(default=0, ge=0)
    max_clients: int = Field(default=10000, ge=1)
    client_idle_timeout_s: int = Field(default=0, ge=0)
    tcp_keepalive_s: int = Field(default=300, ge=0, le=32767)  # Linux refuses a longer TCP_KEEPIDLE
    max_pause_ms: int = Field(default=0, ge=0)
    client_query_buffer_limit: int = Field(default=1024 * 1024 * 1024, ge=1024)
    # `redis-proxy --takeover` connects here (a unix socket; default: next to the pid file).
    control_socket: str | None = Field(default=None, min_length=1)
    takeover_drain_s: int = Field(default=60, ge=0)  # after a takeover: how long the old process serves what could not move
    workers: int = Field(default=1, ge=1, le=64)  # processes serving clients (workers/): more than one uses more cores

    @model_validator(mode="before")
    @classmethod
    def _resolve_uplink_name(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        if info.context and info.context.get("from_file") and "uplink_name" in data:
            raise _rules_error([("uplink_name", 'unknown key (name the active uplink with "uplink": "NAME")')])
        name = data.get("uplink")
        if not isinstance(name, str):
            return data
        uplinks = data.get("uplinks")
        known = sorted(uplinks) if isinstance(uplinks, dict) else []
        if not isinstance(uplinks, dict) or name not in uplinks:
            where = f"(known: {', '.join(known)})" if known else "(uplinks has no entries)"
            raise _rules_error([("uplink", f"no uplink named {name!r} in uplinks {where}")])
        # Validated once, under uplinks.NAME: parse_config drops the copy's errors.
        return {**data, "uplink": uplinks[name], "uplink_name": name}

    @model_validator(mode="after")
    def _check_uplinks(self) -> Self:
        problems: list[tuple[str, str]] = []
        seen: dict[tuple[str, str], str] = {}
        for name, section in self.uplinks.items():
            if not _NAME_RE.fullmatch(name):
                problems.append((f"uplinks.{name}", "a name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"))
            key = (section.network, section.addr)
            if key in seen:
                problems.append((f"uplinks.{name}.addr", f"same address as uplinks.{seen[key]} ({section.addr})"))
            else:
                seen[key] = name
        if self.uplink_name is None and self.uplinks:
            # The legacy section beside named ones: it is that entry when equal to it.
            named = [n for n, s in self.uplinks.items() if s == self.uplink]
            if named:
                object.__setattr__(self, "uplink_name", named[0])
            elif (self.uplink.network, self.uplink.addr) in seen:
                other = seen[(self.uplink.network, self.uplink.addr)]
                problems.append((
                    "uplink.addr",
                    f'same address as uplinks.{other} with other settings: name it instead ("uplink": "{other}")',
                ))
        if self.failover is not None:
            for name in self.failover.candidates:
                if name not in self.uplinks:
                    known = ", ".join(sorted(self.uplinks)) or "uplinks has no entries"
                    problems.append(("failover.candidates", f"no uplink named {name!r} (known: {known})"))
        if self.sentinel is not None:
            problems.extend(self._sentinel_problems())
        if self.failover is not None and self.sentinel is not None:
            problems.append(("failover", "automatic failover and sentinel both decide which server is the master: use one"))
        if self.workers > 1:
            # Each follows the uplink from inside the serving process; with workers the control process would have to.
            for feature, enabled in (("failover", self.failover is not None), ("sentinel", self.sentinel is not None)):
                if enabled:
                    problems.append((feature, "is not supported with workers > 1 yet (set workers to 1)"))
        if problems:
            raise _rules_error(problems)
        return self

    def _sentinel_problems(self) -> list[tuple[str, str]]:
        # Sentinel chooses the master: a second chooser (named uplinks to switch
        # between) would fight it, and Sentinel only names TCP addresses.
        problems: list[tuple[str, str]] = []
        if self.uplinks:
            problems.append((
                "sentinel",
                "cannot be combined with uplinks: Sentinel chooses the master (remove uplinks, and give the"
                " servers' pass, user and TLS settings in an uplink section)",
            ))
        if self.uplink.network != "tcp":
            problems.append(("uplink.network", 'must be "tcp" with sentinel: Sentinel names masters by host:port'))
        return problems

    def with_uplink(self, name: str) -> Config:
        """This config with the named uplink active (KeyError for an unknown name)."""
        return self.model_copy(update={"uplink": self.uplinks[name], "uplink_name": name})

    def listen_addresses_changed(self, other: Config) -> list[str]:
        """Problems that forbid reloading from `self` (current) to `other` (new).

        Listening sockets are bound once at startup, so their addresses (and
        the admin server's TLS mode, fixed when its HTTP server starts) cannot
        follow a reload.
        """
        problems: list[str] = []

        def compare(key: str, old: Any, new: Any) -> None:
            if old != new:
                # json.dumps for bools so they read as in the config file.
                shown = [json.dumps(v) if isinstance(v, bool) else str(v) for v in (old, new)]
                problems.append(f"{key} cannot change on reload ({shown[0]} -> {shown[1]})")

        compare("listen.addr", self.listen.addr, other.listen.addr)
        compare("listen.network", self.listen.network, other.listen.network)
        # Every session was set up for one mode (who authenticates its uplink connections).
        compare("listen.auth", self.listen.auth, other.listen.auth)
        compare("workers", self.workers, other.workers)  # processes are started once
        for name, fields in (("listen_raw", ("addr", "network")), ("admin", ("addr", "tls"))):
            old, new = getattr(self, name), getattr(other, name)
            if old is None and new is None:
                continue
            if old is None or new is None:
                verb = "added" if old is None else "removed"
                problems.append(f"{name} cannot be {verb} on reload")
                continue
            for field in fields:
                compare(f"{name}.{field}", getattr(old, field), getattr(new, field))
        return problems


def parse_config(text: str, source: str = "config") -> Config:
    """Parse and validate config JSON text; raises ConfigError."""
    try:
        data = json.loads(text, object_pairs_hook=object_hook)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]) from None
    problems = duplicate_problems(data, "")
    try:
        config = Config.model_validate(data, context={"from_file": True})
    except ValidationError as exc:
        named = isinstance(data, dict) and isinstance(data.get("uplink"), str)
        problems.extend(translate(Config, exc, source, named_uplink=named))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str) -> Config:
    """Read, parse and check a config file ("-" = standard input)."""
    source = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            # utf-8-sig: tolerate the BOM some Windows editors add.
            with open(path, encoding="utf-8-sig") as f:
                text = f.read()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read config file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not valid UTF-8 text (byte offset {exc.start})"]) from None
    config = parse_config(text, source=source)
    # A config file names its certificates relative to itself, as nginx and
    # most daemons do, so it can move with them; from stdin there is no
    # file, and the working directory is the only base there is.
    config = resolve_paths(config, os.getcwd() if path == "-" else os.path.dirname(os.path.abspath(path)))
    problems = check_files(config)
    if problems:
        raise ConfigError(problems)
    config, problems = read_pass_files(config)
    if problems:
        raise ConfigError(problems)
    return config


def redacted(config: Config) -> dict[str, Any]:
    """The config as a dict (file key names) with passwords replaced."""
    data = config.model_dump(by_alias=True)
    name = data.pop("uplink_name", None)
    if name is not None:
        data["uplink"] = name  # as the file says it
    sections = [data.get(name) for name in ("uplink", "listen", "admin", "sentinel")]
    sections += list(data.get("uplinks", {}).values()) + list(data.get("peers", []))
    for section in sections:
        if isinstance(section, dict) and section.get("pass") is not None:
            section["pass"] = "[removed]"
    return data
