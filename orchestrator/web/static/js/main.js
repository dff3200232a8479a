// One page, two views: the dashboard at /, an item at /work/{id}.

import { tokenFromAddress, setToken } from "./api.js";
import { byId } from "./dom.js";
import { startDashboard } from "./dashboard.js";
import { startItem } from "./item.js";

tokenFromAddress();
byId("forget-token").addEventListener("click", () => {
  setToken("");
  byId("forget-token").blur();
});
const match = /^\/work\/([^/]+)\/?$/.exec(location.pathname);
const fromQuery = new URLSearchParams(location.search).get("id");
if (match || fromQuery) startItem(match ? decodeURIComponent(match[1]) : fromQuery);
else startDashboard();
