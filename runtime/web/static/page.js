// The live page: one server-sent event per update (GET /events), drawn with uPlot (served from the package).
"use strict";
const plots = {};
const COLORS = { bvp: "#c0392b", eda: "#2e86c1", resp: "#16a085", ecg: "#7d3c98" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child === null || child === undefined ? "" : child);
  return node;
}

function fmtDrops(dropped) {
  const parts = Object.entries(dropped || {}).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`);
  return parts.length ? parts.join(", ") : "none";
}

function drawDevices(devices) {
  const box = document.getElementById("devices");
  box.replaceChildren(...devices.map((d) => {
    const security = d.security === null ? "" :
      `security ${d.security}` + (d.encrypted === null ? "" : ` (link ${d.bonded ? "bonded" : d.encrypted ? "encrypted" : "open"})`);
    const shown = d.state === "disconnected" || d.state === "connecting" ? "reconnecting" : d.state;
    const rows = d.streams.map((s) => el("tr", { class: "stream", "data-modality": s.modality },
      el("td", {}, s.modality), el("td", {}, String(s.packets_received)), el("td", {}, String(s.packets_lost)),
      el("td", { class: "quality" }, s.quality === null ? "–" : s.quality.join(", ")),
      el("td", { class: "drops" }, fmtDrops(s.samples_dropped) + (s.windows_withheld ? `; withheld ${s.windows_withheld}` : ""))));
    return el("div", { class: "device", "data-device": d.device, "data-state": d.state },
      el("div", {}, el("span", { class: "name" }, d.device), " ", el("span", { class: `state ${d.state}` }, shown)),
      el("div", { class: "muted" }, security + (d.connects === null ? "" : ` · connects ${d.connects}, drops ${d.disconnects}`)),
      d.last_error && d.state !== "connected" ? el("div", { class: "muted" }, d.last_error) : "",
      el("table", {}, el("thead", {}, el("tr", {}, ...["stream", "packets", "lost", "quality", "dropped"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows)));
  }));
}

function drawSignals(signals, time) {
  const box = document.getElementById("signals");
  for (const [key, s] of Object.entries(signals).sort((a, b) => a[0].localeCompare(b[0]))) {
    const modality = key.split("/").pop();
    if (!plots[key]) {
      const holder = el("div", { class: "plot", "data-stream": key }, el("div", { class: "title" }, key));
      box.append(holder);
      plots[key] = { holder, chart: new uPlot({
        width: 420, height: 140, legend: { show: false }, cursor: { show: false },
        scales: { x: { time: false } },
        axes: [{ size: 28 }, { size: 50 }],
        series: [{}, { stroke: COLORS[modality] || "#333", width: 1.25 }],
      }, [s.t, s.y], holder) };
    } else {
      plots[key].chart.setData([s.t, s.y]);
    }
    plots[key].holder.setAttribute("data-points", String(s.t.length));
    plots[key].holder.setAttribute("data-updated", String(time));
    plots[key].holder.setAttribute("data-last", String(s.y.length ? s.y[s.y.length - 1] : ""));
  }
}

function fillTable(id, rows) {
  document.querySelector(`#${id} tbody`).replaceChildren(...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c)))));
}

function update(state) {
  const health = document.getElementById("health");
  health.textContent = state.healthy === null ? "running" : state.healthy ? "healthy" : "unhealthy";
  health.className = "badge " + (state.healthy === false ? "bad" : "ok");
  document.getElementById("health-reasons").replaceChildren(...state.health_reasons.map((r) => el("li", {}, r)));
  document.getElementById("model").textContent = state.model || "";
  document.getElementById("embeddings").textContent = String(state.embeddings);
  document.getElementById("rate").textContent = `${state.embedding_rate_hz.toFixed(1)} /s`;
  const lat = state.latency_ms;
  document.getElementById("latency").textContent = lat.p50 === null ? "–" : `${lat.p50.toFixed(0)} / ${lat.p95.toFixed(0)} ms`;
  document.getElementById("uptime").textContent = `${state.time_s.toFixed(0)} s`;
  drawDevices(state.devices);
  if (state.signals) drawSignals(state.signals, state.time_s);
  document.getElementById("signals-note").textContent = state.signals_shown ? "" : "signals are shown to authenticated clients only";
  fillTable("predictions", state.predictions.map((p) => [p.subject, p.head.split("/").pop(), p.predicted,
    el("span", {}, ...p.classes.map((c, i) => el("span", {}, el("span", { class: "bar", style: `width:${Math.round(60 * p.probabilities[i])}px` }), `${c} ${p.probabilities[i].toFixed(2)} `)))]));
  fillTable("refused", state.refused.map((r) => [r.name || r.device, r.address || "", r.reason, String(r.attempts)]));
  fillTable("sinks", state.sinks.map((s) => [s.name, String(s.written ?? s.records_written ?? ""), String(s.queued ?? ""),
    String(s.lost ?? ((s.records_failed || 0) + (s.dropped_offline || 0) + (s.outbox_evicted || 0))), s.state || (s.last_error ? `error: ${s.last_error}` : "ok")]));
  document.getElementById("warnings").replaceChildren(...(state.warnings.length ? state.warnings.map((w) =>
    el("li", { class: w.level }, `${w.level}: ${w.message}` + (w.count > 1 ? ` (x${w.count})` : ""))) : [el("li", { class: "muted" }, "no warnings")]));
  document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || 0) + 1));
}

const source = new EventSource("/events");
source.onmessage = (event) => {
  document.getElementById("connection").textContent = "live";
  update(JSON.parse(event.data));
};
source.onerror = () => { document.getElementById("connection").textContent = "connection lost: retrying"; };
