#!/usr/bin/env bash
# Compatibility check (issue 8): run a client library's or Redis's own test
# suite against a fresh redis-server directly and through redis-proxy (this
# checkout's redis_proxy/), and compare test by test. Not part of CI: it
# downloads the suites (PyPI sdist, Debian source package) into compat/.cache
# and takes minutes. See doc/compatibility.md.
#
#   bash scripts/compat.sh redis-py [ARGS]   # redis-py's suite, RESP2 and RESP3 (~7 min)
#   bash scripts/compat.sh redis [ARGS]      # Redis's Tcl suite, external-server mode (~11 min)
#   bash scripts/compat.sh all               # both (no ARGS); exit 0 only if both are
#
# ARGS go to compat/redis_py.py or compat/redis_tcl.py (--help for theirs).
# Exit status 0 only if every difference is in the suite's allow-list.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The proxy's Python: $PYTHON, else the project's .venv (scripts/test.sh), else python3.
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

command -v redis-server >/dev/null || { echo "compat.sh: redis-server is needed (apt-get install redis-server)" >&2; exit 2; }
# The proxy runs from this checkout with $PYTHON: its dependencies must be there.
"$PYTHON" -c "import hiredis, pydantic, starlette" 2>/dev/null || {
    echo "compat.sh: $PYTHON lacks redis-proxy's dependencies; run scripts/test.sh once or pip install -e ." >&2; exit 2; }

what="${1:-all}"; shift || true
case "$what" in
    redis-py) exec "$PYTHON" compat/redis_py.py "$@" ;;
    redis|redis-tcl)
        command -v tclsh >/dev/null || { echo "compat.sh: tclsh (tcl) is needed" >&2; exit 2; }
        exec "$PYTHON" compat/redis_tcl.py "$@" ;;
    all)
        rc=0
        [ $# -eq 0 ] || { echo "compat.sh: 'all' takes no arguments" >&2; exit 2; }
        command -v tclsh >/dev/null || { echo "compat.sh: tclsh (tcl) is needed" >&2; exit 2; }
        "$PYTHON" compat/redis_py.py || rc=1
        "$PYTHON" compat/redis_tcl.py || rc=1
        exit $rc ;;
    *) echo "usage: scripts/compat.sh redis-py|redis|all [ARGS]" >&2; exit 2 ;;
esac
