#!/usr/bin/env bash
# Run the proxy for local development: installs the package, makes sure a
# redis-server answers on 127.0.0.1:6379 (starting one if needed), then runs
# `redis-proxy -f CONFIG` (default: config_example.json) in the foreground.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive
PYTHON="${PYTHON:-python3}"
CONFIG="${1:-config_example.json}"

SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo env DEBIAN_FRONTEND=noninteractive)
fi

export PIP_ROOT_USER_ACTION=ignore
export PIP_BREAK_SYSTEM_PACKAGES=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$PYTHON" -m pip install -q -e .

if ! command -v redis-server >/dev/null 2>&1; then
    echo "run.sh: installing redis-server" >&2
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends redis-server redis-tools
fi

redis_answers() {
    # Bash's /dev/tcp avoids depending on redis-cli or nc.
    (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null
}

if ! redis_answers; then
    # Without persistence and with its files in a tmp dir, so the checkout
    # does not collect dump.rdb files.
    redis_dir="$(mktemp -d /tmp/redis-proxy-dev-XXXXXX)"
    echo "run.sh: starting redis-server on 127.0.0.1:6379 (log: $redis_dir/redis.log)" >&2
    redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
        --protected-mode no --daemonize yes --dir "$redis_dir" \
        --logfile "$redis_dir/redis.log"
    for _ in $(seq 1 100); do
        redis_answers && break
        sleep 0.1
    done
    if ! redis_answers; then
        echo "run.sh: redis-server did not come up; see $redis_dir/redis.log" >&2
        exit 1
    fi
fi

# pip may put the console script in a directory that is not on PATH
# (e.g. ~/.local/bin); the module form works everywhere.
if command -v redis-proxy >/dev/null 2>&1; then
    exec redis-proxy -f "$CONFIG"
fi
exec "$PYTHON" -m redis_proxy -f "$CONFIG"
