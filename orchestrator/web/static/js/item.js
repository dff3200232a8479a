// An item's page: what it is, its payload and result, its attempts, its parents and
// children, and its trace as a timeline across processes. Re-read when an event about
// it arrives.

import { get, send, listen, ApiError } from "./api.js";
import {
  h, fill, byId, itemLink, badge, when, pretty, duration, notice, liveState, throttled,
  agentNames, agentLabel,
} from "./dom.js";
import { timeline } from "./timeline.js";

const FINISHED = new Set(["completed", "failed", "dead", "cancelled"]);
const RETRYABLE = new Set(["failed", "dead", "cancelled"]);

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) =>
    [h("dt", {}, k), h("dd", {}, v === null || v === "" ? "—" : v)]));
}

function family(list, empty) {
  if (!list || !list.length) return h("p", { class: "muted" }, empty);
  return h("ul", {}, list.map((other) =>
    h("li", {}, itemLink(other.work_item_id), " ", badge(other.status), " ",
      h("span", { class: "muted" }, other.work_type || ""), " ", other.description || "")));
}

function attemptsTable(attempts) {
  if (!attempts || !attempts.length) return h("p", { class: "muted" }, "Never claimed.");
  return h("table", {},
    h("thead", {}, h("tr", {}, ["#", "operation", "agent", "start", "took", "status"].map((t) => h("th", {}, t)))),
    h("tbody", {}, attempts.map((a, i) => {
      const code = typeof a.status === "object" && a.status ? a.status.code : a.status;
      const status = code === "ERROR" ? "error" : "ok"; // UNSET: nothing went wrong
      return h("tr", {},
        h("td", {}, i + 1),
        h("td", { class: "mono" }, a.span || ""),
        h("td", { class: "mono small", title: a.agent_id || "" }, agentLabel(a.agent_id) || "—"),
        h("td", {}, when(a.start)),
        h("td", {}, a.end && a.start ? duration(a.end - a.start) : "—"),
        h("td", {}, badge(status)));
    })));
}

async function act(id, verb, then) {
  try {
    await send(`/api/work/${encodeURIComponent(id)}/${verb}`);
    notice(`${verb}: done`, true);
  } catch (error) {
    notice(error instanceof ApiError ? error.message : String(error));
  }
  then();
}

function render(id, data, reload) {
  const item = data.item;
  document.title = `${item.work_item_id} · swarmsh`;
  byId("item-title").textContent = item.work_item_id;
  fill(byId("item-status"), badge(item.status));
  const buttons = [];
  if (!FINISHED.has(item.status)) {
    buttons.push(h("button", { type: "button", class: "cancel", onclick: () => act(id, "cancel", reload) }, "cancel"));
  }
  if (RETRYABLE.has(item.status)) {
    buttons.push(h("button", { type: "button", class: "retry", onclick: () => act(id, "retry", reload) }, "retry"));
  }
  fill(byId("item-actions"), buttons);
  fill(byId("summary"), kv([
    ["description", h("span", { class: "description" }, item.description)],
    ["type", item.work_type],
    ["priority", item.priority],
    ["team", item.team],
    ["key", item.key],
    ["status", [badge(item.status), item.completion_status ? ` (${item.completion_status})` : ""]],
    ["progress", `${item.progress ?? 0}%`],
    ["agent", item.agent_id ? h("span", { title: item.agent_id }, agentLabel(item.agent_id)) : null],
    ["attempts", `${item.attempts}${item.max_attempts ? " of " + item.max_attempts : ""}`],
    ["story points", item.story_points],
    ["created", when(item.created_at)],
    ["claimed", when(item.claimed_at)],
    ["finished", when(item.completed_at)],
    ["error", item.error ? h("pre", { class: "data error" }, item.error) : null],
  ]));
  byId("payload").textContent = pretty(item.payload);
  byId("result").textContent = pretty(item.result);
  fill(byId("attempts"), attemptsTable(data.attempts));
  fill(byId("family"),
    h("h3", {}, "parents"), family(data.parents, "None: it waits for nothing."),
    h("h3", {}, "children"), family(data.children, "None wait for it."));
  fill(byId("trace"), timeline(data.spans || []));
  // Agents write spans in batches (up to a second late): read a just-finished item once
  // more so its trace is whole.
  const age = Date.now() / 1000 - (item.completed_at || 0);
  if (FINISHED.has(item.status) && age < 5 && !render.again) {
    render.again = true;
    setTimeout(reload, 1500);
  }
}

// Agent ids to names (w-1, …) for the attempts and the trace; a page without a supervisor
// shows ids.
async function names() {
  try {
    const agents = await get("/api/agents");
    for (const agent of agents.agents || []) if (agent.agent_id) agentNames.set(agent.agent_id, agent.name);
  } catch {
    // names are a nicety: ids will do
  }
}

export function startItem(id) {
  byId("item-view").hidden = false;
  byId("swarm-status").hidden = true;
  byId("health").hidden = true;
  byId("item-title").textContent = id;
  const load = throttled(async () => {
    try {
      if (!agentNames.size) await names();
      render(id, await get(`/api/work/${encodeURIComponent(id)}`), load);
    } catch (error) {
      fill(byId("summary"), h("p", { class: "notice" }, error.message));
    }
  }, 300);
  load();
  listen((kind, data) => {
    if (!data || !data.work_item_id || data.work_item_id === id) load();
  }, liveState);
}
