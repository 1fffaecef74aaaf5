"""The PromQL helper the dashboard and alert tests rely on."""

from __future__ import annotations

from promql import parse


def test_finds_metrics_behind_functions_grouping_ranges_and_matchers() -> None:
    query = parse(
        'histogram_quantile(0.99, sum by (job, le) (rate(redis_proxy_x_bucket{job=~"$job", result="failed"}[$__rate_interval])))'
        " / on (job) group_left sum without (instance) (redis_proxy_y_total offset 5m) > 0.001"
    )
    assert query.metrics == {"redis_proxy_x_bucket", "redis_proxy_y_total"}
    assert query.matchers == {("redis_proxy_x_bucket", "result", "failed")}
    assert query.grouping == {"job", "le", "instance"}


def test_a_bare_selector_and_a_comparison() -> None:
    query = parse("redis_proxy_uplink_up == 0")
    assert query.metrics == {"redis_proxy_uplink_up"}
    assert not query.matchers and not query.grouping
