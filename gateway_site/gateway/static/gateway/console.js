/* The gateway console: render the stats JSON, then poll it every few seconds.
   Everything is written with textContent / DOM calls: names never become HTML. */
(function () {
  "use strict";
  var script = document.currentScript;
  var statsUrl = script.dataset.statsUrl;
  var interval = parseInt(script.dataset.interval, 10) || 2000;
  var SVG = "http://www.w3.org/2000/svg";
  var windowKey = "1";
  var last = null;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function pct(value) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + " %";
  }
  function ms(value, over) {
    if (value === null || value === undefined) return over ? "> " + over + " ms" : "–";
    return "≤ " + value + " ms";
  }
  function latency(w, which) {
    if (!w.requests) return "–";
    return ms(w[which], w.over_ms);
  }
  function errorLevel(rate) {
    if (rate === null || rate === undefined) return "none";
    if (rate >= 0.2) return "high";
    if (rate >= 0.01) return "some";
    return "low";
  }
  function cell(row, field, text, cls) {
    var td = el("td", { "data-field": field }, text);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }
  function figures(row, w) {
    cell(row, "requests", w.requests, "num");
    cell(row, "rate", w.rate.toFixed(2), "num");
    var errors = cell(row, "error-rate", pct(w.error_rate), "num");
    errors.dataset.level = errorLevel(w.error_rate);
    errors.title = w.errors + " / " + w.requests;
    cell(row, "p50", latency(w, "p50_ms"), "num");
    cell(row, "p95", latency(w, "p95_ms"), "num");
  }
  function healthText(h) {
    if (!h || !h.status) return "unknown";
    var text = h.status;
    if (h.replicas) text += " (" + h.healthy + "/" + h.replicas + ")";
    if (h.checked_at) {
      var ago = Math.max(0, Math.round(Date.now() / 1000 - h.checked_at));
      text += ", probed " + ago + " s ago";
    }
    return text;
  }
  function breakerText(b) {
    if (b.state === "open") return "open, half-open in " + b.retry_in + " s";
    if (b.state === "half-open") return "half-open (probing)";
    return b.state;
  }

  function renderServices(data) {
    var body = document.querySelector("[data-services] tbody");
    if (!body) return;
    var rows = document.createDocumentFragment();
    data.services.forEach(function (s) {
      var w = s.windows[windowKey];
      var row = el("tr", { "data-service": s.name, "class": "gw-service" });
      row.appendChild(el("th", { scope: "row" }, s.name));
      cell(row, "health", healthText(s.health)).dataset.state = (s.health && s.health.status) || "unknown";
      cell(row, "breaker", breakerText(s.breaker)).dataset.state = s.breaker.state;
      cell(row, "in-flight", (s.in_flight === null ? "–" : s.in_flight) +
        (s.max_concurrent ? " / " + s.max_concurrent : ""), "num");
      figures(row, w);
      cell(row, "cache", w.cache_ratio === null ? "–" :
        pct(w.cache_ratio) + " (" + w.cache_hits + "/" + (w.cache_hits + w.cache_misses) + ")", "num");
      rows.appendChild(row);
      s.replicas.forEach(function (r) {
        var rw = r.windows[windowKey];
        var rrow = el("tr", { "data-service": s.name, "data-replica": r.index, "class": "gw-replica" });
        rrow.appendChild(el("th", { scope: "row" }, "replica " + (r.index + 1) + " · " + r.address));
        var state = r.ejected_for ? "ejected" : (r.probe || "in rotation");
        var text = r.ejected_for ? "ejected (" + r.ejected_for + " s left)" : state;
        if (r.ejected_for && r.probe) text += ", probe " + r.probe;
        cell(rrow, "health", text).dataset.state = state;
        cell(rrow, "breaker", "");
        cell(rrow, "in-flight", "", "num");
        figures(rrow, rw);
        cell(rrow, "cache", "", "num");
        rows.appendChild(rrow);
      });
    });
    body.replaceChildren(rows);
  }

  function renderTiers(data) {
    var body = document.querySelector("[data-tiers] tbody");
    if (!body) return;
    var rows = document.createDocumentFragment();
    data.tiers.forEach(function (t) {
      var row = el("tr", { "data-tier": t.name });
      row.appendChild(el("th", { scope: "row" }, t.name.replace(/^gateway-/, "")));
      ["1", "5", "15"].forEach(function (k) { cell(row, "refusals-" + k, t.refusals[k], "num"); });
      rows.appendChild(row);
    });
    body.replaceChildren(rows);
  }

  /* clients → tiers → services → replicas: edge thickness is traffic, colour the
     error rate (of the service for its edges, refusals for a tier's). */
  function renderFlow(data) {
    var box = document.querySelector("[data-flow]");
    if (!box) return;
    var tiers = data.tiers.filter(function (t) { return t.name !== "gateway-processing"; });
    var replicas = 0;
    data.services.forEach(function (s) { replicas += s.replicas.length; });
    var rowHeight = 44;
    var height = Math.max(replicas, data.services.length, tiers.length, 1) * rowHeight + 20;
    var width = 860;
    var X = [40, 230, 440, 640];
    var chart = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": "Traffic from clients through tiers and services to replicas",
      "class": "gw-flow-chart" });
    var edges = svg("g", {});
    var nodes = svg("g", {});
    chart.appendChild(edges);
    chart.appendChild(nodes);
    var max = 1;
    data.services.forEach(function (s) { max = Math.max(max, s.windows[windowKey].requests); });
    function thickness(n) { return n ? 2 + 12 * Math.min(n / max, 1) : 1; }
    function edge(x1, y1, x2, y2, n, rate, label) {
      var mid = (x1 + x2) / 2;
      var path = svg("path", { d: "M" + x1 + " " + y1 + " C" + mid + " " + y1 + " " + mid + " " + y2 + " " + x2 + " " + y2,
        "stroke-width": thickness(n).toFixed(1), "class": "gw-edge", "data-level": n ? errorLevel(rate) : "none" });
      path.appendChild(svg("title", {}, label));
      edges.appendChild(path);
    }
    function node(x, y, label, cls) {
      nodes.appendChild(svg("circle", { cx: x, cy: y, r: 6, "class": "gw-node " + (cls || "") }));
      nodes.appendChild(svg("text", { x: x + 10, y: y - 9, "class": "gw-label" }, label));
    }
    function spread(count, index) {
      return 10 + (height - 20) / Math.max(count, 1) * (index + 0.5);
    }
    var clientY = height / 2;
    var tierY = {};
    tiers.forEach(function (t, i) {
      var y = spread(tiers.length, i);
      tierY[t.name] = y;
      var passed = 0;
      data.services.forEach(function (s) { passed += s.windows[windowKey].by_tier[t.name] || 0; });
      var refused = t.refusals[windowKey] || 0;
      var seen = passed + refused;
      edge(X[0], clientY, X[1], y, seen, seen ? refused / seen : null,
        t.name + ": " + passed + " passed, " + refused + " refused");
      node(X[1], y, t.name.replace(/^gateway-/, "") + (refused ? " (" + refused + " refused)" : ""),
        refused ? "gw-refusing" : "");
    });
    var row = 0;
    data.services.forEach(function (s, i) {
      var w = s.windows[windowKey];
      var sy = spread(data.services.length, i);
      tiers.forEach(function (t) {
        var n = w.by_tier[t.name] || 0;
        if (n) edge(X[1], tierY[t.name], X[2], sy, n, w.error_rate, t.name + " → " + s.name + ": " + n);
      });
      s.replicas.forEach(function (r) {
        var rw = r.windows[windowKey];
        var ry = 10 + rowHeight * (row + 0.5);
        row += 1;
        edge(X[2], sy, X[3], ry, rw.requests, rw.error_rate,
          s.name + " → " + r.address + ": " + rw.requests + " tries, errors " + pct(rw.error_rate));
        node(X[3], ry, r.address + (r.ejected_for ? " (ejected)" : ""), r.ejected_for ? "gw-ejected" : "");
      });
      node(X[2], sy, s.name + (s.breaker.state === "open" ? " (open)" : ""), "gw-" + s.breaker.state);
    });
    node(X[0], clientY, "clients");
    box.replaceChildren(chart);
  }

  function render(data) {
    last = data;
    renderServices(data);
    renderTiers(data);
    renderFlow(data);
  }

  function status(text, failed) {
    var node = document.querySelector("[data-status]");
    if (!node) return;
    node.textContent = text;
    node.dataset.failed = failed ? "true" : "false";
  }

  function poll() {
    fetch(statsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.detail || response.statusText);
          return body;
        });
      })
      .then(function (data) {
        render(data);
        status("Live: updated " + new Date(data.generated_at * 1000).toLocaleTimeString(), false);
      })
      .catch(function (error) { status("Not updated: " + error.message, true); })
      .then(function () { window.setTimeout(poll, interval); });
  }

  function start() {
    var initial = document.getElementById("gw-initial");
    if (!initial) return;
    render(JSON.parse(initial.textContent));
    document.querySelectorAll("[data-window]").forEach(function (button) {
      button.addEventListener("click", function () {
        windowKey = button.dataset.window;
        document.querySelectorAll("[data-window]").forEach(function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
        if (last) render(last);
      });
    });
    window.setTimeout(poll, interval);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
