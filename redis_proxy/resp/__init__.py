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

from redis_proxy.resp.common import (
    ARRAY,
    ATTRIBUTE,
    BIG_NUMBER,
    BLOB_ERROR,
    BOOLEAN,
    BULK,
    DOUBLE,
    ERROR,
    INTEGER,
    LARGE_ARG,
    LARGE_ARG_PREFIX,
    MAP,
    MAX_ARRAY_LEN,
    MAX_BULK_LEN,
    MAX_INLINE_LEN,
    NULL,
    PUSH,
    SET,
    SIMPLE,
    STREAM_BODY,
    VERBATIM,
    ProtocolError,
)
from redis_proxy.resp.replies import NIL, Reply, ReplyFramer, as_reply, is_error_value
from redis_proxy.resp.requests import Batch, RequestFramer, encode_command, split_inline

__all__ = [
    "ARRAY",
    "ATTRIBUTE",
    "BIG_NUMBER",
    "BLOB_ERROR",
    "BOOLEAN",
    "BULK",
    "DOUBLE",
    "ERROR",
    "INTEGER",
    "LARGE_ARG",
    "LARGE_ARG_PREFIX",
    "MAP",
    "MAX_ARRAY_LEN",
    "MAX_BULK_LEN",
    "MAX_INLINE_LEN",
    "NIL",
    "NULL",
    "PUSH",
    "SET",
    "SIMPLE",
    "STREAM_BODY",
    "VERBATIM",
    "Batch",
    "ProtocolError",
    "Reply",
    "ReplyFramer",
    "RequestFramer",
    "as_reply",
    "encode_command",
    "is_error_value",
    "split_inline",
]
