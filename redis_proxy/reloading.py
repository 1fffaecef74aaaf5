"""Reloading the config and choosing the uplink: the controller's half that decides *which* server.

`UplinkChoice` is a base of `Controller` (controller.py), which holds the
other half: pausing, draining, switching sessions, resuming. Kept apart so
each file reads as one concern; the attributes and methods declared below
are the controller's.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis_proxy.acl_users import check_session_users
from redis_proxy.config import Config, ConfigError, UplinkConfig, load_config
from redis_proxy.control_errors import ControlError, TargetRefused, UnknownUplink
from redis_proxy.gate import PAUSED, PAUSING
from redis_proxy.systemd_notify import reload_notice
from redis_proxy.uplink import UplinkError, check_uplink

if TYPE_CHECKING:
    from redis_proxy.controller import ControlledProxy

log = logging.getLogger("redis_proxy")


def file_choice(config: Config) -> str | UplinkConfig:
    """What a config file chose as its uplink: the name, or (legacy form) the section itself.

    A named uplink whose settings changed (a rotated password) is the same
    choice; a reload applies a new choice, not new settings for an old one.
    """
    return config.uplink_name if config.uplink_name is not None else config.uplink


class UplinkChoice:
    # The controller's, used here.
    proxy: ControlledProxy
    operator_paused: bool
    switchover_running: str | None
    file_uplink: str | UplinkConfig
    adjust_config: Callable[[Config], Config] | None
    _reload_lock: asyncio.Lock
    # The last refused reload or failed switch, whoever asked (admin, SIGHUP):
    # (Unix time, "reload" or "switch to NAME", the message). The status page shows it.
    last_error: tuple[float, str, str] | None = None

    @property
    def state(self) -> str:
        raise NotImplementedError

    def _resume(self, ending_failover: bool = False) -> None:
        raise NotImplementedError

    def _set_time_limit(self, limit_ms: int) -> None:
        raise NotImplementedError

    async def _pause_and_switch(self, new: Config, uplink_ssl: ssl.SSLContext | None, why: str) -> float:
        raise NotImplementedError

    # -- reload ------------------------------------------------------------------

    async def verify(self) -> str:
        """Validate the config file on disk, uplink connection included, without loading it."""
        new = self._runtime_uplink(self._read_config())
        problems = self.proxy.reload_problems(new)
        if problems:
            raise ControlError("\n".join(problems))
        try:
            self.proxy.prepare_tls(new)
            uplink_ssl = self.proxy.make_uplink_ssl(new)
            checked = await check_uplink(new.uplink, uplink_ssl, timeout=5.0)
        except (ConfigError, UplinkError) as exc:
            raise ControlError(str(exc)) from None
        return checked + await self.check_session_users_on(new, uplink_ssl)

    async def check_session_users_on(self, new: Config, uplink_ssl: ssl.SSLContext | None) -> str:
        """listen.auth "passthrough": every user seen on live sessions must be accepted by the new uplink.

        Raises ControlError naming the users it would refuse (never a
        password); returns what was checked, to add to the report.
        """
        if new.listen.auth != "passthrough":
            return ""
        seen = [s.credentials for s in list(self.proxy.sessions)]
        credentials = [c for c in seen if c is not None]
        unauthenticated = len(seen) - len(credentials)
        problems = await check_session_users(new.uplink, uplink_ssl, credentials, unauthenticated=unauthenticated)
        if problems:
            raise ControlError("\n".join(problems))
        users = sorted({c.user_name for c in credentials} | ({"default (no AUTH)"} if unauthenticated else set()))
        return f", session users accepted ({', '.join(users)})" if users else ", no live session to check"

    async def reload(self) -> dict[str, Any]:
        """Re-read and validate the config; if the uplink changed, pause, drain, switch and resume.

        On any error nothing changes and ControlError says why.
        """
        async with self._reload_lock:
            try:
                with reload_notice():  # systemd: RELOADING=1 now, READY=1 when done or refused
                    result = await self._reload()
            except ControlError as exc:
                self._resume_if_unowned()
                self.proxy.stats.reload_failures += 1
                self.last_error = (time.time(), "reload", str(exc))
                # One complete log line per problem: a multi-line message would
                # leave lines without time and level for a log shipper to misread.
                for line in str(exc).splitlines() or [""]:
                    log.error("reload refused: %s", line)
                raise
            self._resume_if_unowned()
            self.proxy.stats.reloads += 1
            return result

    def _resume_if_unowned(self) -> None:
        """After a reload: a pause nobody holds any more (max_pause_ms ended the operator's meanwhile) ends."""
        if not self.operator_paused and self.state in (PAUSING, PAUSED):
            self._resume()

    def _read_config(self) -> Any:
        path = self.proxy.config_path
        if path is None or path == "-":
            raise ControlError("the config was read from standard input (-f -): there is no file to reload")
        try:
            config = load_config(path)
        except ConfigError as exc:
            raise ControlError(str(exc)) from None
        return self.adjust_config(config) if self.adjust_config is not None else config

    async def _reload(self) -> dict[str, Any]:
        proxy = self.proxy
        self._check_switch_allowed()
        file_config = self._read_config()
        new = self._runtime_uplink(file_config)
        problems = proxy.reload_problems(new)
        if problems:
            raise ControlError("\n".join(problems))
        try:
            proxy.prepare_tls(new)
            uplink_ssl = proxy.make_uplink_ssl(new)
            checked = await check_uplink(new.uplink, uplink_ssl, timeout=5.0)
            proxy.rotate_certificates(new)
        except (ConfigError, UplinkError) as exc:
            raise ControlError(str(exc)) from None
        log.info("reload: new config is valid (%s)", checked)
        file_uplink = file_choice(file_config)
        if new.uplink == proxy.config.uplink:
            self.file_uplink = file_uplink
            proxy.apply_config(new, uplink_ssl)
            self._set_time_limit(new.read_time_limit_ms)
            return {"switched": False, "held_ms": 0.0, "uplink": new.uplink.addr, "uplink_name": new.uplink_name}
        # Before any client is held: a target that would refuse sessions' credentials refuses the reload.
        users = await self.check_session_users_on(new, uplink_ssl)
        if users:
            log.info("reload: %s", users.removeprefix(", "))
        held = await self._pause_and_switch(new, uplink_ssl, "reload")
        self.file_uplink = file_uplink  # only once applied: a failed reload of a new uplink is retried as new
        return {
            "switched": True,
            "held_ms": round(held * 1000, 3),
            "uplink": new.uplink.addr,
            "uplink_name": new.uplink_name,
            "paused": self.operator_paused,
        }

    def _runtime_uplink(self, new: Config) -> Config:
        """A reload does not silently undo a runtime switch (cmd=switch, a switchover).

        The file's uplink is applied when it changed since the file was last
        loaded; otherwise the uplink chosen at runtime stays, with the new
        file's settings for it. Raises ControlError when the file no longer
        names it.
        """
        current = self.proxy.config
        if file_choice(new) != self.file_uplink:
            return new  # the operator edited the file's choice: it wins
        if current.uplink_name is None or current.uplink_name == new.uplink_name:
            return new
        if current.uplink_name not in new.uplinks:
            raise ControlError(
                f"the active uplink {current.uplink_name!r} (switched to at runtime) is not in the new file's uplinks:"
                f' add it back, or set "uplink" in the file to the one to use'
            )
        log.info(
            "reload: keeping the runtime uplink %r (the file's uplink %r did not change since it was loaded)",
            current.uplink_name,
            new.uplink_name,
        )
        return new.with_uplink(current.uplink_name)

    # -- named uplinks ------------------------------------------------------------

    @property
    def switch_lock(self) -> asyncio.Lock:
        """Held by reloads and switches: a Sentinel switch takes it too, so a reload cannot undo it."""
        return self._reload_lock

    @property
    def busy(self) -> bool:
        """A reload or switch is running."""
        return self._reload_lock.locked()

    def _check_switch_allowed(self) -> None:
        if self.switchover_running is not None:
            raise ControlError(f"a switchover is running ({self.switchover_running}): wait for it or abort it")

    async def switch(self, name: str) -> dict[str, Any]:
        """cmd=switch: check the named uplink (connect, TLS, AUTH, role master), pause, drain, switch, resume.

        UnknownUplink for a name the config does not have; ControlError (the
        proxy stays on its uplink) for a target that fails its check.
        """
        config = self.proxy.config
        if name not in config.uplinks:
            known = ", ".join(sorted(config.uplinks)) or "none are configured"
            raise UnknownUplink(f"no uplink named {name!r} (known: {known})")
        async with self._reload_lock:
            self._check_switch_allowed()
            if name not in self.proxy.config.uplinks:  # a reload removed it while we waited
                raise UnknownUplink(f"no uplink named {name!r} any more (the config was reloaded)")
            new = self.proxy.config.with_uplink(name)
            if new.uplink == self.proxy.config.uplink:
                return {"switched": False, "uplink": name, "held_ms": 0.0}
            try:
                uplink_ssl = await self.check_target(new, name)
                held = await self._pause_and_switch(new, uplink_ssl, f"switch to {name}")
            except ControlError as exc:
                self.proxy.stats.switch_failures += 1  # the proxy stays on its uplink; the caller says why
                self.last_error = (time.time(), f"switch to {name}", str(exc))
                raise
            return {"switched": True, "uplink": name, "held_ms": round(held * 1000, 3), "paused": self.operator_paused}

    async def check_target(self, new: Config, name: str, replica_ok: bool = False) -> ssl.SSLContext | None:
        """A target uplink must take clients as the proxy would connect them: raises TargetRefused why not.

        `replica_ok`: a switchover checks its target while it is still a replica.
        """
        try:
            uplink_ssl = self.proxy.make_uplink_ssl(new)
            section = new.uplink.model_copy(update={"allow_replica": True}) if replica_ok else new.uplink
            checked = await check_uplink(section, uplink_ssl, timeout=5.0)
        except (ConfigError, UplinkError) as exc:
            raise TargetRefused(f"uplink {name} refused: {exc}") from None
        try:
            users = await self.check_session_users_on(new, uplink_ssl)
        except ControlError as exc:
            raise TargetRefused(f"uplink {name} refused: {exc}") from None
        log.info("uplink %s checked: %s%s", name, checked, users)
        return uplink_ssl
