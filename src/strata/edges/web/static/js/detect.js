// Detect: was this text written by a model? The verdict per text from POST /v1/detections,
// with its calibrated probability, the score against the threshold, and each sentence
// highlighted when it alone looks machine-written. Evidence, not proof: the page says so.

import { api, ApiError } from "./api.js";
import { field, h, notify, pct } from "./dom.js";

const METHODS = ["", "log-perplexity", "binoculars", "fast-detectgpt"];
const VERDICT = { machine: "Likely machine-written", human: "Likely human-written", too_short: "Too short to judge" };

let els = {};

export async function render(main) {
  els.text = h("textarea", { name: "text", rows: 9, required: true, placeholder: "Paste a paragraph or more (at least a few sentences)." });
  els.method = h("select", { name: "method" }, METHODS.map((m) => h("option", { value: m }, m || "default (shipped)")));
  els.sentences = h("input", { type: "checkbox", name: "sentences", checked: true });
  els.result = h("section", { class: "detection", "aria-live": "polite" });
  const form = h("form", { class: "card detect-form" },
    field("Text", els.text),
    h("div", { class: "row" }, field("Method", els.method),
      h("label", { class: "check" }, els.sentences, " Score each sentence")),
    h("button", { type: "submit" }, "Check"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    check(form.querySelector("button[type=submit]"));
  });
  main.append(h("h1", {}, "Was this written by a model?"), form, els.result,
    h("p", { class: "muted" }, "A zero-shot detector on the local models, calibrated for a 1% false-positive rate on English human text. Its verdict is evidence, never proof."));
}

async function check(button) {
  const text = els.text.value;
  const error = document.getElementById(`${els.text.id}-error`);
  error.textContent = "";
  els.text.removeAttribute("aria-invalid");
  if (!text.trim()) {
    error.textContent = "Paste some text first.";
    els.text.setAttribute("aria-invalid", "true");
    return;
  }
  const body = { input: text, sentences: els.sentences.checked };
  if (els.method.value) body.model = els.method.value;
  button.disabled = true;
  els.result.replaceChildren(h("p", { class: "muted", role: "status" }, "Scoring… (the first check loads the models)"));
  try {
    const answer = await api("/v1/detections", { method: "POST", body });
    show(text, answer.data[0]);
  } catch (exc) {
    els.result.replaceChildren();
    if (exc instanceof ApiError && exc.status === 400) {
      error.textContent = exc.message;
      els.text.setAttribute("aria-invalid", "true");
    } else notify(exc.message);
  } finally {
    button.disabled = false;
  }
}

function machineSide(d, score) {
  return d.machine_if === "below" ? score < d.threshold : score > d.threshold;
}

function show(text, d) {
  const facts = d.decision === "too_short"
    ? [h("p", {}, `Only ${d.tokens} tokens: the detector needs at least ${d.min_tokens} to judge.`)]
    : [h("dl", { class: "facts" },
        h("dt", {}, "Probability machine"), h("dd", { "data-fact": "probability" }, pct(d.probability)),
        h("dt", {}, "Score"), h("dd", {}, `${Number(d.score).toFixed(3)} (machine if ${d.machine_if} ${Number(d.threshold).toFixed(3)})`),
        h("dt", {}, "Method"), h("dd", {}, d.method),
        h("dt", {}, "Tokens scored"), h("dd", {}, `${d.tokens}${d.truncated ? " (first part only)" : ""}`),
        h("dt", {}, "False-positive rate"), h("dd", {}, pct(d.fpr)))];
  const parts = [];
  if (d.sentences && d.decision !== "too_short") {
    let at = 0;
    for (const s of d.sentences) {
      if (s.start > at) parts.push(text.slice(at, s.start));
      const flagged = s.score !== null && machineSide(d, s.score);
      parts.push(h(flagged ? "mark" : "span", {
        "data-sentence": flagged ? "machine" : "human",
        title: s.score === null ? "too short to score alone" : `score ${Number(s.score).toFixed(3)}`,
      }, text.slice(s.start, s.end)));
      at = s.end;
    }
    if (at < text.length) parts.push(text.slice(at));
  }
  els.result.replaceChildren(h("div", { class: `card verdict ${d.decision}`, "data-decision": d.decision },
    h("h2", {}, VERDICT[d.decision] || d.decision), ...facts,
    parts.length ? h("div", {}, h("h3", {}, "Sentences that look machine-written on their own"),
      h("blockquote", { class: "scored" }, parts)) : null));
}
