"""A command queued inside MULTI that fails when EXEC runs it changes nothing the session replays.

Redis answers +QUEUED to SELECT 16 (it checks only the arity at queue time)
and reports "-ERR DB index is out of range" as that command's element of
EXEC's array. The core used to apply every queued effect once EXEC returned
any array, so state.db became 16 and the next uplink connection (a switch)
replayed SELECT 16, which the new server refused: every later command of the
client got "-ERR upstream unavailable: the uplink refused SELECT ...".
test_differential's seed 200005 hit it when the proxy had read the stream
before the switch's pause (timing: it usually read it after, on the new server).

Every reply here is what redis-server 7.0 sent for these exact commands.
"""

from __future__ import annotations

import random

from redis_proxy.config import UplinkConfig
from redis_proxy.session.core import SessionCore
from redis_proxy.uplink import replay_commands

from test_core import cmd, ready, to_client

# Commands 26-45 of test_differential's stream for seed 200005 (switch before 46).
SEED_200005 = [
    b"WATCH s200005:str2\r\n",
    cmd("MULTI"),
    cmd("SELECT", "16"),  # queued; fails when EXEC runs it
    cmd("SADD", "s200005:zset0", "10", "14"),
    cmd("EVAL", "return redis.error_reply('MYERR from a script')", "0", "72"),
    cmd("MULTI"),  # nested: an error, the transaction goes on
    cmd("EXEC"),
    cmd("ZSCORE", "s200005:zset2", "z2"),
    cmd("SET", "s200005:str0", "v", "EX", "-5"),
    cmd("Lrange", "s200005:hash1", "0", "-1"),
    cmd("MULTI"),
    cmd("XLEN", "s200005:xs0"),
    b"*-1\r\n",  # ignored, as Redis does
    cmd("MULTI"),
    cmd("PERSIST", "s200005:iset1"),
    b"GET\r\n",  # arity error: the transaction is flagged
    cmd("SELECT", "3"),  # queued, never run (EXECABORT)
    cmd("EXEC"),
    cmd("PING", "202"),
    cmd("RPUSH", "s200005:list0", "v50"),
]
SEED_200005_REPLIES = (
    b"+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n-ERR MULTI calls can not be nested\r\n"
    b"*3\r\n-ERR DB index is out of range\r\n:2\r\n-MYERR from a script\r\n"
    b"$-1\r\n-ERR invalid expire time in 'set' command\r\n*0\r\n"
    b"+OK\r\n+QUEUED\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n"
    b"-ERR wrong number of arguments for 'get' command\r\n+QUEUED\r\n"
    b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    b"$3\r\n202\r\n:1\r\n"
)


def send(core: SessionCore, commands: list[bytes], how: str) -> bytes:
    """The client's bytes in one read, one command per read, or one byte per read; returns what reached the client."""
    data = b"".join(commands)
    if how == "whole":
        reads = [data]
    elif how == "commands":
        reads = commands
    else:
        reads = [data[i : i + 1] for i in range(len(data))]
    return b"".join(to_client(core.client_data(r)) for r in reads)


def answer(core: SessionCore, replies: bytes, cuts: list[int]) -> bytes:
    """The uplink's replies, cut at `cuts`; returns what reached the client."""
    out, start = b"", 0
    for end in [*cuts, len(replies)]:
        out += to_client(core.uplink_data(replies[start:end]))
        start = end
    return out


def run(commands: list[bytes], replies: bytes, cuts: list[int], how: str = "whole") -> SessionCore:
    core, _, _ = ready()
    out = send(core, commands, how)
    out += answer(core, replies, cuts)
    assert out == replies, (cuts, how)
    assert not core.pending and not core.in_txn and not core.txn_effects
    return core


def no_select_replayed(core: SessionCore) -> bool:
    return all(c[0] != b"SELECT" for c in replay_commands(UplinkConfig(addr="127.0.0.1:6379"), core.state))


def test_seed_200005_in_every_split_keeps_db_0() -> None:
    replies = SEED_200005_REPLIES
    for how in ("whole", "commands", "bytes"):
        for cuts in ([], list(range(1, len(replies)))):  # one read, one byte per read
            core = run(SEED_200005, replies, cuts, how)
            assert core.state.db == 0 and no_select_replayed(core), (how, len(cuts))
    for i in range(1, len(replies)):  # two reads, cut at every byte
        assert run(SEED_200005, replies, [i]).state.db == 0, i
    for seed in range(300):  # random reads
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(replies)), rng.randint(1, 40)))
        assert run(SEED_200005, replies, cuts, rng.choice(("whole", "commands"))).state.db == 0, seed


def every_split(commands: list[bytes], replies: bytes) -> list[SessionCore]:
    cores = [run(commands, replies, []), run(commands, replies, list(range(1, len(replies))))]
    cores += [run(commands, replies, [i]) for i in range(1, len(replies))]
    return cores


def test_the_failed_select_is_found_by_its_place_in_the_transaction() -> None:
    """A nested MULTI and a WATCH inside MULTI are answered at once, not queued: they have no element in EXEC's reply."""
    commands = [cmd("MULTI"), cmd("MULTI"), cmd("WATCH", "k"), cmd("SELECT", "4"), cmd("SELECT", "16"), cmd("EXEC")]
    replies = (
        b"+OK\r\n-ERR MULTI calls can not be nested\r\n-ERR WATCH inside MULTI is not allowed\r\n"
        b"+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n-ERR DB index is out of range\r\n"
    )
    assert {core.state.db for core in every_split(commands, replies)} == {4}


def test_plain_commands_queued_on_the_hot_path_count_too() -> None:
    """SET and GET in a read of their own go straight upstream; they still take places 0 and 1 in EXEC's reply."""
    replies = (
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n"
        b"*4\r\n+OK\r\n$1\r\n1\r\n+OK\r\n-ERR DB index is out of range\r\n"
    )
    for i in range(1, len(replies)):
        core, _, _ = ready()
        out = to_client(core.client_data(cmd("MULTI")))
        out += to_client(core.uplink_data(replies[:5]))  # +OK: MULTI is confirmed
        out += to_client(core.client_data(cmd("SET", "a", "1") + cmd("GET", "a")))
        out += to_client(core.client_data(cmd("SELECT", "6") + cmd("SELECT", "16") + cmd("EXEC")))
        out += answer(core, replies[5:], [i] if 5 < i else [])
        assert out == replies and core.state.db == 6, i


def test_other_queued_effects_that_fail_when_run_are_not_applied() -> None:
    """CLIENT SETNAME with a space and READONLY (no cluster) are queued, then fail inside EXEC; the good SETNAME holds."""
    commands = [
        cmd("MULTI"), cmd("CLIENT", "SETNAME", "a b"), cmd("READONLY"), cmd("CLIENT", "SETNAME", "ok"), cmd("EXEC"),
    ]
    replies = (
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n"
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        b"-ERR This instance has cluster support disabled\r\n+OK\r\n"
    )
    for core in every_split(commands, replies):
        assert core.state.name == b"ok" and core.state.readonly is False


def test_resp3_exec_reply() -> None:
    core, _, _ = ready()
    core.client_data(cmd("HELLO", "3"))
    core.uplink_data(b"%1\r\n$5\r\nproto\r\n:3\r\n")
    core.client_data(cmd("MULTI") + cmd("SELECT", "16") + cmd("SELECT", "5") + cmd("EXEC"))
    replies = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR DB index is out of range\r\n+OK\r\n"
    assert answer(core, replies, []) == replies
    assert core.state.db == 5
