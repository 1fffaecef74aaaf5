"""Framing what clients send: whole commands, exactly where Redis would cut them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain

import hiredis

from redis_proxy.resp.common import (
    ARRAY,
    BULK,
    CRLF,
    LARGE_ARG,
    LARGE_ARG_PREFIX,
    MAX_ARRAY_LEN,
    MAX_BULK_LEN,
    MAX_INLINE_LEN,
    NEED_DATA,
    STREAM_BODY,
    ProtocolError,
    hiredis_idle,
)

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

# Redis 7's limits for a client that has not authenticated (networking.c,
# processMultibulkBuffer, `authRequired`): an array header above 10 or a bulk
# header above 16384 is a protocol error and the connection closes, so an
# unauthenticated peer cannot make the server (or this proxy) buffer much.
# Inline commands have no such check in Redis; its 64 KB line cap applies.
UNAUTH_MAX_ARRAY_LEN = 10
UNAUTH_MAX_BULK_LEN = 16384
# Commands that may authenticate: while unauthenticated, the framer stops
# after one, so what follows is framed only once its outcome is known (Redis
# also parses the next command after running the previous one).
_AUTHENTICATING = frozenset((b"AUTH", b"HELLO"))


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
        parts.append(CRLF)
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
    if value > limit or value < -(2**63):  # string2ll: a long long
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


# One hiredis.Reader for every framer in the process (about 1 KB each otherwise). Framing a
# read is never interrupted (one event loop thread, no callbacks in between), and after every
# read the reader is idle on a frame boundary or replaced (`_fresh_reader`): no framer's
# state stays in it from one read to the next.
_shared_reader = hiredis.Reader(notEnoughData=NEED_DATA)


def _fresh_reader() -> None:
    global _shared_reader
    _shared_reader = hiredis.Reader(notEnoughData=NEED_DATA)


class RequestFramer:
    """Splits a client's byte stream into whole commands."""

    __slots__ = (
        "_buf", "_pos", "_nargs", "_args", "_carry", "_body_left", "_body_len", "_body_parts", "_kept", "_large",
        "_carried", "unauthenticated", "_stopped",
    )

    def __init__(self) -> None:
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
        self._carried = 0  # bytes in `_carry`: with `_buf`, what the client sent that is not yet whole
        # Unauthenticated mode (set by the session while its client must still
        # AUTH): Redis's small limits apply, every read takes the exact path,
        # and framing stops after an AUTH or HELLO until `resume()`.
        self.unauthenticated = False
        self._stopped = False

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as whole commands (the unfinished command, or input held while stopped)."""
        return len(self._buf) + self._carried

    @property
    def stopped(self) -> bool:
        """Framing stopped after an AUTH/HELLO (unauthenticated mode) until `resume()`."""
        return self._stopped

    def peek_unframed(self) -> bytes:
        """What was received and not framed, as `take_unframed` gives it, leaving the framer as it is (a takeover's snapshot)."""
        return b"".join(self._carry) + bytes(self._buf)

    def take_unframed(self) -> bytes:
        """What was received and not framed (an unfinished command), handed out raw; framing is over.

        For a connection that stops being a command stream (SYNC/PSYNC):
        from then on its bytes go upstream as they are.
        """
        data = b"".join(self._carry) + bytes(self._buf)
        self._carry, self._buf, self._carried, self._pos, self._nargs, self._args = [], bytearray(), 0, 0, 0, []
        self._body_left = self._kept = 0
        self._large = self._stopped = False
        return data

    def resume(self) -> list[Batch]:
        """Frame what was held back after an AUTH/HELLO, now that its outcome (and so the limits) is known."""
        if not self._stopped:
            return []
        self._stopped = False
        return self._slow(b"")[0]

    def feed(self, data: bytes) -> list[Batch]:
        """Take the next bytes from the client; return the commands they complete.

        Raises ProtocolError on bytes that are not a valid request; the
        framer is then unusable (the connection should be closed).
        """
        if not data:
            return []
        if self.unauthenticated or self._stopped:
            # Rare (before AUTH) and small by construction: the exact path,
            # which knows the unauthenticated limits and where to stop.
            if self._stopped:
                self._buf += data
                return []
            return self._slow(data)[0]
        if self._buf or self._carry or self._nargs:  # in the middle of a command
            # Finish the command in progress exactly; what follows it starts
            # on a boundary and may take the fast path again.
            out, rest = self._slow(data, finish_one=True)
            return _then(out, self.feed, rest) if rest else out
        if (
            data[0] == ARRAY
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

    def frame_whole(self, data: bytes) -> list[list[bytes]] | None:
        """The hot path's framing: the commands of a read that is exactly whole commands from a
        command boundary, framed by hiredis as Redis frames them (nearly every read of a client that
        waits for its replies). None when the read is anything else: nothing was consumed then, and
        `feed` takes the read. No Batch and no list of batches are built.
        """
        if (
            self.unauthenticated
            or self._stopped
            or self._buf
            or self._carry
            or self._nargs
            or not data
            or data[0] != ARRAY
            or _LARGE_ARRAY.search(data)
            or _ODD_TYPE.search(data)
            or (len(data) >= LARGE_ARG and _LARGE_BULK.search(data))
        ):
            return None
        reader = _shared_reader
        commands: list[list[bytes]] = []
        try:
            reader.feed(data)
            while (command := reader.gets()) is not NEED_DATA:
                if type(command) is not list or not command:
                    raise ProtocolError
                commands.append(command)
            if set(map(type, chain.from_iterable(commands))) - {bytes}:
                raise ProtocolError
            # hiredis_idle(reader), inlined: hiredis stopped on a frame boundary.
            if not reader.has_data():
                reader.feed(b"*0\r\n")
                if reader.gets() == [] and not reader.has_data() and commands:
                    return commands
        except (hiredis.ProtocolError, ProtocolError, TypeError):
            pass
        # Part of a command (or something only the exact path reports): `feed` starts over.
        _fresh_reader()
        return None

    def _fast(self, data: bytes) -> tuple[list[list[bytes]], int] | None:
        """hiredis parse of a read that starts on a command boundary: the
        whole commands, and how many bytes of `data` they take.

        None means "use the exact path for this read": it holds something
        hiredis reads differently from Redis.
        """
        reader = _shared_reader
        commands: list[list[bytes]] = []
        try:
            reader.feed(data)
            while (command := reader.gets()) is not NEED_DATA:
                if type(command) is not list or not command:
                    raise ProtocolError
                commands.append(command)
            # Redis wants arrays of bulk strings; any other element (an
            # integer, a null, a nested array) is the exact path's to report.
            if set(map(type, chain.from_iterable(commands))) - {bytes}:
                raise ProtocolError
            if hiredis_idle(reader):
                return commands, len(data)
        except (hiredis.ProtocolError, ProtocolError, TypeError):
            _fresh_reader()
            return None
        # hiredis holds part of a command. The checks in `feed` leave only
        # canonical encodings (bulk strings, lengths without signs or leading
        # zeros), so the whole commands' length can be computed; it is
        # confirmed by a CRLF before the cut and an array header after it.
        _fresh_reader()
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
        self._carried += len(chunk)
        want = self._body_len + 2 if self._body_len < LARGE_ARG else LARGE_ARG_PREFIX
        if self._kept < want:
            self._body_parts.append(chunk[: want - self._kept])
            self._kept += min(len(chunk), want - self._kept)
        self._body_left -= take
        if self._body_left == 0:
            tail = self._carry[-1][-2:]
            if len(tail) < 2 and len(self._carry) > 1:
                tail = self._carry[-2][-1:] + tail
            if tail != CRLF:
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
        self._carried = 0
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
                    self._carried = 0
                out.append(Batch(run, raw))
                run = []

        try:
            while pos < end:
                if self._nargs == 0:
                    cmd_start = pos
                    if buf[pos] != ARRAY:  # an inline command
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
                            if self.unauthenticated and args[0].upper() in _AUTHENTICATING:
                                self._stopped = True
                                break
                        continue
                    nl = buf.find(CRLF, pos)
                    if nl < 0:
                        if end - pos > MAX_INLINE_LEN:
                            raise ProtocolError("too big mbulk count string")
                        break
                    count = _parse_length(buf[pos + 1 : nl], "multibulk", MAX_ARRAY_LEN, negative_ok=True)
                    if count > UNAUTH_MAX_ARRAY_LEN and self.unauthenticated:
                        raise ProtocolError("unauthenticated multibulk length")
                    if count <= 0:  # *0 and *-N: Redis ignores empty commands; forward nothing
                        flush(pos)
                        pos = run_start = nl + 2
                        continue
                    self._nargs = count
                    self._args = []
                    pos = nl + 2
                    continue
                # one argument: "$len\r\n" body "\r\n"
                if buf[pos] != BULK:
                    got = chr(buf[pos]) if 32 <= buf[pos] < 127 else f"\\x{buf[pos]:02x}"
                    raise ProtocolError(f"expected '$', got '{got}'")
                nl = buf.find(CRLF, pos)
                if nl < 0:
                    if end - pos > MAX_INLINE_LEN:
                        raise ProtocolError("too big bulk count string")
                    break
                size = _parse_length(buf[pos + 1 : nl], "bulk", MAX_BULK_LEN)
                if size > UNAUTH_MAX_BULK_LEN and self.unauthenticated:
                    raise ProtocolError("unauthenticated bulk length")
                body = nl + 2
                if body + size + 2 > end:
                    if size >= STREAM_BODY:
                        self._start_stream(flush, cmd_start, body, size)
                        return b""
                    break
                if buf[body + size : body + size + 2] != CRLF:
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
                        self._carried = 0
                        run_start = pos
                        self._large = False
                    else:
                        run.append(self._args)
                    stop = self.unauthenticated and self._args[0].upper() in _AUTHENTICATING
                    self._args = []
                    if stop:
                        self._stopped = True
                        break
                    if finish_one:
                        break
            # Everything up to the last whole command goes out; the rest stays.
            cut = pos if self._nargs == 0 else cmd_start
            flush(cut)
            del buf[:cut]
            self._pos = pos - cut
            if finish_one and self._nargs == 0 and buf and not self._stopped:
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
        self._carried += len(buf) - cmd_start
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
