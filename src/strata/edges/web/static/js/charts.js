// Charts drawn as SVG by hand (no library): a line chart over time and horizontal share bars.
// Each mark carries data attributes so a test (or a person with devtools) can read the values.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function text(x, y, value, attrs = {}) {
  const node = svg("text", { x, y, ...attrs });
  node.textContent = value;
  return node;
}

// series: [{name, class, points: [[t, v], ...]}], t in seconds; format: value → label.
export function lineChart(title, series, format) {
  const width = 640;
  const height = 220;
  const pad = { left: 64, right: 12, top: 14, bottom: 28 };
  const all = series.flatMap((s) => s.points);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart line", "aria-label": title });
  root.append(svg("title", {}, title));
  if (!all.length) {
    root.append(text(width / 2, height / 2, "No requests in this period yet", { "text-anchor": "middle", class: "empty" }));
    return root;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const top = Math.max(...all.map((p) => p[1])) || 1;
  const x = (t) => pad.left + (t1 === t0 ? (width - pad.left - pad.right) / 2 : ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right));
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  for (const frac of [0, 0.5, 1]) {
    const v = top * frac;
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    root.append(text(pad.left - 6, y(v) + 4, format(v), { "text-anchor": "end", class: "axis" }));
  }
  root.append(text(pad.left, height - 8, new Date(t0 * 1000).toLocaleString(), { class: "axis" }));
  if (t1 !== t0) root.append(text(width - pad.right, height - 8, new Date(t1 * 1000).toLocaleString(), { "text-anchor": "end", class: "axis" }));
  for (const s of series) {
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, class: `series ${s.class}`, "data-series": s.name }));
    for (const [t, v] of s.points) {
      const dot = svg("circle", { cx: x(t), cy: y(v), r: 3.5, class: `point ${s.class}`, "data-series": s.name, "data-value": v });
      dot.append(svg("title", {}, `${s.name}: ${format(v)} at ${new Date(t * 1000).toLocaleString()}`));
      root.append(dot);
    }
  }
  return root;
}

// items: [{label, value}] → one bar per item, its share of the total.
export function shareBars(title, items) {
  const total = items.reduce((n, i) => n + i.value, 0);
  const row = 26;
  const width = 640;
  const height = Math.max(row * items.length + 8, 40);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart bars", "aria-label": title });
  root.append(svg("title", {}, title));
  if (!total) {
    root.append(text(width / 2, 24, "No requests yet", { "text-anchor": "middle", class: "empty" }));
    return root;
  }
  items.forEach((item, i) => {
    const share = item.value / total;
    const y = 4 + i * row;
    root.append(text(0, y + 16, item.label, { class: "label" }));
    root.append(svg("rect", { x: 180, y, width: 1, height: row - 8, class: "track", "data-track": "1", rx: 3 }));
    const bar = svg("rect", { x: 180, y, width: Math.max(2, share * 380), height: row - 8, class: `bar c${i % 6}`, rx: 3, "data-label": item.label, "data-value": item.value });
    bar.append(svg("title", {}, `${item.label}: ${item.value} (${Math.round(share * 100)}%)`));
    root.append(bar);
    root.append(text(570, y + 16, `${Math.round(share * 100)}% (${item.value})`, { class: "value" }));
  });
  return root;
}
