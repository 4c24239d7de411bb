// Templates: the gallery; a form generated from the chosen template's typed inputs, the
// server's 422 shown at the field it names; a brand voice picker; copy, regenerate, feedback.

import { api, ApiError } from "./api.js";
import { factsList } from "./answer.js";
import { field, h, notify } from "./dom.js";

let els = {};
let voices = [];

export async function render(main) {
  const [templates, voiceList] = await Promise.all([api("/v1/templates"), api("/v1/voices")]);
  voices = voiceList.data;
  els.gallery = h("ul", { class: "gallery", "aria-label": "Templates" },
    templates.data.map((t) => h("li", {},
      h("button", { class: "card template-card", "data-template": t.name, onclick: () => open(t.name) },
        h("strong", {}, t.title), h("span", { class: "tag" }, t.category || "general"),
        h("span", { class: "muted desc" }, t.description)))));
  els.runner = h("section", { class: "runner" },
    h("p", { class: "muted" }, "Pick a template: its form asks for exactly the inputs it declares."));
  main.append(h("div", { class: "templates-page" },
    h("nav", { class: "sidebar", "aria-label": "Template gallery" }, h("h2", {}, "Templates"), els.gallery),
    els.runner));
  const wanted = location.hash.split("/")[2];
  if (wanted) await open(decodeURIComponent(wanted));
}

function control(name, spec) {
  const attrs = { name, "data-input": name, "data-type": spec.type };
  const fallback = spec.default ?? "";
  if (spec.enum) {
    return h("select", attrs, spec.required ? null : h("option", { value: "" }, "—"),
      spec.enum.map((v) => h("option", { value: v, selected: v === fallback }, v)));
  }
  if (spec.type === "boolean") return h("input", { ...attrs, type: "checkbox", checked: Boolean(fallback) });
  if (spec.type === "list") {
    const example = (spec.examples || [])[0];
    return h("textarea", { ...attrs, rows: 3, placeholder: Array.isArray(example) ? example.join("\n") : "one per line" },
      Array.isArray(fallback) ? fallback.join("\n") : "");
  }
  if (spec.type === "integer" || spec.type === "number") {
    return h("input", { ...attrs, inputmode: spec.type === "integer" ? "numeric" : "decimal", value: fallback === "" ? "" : String(fallback) });
  }
  const example = (spec.examples || [])[0];
  const long = (spec.max_length || 0) > 200;
  return long
    ? h("textarea", { ...attrs, rows: 4, placeholder: example ? String(example) : "" }, fallback)
    : h("input", { ...attrs, value: fallback, placeholder: example ? String(example) : "" });
}

function value(input) {
  const type = input.dataset.type;
  if (type === "boolean") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return null;
  if (type === "list") return raw.split("\n").map((s) => s.trim()).filter(Boolean);
  if ((type === "integer" || type === "number") && raw !== "" && !Number.isNaN(Number(raw))) return Number(raw);
  return raw;
}

async function open(name) {
  let template;
  try {
    template = await api(`/v1/templates/${encodeURIComponent(name)}`);
  } catch (exc) {
    notify(exc.message);
    return;
  }
  history.replaceState(null, "", `#/templates/${encodeURIComponent(name)}`);
  for (const card of els.gallery.querySelectorAll("[data-template]")) {
    card.classList.toggle("current", card.dataset.template === name);
  }
  const fields = Object.entries(template.inputs).map(([key, spec]) =>
    field(`${key}${spec.required ? " *" : ""}`, control(key, spec), [spec.description, spec.type === "list" ? "one per line" : "", spec.max_length ? `max ${spec.max_length}` : ""].filter(Boolean).join(" · ")));
  const voice = h("select", { name: "voice" }, h("option", { value: "" }, "no brand voice"),
    voices.map((v) => h("option", { value: v.id }, v.name || v.id)));
  const form = h("form", { class: "card template-form", novalidate: true },
    h("h2", {}, template.title), h("p", { class: "muted" }, template.description),
    fields, field("Brand voice", voice),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Generate")));
  const output = h("div", { class: "output", "aria-live": "polite" });
  form.addEventListener("submit", (e) => { e.preventDefault(); run(template, form, output); });
  els.runner.replaceChildren(form, output);
  const first = form.querySelector("[data-input]");
  if (first) first.focus();
}

async function run(template, form, output) {
  for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
  for (const bad of form.querySelectorAll("[aria-invalid]")) bad.removeAttribute("aria-invalid");
  const inputs = {};
  for (const input of form.querySelectorAll("[data-input]")) {
    const v = value(input);
    if (v !== null) inputs[input.dataset.input] = v;
  }
  const body = { inputs };
  const voice = form.querySelector("[name=voice]").value;
  if (voice) body.voice = voice;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  output.replaceChildren(h("p", { class: "muted" }, "Generating…"));
  try {
    const result = await api(`/v1/templates/${encodeURIComponent(template.name)}/run`, { method: "POST", body });
    show(result, template, form, output);
  } catch (exc) {
    output.replaceChildren();
    const name = exc instanceof ApiError && exc.param ? exc.param.replace(/^inputs\./, "") : null;
    const input = name && form.querySelector(`[data-input="${CSS.escape(name)}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      document.getElementById(`${input.id}-error`).textContent = exc.message;
      input.focus();
    } else {
      output.replaceChildren(h("p", { class: "error-box", role: "alert" }, exc.message));
    }
  } finally {
    button.disabled = false;
  }
}

function show(result, template, form, output) {
  const text = h("pre", { class: "result" }, result.output);
  const status = h("span", { class: "muted", role: "status" });
  const rate = (body) => api("/v1/feedback", { method: "POST", body: { response_id: result.id, ...body } })
    .then(() => { status.textContent = body.edited_text ? "Correction saved: it will guide the next answers" : "Thanks for the feedback"; })
    .catch((exc) => notify(exc.message));
  output.replaceChildren(
    h("div", { class: "card" }, text, factsList({ ...result.strata, model: result.model }),
      h("div", { class: "actions" },
        h("button", { onclick: () => copy(result.output, status) }, "Copy"),
        h("button", { onclick: () => run(template, form, output) }, "Regenerate"),
        h("button", { class: "icon", "aria-label": "Good result", onclick: () => rate({ rating: "up" }) }, "▲ Good"),
        h("button", { class: "icon", "aria-label": "Bad result", onclick: () => rate({ rating: "down" }) }, "▼ Bad"),
        h("button", { class: "link", onclick: () => {
          const area = h("textarea", { rows: 6, "aria-label": "Corrected text" }, result.output);
          text.replaceWith(h("form", { class: "editor", onsubmit: (e) => { e.preventDefault(); rate({ edited_text: area.value }); } },
            area, h("button", { type: "submit" }, "Save correction")));
          area.focus();
        } }, "Edit"),
        status)));
}

async function copy(text, status) {
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied";
  } catch {
    const area = h("textarea", {}, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    status.textContent = "Copied";
  }
}
