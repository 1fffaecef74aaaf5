#!/usr/bin/env bash
# The project's test command: installs what the test suite needs on a fresh
# Debian machine (apt-get as root, or through sudo), then runs pytest.
# Extra arguments are passed to pytest, e.g. `bash scripts/test.sh -k tls -x`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/apt.sh  # apt_install
PYTHON="${PYTHON:-python3}"

if ! command -v redis-server >/dev/null 2>&1; then
    echo "test.sh: installing redis-server and redis-tools" >&2
    apt_install redis-server redis-tools
fi

# The browser test drives /usr/bin/chromium; the rest of the suite does not
# need it, so a failed install is only a warning.
if [ ! -x /usr/bin/chromium ]; then
    echo "test.sh: installing chromium" >&2
    if ! apt_install chromium; then
        echo "test.sh: WARNING: could not install chromium; browser tests will be skipped or fail" >&2
    fi
fi

# promtool (Debian's prometheus package) checks docker/prometheus.yml; only
# that test needs it (it is skipped without), so a failed install is a warning.
if ! command -v promtool >/dev/null 2>&1; then
    echo "test.sh: installing prometheus (for promtool)" >&2
    if ! apt_install prometheus; then
        echo "test.sh: WARNING: could not install prometheus; the promtool check will be skipped" >&2
    fi
fi

# A virtual environment at the repository root: the system Python stays
# untouched (Debian's is "externally managed" and refuses pip installs).
# Debian ships the venv module separately, in python3-venv.
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv; then
        echo "test.sh: installing python3-venv" >&2
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi
VENV_PYTHON="$PWD/.venv/bin/python"

export PIP_DISABLE_PIP_VERSION_CHECK=1
# -c: the exact versions of constraints.txt, so every machine tests the same dependencies.
"$VENV_PYTHON" -m pip install -q -c constraints.txt -e '.[test]'

# exec: the script's exit code is pytest's (5 = no tests collected is a failure too).
exec "$VENV_PYTHON" -m pytest -q "$@"
