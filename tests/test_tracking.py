"""Client-side caching through a real proxy and real redis-servers (issue 8): CLIENT TRACKING across a pause and a switch.

Invalidations are read as the raw bytes Redis sends; every wait is a blocking
read with a socket timeout, never a timed assertion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inproc import InProcProxy, RawClient, encode, inproc_proxy  # noqa: F401
from servers import RedisServer, proxy_config, wait_until

Factory = Callable[..., Any]

FLUSH_RESP3 = b">2\r\n$10\r\ninvalidate\r\n_\r\n"
FLUSH_RESP2 = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"


def invalidate_resp3(*keys: bytes) -> bytes:
    return b">2\r\n$10\r\ninvalidate\r\n*%d\r\n" % len(keys) + b"".join(b"$%d\r\n%s\r\n" % (len(k), k) for k in keys)


def invalidate_resp2(*keys: bytes) -> bytes:
    body = b"*%d\r\n" % len(keys) + b"".join(b"$%d\r\n%s\r\n" % (len(k), k) for k in keys)
    return b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n" + body


def read_bytes(client: RawClient, expected: bytes) -> bytes:
    """Read until `expected` bytes more have arrived (blocking, with the socket's timeout); return them."""
    start = len(client.received)
    while len(client.received) - start < len(expected):
        data = client.sock.recv(65536)
        assert data, f"closed; got {bytes(client.received[start:])!r}"
        client.received += data
    return bytes(client.received[start:])


def call(client: RawClient, *args: Any, expected: bytes) -> None:
    client.send_bytes(encode(*args))
    assert read_bytes(client, expected) == expected


def switch(proxy: InProcProxy, to: RedisServer) -> None:
    proxy.rewrite_config({**proxy.config, "uplink": {"addr": to.addr}})
    assert proxy.reload()["switched"] is True


def test_resp3_tracking_client_gets_the_full_invalidation_at_a_switch(redis_factory: Factory, inproc_proxy: Factory) -> None:
    """The issue's done-when: a RESP3 tracking client caches a key, the proxy switches, the client receives the full invalidation."""
    old, new = redis_factory(), redis_factory()
    old.client().set("k", "old")
    new.client().set("k", "new")
    proxy: InProcProxy = inproc_proxy(proxy_config(old, admin=False, listen={"addr": "127.0.0.1:0"}))
    client = proxy.raw()
    client.send_bytes(encode("HELLO", "3"))
    assert client.read()  # the map
    call(client, "CLIENT", "TRACKING", "ON", expected=b"+OK\r\n")
    call(client, "GET", "k", expected=b"$3\r\nold\r\n")  # cached now
    # Across a pause: invalidations still arrive while commands are held.
    proxy.pause_and_wait(5)
    old.client().set("k", "old2")
    assert read_bytes(client, invalidate_resp3(b"k")) == invalidate_resp3(b"k")
    proxy.unpause()
    call(client, "GET", "k", expected=b"$4\r\nold2\r\n")
    # The switch: the client is told to drop everything, before any reply from the new server.
    switch(proxy, new)
    assert read_bytes(client, FLUSH_RESP3) == FLUSH_RESP3
    call(client, "GET", "k", expected=b"$3\r\nnew\r\n")
    # Tracking is on at the new server: its changes invalidate what the client read there.
    new.client().set("k", "newer")
    assert read_bytes(client, invalidate_resp3(b"k")) == invalidate_resp3(b"k")
    call(client, "CLIENT", "TRACKINGINFO", expected=b"%3\r\n$5\r\nflags\r\n~1\r\n$2\r\non\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n")


def test_resp2_redirect_pair_across_a_switch(redis_factory: Factory, inproc_proxy: Factory) -> None:
    """One connection subscribes to __redis__:invalidate, another tracks with REDIRECT to its proxy id."""
    old, new = redis_factory(), redis_factory()
    proxy: InProcProxy = inproc_proxy(proxy_config(old, admin=False, listen={"addr": "127.0.0.1:0"}))
    listener, tracker, writer = proxy.raw(), proxy.raw(), proxy.raw()
    listener_id = listener.call("CLIENT", "ID")
    assert listener.call("CLIENT", "ID") == listener_id  # stable
    assert listener.call("SUBSCRIBE", "__redis__:invalidate") == [b"subscribe", b"__redis__:invalidate", 1]
    call(tracker, "CLIENT", "TRACKING", "ON", "REDIRECT", listener_id, expected=b"+OK\r\n")
    call(tracker, "CLIENT", "GETREDIR", expected=b":%d\r\n" % listener_id)
    call(tracker, "GET", "a", expected=b"$-1\r\n")
    call(writer, "SET", "a", "1", expected=b"+OK\r\n")
    assert read_bytes(listener, invalidate_resp2(b"a")) == invalidate_resp2(b"a")

    switch(proxy, new)
    assert read_bytes(listener, FLUSH_RESP2) == FLUSH_RESP2
    assert listener.call("PING") == [b"pong", b""]  # still subscribed, on the new server
    call(tracker, "CLIENT", "GETREDIR", expected=b":%d\r\n" % listener_id)
    call(tracker, "GET", "a", expected=b"$-1\r\n")  # the new server's (empty)
    new.client().set("a", "2")
    assert read_bytes(listener, invalidate_resp2(b"a")) == invalidate_resp2(b"a")
    # The target leaves: Redis reports the redirect broken (RESP2: the invalidation is lost).
    call(tracker, "GET", "a", expected=b"$1\r\n2\r\n")
    listener.close()
    wait_until(lambda: proxy.info()["clients"] == 2, timeout=10, message="the proxy saw the listener leave")
    call(tracker, "CLIENT", "TRACKING", "ON", "REDIRECT", listener_id,
         expected=b"-ERR The client ID you want redirect to does not exist\r\n")


def test_ids_are_the_proxys_and_map_to_the_right_connection(redis_factory: Factory, inproc_proxy: Factory) -> None:
    old, new = redis_factory(), redis_factory()
    proxy: InProcProxy = inproc_proxy(proxy_config(old, admin=False, listen={"addr": "127.0.0.1:0"}))
    a, b = proxy.raw(), proxy.raw()
    a_id = a.call("CLIENT", "ID")
    hello = a.call("HELLO", "3")
    assert hello[b"id"] == a_id
    info = a.call("CLIENT", "INFO")
    assert info.startswith(b"id=%d " % a_id)
    b_id = b.call("CLIENT", "ID")
    listing = a.call("CLIENT", "LIST", "ID", a_id, b_id)
    assert [line.split()[0] for line in listing.splitlines()] == [b"id=%d" % a_id, b"id=%d" % b_id]
    switch(proxy, new)
    assert a.call("CLIENT", "ID") == a_id and b.call("CLIENT", "ID") == b_id
    # CLIENT UNBLOCK and KILL reach the named client's connection on the new server.
    b.send(("BLPOP", "q", "0"))
    # (UNBLOCK answers 0 until BLPOP has reached the server.)
    wait_until(lambda: a.call("CLIENT", "UNBLOCK", b_id) == 1, timeout=10, interval=0.001, message="BLPOP unblocked")
    assert b.read() is None
    assert a.call("CLIENT", "KILL", "ID", b_id) == 1
    assert a.call("CLIENT", "KILL", "ID", 424242) == 0


def test_optin_caching_yes_before_a_switch_still_tracks_the_next_read(redis_factory: Factory, inproc_proxy: Factory) -> None:
    """CLIENT CACHING yes on the old server, the read it announces held by the pause and sent to the new one: still tracked."""
    old, new = redis_factory(), redis_factory()
    new.client().set("k", "new")
    proxy: InProcProxy = inproc_proxy(proxy_config(old, admin=False, listen={"addr": "127.0.0.1:0"}))
    client = proxy.raw()
    assert client.call("HELLO", "3")
    call(client, "CLIENT", "TRACKING", "ON", "OPTIN", expected=b"+OK\r\n")
    call(client, "CLIENT", "CACHING", "yes", expected=b"+OK\r\n")
    proxy.pause_and_wait(5)
    client.send(("GET", "k"))  # held
    proxy.rewrite_config({**proxy.config, "uplink": {"addr": new.addr}})
    assert proxy.reload()["switched"] is True
    proxy.unpause()
    expected = FLUSH_RESP3 + b"$3\r\nnew\r\n"
    assert read_bytes(client, expected) == expected
    new.client().set("k", "newer")
    assert read_bytes(client, invalidate_resp3(b"k")) == invalidate_resp3(b"k")
