"""The status page's inline stylesheet and script (no CDN, no build step).

They are inlined into the page with a per-request CSP nonce, so the page works
offline and in locked-down networks, and no other script can run on it.
The script only ever sets textContent and class names: data from the proxy
is never parsed as HTML.
"""

from __future__ import annotations

CSS = """
:root { color-scheme: light; --fg: #1d2330; --muted: #5f6b7a; --line: #dfe3e8; --bg: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 16px; padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header .uplink { color: var(--muted); }
header .uplink code { font: 15px ui-monospace, SFMono-Regular, Menlo, monospace; color: var(--fg); background: var(--bg); padding: 2px 6px; border-radius: 4px; }
.health { font-weight: 600; }
.health-up { color: #15803d; }
.health-down { color: #fff; background: #b91c1c; padding: 2px 8px; border-radius: 4px; }
header .live { margin-left: auto; font-size: 13px; color: var(--muted); }
header .live.err { color: #b42318; }
main { max-width: 1040px; margin: 0 auto; padding: 20px 24px 40px; }
.state { display: inline-block; padding: 4px 14px; border-radius: 999px; font-weight: 700; letter-spacing: .03em; color: #fff; text-transform: uppercase; font-size: 14px; }
.state-running { background: #15803d; }
.state-pausing { background: #d97706; }
.state-paused, .state-failing-over { background: #b91c1c; }
.state-stopping, .state-unknown { background: #6b7280; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 12px; margin-bottom: 20px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: 10px; margin-bottom: 12px; }
.controls form { margin: 0; }
button { font: inherit; font-weight: 600; padding: 8px 18px; border-radius: 6px; border: 1px solid #9aa4b2; background: #fff; cursor: pointer; }
button:hover { background: #eef1f5; }
button:disabled { opacity: .5; cursor: progress; }
button.pause { border-color: #b91c1c; color: #b91c1c; }
button.unpause { border-color: #15803d; color: #15803d; }
button.reload { border-color: #1d4ed8; color: #1d4ed8; }
.result { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; padding: 10px 12px; border-radius: 6px; white-space: pre-wrap; overflow-wrap: anywhere; margin: 0 0 20px; }
.result:empty { display: none; }
.result.ok { background: #ecfdf3; border: 1px solid #abefc6; }
.result.err { background: #fef3f2; border: 1px solid #fecdca; }
.panels { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 700px) { .panels { grid-template-columns: 1fr; } }
section.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
section.panel.full { grid-column: 1 / -1; }
section.panel h2 { font-size: 15px; margin: 0 0 8px; }
table { width: 100%; border-collapse: collapse; font-size: 14px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td { white-space: nowrap; }
td.empty { color: var(--muted); font-style: italic; }
[hidden] { display: none !important; }
.muted, td.muted { color: var(--muted); }
td.good { color: #15803d; font-weight: 600; }
td.bad { color: #b91c1c; font-weight: 600; }
td.wrap { white-space: normal; overflow-wrap: anywhere; }
td.addr { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
td.active-mark { color: #15803d; font-weight: 700; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
td.actions form { display: inline-block; margin: 0 6px 0 0; }
td.actions button { padding: 3px 10px; font-size: 13px; }
button.switch { border-color: #1d4ed8; color: #1d4ed8; }
button.switchover { border-color: #7c3aed; color: #7c3aed; }
.scroll { overflow-x: auto; }
.so { display: grid; grid-template-columns: minmax(240px, 1fr) 2fr; gap: 16px; align-items: start; }
@media (max-width: 700px) { .so { grid-template-columns: 1fr; } }
table.kv th { font-weight: normal; color: var(--muted); white-space: nowrap; }
footer { margin-top: 20px; font-size: 13px; color: var(--muted); }
footer a { color: inherit; }
"""

JS = r"""
(function () {
  "use strict";
  var STATES = ["running", "pausing", "paused", "stopping", "failing-over"];
  function $(id) { return document.getElementById(id); }
  function setText(id, value) {
    var el = $(id);
    var text = String(value);
    if (el && el.textContent !== text) { el.textContent = text; }
  }
  function fmtTime(at) { return new Date(at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"; }
  function fmtDuration(s) {
    s = Math.floor(s);
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), parts = [];
    if (d) { parts.push(d + "d"); }
    if (d || h) { parts.push(h + "h"); }
    if (d || h || m) { parts.push(m + "m"); }
    parts.push(s % 60 + "s");
    return parts.join(" ");
  }
  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = String(text);
    if (cls) { td.className = cls; }
    return td;
  }
  function fillRows(id, rows, emptyText, columns) {
    var body = $(id);
    if (!body) { return; }
    var fresh = document.createDocumentFragment();
    rows.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (c) { tr.appendChild(cell(c[0], c[1])); });
      fresh.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement("tr"), td = cell(emptyText, "empty");
      td.colSpan = columns;
      tr.appendChild(td);
      fresh.appendChild(tr);
    }
    body.replaceChildren(fresh);
  }
  var DASH = "\u2014", ARROW = "\u2192";
  function timeOrDash(at) { return at == null ? DASH : fmtTime(at); }
  function setCell(td, c) {
    var text = String(c[0]);
    if (td.textContent !== text) { td.textContent = text; }
    if (td.className !== c[1]) { td.className = c[1]; }
  }
  // The same cells as page_uplinks.uplink_cells.
  function uplinkCells(name, u) {
    var reach;
    if (u.checked_at == null) { reach = ["not checked yet", "muted"]; }
    else if (u.reachable) { reach = ["yes", "good"]; }
    else { reach = ["no: " + (u.error || "unknown reason"), "bad wrap"]; }
    var role = u.role || DASH;
    if (u.master) { role += " of " + u.master; }
    var link = u.master_link_status || DASH;
    return [[name, ""], [u.addr, "addr"], [u.active ? "active" : "", "active-mark"], [role, ""], reach,
      [link, link === "up" ? "good" : link === "down" ? "bad" : ""], [u.lag_bytes == null ? DASH : u.lag_bytes, "num"]];
  }
  function hidden(form, name, value) {
    var input = document.createElement("input");
    input.type = "hidden"; input.name = name; input.value = value;
    form.appendChild(input);
  }
  function uplinkActions(name, u, actions) {
    var td = document.createElement("td");
    td.className = "actions";
    if (u.active) { return td; }
    actions.forEach(function (a) {
      var form = document.createElement("form"), button = document.createElement("button");
      form.className = "cmd"; form.method = "post"; form.setAttribute("action", "cmd/");
      form.setAttribute("data-confirm", a[2].replace("{name}", name).replace("{addr}", u.addr));
      hidden(form, "cmd", a[0]);
      hidden(form, "to", name);
      button.type = "submit"; button.className = a[0]; button.textContent = a[1];
      button.setAttribute("aria-label", a[1] + " to " + name);
      form.appendChild(button);
      td.appendChild(form);
    });
    return td;
  }
  function applyUplinks(uplinks) {
    var body = $("uplinks");
    if (!body) { return; }
    var names = Object.keys(uplinks);
    var key = names.map(function (n) { return n + "=" + uplinks[n].addr + (uplinks[n].active ? "*" : ""); }).join(",");
    if (body.getAttribute("data-key") === key) {
      // Same rows and controls: update the text in place, so a button is never replaced under the pointer.
      names.forEach(function (n, i) {
        uplinkCells(n, uplinks[n]).forEach(function (c, j) { setCell(body.rows[i].cells[j], c); });
      });
      return;
    }
    var actions = JSON.parse(body.getAttribute("data-actions") || "[]"), fresh = document.createDocumentFragment();
    names.forEach(function (n) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-uplink", n);
      uplinkCells(n, uplinks[n]).forEach(function (c) { tr.appendChild(cell(c[0], c[1])); });
      tr.appendChild(uplinkActions(n, uplinks[n], actions));
      fresh.appendChild(tr);
    });
    if (!names.length) {
      var tr = document.createElement("tr"), td = cell("no named uplinks (see uplinks in the config)", "empty");
      td.colSpan = 8;
      tr.appendChild(td);
      fresh.appendChild(tr);
    }
    body.replaceChildren(fresh);
    body.setAttribute("data-key", key);
  }
  // The same rows as page_uplinks.switchover_rows.
  function switchoverRows(so) {
    var outcome = "running", cls = "muted";
    if (so.result != null) {
      outcome = so.error ? so.result + ": " + so.error : String(so.result);
      cls = so.result === "done" ? "good" : "bad wrap";
    }
    var rows = [
      ["phase", so.phase + (so.running ? " (running)" : ""), ""],
      ["from " + ARROW + " to", (so.from || "?") + " " + ARROW + " " + (so.to || "?"), ""],
      ["lag bytes", so.lag_bytes == null ? DASH : so.lag_bytes, ""]
    ];
    var total = so.sync_total_bytes || 0;
    if (total) {
      rows.push(["full sync", total < 0 ? "the source is writing its snapshot" : (so.sync_read_bytes || 0) + " of " + total + " bytes", ""]);
    }
    if (so.attempt) { rows.push(["catch-up attempt", so.attempt, ""]); }
    if (so.mode === "copy") {
      rows.push(
        ["keys scanned", (so.keys_scanned || 0) + " of ~" + (so.keys_total || 0), ""],
        ["keys copied", (so.keys_copied || 0) + " (" + (so.bytes_copied || 0) + " bytes)", ""],
        ["dirty keys", (so.dirty_keys || 0) + " after round " + (so.rounds || 0), ""],
        ["verified", (so.verify_checked || 0) + " keys, " + (so.verify_mismatches || 0) + " mismatches", ""]
      );
    }
    rows.push(
      ["clients held ms", so.held_ms == null ? DASH : so.held_ms, ""],
      ["result", outcome, cls],
      ["started", timeOrDash(so.started_at), ""],
      ["ended", timeOrDash(so.ended_at), ""]
    );
    return rows;
  }
  // The same rows as page_uplinks.failover_rows.
  function failoverRows(fo) {
    var last = fo.last || {}, result = last.result;
    var outcome = result == null ? "running" : String(result) + (last.error ? ": " + last.error : "");
    return [
      ["state", fo.state, (fo.state === "failing-over" || fo.state === "searching") ? "bad" : ""],
      ["last failover", (last.from || "?") + " " + ARROW + " " + (last.to || "?"), ""],
      ["why", last.reason || DASH, "wrap"],
      ["result", outcome, result === "done" ? "good" : (result == null ? "muted" : "bad wrap")],
      ["time to recover ms", last.recover_ms == null ? DASH : last.recover_ms, ""],
      ["commands held / failed", (last.held_commands || 0) + " / " + (last.failed_commands || 0), ""],
      ["started", timeOrDash(last.started_at), ""]
    ];
  }
  // A panel of page_uplinks._event_panel: a summary table and the last 10 events.
  function applyPanel(prefix, idle, rows, events) {
    var none = $(prefix + "-none"), body = $(prefix + "-body");
    if (!none || !body) { return; }
    none.hidden = !idle;
    body.hidden = idle;
    if (idle) { return; }
    var fresh = document.createDocumentFragment();
    rows.forEach(function (r) {
      var tr = document.createElement("tr"), th = document.createElement("th");
      th.scope = "row";
      th.textContent = r[0];
      tr.appendChild(th);
      tr.appendChild(cell(r[1], r[2]));
      fresh.appendChild(tr);
    });
    $(prefix + "-summary").replaceChildren(fresh);
    fillRows(prefix + "-events", (events || []).slice(-10).map(function (e) {
      return [[fmtTime(e.t)], [e.msg, "wrap"]];
    }), "no events", 2);
  }
  function applySwitchover(so) {
    if (so) { applyPanel("so", so.phase === "idle", switchoverRows(so), so.events); }
  }
  // The same rows and events as page_uplinks.sentinel_rows / sentinel_events.
  function applySentinel(sn) {
    if (!sn) { return; }
    var h = sn.holding;
    var rows = [
      ["master", sn.master_name + " at " + (sn.master || "?") + " (epoch " + sn.config_epoch + ")", ""],
      ["holding", h ? h.held_ms + " ms, promoting " + (h.target || "?") : DASH, h ? "bad" : ""]
    ];
    (sn.sentinels || []).forEach(function (l) {
      rows.push(["sentinel " + l.addr, l.connected ? "connected" : "down: " + (l.error || "?"), l.connected ? "good" : "bad wrap"]);
    });
    var events = (sn.failovers || []).slice().reverse().map(function (f) {
      return {t: f.at, msg: f.result + ": " + f.from_addr + " " + ARROW + " " + (f.to_addr || "?") + ", held " + f.held_ms + " ms (" + f.trigger + ")"};
    });
    applyPanel("sn", false, rows, events);
  }
  function applyFailover(fo) {
    if (fo && fo.state !== "off") { applyPanel("fo", !fo.last, failoverRows(fo), fo.last ? fo.last.events : []); }
  }
  function apply(d) {
    var state = $("state");
    state.textContent = d.state_str;
    state.className = "state state-" + (STATES.indexOf(d.state_str) >= 0 ? d.state_str : "unknown");
    document.title = "redis-proxy: " + d.state_str;
    setText("uplink", d.uplink);
    var health = $("uplink-health");
    if (health) {
      var up = d.uplink_up !== false;
      var since = d.uplink_down_since ? " since " + fmtTime(d.uplink_down_since) : "";
      setText("uplink-health", up ? "up" : "DOWN" + since + ": " + (d.uplink_down_reason || "unknown reason"));
      health.className = up ? "health health-up" : "health health-down";
    }
    setText("clients", d.clients);
    setText("active", d.active_requests);
    setText("waiting", d.waiting_requests);
    setText("txn", d.open_transactions);
    setText("raw", d.raw_connections);
    setText("uptime", fmtDuration(d.uptime_s));
    Object.keys(d.counters).forEach(function (k) { setText("c-" + k, d.counters[k]); });
    fillRows("switches", d.switches.map(function (s) {
      return [[fmtTime(s.at)], [s.from], [s.to], [s.held_ms.toFixed(1), "num"]];
    }), "no switches yet", 4);
    applyUplinks(d.uplinks || {});
    applySwitchover(d.switchover);
    applyFailover(d.failover);
    applySentinel(d.sentinel);
    fillRows("by-name", Object.keys(d.commands_by_name).slice(0, 12).map(function (k) {
      return [[k], [d.commands_by_name[k], "num"]];
    }), "no commands yet", 2);
  }
  function live(text, ok) { var el = $("live"); el.textContent = text; el.className = ok ? "live" : "live err"; }
  var timer = null;
  function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 1000); }
  function refresh() {
    fetch("info.json", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (d) { apply(d); live("live \u00b7 updated " + new Date().toLocaleTimeString(), true); })
      .catch(function (e) { live("not updating: " + e.message, false); })
      .then(schedule);
  }
  function showResult(cmd, ok, text) {
    var el = $("result");
    el.textContent = cmd + ": " + text;
    el.className = "result " + (ok ? "ok" : "err");
  }
  // Delegated: the uplinks table's forms are rebuilt by the script.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.classList || !form.classList.contains("cmd")) { return; }
    event.preventDefault();
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { return; }
    var cmd = form.elements.cmd.value;
    var buttons = document.querySelectorAll("form.cmd button");
    Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
    showResult(cmd, true, "\u2026");
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { Accept: "application/json" }
    })
      .then(function (r) {
        return r.text().then(function (text) {
          var shown = text;
          try { shown = JSON.stringify(JSON.parse(text)); } catch (e) { /* not JSON: show as is */ }
          showResult(cmd, r.ok, shown);
        });
      })
      .catch(function (e) { showResult(cmd, false, "request failed: " + e.message); })
      .then(function () {
        Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
        refresh();
      });
  });
  refresh();
})();
"""
