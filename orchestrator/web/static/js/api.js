// Talking to the swarm's HTTP API. Reads are plain GETs; every mutation carries the
// token in a header (never a cookie, so no other site can act through the browser).
// The token lives in sessionStorage: asked for when a request is refused, gone when the
// tab closes.

import { byId } from "./dom.js";

const TOKEN_KEY = "swarm.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

async function errorOf(response) {
  let message = response.status + " " + response.statusText;
  try {
    const body = await response.json();
    message = body.error || body.detail || message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, String(message));
}

export async function get(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

async function post(path, body) {
  const headers = { Accept: "application/json", "Content-Type": "application/json" };
  const current = token();
  if (current) headers.Authorization = "Bearer " + current;
  return fetch(path, {
    method: "POST",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
}

// A mutation: on 401/403 ask for the token (once per refusal) and try again with it.
export async function send(path, body) {
  let response = await post(path, body);
  while (response.status === 401 || response.status === 403) {
    const refusal = await errorOf(response);
    const given = await askToken(refusal.message);
    if (given === null) throw refusal;
    setToken(given);
    response = await post(path, body);
  }
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

// The token form (a <dialog> in the page, not window.prompt): resolves to the token
// typed, or null when the user cancels.
function askToken(reason) {
  const dialog = byId("token-dialog");
  const input = byId("token-input");
  byId("token-reason").textContent = reason;
  input.value = "";
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener("close", done);
      resolve(dialog.returnValue === "ok" && input.value ? input.value : null);
    };
    dialog.addEventListener("close", done);
    dialog.showModal();
    input.focus();
  });
}

// Server-Sent Events of store changes; EventSource reconnects by itself and sends
// Last-Event-ID so nothing is missed. onChange gets each event's parsed data.
export function listen(onChange, onState) {
  // An EventSource cannot set headers: off loopback the server takes ?token= here.
  const current = token();
  const source = new EventSource("/api/events" + (current ? "?token=" + encodeURIComponent(current) : ""));
  const handler = (event) => {
    let data = null;
    try {
      data = JSON.parse(event.data);
    } catch {
      data = { raw: event.data };
    }
    onChange(event.type, data);
  };
  source.onmessage = handler;
  for (const kind of EVENT_KINDS) source.addEventListener(kind, handler);
  source.onopen = () => onState("live");
  source.onerror = () => onState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  return source;
}

export const EVENT_KINDS = [
  "enqueued",
  "claimed",
  "progress",
  "completed",
  "failed",
  "dead",
  "cancelled",
  "requeued",
  "retried",
  "updated",
  "agent_up",
  "agent_down",
];

// `swarm serve` prints the page's address with the token in the fragment
// (http://127.0.0.1:8080/#token=…): keep it for this tab and take it out of the address
// bar. A fragment never reaches the server, so no log sees it.
export function tokenFromAddress() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname + location.search);
}
