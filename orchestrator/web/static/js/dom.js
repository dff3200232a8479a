// DOM helpers. Everything that came from the swarm (descriptions, payloads, errors,
// names) goes in as text: h() only ever sets textContent and attributes, never HTML.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

// Replace a container's children (keeps the container, so ids and listeners stay).
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

// A link to an item's page (the server serves this page at /work/{id} too).
// Ids are long (work_<nanoseconds>_<random>): shown as type + random part, whole in the
// tooltip and the address.
export function itemLink(id, full = false) {
  if (!id) return h("span", { class: "muted" }, "—");
  return h("a", { href: "/work/" + encodeURIComponent(id), class: "mono", title: id }, full ? id : shortId(id));
}

export function shortId(id) {
  const match = /^([a-z]+)_\d{12,}_([0-9a-z]+)$/.exec(String(id));
  return match ? `${match[1]}_…${match[2]}` : String(id);
}

// Agent ids to the supervisor's names (w-1, w-2, …), filled from /api/agents.
export const agentNames = new Map();

export function agentLabel(agentId) {
  if (!agentId) return "";
  return agentNames.get(agentId) || shortId(agentId);
}

export function badge(status) {
  return h("span", { class: "badge st-" + String(status || "unknown") }, String(status ?? "?"));
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
  if (seconds < 1) return Math.max(0, seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0) + " ms";
  if (seconds < 10) return seconds.toFixed(2) + "s";
  const s = Math.floor(seconds);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

export function bytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return value.toFixed(unit === 0 ? 0 : 1) + " " + units[unit];
}

export function when(epoch) {
  if (!epoch) return "—";
  return new Date(epoch * 1000).toLocaleString();
}

export function ago(epoch, now = Date.now() / 1000) {
  if (!epoch) return "—";
  const seconds = now - epoch;
  if (seconds < 1) return "just now";
  if (seconds < 60) return Math.floor(seconds) + "s ago";
  return duration(seconds) + " ago";
}

export function pretty(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

export function num(value, digits = 0) {
  if (value === null || value === undefined || !isFinite(value)) return "—";
  return Number(value).toFixed(digits);
}

// The line under the header: errors in red, confirmations in green; text only.
let noticeTimer = 0;
export function notice(message, ok = false) {
  const node = byId("notice");
  node.textContent = message;
  node.className = ok ? "notice ok" : "notice";
  node.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (node.hidden = true), ok ? 4000 : 12000);
}

export function liveState(state) {
  const node = byId("live");
  node.textContent = state;
  node.className = "pill live-" + state;
}

// Runs `task` at most once per `gap` ms however often it is asked for, and once more
// after a run when asked during it: a burst of events costs one refresh, none is lost.
export function throttled(task, gap = 300) {
  let scheduled = false;
  let running = false;
  let again = false;
  let last = 0;
  const go = async () => {
    scheduled = false;
    running = true;
    last = Date.now();
    try {
      await task();
    } finally {
      running = false;
      if (again) {
        again = false;
        run();
      }
    }
  };
  const run = () => {
    if (running) again = true;
    else if (!scheduled) {
      scheduled = true;
      setTimeout(go, Math.max(0, last + gap - Date.now()));
    }
  };
  return run;
}
