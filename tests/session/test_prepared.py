"""A prepared connection is taken over only for the uplink and the session state it was opened with."""

from __future__ import annotations

import asyncio
from typing import Any

from redis_proxy.config import UplinkConfig
from redis_proxy.session import prepared
from redis_proxy.session.prepared import PreparedUplink
from redis_proxy.uplink import ReadyUplink, SessionState


class FakeConnection:
    """Stands in for an UplinkConnection: only `closed` and `close` are used here."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def run(check: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ReadyUplink] = loop.create_future()
        connection = FakeConnection()
        future.set_result(ReadyUplink(connection, [], b"", 7))  # type: ignore[arg-type]
        task = asyncio.ensure_future(future)
        await asyncio.sleep(0)
        check(task, connection)

    asyncio.run(main())


UPLINK = UplinkConfig(addr="127.0.0.1:6380")


def test_taken_for_the_same_uplink_and_state_only() -> None:
    def check(task: Any, connection: FakeConnection) -> None:
        state = SessionState(db=2, name=b"app")
        ready = PreparedUplink(UPLINK, prepared.snapshot(state), task)
        assert ready.take(UPLINK, state) is not None
        assert ready.take(UPLINK, SessionState(db=3, name=b"app")) is None
        assert ready.take(UplinkConfig(addr="127.0.0.1:6381"), state) is None
        ready.discard()
        assert connection.closed and ready.take(UPLINK, state) is None

    run(check)


def test_snapshot_is_a_copy_and_subscribers_are_not_eligible() -> None:
    state = SessionState()
    copy = prepared.snapshot(state)
    state.channels.add(b"news")
    assert copy.channels == set() and copy != state
    assert prepared.eligible(copy) and not prepared.eligible(state)
    assert not prepared.eligible(SessionState(monitor=True))
