"""RESP framing, sans-I/O: feed bytes, get complete frames. No sockets, no asyncio.

Two framers, one per direction:

* `RequestFramer` splits what a client sends into whole commands (RESP arrays
  of bulk strings, or inline commands as telnet sends them).
* `ReplyFramer` counts whole replies (RESP2 and RESP3, push messages and
  attributes included) in what the server sends back, without keeping their
  bodies: a 100 MB bulk reply is skipped over, not buffered.

Each framer has two paths. The fast one hands a whole read to hiredis (C) and
is taken when the read holds only whole frames, which is what pipelining
clients and servers send nearly always; Python then touches each command or
reply once, not each argument. Whenever hiredis cannot tell us where a frame
ends (a read that stops mid-frame, inline commands, huge declared sizes, RESP3
attributes), the exact pure-Python path below takes over for that read and
keeps going until the stream is back on a frame boundary.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain

import hiredis

# Redis's own default limits (proto-max-bulk-len, a 1M-element cap on request
# arrays, PROTO_INLINE_MAX_SIZE for inline commands and header lines).
MAX_BULK_LEN = 512 * 1024 * 1024
MAX_ARRAY_LEN = 1024 * 1024
MAX_INLINE_LEN = 64 * 1024

# Arguments at least this large are not kept in `Batch.commands` (their bytes
# are forwarded from `Batch.raw` anyway); a short prefix stands in for them.
LARGE_ARG = 1024 * 1024
LARGE_ARG_PREFIX = 32

# Bulk bodies this large are streamed: kept as the chunks they arrived in
# rather than appended to the framer's buffer.
STREAM_BODY = 256 * 1024

# Reads that hiredis would accept but Redis reads differently go to the exact
# path. hiredis allocates an array's slots as soon as it reads `*N`, so large
# declared arrays go there (it checks the cap first). Type bytes other than
# `$` where a bulk header may stand, and negative bulk lengths, also go there:
# Redis reads "~1" at a command start as an inline command, and rejects "+OK"
# or "$-1" inside one. A value that merely starts with such a byte takes the
# exact path too, which is only slower. Both patterns start with a literal, so
# the regex engine skips ahead quickly (one class-led pattern cost 10x more).
_LARGE_ARRAY = re.compile(rb"\*\d{6}")
# A bulk of LARGE_ARG bytes or more can only be whole in a read at least that
# long; only such reads are searched for one.
_LARGE_BULK = re.compile(rb"\$\d{7}")
_ODD_TYPE = re.compile(rb"\r\n(?:[+=(~%>|]|\$-)")
# hiredis returns a RESP3 attribute as if it were a reply, and does not know
# blob errors: reads that may hold either take the exact path.
_HIREDIS_UNSAFE_REPLY = re.compile(rb"\r\n[|!]")  # literal-led: fast; the first byte is checked apart

_CRLF = b"\r\n"
# What hiredis returns when it needs more data: a sentinel, because a RESP3
# boolean false is a legitimate `False`.
_NEED_DATA = object()


def _hiredis_idle(reader: hiredis.Reader) -> bool:
    """Whether hiredis stopped on a frame boundary, its buffer empty.

    `has_data()` alone cannot tell: hiredis consumes a type byte or an array
    header before the rest arrives. An empty array fed after the data comes
    back as exactly `[]` only from an idle reader; in the middle of a frame
    it becomes part of that frame or a protocol error. Callers drop the
    reader whenever this says False.
    """
    if reader.has_data():
        return False
    try:
        reader.feed(b"*0\r\n")
        value = reader.gets()
    except (hiredis.ProtocolError, TypeError):  # TypeError: the array became a map key
        return False
    return type(value) is list and not value and not reader.has_data()


class ProtocolError(ValueError):
    """The peer sent something that is not RESP. `str()` is the reason, in Redis's words."""


@dataclass(slots=True)
class Batch:
    """Whole commands, in arrival order.

    `raw`, when not None, is the exact bytes the client sent for exactly these
    commands (possibly in several chunks), fit to forward as they are. It is
    None for inline commands, which are forwarded re-encoded as RESP.
    """

    commands: list[list[bytes]]
    raw: list[bytes] | None


def encode_command(args: list[bytes]) -> bytes:
    """The canonical RESP encoding of one command."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n" % len(arg))
        parts.append(arg)
        parts.append(_CRLF)
    return b"".join(parts)


def _encoded_length(commands: list[list[bytes]]) -> int:
    """Bytes of the canonical RESP encoding of these commands (C-level loops, no per-argument bytecode)."""
    if not commands:
        return 0
    args = list(chain.from_iterable(commands))
    sizes = list(map(len, args))
    headers = sum(map(len, map(str, map(len, commands)))) + 3 * len(commands)
    return headers + sum(sizes) + sum(map(len, map(str, sizes))) + 5 * len(sizes)


def _parse_length(line: bytes | bytearray, what: str, limit: int, negative_ok: bool = False) -> int:
    """A declared length, as strictly as Redis's string2ll reads one: digits,
    no leading zeros, a minus sign only where allowed (and never "-0")."""
    digits = line[1:] if negative_ok and line[:1] == b"-" else line
    if not digits or len(digits) > 19 or not digits.isdigit() or (len(digits) > 1 and digits[0] == 48):
        raise ProtocolError(f"invalid {what} length")
    if digits is not line and digits == b"0":
        raise ProtocolError(f"invalid {what} length")
    value = int(line)
    if value > limit:
        raise ProtocolError(f"invalid {what} length")
    return value


def _then(out: list[Batch], more: Callable[[bytes], list[Batch]], rest: bytes) -> list[Batch]:
    """`out` followed by the batches of `rest`; if `rest` holds a protocol
    error, the error carries `out` too, so those commands still run."""
    try:
        return out + more(rest)
    except ProtocolError as exc:
        exc.batches = out + getattr(exc, "batches", [])  # type: ignore[attr-defined]
        raise


class RequestFramer:
    """Splits a client's byte stream into whole commands."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(notEnoughData=_NEED_DATA)
        # Python path state. `_buf` holds unparsed bytes from the start of the
        # current (incomplete) command; `_pos` is how far it has been parsed,
        # so nothing is scanned twice.
        self._buf = bytearray()
        self._pos = 0
        self._nargs = 0  # arguments still expected by the current command
        self._args: list[bytes] = []
        # When a large bulk body streams in, the current command's earlier
        # bytes move here and the body's chunks follow, untouched.
        self._carry: list[bytes] = []
        self._body_left = 0  # streamed body bytes still expected (CRLF included)
        self._body_len = 0
        self._body_parts: list[bytes] = []
        self._kept = 0  # bytes of the streamed body kept for `commands`
        self._large = False  # the current command has an argument too large to keep

    def in_command(self) -> bool:
        """Whether part of a command has arrived but not all of it."""
        return bool(self._buf) or bool(self._carry) or self._nargs > 0

    def feed(self, data: bytes) -> list[Batch]:
        """Take the next bytes from the client; return the commands they complete.

        Raises ProtocolError on bytes that are not a valid request; the
        framer is then unusable (the connection should be closed).
        """
        if not data:
            return []
        if self._buf or self._carry or self._nargs:  # in the middle of a command
            # Finish the command in progress exactly; what follows it starts
            # on a boundary and may take the fast path again.
            out, rest = self._slow(data, finish_one=True)
            return _then(out, self.feed, rest) if rest else out
        if (
            data[0] == 42
            and not _LARGE_ARRAY.search(data)
            and not _ODD_TYPE.search(data)
            and (len(data) < LARGE_ARG or not _LARGE_BULK.search(data))
        ):
            fast = self._fast(data)
            if fast is not None:
                commands, used = fast
                if used == len(data):
                    return [Batch(commands, [data])] if commands else []
                # The read ends inside a command: the whole ones go out, the
                # exact path takes the rest.
                out = [Batch(commands, [data[:used]])] if commands else []
                return _then(out, lambda rest: self._slow(rest)[0], data[used:])
        return self._slow(data)[0]

    def _fast(self, data: bytes) -> tuple[list[list[bytes]], int] | None:
        """hiredis parse of a read that starts on a command boundary: the
        whole commands, and how many bytes of `data` they take.

        None means "use the exact path for this read": it holds something
        hiredis reads differently from Redis.
        """
        reader = self._reader
        commands: list[list[bytes]] = []
        try:
            reader.feed(data)
            while (command := reader.gets()) is not _NEED_DATA:
                if type(command) is not list or not command:
                    raise ProtocolError
                commands.append(command)
            # Redis wants arrays of bulk strings; any other element (an
            # integer, a null, a nested array) is the exact path's to report.
            if set(map(type, chain.from_iterable(commands))) - {bytes}:
                raise ProtocolError
            if _hiredis_idle(reader):
                return commands, len(data)
        except (hiredis.ProtocolError, ProtocolError, TypeError):
            self._reader = hiredis.Reader(notEnoughData=_NEED_DATA)
            return None
        # hiredis holds part of a command. The checks in `feed` leave only
        # canonical encodings (bulk strings, lengths without signs or leading
        # zeros), so the whole commands' length can be computed; it is
        # confirmed by a CRLF before the cut and an array header after it.
        self._reader = hiredis.Reader(notEnoughData=_NEED_DATA)
        used = _encoded_length(commands)
        if used >= len(data) or data[used - 2 : used + 1] != b"\r\n*":
            return None
        return commands, used

    # -- exact path -------------------------------------------------------

    def _slow(self, data: bytes, finish_one: bool = False) -> tuple[list[Batch], bytes]:
        """The exact path. With `finish_one`, stop after the command in
        progress and return the bytes after it, unparsed."""
        out: list[Batch] = []
        if self._body_left:
            data = self._stream_body(data)
            if self._body_left:
                return out, b""
            if self._nargs == 0:
                self._finish_streamed(out)
                if finish_one:
                    return out, data
        self._buf += data
        return out, self._parse(out, finish_one)

    def _stream_body(self, data: bytes) -> bytes:
        """Consume a streamed body's bytes from `data`; return what follows it."""
        take = min(self._body_left, len(data))
        chunk = data[:take] if take < len(data) else data
        self._carry.append(chunk)
        want = self._body_len + 2 if self._body_len < LARGE_ARG else LARGE_ARG_PREFIX
        if self._kept < want:
            self._body_parts.append(chunk[: want - self._kept])
            self._kept += min(len(chunk), want - self._kept)
        self._body_left -= take
        if self._body_left == 0:
            tail = self._carry[-1][-2:]
            if len(tail) < 2 and len(self._carry) > 1:
                tail = self._carry[-2][-1:] + tail
            if tail != _CRLF:
                raise ProtocolError("expected CRLF after bulk data")
            kept = b"".join(self._body_parts)
            self._args.append(kept[: self._body_len] if self._body_len < LARGE_ARG else kept[:LARGE_ARG_PREFIX])
            self._body_parts = []
            self._nargs -= 1
        return data[take:]

    def _finish_streamed(self, out: list[Batch]) -> None:
        out.append(Batch([self._args], self._carry))
        self._args = []
        self._carry = []
        self._large = False

    def _parse(self, out: list[Batch], finish_one: bool = False) -> bytes:
        buf = self._buf
        pos = self._pos
        end = len(buf)
        # The buffer starts with the current command (possibly continued from
        # a streamed body held in `_carry`), so both begin at 0.
        run_start = 0  # first byte of the current run of whole RESP commands
        cmd_start = 0  # first byte of the command being parsed
        run: list[list[bytes]] = []

        def flush(upto: int) -> None:
            nonlocal run
            if run:
                raw = [bytes(buf[run_start:upto])]
                if self._carry:  # the run's first command began in earlier chunks
                    raw = self._carry + raw
                    self._carry = []
                out.append(Batch(run, raw))
                run = []

        try:
            while pos < end:
                if self._nargs == 0:
                    cmd_start = pos
                    if buf[pos] != 42:  # not "*": an inline command
                        nl = buf.find(b"\n", pos)
                        if nl < 0:
                            if end - pos > MAX_INLINE_LEN:
                                raise ProtocolError("too big inline request")
                            break
                        flush(pos)
                        args = split_inline(bytes(buf[pos:nl]).rstrip(b"\r"))
                        pos = run_start = nl + 1
                        if args:
                            out.append(Batch([args], None))
                        continue
                    nl = buf.find(_CRLF, pos)
                    if nl < 0:
                        if end - pos > MAX_INLINE_LEN:
                            raise ProtocolError("too big mbulk count string")
                        break
                    count = _parse_length(buf[pos + 1 : nl], "multibulk", MAX_ARRAY_LEN, negative_ok=True)
                    if count < -1:  # Redis ignores these too, but they can only be garbage
                        raise ProtocolError("invalid multibulk length")
                    if count <= 0:  # *0 and *-1: Redis ignores empty commands; forward nothing
                        flush(pos)
                        pos = run_start = nl + 2
                        continue
                    self._nargs = count
                    self._args = []
                    pos = nl + 2
                    continue
                # one argument: "$len\r\n" body "\r\n"
                if buf[pos] != 36:
                    got = chr(buf[pos]) if 32 <= buf[pos] < 127 else f"\\x{buf[pos]:02x}"
                    raise ProtocolError(f"expected '$', got '{got}'")
                nl = buf.find(_CRLF, pos)
                if nl < 0:
                    if end - pos > MAX_INLINE_LEN:
                        raise ProtocolError("too big bulk count string")
                    break
                size = _parse_length(buf[pos + 1 : nl], "bulk", MAX_BULK_LEN)
                body = nl + 2
                if body + size + 2 > end:
                    if size >= STREAM_BODY:
                        self._start_stream(flush, cmd_start, body, size)
                        return b""
                    break
                if buf[body + size : body + size + 2] != _CRLF:
                    raise ProtocolError("expected CRLF after bulk data")
                if size < LARGE_ARG:
                    self._args.append(bytes(buf[body : body + size]))
                else:
                    self._args.append(bytes(buf[body : body + LARGE_ARG_PREFIX]))
                    self._large = True
                pos = body + size + 2
                self._nargs -= 1
                if self._nargs == 0:
                    if self._large:
                        # A command with a shortened argument travels alone,
                        # so its raw bytes are always its own.
                        flush(cmd_start)
                        out.append(Batch([self._args], self._carry + [bytes(buf[cmd_start:pos])]))
                        self._carry = []
                        run_start = pos
                        self._large = False
                    else:
                        run.append(self._args)
                    self._args = []
                    if finish_one:
                        break
            # Everything up to the last whole command goes out; the rest stays.
            cut = pos if self._nargs == 0 else cmd_start
            flush(cut)
            del buf[:cut]
            self._pos = pos - cut
            if finish_one and self._nargs == 0 and buf:
                rest = bytes(buf)
                buf.clear()
                self._pos = 0
                return rest
            return b""
        except ProtocolError as exc:
            # Commands before the bad one are whole and valid: Redis runs
            # them before it reports the error, so they go out too.
            flush(cmd_start)
            exc.batches = out  # type: ignore[attr-defined]
            buf.clear()
            raise

    def _start_stream(self, flush: Callable[[int], None], cmd_start: int, body: int, size: int) -> None:
        """A large bulk body has begun: stop buffering, keep its chunks as they come.

        The whole commands before it go out; this command's head (and the
        part of the body already here) joins `_carry`.
        """
        buf = self._buf
        flush(cmd_start)
        self._carry.append(bytes(buf[cmd_start:]))
        self._body_len = size
        self._body_left = size + 2 - (len(buf) - body)
        keep = body + (size + 2 if size < LARGE_ARG else LARGE_ARG_PREFIX)
        self._body_parts = [bytes(buf[body:keep])]
        self._kept = len(self._body_parts[0])
        self._large = self._large or size >= LARGE_ARG
        buf.clear()
        self._pos = 0


_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline command the way Redis does (sdssplitargs): spaces, "quotes" with escapes, 'quotes'."""
    args: list[bytes] = []
    line = line.split(b"\0", 1)[0]  # Redis reads the line as a C string
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in b" \t\n\r\v\f":
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_double = in_single = False
        while True:
            if i >= n:
                if in_double or in_single:
                    raise ProtocolError("unbalanced quotes in request")
                break
            c = line[i]
            if in_double:
                if c == 92 and i + 3 < n and line[i + 1] == 120 and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    current.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    current.append(_ESCAPES.get(line[i], line[i]))
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in b" \t\n\r\v\f":
                        raise ProtocolError("unbalanced quotes in request")
                    in_double = False
                    i += 1
                    break
                else:
                    current.append(c)
            elif in_single:
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    current.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in b" \t\n\r\v\f":
                        raise ProtocolError("unbalanced quotes in request")
                    in_single = False
                    i += 1
                    break
                else:
                    current.append(c)
            elif c in b" \t\n\r":
                break
            elif c == 34:
                in_double = True
            elif c == 39:
                in_single = True
            else:
                current.append(c)
            i += 1
        args.append(bytes(current))


# -- replies ---------------------------------------------------------------

NIL = 95  # "_": every kind of null ($-1, *-1, _) is reported as this kind
_SHORT = 64  # string elements up to this size are captured for inspection
_AGGREGATES = frozenset(b"*%~>|")
_BLOBS = frozenset(b"$!=")
_SCALARS = frozenset(b"+-:_,#(")


@dataclass(slots=True)
class Reply:
    """What the proxy needs to know of one whole reply (its body is not kept).

    `first` is the first element of an aggregate when it is a short string,
    `last_int` its last element when that is an integer: together they tell
    pub/sub confirmations ("subscribe", channel, count) from messages.
    """

    kind: int
    text: bytes | None = None
    first: bytes | None = None
    last_int: int | None = None

    @property
    def is_error(self) -> bool:
        return self.kind == 45 or self.kind == 33

    @property
    def is_nil(self) -> bool:
        return self.kind == NIL

    @property
    def is_push(self) -> bool:
        return self.kind == 62


def as_reply(value: object) -> Reply:
    """A Reply for a value parsed by hiredis (the fast path returns those as they are)."""
    if type(value) is Reply:
        return value
    if isinstance(value, hiredis.ReplyError):
        return Reply(45, str(value).encode())
    if value is None:
        return Reply(NIL)
    if isinstance(value, list):  # PushNotification is a list too
        kind = 62 if isinstance(value, hiredis.PushNotification) else 42
        first = value[0] if value and isinstance(value[0], bytes) and len(value[0]) <= _SHORT else None
        last = value[-1] if value and type(value[-1]) is int else None
        return Reply(kind, None, first, last)
    if isinstance(value, bytes):
        return Reply(36, value if len(value) <= _SHORT else None)
    if type(value) is int:
        return Reply(58, str(value).encode())
    if isinstance(value, dict):
        return Reply(37)
    return Reply(44)


def is_error_value(value: object) -> bool:
    """Whether a value returned by ReplyFramer.feed is an error reply."""
    return isinstance(value, hiredis.ReplyError) or (type(value) is Reply and value.is_error)


def _single_reply(data: bytes) -> object:
    """The value of `data` if it is exactly one simple, error, integer or bulk
    reply (what an unpipelined client gets nearly every time), in a handful of
    byte operations; _NEED_DATA when it is anything else. Values are what
    hiredis returns, except that bulk bodies over 64 bytes are not copied
    (b"" stands for them: nothing looks at their content)."""
    kind = data[0]
    nl = data.find(_CRLF)
    if nl < 0:
        return _NEED_DATA
    if kind == 36:  # "$"
        size = data[1:nl]
        if size == b"-1":
            return None if len(data) == nl + 2 else _NEED_DATA
        if not size.isdigit() or len(data) != nl + 4 + int(size) or data[-2:] != _CRLF:
            return _NEED_DATA
        return data[nl + 2 : -2] if len(data) - nl <= _SHORT + 4 else b""
    if nl != len(data) - 2:
        return _NEED_DATA
    if kind == 43:  # "+"
        return data[1:nl]
    if kind == 45:  # "-"
        return hiredis.ReplyError(data[1:nl].decode(errors="replace"))
    if kind == 58 and data[1:nl].lstrip(b"-").isdigit():  # ":"
        return int(data[1:nl])
    return _NEED_DATA


class ReplyFramer:
    """Counts whole replies in a server's byte stream.

    `feed` returns one value per whole reply: what hiredis parsed, on the fast
    path, or a `Reply` on the exact path. `as_reply` turns either into a Reply
    for the few commands whose replies the proxy looks at.
    """

    def __init__(self) -> None:
        self._reader = hiredis.Reader(notEnoughData=_NEED_DATA)
        self._fast_ok = True
        # Exact path state: a header line cut by the read, bytes of a bulk
        # body still to skip, and the open aggregates' remaining element
        # counts (with whether each is an attribute, which is not a reply).
        self._head = b""
        self._skip = 0
        self._skip_kind = 36
        self._skip_capture: bytearray | None = None
        self._first_seen = False  # the top-level aggregate's first element has been seen
        self._stack: list[int] = []
        self._attr: list[bool] = []
        self._top: Reply | None = None
        # After an exact-path feed: where in the fed data each returned reply ends.
        self.last_ends: list[int] = []

    def set_fast_path(self, enabled: bool) -> None:
        """Turn the hiredis path off while every reply must be inspected exactly."""
        self._fast_ok = enabled

    def in_reply(self) -> bool:
        return bool(self._head) or self._skip > 0 or bool(self._stack)

    def feed(self, data: bytes) -> list[object]:
        if not data:
            return []
        if self._fast_ok and not (self._head or self._skip or self._stack):
            single = _single_reply(data)
            if single is not _NEED_DATA:
                return [single]
        if (
            self._fast_ok
            and not (self._head or self._skip or self._stack)
            and data[0] not in b"|!"
            and not _HIREDIS_UNSAFE_REPLY.search(data)
        ):
            reader = self._reader
            replies: list[object] = []
            try:
                reader.feed(data)
                while (value := reader.gets()) is not _NEED_DATA:
                    replies.append(value)
                if _hiredis_idle(reader):
                    return replies
            except (hiredis.ProtocolError, TypeError):  # TypeError: an aggregate as a map key
                pass
            self._reader = hiredis.Reader(notEnoughData=_NEED_DATA)
        try:
            return self._slow(data)
        except ValueError as exc:  # int() of a malformed header
            if isinstance(exc, ProtocolError):
                raise
            raise ProtocolError(f"invalid reply header: {exc}") from None

    def _slow(self, data: bytes) -> list[object]:
        out: list[object] = []
        ends = self.last_ends = []
        carried = len(self._head)
        if self._head:
            data = self._head + data
            self._head = b""
        pos, end = 0, len(data)
        while pos < end:
            if len(ends) < len(out):  # the previous step completed a reply
                ends.append(pos - carried)
            if self._skip:
                take = min(self._skip, end - pos)
                if self._skip_capture is not None:
                    self._skip_capture += data[pos : pos + take]
                self._skip -= take
                pos += take
                if self._skip == 0:
                    text = None
                    if self._skip_capture is not None:
                        text = bytes(self._skip_capture[:-2])
                        self._skip_capture = None
                    self._done(out, self._skip_kind, text, None)
                continue
            nl = data.find(_CRLF, pos)
            if nl < 0:
                # No cap: the server is trusted, and a simple or error line
                # can be long (a Lua error_reply, say).
                self._head = data[pos:]
                break
            kind = data[pos]
            line = data[pos + 1 : nl]
            pos = nl + 2
            if not self._stack:
                self._top = Reply(kind)
                self._first_seen = False
            if kind in _BLOBS:
                size = int(line)
                if size < 0:
                    self._done(out, NIL, None, None)
                elif pos + size + 2 <= end:
                    text = data[pos : pos + size] if size <= _SHORT else None
                    pos += size + 2
                    self._done(out, kind, text, None)
                else:
                    self._skip = size + 2
                    self._skip_kind = kind
                    self._skip_capture = bytearray() if size <= _SHORT else None
            elif kind in _AGGREGATES:
                count = int(line)
                if kind == 37 or kind == 124:  # maps and attributes hold pairs
                    count *= 2
                if kind == 124 and count <= 0:  # an empty attribute: nothing at all
                    if not self._stack:
                        self._top = None
                elif count <= 0:
                    self._done(out, NIL if count < 0 else kind, None, None)
                else:
                    self._stack.append(count)
                    self._attr.append(kind == 124)
            elif kind in _SCALARS:
                self._done(out, kind, line, int(line) if kind == 58 else None)
            else:
                raise ProtocolError(f"unexpected reply type byte {chr(kind)!r}")
        if len(ends) < len(out):
            ends.append(pos - carried)
        return out

    def _done(self, out: list[object], kind: int, text: bytes | None, integer: int | None) -> None:
        """One element (a scalar, or a whole aggregate) is complete."""
        stack = self._stack
        top = self._top
        assert top is not None
        if not stack:
            if kind == NIL:
                top.kind = NIL
            top.text = text
            out.append(top)
            self._top = None
            return
        if len(stack) == 1 and not self._attr[0]:  # a scalar element of the top-level aggregate
            self._element(top, kind, text, integer)
        while stack:
            stack[-1] -= 1
            if stack[-1] > 0:
                return
            stack.pop()
            if self._attr.pop():
                # An attribute is metadata for what follows: not an element
                # of its parent, not a reply of its own.
                if not stack:
                    self._top = None
                return
            if len(stack) == 1 and not self._attr[0]:  # a nested aggregate, as an element
                self._element(top, 42, None, None)
        out.append(top)
        self._top = None

    def _element(self, top: Reply, kind: int, text: bytes | None, integer: int | None) -> None:
        top.last_int = integer
        if not self._first_seen:
            self._first_seen = True
            if text is not None and kind in (36, 43, 61):
                top.first = bytes(text)
