"""`redis-proxy ... --takeover --detach`: take over in a background process and return once it serves.

For a service manager's reload command (systemd's ExecReload), which must
end: the new proxy runs on, in its own session, as the service's new main
process (it tells systemd its pid: systemd_notify). This process only waits
until the new one owns the pid file (the takeover is done: exit 0) or has
exited (it failed and said why on the same stderr: exit 1).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time

log = logging.getLogger("redis_proxy")

TIMEOUT_S = 120.0  # a takeover's own steps are bounded well within this


def detach(argv: list[str], pidfile: str) -> int:
    child = subprocess.Popen(
        [sys.executable, "-m", "redis_proxy", *argv], stdin=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            log.error("takeover failed (the new process exited with %d); the running proxy keeps serving", code)
            return 1
        if _pid_in(pidfile) == child.pid:
            log.info("takeover done: pid %d serves", child.pid)
            return 0
        time.sleep(0.05)
    log.error("the new process (pid %d) has not taken over after %.0f s; it goes on trying", child.pid, TIMEOUT_S)
    return 1


def _pid_in(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
