"""Upgrading or restarting the proxy without dropping a client: `redis-proxy --takeover`.

wire.py is the control socket's format (JSON documents with descriptors,
SCM_RIGHTS); giver.py the running proxy's side; taker.py the new process's;
session/handover.py what a session's state becomes in between.
"""
