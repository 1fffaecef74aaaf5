"""Real Redis Sentinel for the tests: a master, its replica and three sentinels (`redis-server --sentinel`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servers import RedisServer, redis_server_binary

MASTER_NAME = "mymaster"
# Redis waits 5 s by default before a diskless full sync, for more replicas to join; one is all there is.
FAST_SYNC = ["--repl-diskless-sync-delay", "0"]


class SentinelServer(RedisServer):
    """`redis-server sentinel.conf --sentinel`, monitoring `master` as MASTER_NAME with a quorum of 2.

    Sentinel rewrites its config file (what it learnt: replicas, other
    sentinels, epochs), so the file lives in the server's own tmp dir and is
    written only once per port: a restart keeps what it learnt.
    """

    def __init__(self, master: RedisServer, quorum: int = 2, extra_conf: str = "", password: str | None = None) -> None:
        super().__init__(password=password)  # the password the helper's clients use
        self.master, self.quorum, self.extra_conf = master, quorum, extra_conf
        self.conf = self.directory / "sentinel.conf"
        self._written_for: int | None = None

    def _command(self) -> list[str]:
        if self._written_for != self.port:  # first start, or a new port after a lost race for the last one
            self.conf.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\nlogfile \"\"\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} {self.quorum}\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n{self.extra_conf}"
            )
            self._written_for = self.port
        binary = redis_server_binary()
        assert binary is not None
        return [binary, str(self.conf), "--sentinel"]

    def master_info(self) -> dict[str, Any]:
        reply = self.client(decode_responses=True).execute_command("SENTINEL", "MASTER", MASTER_NAME)
        return dict(zip(reply[::2], reply[1::2], strict=False)) if isinstance(reply, list) else dict(reply)

    def master_addr(self) -> str:
        host, port = self.client(decode_responses=True).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return f"{host}:{port}"

    def ready(self) -> bool:
        """Knows the replica and the two other sentinels: a failover can be started and elected."""
        info = self.master_info()
        return int(info["num-slaves"]) >= 1 and int(info["num-other-sentinels"]) >= 2


@dataclass
class Setup:
    master: RedisServer
    replica: RedisServer
    sentinels: list[SentinelServer]

    @property
    def addrs(self) -> list[str]:
        return [s.addr for s in self.sentinels]

    def sentinel_section(self, **extra: Any) -> dict[str, Any]:
        return {"addrs": self.addrs, "master_name": MASTER_NAME, **extra}

    def failover(self, via: int = 0) -> None:
        assert self.sentinels[via].client().execute_command("SENTINEL", "FAILOVER", MASTER_NAME) in (b"OK", "OK", True)
