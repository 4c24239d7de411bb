// Usage: what was spent over time against always sending the request to the biggest tier,
// the share of requests per tier, route and model, and the ledger's latest rows, filtered.

import { api } from "./api.js";
import { lineChart, shareBars } from "./charts.js";
import { field, h, pct, usd, when } from "./dom.js";

const SPANS = { "1h": [3600, 300], "24h": [86400, 3600], "7d": [604800, 86400], "30d": [2592000, 86400] };
let els = {};
let routes = {};

export async function render(main) {
  routes = Object.fromEntries((await api("/v1/routes")).data.map((r) => [r.id, r]));
  els.span = h("select", { name: "span", onchange: draw }, Object.keys(SPANS).map((s) => h("option", { value: s, selected: s === "24h" }, `last ${s}`)));
  els.route = h("select", { name: "route", onchange: draw }, h("option", { value: "" }, "all routes and models"));
  els.model = h("select", { name: "answered_by", onchange: draw }, h("option", { value: "" }, "any model"));
  els.totals = h("div", { class: "totals" });
  els.charts = h("div", { class: "charts" });
  els.table = h("table", { class: "ledger" });
  main.append(h("h1", {}, "Usage"),
    h("form", { class: "inline filters", onsubmit: (e) => e.preventDefault() }, field("Period", els.span), field("Route or model", els.route), field("Answered by", els.model)),
    els.totals, els.charts, h("h2", {}, "Latest requests"), h("div", { class: "scroll" }, els.table));
  await draw();
}

function fillSelect(select, names) {
  const keep = select.value;
  const first = select.options[0];
  select.replaceChildren(first, ...names.map((n) => h("option", { value: n, selected: n === keep }, n)));
}

async function draw() {
  const [span, bucket] = SPANS[els.span.value];
  const since = Math.floor(Date.now() / 1000) - span;
  const q = new URLSearchParams({ since: String(since) });
  if (els.route.value) q.set("route", els.route.value);
  const rq = new URLSearchParams(q);
  if (els.model.value) rq.set("answered_by", els.model.value);
  rq.set("limit", "50");
  const [summary, series, rows, everything] = await Promise.all([
    api(`/v1/usage?${q}`),
    api(`/v1/usage/series?${q}&bucket=${bucket}`),
    api(`/v1/usage/requests?${rq}`),
    api(`/v1/usage?since=${since}`),
  ]);
  fillSelect(els.route, [...new Set(everything.by_route.map((r) => r.name))]);
  fillSelect(els.model, [...new Set(everything.by_route.map((r) => r.answered_by))]);
  els.totals.replaceChildren(
    stat("Requests", summary.requests),
    stat("Spent", usd(summary.cost_usd)),
    stat("Always-big would cost", usd(summary.baseline_usd)),
    stat("Saved", `${usd(summary.saving_usd)} (${pct(summary.saving_share)})`));
  const points = (key) => series.data.map((b) => [b.start, b[key]]);
  const cumulative = (key) => { let n = 0; return series.data.map((b) => [b.start, (n += b[key])]); };
  const byRoute = {};
  const byModel = {};
  const byTier = {};
  for (const r of summary.by_route) {
    byRoute[r.name] = (byRoute[r.name] || 0) + r.requests;
    byModel[r.answered_by] = (byModel[r.answered_by] || 0) + r.requests;
    const route = routes[r.name];
    const tier = route ? route.tiers.findIndex((t) => t.model === r.answered_by) : -1;
    const label = route ? `tier ${tier + 1}: ${r.answered_by}` : `named: ${r.answered_by}`;
    byTier[label] = (byTier[label] || 0) + r.requests;
  }
  const items = (o) => Object.entries(o).sort((a, b) => b[1] - a[1]).map(([label, value]) => ({ label, value }));
  els.charts.replaceChildren(
    figure("Cost over time", lineChart("Cost per period, actual and always-big", [
      { name: "spent", class: "spent", points: points("cost_usd") },
      { name: "always big", class: "baseline", points: points("baseline_usd") }], usd),
    legend([["spent", "spent"], ["baseline", "always big"]])),
    figure("Saving against always-big (cumulative)", lineChart("Cumulative saving", [
      { name: "saved", class: "saved", points: cumulative("saving_usd") }], usd)),
    figure("Requests per tier", shareBars("Share of requests per tier", items(byTier))),
    figure("Requests per route", shareBars("Share of requests per route or model named", items(byRoute))),
    figure("Requests per model", shareBars("Share of requests per answering model", items(byModel))));
  els.table.replaceChildren(
    h("thead", {}, h("tr", {}, ["Time", "Route / model", "Answered by", "Tiers", "Tokens in/out", "Latency", "Confidence", "Cost", "Always-big"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.data.map((r) => h("tr", {},
      h("td", {}, when(r.ts)), h("td", {}, r.route || r.model), h("td", {}, r.answered_by), h("td", {}, r.tiers.join(" → ")),
      h("td", {}, `${r.prompt_tokens}/${r.completion_tokens}`), h("td", {}, `${r.latency_s.toFixed(2)} s`),
      h("td", {}, r.confidence === null ? "–" : r.confidence.toFixed(2)), h("td", {}, usd(r.cost_usd)), h("td", {}, usd(r.baseline_usd)))),
    rows.data.length ? [] : h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No requests match."))));
}

function stat(label, value) {
  return h("div", { class: "stat card" }, h("span", { class: "muted" }, label), h("strong", {}, String(value)));
}

function figure(title, chart, extra = null) {
  return h("figure", { class: "card" }, h("figcaption", {}, title), chart, extra);
}

function legend(entries) {
  return h("p", { class: "legend" }, entries.map(([cls, label]) => h("span", { class: `key ${cls}` }, label)));
}
