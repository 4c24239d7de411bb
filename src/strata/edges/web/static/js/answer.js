// What an answer's `strata` field says, for people: which tier answered, how sure it was,
// what it cost and what the big model alone would have cost.

import { h, usd } from "./dom.js";

export function routeFacts(info) {
  const facts = [];
  const route = info && info.route;
  const model = (route && route.answered_by) || (info && info.model) || "?";
  if (route) {
    const tiers = route.tiers || [];
    const index = tiers.findIndex((t) => t.model === model);
    facts.push(["Route", route.name]);
    facts.push(["Tier", `${model} (${index + 1} of ${tiers.length})`]);
    const kept = tiers[index] || {};
    const confidence = route.confidence ?? kept.confidence;
    const doubted = tiers.slice(0, Math.max(index, 0)).filter((t) => t.confidence !== undefined && t.confidence !== null).pop();
    let sure;
    if (confidence !== null && confidence !== undefined) sure = Number(confidence).toFixed(2);
    else if (doubted) sure = `${doubted.model} was ${Number(doubted.confidence).toFixed(2)} < ${Number(doubted.threshold).toFixed(2)}: escalated`;
    else sure = "not scored (last tier)";
    facts.push(["Confidence", sure]);
    const cost = route.cost ?? info.cost_usd ?? 0;
    facts.push(["Cost", usd(cost)]);
    const baseline = route.baseline_cost ?? cost;
    const saving = baseline - cost;
    const share = baseline > 0 ? Math.round((saving / baseline) * 100) : 0;
    facts.push(["Saving vs big", `${usd(saving)} (${share}%)`]);
    if (route.degraded) facts.push(["Degraded", "yes"]);
  } else {
    facts.push(["Model", model]);
    facts.push(["Cost", usd(info && info.cost_usd)]);
    facts.push(["Saving vs big", "none (model named)"]);
  }
  return facts;
}

export function factsList(info) {
  return h("dl", { class: "facts" },
    routeFacts(info).map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", { "data-fact": k }, v))));
}
