"""What both framers share: Redis's limits, the protocol error, hiredis helpers."""

from __future__ import annotations

import hiredis

# Redis's own default limits (proto-max-bulk-len, PROTO_INLINE_MAX_SIZE for
# inline commands and header lines). Request arrays: Redis 7 refuses a
# multibulk length above INT_MAX (processMultibulkBuffer: `ll > INT_MAX`);
# the 1M-element cap of older versions applies only before AUTH there, and
# the proxy authenticates clients itself. A large DEL or MSET is legitimate.
MAX_BULK_LEN = 512 * 1024 * 1024
MAX_ARRAY_LEN = 2**31 - 1  # INT_MAX
MAX_INLINE_LEN = 64 * 1024

# Arguments at least this large are not kept in `Batch.commands` (their bytes
# are forwarded from `Batch.raw` anyway); a short prefix stands in for them.
LARGE_ARG = 1024 * 1024
LARGE_ARG_PREFIX = 32

# Bulk bodies this large are streamed: kept as the chunks they arrived in
# rather than appended to the framer's buffer.
STREAM_BODY = 256 * 1024

# RESP type bytes: the first byte of every frame (RESP2 and RESP3).
SIMPLE = ord("+")
ERROR = ord("-")
INTEGER = ord(":")
BULK = ord("$")
ARRAY = ord("*")
NULL = ord("_")
BOOLEAN = ord("#")
DOUBLE = ord(",")
BIG_NUMBER = ord("(")
BLOB_ERROR = ord("!")
VERBATIM = ord("=")
MAP = ord("%")
SET = ord("~")
ATTRIBUTE = ord("|")
PUSH = ord(">")

CRLF = b"\r\n"
# What hiredis returns when it needs more data: a sentinel, because a RESP3
# boolean false is a legitimate `False`.
NEED_DATA = object()


def hiredis_idle(reader: hiredis.Reader) -> bool:
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
