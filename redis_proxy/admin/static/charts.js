// The status page's charts of the last 15 minutes, drawn by uPlot (vendor/uplot)
// from GET history.json: one sample a second, pauses shaded, events marked.
// Also keeps "paused for" and the last reload or switch error current.
(function () {
  "use strict";
  var WINDOW_S = 900;
  var COLORS = {pause: "#b91c1c", unpause: "#15803d", switch: "#1d4ed8", switchover: "#1d4ed8", reload: "#7c3aed",
    "reload-failed": "#ea580c", "switch-failed": "#ea580c"};
  var HELD_BAND = "rgba(185, 28, 28, 0.12)";
  var CHARTS = [
    {id: "chart-ops", key: "ops", color: "#1d4ed8", digits: 0},
    {id: "chart-p99", key: "p99_ms", color: "#d97706", digits: 3},
    {id: "chart-clients", key: "clients", color: "#15803d", digits: 0, whole: true},
    {id: "chart-held", key: "held", color: "#b91c1c", digits: 0, whole: true}
  ];
  function $(id) { return document.getElementById(id); }
  // page.js (loaded first) builds URLs from location.origin, never from a URL
  // that may carry credentials, and formats times and durations: shared here.
  var shared = window.redisProxyPage;
  var url = shared.url, fmtTime = shared.fmtTime, fmtDuration = shared.fmtDuration;

  var data = {t: [], ops: [], p99_ms: [], clients: [], held: [], paused: []};
  var events = [];
  var last = null;  // the newest sample's time: the next poll asks for what came after it

  function inWindow(t) { return last !== null && t > last - WINDOW_S; }

  // Drawn on uPlot's own canvas through its hooks: shading under the series
  // for seconds that held commands, a vertical line per event on top.
  function shadeHeld(u) {
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height, left = u.bbox.left, right = left + u.bbox.width;
    ctx.save();
    ctx.fillStyle = HELD_BAND;
    for (var i = 0; i < data.t.length; i++) {
      if (!data.paused[i]) { continue; }
      var x0 = Math.max(left, u.valToPos(data.t[i] - 1, "x", true)), x1 = Math.min(right, u.valToPos(data.t[i], "x", true));
      if (x1 > x0) { ctx.fillRect(x0, top, Math.max(1, x1 - x0), height); }
    }
    ctx.restore();
  }
  function markEvents(u) {
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height, left = u.bbox.left, right = left + u.bbox.width;
    var shown = 0;
    ctx.save();
    ctx.lineWidth = Math.max(1, Math.round(window.devicePixelRatio || 1)) * 1.5;
    ctx.setLineDash([4 * (window.devicePixelRatio || 1), 3 * (window.devicePixelRatio || 1)]);
    events.forEach(function (e) {
      var x = Math.round(u.valToPos(e.t, "x", true));
      if (x < left || x > right) { return; }
      ctx.strokeStyle = COLORS[e.kind] || "#6b7280";
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      shown++;
    });
    ctx.restore();
    u.root.parentNode.setAttribute("data-marks", String(shown));
  }

  // Up to 15 minutes, ending at the newest sample; a proxy that started a
  // minute ago gets its minute spread over the width (at least MIN_SPAN_S),
  // not squeezed against the right edge.
  var MIN_SPAN_S = 60;
  function xRange() {
    var end = last === null ? Date.now() / 1000 : last;
    var first = data.t.length ? data.t[0] : end;
    return [Math.max(end - WINDOW_S, Math.min(first, end - MIN_SPAN_S)), end];
  }
  // Ticks for counts of things: no "0.5 clients".
  var WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000];
  function makeChart(spec) {
    var el = $(spec.id);
    if (!el || typeof uPlot === "undefined") { return null; }
    var yAxis = {stroke: "#5f6b7a", grid: {stroke: "#eef1f5"}, ticks: {stroke: "#dfe3e8"}, size: 56};
    if (spec.whole) { yAxis.incrs = WHOLE; }
    var opts = {
      width: Math.max(200, el.clientWidth),
      height: 150,
      legend: {show: false},
      // UTC, as every time in the page's tables: one clock whatever the browser's zone.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      cursor: {drag: {x: false, y: false}},
      scales: {
        x: {time: true, range: xRange},
        y: {range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; }}
      },
      series: [{}, {stroke: spec.color, fill: spec.color + "1a", width: 1.5, points: {show: false}}],
      axes: [
        // One row of HH:MM:SS (UTC): uPlot's default second row of dates overlaps on narrow charts.
        {stroke: "#5f6b7a", grid: {stroke: "#eef1f5"}, ticks: {stroke: "#dfe3e8"}, space: 70,
          values: function (u, splits) { return splits.map(function (ts) { return new Date(ts * 1000).toISOString().slice(11, 19); }); }},
        yAxis
      ],
      hooks: {drawClear: [shadeHeld], draw: [markEvents]}
    };
    return {spec: spec, el: el, plot: new uPlot(opts, [[], []], el)};
  }

  var charts = CHARTS.map(makeChart).filter(function (c) { return c !== null; });

  function redraw() {
    charts.forEach(function (c) {
      c.plot.setData([data.t, data[c.spec.key]]);
      c.el.setAttribute("data-points", String(data.t.length));
      var values = data[c.spec.key], now = values.length ? values[values.length - 1] : null;
      $(c.spec.id + "-now").textContent = now === null ? "\u2014" : Number(now).toFixed(c.spec.digits);
    });
  }

  function append(h) {
    var s = h.samples;
    for (var i = 0; i < s.t.length; i++) {
      if (last !== null && s.t[i] <= last) { continue; }
      Object.keys(data).forEach(function (k) { data[k].push(s[k][i]); });
      last = s.t[i];
    }
    events = events.concat(h.events);
    // Keep 15 minutes: older points are off the chart.
    var drop = 0;
    while (drop < data.t.length && !inWindow(data.t[drop])) { drop++; }
    if (drop) { Object.keys(data).forEach(function (k) { data[k].splice(0, drop); }); }
    events = events.filter(function (e) { return inWindow(e.t); });
  }

  function applyNow(now) {
    var held = $("paused-for");
    if (held) {
      held.hidden = now.paused_for_s === null;
      held.textContent = now.paused_for_s === null ? "" :
        (now.operator_paused ? "paused for " : "held for ") + fmtDuration(now.paused_for_s);
    }
    var err = $("last-error"), e = now.last_error;
    if (err) { err.textContent = e ? fmtTime(e.t) + ": " + e.what + ": " + e.error : "none"; }
  }

  var timer = null;
  function poll() {
    var query = last === null ? "history.json" : "history.json?since=" + encodeURIComponent(last);
    fetch(url(query), {headers: {Accept: "application/json"}, cache: "no-store"})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (h) { append(h); applyNow(h.now); redraw(); })
      .catch(function () { /* page.js's "not updating" line already says the admin app is unreachable */ })
      .then(function () { clearTimeout(timer); timer = setTimeout(poll, 1000); });
  }

  window.addEventListener("resize", function () {
    charts.forEach(function (c) { c.plot.setSize({width: Math.max(200, c.el.clientWidth), height: 150}); });
  });
  poll();
})();
