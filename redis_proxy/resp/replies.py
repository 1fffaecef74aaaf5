"""Framing what the server sends: whole replies counted, bodies skipped, not kept."""

from __future__ import annotations

import re
from dataclasses import dataclass

import hiredis

from redis_proxy.resp.common import (
    ARRAY,
    ATTRIBUTE,
    BIG_NUMBER,
    BLOB_ERROR,
    BOOLEAN,
    BULK,
    CRLF,
    DOUBLE,
    ERROR,
    INTEGER,
    MAP,
    NEED_DATA,
    NULL,
    PUSH,
    SET,
    SIMPLE,
    VERBATIM,
    ProtocolError,
    hiredis_idle,
)

# hiredis returns a RESP3 attribute as if it were a reply, and does not know
# blob errors: reads that may hold either take the exact path.
_HIREDIS_UNSAFE_REPLY = re.compile(rb"\r\n[|!]")  # literal-led: fast; the first byte is checked apart

NIL = 95  # "_": every kind of null ($-1, *-1, _) is reported as this kind
_SHORT = 64  # string elements up to this size are captured for inspection
_AGGREGATES = frozenset((ARRAY, MAP, SET, PUSH, ATTRIBUTE))
_BLOBS = frozenset((BULK, BLOB_ERROR, VERBATIM))
_SCALARS = frozenset((SIMPLE, ERROR, INTEGER, NULL, DOUBLE, BOOLEAN, BIG_NUMBER))


@dataclass(slots=True)
class Reply:
    """What the proxy needs to know of one whole reply (its body is not kept).

    `first` is the first element of an aggregate when it is a short string,
    `last_int` its last element when that is an integer: together they tell
    pub/sub confirmations ("subscribe", channel, count) from messages.
    `error_at`: the positions of an aggregate's elements that are errors (EXEC's
    reply: which queued commands failed when the transaction ran).
    """

    kind: int
    text: bytes | None = None
    first: bytes | None = None
    last_int: int | None = None
    error_at: tuple[int, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.kind == ERROR or self.kind == BLOB_ERROR

    @property
    def is_nil(self) -> bool:
        return self.kind == NIL


def as_reply(value: object) -> Reply:
    """A Reply for a value parsed by hiredis (the fast path returns those as they are)."""
    if type(value) is Reply:
        return value
    if isinstance(value, hiredis.ReplyError):
        return Reply(ERROR, str(value).encode())
    if value is None:
        return Reply(NIL)
    if isinstance(value, list):  # PushNotification is a list too
        kind = PUSH if isinstance(value, hiredis.PushNotification) else ARRAY
        first = value[0] if value and isinstance(value[0], bytes) and len(value[0]) <= _SHORT else None
        last = value[-1] if value and type(value[-1]) is int else None
        errors = tuple(i for i, v in enumerate(value) if isinstance(v, hiredis.ReplyError))
        return Reply(kind, None, first, last, errors)
    if isinstance(value, bytes):
        return Reply(BULK, value if len(value) <= _SHORT else None)
    if type(value) is int:
        return Reply(INTEGER, str(value).encode())
    if isinstance(value, dict):
        return Reply(MAP)
    return Reply(DOUBLE)  # a float (or a RESP3 boolean: nothing looks at either)


def is_error_value(value: object) -> bool:
    """Whether a value returned by ReplyFramer.feed is an error reply."""
    return isinstance(value, hiredis.ReplyError) or (type(value) is Reply and value.is_error)


def _single_reply(data: bytes) -> object:
    """The value of `data` if it is exactly one simple, error, integer or bulk
    reply (what an unpipelined client gets nearly every time), in a handful of
    byte operations; NEED_DATA when it is anything else. Values are what
    hiredis returns, except that bulk bodies over 64 bytes are not copied
    (b"" stands for them: nothing looks at their content)."""
    kind = data[0]
    nl = data.find(CRLF)
    if nl < 0:
        return NEED_DATA
    if kind == BULK:
        size = data[1:nl]
        if size == b"-1":
            return None if len(data) == nl + 2 else NEED_DATA
        if not size.isdigit() or len(data) != nl + 4 + int(size) or data[-2:] != CRLF:
            return NEED_DATA
        return data[nl + 2 : -2] if len(data) - nl <= _SHORT + 4 else b""
    if nl != len(data) - 2:
        return NEED_DATA
    if kind == SIMPLE:
        return data[1:nl]
    if kind == ERROR:
        return hiredis.ReplyError(data[1:nl].decode(errors="replace"))
    if kind == INTEGER and data[1:nl].lstrip(b"-").isdigit():
        return int(data[1:nl])
    return NEED_DATA


# One hiredis.Reader for every framer's fast path in the process (about 1 KB each otherwise):
# a feed is never interrupted (one event loop thread), and after every feed the reader is
# idle on a frame boundary or replaced, so no framer's state stays in it between reads.
_shared_reader = hiredis.Reader(notEnoughData=NEED_DATA)


def _fresh_reader() -> None:
    global _shared_reader
    _shared_reader = hiredis.Reader(notEnoughData=NEED_DATA)


class ReplyFramer:
    """Counts whole replies in a server's byte stream.

    `feed` returns one value per whole reply: what hiredis parsed, on the fast
    path, or a `Reply` on the exact path. `as_reply` turns either into a Reply
    for the few commands whose replies the proxy looks at.
    """

    __slots__ = (
        "_fast_ok", "_head", "_skip", "_skip_kind", "_skip_capture", "_first_seen", "_stack", "_attr", "_top",
        "last_ends", "_index",
    )

    def __init__(self) -> None:
        self._fast_ok = True
        # Exact path state: a header line cut by the read, bytes of a bulk
        # body still to skip, and the open aggregates' remaining element
        # counts (with whether each is an attribute, which is not a reply).
        self._head = b""
        self._skip = 0
        self._skip_kind = BULK
        self._skip_capture: bytearray | None = None
        self._first_seen = False  # the top-level aggregate's first element has been seen
        self._index = 0  # the position of the top-level aggregate's next element
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
            if single is not NEED_DATA:
                return [single]
        if (
            self._fast_ok
            and not (self._head or self._skip or self._stack)
            and data[0] != ATTRIBUTE
            and data[0] != BLOB_ERROR
            and not _HIREDIS_UNSAFE_REPLY.search(data)
        ):
            reader = _shared_reader
            replies: list[object] = []
            try:
                reader.feed(data)
                while (value := reader.gets()) is not NEED_DATA:
                    replies.append(value)
                if hiredis_idle(reader):
                    return replies
            except (hiredis.ProtocolError, TypeError):  # TypeError: an aggregate as a map key
                pass
            _fresh_reader()
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
            nl = data.find(CRLF, pos)
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
                self._index = 0
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
                if kind == MAP or kind == ATTRIBUTE:  # maps and attributes hold pairs
                    count *= 2
                if kind == ATTRIBUTE and count <= 0:  # an empty attribute: nothing at all
                    if not self._stack:
                        self._top = None
                elif count <= 0:
                    self._done(out, NIL if count < 0 else kind, None, None)
                else:
                    self._stack.append(count)
                    self._attr.append(kind == ATTRIBUTE)
            elif kind in _SCALARS:
                self._done(out, kind, line, int(line) if kind == INTEGER else None)
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
                self._element(top, ARRAY, None, None)
        out.append(top)
        self._top = None

    def _element(self, top: Reply, kind: int, text: bytes | None, integer: int | None) -> None:
        top.last_int = integer
        if kind == ERROR or kind == BLOB_ERROR:
            top.error_at += (self._index,)
        self._index += 1
        if not self._first_seen:
            self._first_seen = True
            if text is not None and kind in (BULK, SIMPLE, VERBATIM):
                top.first = bytes(text)
