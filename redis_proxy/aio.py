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
