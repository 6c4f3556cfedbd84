// commitflow dashboard: the dashboard's panels, each drawn from one or two
// API answers (see app.js for the helpers and the view state).
"use strict";

// ---- charts ----

// stackBar draws one horizontal bar of segments [{value, cls}] scaled so
// that `max` fills the width.
function stackBar(segments, max, label) {
  const w = 240, h = 16;
  const g = svg("svg", { width: "100%", height: h, viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", role: "img", class: "chart" });
  if (label) g.append(svg("title", null, label));
  let x = 0;
  for (const s of segments) {
    const sw = max > 0 ? (w * s.value) / max : 0;
    if (sw > 0) g.append(svg("rect", { x: x.toFixed(2), y: 1, width: sw.toFixed(2), height: h - 2, class: s.cls }));
    x += sw;
  }
  return el("td", { class: "bar" }, g);
}

// lineChart draws series [{cls, points: [y 0..1 or null], hollow: [bool],
// name}] over shared x labels, with a 0–100% y axis and axis titles.
function lineChart(labels, series, xTitle, yTitle) {
  const W = 640, H = 236, L = 52, R = 30, T = 10, B = 46;
  const iw = W - L - R, ih = H - T - B;
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", class: "chart" });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const y = T + ih * (1 - t);
    g.append(svg("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
    g.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, (t * 100) + "%"));
  }
  const xs = (i) => L + (labels.length === 1 ? iw / 2 : (iw * i) / (labels.length - 1));
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((lab, i) => {
    if (i % every === 0) g.append(svg("text", { x: xs(i), y: H - 26, "text-anchor": "middle" }, lab));
  });
  g.append(svg("text", { x: L + iw / 2, y: H - 6, "text-anchor": "middle", class: "axis" }, xTitle));
  g.append(svg("text", { x: 12, y: T + ih / 2, "text-anchor": "middle", class: "axis", transform: `rotate(-90 12 ${T + ih / 2})` }, yTitle));
  for (const s of series) {
    let d = "", pen = false;
    s.points.forEach((y, i) => {
      if (y === null || y === undefined) { pen = false; return; }
      const px = xs(i).toFixed(1), py = (T + ih * (1 - y)).toFixed(1);
      d += (pen ? " L" : " M") + px + " " + py;
      pen = true;
      const cls = "dot-" + s.cls + (s.hollow && s.hollow[i] ? " hollow" : "");
      g.append(svg("circle", { cx: px, cy: py, r: 3.5, class: cls },
        svg("title", null, `${s.name ? s.name + ", " : ""}${labels[i]}: ${pct(y)}${s.hollow && s.hollow[i] ? " (most of the cohort still open)" : ""}`)));
    });
    if (d) g.prepend(svg("path", { d: d.trim(), class: "line-" + s.cls }));
  }
  return g;
}

// ---- the panels ----

// drawDashboard starts every panel of view s (the sales ops panels, or
// those of s.view); it returns their promises.
function drawDashboard(s) {
  if (s.view === "leadership") return drawLeadership(s);
  if (s.view === "forecaster") return drawForecaster(s);
  const range = { from: s.from, to: s.to, as_of: s.as_of };
  const by = s.by || "";
  return [
    panel("warnings", async () => drawWarnings(await api("v1/warnings", { as_of: s.as_of, kind: s.wkind, page_size: 10 }), s)),
    panel("funnel", async () => drawFunnel(await api("v1/funnel", { ...range, window_days: s.window_days, by }), by)),
    panel("trend", async () => drawTrend(await api("v1/funnel", { ...range, window_days: s.window_days, interval: s.interval || "month" }), s)),
    panel("cycle", async () => drawCycle(await api("v1/cycle-time", { ...range, by }), by)),
    panel("stalls", async () => drawStalls(await api("v1/stalls", { as_of: s.as_of, page: s.spage || 1, page_size: 20 }))),
    panel("missed", async () => drawMissed(await api("v1/missed", range))),
    panel("movement", async () => drawMovement(await api("v1/movement", range))),
    panel("stages", async () => drawStages(await api("v1/stage-history", { as_of: s.as_of, by }), by)),
    panel("forecast", async () => {
      const [lad, res] = await Promise.all([api("v1/ladder", {}),
        api("v1/forecast", { as_of: s.as_of, horizon_days: s.horizon_days, close_period: s.close_period })]);
      return drawForecast(res, lad.steps || []);
    }),
    backtestPanel(s),
  ];
}

function backtestPanel(s) {
  return panel("backtest-panel", async () => s.backtest
    ? drawBacktest((await api("v1/forecast", { as_of: s.as_of, backtest: s.backtest, horizon_days: s.horizon_days, close_period: s.close_period })).backtest)
    : [hint("Set a back-test date to compare what each weighting forecast at that date with what was won by the period end; shown beside the current forecast, not instead of it.")]);
}

// byLink links a breakdown key to the deal list where one exists; an
// owner shows by name when the answer's people name it.
function byLink(by, key, people) {
  if (by === "owner") return ownerLink(key, people);
  if (by === "team") return teamLink(key);
  return key || "(none)";
}

function drawWarnings(res, s) {
  const t = res.total || {};
  if (!t.deals) return [hint("No open deal has a warning.")];
  const kinds = res.by_kind || [];
  const kmax = Math.max(1, ...kinds.map((k) => k.deals));
  const tabs = el("p", { class: "tabs" }, ["any", ...kinds.map((k) => k.key)].map((k) =>
    el("a", { href: href({ wkind: k === "any" ? "" : k }, true), class: (s.wkind || "any") === k ? "on" : null }, title(k))));
  const rows = (list) => list.slice().sort((a, b) => b.deals - a.deals).slice(0, 10);
  return [
    summary([["deals with a warning", num(t.deals)], ["their value", perCurrency(t.amounts_by_currency)]]),
    el("div", { class: "cols" },
      el("div", null, el("h3", null, "By kind"), table(["warning", "", "deals", "value"],
        kinds.map((k) => [listLink({ warning: k.key }, title(k.key)), stackBar([{ value: k.deals, cls: "stalled" }], kmax, `${k.deals} deals`),
          num(k.deals), perCurrency(k.amounts_by_currency)]))),
      el("div", null, el("h3", null, "By owner"), table(["owner", "deals", "value"],
        rows(res.by_owner || []).map((o) => [listLink({ owner: o.key, warning: "any" }, personName(res.people, o.key) || "(none)"), num(o.deals), perCurrency(o.amounts_by_currency)]))),
      el("div", null, el("h3", null, "By team"), table(["team", "deals", "value"],
        rows(res.by_team || []).map((o) => [listLink({ team: o.key, warning: "any" }, o.key || "(none)"), num(o.deals), perCurrency(o.amounts_by_currency)])))),
    el("h3", null, "Largest deals with a warning"), tabs,
    dealTable(res.deals || [], res.people),
    el("p", null, listLink({ warning: s.wkind || "any" }, "all of them →")),
  ];
}

// dealTable lists DealRows with their links, owners by name among people.
function dealTable(deals, people) {
  if (!deals.length) return hint("No deals.");
  return table(["deal", "owner", "team", "amount", "close", "stage", "highest step", "days since commitment", "warnings"],
    deals.map((d) => [dealLink(d.opportunity_id, d.name), ownerLink(d.owner_id, people), teamLink(d.team),
      `${money(d.amount)}${d.currency ? " " + d.currency : ""}`, d.close_date || "–", d.stage || "–",
      stepLink(d.step, `${d.step_index}. ${title(d.step)}`), num(d.days_since_commitment),
      (d.warnings || []).map((w) => title(w.kind)).join(", ") || "–"]));
}

function drawFunnel(res, by) {
  const steps = res.steps || [];
  if (!steps.some((s) => s.reached)) return [hint("No opportunity reached a step in this period.")];
  const max = Math.max(1, ...steps.map((s) => s.reached));
  const nodes = [table(
    ["step", "", "reached", "converted", "still open", "dropped", "skipped", "conv. (decided)", "conv. (reached)", "value conv.", "median", "p90"],
    steps.map((s) => [
      stepLink(s.from_step, `${title(s.from_step)} → ${title(s.to_step)}`),
      stackBar([
        { value: s.converted, cls: "converted" },
        { value: s.still_open, cls: "open" },
        { value: s.dropped, cls: "dropped" },
      ], max, `${s.converted} converted, ${s.still_open} still open, ${s.dropped} dropped of ${s.reached}`),
      el("td", { "data-field": "reached", "data-step": s.from_step }, num(s.reached)),
      num(s.converted), num(s.still_open), num(s.dropped), num(s.skipped),
      pct(s.conversion_rate_decided), pct(s.conversion_rate_reached), pct(s.amount_conversion_rate_decided),
      days(s.time_to_convert && s.time_to_convert.median_days),
      days(s.time_to_convert && s.time_to_convert.p90_days),
    ]))];
  if (by) {
    // The group of the values a top-N breakdown merged comes last.
    const other = "\uffffother";
    const gkey = (g) => (g.other ? other : g.key);
    const keys = [...new Set(steps.flatMap((s) => (s.groups || []).map(gkey)))].sort();
    const merged = (res.definitions || {}).other_keys || 0;
    nodes.push(el("h3", null, `Conversion (decided) by ${by}`),
      el("p", { class: "hint" }, "Each cell: converted / (converted + dropped), and how many reached the step."),
      table([by, ...steps.map((s) => title(s.from_step))], keys.map((k) => [k === other ? `${merged} others` : byLink(by, k, res.people), ...steps.map((s) => {
        const g = (s.groups || []).find((x) => gkey(x) === k);
        return g ? `${pct(g.conversion_rate_decided)} (${num(g.reached)})` : "–";
      })])));
  }
  return nodes;
}

function drawTrend(res, s) {
  const steps = res.steps || [];
  const step = steps.find((x) => x.from_step === s.trend) || steps[0];
  const sel = $("trend-step");
  sel.replaceChildren(...steps.map((x) => el("option", { value: x.from_step }, `${title(x.from_step)} → ${title(x.to_step)}`)));
  sel.onchange = () => go({ trend: sel.value }, true);
  if (!step) return [hint("No data.")];
  sel.value = step.from_step;
  const groups = (step.groups || []).filter((g) => g.key === "" && !g.other && g.period);
  if (groups.length === 0) return [hint("No cohort in this period.")];
  const labels = groups.map((g) => g.period);
  // A cohort mostly still open has not decided yet: its point is hollow,
  // not a collapse of the conversion rate.
  const hollow = groups.map((g) => g.still_open * 2 > g.reached);
  const interval = s.interval || "month";
  return [
    lineChart(labels, [
      { cls: "decided", points: groups.map((g) => g.conversion_rate_decided), hollow },
      { cls: "reached", points: groups.map((g) => g.conversion_rate_reached), hollow },
    ], `${interval} the cohort reached ${title(step.from_step)}`, "conversion"),
    table([interval, "reached", "converted", "still open", "dropped", "conv. (decided)"],
      groups.map((g) => [g.period, num(g.reached), num(g.converted), num(g.still_open), num(g.dropped), pct(g.conversion_rate_decided)])),
  ];
}

function drawCycle(res, by) {
  const row = (label, o) => [label, ...["won", "lost", "closed"].flatMap((k) => [num(o[k] && o[k].n), days(o[k] && o[k].median_days), days(o[k] && o[k].p90_days)])];
  if (!res.closed || !res.closed.n) return [hint("No deal closed in this period.")];
  const head = ["", "won", "median", "p90", "lost", "median", "p90", "closed", "median", "p90"];
  const nodes = [table(head, [row("all", res)])];
  if (by) {
    nodes.push(el("h3", null, `By ${by}`), table([by, ...head.slice(1)],
      (res.groups || []).filter((g) => !g.period).map((g) => row(g.other ? `${(res.definitions || {}).other_keys} others` : byLink(by, g.key, res.people), g))));
  }
  return nodes;
}

function drawStalls(res) {
  const steps = res.steps || [];
  if (!res.open) return [hint("No open deals.")];
  const max = Math.max(1, ...steps.map((s) => s.open));
  const pages = Math.max(1, Math.ceil(res.stalled / res.page_size));
  return [
    summary([
      ["open deals", num(res.open)], ["open value", amount(res, "open_amount")],
      ["stalled deals", num(res.stalled)], ["stalled value", amount(res, "stalled_amount")],
    ]),
    table(["highest step", "", "open", "open value", "stalled", "stalled value", "stalled %"],
      steps.map((s) => [
        stepLink(s.step, `${s.step_index}. ${title(s.step)}`),
        stackBar([{ value: s.stalled, cls: "stalled" }, { value: s.open - s.stalled, cls: "open" }], max, `${s.stalled} stalled of ${s.open} open`),
        num(s.open), amount(s, "open_amount"), listLink({ step: s.step, stalled: "true" }, num(s.stalled)), amount(s, "stalled_amount"),
        pct(s.open ? s.stalled / s.open : null),
      ])),
    el("h3", null, "Stalled deals"),
    (res.deals || []).length === 0 ? hint("No stalled deals.") : table(
      ["opportunity", "owner", "team", "amount", "highest step", "days since commitment", "stalled since"],
      res.deals.map((d) => [dealLink(d.opportunity_id), ownerLink(d.owner_id, res.people), teamLink(d.team),
        `${money(d.amount)}${d.currency ? " " + d.currency : ""}`, stepLink(d.step, `${d.step_index}. ${title(d.step)}`),
        num(d.days_since_commitment), day(d.stalled_since)])),
    el("p", { class: "pager" },
      res.page > 1 ? el("a", { href: href({ spage: res.page - 1 }, true) }, "← previous") : null,
      ` page ${res.page} of ${pages} `,
      res.page < pages ? el("a", { href: href({ spage: res.page + 1 }, true) }, "next →") : null),
  ];
}

function drawMissed(res) {
  const t = res.total || {};
  if (!t.missed && !t.interactions) return [hint("No buyer interaction in this period.")];
  const reasons = res.by_reason || [];
  const rmax = Math.max(1, ...reasons.map((r) => r.missed));
  const owners = (res.by_owner || []).slice().sort((a, b) => b.missed - a.missed).slice(0, 15);
  return [
    summary([
      ["buyer interactions", num(t.interactions)], ["missed interactions", num(t.missed_interactions)],
      ["miss rate", pct(t.miss_rate)], ["missed commitments", num(t.missed)],
      ["deals with a miss", num(t.deals)], ["value at stake", amount(t, "value_at_stake")],
    ]),
    el("p", { class: "hint" }, "Miss rate = missed interactions / buyer interactions. One interaction may miss several commitments (rows below count commitments). " +
      "Value at stake = the amounts (as of the as-of date) of the deals with a miss, each deal once; a deal counts in every row it has a miss in, so rows add up to more than the total."),
    el("h3", null, "By reason"),
    table(["reason", "", "missed", "deals", "value at stake"], reasons.map((r) => [title(r.key),
      stackBar([{ value: r.missed, cls: "missed" }], rmax, `${r.missed} missed`), num(r.missed), num(r.deals), amount(r, "value_at_stake")])),
    el("h3", null, "By expected step"),
    table(["expected step", "missed", "deals", "value at stake", "missed interactions", "interactions", "miss rate"],
      (res.by_step || []).map((r) => [stepLink(r.key, `${r.step_index || ""} ${title(r.key)}`), num(r.missed), num(r.deals),
        amount(r, "value_at_stake"), num(r.missed_interactions), num(r.interactions), pct(r.miss_rate)])),
    el("h3", null, "By owner"),
    table(["owner", "missed", "deals", "value at stake", "missed interactions", "interactions", "miss rate"],
      owners.map((r) => [ownerLink(r.key, res.people), num(r.missed), num(r.deals), amount(r, "value_at_stake"),
        num(r.missed_interactions), num(r.interactions), pct(r.miss_rate)])),
  ];
}

const MOVES = [
  ["new", "new", "open"], ["advanced", "advanced", "converted"], ["regressed", "regressed", "missed"],
  ["stalled", "stalled", "stalled"], ["pulled_in", "pulled in", "converted"], ["pushed_out", "pushed out", "stalled"],
  ["won", "won", "converted"], ["lost", "lost", "dropped"],
];

function drawMovement(res) {
  const t = res.total || {};
  if (!MOVES.some(([k]) => t[k])) return [hint("No deal moved in this period.")];
  const max = Math.max(1, ...MOVES.map(([k]) => t[k + "_amount"] || 0));
  const bySteps = (res.by_step || []).filter((s) => MOVES.some(([k]) => s[k]));
  return [
    table(["movement", "value", "deals", "amount"], MOVES.map(([k, label, cls]) => [label,
      stackBar([{ value: t[k + "_amount"] || 0, cls }], max, amount(t, k + "_amount")),
      num(t[k]), amount(t, k + "_amount")])),
    el("h3", null, "By highest step at the end"),
    table(["step", ...MOVES.map(([, l]) => l)],
      bySteps.map((s) => [stepLink(s.step, `${s.step_index}. ${title(s.step)}`), ...MOVES.map(([k]) => num(s[k]))])),
  ];
}

function drawStages(res, by) {
  const t = res.total || {};
  if (!t.deals) return [hint("No deal has a CRM stage yet.")];
  const stages = (res.stages || []).slice().sort((a, b) => a.step_index - b.step_index || b.entries - a.entries);
  const smax = Math.max(1, ...stages.map((x) => x.entries));
  const nodes = [
    summary([["deals", num(t.deals)], ["moves", num(t.moves)], ["forward", num(t.forward)], ["backward", num(t.backward)]]),
    table(["stage", "step", "", "entries", "now in it", "median days", "p90 days"], stages.map((x) => [x.stage,
      x.step_index ? `${x.step_index}. ${title(x.step)}` : "–",
      stackBar([{ value: x.current, cls: "open" }, { value: x.entries - x.current, cls: "dropped" }], smax, `${x.entries} entries, ${x.current} now`),
      num(x.entries), num(x.current), days(x.time_in_stage && x.time_in_stage.median_days), days(x.time_in_stage && x.time_in_stage.p90_days)])),
  ];
  if (by) {
    nodes.push(el("h3", null, `By ${by}`), table([by, "deals", "moves", "forward", "backward"],
      (res.groups || []).map((g) => [g.other ? `${(res.definitions || {}).other_keys} others` : byLink(by, g.key, res.people), num(g.total.deals), num(g.total.moves), num(g.total.forward), num(g.total.backward)])));
  }
  return nodes;
}

function drawForecast(res, ladderSteps) {
  const pl = res.pipeline || {}, t = pl.total || {}, sm = res.samples || {};
  const d = res.definitions || {};
  if (!t.deals) return [hint("No open deals to forecast.")];
  const stepKey = (i) => (i >= 1 && i <= ladderSteps.length ? ladderSteps[i - 1].key : (i === 0 ? "none yet" : ""));
  const nodes = [
    summary([
      ["open deals", num(t.deals)], ["open pipeline", amount(t, "amount")],
      ["commitment-weighted", amount(t, "expected")], ["P10 – P90", spread(t)],
      ["CRM-weighted", amount(t, "crm_weighted")],
    ]),
    el("p", { class: "hint" },
      `Forecast at ${day(d.forecast_at)}, wins within ${d.horizon_days} days; learned from ${num(sm.training_samples)} ` +
      `(deal, reference date) samples of ${num(sm.training_opportunities)} opportunities — a deal open at several reference dates is a sample at each.`),
  ];
  const periods = pl.by_close_period || [];
  if (periods.length) {
    const max = Math.max(1, ...periods.map((g) => Math.max(g.p90 || 0, g.expected || 0, g.crm_weighted || 0)));
    nodes.push(el("h3", null, `By close ${d.close_period || "period"}`),
      el("div", { class: "legend" },
        el("span", { class: "key converted" }), "commitment-weighted (P10–P90 whisker)",
        el("span", { class: "key crm" }), "CRM-weighted"),
      table(["close period", "", "deals", "pipeline", "commitment", "P10 – P90", "CRM"],
        periods.map((g) => [g.key || "(no date)", forecastBar(g, max), num(g.deals), amount(g, "amount"),
          amount(g, "expected"), spread(g), amount(g, "crm_weighted")])));
  }
  const cols = el("div", { class: "cols" });
  for (const [name, rows, link] of [["By owner", pl.by_owner, ownerLink], ["By team", pl.by_team, teamLink]]) {
    if (!rows || !rows.length) continue;
    cols.append(el("div", null, el("h3", null, name), table(["", "deals", "pipeline", "commitment", "CRM"],
      rows.slice(0, 10).map((g) => // the server orders them
        [link(g.key, res.people), num(g.deals), amount(g, "amount"), amount(g, "expected"), amount(g, "crm_weighted")]))));
  }
  nodes.push(cols);
  const steps = (res.model && res.model.steps) || [];
  if (steps.length) {
    nodes.push(el("h3", null, "P(win) by highest step"), table(["step", "samples", "won", "lost", "still open", "raw", "P", "80% interval"],
      steps.map((e) => [`${e.step}. ${title(stepKey(e.step))}`, num(e.n), num(e.won), num(e.lost), num(e.censored),
        pct(e.raw), pct(e.p), `${pct(e.lo)} – ${pct(e.hi)}`])));
  }
  return nodes;
}

// spread is a figure's P10 – P90: of its one or converted currency, else
// per currency.
function spread(g) {
  if (g.p10 !== null && g.p10 !== undefined) return `${money(g.p10)} – ${money(g.p90)}`;
  const by = g.amounts_by_currency || {};
  const parts = Object.keys(by).sort().filter((c) => by[c].p10 !== undefined)
    .map((c) => `${c || "?"} ${money(by[c].p10)} – ${money(by[c].p90)}`);
  return parts.length ? parts.join(" · ") : "–";
}

// forecastBar shows the commitment-weighted expectation with its P10–P90
// whisker, and the CRM weighting beneath it.
function forecastBar(g, max) {
  const w = 240, h = 20, sx = (v) => (max > 0 ? (w * (v || 0)) / max : 0);
  const bar = svg("svg", { width: "100%", height: h, viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", role: "img", class: "chart" },
    svg("title", null, `commitment ${money(g.expected)} (P10 ${money(g.p10)}, P90 ${money(g.p90)}); CRM ${money(g.crm_weighted)}`),
    svg("rect", { x: 0, y: 1, width: sx(g.expected).toFixed(2), height: 10, class: "converted" }),
    svg("rect", { x: 0, y: 13, width: sx(g.crm_weighted).toFixed(2), height: 6, class: "crm" }));
  if (g.p10 !== undefined && g.p90 !== undefined) {
    bar.append(svg("line", { x1: sx(g.p10).toFixed(2), x2: sx(g.p90).toFixed(2), y1: 6, y2: 6, class: "whisker" }));
  }
  return el("td", { class: "bar" }, bar);
}

function drawBacktest(bt) {
  if (!bt) return [hint("No back-test in the answer.")];
  const rows = [["commitment", bt.commitment || {}], ["CRM", bt.crm || {}]];
  const nodes = [
    el("p", null, `Forecast at ${day(bt.date)}, won by ${day(bt.period_end)}` + (bt.complete ? "." : " (period not over yet: errors are not final).")),
    el("p", { class: "hint" }, `${num(bt.deals)} deals open (${amount(bt, "amount")}); ${num(bt.won_deals)} won (${amount(bt, "won_amount")}).`),
    table(["weighting", "forecast", "actually won", "error", "error %", "Brier score"],
      rows.map(([n, a]) => [n, amount(a, "forecast"), amount(a, "actual"), amount(a, "error"),
        // A percentage of a tiny actual is noise, not accuracy.
        a.pct_error === null || a.pct_error === undefined || Math.abs(a.pct_error) > 1000 ? "–" : a.pct_error.toFixed(1) + "%",
        a.brier === undefined || a.brier === null ? "–" : a.brier.toFixed(3)])),
    el("h3", null, "Calibration: predicted vs actual win rate"),
    el("div", { class: "legend" }, el("span", { class: "key converted" }), "commitment", el("span", { class: "key crm" }), "CRM"),
    calibrationChart(rows),
  ];
  return nodes;
}

// calibrationChart plots each band's mean predicted probability against
// its actual win rate; a calibrated weighting lies on the diagonal.
function calibrationChart(rows) {
  const S = 240, P = 40, iw = S - P - 10;
  const g = svg("svg", { viewBox: `0 0 ${S} ${S}`, width: S, height: S, role: "img", class: "chart" });
  const x = (v) => P + iw * v, y = (v) => 10 + iw * (1 - v);
  for (const t of [0, 0.5, 1]) {
    g.append(svg("line", { x1: x(0), x2: x(1), y1: y(t), y2: y(t), class: "grid" }));
    g.append(svg("text", { x: P - 4, y: y(t) + 4, "text-anchor": "end" }, t * 100 + "%"));
    g.append(svg("text", { x: x(t), y: y(0) + 14, "text-anchor": "middle" }, t * 100 + "%"));
  }
  g.append(svg("text", { x: x(0.5), y: S - 2, "text-anchor": "middle", class: "axis" }, "predicted P(win)"));
  g.append(svg("text", { x: 10, y: y(0.5), "text-anchor": "middle", class: "axis", transform: `rotate(-90 10 ${y(0.5)})` }, "actual win rate"));
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

// ---- leadership view ----

// drawLeadership starts the leadership panels: every step's conversion
// trend, the cumulative conversion from the first step, and this period
// against the previous one, all from one GET /v1/funnel by interval.
function drawLeadership(s) {
  const interval = s.interval || "month";
  const trend = () => api("v1/funnel", { from: s.from, to: s.to, as_of: s.as_of, window_days: s.window_days, interval });
  return [
    panel("conversion-trends", async () => drawStepTrends(await trend(), interval)),
    panel("cumulative", async () => drawCumulative(await trend(), interval)),
    panel("pop", async () => drawPeriodOverPeriod(await trend(), interval, s)),
  ];
}

// periodGroups maps a funnel step's periods to its unbroken per-period
// group (the cohort that reached the step in that period).
function periodGroups(step) {
  const out = {};
  for (const g of step.groups || []) if (g.key === "" && !g.other && g.period) out[g.period] = g;
  return out;
}

// periodsOf lists the periods of any step's groups, oldest first.
function periodsOf(steps) {
  return [...new Set(steps.flatMap((st) => Object.keys(periodGroups(st))))].sort();
}

const mostlyOpen = (g) => Boolean(g) && g.still_open * 2 > g.reached;
const stepName = (st) => `${title(st.from_step)} → ${title(st.to_step)}`;

// seriesLegend names the series drawn with classes s0, s1, ...
function seriesLegend(names) {
  return el("div", { class: "legend" }, names.map((n, i) => [el("span", { class: `key s${i % 8}` }), n]),
    el("span", { class: "key hollow" }), "mostly still open");
}

function drawStepTrends(res, interval) {
  const steps = res.steps || [];
  const labels = periodsOf(steps);
  if (!labels.length) return [hint("No cohort in this period.")];
  const byStep = steps.map(periodGroups);
  const series = steps.map((st, i) => ({
    cls: "s" + (i % 8), name: stepName(st),
    points: labels.map((p) => (byStep[i][p] ? byStep[i][p].conversion_rate_decided : null)),
    hollow: labels.map((p) => mostlyOpen(byStep[i][p])),
  }));
  return [
    seriesLegend(steps.map(stepName)),
    lineChart(labels, series, `${interval} the cohort reached the step`, "conversion (decided)"),
    table([interval, ...steps.map(stepName)], labels.map((p) => [p, ...byStep.map((b) => {
      const g = b[p];
      if (!g) return "–";
      return g.converted + g.dropped ? `${pct(g.conversion_rate_decided)} of ${num(g.converted + g.dropped)}` : `– (${num(g.still_open)} open)`;
    })])),
  ];
}

// cumulative returns, for the step groups gs (step 1's first), the
// conversion from step 1 to each later step: the product of the steps'
// decided rates; null from the first step without one.
function cumulative(gs) {
  const out = [];
  let c = 1;
  for (const g of gs) {
    c = c === null || !g || g.conversion_rate_decided === null || g.conversion_rate_decided === undefined ? null : c * g.conversion_rate_decided;
    out.push(c);
  }
  return out;
}

function drawCumulative(res, interval) {
  const steps = res.steps || [];
  const labels = periodsOf(steps);
  if (!labels.length) return [hint("No cohort in this period.")];
  const byStep = steps.map(periodGroups);
  const first = steps.length ? title(steps[0].from_step) : "";
  const perPeriod = labels.map((p) => cumulative(byStep.map((b) => b[p])));
  const open = labels.map((p) => byStep.map((b) => mostlyOpen(b[p])));
  const names = steps.map((st) => `→ ${title(st.to_step)}`);
  const series = steps.map((st, k) => ({
    cls: "s" + (k % 8), name: `${first} ${names[k]}`,
    points: perPeriod.map((c) => c[k]),
    // Hollow when a cohort behind the product is mostly still open.
    hollow: open.map((o) => o.slice(0, k + 1).some(Boolean)),
  }));
  const whole = cumulative(steps);
  return [
    el("p", { class: "hint" },
      `Reached ${first} → reached step K, per ${interval}: the product over steps j = 1 … K−1 of converted ÷ (converted + dropped), ` +
      `where both count the deals that reached step j in that ${interval} (the funnel's step j → j+1 row). ` +
      `It is the share of deals starting at ${first} that reach step K at that ${interval}'s rates; deals still open are in no rate.`),
    seriesLegend(names),
    lineChart(labels, series, interval, `conversion from ${first}`),
    table([interval, ...names], [
      ...labels.map((p, i) => [p, ...perPeriod[i].map(pct)]),
      [el("td", null, el("b", null, "whole range")), ...whole.map(pct)],
    ]),
  ];
}

// arrow shows a change: ▲ up, ▼ down, = none; fmt formats its size.
function arrow(delta, fmt) {
  if (delta === null || delta === undefined || Number.isNaN(delta)) return el("td", null, "–");
  if (delta === 0) return el("td", { class: "flat" }, "= 0");
  const up = delta > 0;
  return el("td", { class: up ? "up" : "down", "data-delta": delta }, `${up ? "▲ +" : "▼ −"}${fmt(Math.abs(delta))}`);
}

// periodAfter returns the start (YYYY-MM-DD) of the period after the one
// starting at start.
function periodAfter(start, interval) {
  const d = new Date(start + "T00:00:00Z");
  if (interval === "week") d.setUTCDate(d.getUTCDate() + 7);
  else d.setUTCMonth(d.getUTCMonth() + (interval === "quarter" ? 3 : 1));
  return isoDate(d);
}

function drawPeriodOverPeriod(res, interval, s) {
  const steps = res.steps || [];
  const labels = periodsOf(steps);
  if (labels.length < 2) return [hint(`Fewer than two ${interval}s with cohorts between from and to: nothing to compare.`)];
  const cur = labels[labels.length - 1], prev = labels[labels.length - 2];
  // The last period is under way when the range ends before it does.
  const sofar = s.to && periodAfter(cur, interval) > s.to ? ` (so far, to ${s.to})` : "";
  const pp = (x) => (100 * x).toFixed(1) + " pp";
  const rows = steps.map((st) => {
    const b = periodGroups(st), c = b[cur] || {}, p = b[prev] || {};
    const rc = c.conversion_rate_decided, rp = p.conversion_rate_decided;
    return [stepLink(st.from_step, stepName(st)),
      num(c.reached || 0), num(p.reached || 0), arrow((c.reached || 0) - (p.reached || 0), num),
      num(c.converted || 0), num(p.converted || 0), arrow((c.converted || 0) - (p.converted || 0), num),
      pct(rc), pct(rp), arrow(rc === null || rc === undefined || rp === null || rp === undefined ? null : rc - rp, pp)];
  });
  return [
    el("p", { class: "hint" },
      `This ${interval} (${cur}${sofar}) against the previous one (${prev}): the deals that reached each step in the ${interval}, ` +
      `those of them converted to the next step so far, and conversion = converted ÷ (converted + dropped). ` +
      `The latest cohorts are the youngest: fewer of them have decided yet.`),
    table(["step", `reached ${cur}`, prev, "Δ", `converted ${cur}`, prev, "Δ", `conversion ${cur}`, prev, "Δ"], rows),
  ];
}

// ---- forecaster view ----

// drawForecaster starts the forecaster panels: the forecast by close
// period, owner, team and CRM forecast category (one answer), the
// back-test beside it, and the accuracy over the last period ends.
function drawForecaster(s) {
  const fq = { as_of: s.as_of, horizon_days: s.horizon_days, close_period: s.close_period, by: "close_period,owner,team,forecast_category" };
  return [
    panel("forecast", async () => {
      const [lad, res] = await Promise.all([api("v1/ladder", {}), api("v1/forecast", fq)]);
      return drawForecast(res, lad.steps || []);
    }),
    panel("categories", async () => drawCategories(await api("v1/forecast", fq))),
    backtestPanel(s),
    panel("accuracy", async () => drawAccuracy(s)),
  ];
}

function drawCategories(res) {
  const groups = (res.pipeline || {}).by_forecast_category || [];
  if (!groups.length) return [hint("No open deals to forecast.")];
  const max = Math.max(1, ...groups.map((g) => Math.max(g.expected || 0, g.crm_weighted || 0)));
  return [
    el("div", { class: "legend" },
      el("span", { class: "key converted" }), "commitment-weighted", el("span", { class: "key crm" }), "CRM-weighted"),
    table(["category", "", "deals", "pipeline", "commitment", "CRM"], groups.map((g) => [g.key || "(none)", forecastBar(g, max),
      num(g.deals), amount(g, "amount"), amount(g, "expected"), amount(g, "crm_weighted")])),
    groups.length === 1 && !groups[0].key
      ? hint("No deal has a forecast category: the CRM sends none, or the states were derived before categories were kept (commitflow replay).")
      : null,
  ];
}

// DEFAULT_HORIZON is the API's forecast horizon when none is asked for.
const DEFAULT_HORIZON = 180;

// periodEnds returns the last n month (or quarter) ends, as the next
// period's first day (YYYY-MM-DD), whose back-test is over: the end plus
// horizon days at or before the view's as_of (now when empty); newest
// first.
function periodEnds(s, n, horizon) {
  const asOf = s.as_of ? new Date(s.as_of + "T00:00:00Z") : new Date();
  const step = s.close_period === "quarter" ? 3 : 1;
  let y = asOf.getUTCFullYear(), m = asOf.getUTCMonth();
  m -= m % step;
  const out = [];
  while (out.length < n) {
    const d = new Date(Date.UTC(y, m, 1));
    if (d.getTime() + horizon * 86400000 <= asOf.getTime()) out.push(isoDate(d));
    m -= step;
    if (m < 0) { m += 12; y--; }
  }
  return out;
}

// errorPct is a weighting's error as a percentage of what was won, null
// when nothing (or next to nothing: over 1000%) was won.
function errorPct(a) {
  const e = a && a.pct_error;
  return e === null || e === undefined || Math.abs(e) > 1000 ? null : e;
}

async function drawAccuracy(s) {
  const n = Math.min(12, Math.max(1, parseInt(s.periods, 10) || DEFAULT_PERIODS));
  const horizon = parseInt(s.horizon_days, 10) || DEFAULT_HORIZON;
  const ends = periodEnds(s, n, horizon).reverse();
  const answers = await Promise.all(ends.map((d) =>
    api("v1/forecast", { as_of: s.as_of, backtest: d, horizon_days: s.horizon_days, close_period: s.close_period, by: "close_period", draws: 100 })));
  const bts = answers.map((a) => a.backtest || {});
  const label = s.close_period === "quarter" ? "quarter" : "month";
  const W = [["commitment", "converted", "commitment"], ["CRM", "crm", "crm"]];
  const series = W.map(([name, cls, key]) => ({
    name, cls, points: bts.map((b) => errorPct(b[key])), hollow: bts.map((b) => !b.complete),
  }));
  // Mean absolute error over the complete back-tests, per weighting.
  const mape = W.map(([, , key]) => {
    const xs = bts.filter((b) => b.complete).map((b) => errorPct(b[key])).filter((x) => x !== null);
    return xs.length ? (xs.reduce((t, x) => t + Math.abs(x), 0) / xs.length).toFixed(1) + "%" : "–";
  });
  return [
    el("p", { class: "hint" },
      `For each of the last ${n} ${label} ends whose ${horizon}-day horizon is over by as_of: the back-test at that date — what each weighting ` +
      `forecast for the deals then open against what they won within ${horizon} days. Error = (forecast − won) ÷ won. ` +
      `A shorter horizon reaches more recent ${label} ends.`),
    summary([["mean |error|, commitment", mape[0]], ["mean |error|, CRM", mape[1]]]),
    el("div", { class: "legend" }, el("span", { class: "key converted" }), "commitment", el("span", { class: "key crm" }), "CRM",
      el("span", { class: "key hollow" }), "not over yet"),
    errorChart(ends, series, `${label} end (forecast date)`, "error % of won"),
    table([`${label} end`, "open deals", "won", "commitment", "CRM", "actually won", "error, commitment", "error, CRM", "over"],
      bts.map((b, i) => [ends[i], num(b.deals), num(b.won_deals), amount(b.commitment || {}, "forecast"), amount(b.crm || {}, "forecast"),
        amount(b, "won_amount"), errorPct(b.commitment) === null ? "–" : errorPct(b.commitment).toFixed(1) + "%",
        errorPct(b.crm) === null ? "–" : errorPct(b.crm).toFixed(1) + "%", b.complete ? "yes" : `no (to ${day(b.period_end)})`])),
  ];
}

// errorChart draws series [{cls, points: [% or null], hollow: [bool],
// name}] over labels on a y axis symmetric about 0%.
function errorChart(labels, series, xTitle, yTitle) {
  const W = 640, H = 220, L = 56, R = 30, T = 10, B = 46;
  const iw = W - L - R, ih = H - T - B;
  const top = Math.max(1, ...series.flatMap((s) => s.points.filter((v) => v !== null).map(Math.abs)));
  const m = [10, 25, 50, 100, 200, 500, 1000].find((x) => x >= top) || 1000;
  const y = (v) => T + (ih * (m - v)) / (2 * m);
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", class: "chart" });
  for (const t of [-m, -m / 2, 0, m / 2, m]) {
    g.append(svg("line", { x1: L, x2: W - R, y1: y(t), y2: y(t), class: t === 0 ? "zero" : "grid" }));
    g.append(svg("text", { x: L - 6, y: y(t) + 4, "text-anchor": "end" }, (t > 0 ? "+" : "") + t + "%"));
  }
  const xs = (i) => L + (labels.length === 1 ? iw / 2 : (iw * i) / (labels.length - 1));
  labels.forEach((lab, i) => g.append(svg("text", { x: xs(i), y: H - 26, "text-anchor": "middle" }, lab)));
  g.append(svg("text", { x: L + iw / 2, y: H - 6, "text-anchor": "middle", class: "axis" }, xTitle));
  g.append(svg("text", { x: 12, y: T + ih / 2, "text-anchor": "middle", class: "axis", transform: `rotate(-90 12 ${T + ih / 2})` }, yTitle));
  for (const s of series) {
    let d = "", pen = false;
    s.points.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      const px = xs(i).toFixed(1), py = y(v).toFixed(1);
      d += (pen ? " L" : " M") + px + " " + py;
      pen = true;
      g.append(svg("circle", { cx: px, cy: py, r: 4, class: `${s.cls}${s.hollow[i] ? " hollow-" + s.cls : ""}` },
        svg("title", null, `${s.name}, ${labels[i]}: ${v > 0 ? "+" : ""}${v.toFixed(1)}%${s.hollow[i] ? " (not over yet)" : ""}`)));
    });
    if (d) g.prepend(svg("path", { d: d.trim(), class: "line-" + s.cls }));
  }
  return g;
}
