#!/usr/bin/env bash
# Run the proxy for local development: installs the package into .venv, makes
# sure a redis-server answers on 127.0.0.1:6379 (starting a throwaway one if
# needed, stopped again when the proxy exits), then runs
# `redis-proxy -f CONFIG --pidfile .redis-proxy.pid` (default CONFIG:
# config_example.json) in the foreground. Reload it with
# `kill -HUP "$(cat .redis-proxy.pid)"`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/apt.sh  # apt_install
PYTHON="${PYTHON:-python3}"
CONFIG="${1:-config_example.json}"
PIDFILE="${PIDFILE:-$PWD/.redis-proxy.pid}"

# A virtual environment at the repository root, as scripts/test.sh uses.
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv; then
        echo "run.sh: installing python3-venv" >&2
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi
VENV_PYTHON="$PWD/.venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# REDIS_PROXY_SKIP_INSTALL=1: the venv is already set up (the test suite runs
# this script from inside it and must not reinstall under its own feet).
if [ "${REDIS_PROXY_SKIP_INSTALL:-0}" != 1 ]; then
    # -c: the exact versions of constraints.txt (the ones the tests passed with).
    "$VENV_PYTHON" -m pip install -q -c constraints.txt -e .
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "run.sh: installing redis-server" >&2
    apt_install redis-server redis-tools
fi

redis_answers() {
    # Bash's /dev/tcp avoids depending on redis-cli or nc.
    (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null
}

redis_pid=""
stop_redis() {
    # Only the redis-server this script started, by its own pid.
    if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
        echo "run.sh: stopping the redis-server it started (pid $redis_pid)" >&2
        kill "$redis_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
}

if ! redis_answers; then
    # Without persistence and with its files in a tmp dir, so the checkout
    # does not collect dump.rdb files. Not daemonized: it is this script's
    # child, so its pid is known and the trap below can stop it.
    redis_dir="$(mktemp -d /tmp/redis-proxy-dev-XXXXXX)"
    echo "run.sh: starting redis-server on 127.0.0.1:6379 (log: $redis_dir/redis.log)" >&2
    redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
        --protected-mode no --daemonize no --dir "$redis_dir" \
        --logfile "$redis_dir/redis.log" </dev/null &
    redis_pid=$!
    trap stop_redis EXIT
    for _ in $(seq 1 100); do
        redis_answers && break
        sleep 0.1
    done
    if ! redis_answers; then
        echo "run.sh: redis-server did not come up; see $redis_dir/redis.log" >&2
        exit 1
    fi
fi

# Not exec: the trap above must run when the proxy exits. The proxy runs in
# the background so this shell can pass signals on at once (a foreground
# child would delay the traps until it exits); background jobs of a script
# start with SIGINT ignored, so Ctrl-C is passed on here too (the proxy's
# own handlers replace that setting once it runs).
proxy_pid=""
forward() {
    if [ -n "$proxy_pid" ]; then kill -"$1" "$proxy_pid" 2>/dev/null || true; fi
}
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward HUP' HUP
"$VENV_PYTHON" -m redis_proxy -f "$CONFIG" --pidfile "$PIDFILE" &
proxy_pid=$!
status=0
# wait returns early (>128) when a trapped signal arrives; wait again until
# the proxy itself has exited.
while :; do
    wait "$proxy_pid" && status=0 || status=$?
    kill -0 "$proxy_pid" 2>/dev/null || break
done
exit "$status"
