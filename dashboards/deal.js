// commitflow dashboard: one deal's view (GET /v1/deals/{id}) and the deal
// lists every owner, team, step and warning links to (GET /v1/deals).
"use strict";

const LIST_FILTERS = ["owner", "team", "step", "warning", "stalled", "single_threaded"];

// showList draws the deals the fragment's filters select.
function showList(s) {
  return panel("detail-body", async () => {
    const filter = {};
    for (const k of LIST_FILTERS) if (s[k]) filter[k] = s[k];
    const res = await api("v1/deals", { as_of: s.as_of, page: s.lpage || 1, page_size: 50, ...filter });
    const said = Object.entries(filter).map(([k, v]) =>
      `${title(k)} ${v === "true" ? "" : k === "owner" ? personName(res.people, v) : title(v)}`.trim()).join(", ");
    const pages = Math.max(1, Math.ceil(res.total / res.page_size));
    return [
      el("h2", null, `Deals — ${said || "all"}`),
      el("p", { class: "hint" }, `${num(res.total)} deals as of ${day(res.definitions.as_of)}, by amount.`),
      dealTable(res.deals || [], res.people),
      el("p", { class: "pager" },
        res.page > 1 ? el("a", { href: href({ lpage: res.page - 1 }, true) }, "← previous") : null,
        ` page ${res.page} of ${pages} `,
        res.page < pages ? el("a", { href: href({ lpage: res.page + 1 }, true) }, "next →") : null),
    ];
  });
}

// showDeal draws one deal: its facts, when it reached each step and on
// which evidence, its timeline, misses, people, stage history, warnings.
function showDeal(s) {
  return panel("detail-body", async () => {
    const d = await api("v1/deals/" + encodeURIComponent(s.deal), { as_of: s.as_of });
    const f = d.facts || {};
    const warnings = d.warnings || [];
    return [
      el("h2", { id: "deal-title" }, d.name || d.opportunity_id),
      el("p", { class: "hint" }, `${d.opportunity_id} · as of ${when(d.definitions.as_of)}`),
      warnings.length ? el("p", { class: "warnbox" }, "Warnings: ",
        warnings.map((w, i) => [i ? ", " : "", listLink({ warning: w.kind }, title(w.kind)), ` since ${day(w.since)}`])) : null,
      summary([
        ["status", f.status || "–"], ["stage", f.stage || "–"],
        ["amount", `${money(f.amount)}${f.currency ? " " + f.currency : ""}`], ["close date", f.close_date || "–"],
        ["highest step", `${d.highest_step_index}. ${title(d.highest_step)}`], ["days since commitment", num(d.days_since_commitment)],
      ]),
      table(["owner", "team", "segment", "source", "product", "CRM probability", "created"],
        [[ownerLink(f.owner_id, d.people), teamLink(f.team), f.segment || "–", f.source || "–", f.product || "–",
          pct(f.probability), day(f.created_at)]]),
      Object.keys(f.attributes || {}).length ? table(["attribute", "value"],
        Object.keys(f.attributes).sort().map((k) => [k, f.attributes[k]])) : null,
      el("h3", null, "Steps"),
      stepTimeline(d.steps || []),
      table(["step", "reached", "gained", "evidence"], (d.steps || []).map((st) => [
        stepLink(st.step, `${st.step_index}. ${title(st.step)}`),
        st.reached_at ? when(st.reached_at) : "–",
        st.skipped ? "skipped" : when(st.gained_at),
        el("td", { class: "text" }, evidenceLinks(st.evidence)),
      ])),
      el("h3", null, "Misses"),
      (d.misses || []).length ? table(["at", "expected step", "reason", "interaction"], d.misses.map((m) => [
        when(m.at), `${m.step_index}. ${title(m.step)}`, title(m.reason), el("td", { class: "text" }, evidenceLinks([m.interaction_id]))]))
        : hint("No missed commitment."),
      el("h3", null, "People"),
      (d.stakeholders || []).length ? table(["name", "side", "title", "role", "first seen", "seen in"], d.stakeholders.map((p) => [
        p.name || p.email || p.key, p.side, p.title || "–", p.role || "–", day(p.first_at), (p.via || []).join(", ")]))
        : hint("Nobody seen on this deal yet."),
      el("h3", null, "CRM stage history"),
      (d.stage_history || []).length ? table(["at", "stage"], d.stage_history.map((h) => [when(h.at), h.stage])) : hint("No stage recorded."),
      el("h3", null, "Timeline"),
      el("p", { class: "hint" }, "Input events as the sources sent them, and the events derived from them (with the inputs they rest on)."),
      timeline(d.timeline || [], d.people),
    ];
  });
}

// evidenceLinks links input event ids to their row of the timeline.
function evidenceLinks(ids) {
  return (ids || []).filter(Boolean).map((id, i) => [i ? " " : "", el("a", { href: "#", "data-ev": id, class: "ev" }, id)]);
}

// stepTimeline draws the ladder as a row of marks: gained, skipped, not yet.
function stepTimeline(steps) {
  const n = steps.length, W = Math.max(320, n * 64), H = 54;
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", class: "chart steps" });
  const x = (i) => 20 + ((W - 40) * i) / Math.max(1, n - 1);
  g.append(svg("line", { x1: x(0), x2: x(n - 1), y1: 16, y2: 16, class: "grid" }));
  steps.forEach((st, i) => {
    const cls = st.gained_at && !st.skipped ? "converted" : st.reached_at ? "open" : "dropped";
    g.append(svg("circle", { cx: x(i), cy: 16, r: 8, class: cls },
      svg("title", null, `${st.step_index}. ${title(st.step)}: ${st.skipped ? "skipped" : st.gained_at ? "gained " + day(st.gained_at) : "not reached"}`)));
    g.append(svg("text", { x: x(i), y: 40, "text-anchor": "middle" }, String(st.step_index)));
    if (st.reached_at) g.append(svg("text", { x: x(i), y: 52, "text-anchor": "middle" }, day(st.reached_at).slice(5)));
  });
  return el("div", { class: "scroll" }, g);
}

// withNames shows an input event's summary with each owner id it names
// (t.owners) as the owner's link, by name where people know it.
function withNames(t, people) {
  const ids = (t.owners || []).filter(Boolean);
  if (!ids.length) return t.summary;
  const re = new RegExp(ids.map((id) => id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
  const parts = [];
  let at = 0;
  for (const m of t.summary.matchAll(re)) {
    parts.push(t.summary.slice(at, m.index), ownerLink(m[0], people));
    at = m.index + m[0].length;
  }
  parts.push(t.summary.slice(at));
  return parts;
}

function timeline(items, people) {
  if (!items.length) return hint("No events.");
  return table(["at", "", "event", "source", "what", "rests on"], items.map((t) => {
    const what = t.kind === "input" ? withNames(t, people)
      : [t.step ? `${t.step_index}. ${title(t.step)}` : "", t.reason ? title(t.reason) : "", t.detail || ""].filter(Boolean).join(" · ");
    return [
      el("td", { id: t.kind === "input" ? "ev-" + t.id : null }, when(t.at)),
      el("td", { class: "text kind-" + t.kind }, t.kind),
      el("td", { class: "text" }, t.type),
      el("td", { class: "text" }, t.source || ""),
      el("td", { class: "text wrap" }, what || ""),
      el("td", { class: "text" }, evidenceLinks(t.evidence)),
    ];
  }));
}

// An evidence link scrolls to its input event in the timeline, keeping the
// fragment (the view) as it is.
document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a.ev");
  if (!a) return;
  ev.preventDefault();
  const row = document.getElementById("ev-" + a.dataset.ev);
  if (row) {
    row.parentElement.scrollIntoView({ block: "center" });
    for (const r of document.querySelectorAll("tr.hit")) r.classList.remove("hit");
    row.parentElement.classList.add("hit");
  }
});
