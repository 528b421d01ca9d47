// The solarhub dashboard: plain JavaScript against the hub's own HTTP/JSON API (no build step, no
// request to any other origin). Pages by the URL's hash: #/now, #/day, #/history, #/batteries,
// #/devices, #/settings?device=ID (a device's settings: read for everyone, changed by operators
// after a dry run). Charts are SVG drawn here.
"use strict";

const state = { session: null, systems: [], system: null, events: null };
const main = () => document.getElementById("main");
const SVG = "http://www.w3.org/2000/svg";

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || "HTTP " + status);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.method && options.method !== "GET" && state.session && state.session.csrfToken) {
    headers["x-csrf-token"] = state.session.csrfToken;
  }
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "same-origin",
  });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && !options.quiet) {
    showLogin();
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// ---------- helpers ----------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text != null) node.textContent = text;
  return node;
}

const num = (value) => (value === undefined || value === null ? null : Number(value));

/// A value with its unit and a sensible precision; an unknown value is a dash, never 0.
function fmt(value, unit, digits) {
  const v = num(value);
  if (v === null || Number.isNaN(v)) return "–";
  if (unit === "W") {
    return Math.abs(v) >= 1000 ? (v / 1000).toFixed(2) + " kW" : Math.round(v) + " W";
  }
  const d = digits !== undefined ? digits : unit === "kWh" ? 2 : unit === "V" ? 3 : 1;
  return v.toFixed(d) + (unit ? " " + unit : "");
}

function card(label, value, cls) {
  return el("div", { class: "card" + (cls ? " " + cls : "") },
    el("div", { class: "label", text: label }),
    el("div", { class: "value", text: value }));
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function systemPath(suffix) {
  return "/api/systems/" + encodeURIComponent(state.system) + suffix;
}

function query(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== "")
    .map(([k, v]) => encodeURIComponent(k) + "=" + encodeURIComponent(v))
    .join("&");
}

// ---------- charts ----------

/// Bars of several series per label: series = [{name, cls, values}], values by label index.
function barChart(labels, series, unit) {
  const width = 760, height = 260, left = 48, bottom = 28, top = 10;
  const max = Math.max(0.001, ...series.flatMap((s) => s.values.map((v) => num(v) || 0)));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const plotH = height - bottom - top;
  const groupW = (width - left) / Math.max(1, labels.length);
  const barW = Math.max(1, (groupW * 0.8) / series.length);
  chart.append(svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }));
  chart.append(svg("text", { x: 0, y: top + 10, class: "small" }, fmt(max, unit)));
  labels.forEach((label, i) => {
    series.forEach((s, j) => {
      const v = num(s.values[i]) || 0;
      const h = (v / max) * plotH;
      chart.append(svg("rect", {
        x: left + i * groupW + groupW * 0.1 + j * barW, y: height - bottom - h,
        width: barW, height: h, class: "bar-" + s.cls, fill: `var(--${s.cls})`,
        "data-value": v,
      }));
    });
    if (labels.length <= 31 || i % Math.ceil(labels.length / 24) === 0) {
      chart.append(svg("text", { x: left + i * groupW + 2, y: height - 8, class: "small" }, label));
    }
  });
  return chart;
}

/// Lines over time: series = [{name, cls, points: [[ms, value]]}], one y axis (W), SOC scaled.
function lineChart(from, to, series) {
  const width = 760, height = 280, left = 48, bottom = 28, top = 10;
  const values = series.filter((s) => s.cls !== "soc").flatMap((s) => s.points.map((p) => p[1]));
  const max = Math.max(1, ...values.map(Math.abs));
  const min = Math.min(0, ...values);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart day-chart", role: "img" });
  const x = (ms) => left + ((ms - from) / (to - from)) * (width - left);
  const y = (v) => top + (1 - (v - min) / (max - min)) * (height - bottom - top);
  chart.append(svg("line", { x1: left, y1: y(0), x2: width, y2: y(0), class: "axis" }));
  chart.append(svg("text", { x: 0, y: top + 10, class: "small" }, fmt(max, "W")));
  for (let h = 0; h <= 24; h += 3) {
    chart.append(svg("text", { x: x(from + h * 3600000) - 6, y: height - 8, class: "small" }, String(h).padStart(2, "0")));
  }
  for (const s of series) {
    if (!s.points.length) {
      chart.append(svg("path", { class: "series-" + s.cls, "data-points": 0 }));
      continue;
    }
    const scale = s.cls === "soc" ? (v) => y(min + (v / 100) * (max - min)) : y;
    const d = s.points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + scale(p[1]).toFixed(1)).join(" ");
    chart.append(svg("path", {
      d, fill: "none", "stroke-width": 2, stroke: s.cls === "soc" ? "var(--muted)" : `var(--${s.cls})`,
      class: "series-" + s.cls, "data-points": s.points.length,
    }));
  }
  return chart;
}

function legend(items) {
  return el("div", { class: "legend" },
    ...items.map(([cls, name]) => el("span", {}, el("span", { class: "swatch s-" + cls }), name)));
}

// ---------- pages ----------

/// Power flow: PV above, grid left, battery below, load right; arrows show direction.
function powerFlow(totals) {
  const chart = svg("svg", { viewBox: "0 0 320 300", class: "flow", role: "img", "aria-label": "Power flow" });
  const cx = 160, cy = 150;
  const nodes = [
    ["pv", "PV", 160, 40, num(totals.pvPowerW), true],
    ["grid", "Grid", 45, 150, num(totals.gridPowerW), true],
    ["bat", "Battery", 160, 260, num(totals.batteryPowerW), true],
    ["load", "Load", 275, 150, num(totals.loadPowerW), false],
  ];
  for (const [cls, name, x, y, value, inward] of nodes) {
    const on = value !== null && Math.abs(value) > 1;
    chart.append(svg("line", { x1: x, y1: y, x2: cx, y2: cy, class: cls + (on ? " on" : "") }));
    if (on) {
      // Positive PV, grid import and battery discharge flow to the house; load flows out of it.
      const toHouse = inward ? value > 0 : false;
      const [fx, fy, tx, ty] = toHouse ? [x, y, cx, cy] : [cx, cy, x, y];
      const mx = (fx + tx) / 2, my = (fy + ty) / 2;
      const angle = Math.atan2(ty - fy, tx - fx);
      const a = 9;
      const points = [
        [mx + a * Math.cos(angle), my + a * Math.sin(angle)],
        [mx + a * Math.cos(angle + 2.5), my + a * Math.sin(angle + 2.5)],
        [mx + a * Math.cos(angle - 2.5), my + a * Math.sin(angle - 2.5)],
      ].map((p) => p.map((c) => c.toFixed(1)).join(",")).join(" ");
      chart.append(svg("polygon", { points, fill: `var(--${cls})`, class: "arrow-" + cls, "data-direction": toHouse ? "in" : "out" }));
    }
    chart.append(svg("circle", { cx: x, cy: y, r: 30, fill: "#fff", stroke: `var(--${cls})`, "stroke-width": 3 }));
    chart.append(svg("text", { x, y: y - 3, "text-anchor": "middle" }, name));
    chart.append(svg("text", { x, y: y + 13, "text-anchor": "middle", class: "small flow-" + cls }, fmt(value === null ? null : Math.abs(value), "W")));
  }
  chart.append(svg("circle", { cx, cy, r: 14, fill: "var(--ink)" }));
  return chart;
}

function socText(totals) {
  const source = { SOC_SOURCE_PACK: "from the battery packs", SOC_SOURCE_INVERTER: "from the inverters" }[totals.socSource] || "";
  return [fmt(totals.batterySocPct, "%", 0), source];
}

function renderNow(now) {
  const totals = now.totals || {};
  const today = now.today || {};
  const [soc, source] = socText(totals);
  const root = el("section", { id: "now" });
  root.append(el("h2", { text: now.name + " — now" }));
  const tiles = el("div", { class: "cards" },
    card("PV", fmt(totals.pvPowerW, "W"), "pv-now"),
    card("Load", fmt(totals.loadPowerW, "W")),
    card(num(totals.gridPowerW) < 0 ? "Grid (export)" : "Grid (import)", fmt(num(totals.gridPowerW) === null ? null : Math.abs(totals.gridPowerW), "W")),
    card(num(totals.batteryPowerW) < 0 ? "Battery (charging)" : "Battery (discharging)", fmt(num(totals.batteryPowerW) === null ? null : Math.abs(totals.batteryPowerW), "W")),
    card("SOC " + source, soc, "soc"));
  const flow = el("div", { class: "card" }, powerFlow(totals));
  const energy = el("div", {},
    el("h2", { text: "Today (" + (today.date || "") + ")" }),
    el("div", { class: "cards" },
      card("Produced", fmt(today.pvKwh, "kWh")),
      card("Consumed", fmt(today.loadKwh, "kWh")),
      card("Imported", fmt(today.gridImportKwh, "kWh")),
      card("Exported", fmt(today.gridExportKwh, "kWh")),
      card("Charged", fmt(today.batteryChargeKwh, "kWh")),
      card("Discharged", fmt(today.batteryDischargeKwh, "kWh"))));
  root.append(el("div", { class: "wide" }, flow, el("div", {}, tiles, energy)));
  root.append(el("h2", { text: "Arrays" }));
  root.append(el("div", { class: "cards" }, ...(now.arrays || []).map((array) => {
    const t = array.totals || {};
    return el("div", { class: "card array" },
      el("div", { class: "label", text: array.name }),
      el("div", { text: "PV " + fmt(t.pvPowerW, "W") + " · Load " + fmt(t.loadPowerW, "W") }),
      el("div", { text: "Grid " + fmt(t.gridPowerW, "W") + " · Battery " + fmt(t.batteryPowerW, "W") }),
      el("div", { class: "muted", text: "SOC " + socText(t).join(" ") }));
  })));
  root.append(el("p", { class: "muted", text: "As of " + (now.asOf ? new Date(now.asOf).toLocaleString() : "–") }));
  return root;
}

async function pageNow() {
  const now = await api(systemPath("/now"));
  main().replaceChildren(renderNow(now));
  // When the first figures were on screen (the dashboard bench reads it; so can devtools).
  if (!performance.getEntriesByName("first-figures").length) performance.mark("first-figures");
  const events = new EventSource(systemPath("/events"));
  events.addEventListener("now", (event) => {
    const update = JSON.parse(event.data);
    if (update.now && location.hash.startsWith("#/now")) main().replaceChildren(renderNow(update.now));
  });
  state.events = events;
}

/// The local day `day` (YYYY-MM-DD) of the system as UTC [from, to): taken from the hourly rows
/// the hub keys by local hour, so a DST day is right; before any row, the browser's midnight.
function dayBounds(day) {
  const from = localMidnight(day, state.zone || "UTC");
  return [from, from + 86400000];
}

/// Today in the system's own zone (the browser's may be another), and that zone.
async function systemToday() {
  const now = await api(systemPath("/now"));
  state.zone = now.timezone || "UTC";
  return (now.today && now.today.date) || isoDay(new Date());
}

/// UTC milliseconds of midnight starting `day` (YYYY-MM-DD) in the IANA zone `zone`.
function localMidnight(day, zone) {
  const [y, m, d] = day.split("-").map(Number);
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric",
  });
  let guess = Date.UTC(y, m - 1, d);
  for (let i = 0; i < 2; i++) {
    const p = Object.fromEntries(parts.formatToParts(new Date(guess)).map((x) => [x.type, Number(x.value)]));
    const shown = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
    guess -= shown - Date.UTC(y, m - 1, d);
  }
  return guess;
}

async function pageDay(params) {
  const today = await systemToday();
  const day = params.get("date") || today;
  const [from, to] = dayBounds(day);
  const wide = [new Date(from - 86400000).toISOString(), new Date(to + 86400000).toISOString()];
  const shift = (days) => {
    const d = new Date(day + "T12:00:00");
    d.setDate(d.getDate() + days);
    location.hash = "#/day?date=" + isoDay(d);
  };
  const controls = el("div", { class: "controls" },
    el("button", { text: "‹ Previous", onclick: () => shift(-1) }),
    el("input", { type: "date", value: day, onchange: (e) => (location.hash = "#/day?date=" + e.target.value) }),
    el("button", { text: "Next ›", onclick: () => shift(1) }));
  const hourly = await api("/api/energy/hourly?" + query({ system_id: state.system, from: wide[0], to: wide[1] }));
  const hours = (hourly.buckets || []).filter((b) => b.date === day);
  const config = await api("/api/config?" + query({ system_id: state.system }));
  const tree = (config.systems || [])[0] || {};
  const inverters = (tree.inverterArrays || []).flatMap((a) => a.inverters || []);
  // The system's local midnight, from its first local hour of the day (the hub keys hours by it).
  const dayFrom = hours.length ? Date.parse(hours[0].start) - (hours[0].hour || 0) * 3600000 : from;
  const dayTo = hours.length ? Math.max(dayFrom + 86400000, Date.parse(hours[hours.length - 1].end)) : to;
  const sums = new Map();
  for (const item of inverters) {
    const inverterId = (item.inverter || item).inverterId;
    const series = await api("/api/series/five-minutes?" + query({
      inverter_id: inverterId, from: new Date(dayFrom).toISOString(), to: new Date(dayTo).toISOString(),
    }));
    for (const point of series.points || []) {
      const at = Date.parse(point.start);
      const entry = sums.get(at) || { pv: 0, load: 0, grid: 0, bat: 0, soc: [], n: 0 };
      const f = point.fields || {};
      entry.pv += num(f.pv_power_w) || 0;
      entry.load += num(f.load_power_w) || 0;
      entry.grid += num(f.grid_power_w) || 0;
      entry.bat += num(f.battery_power_w) || 0;
      if (num(f.battery_soc_pct) !== null) entry.soc.push(num(f.battery_soc_pct));
      sums.set(at, entry);
    }
  }
  const times = [...sums.keys()].sort((a, b) => a - b);
  const line = (key) => times.map((t) => [t, sums.get(t)[key]]);
  const soc = times.filter((t) => sums.get(t).soc.length)
    .map((t) => [t, sums.get(t).soc.reduce((a, b) => a + b, 0) / sums.get(t).soc.length]);
  const root = el("section", { id: "day" },
    el("h2", { text: "Day " + day }), controls,
    el("div", { class: "card" },
      legend([["pv", "PV"], ["load", "Load"], ["grid", "Grid"], ["bat", "Battery"], ["soc", "SOC (0–100 %)"]]),
      lineChart(dayFrom, dayTo, [
        { cls: "pv", points: line("pv") }, { cls: "load", points: line("load") },
        { cls: "grid", points: line("grid") }, { cls: "bat", points: line("bat") },
        { cls: "soc", points: soc }])),
    el("h2", { text: "Energy by hour" }),
    el("div", { class: "card" },
      legend([["pv", "Produced"], ["load", "Consumed"], ["grid", "Imported"]]),
      barChart(hours.map((h) => String(h.hour || 0).padStart(2, "0")), [
        { cls: "pv", values: hours.map((h) => h.solarKwh) },
        { cls: "load", values: hours.map((h) => h.loadKwh) },
        { cls: "grid", values: hours.map((h) => h.gridImportKwh) }], "kWh")),
    el("p", { class: "muted", text: times.length + " five-minute points, " + hours.length + " hours" }));
  main().replaceChildren(root);
}

async function pageHistory(params) {
  const period = params.get("period") || "month";
  const scope = params.get("scope") || "";
  const today = await systemToday();
  const value = params.get("at") || (period === "year" ? today.slice(0, 4) : today.slice(0, 7));
  const [fromDay, toDay] = period === "year"
    ? [value + "-01-01", String(Number(value) + 1) + "-01-01"]
    : [value + "-01", (() => { const d = new Date(value + "-01T12:00:00"); d.setMonth(d.getMonth() + 1); return isoDay(d).slice(0, 7) + "-01"; })()];
  const from = new Date(localMidnight(fromDay, state.zone)).toISOString();
  const to = new Date(localMidnight(toDay, state.zone)).toISOString();
  const base = scope.startsWith("array:") ? "/api/arrays/" + encodeURIComponent(scope.slice(6)) + "/energy/daily"
    : scope.startsWith("inverter:") ? "/api/inverters/" + encodeURIComponent(scope.slice(9)) + "/energy/daily"
    : "/api/energy/daily";
  const q = query({ system_id: scope ? "" : state.system, from, to });
  const daily = await api(base + "?" + q);
  const days = daily.buckets || [];
  const groups = new Map();
  for (const d of days) {
    const key = period === "year" ? d.date.slice(0, 7) : d.date.slice(8, 10);
    const g = groups.get(key) || { solar: 0, load: 0, imp: 0, exp: 0 };
    g.solar += num(d.solarKwh) || 0; g.load += num(d.loadKwh) || 0;
    g.imp += num(d.gridImportKwh) || 0; g.exp += num(d.gridExportKwh) || 0;
    groups.set(key, g);
  }
  const labels = [...groups.keys()].sort();
  const total = (k) => labels.reduce((s, l) => s + groups.get(l)[k], 0);
  const config = await api("/api/config?" + query({ system_id: state.system }));
  const tree = (config.systems || [])[0] || {};
  const scopes = [["", "Whole system"]];
  for (const a of tree.inverterArrays || []) {
    const array = a.inverterArray || a;
    scopes.push(["array:" + array.arrayId, "Array " + array.name]);
    for (const i of a.inverters || []) {
      const inverter = i.inverter || i;
      scopes.push(["inverter:" + inverter.inverterId, "Inverter " + inverter.name]);
    }
  }
  const go = (changes) => {
    const next = new URLSearchParams({ period, scope, at: value, ...changes });
    location.hash = "#/history?" + next.toString();
  };
  const picker = el("select", { onchange: (e) => go({ scope: e.target.value }) },
    ...scopes.map(([id, name]) => { const o = el("option", { value: id, text: name }); if (id === scope) o.selected = true; return o; }));
  const periodPicker = el("select", { onchange: (e) => go({ period: e.target.value, at: e.target.value === "year" ? today.slice(0, 4) : today.slice(0, 7) }) },
    ...["month", "year"].map((p) => { const o = el("option", { value: p, text: p === "month" ? "Days of a month" : "Months of a year" }); if (p === period) o.selected = true; return o; }));
  const at = period === "year"
    ? el("input", { type: "number", value, min: "2000", max: "2100", onchange: (e) => go({ at: e.target.value }) })
    : el("input", { type: "month", value, onchange: (e) => go({ at: e.target.value }) });
  const csv = el("a", { href: base + "?" + q + "&format=csv", download: "energy-" + value + ".csv", id: "csv", text: "Download CSV" });
  main().replaceChildren(el("section", { id: "history" },
    el("h2", { text: "History" }),
    el("div", { class: "controls" }, picker, periodPicker, at, csv),
    el("div", { class: "cards" },
      card("Produced", fmt(total("solar"), "kWh", 1), "total-solar"),
      card("Consumed", fmt(total("load"), "kWh", 1)),
      card("Imported", fmt(total("imp"), "kWh", 1)),
      card("Exported", fmt(total("exp"), "kWh", 1))),
    el("div", { class: "card" },
      legend([["pv", "Produced"], ["load", "Consumed"], ["grid", "Imported"]]),
      barChart(labels, [
        { cls: "pv", values: labels.map((l) => groups.get(l).solar) },
        { cls: "load", values: labels.map((l) => groups.get(l).load) },
        { cls: "grid", values: labels.map((l) => groups.get(l).imp) }], "kWh"))));
}

/// Cell limits of the users' lithium iron phosphate packs (JK BMS, Pytes).
const CELL_VOLTS = [2.8, 3.65];
const CELL_TEMPS = [0, 50];

async function pageBatteries() {
  const now = await api(systemPath("/now"));
  const root = el("section", { id: "batteries" }, el("h2", { text: "Batteries" }));
  for (const array of now.batteryArrays || []) {
    root.append(el("h2", { text: array.name + " · SOC " + fmt(array.socPct, "%", 0) + " · " + fmt(array.powerW, "W") }));
    for (const summary of array.packs || []) {
      const pack = await api("/api/battery-packs/" + encodeURIComponent(summary.packId) + "/now");
      const cells = (pack.batteries || []).flatMap((b) => (b.cells || []).map((c) => ({ ...c, battery: b.index })));
      const volts = cells.map((c) => num(c.voltageV)).filter((v) => v !== null);
      const lo = Math.min(...volts), hi = Math.max(...volts);
      const packCard = el("div", { class: "card pack", "data-pack": pack.packId },
        el("div", { class: "label", text: pack.name + (pack.stale ? " (no recent reading)" : "") }),
        el("div", { text: "SOC " + fmt(pack.socPct, "%", 0) + " · " + fmt(pack.voltageV, "V", 2) + " · " + fmt(pack.currentA, "A") + " · " + fmt(pack.temperatureC, "°C") }),
        el("div", { class: "muted", text: volts.length ? "Cells " + fmt(lo, "V") + " – " + fmt(hi, "V") + " · Δ " + ((hi - lo) * 1000).toFixed(0) + " mV" : "No cell readings" }));
      const grid = el("div", { class: "cells" });
      for (const c of cells) {
        const v = num(c.voltageV), t = num(c.temperatureC);
        const bad = (v !== null && (v < CELL_VOLTS[0] || v > CELL_VOLTS[1])) || (t !== null && (t < CELL_TEMPS[0] || t > CELL_TEMPS[1]));
        const node = el("div", { class: "cell" + (bad ? " bad" : ""), title: c.cellId, "data-cell": c.cellId },
          el("div", { text: "B" + c.battery + " #" + c.index }), el("div", { text: fmt(v, "V") }),
          t !== null ? el("div", { text: fmt(t, "°C") }) : null);
        const share = volts.length && hi > lo && v !== null ? (v - lo) / (hi - lo) : 0.5;
        node.style.backgroundColor = `hsl(${Math.round(210 - share * 170)}, 70%, 85%)`;
        grid.append(node);
      }
      packCard.append(grid);
      const statuses = (pack.batteries || []).filter((b) => b.status && Object.keys(b.status).length);
      if (statuses.length) {
        packCard.append(el("div", { class: "muted", text: statuses.map((b) => "Battery " + b.index + ": " + Object.entries(b.status).map(([k, v]) => k + " " + v).join(", ")).join(" · ") }));
      }
      root.append(packCard);
    }
  }
  main().replaceChildren(root);
}

async function pageDevices() {
  const [quality, collectors] = await Promise.all([
    api("/api/quality?" + query({ system_id: state.system })),
    api("/api/collectors").catch(() => ({ collectors: [] })),
  ]);
  const devices = (quality.devices || []).slice().sort((a, b) =>
    (a.lastSeen ? Date.parse(a.lastSeen) : 0) - (b.lastSeen ? Date.parse(b.lastSeen) : 0));
  const rate = (w) => (w && num(w.successRate) !== null ? (num(w.successRate) * 100).toFixed(1) + " %" : "–");
  main().replaceChildren(el("section", { id: "devices" },
    el("h2", { text: "Devices (silent first)" }),
    el("div", { class: "scroll" }, el("table", {},
      el("tr", {}, ...["Device", "Type", "Status", "Last reading", "Success, last hour", "Success, last day"].map((h) => el("th", { text: h }))),
      ...devices.map((d) => el("tr", { "data-device": d.deviceId },
        el("td", {}, d.deviceType === "inverter"
          ? el("a", { href: "#/settings?" + query({ device: d.deviceId }), text: d.deviceId })
          : d.deviceId),
        el("td", { text: d.deviceType }),
        el("td", { class: d.status === "healthy" ? "" : "bad", text: d.status }),
        el("td", { text: d.lastSeen ? new Date(d.lastSeen).toLocaleString() : "never" }),
        el("td", { class: "num", text: rate(d.lastHour) }), el("td", { class: "num", text: rate(d.lastDay) }))))),
    el("h2", { text: "Collectors" }),
    el("div", { class: "scroll" }, el("table", {},
      el("tr", {}, ...["Collector", "Version", "Last seen", "Last batch", "Samples stored"].map((h) => el("th", { text: h }))),
      ...(collectors.collectors || []).map((c) => el("tr", {},
        el("td", { text: c.collectorId }), el("td", { text: c.version || "–" }),
        el("td", { text: c.lastSeenAt ? new Date(c.lastSeenAt).toLocaleString() : "never" }),
        el("td", { class: "num", text: c.lastCommittedSeq || "0" }),
        el("td", { class: "num", text: c.samplesStored || "0" })))))));
}

// ---------- a device's settings (#28) ----------

const mayControl = () => !state.session.authRequired || ["operator", "admin"].includes(state.session.role);

function commandLine(command) {
  const writes = (command.writes || []).map((w) =>
    `${w.address}: ${w.current} → ${w.new}` + (w.readBack !== undefined ? ` (read back ${w.readBack})` : ""));
  return `${command.state.replace("COMMAND_STATE_", "").toLowerCase()}` +
    (command.reason ? ` — ${command.reason}` : "") + (writes.length ? ` — ${writes.join(", ")}` : "");
}

async function pageSettings(params) {
  const device = params.get("device") || "";
  const root = el("section", { id: "settings" });
  const picker = el("form", { class: "inline", onsubmit: (event) => {
    event.preventDefault();
    location.hash = "#/settings?" + query({ device: picker.elements.device.value });
  } }, el("input", { name: "device", value: device, placeholder: "device id (powdrive1)" }),
  el("button", { type: "submit", text: "Read settings" }));
  root.append(el("h2", { text: "Settings" + (device ? " of " + device : "") }), picker);
  main().replaceChildren(root);
  if (!device) return;
  root.append(el("p", { class: "muted", text: "Reading the device…" }));
  let answer;
  try {
    answer = await api(`/api/devices/${encodeURIComponent(device)}/settings`);
  } catch (error) {
    // Under the form, so another device id can be tried.
    root.lastChild.replaceWith(el("p", { class: "error", text: "Cannot read the settings: " + error.message }));
    return;
  }
  root.lastChild.remove();
  if (answer.read && answer.read.state !== "COMMAND_STATE_DONE") {
    root.append(el("p", { class: "error", text: "The device did not answer: " + commandLine(answer.read) }));
  }
  const editable = mayControl();
  const inputs = {};
  const rows = (answer.settings || []).map((s) => {
    let input = null;
    if (editable && s.verified) {
      input = s.choices && s.choices.length
        ? el("select", { name: s.name }, ...s.choices.map((c) => el("option", { value: c, text: c })))
        : el("input", { name: s.name, size: 8 });
      input.value = s.value || "";
      inputs[s.name] = [input, s.value || ""];
    }
    const limits = s.choices && s.choices.length ? s.choices.join(" / ")
      : (s.min !== undefined || s.max !== undefined ? `${s.min ?? ""} – ${s.max ?? ""} ${s.unit || ""}`
        : ((s.value || "").includes(":") ? "HH:MM" : ""));
    return el("tr", { "data-setting": s.name },
      el("td", { text: s.name }), el("td", { class: "num", text: s.value === "" ? "–" : `${s.value} ${s.unit || ""}` }),
      el("td", {}, input), el("td", { class: "muted", text: limits }),
      el("td", { class: s.verified ? "" : "bad", text: s.verified ? "verified" : s.unverifiedReason }),
      el("td", { class: "muted", text: s.lastChangedAt ? `${new Date(s.lastChangedAt).toLocaleString()} by ${s.lastChangedBy}` : "" }));
  });
  root.append(el("div", { class: "scroll" }, el("table", {},
    el("tr", {}, ...["Setting", "Now", editable ? "New" : "", "Limits", "Verified", "Last change"].map((h) => el("th", { text: h }))),
    ...rows)));
  const outcome = el("div", { id: "outcome" });
  const changed = () => Object.fromEntries(Object.entries(inputs)
    .filter(([, [input, was]]) => input.value !== was).map(([name, [input]]) => [name, input.value]));
  const send = (dryRun) => api(`/api/devices/${encodeURIComponent(device)}/settings`,
    { method: "POST", body: { settings: changed(), dryRun } });
  if (editable) {
    const apply = el("button", { id: "apply", text: "Apply", disabled: "" });
    apply.onclick = async () => {
      apply.disabled = true;
      const command = await send(false).catch((e) => ({ state: "refused", reason: e.message }));
      outcome.replaceChildren(el("p", { id: "applied", text: "Applied: " + commandLine(command) }));
    };
    const preview = el("button", { id: "preview", text: "Preview (dry run)", onclick: async () => {
      if (!Object.keys(changed()).length) { outcome.replaceChildren(el("p", { text: "Nothing changed." })); return; }
      const command = await send(true).catch((e) => ({ state: "refused", reason: e.message, writes: [] }));
      outcome.replaceChildren(el("p", { id: "dry-run", text: "Would write: " + commandLine(command) }), apply);
      if (command.state === "COMMAND_STATE_DONE" && (command.writes || []).length) apply.removeAttribute("disabled");
    } });
    root.append(preview, outcome);
  }
  const history = await api("/api/commands?" + query({ device_id: device, limit: 20 })).catch(() => ({ commands: [] }));
  root.append(el("h2", { text: "Commands" }), el("div", { class: "scroll" }, el("table", {},
    el("tr", {}, ...["When", "By", "Kind", "Settings", "Outcome", ""].map((h) => el("th", { text: h }))),
    ...(history.commands || []).map((c) => el("tr", {},
      el("td", { text: new Date(c.createdAt).toLocaleString() }), el("td", { text: c.requestedBy }),
      el("td", { text: c.kind.replace("COMMAND_KIND_", "").toLowerCase() + (c.dryRun ? " (dry run)" : "") }),
      el("td", { text: Object.entries(c.settings || {}).map(([k, v]) => `${k}=${v}`).join(" ") }),
      el("td", { text: commandLine(c) }),
      el("td", {}, editable && c.state === "COMMAND_STATE_DONE" && !c.dryRun && (c.writes || []).length && c.kind !== "COMMAND_KIND_READ"
        ? el("button", { text: "Revert", onclick: async () => {
          const command = await api(`/api/commands/${c.id}/revert`, { method: "POST", body: {} })
            .catch((e) => ({ state: "refused", reason: e.message }));
          outcome.replaceChildren(el("p", { text: "Revert: " + commandLine(command) }));
        } }) : null))))));
}

// ---------- login, systems, routing ----------

function showLogin(message) {
  if (state.events) state.events.close();
  const input = el("input", { type: "password", placeholder: "shub_…", autocomplete: "current-password", id: "token" });
  const error = el("p", { class: "error", text: message || "" });
  const form = el("form", { class: "card login", onsubmit: async (event) => {
    event.preventDefault();
    try {
      state.session = await api("/api/login", { method: "POST", body: { token: input.value }, quiet: true });
      await start();
    } catch (e) {
      error.textContent = e.message;
    }
  } }, el("h2", { text: "Log in" }),
  el("p", { class: "muted", text: "With a reader's, an operator's or an admin's token (solarhub-hub token create)." }),
  input, el("button", { type: "submit", text: "Log in" }), error);
  main().replaceChildren(form);
}

const pages = { now: pageNow, day: pageDay, history: pageHistory, batteries: pageBatteries, devices: pageDevices, settings: pageSettings };

async function route() {
  if (state.events) { state.events.close(); state.events = null; }
  const [path, search] = (location.hash.slice(2) || "now").split("?");
  const page = pages[path] || pageNow;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === "#/" + (pages[path] ? path : "now"));
  try {
    await page(new URLSearchParams(search || ""));
  } catch (error) {
    if (error.status !== 401) main().replaceChildren(el("p", { class: "error", text: "Could not load this page: " + error.message }));
  }
}

async function start() {
  try {
    state.session = await api("/api/session", { quiet: true });
  } catch (error) {
    showLogin();
    return;
  }
  document.getElementById("who").textContent = state.session.authRequired
    ? state.session.principal + " (" + state.session.role + ")" : "";
  if (state.session.role === "operator") {
    // An operator controls and reads nothing else: the settings page only.
    document.getElementById("system").hidden = true;
    for (const a of document.querySelectorAll("nav a")) a.hidden = a.getAttribute("href") !== "#/settings";
    if (!location.hash.startsWith("#/settings")) location.hash = "#/settings";
    window.onhashchange = route;
    await route();
    return;
  }
  const list = await api("/api/systems");
  state.systems = list.systems || [];
  const picker = document.getElementById("system");
  picker.replaceChildren(...state.systems.map((s) => el("option", { value: s.systemId, text: s.name })));
  state.system = localStorage.getItem("system") || (state.systems[0] || {}).systemId;
  if (!state.systems.some((s) => s.systemId === state.system)) state.system = (state.systems[0] || {}).systemId;
  picker.value = state.system || "";
  picker.hidden = state.systems.length < 2;
  picker.onchange = () => { state.system = picker.value; localStorage.setItem("system", state.system); route(); };
  if (!state.system) {
    main().replaceChildren(el("p", { text: "No system yet: import a config (solarhub-hub import-config)." }));
    return;
  }
  window.onhashchange = route;
  await route();
}

start();
