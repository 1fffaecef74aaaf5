"""A pytest plugin (loaded with `-p pytest_outcomes`, this directory on
PYTHONPATH) that writes one JSON object per test to $COMPAT_OUTCOMES:
{"id": nodeid, "outcome": "passed|failed|error|skipped|xfailed|xpassed",
 "first": the first error line, "repaired": what the guard had to undo}.
It runs inside redis-py's suite's venv, so it uses nothing but pytest.

The guard: a test that sets `requirepass` and fails before its finalizer
resets it (through the proxy: AUTH refused) would leave every later test
with NOAUTH. So the plugin holds one idle connection of its own to the
server itself ($COMPAT_SERVER_PORT, not through the proxy; named
compat-guard, opened before the first test, in both runs alike), which
stays authenticated whatever password is set later. After each test a
fresh connection PINGs the server; on NOAUTH the guard resets
`requirepass` and the default user through its connection (or, if that was
killed, with a string literal of the test's module as the password) and
records it on that test. Directly, tests clean up after themselves and the
guard never acts.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import socket
from typing import Any

import pytest

_results: dict[str, dict[str, str]] = {}


def _cmd(sock: socket.socket, *args: str) -> bytes:
    """Send one command; the first line of its reply (enough for +OK/-ERR/:n)."""
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    sock.sendall(b"".join(out))
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def _literals(item: Any) -> list[str]:
    try:
        tree = ast.parse(inspect.getsource(inspect.getmodule(item.function)))  # type: ignore[arg-type]
    except (OSError, TypeError, SyntaxError):
        return []
    seen: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) < 100:
            seen[node.value] = None
    # the test's own literals first
    try:
        own = [n.value for n in ast.walk(ast.parse(inspect.getsource(item.function).lstrip()))
               if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    except (OSError, TypeError, SyntaxError):
        own = []
    return own + [x for x in seen if x not in own]


_held: socket.socket | None = None


def _connect() -> socket.socket | None:
    port = os.environ.get("COMPAT_SERVER_PORT")
    return socket.create_connection(("127.0.0.1", int(port)), timeout=5) if port else None


def _hold() -> None:
    """(Re)open the guard's own connection while the server needs no password."""
    global _held
    if _held is not None:
        try:
            if _cmd(_held, "PING") == b"+PONG":
                return
        except OSError:
            pass
        _held.close()
        _held = None
    try:
        s = _connect()
        if s is not None and _cmd(s, "CLIENT", "SETNAME", "compat-guard") == b"+OK":
            _held = s
        elif s is not None:
            s.close()
    except OSError:
        _held = None


def _reset(s: socket.socket) -> bool:
    ok = _cmd(s, "CONFIG", "SET", "requirepass", "") == b"+OK"
    _cmd(s, "ACL", "SETUSER", "default", "on", "nopass", "~*", "&*", "+@all")
    return ok


def _guard(item: Any) -> str:
    try:
        fresh = _connect()
        if fresh is None:
            return ""
        with fresh:
            if not _cmd(fresh, "PING").startswith(b"-NOAUTH"):
                _hold()
                return ""
            try:
                if _held is not None and _reset(_held):
                    return "server left requiring a password; the guard reset requirepass"
            except OSError:
                pass
            for pw in _literals(item):
                if _cmd(fresh, "AUTH", pw) == b"+OK" and _reset(fresh):
                    _hold()
                    return "server left requiring a password; the guard reset requirepass (guessed)"
            return "server left requiring a password; the guard could not reset it"
    except OSError as e:
        return f"the guard could not reach the server: {e}"


def pytest_sessionstart(session: Any) -> None:
    _hold()
    path = os.environ.get("COMPAT_OUTCOMES")
    if path:
        open(path, "w").close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Any:
    yield
    note = _guard(item)
    r = _results.setdefault(item.nodeid, {"id": item.nodeid, "outcome": "passed", "first": ""})
    if note:
        r["repaired"] = note
    path = os.environ.get("COMPAT_OUTCOMES")
    if path:  # one line per test as it ends: a run cut short keeps what it had
        with open(path, "a") as f:
            f.write(json.dumps(r) + "\n")


def _first_line(report: Any) -> str:
    text = getattr(report, "longreprtext", "") or ""
    for line in text.splitlines():
        if line.startswith("E "):
            return line[2:].strip()
    lines = [x for x in text.splitlines() if x.strip()]
    return lines[-1].strip() if lines else ""


def pytest_runtest_logreport(report: Any) -> None:
    cur = _results.setdefault(report.nodeid, {"id": report.nodeid, "outcome": "passed", "first": ""})
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            cur["outcome"] = "xfailed" if report.skipped else "xpassed"
        elif report.failed:
            cur["outcome"] = "failed"
            cur["first"] = cur["first"] or _first_line(report)
        elif report.skipped:
            cur["outcome"] = "skipped"
    elif report.failed:  # setup or teardown
        if cur["outcome"] != "failed":
            cur["outcome"] = "error"
        cur["first"] = cur["first"] or f"[{report.when}] " + _first_line(report)
    elif report.skipped and report.when == "setup":
        cur["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
