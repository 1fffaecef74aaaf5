"""The files a config names: made absolute against the config file's directory, and checked readable.

Certificates, keys and CA files, failover's scripts (which must also be
executable), and the admin password file (read into the config). Split from `redis_proxy.config`, which holds the schema.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis_proxy.config import Config, SentinelConfig, UplinkConfig

LISTENERS = ("listen", "listen_raw", "admin")  # the sections that open a listening socket


def check_files(config: Config) -> list[str]:
    """Problems with cert/key/CA files that the config will actually use."""
    wanted: list[tuple[str, str | None]] = []
    uplinks: dict[str, UplinkConfig | SentinelConfig] = {"uplink": config.uplink} if config.uplink_name is None else {}
    uplinks.update({f"uplinks.{name}": section for name, section in config.uplinks.items()})
    if config.sentinel is not None:  # the same TLS keys, for the sentinels' connections
        uplinks["sentinel"] = config.sentinel
    for index, peer in enumerate(config.peers):
        if peer.cacertfile and not peer.skipverify:
            wanted.append((f"peers.{index}.cacertfile", peer.cacertfile))
    for where, uplink in uplinks.items():
        if uplink.tls and not uplink.skipverify:
            wanted.append((f"{where}.cacertfile", uplink.cacertfile))
        if uplink.tls and uplink.certfile:
            wanted.append((f"{where}.certfile", uplink.certfile))
            wanted.append((f"{where}.keyfile", uplink.keyfile))
    for name in LISTENERS:
        section = getattr(config, name)
        if section is not None and section.tls:
            wanted.append((f"{name}.certfile", section.certfile))
            wanted.append((f"{name}.keyfile", section.keyfile))
            if getattr(section, "cacertfile", None):
                wanted.append((f"{name}.cacertfile", section.cacertfile))
    problems: list[str] = []
    if config.failover is not None:
        scripts = [("failover.check_script", config.failover.check_script)]
        scripts += [(f"failover.trigger_scripts.{i}", path) for i, path in enumerate(config.failover.trigger_scripts)]
        for key, script in scripts:
            if script is not None and not (os.path.isfile(script) and os.access(script, os.X_OK)):
                problems.append(f"{key}: {script} is not an executable file")
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
    "admin": ("certfile", "keyfile", "pass_file"),
    "sentinel": ("cacertfile", "certfile", "keyfile"),
}


def resolve_paths(config: Config, base: str) -> Config:
    """The config with every relative file path made absolute against `base` (the models are frozen: copies)."""
    def resolved(section: Any, keys: tuple[str, ...]) -> Any:
        changed = {
            key: os.path.normpath(os.path.join(base, value))
            for key in keys
            if isinstance(value := getattr(section, key), str) and not os.path.isabs(value)
        }
        return section.model_copy(update=changed) if changed else section

    updates: dict[str, Any] = {}
    for name, keys in _FILE_KEYS.items():
        section = getattr(config, name)
        if section is not None:
            updates[name] = resolved(section, keys)
    updates["uplinks"] = {name: resolved(section, _FILE_KEYS["uplink"]) for name, section in config.uplinks.items()}
    if config.uplink_name is not None:
        updates["uplink"] = updates["uplinks"][config.uplink_name]
    updates["peers"] = [resolved(peer, ("cacertfile",)) for peer in config.peers]
    if config.failover is not None:
        # A script named by a bare file name is looked up beside the config, not on PATH: no surprises.
        scripts = [os.path.normpath(os.path.join(base, path)) for path in config.failover.trigger_scripts]
        updates["failover"] = resolved(config.failover, ("check_script",)).model_copy(update={"trigger_scripts": scripts})
    return config.model_copy(update=updates)


def read_pass_files(config: Config) -> tuple[Config, list[str]]:
    """The config with admin.pass taken from admin.pass_file, and the problems reading it.

    Surrounding whitespace is dropped: `echo secret > file` leaves a newline,
    and Prometheus's basic_auth password_file, which may share the same
    secret, trims it the same way.
    """
    admin = config.admin
    if admin is None or not admin.pass_file:
        return config, []
    try:
        with open(admin.pass_file, encoding="utf-8") as f:
            password = f.read().strip()
    except OSError as exc:
        return config, [f"admin.pass_file: cannot read {admin.pass_file}: {exc.strerror or exc}"]
    except UnicodeDecodeError:
        return config, [f"admin.pass_file: {admin.pass_file} is not UTF-8 text"]
    if not password:
        return config, [f"admin.pass_file: {admin.pass_file} is empty"]
    return config.model_copy(update={"admin": admin.model_copy(update={"password": password})}), []
