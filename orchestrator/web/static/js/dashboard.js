// The dashboard: groups and agents, the queue, throughput, failures, limits, worktrees.
// Loaded once from the API, then refreshed section by section when /api/events says the
// store changed; process samples (CPU, RSS) and limits are re-read every few seconds.

import { get, send, listen, ApiError } from "./api.js";
import { barChart } from "./chart.js";
import {
  h, fill, byId, itemLink, badge, duration, bytes, ago, num, notice, liveState, throttled,
  agentNames, agentLabel,
} from "./dom.js";

const ACTIVE = ["pending", "blocked", "claimed", "in_progress"];
const FINISHED = ["completed", "failed", "dead", "cancelled"];
const RETRYABLE = new Set(["failed", "dead", "cancelled"]);
const QUEUE_ROWS = 50;

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, headers.map(([label, cls]) => h("th", { class: cls }, label)))),
    h("tbody", {}, rows),
  );
}

// A section that failed to load says so in place; the rest of the page goes on.
async function section(id, load) {
  try {
    await load(byId(id));
  } catch (error) {
    fill(byId(id), h("p", { class: "notice" }, `Could not load: ${error.message}`));
  }
}

// A button's request: the button stays disabled until the server answers (a group's
// stop waits for its agents to settle).
async function act(path, done, event) {
  const button = event && event.currentTarget;
  if (button) button.disabled = true;
  try {
    await send(path);
    notice(done, true);
  } catch (error) {
    notice(error instanceof ApiError ? error.message : String(error));
  } finally {
    if (button) button.disabled = false;
  }
  refreshItems();
  refreshAgents();
}

function itemButtons(item) {
  const id = item.work_item_id;
  const buttons = [];
  if (!FINISHED.includes(item.status)) {
    buttons.push(h("button", { type: "button", class: "cancel", onclick: (event) =>
      act(`/api/work/${encodeURIComponent(id)}/cancel`, `cancelled ${id}`, event) }, "cancel"));
  }
  if (RETRYABLE.has(item.status)) {
    buttons.push(h("button", { type: "button", class: "retry", onclick: (event) =>
      act(`/api/work/${encodeURIComponent(id)}/retry`, `${id} is pending again`, event) }, "retry"));
  }
  return h("span", { class: "buttons" }, buttons);
}

// ---- groups and agents ---------------------------------------------------------

function agentRow(agent, now) {
  const running = agent.state === "running";
  return h(
    "tr",
    { "data-agent": agent.name },
    h("td", { class: "mono agent-name" }, agent.name),
    h("td", {}, badge(agent.state)),
    h("td", { class: "text" },
      agent.current ? [itemLink(agent.current), " ", h("span", { class: "muted" }, agent.current_description || "")]
        : h("span", { class: "muted" }, "idle")),
    h("td", { class: "num" }, running && agent.started_at ? duration(now - agent.started_at) : "—"),
    h("td", { class: "num" }, agent.cpu_percent === null || agent.cpu_percent === undefined ? "—" : num(agent.cpu_percent, 1) + "%"),
    h("td", { class: "num" }, bytes(agent.rss_bytes)),
    h("td", { class: "num" }, `${agent.done ?? 0} / ${agent.failed ?? 0}`),
    h("td", { class: "num" }, agent.restarts ?? 0),
    h("td", { class: "num mono pid" }, agent.pid ?? "—"),
  );
}

function groupBlock(group, agents, now) {
  const action = (verb) =>
    h("button", { type: "button", class: "group-" + verb, onclick: (event) =>
      act(`/api/groups/${encodeURIComponent(group.name)}/${verb}`, `${verb}: ${group.name}`, event) }, verb);
  return h(
    "div",
    { class: "group", "data-group": group.name },
    h("h3", {},
      h("span", { class: "mono" }, group.name),
      badge(group.state),
      h("span", { class: "muted small" },
        `${group.running ?? 0}/${group.count ?? 0} running · ${group.backend ?? ""} · ` +
        `${group.done ?? 0} done, ${group.failed ?? 0} failed · ${group.restarts ?? 0} restarts`),
      h("span", { class: "spacer" }),
      h("span", { class: "buttons" }, action("stop"), action("start"), action("restart"))),
    table(
      [["agent"], ["state"], ["current item"], ["uptime", "num"], ["CPU", "num"], ["RSS", "num"],
       ["done / failed", "num"], ["restarts", "num"], ["pid", "num"]],
      agents.map((agent) => agentRow(agent, now)),
      "no agents in this group",
    ),
  );
}

function registeredTable(registered, now) {
  return table(
    [["agent id"], ["status"], ["specialization"], ["team"], ["host"], ["heartbeat"], ["holding"]],
    registered.map((a) =>
      h("tr", { "data-agent": a.agent_id },
        h("td", { class: "mono", title: a.agent_id }, agentLabel(a.agent_id)),
        h("td", {}, badge(a.status)),
        h("td", {}, a.specialization ?? ""),
        h("td", {}, a.team ?? ""),
        h("td", {}, a.host ?? ""),
        h("td", {}, ago(a.last_heartbeat, now)),
        h("td", {}, (a.holding || []).map((id) => [itemLink(id), " "])))),
    "no agents registered in the store",
  );
}

async function loadAgents(node) {
  const [groups, agents] = await Promise.all([get("/api/groups"), get("/api/agents")]);
  const now = Date.now() / 1000;
  const supervisor = agents.supervisor;
  for (const agent of agents.agents || []) if (agent.agent_id) agentNames.set(agent.agent_id, agent.name);
  const pill = byId("swarm-status");
  pill.textContent = supervisor
    ? `supervisor ${supervisor.alive ? supervisor.status || "running" : "not running"} · pid ${supervisor.pid} on ${supervisor.host}`
    : "no supervisor";
  const blocks = (groups.groups || []).map((group) =>
    groupBlock(group, (agents.agents || []).filter((a) => a.group === group.name), now));
  const registered = agents.registered || [];
  fill(node,
    blocks.length ? blocks : h("p", { class: "muted" }, "No supervisor is running (swarm up starts one)."),
    h("details", { class: "registered", open: blocks.length ? null : true },
      h("summary", { class: "muted small" }, `${registered.length} agents registered in the store`),
      registeredTable(registered, now)));
  recentFailuresFromSupervisor = supervisor ? supervisor.recent_failures || [] : [];
}

// ---- queue, finished items, failures ----------------------------------------------

// The newest `n` items in these statuses. The API orders as list-work (priority, then
// oldest first), so take the tail of each priority's list, then order all by when each
// last changed.
const PRIORITIES = ["critical", "high", "medium", "low"];
const TAIL = 100;

async function newest(statuses, n) {
  const query = (priority) => `/api/work?status=${statuses.join(",")}&priority=${priority}`;
  const heads = await Promise.all(PRIORITIES.map((p) => get(query(p) + "&limit=1")));
  const pages = await Promise.all(PRIORITIES.map((p, i) => {
    const total = heads[i].total;
    if (total <= 1) return heads[i];
    return get(query(p) + `&limit=${TAIL}&offset=${Math.max(0, total - TAIL)}`);
  }));
  const time = (item) => item.completed_at || item.updated_at || 0;
  return pages.flatMap((page) => page.items).sort((a, b) => time(b) - time(a)).slice(0, n);
}

function itemRow(item) {
  return h(
    "tr",
    { "data-item": item.work_item_id, "data-status": item.status },
    h("td", {}, itemLink(item.work_item_id)),
    h("td", {}, item.work_type),
    h("td", { class: "text description" }, item.description),
    h("td", {}, item.priority),
    h("td", {}, badge(item.status), item.progress && !FINISHED.includes(item.status) ? ` ${item.progress}%` : ""),
    h("td", { class: "mono small", title: item.agent_id || "" }, agentLabel(item.agent_id)),
    h("td", {}, itemButtons(item)),
  );
}

const ITEM_HEADERS = [["id"], ["type"], ["description"], ["priority"], ["status"], ["agent"], [""]];

function finishedRow(item, now) {
  return h(
    "tr",
    { "data-item": item.work_item_id, "data-status": item.status },
    h("td", {}, itemLink(item.work_item_id)),
    h("td", {}, item.work_type),
    h("td", { class: "text description" }, item.description),
    h("td", {}, badge(item.status)),
    h("td", { class: "small" }, ago(item.completed_at || item.updated_at, now)),
    h("td", { class: "mono small", title: item.agent_id || "" }, agentLabel(item.agent_id)),
    h("td", {}, itemButtons(item)),
  );
}

async function loadCounts(node) {
  const queue = await get("/api/queue");
  const work = queue.work || {};
  const order = [...ACTIVE, ...FINISHED];
  fill(node, order.map((status) =>
    h("div", { class: "count", "data-status": status },
      h("b", {}, work[status] ?? 0), h("span", {}, status.replace("_", " ")))),
    h("div", { class: "count" }, h("b", {}, queue.work_total ?? 0), h("span", {}, "total")));
}

async function loadQueue(node) {
  const filter = byId("queue-filter").value;
  const query = filter === "all" ? "all=true" : filter ? "status=" + filter : "";
  const page = await get(`/api/work?${query}&limit=${QUEUE_ROWS}`);
  fill(node,
    table(ITEM_HEADERS, page.items.map(itemRow), "nothing here"),
    page.total > page.items.length
      ? h("p", { class: "muted small" }, `${page.items.length} of ${page.total} shown`) : null);
}

async function loadFinished(node) {
  const items = await newest(FINISHED, 12);
  const now = Date.now() / 1000;
  fill(node, table([["id"], ["type"], ["description"], ["status"], ["finished"], ["agent"], [""]],
    items.map((item) => finishedRow(item, now)), "nothing has finished yet"));
}

let recentFailuresFromSupervisor = [];

async function loadFailures(node) {
  const items = await newest(["failed", "dead"], 8);
  const seen = new Set(items.map((item) => item.work_item_id));
  const entries = items.map((item) => ({
    at: item.updated_at, id: item.work_item_id, status: item.status, error: item.error,
    who: agentLabel(item.agent_id), what: item.description,
  }));
  for (const f of recentFailuresFromSupervisor) {
    if (seen.has(f.work_item_id)) continue;
    entries.push({ at: f.at, id: f.work_item_id, status: f.status, error: f.error, who: f.agent });
  }
  entries.sort((a, b) => (b.at || 0) - (a.at || 0));
  if (!entries.length) {
    fill(node, h("p", { class: "muted" }, "No failures."));
    return;
  }
  const now = Date.now() / 1000;
  fill(node, entries.slice(0, 6).map((e) =>
    h("div", { class: "failure", "data-item": e.id },
      h("div", {}, itemLink(e.id), " ", badge(e.status), " ",
        h("span", { class: "muted small" }, `${e.who ? e.who + " · " : ""}${ago(e.at, now)}`)),
      e.what ? h("div", { class: "small" }, e.what) : null,
      h("pre", {}, e.error || "(no error recorded)"))));
}

async function loadThroughput(node) {
  const data = await get("/api/throughput?window=1h&bucket=60");
  const buckets = data.buckets || [];
  const done = buckets.map((b) => b.completed || 0);
  const failed = buckets.map((b) => (b.failed || 0) + (b.dead || 0));
  fill(node, barChart([
    { label: "completed", values: done, cls: "done" },
    { label: "failed or dead", values: failed, cls: "fail" },
  ]));
  const total = done.reduce((a, b) => a + b, 0);
  const bad = failed.reduce((a, b) => a + b, 0);
  fill(byId("throughput-note"),
    h("span", { class: "legend" },
      h("span", {}, h("i", { style: { background: "var(--ok)" } }), `${total} completed`),
      h("span", {}, h("i", { style: { background: "var(--bad)" } }), `${bad} failed or dead`),
      h("span", {}, `per minute, ${(total / 60).toFixed(1)}/min on average`)));
}

// ---- limits, budgets, health, worktrees ------------------------------------------------

function meter(used, capacity) {
  const share = capacity ? Math.min(1, used / capacity) : 0;
  return h("div", { class: "meter" + (share >= 0.9 ? " high" : ""), title: `${used} of ${capacity}` },
    h("div", { style: { width: (share * 100).toFixed(1) + "%" } }));
}

async function loadLimits(node) {
  const data = await get("/api/limits");
  const limits = data.limits || [];
  const budgets = data.budgets || [];
  const rows = [];
  for (const view of limits) {
    const figures = Object.entries(view.figures || {});
    rows.push(h("tr", {},
      h("td", { class: "mono" }, view.name),
      h("td", {}, figures.length ? figures.map(([name, f]) =>
        h("div", { class: "small" }, `${name.replaceAll("_", " ")}: ${f.used}/${f.capacity}`, meter(f.used, f.capacity)))
        : h("span", { class: "muted" }, "no rate figure")),
      h("td", { class: "num" }, `${view.in_flight}${view.max_concurrent ? "/" + view.max_concurrent : ""}`),
      h("td", { class: "num" }, view.waiting),
      h("td", { class: "num" }, view.throttled_last_minute)));
  }
  fill(node,
    table([["limit"], ["use"], ["in flight", "num"], ["waiting", "num"], ["429s/min", "num"]], rows,
      "No [[limits]] in swarm.toml."),
    table([["budget"], ["spent"], [""]], budgets.filter((b) => b.max_usd || b.spent_usd).map((b) =>
      h("tr", {},
        h("td", { class: "mono" }, b.budget),
        h("td", {}, `$${num(b.spent_usd, 4)}${b.max_usd !== null && b.max_usd !== undefined ? " of $" + b.max_usd : " (no cap)"}`,
          b.max_usd ? meter(b.spent_usd, b.max_usd) : null),
        h("td", {}, b.exhausted ? badge("exhausted") : ""))),
      "No budget set ([budget] max_usd, or budget_usd per group)."));
}

async function loadHealth() {
  const data = await get("/api/health?window=1h");
  const pill = byId("health");
  pill.textContent = `health ${data.health_score ?? "—"}${data.status ? " · " + data.status : ""}`;
}

async function loadWorktrees(node) {
  let data;
  try {
    data = await get("/api/worktrees");
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      fill(node, h("p", { class: "muted" }, "This server does not list worktrees."));
      return;
    }
    throw error;
  }
  const rows = Array.isArray(data) ? data : data.worktrees || [];
  fill(node, table(
    [["feature"], ["state"], ["branch"], ["port", "num"], ["database"], ["ahead", "num"], ["uncommitted", "num"]],
    rows.map((row) => h("tr", {},
      h("td", { class: "mono" }, row.feature),
      h("td", {}, badge(row.state)),
      h("td", { class: "mono" }, row.branch),
      h("td", { class: "num" }, (row.ports || {}).app ?? "—"),
      h("td", { class: "mono" }, row.database || "—"),
      h("td", { class: "num" }, row.ahead ?? "—"),
      h("td", { class: "num" }, row.uncommitted ?? "—"))),
    "No worktrees (swarm worktree create FEATURE makes one)."));
}

// ---- wiring ------------------------------------------------------------------------------

// Each section is re-read only for the events that change it, at most twice a second
// however busy the swarm: a burst of 100 completions costs one read of each.
const GAP_MS = 500;
const refreshAgents = throttled(() => section("groups", loadAgents), GAP_MS);
const refreshQueue = throttled(() => Promise.all([
  section("queue-counts", loadCounts),
  section("queue", loadQueue),
]), GAP_MS);
const refreshFinished = throttled(() => Promise.all([
  section("finished", loadFinished),
  section("throughput", loadThroughput),
]), GAP_MS);
const refreshFailures = throttled(() => section("failures", loadFailures), GAP_MS);
const refreshSlow = () => Promise.all([
  section("limits", loadLimits),
  section("worktrees", loadWorktrees),
  loadHealth().catch(() => (byId("health").textContent = "health —")),
]);

function refreshItems() {
  refreshQueue();
  refreshFinished();
  refreshFailures();
}

const FINISHING = new Set(["completed", "failed", "dead", "cancelled", "retried"]);
const FAILING = new Set(["failed", "dead", "requeued", "retried"]);
const AGENT_EVENTS = new Set(["claimed", "completed", "failed", "dead", "requeued", "agent_up", "agent_down"]);

function onEvent(kind) {
  if (kind === "gap") {
    refreshItems();
    refreshAgents();
    return;
  }
  if (kind !== "agent_up" && kind !== "agent_down") refreshQueue();
  if (FINISHING.has(kind)) refreshFinished();
  if (FAILING.has(kind)) refreshFailures();
  if (AGENT_EVENTS.has(kind)) refreshAgents();
}

export function startDashboard() {
  byId("dashboard-view").hidden = false;
  byId("queue-filter").addEventListener("change", () => section("queue", loadQueue));
  refreshAgents();
  refreshItems();
  refreshSlow();
  let seenLive = false;
  listen(onEvent, (state) => {
    liveState(state);
    if (state === "live" && seenLive) {
      // Back after a gap: what was missed is re-read rather than replayed.
      refreshItems();
      refreshAgents();
    }
    if (state === "live") seenLive = true;
  });
  setInterval(refreshAgents, 5000); // CPU, RSS and uptime change without events
  setInterval(refreshSlow, 10000);
  setInterval(refreshFinished, 60000); // the chart's minutes move on
}
