"""Two asyncio helpers for control-plane requests the proxy cannot afford to wait on for long."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


def consume(task: asyncio.Future[Any]) -> None:
    """A done callback for a task nobody will await: fetch its failure so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


async def within(aw: Awaitable[T], timeout: float) -> T:
    """`aw`'s result within `timeout` seconds, else TimeoutError.

    Unlike asyncio.wait_for, this never waits for the request to finish
    being cancelled: a client library that swallows the cancellation (seen
    with redis.asyncio) cannot stretch the bound. The abandoned request runs
    to its end on its own and is never awaited again.
    """
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout))
    if task not in done:
        task.cancel()
        task.add_done_callback(consume)
        raise TimeoutError()
    return task.result()


class Background:
    """A loop the proxy runs for its whole life (health checks, pollers, failover): start once, stop at shutdown.

    Subclasses write `_run` (checking `_stopping`) and, if they hold
    connections, `_after_stop` to close them once the loop has ended.
    """

    task_name = "background"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # The loop's own failure was logged where it happened (or is moot at shutdown).
            await asyncio.gather(task, return_exceptions=True)
        await self._after_stop()

    async def _run(self) -> None:
        raise NotImplementedError

    async def _after_stop(self) -> None:
        pass
