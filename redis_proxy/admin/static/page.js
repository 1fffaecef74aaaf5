// The status page's live numbers and buttons (templates/index.html; charts are charts.js).
// It only ever sets textContent and class names: data from the proxy is never
// parsed as HTML.
(function () {
  "use strict";
  var STATES = ["running", "pausing", "paused", "stopping", "failing-over"];
  function $(id) { return document.getElementById(id); }
  // Absolute URLs built from location.origin, which never carries credentials:
  // opened as http://user:pass@host/, the page's own URL does, and Chromium
  // refuses to fetch() any URL with credentials in it (relative ones resolve
  // to such a URL). The browser sends the Basic credentials it cached for the
  // origin on its own. The path is kept so a path prefix in front still works.
  var BASE = location.origin + location.pathname;
  function url(relative) { return new URL(relative, BASE).href; }
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
  // What charts.js shares (it is loaded after this file).
  window.redisProxyPage = {url: url, fmtTime: fmtTime, fmtDuration: fmtDuration};
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
    fetch(url("info.json"), { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (d) { apply(d); live("live \u00b7 updated " + new Date().toLocaleTimeString(), true); })
      .catch(function (e) { live("not updating: " + e.message, false); })
      .then(schedule);
  }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  // The same sentences as page.describe (used after a form post without JavaScript).
  var REFUSED = {pause: "Pause", unpause: "Unpause", reload: "Reload", switch: "Switch", switchover: "Switchover"};
  function describe(cmd, ok, body) {
    if (!ok) {
      var what = REFUSED[cmd] || (cmd ? cmd.charAt(0).toUpperCase() + cmd.slice(1) : "Command");
      return what + " refused: " + (body.error || "no reason given");
    }
    if (cmd === "pause") {
      var inflight = body.in_flight || 0;
      return (body.state === "paused" ? "Paused" : "Pausing") + ": " + plural(body.clients || 0, "client") + " held, " +
        (inflight ? "waiting for " + plural(inflight, "command") + " in flight." : "nothing in flight.");
    }
    if (cmd === "unpause") { return "Unpaused: " + plural(body.released || 0, "held command") + " released."; }
    if (cmd === "reload" || cmd === "switch") {
      var done = cmd === "reload" ? "Reloaded" : "Switched";
      if (!body.switched) { return done + ": the uplink did not change (" + (body.uplink_name || body.uplink) + ")."; }
      return done + ": now on " + (body.uplink_name || body.uplink) + "; clients were held " + body.held_ms + " ms." +
        (body.paused ? " The proxy stays paused (an operator's pause)." : "");
    }
    if (cmd === "switchover") { return "Switchover " + body.from + " " + ARROW + " " + body.to + " started: its progress is below."; }
    return cmd + ": done.";
  }
  function showResult(ok, text) {
    var el = $("result");
    el.textContent = text;
    el.className = "result " + (ok ? "ok" : "err");
  }
  function send(form) {
    var cmd = form.elements.cmd.value;
    var buttons = document.querySelectorAll("form.cmd button");
    Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
    showResult(true, cmd + " \u2026");
    fetch(url(form.getAttribute("action")), {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { Accept: "application/json" }
    })
      .then(function (r) {
        return r.text().then(function (text) {
          var body;
          try { body = JSON.parse(text); } catch (e) { body = {error: "HTTP " + r.status + ": " + text.slice(0, 300)}; }
          showResult(r.ok, describe(cmd, r.ok, body || {}));
        });
      })
      .catch(function (e) { showResult(false, cmd + " failed: the request did not complete (" + e.message + ")"); })
      .then(function () {
        Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
        refresh();
      });
  }
  // Buttons that hold traffic ask first, in the page (no modal browser dialog):
  // the question, then "Yes, <button>" or Cancel. Nothing is posted until Yes.
  var pending = null;
  function ask(form) {
    var box = $("confirm"), yes = $("confirm-yes");
    pending = form;
    $("confirm-text").textContent = form.getAttribute("data-confirm");
    var button = form.querySelector("button");
    yes.textContent = "Yes, " + (button ? button.textContent.toLowerCase() : "do it");
    box.hidden = false;
    $("confirm-no").focus();  // Enter on a stray focus cancels rather than confirms
  }
  function closeAsk() { pending = null; $("confirm").hidden = true; }
  $("confirm-yes").addEventListener("click", function () {
    var form = pending;
    closeAsk();
    if (form) { send(form); }
  });
  $("confirm-no").addEventListener("click", function () {
    closeAsk();
    showResult(true, "Cancelled: nothing was sent.");
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && pending) { closeAsk(); }
  });
  // Delegated: the uplinks table's forms are rebuilt by the script.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.classList || !form.classList.contains("cmd")) { return; }
    event.preventDefault();
    if (form.getAttribute("data-confirm")) { ask(form); } else { send(form); }
  });
  refresh();
})();
