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

const tokenWatchers = new Set();

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  for (const watcher of tokenWatchers) watcher();
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

// One request; on 401 (no token, or a wrong one) ask for the token and send it again.
// Reads need it too when the server listens beyond loopback.
async function request(method, path, body) {
  for (;;) {
    const sent = token();
    const headers = { Accept: "application/json" };
    if (sent) headers.Authorization = "Bearer " + sent;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
    if (response.status !== 401) return response;
    const refusal = await errorOf(response);
    if (token() && token() !== sent) continue; // given meanwhile, for another request
    const given = await askToken(refusal.message);
    if (given === null) throw refusal;
    setToken(given);
  }
}

export async function get(path) {
  const response = await request("GET", path);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

// A mutation (POST): the token always goes in the Authorization header.
export async function send(path, body) {
  const response = await request("POST", path, body);
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

// The token form (a <dialog> in the page, not window.prompt): resolves to the token
// typed, or null when the user cancels. Requests refused at once share one form.
let asking = null;

function askToken(reason) {
  if (!asking) asking = openTokenForm(reason).finally(() => (asking = null));
  return asking;
}

function openTokenForm(reason) {
  const dialog = byId("token-dialog");
  const input = byId("token-input");
  const cancel = byId("token-cancel");
  byId("token-reason").textContent = reason;
  input.value = "";
  dialog.returnValue = ""; // Escape leaves it as it was
  return new Promise((resolve) => {
    const dismiss = () => dialog.close("cancel");
    const done = () => {
      dialog.removeEventListener("close", done);
      cancel.removeEventListener("click", dismiss);
      resolve(dialog.returnValue === "ok" && input.value ? input.value : null);
    };
    dialog.addEventListener("close", done);
    cancel.addEventListener("click", dismiss);
    dialog.showModal();
    input.focus();
  });
}

// Server-Sent Events of store changes. EventSource reconnects by itself after a network
// error and sends Last-Event-ID so nothing is missed; a refused stream (401) closes for
// good, so it is opened again when a token arrives, or after a pause.
export function listen(onChange, onState) {
  let source = null;
  let retry = 0;
  const handler = (event) => {
    let data = null;
    try {
      data = JSON.parse(event.data);
    } catch {
      data = { raw: event.data };
    }
    onChange(event.type, data);
  };
  const open = () => {
    clearTimeout(retry);
    if (source) source.close();
    // An EventSource cannot set headers: off loopback the server takes ?token= here.
    const current = token();
    source = new EventSource("/api/events" + (current ? "?token=" + encodeURIComponent(current) : ""));
    source.onmessage = handler;
    for (const kind of EVENT_KINDS) source.addEventListener(kind, handler);
    source.onopen = () => onState("live");
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) {
        onState("reconnecting");
        return;
      }
      onState("closed");
      retry = setTimeout(open, 5000);
    };
  };
  tokenWatchers.add(open);
  open();
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
  "gap", // resumed past what the log still holds: re-read, do not replay
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
