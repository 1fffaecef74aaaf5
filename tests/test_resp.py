"""Tests for redis_proxy.resp, the sans-I/O RESP framers, in the h11 idiom.

Every input is fed whole, one byte at a time (nothing may come out before the
last byte of a frame, and each frame must come out with the read holding its
last byte), in random splits drawn by hypothesis, and followed by a partial
frame that must be held back. Regression cases for bugs found while writing
these tests keep their minimal inputs.
"""

from __future__ import annotations

import itertools
import socket
import random
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_proxy.resp import ARRAY, BULK, INTEGER, MAP, PUSH, SET, SIMPLE
from redis_proxy.resp import LARGE_ARG, LARGE_ARG_PREFIX, MAX_INLINE_LEN, STREAM_BODY, ProtocolError, Reply
from redis_proxy.resp import ReplyFramer, RequestFramer, as_reply, encode_command, split_inline
from servers import proxy_config

FEW = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
MANY = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, cuts) -> list[bytes]:
    cuts = sorted(set(cuts))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def random_chunks(draw: st.DataObject, data: bytes, max_cuts: int = 40) -> list[bytes]:
    if len(data) < 2:
        return [data]
    return split_at(data, draw.draw(st.lists(st.integers(1, len(data) - 1), max_size=max_cuts), label="cuts"))


def feed_all(framer, chunks):
    """Feed chunks in order; yield (bytes fed before, bytes fed after) the read, and each item it output."""
    fed = 0
    for chunk in chunks:
        before, fed = fed, fed + len(chunk)
        for item in framer.feed(chunk):
            yield before, fed, item


# -- requests ----------------------------------------------------------------
# A request frame is (wire bytes, args or None when Redis ignores it, inline?).


def resp(args: list[bytes]):
    return (encode_command(args), args, False)


def expect_args(args: list[bytes]) -> list[bytes]:
    return [a if len(a) < LARGE_ARG else a[:LARGE_ARG_PREFIX] for a in args]


def assert_on_boundary(framer: RequestFramer) -> None:
    """The framer holds no part of a command: the next command comes out whole, alone, byte-exact."""
    ping = encode_command([b"PING"])
    assert [(b.commands, b"".join(b.raw or [])) for b in framer.feed(ping)] == [([[b"PING"]], ping)]


def check_requests(frames, chunks, held: bytes = b"") -> RequestFramer:
    """Feed chunks (the frames, then `held`: part of one more) and check every batch that comes out."""
    assert b"".join(chunks) == b"".join(f[0] for f in frames) + held
    pending, end = [], 0  # (end offset, frame) of each command Redis would run
    for frame in frames:
        end += len(frame[0])
        if frame[1] is not None:
            pending.append((end, frame))
    framer, done, raw = RequestFramer(), 0, []
    for before, after, batch in feed_all(framer, chunks):
        mine = pending[done : done + len(batch.commands)]
        assert len(mine) == len(batch.commands) > 0
        for (end, (_, args, inline)), command in zip(mine, batch.commands):
            assert before < end <= after  # out with the read that completes it, not sooner or later
            assert command == expect_args(args)
            assert inline == (batch.raw is None)
            if max(map(len, args)) >= LARGE_ARG:  # a command with a shortened argument travels alone
                assert len(batch.commands) == 1
        if batch.raw is not None:  # exactly the client's bytes for exactly these commands
            assert b"".join(batch.raw) == b"".join(f[0] for _, f in mine)
            raw += batch.raw
        done += len(mine)
    assert done == len(pending)
    if not held:
        assert_on_boundary(framer)
    assert b"".join(raw) == b"".join(w for w, args, inline in frames if args is not None and not inline)
    return framer


SPECIAL_ARGS = [b"", b"\r\n", b"*", b"$", b"\n", b"\r", b"*1\r\n$3\r\nGET\r\n", b"\r\n$-1\r\n*0\r\n"]
small_arg = st.one_of(st.sampled_from(SPECIAL_ARGS), st.binary(max_size=40), st.binary(min_size=60, max_size=400))
big_arg = st.sampled_from([STREAM_BODY - 1, STREAM_BODY, STREAM_BODY + 7, 300_001]).map(
    lambda n: (b"x\r\n*$" * (n // 5 + 1))[:n]
)
resp_frame = st.lists(small_arg, min_size=1, max_size=5).map(resp)
empty_frame = st.sampled_from([(b"*0\r\n", None, False), (b"*-1\r\n", None, False)])

_NAMED = {10: b"\\n", 13: b"\\r", 9: b"\\t", 8: b"\\b", 7: b"\\a", 34: b'\\"', 92: b"\\\\"}


def dquote(arg: bytes) -> bytes:
    out = bytearray(b'"')
    for b in arg:
        out += _NAMED.get(b) or (bytes([b]) if 32 <= b < 127 else b"\\x%02x" % b)
    return bytes(out + b'"')


# Unquoted words avoid "*" and RESP3 type bytes at the start of a line (see test_bug_fast_path_*).
word = st.text("abcxyzGETSET019_.{}", min_size=1, max_size=8).map(str.encode)
single = st.text("ab $*\"'", max_size=8).map(str.encode)
inline_arg = st.one_of(
    word.map(lambda w: (w, w)),
    st.binary(max_size=12).map(lambda a: (dquote(a), a)),
    single.map(lambda a: (b"'" + a.replace(b"'", b"\\'") + b"'", a)),
)
inline_frame = st.tuples(
    st.sampled_from([b"", b" "]),
    st.lists(inline_arg, min_size=1, max_size=4),
    st.sampled_from([b" ", b"\t", b"  "]),
    st.sampled_from([b"\r\n", b"\n"]),
).map(lambda t: (t[0] + t[2].join(w for w, _ in t[1]) + t[3], [a for _, a in t[1]], True))
blank_frame = st.sampled_from([(b"\r\n", None, True), (b"  \n", None, True)])
any_frame = st.one_of(resp_frame, empty_frame, inline_frame, blank_frame)


@FEW
@given(st.one_of(st.lists(st.one_of(resp_frame, empty_frame), max_size=6), st.lists(any_frame, max_size=8)))
def test_requests_whole_and_bytewise(frames):
    data = b"".join(f[0] for f in frames)
    check_requests(frames, [data])
    check_requests(frames, bytewise(data))


@MANY
@given(st.data())
def test_requests_random_splits(data):
    frames = data.draw(st.lists(any_frame, max_size=8))
    if data.draw(st.integers(0, 3)) == 0:  # now and then a body large enough to be streamed
        big = data.draw(st.lists(st.one_of(small_arg, big_arg), min_size=1, max_size=3).map(resp))
        frames.insert(data.draw(st.integers(0, len(frames))), big)
    check_requests(frames, random_chunks(data, b"".join(f[0] for f in frames)))


@MANY
@given(st.data())
def test_requests_hold_back_partial_frame(data):
    frames = data.draw(st.lists(any_frame, max_size=5))
    last_wire, last_args, inline = data.draw(st.one_of(resp_frame, inline_frame))
    cut = data.draw(st.integers(1, len(last_wire) - 1))
    payload = b"".join(f[0] for f in frames) + last_wire[:cut]
    framer = check_requests(frames, random_chunks(data, payload), held=last_wire[:cut])
    rest = framer.feed(last_wire[cut:])
    assert [c for batch in rest for c in batch.commands] == [last_args]
    assert (rest[0].raw is None) if inline else (b"".join(rest[0].raw) == last_wire)
    assert_on_boundary(framer)


@pytest.mark.parametrize(
    "line, args",
    [
        (b"SET \"a b\" 'c d' \"\\x41\\n\"", [b"SET", b"a b", b"c d", b"A\n"]),
        (b"  GET \t key  ", [b"GET", b"key"]),
        (b"ECHO \"\\\"q\\\"\" 'it\\'s' '' \"\"", [b"ECHO", b'"q"', b"it's", b"", b""]),
        (b'ECHO "\\xzz\\q\\x4" a"b c"', [b"ECHO", b"xzzqx4", b"ab c"]),
        (b"ECHO 'a\\b' \"\\t\\r\\b\\a\"", [b"ECHO", b"a\\b", b"\t\r\b\a"]),
        (b"ECHO $3 :1 -x", [b"ECHO", b"$3", b":1", b"-x"]),
    ],
)
def test_inline_quotes_and_escapes(line, args):
    assert split_inline(line) == args
    for eol in (b"\r\n", b"\n"):
        frames = [(line + eol, args, True), resp([b"PING"]), (line + eol, args, True)]
        data = b"".join(f[0] for f in frames)
        check_requests(frames, [data])
        check_requests(frames, bytewise(data))


def test_encode_command():
    assert encode_command([b"SET", b"k", b""]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"


def feed_until_error(framer, chunks) -> tuple[list, str | None]:
    out = []
    try:
        for chunk in chunks:
            out += framer.feed(chunk)
    except ProtocolError as exc:
        return out, str(exc)
    return out, None


def steps(data: bytes) -> list[bytes]:  # one byte at a time, or 997 for long inputs (keeps it fast)
    n = 1 if len(data) < 1000 else 997
    return [data[i : i + n] for i in range(0, len(data), n)]


PROTOCOL_ERRORS = [
    (b"*1\r\n$99999999999\r\n", "invalid bulk length"),
    (b"*1\r\n$536870913\r\n", "invalid bulk length"),
    (b"*1\r\n$abc\r\n", "invalid bulk length"),
    (b"*1\r\n$03\r\nabc\r\n", "invalid bulk length"),
    (b"*1\r\n$+3\r\nabc\r\n", "invalid bulk length"),
    (b"*2147483648\r\n", "invalid multibulk length"),  # INT_MAX + 1
    (b"*99999999999\r\n", "invalid multibulk length"),
    (b"*abc\r\n", "invalid multibulk length"),
    (b"*01\r\n$1\r\na\r\n", "invalid multibulk length"),
    (b"*1\r\n:5\r\n", "expected '$', got ':'"),
    (b"*2\r\n$3\r\nGET\r\nfoo\r\n", "expected '$', got 'f'"),
    (b"*1\r\n$3\r\nabc\r\r\n", "expected CRLF after bulk data"),
    (b'SET "a b\r\n', "unbalanced quotes in request"),
    (b"SET 'a\r\n", "unbalanced quotes in request"),
    (b'SET "a"b\r\n', "unbalanced quotes in request"),
    (b"SET 'a'b\r\n", "unbalanced quotes in request"),
    (b"a" * (MAX_INLINE_LEN + 1), "too big inline request"),
    (b"*" + b"1" * (MAX_INLINE_LEN + 1), "too big mbulk count string"),
    (b"*1\r\n$" + b"1" * (MAX_INLINE_LEN + 1), "too big bulk count string"),
]
WHOLE_ONLY = [  # reads the fast path must hand to the exact path
    (b"*1\r\n+OK\r\n", "expected '$', got '+'"),
    (b"*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'"),
    (b"*2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n", "expected '$', got '*'"),
]
# Redis skips the two bytes after a bulk body without looking at them; the
# fast path forwards such bytes to Redis as they are, so only the exact path
# (which is stricter) reports this one.
STEP_ONLY = [(b"*1\r\n$3\r\nabcXY", "expected CRLF after bulk data")]
BOTH_MODES = [  # lengths Redis's string2ll rejects
    (b"*1\r\n$-5\r\n", "invalid bulk length"),  # says "expected CRLF after bulk data"
    (b"*1\r\n$-2\r\n", "invalid bulk length"),  # accepted as [b""] and forwarded
    (b"*1\r\n$-1\r\n*1\r\n$4\r\nPING\r\n", "invalid bulk length"),  # misframed
    (b"*1\r\n$-0\r\n\r\n", "invalid bulk length"),  # accepted as [b""]
    (b"*-0\r\n", "invalid multibulk length"),  # silently dropped
    (b"*--1\r\n", "invalid multibulk length"),  # raises ValueError from int()
]


def _cases(*groups):
    return [case for group in groups for case in group]


@pytest.mark.parametrize("data, message", _cases(PROTOCOL_ERRORS, WHOLE_ONLY, STEP_ONLY, BOTH_MODES))
def test_protocol_error_step_by_step(data, message):
    out, error = feed_until_error(RequestFramer(), steps(data))
    assert (out, error) == ([], message)
    # after a whole command, the command still comes out before the error
    out, error = feed_until_error(RequestFramer(), steps(encode_command([b"PING"]) + data))
    assert ([c for b in out for c in b.commands], error) == ([[b"PING"]], message)


@pytest.mark.parametrize("data, message", _cases(PROTOCOL_ERRORS, WHOLE_ONLY, BOTH_MODES))
def test_protocol_error_whole(data, message):
    assert feed_until_error(RequestFramer(), [data]) == ([], message)


@pytest.mark.parametrize("tail", [b"~1\r\n+a\r\n", b"~1\r\n$1\r\na\r\n", b"|1\r\n+a\r\n+b\r\n"])
def test_bug_fast_path_frames_inline_as_resp3(tail):
    data = encode_command([b"x"]) + tail  # Redis reads the tail as inline commands, one per line
    framer = RequestFramer()
    step_by_step = [(b.commands, b.raw is None) for c in bytewise(data) for b in framer.feed(c)]
    assert [(b.commands, b.raw is None) for b in RequestFramer().feed(data)] == step_by_step


def peak_allocation(*reads: bytes) -> int:
    tracemalloc.start()
    try:
        for data in reads:
            framer = RequestFramer()
            assert framer.feed(data) == []  # held: neither a command nor an error
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_multibulk_over_a_million_elements():
    """Redis 7 takes up to INT_MAX elements (a large DEL or MSET): one whole command, byte-exact, in reasonable time."""
    args = [b"DEL"] + [b"k%d" % i for i in range(1_100_000)]
    wire = encode_command(args)
    ping = encode_command([b"PING"])
    rng = random.Random(1100000)
    splits = [
        [wire + ping],  # whole, with the next command in the same read
        split_at(wire + ping, [rng.randrange(1, len(wire)) for _ in range(2)]),
        split_at(wire + ping, [rng.randrange(1, len(wire) + len(ping)) for _ in range(300)]),
        split_at(wire + ping, range(65536, len(wire), 65536)),  # socket-sized reads
    ]
    for chunks in splits:
        framer, batches = RequestFramer(), []
        start = time.perf_counter()
        for chunk in chunks:
            batches += framer.feed(chunk)
        elapsed = time.perf_counter() - start
        assert [c for b in batches for c in b.commands] == [args, [b"PING"]], len(chunks)
        assert b"".join(r for b in batches for r in b.raw or []) == wire + ping
        assert elapsed < 5, (len(chunks), elapsed)


def test_declared_sizes_allocate_nothing():
    start = time.perf_counter()
    with pytest.raises(ProtocolError, match="invalid multibulk length"):
        RequestFramer().feed(b"*2147483648\r\n")
    assert time.perf_counter() - start < 0.5
    headers = (b"*2147483647\r\n", b"*1048577\r\n", b"*1\r\n$536870912\r\n", b"*2\r\n$3\r\nSET\r\n$536870912\r\nab")
    assert peak_allocation(*headers) < 256 * 1024


def test_bug_six_digit_array_header_allocates():
    assert peak_allocation(b"*999999\r\n") < 256 * 1024


@pytest.mark.parametrize("size", [STREAM_BODY + 1, 3 * 1024 * 1024])
def test_large_value_is_streamed(size):
    value = bytes(range(256)) * (size // 256) + b"\r\n*$"[: size % 256]
    data = encode_command([b"SET", b"key", value]) + encode_command([b"GET", b"key"])
    framer, batches = RequestFramer(), []
    for i in range(0, len(data), 65536):
        batches += framer.feed(data[i : i + 65536])
        assert len(framer._buf) <= 65536  # the body is not gathered in the buffer
    assert [c for b in batches for c in b.commands] == [expect_args([b"SET", b"key", value]), [b"GET", b"key"]]
    assert b"".join(chunk for b in batches for chunk in b.raw) == data
    assert len(batches[0].raw) > 1 and max(map(len, batches[0].raw)) <= 65536


BIG_LAST = [resp([b"PING"]), resp([b"SET", b"k", b"v" * LARGE_ARG]), resp([b"PING"])]
BIG_MIDDLE = [resp([b"SET", b"v" * (LARGE_ARG + 1), b"x"]), resp([b"PING"])]
STREAMED_NOT_LAST = "BUG: a streamed large arg that is not its command's last goes out batched with what follows"


@pytest.mark.parametrize(
    "frames, cuts",
    [
        (BIG_LAST, []),
        (BIG_LAST, [14 + 100, 14 + 200_000]),
        (BIG_MIDDLE, []),
        pytest.param(BIG_MIDDLE, [100]),
    ],
)
def test_large_args_travel_alone(frames, cuts):
    check_requests(frames, split_at(b"".join(f[0] for f in frames), cuts))


def test_bug_large_arg_prefix_when_header_arrives_alone():
    value = b"v" * LARGE_ARG
    framer = RequestFramer()
    assert framer.feed(b"*1\r\n$%d\r\n" % LARGE_ARG) == []
    assert [c for b in framer.feed(value + b"\r\n") for c in b.commands] == [[value[:LARGE_ARG_PREFIX]]]


@pytest.mark.parametrize("line, args", [(b"a\x0bb", [b"a\x0bb"]), (b"a\x0cb", [b"a\x0cb"]), (b"a\x00b c", [b"a"])])
def test_bug_split_inline_like_sdssplitargs(line, args):
    assert split_inline(line) == args


# -- replies -----------------------------------------------------------------
# A reply frame is (wire bytes, expected key); see key() below.

NIL, OTHER = ("nil", None, None, None), ("other", None, None, None)


def norm(value) -> Reply:
    return value if isinstance(value, Reply) else as_reply(value)  # as_reply(Reply) is broken: see REPLY_REGRESSIONS


def key(value) -> tuple:
    """What the proxy can learn of a reply, the same whichever path produced it."""
    r = norm(value)
    if r.is_error:
        return ("err", r.text, None, None)
    if r.is_nil:
        return NIL
    if r.kind in (PUSH, ARRAY, SET):
        return ("push" if r.kind == PUSH else "agg", None, r.first, r.last_int)
    if r.kind == MAP:  # hiredis gives maps no first/last
        return ("map", None, None, None)
    if r.kind in (BULK, SIMPLE, INTEGER):
        return ("int" if r.kind == INTEGER else "str", r.text, None, None)
    return OTHER


def bulk(b: bytes):
    return (b"$%d\r\n%s\r\n" % (len(b), b), ("str", b if len(b) <= 64 else None, None, None))


status = st.text("abcOKERR xyz019", max_size=12).map(str.encode)
scalar = st.one_of(
    st.binary(max_size=70).map(bulk),
    status.map(lambda s: (b"+%s\r\n" % s, ("str", s, None, None))),
    status.map(lambda s: (b"-ERR %s\r\n" % s, ("err", b"ERR " + s, None, None))),
    status.map(lambda s: (b"!%d\r\nERR %s\r\n" % (len(s) + 4, s), ("err", b"ERR " + s, None, None))),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: (b":%d\r\n" % i, ("int", b"%d" % i, None, None))),
    st.sampled_from([b"$-1\r\n", b"*-1\r\n", b"_\r\n"]).map(lambda w: (w, NIL)),
    st.sampled_from([b",1.5\r\n", b",-inf\r\n", b"#t\r\n"]).map(lambda w: (w, OTHER)),
)
# At top level, paths disagree on (/= (see REPLY_REGRESSIONS) and #f is lost; inside aggregates they are fine.
inner_only = [b"(123456789012345678901\r\n", b"=7\r\ntxt:abc\r\n", b"#f\r\n"]
inner_scalar = st.one_of(scalar, st.sampled_from(inner_only).map(lambda w: (w, OTHER)))
ATTRIBUTES = [b"|1\r\n+key\r\n+val\r\n", b"|2\r\n$1\r\na\r\n:1\r\n+b\r\n*1\r\n:2\r\n"]
attribute = st.sampled_from(ATTRIBUTES)


def attributed(elements):
    maybe = st.one_of(st.just(b""), st.just(b""), attribute)
    return st.tuples(maybe, elements).map(lambda t: (t[0] + t[1][0], t[1][1]))


def aggregate(kinds: bytes, children):
    def build(t):
        kind, elems, pairs = t
        if kind == MAP:
            wire = b"%%%d\r\n" % len(pairs) + b"".join(k[0] + v[0] for k, v in pairs)
            return (wire, ("map", None, None, None))
        info = [e[1] for e in elems]
        first = info[0][1] if info and info[0][0] == "str" else None
        last = int(info[-1][1]) if info and info[-1][0] == "int" else None
        wire = bytes([kind]) + b"%d\r\n" % len(elems) + b"".join(e[0] for e in elems)
        return (wire, ("push" if kind == PUSH else "agg", None, first, last))

    lists = st.lists(children, max_size=4)
    pairs = st.lists(st.tuples(scalar, children), max_size=3)
    return st.tuples(st.sampled_from(kinds), lists, pairs).map(build)


inner = st.recursive(inner_scalar, lambda ch: aggregate(b"*~%", attributed(ch)), max_leaves=8)
reply = attributed(st.one_of(scalar, aggregate(b"*~%>", attributed(inner))))


def check_replies(frames, chunks, fast: bool = True, held: bytes = b"") -> ReplyFramer:
    assert b"".join(chunks) == b"".join(w for w, _ in frames) + held
    ends = list(itertools.accumulate(len(w) for w, _ in frames))
    framer, got, fed = ReplyFramer(), [], 0
    framer.set_fast_path(fast)
    for chunk in chunks:
        before, fed = fed, fed + len(chunk)
        out = framer.feed(chunk)
        mine = ends[len(got) : len(got) + len(out)]
        assert len(mine) == len(out) and all(before < end <= fed for end in mine)
        if not fast:  # the exact path says where in the read each reply ends
            assert framer.last_ends == [end - before for end in mine]
        got += out
    # (after an attribute, before its reply, in_reply() is False; harmless, as counts are right)
    assert len(got) == len(frames) and framer.in_reply() == (bool(held) and held not in ATTRIBUTES)
    for value, (_, expected) in zip(got, frames):
        k = key(value)
        if expected[2] is None:  # `first` is checked only when the first element is a short string
            k = (*k[:2], None, k[3])
        assert k == expected
    return framer


@FEW
@given(st.lists(reply, max_size=6))
def test_replies_whole_fast_exact_and_bytewise(frames):
    data = b"".join(w for w, _ in frames)
    check_replies(frames, [data])  # hiredis when it can
    check_replies(frames, [data], fast=False)  # exact path only
    check_replies(frames, bytewise(data))


@MANY
@given(st.data())
def test_replies_random_splits(data):
    frames = data.draw(st.lists(reply, max_size=8))
    check_replies(frames, random_chunks(data, b"".join(w for w, _ in frames)), fast=data.draw(st.booleans()))


@MANY
@given(st.data())
def test_replies_hold_back_partial_frame(data):
    frames = data.draw(st.lists(reply, max_size=5))
    last_wire, last_key = data.draw(reply)
    cut = data.draw(st.integers(1, len(last_wire) - 1))
    payload = b"".join(w for w, _ in frames) + last_wire[:cut]
    framer = check_replies(frames, random_chunks(data, payload), data.draw(st.booleans()), held=last_wire[:cut])
    (value,) = framer.feed(last_wire[cut:])
    assert key(value)[:2] == last_key[:2] and not framer.in_reply()


SUBSCRIBED = ("agg", None, b"subscribe", 1)
REPLY_EXAMPLES = [
    (b"+OK\r\n", ("str", b"OK", None, None)),
    (b"-ERR unknown\r\n", ("err", b"ERR unknown", None, None)),
    (b":-42\r\n", ("int", b"-42", None, None)),
    (b"$0\r\n\r\n", ("str", b"", None, None)),
    (b"$-1\r\n", NIL),
    (b"*-1\r\n", NIL),
    (b"_\r\n", NIL),
    (b"*0\r\n", ("agg", None, None, None)),
    (b"*2\r\n*1\r\n:1\r\n:2\r\n", ("agg", None, None, 2)),
    (b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", SUBSCRIBED),
    (b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", ("push", None, b"subscribe", 1)),
    (b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", ("push", None, b"message", None)),
    (b"|1\r\n+ttl\r\n:3\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", SUBSCRIBED),
    (b"*3\r\n|1\r\n+a\r\n+b\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n|1\r\n+a\r\n*1\r\n:9\r\n:1\r\n", SUBSCRIBED),
    (b"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n", ("map", None, None, None)),
    (b"~2\r\n+a\r\n:1\r\n", ("agg", None, b"a", 1)),
    (b"!8\r\nERR x\r\ny\r\n", ("err", b"ERR x\r\ny", None, None)),
    (b",3.14\r\n", OTHER),
    (b"*2\r\n#f\r\n(1\r\n", ("agg", None, None, None)),
]


@pytest.mark.parametrize("wire, expected", REPLY_EXAMPLES)
def test_reply_examples(wire, expected):
    frames = [(wire, expected), (b"+OK\r\n", ("str", b"OK", None, None)), (wire, expected)]
    data = b"".join(w for w, _ in frames)
    for fast in (True, False):
        check_replies(frames, [data], fast)
        check_replies(frames, bytewise(data), fast)
    assert key(ReplyFramer().feed(wire)[0]) == expected  # `first` checked too


def test_huge_bulk_reply_is_counted_once_and_never_held():
    body = b"x\r\n" * (5 * 1024 * 1024 // 3 + 1)
    data = b"$%d\r\n%s\r\n+OK\r\n" % (len(body), body)
    framer, out = ReplyFramer(), []
    for i in range(0, len(data), 65536):
        out += framer.feed(data[i : i + 65536])
        assert len(framer._head) < 100 and framer._skip_capture is None
    assert [key(v) for v in out] == [("str", None, None, None), ("str", b"OK", None, None)]


# -- reply bugs ----------------------------------------------------------------


def exact(wire: bytes, bytes_at_a_time: bool = False) -> list:
    framer = ReplyFramer()
    framer.set_fast_path(False)
    return [v for c in (bytewise(wire) if bytes_at_a_time else [wire]) for v in framer.feed(c)]


def count(wire: bytes) -> int:
    return len(ReplyFramer().feed(wire))


def raises_protocol_error(wire: bytes) -> bool:
    with pytest.raises(ProtocolError):
        ReplyFramer().feed(wire)
    return True


REPLY_REGRESSIONS = {
    "as_reply(Reply) returns Reply(kind=44) instead of the Reply": lambda: as_reply(exact(b"-ERR x\r\n")[0]).is_error,
    "fast path loses a top-level RESP3 false (#f) ending a read": lambda: count(b"#f\r\n") == 1,
    "an empty attribute |0 is counted as a reply": lambda: len(exact(b"|0\r\n:1\r\n")) == 1,
    "an empty attribute |0 is counted as an element": lambda: len(exact(b"*1\r\n|0\r\n:1\r\n")) == 1,
    "fast path raises TypeError on a map with an aggregate key": lambda: count(b"%1\r\n*1\r\n:1\r\n:2\r\n") == 1,
    "garbage integer raises ValueError, not ProtocolError": lambda: raises_protocol_error(b":abc\r\n"),
    "garbage bulk length raises ValueError, not ProtocolError": lambda: raises_protocol_error(b"$abc\r\n"),
}
# The exact path sets `first` from the first *string* element, not the first element (hiredis: None).
for _wire in [b"*2\r\n:1\r\n$1\r\na\r\n", b"*2\r\n$-1\r\n$1\r\na\r\n", b"*2\r\n*1\r\n:1\r\n$1\r\na\r\n"]:
    REPLY_REGRESSIONS[f"exact path first={_wire!r}"] = lambda wire=_wire: exact(wire)[0].first is None
# ... and a blob error split across reads is taken for a bulk string there.
REPLY_REGRESSIONS["split blob error element sets first"] = lambda: exact(b"*1\r\n!3\r\nERR\r\n", True)[0].first is None
# The two paths may differ in `kind`/`text` for non-error scalars (hiredis
# does not say whether a string was simple or bulk); nothing relies on those.


@pytest.mark.parametrize(
    "check",
    [pytest.param(c, id=r) for r, c in REPLY_REGRESSIONS.items()],
)
def test_reply_fixed_bugs(check):
    assert check()


def test_protocol_error_after_a_command_finished_from_an_earlier_read_keeps_that_command():
    framer = RequestFramer()
    assert framer.feed(b"*1\r\n$4\r\nPI") == []
    with pytest.raises(ProtocolError, match="invalid bulk length") as info:
        framer.feed(b"NG\r\n*1\r\n$x\r\n")
    batches = info.value.batches
    assert [c for b in batches for c in b.commands] == [[b"PING"]]
    assert b"".join(chunk for b in batches for chunk in b.raw) == b"*1\r\n$4\r\nPING\r\n"


@pytest.mark.parametrize(
    "wire",
    [b"+OK\r\n", b"-ERR no\r\n", b":42\r\n", b":-7\r\n", b"$3\r\nabc\r\n", b"$0\r\n\r\n", b"$-1\r\n",
     b"$70\r\n" + b"x" * 70 + b"\r\n", b"+OK\r\n+OK\r\n", b"$3\r\nab", b"*1\r\n:1\r\n", b"_\r\n", b"$3\r\nabcXY"],
)
def test_single_reply_shortcut_agrees_with_hiredis(wire: bytes) -> None:
    """Reads of exactly one simple/bulk reply skip hiredis; anything else must not."""
    def summary(values: list[object]) -> list[tuple[bool, bool, int | None]]:
        return [(r.is_error, r.is_nil, r.last_int) for r in map(as_reply, values)]

    fast = ReplyFramer().feed(wire)
    exact = ReplyFramer()
    exact.set_fast_path(False)
    assert summary(fast) == summary(exact.feed(wire))


# -- through a real proxy ----------------------------------------------------


def test_del_of_over_a_million_keys_through_the_proxy(redis_server, proxy_factory):
    """Redis 7 runs a DEL of 1,100,000 keys; the proxy forwards it rather than calling it a protocol error."""
    proxy = proxy_factory(proxy_config(redis_server, admin=False))
    keys = [b"k%d" % i for i in range(1_100_000)]
    client = proxy.client()
    assert client.mset({keys[0]: b"a", keys[550_000]: b"b", keys[-1]: b"c"})
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
    try:
        sock.sendall(encode_command([b"DEL", *keys]))
        reply = b""
        while not reply.endswith(b"\r\n"):
            data = sock.recv(100)
            assert data, reply
            reply += data
        assert reply == b":3\r\n"
        sock.sendall(encode_command([b"PING"]))
        assert sock.recv(100) == b"+PONG\r\n"
    finally:
        sock.close()
    assert redis_server.client().exists(keys[0], keys[550_000], keys[-1]) == 0


def test_unauthenticated_mode_limits_and_stops_after_auth() -> None:
    """Redis 7's pre-AUTH limits (10 arguments, 16384-byte arguments), and a stop after AUTH until resume()."""
    framer = RequestFramer()
    framer.unauthenticated = True
    big = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20000\r\n" + b"v" * 20000 + b"\r\n"
    batches = framer.feed(b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n" + big)
    assert [c for b in batches for c in b.commands] == [[b"AUTH", b"pw"]]
    assert framer.stopped and framer.buffered == len(big)
    framer.unauthenticated = False  # the AUTH succeeded
    assert [c for b in framer.resume() for c in b.commands] == [[b"SET", b"k", b"v" * 20000]]
    assert framer.buffered == 0

    for data, text in (
        (b"*11\r\n", "unauthenticated multibulk length"),
        (b"*1\r\n$16385\r\n", "unauthenticated bulk length"),
        (b"*1\r\n$-5\r\n", "invalid bulk length"),  # Redis's own check comes first
    ):
        framer = RequestFramer()
        framer.unauthenticated = True
        with pytest.raises(ProtocolError, match=text):
            framer.feed(data)
    framer = RequestFramer()
    framer.unauthenticated = True
    assert framer.feed(b"*10\r\n") == [] and framer.feed(b"$16384\r\n") == []  # at the limits: fine
    framer = RequestFramer()
    framer.unauthenticated = True
    inline = b"SET k " + b"v" * 30000 + b"\r\n"  # inline commands have no such limit in Redis
    assert framer.feed(inline)[0].commands == [[b"SET", b"k", b"v" * 30000]]


def test_error_elements_of_an_aggregate_are_known_on_both_paths() -> None:
    """EXEC's reply: which queued commands failed when run (the session core drops their effects)."""
    plain = b"*4\r\n-ERR DB index is out of range\r\n*1\r\n-ERR nested\r\n$1\r\nv\r\n-ERR x\r\n"
    blob = plain.replace(b"-ERR x\r\n", b"!5\r\nERR x\r\n")  # a RESP3 blob error: always the exact path
    for data in (plain, blob):
        whole = [as_reply(v).error_at for v in ReplyFramer().feed(data)]  # hiredis for `plain`
        split = ReplyFramer()
        cut = [as_reply(v).error_at for i in range(len(data)) for v in split.feed(data[i : i + 1])]
        assert whole == cut == [(0, 3)]
    assert as_reply(ReplyFramer().feed(b"*2\r\n+OK\r\n:1\r\n")[0]).error_at == ()
