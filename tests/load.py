"""Client load for switch tests: threads INCRing their own counters, remembering what was acknowledged."""

from __future__ import annotations

import threading
import time

import redis


class Incrementer(threading.Thread):
    """INCRs `switch:{n}` in a loop; keeps the last acknowledged value and the slowest command."""

    def __init__(self, n: int, client: redis.Redis) -> None:
        super().__init__(name=f"incr-{n}", daemon=True)
        self.n, self.client, self.key = n, client, f"switch:{n}"
        self.stop = threading.Event()
        self.last_acked = 0
        self.commands = 0
        self.max_latency = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                started = time.perf_counter()
                value = self.client.incr(self.key)
                self.max_latency = max(self.max_latency, time.perf_counter() - started)
                assert value == self.last_acked + 1, f"INCR returned {value} after {self.last_acked}"
                self.last_acked = value
                self.commands += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def all_progressed(workers: list[Incrementer], marks: list[int]) -> bool:
    return all(w.commands > mark or w.error is not None for w, mark in zip(workers, marks, strict=True))


class Load:
    """N Incrementers on their own connections through a proxy; `finish` stops them and returns the errors."""

    def __init__(self, clients: list[redis.Redis]) -> None:
        self.workers = [Incrementer(n, client) for n, client in enumerate(clients)]

    def start(self) -> Load:
        from servers import wait_until

        for worker in self.workers:
            assert worker.client.ping()  # connected (and handshaken) before the load starts
            worker.start()
        wait_until(lambda: all_progressed(self.workers, [0] * len(self.workers)), timeout=20, message="load started")
        return self

    def progressed_since(self, marks: list[int]) -> bool:
        return all_progressed(self.workers, marks)

    def marks(self) -> list[int]:
        return [w.commands for w in self.workers]

    def finish(self) -> list[str]:
        for worker in self.workers:
            worker.stop.set()
        for worker in self.workers:
            worker.join(20)
            assert not worker.is_alive(), f"{worker.name} is stuck"
        return [f"{w.name}: {type(w.error).__name__}: {w.error}" for w in self.workers if w.error]

    def lost_on(self, server: redis.Redis) -> list[str]:
        """Acknowledged INCRs the server does not have."""
        lost = []
        for worker in self.workers:
            stored = int(server.get(worker.key) or 0)
            if stored < worker.last_acked:
                lost.append(f"{worker.key}: acknowledged {worker.last_acked}, stored {stored}")
        return lost

    @property
    def max_latency_ms(self) -> float:
        return max(w.max_latency for w in self.workers) * 1000
