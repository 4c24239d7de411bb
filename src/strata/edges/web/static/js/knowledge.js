// Knowledge: collections; files and whole folders dropped (or picked) and uploaded with
// progress; search with the query's words highlighted; delete a document or a collection.

import { api, upload } from "./api.js";
import { field, h, notify } from "./dom.js";

let els = {};
let selected = null;

export async function render(main) {
  els = {};
  els.list = h("ul", { class: "collections", "aria-label": "Collections" });
  els.name = h("input", { name: "collection", placeholder: "e.g. handbook", maxlength: 64 });
  els.detail = h("section", { class: "collection-detail" });
  main.append(h("div", { class: "split" },
    h("aside", { class: "sidebar" },
      h("h2", {}, "Collections"), els.list,
      h("form", { class: "inline", onsubmit: create }, field("New collection", els.name), h("button", { type: "submit" }, "Create"))),
    els.detail));
  await refresh();
}

// The list of collections; the detail pane is rebuilt only when the selection changes, so
// uploads in progress keep their rows.
async function refresh() {
  const shown = els.shown;
  const found = await api("/v1/collections");
  if (!selected && found.data.length) selected = found.data[0].name;
  if (selected && !found.data.some((c) => c.name === selected)) selected = found.data[0]?.name || null;
  els.list.replaceChildren(...found.data.map((c) => h("li", { class: c.name === selected ? "current" : "" },
    h("button", { class: "resume", onclick: () => { selected = c.name; refresh(); } }, c.name),
    h("span", { class: "muted count", title: `${c.chunks} chunks` }, `${c.documents} docs`))));
  if (!found.data.length) els.list.append(h("li", { class: "muted" }, "No collections yet."));
  if (shown !== selected || !els.detail.firstChild) showDetail();
}

async function create(event) {
  event.preventDefault();
  const name = els.name.value.trim();
  if (!name) return;
  try {
    await api("/v1/collections", { method: "POST", body: { name } });
    selected = name;
    els.name.value = "";
    await refresh();
  } catch (exc) {
    notify(exc.message);
  }
}

function showDetail() {
  els.shown = selected;
  if (!selected) {
    els.detail.replaceChildren(h("p", { class: "muted" }, "Create a collection, then drop files into it."));
    return;
  }
  const files = h("input", { type: "file", multiple: true, id: "files", onchange: (e) => uploadAll([...e.target.files].map((f) => [f.webkitRelativePath || f.name, f])) });
  const folder = h("input", { type: "file", webkitdirectory: true, id: "folder", onchange: (e) => uploadAll([...e.target.files].map((f) => [f.webkitRelativePath || f.name, f])) });
  els.progress = h("ul", { class: "progress-list", "aria-live": "polite" });
  const drop = h("div", { class: "dropzone", tabindex: 0, role: "button", "aria-label": "Drop files or folders here, or press Enter to choose files",
    onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); files.click(); } },
    ondragover: (e) => { e.preventDefault(); drop.classList.add("over"); },
    ondragleave: () => drop.classList.remove("over"),
    ondrop: async (e) => { e.preventDefault(); drop.classList.remove("over"); uploadAll(await dropped(e.dataTransfer)); } },
  h("strong", {}, "Drop files or folders here"), h("span", { class: "muted" }, " .txt .md .html .pdf .jsonl"),
  h("div", { class: "pickers" }, h("label", { for: "files", class: "button" }, "Choose files"), files, h("label", { for: "folder", class: "button" }, "Choose a folder"), folder));
  els.query = h("input", { type: "search", name: "query", placeholder: "Search this collection" });
  els.mode = h("select", { name: "mode" }, ["hybrid", "bm25", "vector"].map((m) => h("option", { value: m }, m)));
  els.hits = h("ol", { class: "hits" });
  els.detail.replaceChildren(
    h("div", { class: "row" }, h("h2", {}, selected),
      h("button", { class: "danger", onclick: removeCollection }, "Delete collection")),
    drop, els.progress,
    h("form", { class: "inline search", onsubmit: search }, field("Search", els.query), field("Mode", els.mode), h("button", { type: "submit" }, "Search")),
    els.hits);
}

// Every file under the dropped items, folders walked, with its path inside the drop.
async function dropped(transfer) {
  const entries = [...transfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...transfer.files].map((f) => [f.name, f]);
  const out = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      out.push([prefix + entry.name, await new Promise((ok, fail) => entry.file(ok, fail))]);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const entry of entries) await walk(entry, "");
  return out;
}

function base64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",")[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function uploadAll(files) {
  const collection = selected;
  for (const [path, file] of files) {
    const bar = h("progress", { max: 1, value: 0, "aria-label": `Uploading ${path}` });
    const note = h("span", { class: "muted" }, "reading…");
    const row = h("li", { "data-file": path }, h("span", { class: "name" }, path), bar, note);
    els.progress.append(row);
    try {
      const data = await base64(file);
      note.textContent = "uploading…";
      const result = await upload(`/v1/collections/${encodeURIComponent(collection)}/documents`,
        { documents: [{ id: path, data, filename: file.name, title: file.name }] },
        (share) => { bar.value = share; });
      bar.value = 1;
      const chunks = result.data.reduce((n, d) => n + (d.chunks || 0), 0);
      note.textContent = `done: ${chunks} chunk${chunks === 1 ? "" : "s"}, searchable now`;
      row.classList.add("done");
    } catch (exc) {
      note.textContent = exc.message;
      row.classList.add("failed");
      notify(`${path}: ${exc.message}`);
    }
  }
  await refreshCounts();
}

async function refreshCounts() {
  await refresh();
}

function highlight(text, query) {
  const words = query.toLowerCase().split(/\W+/).filter((w) => w.length > 1);
  if (!words.length) return [text];
  const pattern = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "gi");
  return text.split(pattern).map((part, i) => (i % 2 ? h("mark", {}, part) : part));
}

async function search(event) {
  event.preventDefault();
  const query = els.query.value.trim();
  if (!query) return;
  try {
    const found = await api(`/v1/collections/${encodeURIComponent(selected)}/search`,
      { method: "POST", body: { query, mode: els.mode.value, top_k: 10 } });
    els.hits.replaceChildren(...found.data.map((hit) => h("li", { class: "hit" },
      h("div", { class: "row" }, h("strong", {}, hit.title || hit.document_id),
        h("span", { class: "muted" }, ` ${hit.document_id} · chunk ${hit.chunk} · score ${Number(hit.score).toFixed(3)}`),
        h("button", { class: "link danger", onclick: () => removeDocument(hit.document_id) }, "Delete document")),
      h("p", {}, highlight(hit.text, query)))));
    if (!found.data.length) els.hits.append(h("li", { class: "muted" }, "No passage matches."));
  } catch (exc) {
    notify(exc.message);
  }
}

async function removeDocument(id) {
  if (!confirm(`Delete ${id} from ${selected}?`)) return;
  try {
    await api(`/v1/collections/${encodeURIComponent(selected)}/documents/${encodeURIComponent(id)}`, { method: "DELETE" });
    notify(`Deleted ${id}`, "info");
    els.hits.replaceChildren();
    await refreshCounts();
  } catch (exc) {
    notify(exc.message);
  }
}

async function removeCollection() {
  if (!confirm(`Delete the collection ${selected} and every document in it?`)) return;
  try {
    await api(`/v1/collections/${encodeURIComponent(selected)}`, { method: "DELETE" });
    selected = null;
    await refresh();
  } catch (exc) {
    notify(exc.message);
  }
}
