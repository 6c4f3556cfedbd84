// commitflow dashboard: plain JavaScript, no build step, no external files.
// app.js holds the helpers, the view state kept in the URL's fragment, the
// API calls and the page's states; panels.js draws the dashboard's panels,
// deal.js the deal view and the deal lists. The bearer token stays in
// localStorage, never in the URL.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// VIEW are the dashboard's controls, all kept in the fragment (#...): view
// is the audience's set of panels ("" sales ops, leadership, forecaster),
// periods the number of period ends of the forecast accuracy.
const VIEW = ["tenant", "from", "to", "as_of", "by", "interval", "window_days", "horizon_days", "close_period", "backtest", "view", "periods"];
const VIEWS = ["", "leadership", "forecaster"];
const DEFAULT_PERIODS = 4;
// ROUTE are the fragment's keys of a deal view or a deal list, and of the
// panels' own choices (trend step, stalls page); the controls keep the rest.
const ROUTE = ["deal", "list", "owner", "team", "step", "warning", "stalled", "single_threaded", "lpage", "trend", "spage", "wkind"];

// ---- small DOM helpers (text only: API data never becomes HTML) ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// table draws rows of cells; a cell may be a node (a <td> is kept as is).
function table(headers, rows) {
  return el("div", { class: "scroll" }, el("table", null,
    el("thead", null, el("tr", null, headers.map((h) => el("th", null, h)))),
    el("tbody", null, rows.map((r) => el("tr", null, r.map((c) =>
      c instanceof Node && c.tagName === "TD" ? c : el("td", null, c)))))));
}

function summary(items) {
  return el("div", { class: "summary" }, items.map(([label, value]) =>
    el("div", null, el("span", { class: "v" }, value), el("span", { class: "l" }, label))));
}

function put(id, ...nodes) { $(id).replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined)); }
function hint(text) { return el("p", { class: "hint empty" }, text); }

// ---- formatting ----

const nf = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const cf = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

function num(n) { return n === null || n === undefined ? "–" : nf.format(n); }
function money(n) { return n === null || n === undefined ? "–" : cf.format(n); }
// amount shows o[field]: the answer's one-currency or converted figure, or,
// when it holds several currencies and no rate table converts them (the
// figure is null), each currency's (amounts_by_currency).
function amount(o, field) {
  if (o[field] !== null && o[field] !== undefined) return money(o[field]);
  const by = o.amounts_by_currency || {};
  return perCurrency(Object.fromEntries(Object.keys(by).map((c) => [c, by[c][field] || 0])));
}
// perCurrency shows {currency: amount} as "USD 1.2M · EUR 300K".
function perCurrency(by) {
  const parts = Object.keys(by || {}).sort().map((c) => `${c || "?"} ${cf.format(by[c] || 0)}`);
  return parts.length ? parts.join(" · ") : "–";
}
function pct(r) { return r === null || r === undefined ? "–" : (100 * r).toFixed(1) + "%"; }
function days(d) { return d === null || d === undefined ? "–" : d.toFixed(1) + " d"; }
function title(s) { return s ? s.replace(/_/g, " ") : "(none)"; }
function day(t) { return (t || "").slice(0, 10); }
function when(t) { return t ? t.slice(0, 16).replace("T", " ") : "–"; }
function isoDate(d) { return d.toISOString().slice(0, 10); }

// ---- the view in the fragment ----

// readState returns the view the fragment holds.
function readState() {
  const q = new URLSearchParams(location.hash.slice(1));
  const s = {};
  for (const k of [...VIEW, ...ROUTE]) if (q.get(k)) s[k] = q.get(k);
  return s;
}

// href is the fragment of the current view's controls with patch applied
// (a key set to "" or null is dropped); route keys are kept only if keep.
function href(patch, keep) {
  const cur = readState();
  const s = {};
  for (const k of VIEW) if (cur[k]) s[k] = cur[k];
  if (keep) for (const k of ROUTE) if (cur[k]) s[k] = cur[k];
  Object.assign(s, patch);
  const q = new URLSearchParams();
  for (const k of [...VIEW, ...ROUTE]) if (s[k] !== undefined && s[k] !== null && s[k] !== "") q.set(k, s[k]);
  return "#" + q.toString();
}

function go(patch, keep) { location.hash = href(patch, keep); }

// Links of every panel: a deal to its view, an owner, team or step to the
// deal list they filter.
function dealLink(id, name) {
  return el("a", { href: href({ deal: id }), class: "deal", title: id }, name || id);
}
function listLink(filter, label) {
  return el("a", { href: href({ list: "1", ...filter }) }, label);
}
// personName is the name of the person of CRM id id among an answer's
// people (the tenant's users/owners export), else the id itself.
function personName(people, id) {
  const p = people && people[id];
  return p && p.name ? p.name : id;
}
// ownerLink shows an owner by name (the id in its tooltip) and links to the
// owner's deals by id.
function ownerLink(owner, people) {
  if (!owner) return "(none)";
  const a = listLink({ owner }, personName(people, owner));
  a.title = owner;
  return a;
}
function teamLink(team) { return team ? listLink({ team }, team) : "(none)"; }
function stepLink(key, label) { return key ? listLink({ step: key }, label) : label; }

// ---- API ----

// cache keeps the answers of this view's requests (back and forward
// redraw without asking again); Load and caught-up processing clear it.
const cache = new Map();

async function api(path, params) {
  const s = readState();
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== "" && v !== undefined && v !== null) q.set(k, v);
  if (s.tenant) q.set("tenant", s.tenant);
  const url = path + "?" + q.toString();
  if (asked) asked.push(url);
  if (!cache.has(url)) {
    const p = fetchJSON(url);
    cache.set(url, p);
    p.catch(() => cache.delete(url));
  }
  return cache.get(url);
}

async function fetchJSON(url) {
  const token = localStorage.getItem("commitflow.token") || "";
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const res = await fetch(url, { headers });
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const msg = body && body.error ? body.error + (body.param ? ` (parameter ${body.param})` : "") : res.statusText;
    const err = new Error(`${url.split("?")[0]}: ${res.status} ${msg}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

// ---- CSV ----

// CSV_PATHS are the endpoints that answer CSV (format=csv).
const CSV_PATHS = ["v1/funnel", "v1/stalls", "v1/missed", "v1/movement", "v1/forecast", "v1/cycle-time", "v1/stage-history", "v1/deals", "v1/warnings"];

// asked collects, while a panel's draw function runs up to its first
// await, the requests it makes (see panel).
let asked = null;

// csvLink is a panel's "Download CSV" link: the main table of the answer
// of url (a forecast's back-test table when url asks for a back-test), as
// the API writes it with format=csv, fetched with the bearer token (a
// plain link would go without it) and saved under the server's file name.
function csvLink(url) {
  const target = url + "&format=csv" + (/[?&]backtest=/.test(url) ? "&table=backtest" : "");
  const a = el("a", { href: target, class: "csv", download: "" }, "Download CSV");
  a.addEventListener("click", async (ev) => {
    ev.preventDefault();
    const token = localStorage.getItem("commitflow.token") || "";
    const headers = { Accept: "text/csv" };
    if (token) headers.Authorization = "Bearer " + token;
    try {
      const res = await fetch(target, { headers });
      if (!res.ok) {
        let msg = res.statusText;
        try { const b = await res.json(); msg = b.error + (b.param ? ` (parameter ${b.param})` : ""); } catch (e) { /* not JSON */ }
        throw new Error(`${target.split("?")[0]} as CSV: ${res.status} ${msg}`);
      }
      const m = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "");
      const save = el("a", { href: URL.createObjectURL(await res.blob()), download: m ? m[1] : "commitflow.csv", hidden: true });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(save.href), 60000);
    } catch (e) {
      status(e.message, "error");
    }
  });
  return el("p", { class: "csv" }, a);
}

// ---- states ----

function status(msg, cls) {
  $("status").textContent = msg;
  $("status").className = cls || "";
}

// panel replaces a panel's content with "loading", then with what draw
// makes of the answer, or with the error alone: never old numbers beside
// an error or a newer view's numbers. A panel drawn from one answer the
// API writes as CSV as well ends with a link to download it.
let generation = 0;
async function panel(id, draw) {
  const gen = generation;
  put(id, el("p", { class: "hint loading" }, "Loading…"));
  asked = [];
  const drawn = draw(); // async: runs up to its first await
  const urls = [...new Set(asked)].filter((u) => CSV_PATHS.includes(u.split("?")[0]));
  asked = null;
  try {
    const nodes = await drawn;
    if (gen === generation) put(id, nodes, urls.length === 1 ? csvLink(urls[0]) : null);
  } catch (e) {
    if (gen === generation) put(id, el("p", { class: "error" }, e.message));
    throw e;
  }
}

// watchLag polls GET /v1/status while ingest or derive are behind and
// redraws the view, from fresh answers, once they have caught up.
let lagTimer = null;
async function watchLag() {
  clearTimeout(lagTimer);
  let lag;
  try {
    lag = await fetchJSON("v1/status" + (readState().tenant ? "?tenant=" + encodeURIComponent(readState().tenant) : ""));
  } catch (e) {
    // A server without the endpoint or the stream has nothing to say; a
    // busy one is asked again.
    if (e.status !== 404 && e.status !== 503) lagTimer = setTimeout(watchLag, 5000);
    return 0;
  }
  const banner = $("processing");
  if (lag.behind > 0) {
    banner.textContent = `processing: ${num(lag.behind)} events behind — the numbers below are partial and will be redrawn when processing catches up`;
    banner.hidden = false;
    lagTimer = setTimeout(async () => {
      if (await watchLag() === 0) { cache.clear(); render(); }
    }, 3000);
  } else {
    banner.hidden = true;
  }
  return lag.behind;
}

// checkTenant says when the tenant has no data at all (an unknown tenant
// answers every report with zeros).
async function checkTenant(behind) {
  const s = readState();
  const list = await api("v1/deals", { page_size: 1 });
  if (list.total === 0 && behind === 0) {
    return `Tenant "${s.tenant || list.definitions.tenant}" has no data: unknown tenant, or nothing sent yet. Check the tenant's name.`;
  }
  return "";
}

// ---- controls ----

function fillControls(s) {
  for (const f of VIEW) {
    if (f === "by") continue;
    if ($(f)) $(f).value = s[f] || "";
  }
  const by = s.by || "";
  $("by").value = by.startsWith("attr.") ? "attr" : by;
  $("attr").value = by.startsWith("attr.") ? by.slice(5) : "";
  $("attr-label").hidden = $("by").value !== "attr";
  if (!s.interval) $("interval").value = "month";
  if (!s.close_period) $("close_period").value = "month";
  $("token").value = localStorage.getItem("commitflow.token") || "";
}

function readControls() {
  const s = {};
  for (const f of VIEW) if ($(f) && f !== "by") s[f] = $(f).value.trim();
  const by = $("by").value;
  s.by = by === "attr" ? ($("attr").value.trim() ? "attr." + $("attr").value.trim() : "") : by;
  if (s.interval === "month") s.interval = "";
  if (s.close_period === "month") s.close_period = "";
  if (s.periods === String(DEFAULT_PERIODS)) s.periods = "";
  return s;
}

// showView shows the sections of view s.view (a section without
// data-view is sales ops') and marks its tab.
function showView(s) {
  const view = VIEWS.includes(s.view || "") ? s.view || "" : "";
  for (const a of document.querySelectorAll("#views a")) {
    a.href = href({ view: a.dataset.view });
    a.className = a.dataset.view === view ? "on" : "";
  }
  for (const sec of document.querySelectorAll("#dashboard > section")) {
    sec.hidden = !(sec.dataset.view || "ops").split(" ").includes(view || "ops");
  }
}

// defaults gives a view without dates the last twelve months.
function defaults(s) {
  const out = { ...s };
  if (!out.to) { const d = new Date(); d.setUTCDate(d.getUTCDate() + 1); out.to = isoDate(d); }
  if (!out.from) { const d = new Date(out.to); d.setUTCFullYear(d.getUTCFullYear() - 1); out.from = isoDate(d); }
  return out;
}

// ---- routing ----

async function render() {
  generation++;
  const s = readState();
  fillControls(s);
  const detail = Boolean(s.deal || s.list);
  $("dashboard").hidden = detail;
  $("detail").hidden = !detail;
  $("back").href = href({});
  showView(s);
  if (!s.tenant && !localStorage.getItem("commitflow.token")) {
    status("Enter a bearer token (or, on an open demo server, a tenant) and press Load.");
    return;
  }
  status("Loading…");
  const started = performance.now();
  const behind = await watchLag();
  let problem = "";
  try {
    problem = await checkTenant(behind);
  } catch (e) {
    problem = e.message;
  }
  const gen = generation;
  if (problem) {
    status(problem, "error");
    for (const p of document.querySelectorAll(".panel")) p.replaceChildren(el("p", { class: "error" }, problem));
  } else {
    const jobs = s.deal ? [showDeal(s)] : s.list ? [showList(s)] : drawDashboard(s);
    const results = await Promise.allSettled(jobs);
    if (gen !== generation) return; // a newer view is being drawn
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length) status(failed[0].reason.message, "error");
    else status(`Loaded in ${Math.round(performance.now() - started)} ms.`);
  }
  // The view drawn, for the browser test to wait on.
  document.body.dataset.shown = location.hash;
}

function init() {
  const banner = el("p", { id: "processing", class: "processing", role: "status", hidden: true });
  $("status").after(banner);
  const s = readState();
  if (!s.from || !s.to) {
    // A first visit: the dates default to the last twelve months.
    history.replaceState(null, "", href(defaults(s), true));
  }
  $("controls").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem("commitflow.token", $("token").value.trim());
    cache.clear();
    const target = href({ ...readControls() }, false);
    if (target === location.hash) render();
    else location.hash = target;
  });
  $("by").addEventListener("change", () => { $("attr-label").hidden = $("by").value !== "attr"; });
  $("periods").addEventListener("change", () => {
    const n = $("periods").value.trim();
    go({ periods: n === String(DEFAULT_PERIODS) ? "" : n }, true);
  });
  window.addEventListener("hashchange", () => { render(); window.scrollTo(0, 0); });
  render();
}

document.addEventListener("DOMContentLoaded", init);
