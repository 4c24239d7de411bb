// Small helpers shared by the pages: an element builder, number formats and the notice bar.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function usd(value) {
  if (value === null || value === undefined) return "–";
  const v = Number(value);
  if (v === 0) return "$0";
  const sign = v < 0 ? "−" : "";
  const a = Math.abs(v);
  return a < 0.01 ? `${sign}$${a.toPrecision(2)}` : `${sign}$${a.toFixed(2)}`;
}

export function pct(value) {
  return value === null || value === undefined ? "–" : `${Math.round(Number(value) * 100)}%`;
}

export function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

let hideTimer = null;

// A message at the top of the page: errors stay until dismissed, other news fades.
export function notify(message, kind = "error") {
  const box = document.getElementById("notice");
  box.replaceChildren(
    h("span", { text: message }),
    h("button", { class: "link", "aria-label": "Dismiss", onclick: () => (box.hidden = true) }, "×"),
  );
  box.className = kind;
  box.hidden = false;
  clearTimeout(hideTimer);
  if (kind !== "error") hideTimer = setTimeout(() => (box.hidden = true), 4000);
}

export function clearNotice() {
  document.getElementById("notice").hidden = true;
}

// Label + control pair with an error slot the server's 422 can fill.
export function field(label, control, hint = "") {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert" });
  control.setAttribute("aria-describedby", `${id}-error`);
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("p", { class: "hint" }, hint) : null, error);
}
