// commitflow dashboard: plain JavaScript, no build step, no external files.
// It calls the /v1 API with the bearer token (or, in open mode, the tenant)
// kept in localStorage, and draws the answers as tables and inline SVG.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const FIELDS = ["token", "tenant", "from", "to", "as_of", "window_days", "backtest"];
const $ = (id) => document.getElementById(id);

// ---- small DOM helpers (text only: API data never becomes HTML) ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
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

function table(headers, rows) {
  return el("table", null,
    el("thead", null, el("tr", null, headers.map((h) => el("th", null, h)))),
    el("tbody", null, rows.map((r) => el("tr", null, r.map((c) =>
      c instanceof Node && c.tagName === "TD" ? c : el("td", null, c))))));
}

function summary(items) {
  return items.map(([label, value]) =>
    el("div", null, el("span", { class: "v" }, value), el("span", { class: "l" }, label)));
}

function put(id, ...nodes) { $(id).replaceChildren(...nodes.flat()); }

// ---- formatting ----

const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const cf = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

function num(n) { return n === null || n === undefined ? "–" : nf.format(n); }
function money(n) { return n === null || n === undefined ? "–" : cf.format(n); }
// amount shows o[field]: the answer's one-currency or converted figure, or,
// when it holds several currencies and no rate table converts them (the
// figure is null), each currency's (amounts_by_currency).
function amount(o, field) {
  if (o[field] !== null && o[field] !== undefined) return money(o[field]);
  const by = o.amounts_by_currency || {};
  const parts = Object.keys(by).sort().map((c) => `${c || "?"} ${cf.format(by[c][field] || 0)}`);
  return parts.length ? parts.join(" · ") : "–";
}
function pct(r) { return r === null || r === undefined ? "–" : (100 * r).toFixed(1) + "%"; }
function days(d) { return d === null || d === undefined ? "–" : d.toFixed(1) + " d"; }
function title(s) { return s ? s.replace(/_/g, " ") : "(none)"; }

// ---- charts ----

// stackBar draws one horizontal bar of segments [{value, cls}] scaled so
// that `max` fills the width.
function stackBar(segments, max, label) {
  const w = 240, h = 16;
  const g = svg("svg", { width: "100%", height: h, viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", role: "img" });
  if (label) g.append(svg("title", null, label));
  let x = 0;
  for (const s of segments) {
    const sw = max > 0 ? (w * s.value) / max : 0;
    if (sw > 0) g.append(svg("rect", { x: x.toFixed(2), y: 1, width: sw.toFixed(2), height: h - 2, class: s.cls }));
    x += sw;
  }
  return el("td", { class: "bar" }, g);
}

// lineChart draws series [{cls, points: [{x: label, y: 0..1 or null}]}]
// over shared x labels, with a 0–100% y axis.
function lineChart(labels, series) {
  const W = 640, H = 220, L = 40, R = 10, T = 10, B = 30;
  const iw = W - L - R, ih = H - T - B;
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const y = T + ih * (1 - t);
    g.append(svg("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
    g.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, (t * 100) + "%"));
  }
  const xs = (i) => L + (labels.length === 1 ? iw / 2 : (iw * i) / (labels.length - 1));
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((lab, i) => {
    if (i % every === 0) g.append(svg("text", { x: xs(i), y: H - 10, "text-anchor": "middle" }, lab.slice(0, 7)));
  });
  for (const s of series) {
    let d = "", pen = false;
    s.points.forEach((y, i) => {
      if (y === null || y === undefined) { pen = false; return; }
      const px = xs(i).toFixed(1), py = (T + ih * (1 - y)).toFixed(1);
      d += (pen ? " L" : " M") + px + " " + py;
      pen = true;
      g.append(svg("circle", { cx: px, cy: py, r: 3, class: "dot-" + s.cls },
        svg("title", null, `${labels[i]}: ${pct(y)}`)));
    });
    if (d) g.prepend(svg("path", { d: d.trim(), class: "line-" + s.cls }));
  }
  return g;
}

// ---- API ----

function settings() {
  const s = {};
  for (const f of FIELDS) s[f] = $(f).value.trim();
  return s;
}

async function api(path, params) {
  const s = settings();
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) q.set(k, v);
  if (s.tenant) q.set("tenant", s.tenant);
  const headers = { Accept: "application/json" };
  if (s.token) headers.Authorization = "Bearer " + s.token;
  const res = await fetch(path + "?" + q.toString(), { headers });
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const msg = body && body.error ? body.error + (body.param ? ` (${body.param})` : "") : res.statusText;
    throw new Error(`${path}: ${res.status} ${msg}`);
  }
  return body;
}

// ---- sections ----

function renderFunnel(res) {
  const steps = res.steps || [];
  const max = Math.max(1, ...steps.map((s) => s.reached));
  put("funnel", table(
    ["step", "", "reached", "converted", "still open", "dropped", "skipped", "conv. (decided)", "conv. (reached)", "value conv.", "median", "p90"],
    steps.map((s) => [
      `${title(s.from_step)} → ${title(s.to_step)}`,
      stackBar([
        { value: s.converted, cls: "converted" },
        { value: s.still_open, cls: "open" },
        { value: s.dropped, cls: "dropped" },
      ], max, `${s.converted} converted, ${s.still_open} still open, ${s.dropped} dropped of ${s.reached}`),
      num(s.reached), num(s.converted), num(s.still_open), num(s.dropped), num(s.skipped),
      pct(s.conversion_rate_decided), pct(s.conversion_rate_reached), pct(s.amount_conversion_rate_decided),
      days(s.time_to_convert && s.time_to_convert.median_days),
      days(s.time_to_convert && s.time_to_convert.p90_days),
    ])));
}

let trendData = null;

function renderTrend() {
  if (!trendData) return;
  const sel = $("trend-step");
  const steps = trendData.steps || [];
  if (sel.options.length !== steps.length) {
    const keep = sel.value;
    sel.replaceChildren(...steps.map((s) =>
      el("option", { value: String(s.from_index) }, `${title(s.from_step)} → ${title(s.to_step)}`)));
    if (keep) sel.value = keep;
  }
  const step = steps.find((s) => String(s.from_index) === sel.value) || steps[0];
  if (!step) { put("trend", el("p", { class: "hint" }, "No data.")); return; }
  const groups = (step.groups || []).filter((g) => g.key === "" && g.period);
  if (groups.length === 0) { put("trend", el("p", { class: "hint" }, "No cohort in this period.")); return; }
  const labels = groups.map((g) => g.period);
  put("trend",
    lineChart(labels, [
      { cls: "decided", points: groups.map((g) => g.conversion_rate_decided) },
      { cls: "reached", points: groups.map((g) => g.conversion_rate_reached) },
    ]),
    table(["month", "reached", "converted", "still open", "dropped", "conv. (decided)"],
      groups.map((g) => [g.period, num(g.reached), num(g.converted), num(g.still_open), num(g.dropped), pct(g.conversion_rate_decided)])));
}

let page = 1;
const pageSize = 20;

function renderStalls(res) {
  put("stalls-summary", summary([
    ["open deals", num(res.open)], ["open value", amount(res, "open_amount")],
    ["stalled deals", num(res.stalled)], ["stalled value", amount(res, "stalled_amount")],
  ]));
  const steps = res.steps || [];
  const max = Math.max(1, ...steps.map((s) => s.open));
  put("stalls", table(
    ["highest step", "", "open", "open value", "stalled", "stalled value", "stalled %"],
    steps.map((s) => [
      `${s.step_index}. ${title(s.step)}`,
      stackBar([
        { value: s.stalled, cls: "stalled" },
        { value: s.open - s.stalled, cls: "open" },
      ], max, `${s.stalled} stalled of ${s.open} open`),
      num(s.open), amount(s, "open_amount"), num(s.stalled), amount(s, "stalled_amount"),
      pct(s.open ? s.stalled / s.open : null),
    ])));
  const deals = res.deals || [];
  put("stalled-deals", deals.length === 0 ? el("p", { class: "hint" }, "No stalled deals.") : table(
    ["opportunity", "owner", "team", "amount", "highest step", "days since commitment", "stalled since"],
    deals.map((d) => [d.opportunity_id, d.owner_id, d.team, `${money(d.amount)}${d.currency ? " " + d.currency : ""}`, `${d.step_index}. ${title(d.step)}`,
      num(d.days_since_commitment), (d.stalled_since || "").slice(0, 10)])));
  const pages = Math.max(1, Math.ceil(res.stalled / res.page_size));
  $("page").textContent = `page ${res.page} of ${pages}`;
  $("prev").disabled = res.page <= 1;
  $("next").disabled = res.page >= pages;
}

function renderMissed(res) {
  const t = res.total || {};
  put("missed-summary", summary([
    ["missed commitments", num(t.missed)], ["value at stake", amount(t, "missed_amount")],
    ["buyer interactions", num(t.interactions)], ["miss rate", pct(t.miss_rate)],
  ]));
  const reasons = res.by_reason || [];
  const rmax = Math.max(1, ...reasons.map((r) => r.missed));
  put("missed-reason", table(["reason", "", "missed", "value"],
    reasons.map((r) => [title(r.key), stackBar([{ value: r.missed, cls: "missed" }], rmax, `${r.missed} missed`),
      num(r.missed), amount(r, "missed_amount")])));
  put("missed-step", table(["expected step", "missed", "interactions", "miss rate"],
    (res.by_step || []).map((r) => [`${r.step_index || ""} ${title(r.key)}`, num(r.missed), num(r.interactions), pct(r.miss_rate)])));
  const owners = (res.by_owner || []).slice().sort((a, b) => b.missed - a.missed).slice(0, 15);
  put("missed-owner", table(["owner", "missed", "value", "interactions", "miss rate"],
    owners.map((r) => [r.key || "(none)", num(r.missed), amount(r, "missed_amount"), num(r.interactions), pct(r.miss_rate)])));
}

const MOVES = [
  ["new", "new", "open"], ["advanced", "advanced", "converted"], ["regressed", "regressed", "missed"],
  ["stalled", "stalled", "stalled"], ["pulled_in", "pulled in", "converted"], ["pushed_out", "pushed out", "stalled"],
  ["won", "won", "converted"], ["lost", "lost", "dropped"],
];

function renderMovement(res) {
  const t = res.total || {};
  const max = Math.max(1, ...MOVES.map(([k]) => t[k + "_amount"] || 0));
  const rows = MOVES.map(([k, label, cls]) => [label,
    stackBar([{ value: t[k + "_amount"] || 0, cls }], max, amount(t, k + "_amount")),
    num(t[k]), amount(t, k + "_amount")]);
  const bySteps = (res.by_step || []).filter((s) => MOVES.some(([k]) => s[k]));
  put("movement",
    table(["movement", "value", "deals", "amount"], rows),
    el("h3", null, "By highest step at the end"),
    table(["step", ...MOVES.map(([, l]) => l)],
      bySteps.map((s) => [`${s.step_index}. ${title(s.step)}`, ...MOVES.map(([k]) => num(s[k]))])));
}

function renderForecast(res) {
  const pl = res.pipeline || {}, t = pl.total || {}, sm = res.samples || {};
  const d = res.definitions || {};
  put("forecast-summary", summary([
    ["open deals", num(t.deals)], ["open pipeline", money(t.amount)],
    ["commitment-weighted", money(t.expected)], ["P10 – P90", `${money(t.p10)} – ${money(t.p90)}`],
    ["CRM-weighted", money(t.crm_weighted)],
    ["training samples", num(sm.training_samples)],
  ]));
  const nodes = [el("p", { class: "hint" },
    `Forecast at ${(d.forecast_at || "").slice(0, 10)}, wins within ${d.horizon_days} days; ` +
    `learned from ${num(sm.training_opportunities)} opportunities (${num(sm.won)} won, ${num(sm.lost)} lost, ${num(sm.censored)} still open).`)];
  const periods = pl.by_close_period || [];
  if (periods.length) {
    const max = Math.max(1, ...periods.map((g) => Math.max(g.p90 || 0, g.expected || 0, g.crm_weighted || 0)));
    nodes.push(el("div", { class: "legend" },
      el("span", { class: "key converted" }), "commitment-weighted (P10–P90 whisker)",
      el("span", { class: "key crm" }), "CRM-weighted"));
    nodes.push(el("h3", null, "By close period"), table(
      ["close period", "", "deals", "pipeline", "commitment", "P10 – P90", "CRM"],
      periods.map((g) => [g.key || "(no date)", forecastBar(g, max), num(g.deals), money(g.amount),
        money(g.expected), `${money(g.p10)} – ${money(g.p90)}`, money(g.crm_weighted)])));
  }
  for (const [name, rows] of [["By owner", pl.by_owner], ["By team", pl.by_team]]) {
    if (!rows || !rows.length) continue;
    nodes.push(el("h3", null, name), table(["", "deals", "pipeline", "commitment", "CRM"],
      rows.slice().sort((a, b) => b.expected - a.expected).slice(0, 15).map((g) =>
        [g.key || "(none)", num(g.deals), money(g.amount), money(g.expected), money(g.crm_weighted)])));
  }
  const steps = (res.model && res.model.steps) || [];
  if (steps.length) {
    nodes.push(el("h3", null, "P(win) by highest step"), table(["step", "samples", "won", "lost", "still open", "raw", "P", "80% interval"],
      steps.map((e) => [`${e.step}. ${title(stepKey(e.step))}`, num(e.n), num(e.won), num(e.lost), num(e.censored),
        pct(e.raw), pct(e.p), `${pct(e.lo)} – ${pct(e.hi)}`])));
  }
  if (res.backtest) nodes.push(renderBacktest(res.backtest));
  put("forecast", nodes);
}

// stepKey names a 1-based step of the ladder loaded from /v1/ladder.
let ladderSteps = [];
function stepKey(i) { return i >= 1 && i <= ladderSteps.length ? ladderSteps[i - 1].key : (i === 0 ? "none yet" : ""); }

// forecastBar shows the commitment-weighted expectation with its P10–P90
// whisker, and the CRM weighting beneath it.
function forecastBar(g, max) {
  const w = 240, h = 20, sx = (v) => (max > 0 ? (w * (v || 0)) / max : 0);
  const bar = svg("svg", { width: "100%", height: h, viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", role: "img" },
    svg("title", null, `commitment ${money(g.expected)} (P10 ${money(g.p10)}, P90 ${money(g.p90)}); CRM ${money(g.crm_weighted)}`),
    svg("rect", { x: 0, y: 1, width: sx(g.expected).toFixed(2), height: 10, class: "converted" }),
    svg("rect", { x: 0, y: 13, width: sx(g.crm_weighted).toFixed(2), height: 6, class: "crm" }));
  if (g.p10 !== undefined && g.p90 !== undefined) {
    bar.append(svg("line", { x1: sx(g.p10).toFixed(2), x2: sx(g.p90).toFixed(2), y1: 6, y2: 6, class: "whisker" }));
  }
  return el("td", { class: "bar" }, bar);
}

function renderBacktest(bt) {
  const rows = [["commitment", bt.commitment || {}], ["CRM", bt.crm || {}]];
  return el("div", null,
    el("h3", null, `Back-test: forecast at ${(bt.date || "").slice(0, 10)}, won by ${(bt.period_end || "").slice(0, 10)}` +
      (bt.complete ? "" : " (period not over yet)")),
    el("p", { class: "hint" }, `${num(bt.deals)} deals open (${money(bt.amount)}); ${num(bt.won_deals)} won (${money(bt.won_amount)}).`),
    table(["weighting", "forecast", "actually won", "error", "error %", "Brier score"],
      rows.map(([n, a]) => [n, money(a.forecast), money(a.actual), money(a.error),
        a.pct_error === null || a.pct_error === undefined ? "–" : a.pct_error.toFixed(1) + "%",
        a.brier === undefined ? "–" : a.brier.toFixed(3)])),
    el("h3", null, "Calibration: predicted vs actual win rate"),
    el("div", { class: "legend" },
      el("span", { class: "key converted" }), "commitment", el("span", { class: "key crm" }), "CRM"),
    calibrationChart(rows));
}

// calibrationChart plots each band's mean predicted probability against
// its actual win rate; a calibrated weighting lies on the diagonal.
function calibrationChart(rows) {
  const S = 220, P = 30, iw = S - 2 * P;
  const g = svg("svg", { viewBox: `0 0 ${S} ${S}`, width: S, height: S, role: "img" });
  const x = (v) => P + iw * v, y = (v) => S - P - iw * v;
  for (const t of [0, 0.5, 1]) {
    g.append(svg("line", { x1: x(0), x2: x(1), y1: y(t), y2: y(t), class: "grid" }));
    g.append(svg("text", { x: P - 4, y: y(t) + 4, "text-anchor": "end" }, t * 100 + "%"));
    g.append(svg("text", { x: x(t), y: S - P + 14, "text-anchor": "middle" }, t * 100 + "%"));
  }
  g.append(svg("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: "grid" }));
  for (const [n, a] of rows) {
    const cls = n === "CRM" ? "crm" : "converted";
    for (const b of a.calibration || []) {
      if (b.mean_predicted === null || b.actual_win_rate === null || !b.deals) continue;
      g.append(svg("circle", { cx: x(b.mean_predicted).toFixed(1), cy: y(b.actual_win_rate).toFixed(1), r: Math.min(8, 2 + Math.sqrt(b.deals) / 2), class: cls },
        svg("title", null, `${n} ${pct(b.lo)}–${pct(b.hi)}: predicted ${pct(b.mean_predicted)}, actual ${pct(b.actual_win_rate)} (${b.deals} deals)`)));
    }
  }
  return g;
}

// ---- loading ----

function status(msg, isError) {
  $("status").textContent = msg;
  $("status").className = isError ? "error" : "";
}

async function section(id, fn) {
  try {
    await fn();
  } catch (e) {
    put(id, el("p", { class: "error" }, e.message));
    throw e;
  }
}

async function loadStalls() {
  const s = settings();
  renderStalls(await api("v1/stalls", { as_of: s.as_of, page, page_size: pageSize }));
}

async function load() {
  const s = settings();
  for (const f of FIELDS) localStorage.setItem("commitflow." + f, s[f]);
  const range = { from: s.from, to: s.to, as_of: s.as_of };
  status("Loading…");
  const started = performance.now();
  const results = await Promise.allSettled([
    section("funnel", async () => renderFunnel(await api("v1/funnel", { ...range, window_days: s.window_days }))),
    section("trend", async () => { trendData = await api("v1/funnel", { ...range, window_days: s.window_days, interval: "month" }); renderTrend(); }),
    section("stalls", loadStalls),
    section("missed-reason", async () => renderMissed(await api("v1/missed", range))),
    section("movement", async () => renderMovement(await api("v1/movement", range))),
    section("forecast", async () => {
      const lad = await api("v1/ladder", {});
      ladderSteps = lad.steps || [];
      renderForecast(await api("v1/forecast", { as_of: s.as_of, backtest: s.backtest }));
    }),
  ]);
  const failed = results.filter((r) => r.status === "rejected");
  if (failed.length) status(failed[0].reason.message, true);
  else status(`Loaded in ${Math.round(performance.now() - started)} ms.`);
}

function isoDate(d) { return d.toISOString().slice(0, 10); }

function init() {
  for (const f of FIELDS) {
    const v = localStorage.getItem("commitflow." + f);
    if (v !== null) $(f).value = v;
  }
  // A link may carry the view (never the token) after '#':
  // #tenant=demo&from=2024-01-01&to=2024-07-01&as_of=&window_days=&backtest=
  const shared = new URLSearchParams(location.hash.slice(1));
  for (const f of FIELDS) if (f !== "token" && shared.has(f)) $(f).value = shared.get(f);
  if (!$("to").value) { const d = new Date(); d.setUTCDate(d.getUTCDate() + 1); $("to").value = isoDate(d); }
  if (!$("from").value) { const d = new Date(); d.setUTCFullYear(d.getUTCFullYear() - 1); $("from").value = isoDate(d); }
  $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); page = 1; load().catch(() => {}); });
  $("trend-step").addEventListener("change", renderTrend);
  $("prev").addEventListener("click", () => { page = Math.max(1, page - 1); section("stalls", loadStalls).catch((e) => status(e.message, true)); });
  $("next").addEventListener("click", () => { page += 1; section("stalls", loadStalls).catch((e) => status(e.message, true)); });
  if ($("token").value || $("tenant").value) load().catch(() => {});
  else status("Enter a bearer token (or, on an open demo server, a tenant) and press Load.");
}

document.addEventListener("DOMContentLoaded", init);
