// An item's trace as a timeline: one lane per process (agent, supervisor, CLI), one bar
// per span on a shared time axis. Bars are positioned in percent so the page can resize.

import { h, agentLabel } from "./dom.js";

function laneOf(span) {
  const r = span.resource || {};
  const a = span.attributes || {};
  const role = r["swarm.role"] || "process";
  const agentId = r["swarm.agent.id"] || (role === "agent" ? a["swarm.agent.id"] : null);
  const agent = agentId ? agentLabel(agentId) : null;
  const pid = r["process.pid"];
  const host = r["host.name"];
  const who = agent ? `${role} ${agent}` : role;
  return pid ? `${who} (pid ${pid}${host ? " on " + host : ""})` : who;
}

function nanos(span, key) {
  const value = span[key + "_unix_nano"];
  if (value !== undefined && value !== null) return Number(value) / 1e6; // ms
  const iso = span[key + "_time"];
  return iso ? Date.parse(iso) : NaN;
}

export function timeline(spans) {
  const rows = spans
    .map((span) => ({ span, start: nanos(span, "start"), end: nanos(span, "end"), lane: laneOf(span) }))
    .filter((row) => isFinite(row.start));
  if (!rows.length) return h("p", { class: "muted" }, "No spans recorded for this item.");
  for (const row of rows) if (!isFinite(row.end) || row.end < row.start) row.end = row.start;
  const t0 = Math.min(...rows.map((r) => r.start));
  const t1 = Math.max(...rows.map((r) => r.end));
  const total = Math.max(t1 - t0, 1);
  const lanes = new Map();
  for (const row of rows.sort((a, b) => a.start - b.start)) {
    if (!lanes.has(row.lane)) lanes.set(row.lane, []);
    lanes.get(row.lane).push(row);
  }
  const axis = h(
    "div",
    { class: "tl-axis" },
    h("span", {}, "0 ms"),
    h("span", {}, (total / 2).toFixed(total < 20 ? 2 : 0) + " ms"),
    h("span", {}, total.toFixed(total < 20 ? 2 : 0) + " ms"),
  );
  const body = [];
  for (const [lane, items] of lanes) {
    // Spans of one process that overlap go on separate rows of its lane.
    const rowsEnd = [];
    const bars = items.map((row) => {
      let level = rowsEnd.findIndex((end) => end <= row.start);
      if (level < 0) level = rowsEnd.push(row.end) - 1;
      else rowsEnd[level] = row.end;
      const left = ((row.start - t0) / total) * 100;
      const width = Math.max(((row.end - row.start) / total) * 100, 0.4);
      const ms = row.end - row.start;
      // A span file line has status "ERROR" and status_message; the API's
      // {"code", "description"}: both read the same here.
      const status = row.span.status;
      const code = status && typeof status === "object" ? status.code : status;
      const why = status && typeof status === "object" ? status.description : row.span.status_message;
      const error = code === "ERROR";
      const label = `${row.span.name} · ${ms.toFixed(ms < 10 ? 3 : 1)} ms` + (error && why ? ` · ${why}` : "");
      return h(
        "div",
        {
          class: "tl-bar" + (error ? " error" : ""),
          style: { left: left + "%", width: width + "%", top: level * 22 + "px" },
          title: label,
        },
        h("span", { class: "tl-name" }, row.span.name),
      );
    });
    body.push(
      h(
        "div",
        { class: "tl-lane" },
        h("div", { class: "tl-label", title: lane }, lane),
        h("div", { class: "tl-track", style: { height: Math.max(1, rowsEnd.length) * 22 + "px" } }, bars),
      ),
    );
  }
  return h("div", { class: "timeline" }, axis, body, spanTable(rows, t0));
}

// The same spans as rows, for reading names and times a narrow bar cannot show.
function spanTable(rows, t0) {
  return h("details", { class: "spans", open: true },
    h("summary", { class: "muted small" }, `${rows.length} spans`),
    h("table", {},
      h("thead", {}, h("tr", {}, ["at", "took", "span", "process", "status"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((row) => {
        const status = row.span.status;
        const code = status && typeof status === "object" ? status.code : status;
        const why = status && typeof status === "object" ? status.description : row.span.status_message;
        return h("tr", { class: code === "ERROR" ? "error" : null },
          h("td", { class: "num" }, "+" + (row.start - t0).toFixed(1) + " ms"),
          h("td", { class: "num" }, (row.end - row.start).toFixed(2) + " ms"),
          h("td", { class: "mono" }, row.span.name),
          h("td", { class: "small" }, row.lane),
          h("td", {}, code || "", why ? " " + why : ""));
      }))));
}
