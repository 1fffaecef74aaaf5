"""A session's state handed from one core to another (takeover), sans-I/O: snapshot, JSON, restore, carry on."""

from __future__ import annotations

import json
import random

import pytest

from redis_proxy.gate import PAUSED, Gate
from redis_proxy.session import handover
from redis_proxy.session.client_ids import ClientIds
from redis_proxy.session.core import SessionCore
from redis_proxy.session.types import ConnectUplink
from redis_proxy.stats import Stats
from test_core import Clock, cmd, kinds, ready, to_client, upstream


def pause(gate: Gate) -> None:
    gate.state, gate.open = PAUSED, False


def unpause(gate: Gate) -> None:
    gate.state, gate.open = "running", True


def moved(core: SessionCore, password: bytes | None = None) -> tuple[SessionCore, Gate, handover.Restored]:
    """`core`'s record through JSON into a fresh core of a new 'process' (its own gate and ids), paused."""
    assert handover.why_not_movable(core) is None
    record = json.loads(json.dumps(handover.snapshot(core)))
    gate = Gate(0.0)
    pause(gate)
    new = SessionCore(gate, Stats(), password, Clock(), ids=ClientIds())
    return new, gate, handover.restore(new, record)


def test_state_held_commands_and_half_a_command_move() -> None:
    core, gate, _ = ready()
    core.client_data(cmd("SELECT", "3"))
    core.uplink_data(b"+OK\r\n")
    core.client_data(cmd("CLIENT", "SETNAME", "app"))
    core.uplink_data(b"+OK\r\n")
    pause(gate)
    partial = cmd("GET", "key")[:9]
    assert upstream(core.client_data(cmd("SET", "key", "v") + cmd("INCR", "n") + partial)) == b""
    proxy_id = core.proxy_id

    new, new_gate, restored = moved(core)
    assert restored.input == cmd("SET", "key", "v") + cmd("INCR", "n") + partial and restored.connect
    assert new.proxy_id == proxy_id and new.state.db == 3 and new.state.name == b"app"
    assert to_client(new.client_data(restored.input)) == b""
    assert kinds(new.connect_now(restored.connect)) == [ConnectUplink]
    replay = new.uplink_ready(0, 9, [], None)
    assert upstream(replay) == b""  # paused: nothing forwarded yet (SELECT/SETNAME are the connection's replay)
    new.client_data(cmd("GET", "key")[9:])
    unpause(new_gate)
    assert upstream(new.resume()) == cmd("SET", "key", "v") + cmd("INCR", "n") + cmd("GET", "key")
    assert to_client(new.uplink_data(b"+OK\r\n:1\r\n$1\r\nv\r\n")) == b"+OK\r\n:1\r\n$1\r\nv\r\n"
    assert not new.pending and new_gate.inflight == 0


@pytest.mark.parametrize("seed", range(20))
def test_input_split_anywhere_comes_out_the_same(seed: int) -> None:
    rng = random.Random(seed)
    commands = [cmd("SET", f"k{i}", "x" * rng.randrange(0, 300)) for i in range(8)]
    stream = b"".join(commands)
    cut = rng.randrange(0, len(stream) + 1)  # what the old process read before the takeover
    core, gate, _ = ready()
    pause(gate)
    for chunk in _splits(rng, stream[:cut]):
        core.client_data(chunk)
    new, new_gate, restored = moved(core)
    new.client_data(restored.input)
    new.uplink_ready(0, 9, [], None)
    for chunk in _splits(rng, stream[cut:]):
        new.client_data(chunk)
    unpause(new_gate)
    assert upstream(new.resume()) == stream


def _splits(rng: random.Random, data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randrange(1, 64)
        out.append(data[i : i + n])
        i += n
    return out


def test_subscriptions_and_resp3_move_and_the_uplink_is_opened_at_once() -> None:
    core, gate, _ = ready()
    core.client_data(cmd("SUBSCRIBE", "a", "b"))
    core.uplink_data(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n")
    pause(gate)
    new, _, restored = moved(core)
    assert new.state.channels == {b"a", b"b"} and new.nonshard == 2
    assert kinds(new.connect_now(False)) == [ConnectUplink]  # messages must flow: connected without a command


def test_an_unauthenticated_client_authenticates_in_the_new_process() -> None:
    gate, clock = Gate(0.0), Clock()
    pause(gate)
    core = SessionCore(gate, Stats(), b"secret", clock)
    assert to_client(core.client_data(cmd("AUTH", "secret") + cmd("GET", "k"))) == b""  # held, framing stopped at AUTH
    new, new_gate, restored = moved(core, password=b"secret")
    assert not new.authed
    new.client_data(restored.input)
    unpause(new_gate)
    actions = new.resume()
    assert to_client(actions) == b"+OK\r\n" and kinds(actions)[-1] is ConnectUplink
    assert upstream(new.uplink_ready(0, 9, [], None)) == cmd("GET", "k")


def test_sessions_that_must_finish_first_do_not_move() -> None:
    core, gate, _ = ready()
    core.client_data(cmd("GET", "k"))
    assert handover.why_not_movable(core) == "replies still owed"
    core.uplink_data(b"$-1\r\n")
    assert handover.why_not_movable(core) is None
    core.client_data(cmd("MULTI"))
    core.uplink_data(b"+OK\r\n")
    assert handover.why_not_movable(core) == "inside a transaction"
    core.client_data(cmd("DISCARD"))
    core.uplink_data(b"+OK\r\n")
    core.client_data(cmd("CLIENT", "TRACKING", "ON", "BCAST"))
    core.uplink_data(b"+OK\r\n")
    assert handover.why_not_movable(core) == "client-side caching (CLIENT TRACKING)"


def test_a_record_of_another_format_is_refused_readably() -> None:
    core, gate, _ = ready()
    record = handover.snapshot(core)
    new = SessionCore(Gate(0.0), Stats(), None, Clock(), ids=ClientIds())
    with pytest.raises(handover.RecordError, match="format 2 is not 1"):
        handover.restore(new, {**record, "format": 2})
    with pytest.raises(handover.RecordError, match="damaged"):
        handover.restore(new, {**record, "input": "not base64!"})
