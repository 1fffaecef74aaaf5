"""doc/grafana/redis-proxy.json and doc/prometheus/alerts.yml query only what a live proxy exposes.

A real proxy in front of real redis-servers gets a little of everything the
dashboard draws (traffic, an error, a pause, a copy-mode switchover scraped
while it copies then aborted, a switch, a named uplink that replicates), and
its /metrics, scraped twice, must hold every metric and every fixed label
value that the dashboard's and the alerts' expressions name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from admin_client import AdminClient
from promql import Query, parse
from servers import ProxyProcess, RedisServer, proxy_config, wait_until

DOC = Path(__file__).resolve().parents[2] / "doc"
DASHBOARD = DOC / "grafana" / "redis-proxy.json"
ALERTS = DOC / "prometheus" / "alerts.yml"
METRICS_SOURCE = Path(__file__).resolve().parents[2] / "redis_proxy" / "admin" / "metrics.py"

# Series that exist only in a state too fleeting to scrape reliably in a test.
# Each must still be written by metrics.py: a rename there fails this test.
ONLY_SOMETIMES = {
    "redis_proxy_switchover_lag_bytes": "while a replica-mode switchover waits for its target to catch up",
}
# Labels Prometheus adds to every series it scrapes, and histograms' own.
SCRAPE_LABELS = frozenset({"job", "instance", "le"})


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expr) for every panel target, annotation and query variable."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(METRIC{...}, label): METRIC must exist, and carry the label (job/instance: Prometheus's).
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable
            yield f"variable {variable['name']!r}", match.group(1)


def alert_exprs() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", rule["expr"]


def test_dashboard_is_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    kinds = set()
    for panel in dashboard["panels"]:
        kinds.add(panel["type"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == datasource, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == datasource and target["expr"], panel["title"]
    assert {"row", "timeseries", "stat"} <= kinds
    event_annotations = [a for a in dashboard["annotations"]["list"] if "expr" in a]
    assert {a["name"] for a in event_annotations} >= {"Pauses", "Switches", "Switchovers"}
    assert all(a["datasource"] == datasource for a in event_annotations)


def _named(servers: dict[str, RedisServer], active: str) -> dict[str, Any]:
    config = proxy_config(servers[active])
    config["uplinks"] = {name: {"addr": server.addr} for name, server in servers.items()}
    config["uplink"] = active
    return config


def _scrape(admin: AdminClient) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets it has."""
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(admin.get("/metrics").text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample.labels)
    return samples


def _switchover_result(admin: AdminClient) -> str:
    result: str | None = admin.get("/switchover.json").json()["result"]
    assert result is not None
    return result


@pytest.fixture
def live_samples(
    redis_factory: Callable[..., RedisServer], proxy_factory: Callable[..., ProxyProcess]
) -> dict[str, list[dict[str, str]]]:
    old, new, replica = redis_factory(), redis_factory(), redis_factory()
    replica.client().replicaof(*old.addr.split(":"))
    old.client().mset({f"key:{i}": i for i in range(2000)})
    proxy = proxy_factory(_named({"old": old, "new": new, "replica": replica}, "old"))
    admin = AdminClient(proxy)
    try:
        client = proxy.client()
        client.set("k", "v")
        client.get("k")
        with pytest.raises(redis.ResponseError):
            client.lpush("k", "x")  # WRONGTYPE
        admin.ok("pause")
        admin.ok("unpause")
        # 2000 keys at 500 per second: seconds of copying, scraped meanwhile, then aborted.
        response = admin.cmd("switchover", to="new", mode="copy", max_copy_ops=500)
        assert response.status_code == 202, response.text
        wait_until(lambda: "redis_proxy_switchover_keys_copied " in admin.get("/metrics").text, message="copying")
        during = _scrape(admin)
        assert admin.cmd("abort-switchover").status_code == 200
        assert wait_until(lambda: _switchover_result(admin)) == "aborted"
        admin.ok("switch", to="new")
        wait_until(lambda: "redis_proxy_uplink_replication_lag_bytes{" in admin.get("/metrics").text, message="lag")
        after = _scrape(admin)
    finally:
        admin.close()
        replica.client().replicaof("no", "one")  # else the old server's shutdown waits for it (Redis 7)
    for name, labels in during.items():
        after.setdefault(name, []).extend(labels)
    return after


def _missing(where: str, query: Query, samples: dict[str, list[dict[str, str]]]) -> list[str]:
    problems = []
    for metric in query.metrics:
        if metric in ONLY_SOMETIMES:
            # metrics.py spells it f"{PREFIX}_switchover_lag_bytes".
            if f'{{PREFIX}}{metric.removeprefix("redis_proxy")}"' not in METRICS_SOURCE.read_text():
                problems.append(f"{where}: {metric} ({ONLY_SOMETIMES[metric]}) is not in metrics.py")
        elif metric not in samples:
            problems.append(f"{where}: {metric} is not exposed")
    for metric, label, value in query.matchers:
        if metric in samples and not any(labels.get(label) == value for labels in samples[metric]):
            problems.append(f"{where}: no {metric}{{{label}={value!r}}}")
    for label in query.grouping - SCRAPE_LABELS:
        if not any(label in labels for metric in query.metrics for labels in samples.get(metric, [])):
            problems.append(f"{where}: no metric of the expression has a label {label!r}")
    return problems


def test_every_queried_metric_exists_on_a_live_proxy(live_samples: dict[str, list[dict[str, str]]]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    problems: list[str] = []
    queried: set[str] = set()
    for where, expr in [*dashboard_exprs(dashboard), *alert_exprs()]:
        query = parse(expr)
        assert query.metrics, (where, expr)
        queried |= query.metrics
        problems += _missing(where, query, live_samples)
    assert problems == [], "\n".join(problems)
    # The new metrics are in use, on the dashboard or in an alert.
    assert {"redis_proxy_loop_lag_seconds_bucket", "redis_proxy_pauses_total", "redis_proxy_current_pause_seconds"} <= queried
