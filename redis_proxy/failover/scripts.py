"""Running an operator's check and trigger scripts: one argument (host:port), bounded time, the outcome in words."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass

OUTPUT_LIMIT = 400  # characters of a script's output kept for the events


@dataclass(frozen=True)
class ScriptResult:
    code: int | None  # exit status; None: it could not run, or ran out of time
    output: str  # the end of what it printed (stdout and stderr together)
    problem: str | None = None  # why there is no exit status

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        if self.problem:
            return self.problem
        tail = f": {self.output}" if self.output else ""
        return f"exit {self.code}{tail}"


async def run_script(path: str, argument: str, timeout: float) -> ScriptResult:
    """Run `path argument`; kill it after `timeout` seconds. Never raises for the script's own failures."""
    try:
        # Its own process group: a timeout kills whatever it started too (a child keeping
        # the output pipe open would otherwise keep us waiting).
        process = await asyncio.create_subprocess_exec(
            path, argument, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
    except OSError as exc:
        return ScriptResult(None, "", f"could not run {path}: {exc.strerror or exc}")
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return ScriptResult(None, "", f"{path} ran longer than {timeout:g} s and was killed")
    text = out.decode(errors="replace").strip()
    return ScriptResult(process.returncode, text[-OUTPUT_LIMIT:])
