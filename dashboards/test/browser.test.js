// Browser test of the built-in dashboard (issue 22): starts `commitflow run
// --demo` on free ports with a temporary --data, waits until derivation has
// caught up, and drives the page in headless Chromium (Debian's chromium,
// through playwright-core; no browser download). Screenshots go to
// artifacts/ (ARTIFACTS overrides it).
//
//   COMMITFLOW_BIN=../../bin/commitflow node browser.test.js
"use strict";

const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const assert = require("node:assert/strict");
const { chromium } = require("playwright-core");

const BIN = path.resolve(process.env.COMMITFLOW_BIN || path.join(__dirname, "../../bin/commitflow"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = path.resolve(process.env.ARTIFACTS || path.join(__dirname, "artifacts"));
const OPPORTUNITIES = 600;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function getJSON(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

// startServer runs commitflow with the demo data and returns once every
// demo deal is derived and nothing is left to ingest or derive. While
// events are still behind, it calls onBehind(base) once.
async function startServer(onBehind) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), "commitflow-browser-"));
  const [http, nats] = [await freePort(), await freePort()];
  const log = fs.openSync(path.join(ARTIFACTS, "commitflow.log"), "w");
  const child = spawn(BIN, ["run", "--demo", "--demo-opportunities", String(OPPORTUNITIES), "--data", data,
    "--http", `127.0.0.1:${http}`, "--nats-listen", `127.0.0.1:${nats}`], { stdio: ["ignore", log, log] });
  let exited = null;
  child.on("exit", (code) => { exited = code; });
  const base = `http://127.0.0.1:${http}/`;
  const deadline = Date.now() + 150000;
  let caughtUp = 0;
  for (;;) {
    if (exited !== null) throw new Error(`commitflow run exited ${exited}; see ${ARTIFACTS}/commitflow.log`);
    if (Date.now() > deadline) throw new Error("derivation did not catch up in 150 s");
    let lag = null, deals = null;
    try {
      [lag, deals] = await Promise.all([getJSON(base + "v1/status?tenant=demo"), getJSON(base + "v1/deals?tenant=demo&page_size=1")]);
    } catch (e) { /* not up yet */ }
    if (lag && lag.behind > 2000 && onBehind) {
      await onBehind(base); // its failure is the test's
      onBehind = null;
    }
    caughtUp = lag && lag.behind === 0 && deals.total === OPPORTUNITIES ? caughtUp + 1 : 0;
    if (caughtUp >= 2) break;
    await sleep(1000);
  }
  return {
    base,
    data,
    stop: () => {
      child.kill("SIGTERM");
      return new Promise((r) => { if (exited !== null) r(); else child.on("exit", r); })
        .then(() => fs.rmSync(data, { recursive: true, force: true }));
    },
  };
}

// watch records a page's console errors and uncaught exceptions.
function watch(page) {
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(e.message));
  return errors;
}

async function loaded(page) {
  await page.waitForFunction(() => document.body.dataset.shown === location.hash, null, { timeout: 60000 });
  return page.textContent("#status");
}

// The panels of each view; every one must hold a table of data, and those
// named with a chart an SVG chart with marks in it.
const PANELS = {
  warnings: true, funnel: true, trend: true, cycle: false, stalls: true,
  missed: true, movement: true, stages: true, forecast: true,
};
const LEADERSHIP = { "conversion-trends": true, cumulative: true, pop: false };
const FORECASTER = { forecast: true, categories: true, accuracy: true };

async function checkPanels(page, panels = PANELS) {
  for (const [id, chart] of Object.entries(panels)) {
    const p = await page.$eval("#" + id, (el) => ({
      error: el.querySelector(".error") ? el.querySelector(".error").textContent : "",
      rows: el.querySelectorAll("tbody tr").length,
      marks: [...el.querySelectorAll("svg.chart")].reduce((n, g) =>
        n + [...g.querySelectorAll("rect, circle, path")].filter((m) => {
          const b = m.getBBox();
          return b.width > 0 || b.height > 0;
        }).length, 0),
    }));
    assert.equal(p.error, "", `panel ${id} shows an error`);
    assert.ok(p.rows > 0, `panel ${id} has no table rows`);
    if (chart) assert.ok(p.marks > 0, `panel ${id} has no chart drawn with data`);
  }
}

async function noPageOverflow(page, width) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(w <= width, `page is ${w} px wide at a ${width} px viewport`);
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const started = Date.now();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  // While ingest and derive are behind, the page says so.
  let sawProcessing = null;
  const server = await startServer(async (base) => {
    const page = await browser.newPage();
    await page.goto(base + "#tenant=demo");
    await page.waitForSelector("#processing:not([hidden])", { timeout: 30000 });
    sawProcessing = await page.textContent("#processing");
    await page.close();
  });
  console.log(`server up and caught up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    if (sawProcessing === null) {
      console.log("note: never more than 2000 events behind; the processing banner was not checked");
    } else {
      assert.match(sawProcessing, /^processing: [\d,]+ events behind/, "no processing banner while events were behind");
      console.log(`ok: while behind the page said "${sawProcessing.slice(0, 40)}…"`);
    }
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await ctx.newPage();
    const errors = watch(page);

    // 1. The page over the demo data: every panel drawn, no console error.
    await page.goto(server.base + "#tenant=demo");
    assert.match(await loaded(page), /^Loaded/);
    await checkPanels(page);
    assert.equal(await page.isHidden("#processing"), true, "processing banner shown after catching up");
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-1440.png"), fullPage: true });
    console.log("ok: every panel drawn with data");

    // 1b. The leadership view: every step's trend on one chart, the
    // cumulative conversion, this period against the previous one, from
    // the API's per-period counts.
    await page.click("#views a[data-view=leadership]");
    await page.waitForFunction(() => location.hash.includes("view=leadership"));
    assert.match(await loaded(page), /^Loaded/);
    await checkPanels(page, LEADERSHIP);
    assert.equal(await page.isHidden("#funnel-section"), true, "sales ops panels shown in the leadership view");
    const defaults = await page.evaluate(() => ({ from: document.getElementById("from").value, to: document.getElementById("to").value }));
    const trendAPI = await getJSON(`${server.base}v1/funnel?tenant=demo&from=${defaults.from}&to=${defaults.to}&interval=month`);
    const lines = await page.$$eval("#conversion-trends svg.chart path", (p) => p.length);
    assert.equal(lines, trendAPI.steps.length, "one trend line per step");
    const periods = [...new Set(trendAPI.steps.flatMap((s) => s.groups.filter((g) => g.key === "" && g.period).map((g) => g.period)))].sort();
    const [cur, prev] = [periods[periods.length - 1], periods[periods.length - 2]];
    const g1 = (p) => trendAPI.steps[0].groups.find((g) => g.key === "" && g.period === p) || { reached: 0 };
    const popRow = await page.$$eval("#pop tbody tr:first-child td", (tds) => tds.map((td) => td.textContent));
    const fmt = new Intl.NumberFormat("en-US");
    assert.deepEqual(popRow.slice(1, 3), [fmt.format(g1(cur).reached), fmt.format(g1(prev).reached)], "period over period differs from the API");
    const d = g1(cur).reached - g1(prev).reached;
    assert.equal(popRow[3], d === 0 ? "= 0" : `${d > 0 ? "▲ +" : "▼ −"}${fmt.format(Math.abs(d))}`, "period over period delta");
    // Cumulative to step 3 in the last complete period: the product of
    // the first two steps' decided rates.
    const rate = (k, p) => (trendAPI.steps[k].groups.find((g) => g.key === "" && g.period === p) || {}).conversion_rate_decided;
    const cum = await page.$$eval("#cumulative tbody tr", (r, p) => r.find((tr) => tr.cells[0].textContent === p).cells[2].textContent, prev);
    const want = rate(0, prev) == null || rate(1, prev) == null ? "–" : (100 * (rate(0, prev) * rate(1, prev))).toFixed(1) + "%";
    assert.equal(cum, want, "cumulative conversion differs from the product of the API's rates");
    await page.screenshot({ path: path.join(ARTIFACTS, "leadership-1440.png"), fullPage: true });
    console.log(`ok: leadership view: ${lines} step trends, ${cur} vs ${prev} reached ${popRow[1]} vs ${popRow[2]}, cumulative ${cum}`);

    // 1c. The forecaster view: the pipeline by CRM forecast category and the
    // accuracy over the last period ends, beside the forecast.
    await page.click("#views a[data-view=forecaster]");
    await page.waitForFunction(() => location.hash.includes("view=forecaster"));
    assert.match(await loaded(page), /^Loaded/);
    await checkPanels(page, FORECASTER);
    const fc = await getJSON(`${server.base}v1/forecast?tenant=demo&by=forecast_category`);
    const cats = fc.pipeline.by_forecast_category;
    assert.ok(cats.length > 1 && cats.some((c) => c.key), "the demo's deals have forecast categories");
    assert.deepEqual(await page.$$eval("#categories tbody tr td:first-child", (t) => t.map((x) => x.textContent)),
      cats.map((c) => c.key || "(none)"), "forecast categories differ from the API's");
    assert.equal(await page.$$eval("#accuracy tbody tr", (r) => r.length), 4, "accuracy over 4 period ends by default");
    assert.equal(await page.$$eval("#accuracy svg.chart path", (p) => p.length), 2, "one error line per weighting");
    await page.screenshot({ path: path.join(ARTIFACTS, "forecaster-1440.png"), fullPage: true });
    await page.fill("#periods", "3");
    await page.dispatchEvent("#periods", "change");
    await page.waitForFunction(() => location.hash.includes("periods=3"));
    await loaded(page);
    assert.equal(await page.$$eval("#accuracy tbody tr", (r) => r.length), 3, "accuracy over 3 period ends");
    const firstEnd = await page.textContent("#accuracy tbody tr:first-child td:first-child");
    const bt = (await getJSON(`${server.base}v1/forecast?tenant=demo&backtest=${firstEnd}&by=close_period&draws=100`)).backtest;
    assert.equal(await page.textContent("#accuracy tbody tr:first-child td:nth-child(2)"), fmt.format(bt.deals), "accuracy differs from the API's back-test");
    console.log(`ok: forecaster view: ${cats.length} forecast categories, accuracy over 4 then 3 period ends`);
    await page.click("#views a[data-view='']");
    await page.waitForFunction(() => !location.hash.includes("view="));
    await loaded(page);
    // Each panel links to its table as CSV; the link downloads, with the
    // token, the CSV the API writes, under the server's file name.
    for (const id of Object.keys(PANELS)) {
      assert.ok(await page.$(`#${id} p.csv a`), `panel ${id} has no Download CSV link`);
    }
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#stalls p.csv a")]);
    assert.match(download.suggestedFilename(), /^stalls-demo-\d{4}-\d{2}-\d{2}T\d{6}Z\.csv$/);
    const csv = fs.readFileSync(await download.path(), "utf8");
    assert.match(csv, /^step_index,step,open,open_amount,stalled,stalled_amount\r?\n\d+,/, "the stalls CSV");
    console.log(`ok: Download CSV on every panel; ${download.suggestedFilename()} holds ${csv.trim().split("\n").length - 1} rows`);

    // 2. A filter: break down by team over another period; the numbers are
    // the API's, and the URL holds the view.
    const from = "2026-01-01", to = new Date(Date.now() + 86400000).toISOString().slice(0, 10);
    await page.fill("#from", from);
    await page.fill("#to", to);
    await page.selectOption("#by", "team");
    await page.click("#controls button[type=submit]");
    await page.waitForFunction(() => location.hash.includes("by=team"));
    assert.match(await loaded(page), /^Loaded/);
    const api = await getJSON(`${server.base}v1/funnel?tenant=demo&from=${from}&to=${to}&by=team`);
    const first = api.steps[0];
    const shown = await page.textContent(`#funnel td[data-field=reached][data-step="${first.from_step}"]`);
    assert.equal(shown, new Intl.NumberFormat("en-US").format(first.reached), "funnel reached differs from the API");
    const teams = new Set(api.steps.flatMap((s) => s.groups.map((g) => g.key)));
    const teamRows = await page.$$eval("#funnel .scroll:nth-of-type(2) tbody tr", (r) => r.length);
    assert.equal(teamRows, teams.size, "one breakdown row per team of the API's answer");
    console.log(`ok: by=team, reached ${shown} = API, ${teams.size} teams`);
    // The missed commitments reconcile: the miss rate shown is the missed
    // interactions shown over the buyer interactions shown, and the value
    // at stake is the API's, each deal with a miss counted once.
    const missed = (await getJSON(`${server.base}v1/missed?tenant=demo&from=${from}&to=${to}`)).total;
    const figures = Object.fromEntries(await page.$$eval("#missed .summary > div", (ds) =>
      ds.map((d) => [d.querySelector(".l").textContent, d.querySelector(".v").textContent])));
    const nf = new Intl.NumberFormat("en-US"), cf = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
    assert.ok(missed.interactions > 0 && missed.deals > 0 && missed.deals <= missed.missed, "no misses to reconcile");
    assert.equal(figures["buyer interactions"], nf.format(missed.interactions));
    assert.equal(figures["missed interactions"], nf.format(missed.missed_interactions));
    assert.equal(figures["miss rate"], (100 * missed.missed_interactions / missed.interactions).toFixed(1) + "%");
    assert.equal(figures["deals with a miss"], nf.format(missed.deals));
    if (missed.value_at_stake !== null) assert.equal(figures["value at stake"], cf.format(missed.value_at_stake));
    console.log(`ok: missed ${figures["missed interactions"]} / ${figures["buyer interactions"]} = ${figures["miss rate"]}, ` +
      `${figures["deals with a miss"]} deals, value at stake ${figures["value at stake"]}`);
    const dashboardURL = page.url();
    const funnelText = await page.textContent("#funnel");

    // 3. A stalled deal opens its view with its step timeline.
    const link = page.locator("#stalls a.deal").first();
    const dealID = await link.textContent();
    await link.click();
    await page.waitForSelector("#deal-title");
    assert.match(await loaded(page), /^Loaded/);
    const deal = await getJSON(`${server.base}v1/deals/${encodeURIComponent(dealID)}?tenant=demo`);
    assert.equal(await page.textContent("#deal-title"), deal.name || deal.opportunity_id);
    assert.ok(await page.$$eval("#detail-body svg.steps circle", (c) => c.length) === deal.steps.length, "step timeline not drawn");
    const timelineRows = await page.$$eval("#detail-body td.kind-input, #detail-body td.kind-derived", (r) => r.length);
    assert.equal(timelineRows, deal.timeline.length, "timeline rows differ from the API's");
    assert.ok(deal.warnings.some((w) => w.kind === "stalled"), "the stalled deal has a stalled warning");
    const evidence = deal.steps.reduce((n, s) => n + s.evidence.length, 0);
    assert.ok(evidence > 0 && await page.$$eval("#detail-body a.ev", (a) => a.length) >= evidence, "evidence not linked");
    assert.doesNotMatch(await page.textContent("#detail-body"), /\bnull\b|undefined|\[object/, "raw values on the deal view");
    // Names: once a users export names the deal's owner, the view shows the
    // name; the owner link still filters by id.
    const owner = deal.facts.owner_id;
    const users = path.join(server.data, "users.csv");
    fs.writeFileSync(users, `id,name,email,team,manager\n${owner},Ada Browsertest,ada@demo.example,,\n`);
    execFileSync(BIN, ["import", "--format", "users", "--tenant", "demo", "--data", server.data, users]);
    await page.reload();
    await loaded(page);
    const ownerLink = page.locator(`#detail-body a[title="${owner}"]`).first();
    assert.equal(await ownerLink.textContent(), "Ada Browsertest", "the owner is not shown by name");
    assert.ok((await ownerLink.getAttribute("href")).includes(`owner=${encodeURIComponent(owner)}`), "the owner link lost the id");
    const whats = await page.$$eval("#detail-body td.wrap", (tds) => tds.map((td) => td.textContent).join("\n"));
    assert.ok(whats.includes("owner Ada Browsertest") && !whats.includes(owner), "the timeline names the owner by id");
    await page.screenshot({ path: path.join(ARTIFACTS, "deal-1440.png"), fullPage: true });
    console.log(`ok: stalled deal ${dealID} shows ${deal.steps.length} steps and ${timelineRows} timeline events`);
    const dealURL = page.url();
    const dealText = await page.textContent("#detail-body");

    // 4. A copied URL reopens the same view, in a fresh browser context.
    const ctx2 = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page2 = await ctx2.newPage();
    const errors2 = watch(page2);
    await page2.goto(dealURL);
    await loaded(page2);
    // Without as_of the view is as of now: the minute shown may differ.
    const asOf = (t) => t.replace(/as of \d{4}-\d\d-\d\d \d\d:\d\d/, "as of …");
    assert.equal(asOf(await page2.textContent("#detail-body")), asOf(dealText), "the copied deal URL shows another view");
    await page2.goto(dashboardURL);
    await loaded(page2);
    assert.equal(await page2.textContent("#funnel"), funnelText, "the copied dashboard URL shows another view");
    assert.equal(await page2.inputValue("#by"), "team");
    console.log("ok: copied URLs reopen the same views");

    // 5. Back and forward.
    await page.goBack();
    await page.waitForFunction(() => !document.getElementById("dashboard").hidden);
    await loaded(page);
    assert.equal(await page.textContent("#funnel"), funnelText, "back does not return to the dashboard view");
    await page.goForward();
    await page.waitForSelector("#deal-title");
    console.log("ok: back and forward");

    // 6. Phone width: nothing overflows the page; tables scroll in their panel.
    await page.setViewportSize({ width: 390, height: 844 });
    await noPageOverflow(page, 390);
    await page.screenshot({ path: path.join(ARTIFACTS, "deal-390.png"), fullPage: true });
    await page.goBack();
    await loaded(page);
    await noPageOverflow(page, 390);
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-390.png"), fullPage: true });
    for (const view of ["leadership", "forecaster"]) {
      await page.click(`#views a[data-view=${view}]`);
      await page.waitForFunction((v) => location.hash.includes("view=" + v), view);
      await loaded(page);
      await noPageOverflow(page, 390);
      await page.screenshot({ path: path.join(ARTIFACTS, `${view}-390.png`), fullPage: true });
      await page.setViewportSize({ width: 360, height: 740 });
      await noPageOverflow(page, 360);
      await page.setViewportSize({ width: 390, height: 844 });
    }
    console.log("ok: 390 px (and 360 px for the leadership and forecaster views) without page overflow");

    // 7. States: bad input replaces every panel's numbers with the error;
    // an unknown tenant says so.
    await page2.goto(server.base + "#tenant=demo&from=2026-06-01&to=2026-01-01");
    assert.equal(await loaded(page2), await page2.textContent("#status"));
    assert.equal(await page2.getAttribute("#status", "class"), "error");
    for (const id of ["funnel", "missed", "movement"]) {
      assert.equal(await page2.$$eval(`#${id} table`, (t) => t.length), 0, `${id} keeps numbers beside an error`);
      assert.match(await page2.textContent(`#${id} .error`), /400/);
    }
    await page2.goto(server.base + "#tenant=nosuchtenant");
    await loaded(page2);
    assert.match(await page2.textContent("#status"), /nosuchtenant.*no data/);
    console.log("ok: error and unknown-tenant states");

    // The 400s of step 7 are the test's own bad input, logged as failed
    // loads; nothing else may be logged.
    const unexpected = [...errors, ...errors2.filter((e) => !/status of 400/.test(e))];
    assert.deepEqual(unexpected, [], "console errors");
    await ctx2.close();
  } finally {
    await browser.close();
    await server.stop();
  }
  console.log(`PASS in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${ARTIFACTS}`);
}

main().catch((e) => {
  console.error("FAIL:", e);
  process.exit(1);
});
