"""GET /history.json and the static files, against a real proxy and redis-server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from admin_client import AdminClient
from servers import RedisServer, proxy_config, wait_until

COLUMNS = {"t", "ops", "p99_ms", "clients", "held", "paused"}


def _history(admin: AdminClient, **params: Any) -> dict[str, Any]:
    response = admin.get("/history.json", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def _history_if(admin: AdminClient, wanted: Callable[[dict[str, Any]], bool], **params: Any) -> dict[str, Any] | None:
    body = _history(admin, **params)
    return body if wanted(body) else None


def test_history_json_samples_traffic_and_marks_a_pause(admin: AdminClient) -> None:
    client = admin.proxy.client()
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            client.set(b"k", b"v")

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        # Samples every second: wait for one that saw the traffic and a round trip's p99.
        body = wait_until(lambda: _history_if(admin, lambda h: any(ops > 0 for ops in h["samples"]["ops"])), timeout=5, message="a sample with ops/s > 0")
    finally:
        stop.set()
        worker.join(5)
    assert body["interval_s"] == 1
    samples = body["samples"]
    assert set(samples) == COLUMNS
    assert len({len(column) for column in samples.values()}) == 1  # columns of equal length
    busy = [i for i, ops in enumerate(samples["ops"]) if ops > 0]
    assert all(samples["p99_ms"][i] is not None and samples["p99_ms"][i] > 0 for i in busy)
    assert samples["clients"][busy[-1]] == 1
    assert body["now"]["state"] == "running" and body["now"]["paused_for_s"] is None
    assert body["now"]["last_error"] is None

    last = samples["t"][-1]
    admin.ok("pause")
    paused = wait_until(
        lambda: _history_if(admin, lambda h: any(e["kind"] == "pause" for e in h["events"]), since=last),
        timeout=5,
        message="a pause event",
    )
    assert all(t > last for t in paused["samples"]["t"])  # only what came after `since`
    assert paused["samples"]["paused"][-1] is True
    assert paused["now"]["state"] == "paused" and paused["now"]["operator_paused"] is True
    held_for = paused["now"]["paused_for_s"]
    assert held_for is not None and 0 <= held_for < 10
    admin.ok("unpause")
    wait_until(
        lambda: any(e["kind"] == "unpause" for e in _history(admin)["events"]), timeout=5, message="an unpause event"
    )


def test_history_json_shows_the_last_reload_error(admin: AdminClient) -> None:
    admin.proxy.config_path.write_text("{not json")
    refused = admin.cmd("reload")
    assert refused.status_code == 409
    now = _history(admin)["now"]
    assert now["last_error"]["what"] == "reload" and now["last_error"]["error"]
    page = admin.get("/").text
    assert "last reload or switch error" in page and now["last_error"]["error"][:20] in page
    event = wait_until(
        lambda: [e for e in _history(admin)["events"] if e["kind"] == "reload-failed"], timeout=5, message="its event"
    )
    assert event[0]["text"].startswith("reload failed: ")


def test_history_json_refuses_a_bad_since(admin: AdminClient) -> None:
    for bad in ("yesterday", "nan", "inf"):
        response = admin.get("/history.json", params={"since": bad})
        assert response.status_code == 400
        assert response.json()["ok"] is False


def test_history_and_static_files_want_the_password(
    redis_server: RedisServer, admin_factory: Callable[..., AdminClient]
) -> None:
    config = proxy_config(redis_server)
    config["admin"]["pass"] = "history-Secret-1"
    admin = admin_factory(config, auth=("ops", "history-Secret-1"))
    for path in ("/history.json", "/static/page.js", "/static/vendor/uplot/uPlot.iife.min.js"):
        assert httpx.get(admin.url + path).status_code == 401, path
        assert admin.get(path).status_code == 200, path
    script = admin.get("/static/charts.js")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    css = admin.get("/static/vendor/uplot/uPlot.min.css")
    assert css.headers["content-type"].startswith("text/css") and ".uplot" in css.text
    assert admin.get("/static/nope.js").status_code == 404
    assert admin.get("/static/../app.py").status_code == 404  # StaticFiles stays inside its directory
