"""GET /metrics: Prometheus text built from the proxy's own counters at scrape time.

The forwarding path only bumps plain integers in `Stats`; a custom Collector
turns them into metric families when Prometheus asks, so metrics cost nothing
per command. Each proxy gets a private registry: no process-global state, and
none of prometheus-client's default process/GC collectors mixed in.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

import redis_proxy
from redis_proxy.controller import PAUSED, PAUSING, RUNNING, STOPPING
from redis_proxy.stats import Histogram
from redis_proxy.switchover.status import PHASES, RESULTS

if TYPE_CHECKING:
    from redis_proxy.server import Proxy

PREFIX = "redis_proxy"
STATES: tuple[str, ...] = (RUNNING, PAUSING, PAUSED, STOPPING)


VERSION = redis_proxy.__version__

# (metric name without _total, Stats attribute, help text)
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("error_replies", "error_replies", "Error replies received from the uplink."),
    ("proxy_errors", "proxy_errors", "Errors the proxy itself answered or caused (protocol, auth, uplink, time limit)."),
    ("bytes_received", "bytes_from_clients", "Bytes received from clients."),
    ("bytes_sent", "bytes_to_clients", "Bytes sent to clients."),
    ("client_connections", "clients_total", "Client connections accepted."),
    ("time_limit_kills", "time_limit_kills", "Connections closed because a command exceeded read_time_limit_ms."),
    ("uplink_failures", "uplink_failures", "Failed connections or lost links to the uplink."),
    ("reloads", "reloads", "Successful config reloads."),
    ("reload_failures", "reload_failures", "Refused or failed config reloads."),
    ("switches", "switches", "Uplink switches."),
    ("switch_failures", "switch_failures", "cmd=switch attempts that failed (target refused, drain too long, switching failed)."),
    ("pause_limit_hits", "pause_limit_hits", "Operator pauses ended by max_pause_ms."),
    ("pauses", "pauses", "Holds begun (operator pause, reload, switch, switchover or failover); pause_hold_seconds counts those ended."),
)

# (metric name, Stats attribute, help text); all in seconds.
_HISTOGRAMS: tuple[tuple[str, str, str], ...] = (
    ("latency_seconds", "latency", "Time from forwarding a batch of commands to its last reply."),
    ("proxy_delay_seconds", "proxy_delay", "Time from a batch's arrival from the client to its forwarding upstream."),
    ("pause_hold_seconds", "hold_time", "How long commands were held by a pause, per pause."),
    (
        "loop_lag_seconds",
        "loop_lag",
        "One event loop pass, sampled every 0.25 s: how long a read from a client or the uplink waits before the proxy handles it.",
    ),
)


def _histogram(name: str, help_text: str, hist: Histogram) -> HistogramMetricFamily:
    # Stats keeps one count per bucket; Prometheus buckets are cumulative.
    buckets: list[tuple[str, float]] = []
    running = 0
    # counts has one more entry than bounds (+Inf): zip stops before it, and
    # the +Inf bucket is the total count.
    for bound, count in zip(hist.bounds, hist.counts, strict=False):
        running += count
        # Go-style "0.0001", "1.0", as prometheus-client itself writes le labels.
        buckets.append((floatToGoString(bound), running))  # type: ignore[no-untyped-call]
    buckets.append(("+Inf", hist.count))
    return HistogramMetricFamily(f"{PREFIX}_{name}", help_text, buckets=buckets, sum_value=hist.total)


class ProxyCollector(Collector):
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def collect(self) -> Iterable[Metric]:
        proxy = self.proxy
        stats = proxy.stats
        controller = proxy.controller

        commands = CounterMetricFamily(f"{PREFIX}_commands", "Commands forwarded to the uplink, by name.", labels=["command"])
        for command, count in sorted(stats.names().items()):
            commands.add_metric([command.decode("ascii", "replace")], count)
        yield commands
        for name, attribute, help_text in _COUNTERS:
            yield CounterMetricFamily(f"{PREFIX}_{name}", help_text, value=getattr(stats, attribute))

        gauges = (
            ("in_flight", "Commands forwarded and not yet answered.", proxy.in_flight()),
            ("waiting", "Commands held in client sessions (paused or queued).", controller.waiting),
            ("open_transactions", "Sessions inside MULTI or holding WATCHed keys.", proxy.open_transactions()),
            ("clients", "Connected clients.", proxy.clients()),
            ("raw_connections", "Open listen_raw pipes.", proxy.raw_clients()),
            ("uptime_seconds", "Seconds since the proxy started.", time.time() - stats.started),
        )
        for name, help_text, value in gauges:
            yield GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value=value)

        yield CounterMetricFamily(
            f"{PREFIX}_paused_seconds",
            "Seconds the proxy spent pausing or paused (holding clients' commands), the current pause included.",
            value=controller.paused_seconds(),
        )
        # An alert on a pause lasting too long reads this directly: the counter
        # above only tells how much of a window was paused, not for how long in one go.
        yield GaugeMetricFamily(
            f"{PREFIX}_current_pause_seconds",
            "How long the current hold (operator pause, reload, switch, switchover or failover) has lasted; 0 while running.",
            value=controller.current_pause(),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_uplink_up",
            "1 while the active uplink answers the proxy's own PING (checked every second), else 0.",
            value=1 if proxy.health.up else 0,
        )
        build = GaugeMetricFamily(f"{PREFIX}_build_info", "Always 1; the version is in the label.", labels=["version"])
        build.add_metric([VERSION], 1)
        yield build

        state = GaugeMetricFamily(f"{PREFIX}_state", "The controller's state (1 for the current one).", labels=["state"])
        for candidate in STATES:
            state.add_metric([candidate], 1 if controller.state == candidate else 0)
        yield state

        for name, attribute, help_text in _HISTOGRAMS:
            yield _histogram(name, help_text, getattr(stats, attribute))
        yield from _switchover(proxy)
        yield from _failover(proxy)
        yield from _uplinks(proxy)
        yield from _sentinel(proxy)


def _switchover(proxy: Proxy) -> Iterable[Metric]:
    status = proxy.switchover_status  # through the proxy: each switchover replaces the object
    phase = GaugeMetricFamily(
        f"{PREFIX}_switchover_phase",
        "1 for the phase a running switchover is in, else 0 (all 0 when none runs).",
        labels=["phase"],
    )
    for candidate in PHASES[1:]:  # "idle" is the absence of a switchover, not a phase to alert on
        phase.add_metric([candidate], 1 if status.running and status.phase == candidate else 0)
    yield phase
    if status.running and status.lag_bytes is not None:
        # Absent when unknown: a stale or made-up number would mislead an alert.
        yield GaugeMetricFamily(
            f"{PREFIX}_switchover_lag_bytes",
            "The running switchover's replication lag: source offset minus target offset.",
            value=status.lag_bytes,
        )
    if status.running and status.mode == "copy":
        for name, help_text in (
            ("keys_copied", "The running copy-mode switchover's keys copied (RESTORE or DEL on the target) so far."),
            ("bytes_copied", "The running copy-mode switchover's DUMP payload bytes copied so far."),
            ("dirty_keys", "Keys written by clients since the copy took them, to copy again."),
        ):
            yield GaugeMetricFamily(f"{PREFIX}_switchover_{name}", help_text, value=getattr(status, name))
    finished = CounterMetricFamily(f"{PREFIX}_switchovers", "Finished switchovers, by result.", labels=["result"])
    for result in RESULTS:
        finished.add_metric([result], proxy.stats.switchovers.get(result, 0))
    yield finished


def _failover(proxy: Proxy) -> Iterable[Metric]:
    stats, status = proxy.stats, proxy.failover.status
    done = CounterMetricFamily(f"{PREFIX}_failovers", "Automatic failovers, by result.", labels=["result"])
    for result, count in stats.failovers.items():
        done.add_metric([result], count)
    yield done
    yield CounterMetricFamily(
        f"{PREFIX}_failover_commands_held",
        "Commands held while failing over, then sent to the new uplink.",
        value=stats.failover_commands_held,
    )
    yield CounterMetricFamily(
        f"{PREFIX}_failover_commands_failed",
        "Commands held while failing over, then failed: no candidate within max_hold_ms.",
        value=stats.failover_commands_failed,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_failing_over", "1 while the active uplink is down and a candidate is sought, else 0.",
        value=1 if status.state in ("failing-over", "searching") else 0,
    )
    last = status.last
    if last is not None and last.recover_ms is not None:
        yield GaugeMetricFamily(
            f"{PREFIX}_failover_last_recover_seconds",
            "The last failover's time to recover: uplink declared down to switched.",
            value=last.recover_ms / 1000,
        )


def _uplinks(proxy: Proxy) -> Iterable[Metric]:
    states = proxy.uplinks_status.snapshot()
    reachable = GaugeMetricFamily(
        f"{PREFIX}_uplink_reachable",
        "1 when the named uplink answered the last INFO replication (polled every 2 s), else 0.",
        labels=["uplink"],
    )
    lag = GaugeMetricFamily(
        f"{PREFIX}_uplink_replication_lag_bytes",
        "A named uplink that replicates from another: bytes behind it (only where both answered).",
        labels=["uplink"],
    )
    for name, state in states.items():
        reachable.add_metric([name], 1 if state.reachable else 0)
        if state.lag_bytes is not None:
            lag.add_metric([name], state.lag_bytes)
    yield reachable
    yield lag


def _sentinel(proxy: Proxy) -> Iterable[Metric]:
    follower = proxy.sentinel
    if follower is None:
        return
    connected = GaugeMetricFamily(
        f"{PREFIX}_sentinel_connected", "1 while the proxy follows this sentinel's events, else 0.", labels=["sentinel"]
    )
    for link in follower.links:
        connected.add_metric([link.addr], 1 if link.connected else 0)
    yield connected
    failovers = CounterMetricFamily(
        f"{PREFIX}_sentinel_failovers", "Sentinel failovers the proxy followed, by result.", labels=["result"]
    )
    for result, count in follower.results.items():
        failovers.add_metric([result], count)
    yield failovers
    last = follower.failovers[0] if follower.failovers else None
    if last is not None:
        yield GaugeMetricFamily(
            f"{PREFIX}_sentinel_last_hold_seconds",
            "How long clients were held during the last Sentinel failover the proxy followed.",
            value=last.held_ms / 1000,
        )


def make_registry(proxy: Proxy) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(proxy))
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
