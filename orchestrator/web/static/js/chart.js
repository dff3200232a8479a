// A hand-drawn SVG bar chart: finished items per minute over the last hour.
// No library: sixty rectangles, two axes and a few labels.

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Bucket epoch-second timestamps into per-minute counts ending at `now`.
export function perMinute(times, now = Date.now() / 1000, minutes = 60) {
  const buckets = new Array(minutes).fill(0);
  const start = now - minutes * 60;
  for (const t of times) {
    if (t === null || t === undefined || t < start || t > now + 1) continue;
    const index = Math.min(minutes - 1, Math.floor((t - start) / 60));
    buckets[index] += 1;
  }
  return buckets;
}

// The axis' top: even up to 10 (so the middle tick is whole), else 1, 2, 4, 5 or 10
// times a power of ten.
function niceTop(max) {
  if (max <= 10) return max + (max % 2);
  const magnitude = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 4, 5, 10]) if (m * magnitude >= max) return m * magnitude;
  return max;
}

// series: [{label, values: number[], cls}] stacked per bucket.
export function barChart(series, { width = 600, height = 160 } = {}) {
  const pad = { left: 34, right: 8, top: 10, bottom: 22 };
  const n = series.length ? series[0].values.length : 0;
  const totals = Array.from({ length: n }, (_, i) =>
    series.reduce((sum, one) => sum + one.values[i], 0),
  );
  const top = niceTop(Math.max(1, ...totals));
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": "finished items per minute, last hour",
  });
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  for (const v of [0, top / 2, top]) {
    svg.appendChild(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.appendChild(s("text", { x: pad.left - 4, y: y(v) + 4, class: "tick", "text-anchor": "end" }, String(v)));
  }
  const barW = n ? plotW / n : 0;
  for (let i = 0; i < n; i += 1) {
    let base = 0;
    for (const one of series) {
      const v = one.values[i];
      if (!v) continue;
      const rect = s("rect", {
        x: pad.left + i * barW + 0.5,
        y: y(base + v),
        width: Math.max(1, barW - 1),
        height: y(base) - y(base + v),
        class: "bar " + (one.cls || ""),
      });
      rect.appendChild(s("title", {}, `${n - i} min ago: ${v} ${one.label}`));
      svg.appendChild(rect);
      base += v;
    }
  }
  for (const [i, label] of [[0, "-60m"], [n / 2, "-30m"], [n, "now"]]) {
    svg.appendChild(
      s("text", { x: pad.left + i * barW, y: height - 6, class: "tick", "text-anchor": i === 0 ? "start" : i === n ? "end" : "middle" }, label),
    );
  }
  return svg;
}
