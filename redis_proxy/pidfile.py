"""The pid file (`--pidfile PATH`): how scripts find the process to signal (`kill -HUP "$(cat PATH)"`)."""

from __future__ import annotations

import contextlib
import os


class PidFileError(Exception):
    """The pid file cannot be used. One readable line."""


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PidFileError(f"pid file {path}: cannot read it: {exc.strerror or exc}") from None
    return int(text) if text.isdigit() and int(text) > 0 else None


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (signal 0; another user's counts as alive)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def check_pidfile(path: str) -> None:
    """Refuse (PidFileError) when the file names a live process; a stale or empty file is fine.

    Checked before binding, so a second proxy started by mistake says why
    instead of failing on its listen address, and never removes the first
    one's pid file.
    """
    pid = _read_pid(path)
    if pid is not None and pid != os.getpid() and process_alive(pid):
        raise PidFileError(f"pid file {path} names a running process (pid {pid}): is the proxy already running?")


def write_pidfile(path: str) -> None:
    """Write our pid (write-then-rename, so a reader never sees an empty file)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PidFileError(f"pid file {path}: cannot write it: {exc.strerror or exc}") from None


def remove_pidfile(path: str) -> None:
    """Remove the file if it still names us (another process may have taken it over)."""
    with contextlib.suppress(OSError, PidFileError):
        if _read_pid(path) == os.getpid():
            os.unlink(path)
