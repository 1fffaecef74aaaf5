"""Configuration file: schema, validation and readable error reporting.

The config is plain data (frozen pydantic models).  Building SSL contexts from
it is a separate step in `redis_proxy.tls`, so the config can be validated,
compared and logged without touching key material.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import sys
import types
import typing
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

# The sections that open a listening socket.
LISTENERS = ("listen", "listen_raw", "admin")

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

    def _rule_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        problem = _addr_problem(self.addr, self.network, allow_port_zero=False)
        if problem:
            problems.append(("addr", problem))
        if bool(self.certfile) != bool(self.keyfile):
            problems.append(("certfile", "certfile and keyfile go together"))
        if self.certfile and not self.tls:
            problems.append(("certfile", "a client certificate needs tls: true"))
        if self.tls and not self.skipverify and not self.cacertfile:
            problems.append(("tls", "cacertfile is required when tls is true (or set skipverify to true)"))
        if self.user and not self.password:
            problems.append(("user", "pass is required when user is set"))
        return problems


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
    # Host names (besides IP literals and localhost) the admin app answers
    # when it has no password: a defence against DNS rebinding.
    allowed_hosts: list[str] = Field(default_factory=list)


class Config(BaseModel):
    """The whole configuration file."""

    model_config = _MODEL_CONFIG

    uplink: UplinkConfig
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


_SIMPLE_MESSAGES = {
    "missing": "field required",
    "extra_forbidden": "unknown key",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
}


def _message(error: Any) -> str:
    kind = error["type"]
    if kind in _SIMPLE_MESSAGES:
        return _SIMPLE_MESSAGES[kind]
    if kind == "greater_than_equal":
        return f"must be >= {error['ctx']['ge']}"
    # Fallback: pydantic's own wording, which never includes the input value.
    msg = str(error["msg"]).replace("Input should be", "must be").replace("\n", " ")
    return msg[:1].lower() + msg[1:]


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside a field's annotation (`ListenRawConfig | None` -> ListenRawConfig)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            model = _section_model(arg)
            if model is not None:
                return model
    return None


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys a config file may use in the object at `loc` (file names: "pass", not "password")."""
    model: type[BaseModel] | None = Config
    for part in loc:
        field = model.model_fields.get(str(part)) if model is not None else None
        model = _section_model(field.annotation) if field is not None else None
        if model is None:
            return []
    assert model is not None
    return [field.alias or name for name, field in model.model_fields.items()]


def _unknown_key_message(loc: tuple[Any, ...]) -> str:
    """"unknown key", with the closest known key when one is close enough to be a typo."""
    if not loc:
        return "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), _known_keys(loc[:-1]), n=1, cutoff=0.6)
    return f'unknown key (did you mean "{close[0]}"?)' if close else "unknown key"


def _translate(exc: ValidationError, source: str) -> list[str]:
    problems: list[str] = []
    # include_input=False: inputs may be passwords and must never be shown.
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in error["loc"])
        if error["type"] == "config_rules":
            prefix = f"{path}." if path else ""
            problems.extend(f"{prefix}{field}: {msg}" for field, msg in error["ctx"]["problems"])
        elif error["type"] == "extra_forbidden":
            problems.append(f"{path or source}: {_unknown_key_message(tuple(error['loc']))}")
        else:
            problems.append(f"{path or source}: {_message(error)}")
    return problems


class _JSONObject(dict[str, Any]):
    """A decoded JSON object that remembers keys that appeared twice."""

    duplicates: list[str]


def _object_hook(pairs: list[tuple[str, Any]]) -> _JSONObject:
    obj = _JSONObject()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _duplicate_problems(value: Any, path: str) -> list[str]:
    # json.loads silently keeps the last duplicate; in a config file that
    # hides mistakes (two "addr" keys), so report them instead.
    problems: list[str] = []
    if isinstance(value, _JSONObject):
        prefix = f"{path}." if path else ""
        problems.extend(f"{prefix}{key}: duplicate key" for key in value.duplicates)
        for key, child in value.items():
            problems.extend(_duplicate_problems(child, f"{prefix}{key}"))
    return problems


def parse_config(text: str, source: str = "config") -> Config:
    """Parse and validate config JSON text; raises ConfigError."""
    try:
        data = json.loads(text, object_pairs_hook=_object_hook)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]) from None
    problems = _duplicate_problems(data, "")
    try:
        config = Config.model_validate(data, context={"from_file": True})
    except ValidationError as exc:
        problems.extend(_translate(exc, source))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def check_files(config: Config) -> list[str]:
    """Problems with cert/key/CA files that the config will actually use."""
    wanted: list[tuple[str, str | None]] = []
    if config.uplink.tls and not config.uplink.skipverify:
        wanted.append(("uplink.cacertfile", config.uplink.cacertfile))
    if config.uplink.tls and config.uplink.certfile:
        wanted.append(("uplink.certfile", config.uplink.certfile))
        wanted.append(("uplink.keyfile", config.uplink.keyfile))
    for name in LISTENERS:
        section = getattr(config, name)
        if section is not None and section.tls:
            wanted.append((f"{name}.certfile", section.certfile))
            wanted.append((f"{name}.keyfile", section.keyfile))
            if getattr(section, "cacertfile", None):
                wanted.append((f"{name}.cacertfile", section.cacertfile))
    problems: list[str] = []
    for key, path in wanted:
        if path is None:
            continue  # already reported by schema validation
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            problems.append(f"{key}: cannot read {path}: {exc.strerror or exc}")
    return problems


# The keys that name files, per section: resolved by resolve_paths.
_FILE_KEYS: dict[str, tuple[str, ...]] = {
    "uplink": ("cacertfile", "certfile", "keyfile"),
    "listen": ("certfile", "keyfile", "cacertfile"),
    "listen_raw": ("certfile", "keyfile", "cacertfile"),
    "admin": ("certfile", "keyfile"),
}


def resolve_paths(config: Config, base: str) -> Config:
    """The config with every relative file path made absolute against `base` (the models are frozen: copies)."""
    updates: dict[str, BaseModel] = {}
    for name, keys in _FILE_KEYS.items():
        section = getattr(config, name)
        if section is None:
            continue
        changed = {
            key: os.path.normpath(os.path.join(base, value))
            for key in keys
            if isinstance(value := getattr(section, key), str) and not os.path.isabs(value)
        }
        if changed:
            updates[name] = section.model_copy(update=changed)
    return config.model_copy(update=updates) if updates else config


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
    return config


def redacted(config: Config) -> dict[str, Any]:
    """The config as a dict (file key names) with passwords replaced."""
    data = config.model_dump(by_alias=True)
    for name in ("uplink", "listen", "admin"):
        section = data.get(name)
        if section is not None and section.get("pass") is not None:
            section["pass"] = "[removed]"
    return data
