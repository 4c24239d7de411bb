// The shell: asks for an API key when the server wants one (kept in localStorage), then
// shows the page named in the URL's hash. Every page is a module with render(main).

import { api, ApiError, apiKey } from "./api.js";
import { clearNotice, field, h, notify } from "./dom.js";

const PAGES = {
  chat: () => import("./chat.js"),
  knowledge: () => import("./knowledge.js"),
  templates: () => import("./templates.js"),
  usage: () => import("./usage.js"),
  models: () => import("./models.js"),
  detect: () => import("./detect.js"),
};

const main = document.getElementById("page");
let current = null;

function pageName() {
  const name = location.hash.replace(/^#\/?/, "").split("/")[0];
  return PAGES[name] ? name : "chat";
}

async function show() {
  const name = pageName();
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current && current.leave) current.leave();
  clearNotice();
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    current = await PAGES[name]();
    main.replaceChildren();
    main.dataset.page = name;
    await current.render(main);
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 401) return askForKey(exc.message);
    main.replaceChildren(h("p", { class: "error-box" }, `This page could not load: ${exc.message}`));
    notify(exc.message);
  }
}

function askForKey(problem = "") {
  document.getElementById("nav").hidden = true;
  const input = h("input", { type: "password", name: "key", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card login", id: "login" },
    h("h1", {}, "Sign in"),
    h("p", {}, "This strata server needs an API key. It is kept in this browser only."),
    field("API key", input),
    problem ? h("p", { class: "error-box", role: "alert" }, problem) : null,
    h("button", { type: "submit" }, "Continue"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    apiKey.set(input.value.trim());
    await start();
  });
  main.replaceChildren(form);
  input.focus();
}

async function start() {
  try {
    await api("/v1/models");
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 401) {
      const hadKey = Boolean(apiKey.get());
      apiKey.clear();
      return askForKey(hadKey ? `That key was refused: ${exc.message}` : "");
    }
    notify(exc.message);
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = !apiKey.get();
  await show();
}

document.getElementById("signout").addEventListener("click", () => {
  apiKey.clear();
  askForKey();
});
window.addEventListener("hashchange", show);
window.addEventListener("unhandledrejection", (event) => notify(String(event.reason?.message || event.reason)));
window.addEventListener("error", (event) => notify(event.message));
start();
