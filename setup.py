"""Optional mypyc compilation of the hot modules (redis_proxy.COMPILED_MODULES).

Everything else about the package is in pyproject.toml. The modules are
compiled only when asked, with REDIS_PROXY_COMPILE=1 in the environment of
`pip install` (mypy, which ships mypyc, and a C compiler with the Python
headers must be present: pip install --no-build-isolation uses the mypy
installed in the environment). Without it, or if compilation fails (a
warning says why), the package installs as pure Python, as before. With
`pip install -e`, the extensions are built in place, next to their .py
files; the package uses them only while those files are unchanged (see
redis_proxy/__init__.py).
"""

from __future__ import annotations

import json
import os
import sys
import warnings

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from redis_proxy import COMPILED_MODULES, SOURCES_FILE, source_hash  # noqa: E402  (stdlib-only module)

GROUP = "redis_proxy._hot"  # its shared library: redis_proxy/_hot__mypyc*.so


def _wanted() -> bool:
    return os.environ.get("REDIS_PROXY_COMPILE", "") not in ("", "0")


def _fallback(why: str) -> None:
    message = f"redis-proxy: not compiling the hot modules ({why}); installing pure Python"
    print(message, file=sys.stderr)
    warnings.warn(message, stacklevel=1)


def _paths() -> list[str]:
    return [os.path.join(*name.split(".")) + ".py" for name in COMPILED_MODULES]


def _ext_modules() -> list:
    if not _wanted():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _fallback("mypyc is not installed: pip install mypy, then pip install --no-build-isolation")
        return []
    try:
        os.chdir(HERE)
        return mypycify(_paths(), opt_level="3", group_name=GROUP)
    except (Exception, SystemExit) as exc:  # mypy errors end in SystemExit
        _fallback(f"mypyc failed: {exc!r}")
        return []


class OptionalBuildExt(build_ext):
    """All the extensions, or none: a failed compile leaves pure Python."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:  # no C compiler, no Python.h, ...
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            _fallback(f"C compilation failed: {exc}")
            return
        self._write_sources()

    def _write_sources(self) -> None:
        """Each module's source hash, next to the extensions: a changed source is not shadowed by a stale build."""
        hashes = {name: source_hash(os.path.join(HERE, path)) for name, path in zip(COMPILED_MODULES, _paths())}
        package_dir = os.path.join(HERE, "redis_proxy") if self.inplace else os.path.join(self.build_lib, "redis_proxy")
        os.makedirs(package_dir, exist_ok=True)
        with open(os.path.join(package_dir, SOURCES_FILE), "w") as f:
            json.dump(hashes, f, indent=1, sort_keys=True)


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
