// Chat: a model or route picker, streamed answers with their route and cost, sessions in a
// sidebar (resume, rename, delete), grounding in a knowledge collection with citations that
// open the passage, edit-and-resend, and thumbs up/down or an edit as feedback.

import { api, streamChat } from "./api.js";
import { factsList } from "./answer.js";
import { field, h, notify } from "./dom.js";

const state = { session: null, messages: [], busy: false, abort: null };
let els = {};

export function leave() {
  if (state.abort) state.abort.abort();
}

export async function render(main) {
  const [models, collections] = await Promise.all([
    api("/v1/models"),
    api("/v1/collections").catch(() => ({ data: [] })),
  ]);
  const chatModels = models.data.filter((m) => (m.capabilities || []).includes("chat"));
  const saved = localStorage.getItem("strata.model");
  const preferred = chatModels.find((m) => m.id === saved) || chatModels.find((m) => m.id === "auto") || chatModels[0];
  els.model = h("select", { name: "model", onchange: () => localStorage.setItem("strata.model", els.model.value) },
    chatModels.map((m) => h("option", { value: m.id, selected: preferred && m.id === preferred.id }, m.id)));
  els.knowledge = h("select", { name: "knowledge" },
    h("option", { value: "" }, "none"),
    collections.data.map((c) => h("option", { value: c.name }, c.name)));
  els.sessions = h("ul", { class: "sessions", "aria-label": "Sessions" });
  els.log = h("ol", { class: "messages", "aria-live": "polite" });
  els.input = h("textarea", { name: "message", rows: 3, placeholder: "Ask anything (Enter sends, Shift+Enter for a new line)" });
  els.send = h("button", { type: "submit" }, "Send");
  els.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      els.form.requestSubmit();
    }
  });
  els.form = h("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); send(els.input.value); } },
    h("label", { class: "sr-only", for: "message" }, "Message"), els.input, els.send);
  els.input.id = "message";
  els.passage = h("dialog", { class: "passage" });
  main.append(h("div", { class: "chat" },
    h("aside", { class: "sidebar" },
      h("button", { class: "new", onclick: () => open(null) }, "+ New chat"),
      els.sessions),
    h("section", { class: "conversation" },
      h("div", { class: "controls" },
        field("Model or route", els.model),
        field("Ground in", els.knowledge)),
      els.log, els.form),
    els.passage));
  await listSessions();
  const last = sessionStorage.getItem("strata.session");
  if (last && state.session === null) await open(last, true);
  else redraw();
  els.input.focus();
}

async function listSessions() {
  const found = await api("/v1/sessions");
  els.sessions.replaceChildren(...found.data.map((s) => {
    const title = s.title || s.id;
    return h("li", { class: s.id === state.session ? "current" : "" },
      h("button", { class: "resume", title: `Resume ${title}`, onclick: () => open(s.id) }, title),
      h("button", { class: "icon", "aria-label": `Rename ${title}`, title: "Rename", onclick: () => rename(s) }, "✎"),
      h("button", { class: "icon", "aria-label": `Delete ${title}`, title: "Delete", onclick: () => remove(s) }, "×"));
  }));
}

async function open(id, quiet = false) {
  if (state.abort) state.abort.abort();
  state.session = id;
  state.messages = [];
  if (id) {
    try {
      const session = await api(`/v1/sessions/${encodeURIComponent(id)}`);
      state.messages = session.turns.map((t) => ({ role: t.role, content: t.content, seq: t.seq }));
      sessionStorage.setItem("strata.session", id);
    } catch (exc) {
      state.session = null;
      sessionStorage.removeItem("strata.session");
      if (!quiet) notify(exc.message);
    }
  } else {
    sessionStorage.removeItem("strata.session");
  }
  redraw();
  await listSessions();
  els.input.focus();
}

async function rename(session) {
  const title = prompt("New name for this chat", session.title || session.id);
  if (title === null || !title.trim()) return;
  try {
    await api(`/v1/sessions/${encodeURIComponent(session.id)}`, { method: "PATCH", body: { title: title.trim() } });
    await listSessions();
  } catch (exc) {
    notify(exc.message);
  }
}

async function remove(session) {
  if (!confirm(`Delete "${session.title || session.id}" and all its messages?`)) return;
  try {
    await api(`/v1/sessions/${encodeURIComponent(session.id)}`, { method: "DELETE" });
    if (state.session === session.id) await open(null);
    else await listSessions();
  } catch (exc) {
    notify(exc.message);
  }
}

function redraw() {
  els.log.replaceChildren(...state.messages.map((m, i) => bubble(m, i)));
  if (!state.messages.length) {
    els.log.append(h("li", { class: "empty muted" }, "Start a conversation. Answers show which model answered and what it cost."));
  }
  els.log.scrollTop = els.log.scrollHeight;
}

function bubble(message, index) {
  const body = h("div", { class: "text" }, message.content);
  const item = h("li", { class: `msg ${message.role}`, "data-role": message.role }, h("div", { class: "who" }, message.role === "user" ? "You" : "strata"), body);
  if (message.role === "user") {
    item.append(h("div", { class: "actions" },
      h("button", { class: "link", onclick: () => editUser(item, index) }, "Edit and resend")));
    return item;
  }
  if (message.error) item.append(h("p", { class: "error-box" }, message.error));
  if (message.info) {
    item.append(factsList(message.info));
    const citations = message.info.citations || [];
    if (citations.length) {
      item.append(h("div", { class: "citations" }, "Sources: ",
        citations.map((c) => h("button", { class: "cite", onclick: () => showPassage(c) }, `[${c.n}] ${c.title || c.document_id || c.id || "passage"}`))));
    }
  }
  const rid = message.info && message.info.response_id;
  if (rid) {
    const status = h("span", { class: "muted", role: "status" });
    item.append(h("div", { class: "actions" },
      h("button", { class: "icon", "aria-label": "Good answer", title: "Good answer", onclick: () => feedback(rid, { rating: "up" }, status) }, "▲ Good"),
      h("button", { class: "icon", "aria-label": "Bad answer", title: "Bad answer", onclick: () => feedback(rid, { rating: "down" }, status) }, "▼ Bad"),
      h("button", { class: "link", onclick: () => editAnswer(item, message, rid, status) }, "Correct it"),
      status));
  }
  return item;
}

function showPassage(citation) {
  const text = citation.text || "";
  els.passage.replaceChildren(
    h("h2", {}, `[${citation.n}] ${citation.title || citation.document_id || "Passage"}`),
    h("p", { class: "muted" }, `${citation.document_id || ""} · chunk ${citation.chunk ?? "?"} · score ${Number(citation.score || 0).toFixed(3)}`),
    h("blockquote", {}, text),
    h("form", { method: "dialog" }, h("button", {}, "Close")));
  els.passage.showModal();
}

async function feedback(rid, body, status) {
  try {
    await api("/v1/feedback", { method: "POST", body: { response_id: rid, ...body } });
    status.textContent = body.edited_text ? "Correction saved" : "Thanks for the feedback";
  } catch (exc) {
    notify(exc.message);
  }
}

function editor(text, label, onSave, onCancel) {
  const area = h("textarea", { rows: 4, "aria-label": label }, text);
  const form = h("form", { class: "editor", onsubmit: (e) => { e.preventDefault(); onSave(area.value); } },
    area, h("div", { class: "actions" }, h("button", { type: "submit" }, label), h("button", { type: "button", class: "link", onclick: onCancel }, "Cancel")));
  setTimeout(() => area.focus(), 0);
  return form;
}

function editUser(item, index) {
  const text = item.querySelector(".text");
  text.replaceWith(editor(state.messages[index].content, "Resend", async (value) => {
    if (!value.trim()) return;
    try {
      if (state.session) {
        const session = await api(`/v1/sessions/${encodeURIComponent(state.session)}`);
        const turn = session.turns[index];
        if (turn) await api(`/v1/sessions/${encodeURIComponent(state.session)}/turns?from_seq=${turn.seq}`, { method: "DELETE" });
      }
      state.messages = state.messages.slice(0, index);
      redraw();
      await send(value);
    } catch (exc) {
      notify(exc.message);
    }
  }, redraw));
}

function editAnswer(item, message, rid, status) {
  const text = item.querySelector(".text");
  text.replaceWith(editor(message.content, "Save correction", async (value) => {
    if (!value.trim()) return;
    message.content = value;
    redraw();
    await feedback(rid, { edited_text: value }, status);
  }, redraw));
}

async function send(text) {
  text = text.trim();
  if (!text || state.busy) return;
  state.busy = true;
  els.send.disabled = true;
  els.input.value = "";
  try {
    if (!state.session) {
      const created = await api("/v1/sessions", { method: "POST", body: { title: text.slice(0, 60) } });
      state.session = created.id;
      sessionStorage.setItem("strata.session", created.id);
    }
    state.messages.push({ role: "user", content: text });
    const answer = { role: "assistant", content: "", info: null };
    state.messages.push(answer);
    redraw();
    const live = els.log.lastElementChild;
    live.classList.add("streaming");
    const textNode = live.querySelector(".text");
    const options = { session: state.session };
    if (els.knowledge.value) options.knowledge = els.knowledge.value;
    state.abort = new AbortController();
    await streamChat({ model: els.model.value, messages: [{ role: "user", content: text }], strata: options },
      (chunk) => {
        for (const choice of chunk.choices || []) {
          if (choice.delta && choice.delta.content) {
            answer.content += choice.delta.content;
            textNode.textContent = answer.content;
            els.log.scrollTop = els.log.scrollHeight;
          }
        }
        if (chunk.strata) answer.info = { ...chunk.strata, response_id: chunk.strata.response_id || chunk.id };
      }, state.abort.signal);
    redraw();
  } catch (exc) {
    if (exc.name !== "AbortError") {
      const last = state.messages[state.messages.length - 1];
      if (last && last.role === "assistant" && !last.content) last.error = exc.message;
      redraw();
      notify(exc.message);
    }
  } finally {
    state.busy = false;
    state.abort = null;
    els.send.disabled = false;
    await listSessions().catch(() => {});
  }
}
