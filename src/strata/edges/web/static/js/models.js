// Models and routes: what is loaded, queue depth, generations running, measured tokens/s,
// and each route's tiers with their thresholds. Refreshed every few seconds while shown.

import { api } from "./api.js";
import { h } from "./dom.js";

let timer = null;
let els = {};

export function leave() {
  clearInterval(timer);
}

export async function render(main) {
  els.models = h("table", { class: "models" });
  els.routes = h("div", { class: "routes" });
  els.health = h("p", { class: "muted", role: "status" });
  main.append(h("h1", {}, "Models and routes"), els.health, h("div", { class: "scroll" }, els.models), h("h2", {}, "Routes"), els.routes);
  await draw();
  timer = setInterval(() => draw().catch(() => {}), 3000);
}

function speed(v) {
  return v === null || v === undefined ? "–" : `${Number(v).toFixed(1)} tok/s`;
}

async function draw() {
  const [models, routes, health] = await Promise.all([
    api("/v1/models"), api("/v1/routes"),
    fetch("/health").then((r) => r.json()).catch(() => ({ status: "unreachable" })),
  ]);
  els.health.textContent = `Server: ${health.status}`;
  const served = models.data.filter((m) => m.owned_by !== "strata" || !routes.data.some((r) => r.id === m.id));
  els.models.replaceChildren(
    h("thead", {}, h("tr", {}, ["Model", "Where", "Loaded", "Queue", "Running", "Generation", "Prompt", "Generations", "Capabilities"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, served.map((m) => {
      const s = m.stats || {};
      return h("tr", { "data-model": m.id },
        h("td", {}, h("strong", {}, m.id), m.description ? h("div", { class: "muted" }, m.description) : null),
        h("td", {}, m.owned_by === "remote" ? "remote" : "local"),
        h("td", {}, m.loaded ? "yes" : "no"),
        h("td", { "data-stat": "queue" }, String(s.queue_depth ?? "–")),
        h("td", {}, String(s.active ?? "–")),
        h("td", { "data-stat": "tps" }, speed(s.tokens_per_s)),
        h("td", {}, speed(s.prompt_tokens_per_s)),
        h("td", {}, String(s.generations ?? 0)),
        h("td", {}, (m.capabilities || []).join(", ")));
    })));
  els.routes.replaceChildren(...routes.data.map((r) => h("div", { class: "card route", "data-route": r.id },
    h("h3", {}, r.id, r.calibrated ? h("span", { class: "tag" }, "calibrated") : null),
    r.description ? h("p", { class: "muted" }, r.description) : null,
    h("p", {}, `signal: ${r.signal}` + (r.prefilter ? ` · prefilter ${r.prefilter.signal} < ${r.prefilter.below}` : "") + ` · stream: ${r.stream}`),
    h("ol", { class: "tiers" }, r.tiers.map((t, i) => h("li", {},
      h("strong", {}, t.model), i < r.tiers.length - 1 ? ` — keeps its answer at confidence ≥ ${Number(t.threshold).toFixed(2)}` : " — last tier, answers the rest"))))));
  if (!routes.data.length) els.routes.append(h("p", { class: "muted" }, "No routes configured."));
}
