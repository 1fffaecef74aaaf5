"""redis-proxy: a Redis-protocol-aware proxy for zero-downtime server replacement.

The RESP framers and the session core may be compiled to C extensions with
mypyc (setup.py; README "Performance"). The extensions sit next to their
.py files and Python prefers them; REDIS_PROXY_PURE=1 in the environment
makes this package import the .py files instead, and so does a source file
that changed since the build (a stale extension is never used).
`compiled()` tells which modules are in use compiled. Stdlib only: setup.py
imports COMPILED_MODULES from here.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__version__ = "0.1.0"

# The hot modules, compiled as one mypyc group (their shared library is
# redis_proxy/_hot__mypyc*.so). All of them or none are used.
COMPILED_MODULES = (
    "redis_proxy.resp.common",
    "redis_proxy.resp.requests",
    "redis_proxy.resp.replies",
    "redis_proxy.session.applying",
    "redis_proxy.session.client_ids",
    "redis_proxy.session.core",
    "redis_proxy.session.hotpath",
    "redis_proxy.session.replies",
    "redis_proxy.session.reply_mode",
    "redis_proxy.session.routing",
    "redis_proxy.session.tracking",
    "redis_proxy.session.types",
    "redis_proxy.session.write_tracking",
)
# Written by setup.py next to the extensions: each module's source hash at build time.
SOURCES_FILE = "_compiled_sources.json"


def source_hash(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _module_path(name: str, suffix: str) -> str:
    return os.path.join(os.path.dirname(__file__), *name.split(".")[1:]) + suffix


def _pure_reason() -> str | None:
    """Why the pure-Python modules are used even if extensions are present (None: they need not be)."""
    if os.environ.get("REDIS_PROXY_PURE", "") not in ("", "0"):
        return "REDIS_PROXY_PURE is set"
    try:
        with open(os.path.join(os.path.dirname(__file__), SOURCES_FILE)) as f:
            built = json.load(f)
    except (OSError, ValueError):
        return None  # no record: no extensions built by setup.py (or a pure install)
    for name in COMPILED_MODULES:
        try:
            if built.get(name) != source_hash(_module_path(name, ".py")):
                return f"{name} changed since it was compiled (rebuild: pip install -e .)"
        except OSError:
            return None  # no source next to the extensions: nothing to compare
    return None


class _PureFinder:
    """Finds the .py file of a compiled module, ahead of the extension that shadows it."""

    @classmethod
    def find_spec(cls, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name not in COMPILED_MODULES or not path:
            return None
        for entry in path:
            file = os.path.join(entry, name.rpartition(".")[2] + ".py")
            if os.path.exists(file):
                return importlib.util.spec_from_file_location(name, file)
        return None


PURE_REASON = _pure_reason()
if PURE_REASON is not None:
    sys.meta_path.insert(0, _PureFinder)  # type: ignore[arg-type]


def compiled() -> list[str]:
    """The hot modules in use as compiled extensions ([]: all pure Python)."""
    out = []
    for name in COMPILED_MODULES:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) if module is not None else None
        if module is None:
            spec = importlib.util.find_spec(name)
            origin = spec.origin if spec is not None else None
        if origin and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            out.append(name)
    return out
