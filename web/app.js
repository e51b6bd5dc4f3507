/* kelemetry UI: a search form, a result list and a trace waterfall over the
 * Jaeger query API served by the same process. No build step, no
 * dependencies. Display mode = Jaeger "service", cluster = "operation";
 * the mode is also encoded in the trace id (ff<8 hex mode>e1e3e7...), so
 * switching modes rewrites those digits and reloads the trace. */
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined)
    e.append(k.nodeType ? k : document.createTextNode(String(k)));
  return e;
};

let modes = [];

function banner(msg) {
  const b = $("#banner");
  b.textContent = msg || "";
  b.hidden = !msg;
}

async function api(path) {
  const r = await fetch(path);
  let body;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const msg = body && body.errors && body.errors[0] ? body.errors[0].msg : r.statusText;
    throw new Error(msg);
  }
  return body;
}

/* ---- search ------------------------------------------------------------ */

async function loadForm() {
  const svc = await api("/api/services");
  modes = svc.data;
  $("#mode").replaceChildren(...modes.map((m) => el("option", { value: m }, m)));
  const ops = await api("/api/services/" + encodeURIComponent(modes[0]) + "/operations");
  $("#cluster").replaceChildren(el("option", { value: "" }, "all clusters"),
    ...ops.data.map((c) => el("option", { value: c }, c)));
}

function formToParams() {
  const p = new URLSearchParams();
  for (const id of ["cluster", "mode", "resource", "namespace", "name", "lookback"]) {
    const v = $("#" + id).value.trim();
    if (v) p.set(id, v);
  }
  if ($("#lookback").value === "custom") {
    p.set("from", $("#from").value);
    p.set("to", $("#to").value);
  }
  return p;
}

function paramsToForm(p) {
  for (const id of ["cluster", "mode", "resource", "namespace", "name", "lookback", "from", "to"])
    if (p.has(id)) $("#" + id).value = p.get(id);
  $("#custom-range").hidden = $("#lookback").value !== "custom";
}

function range(p) {
  const now = Date.now();
  if (p.get("lookback") === "custom" && p.get("from") && p.get("to"))
    return [Date.parse(p.get("from") + "Z") * 1000, Date.parse(p.get("to") + "Z") * 1000];
  return [(now - Number(p.get("lookback") || 3600) * 1000) * 1000, now * 1000];
}

async function search(p) {
  banner("");
  $("#trace-view").hidden = true;
  const [start, end] = range(p);
  const tags = {};
  for (const k of ["resource", "namespace", "name"]) if (p.get(k)) tags[k] = p.get(k);
  const q = new URLSearchParams({ service: p.get("mode") || modes[0], limit: "20",
    start: String(Math.floor(start)), end: String(Math.floor(end)) });
  if (p.get("cluster")) q.set("operation", p.get("cluster"));
  if (Object.keys(tags).length) q.set("tags", JSON.stringify(tags));
  const box = $("#results");
  box.replaceChildren(el("p", { class: "muted" }, "Searching…"));
  try {
    const r = await api("/api/traces?" + q);
    box.replaceChildren(r.data.length ? "" : el("p", { class: "muted" }, "No traces in this range."),
      ...r.data.map(resultRow));
  } catch (e) {
    box.replaceChildren();
    banner(e.message);
  }
}

function rootOf(trace) {
  return trace.spans.find((s) => !s.references || !s.references.length) || trace.spans[0];
}

function fmtTime(us) {
  return new Date(us / 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtDur(us) {
  if (us >= 3600e6) return (us / 3600e6).toFixed(1) + "h";
  if (us >= 60e6) return (us / 60e6).toFixed(1) + "m";
  if (us >= 1e6) return (us / 1e6).toFixed(2) + "s";
  return (us / 1e3).toFixed(1) + "ms";
}

function resultRow(trace) {
  const root = rootOf(trace);
  const svc = trace.processes[root.processID].serviceName;
  return el("a", { class: "result", href: "/trace/" + trace.traceID,
                   onclick: (ev) => { ev.preventDefault(); go("/trace/" + trace.traceID); } },
    el("span", { class: "title" }, svc + ": " + root.operationName),
    el("span", { class: "muted" }, trace.spans.length + " spans"),
    el("span", { class: "muted" }, fmtDur(root.duration)),
    el("span", { class: "muted" }, fmtTime(root.startTime)));
}

/* ---- trace view -------------------------------------------------------- */

const collapsed = new Set();
let currentTrace = null;

async function showTrace(id) {
  banner("");
  $("#results").replaceChildren();
  const view = $("#trace-view");
  view.hidden = false;
  view.replaceChildren(el("p", { class: "muted", style: "padding:10px" }, "Loading…"));
  let trace;
  try {
    trace = (await api("/api/traces/" + encodeURIComponent(id))).data[0];
  } catch (e) {
    view.hidden = true;
    banner(e.message);
    return;
  }
  renderTrace(trace);
}

function modeOf(id) {
  return /^ff[0-9a-f]{8}e1e3e7/i.test(id) ? id.slice(2, 10) : null;
}

function modeSwitch(trace) {
  const cur = modeOf(trace.traceID);
  const ids = ["00", "10", "20", "30", "01", "11", "21", "31", "02", "12", "22", "32", "04", "14", "24", "34"];
  const names = {};
  for (const n of modes) {
    const base = { tree: 0, timeline: 1, tracing: 2, grouped: 3 }[n.split(" ")[0]];
    const mod = n.includes("[full tree]") ? 1 : n.includes("[ancestors]") ? 2 : n.includes("[owned objects]") ? 4 : 0;
    names[String(base) + String(mod) + "000000"] = n;
  }
  const sel = el("select", { id: "mode-switch", "aria-label": "display mode",
    onchange: (ev) => go("/trace/ff" + ev.target.value + trace.traceID.slice(10)) },
    ids.map((m) => el("option", { value: m + "000000" }, names[m + "000000"] || m + "000000")));
  sel.value = cur;
  return sel;
}

function objectOf(span, trace) {
  const t = Object.fromEntries((span.tags || []).map((x) => [x.key, x.value]));
  if (t.resource && t.name) return { cluster: t.cluster, resource: t.resource, namespace: t.namespace, name: t.name };
  const svc = trace.processes[span.processID].serviceName.split(" ");
  const op = span.operationName.split(" / ")[0].split(" ");
  if (svc.length < 1 || !op[0]) return null;
  const resource = svc[svc.length - 1];
  const cluster = svc.length > 1 ? svc[0] : null;
  const [namespace, name] = op.length > 1 ? op : ["default", op[0]];
  return { cluster, resource, namespace, name };
}

function renderTrace(trace) {
  currentTrace = trace;
  const view = $("#trace-view");
  const byId = new Map(trace.spans.map((s) => [s.spanID, s]));
  const kids = new Map();
  for (const s of trace.spans) {
    const ref = (s.references || []).find((r) => byId.has(r.spanID));
    const parent = ref ? ref.spanID : null;
    if (!kids.has(parent)) kids.set(parent, []);
    kids.get(parent).push(s);
  }
  for (const list of kids.values()) list.sort((a, b) => a.startTime - b.startTime);
  const root = rootOf(trace);
  const t0 = Math.min(...trace.spans.map((s) => s.startTime));
  const t1 = Math.max(...trace.spans.map((s) => s.startTime + s.duration), t0 + 1);
  const pct = (us) => ((us - t0) / (t1 - t0)) * 100;

  const rows = el("div", { class: "rows", role: "tree" });
  const walk = (span, depth) => {
    const children = kids.get(span.spanID) || [];
    const svc = trace.processes[span.processID].serviceName;
    const toggle = el("button", { class: "span-toggle plain" + (children.length ? "" : " leaf"),
      "aria-label": "collapse", tabindex: "-1",
      onclick: (ev) => { ev.stopPropagation(); flip(span.spanID); } },
      collapsed.has(span.spanID) ? "▸" : "▾");
    const bar = el("div", { class: "bar-cell" },
      el("div", { class: "bar", style: `left:${pct(span.startTime)}%;width:${Math.max(0.2, pct(span.startTime + span.duration) - pct(span.startTime))}%` }),
      ...(span.logs || []).map((l) => el("div", { class: "tick-log", style: `left:${pct(l.timestamp)}%` })));
    const row = el("div", { class: "span-row", tabindex: "0", role: "treeitem",
        "data-span-id": span.spanID, "aria-expanded": String(!collapsed.has(span.spanID)),
        onclick: () => details(row, span), onkeydown: (ev) => keys(ev, row, span) },
      el("div", { class: "span-name", style: `padding-left:${6 + depth * 14}px` }, toggle,
        el("span", { class: "svc" }, svc), " ", el("span", {}, span.operationName)),
      bar);
    rows.append(row);
    if (!collapsed.has(span.spanID)) for (const c of children) walk(c, depth + 1);
  };
  const flip = (id) => {
    if (collapsed.has(id)) collapsed.delete(id); else collapsed.add(id);
    renderTrace(trace);
    const r = view.querySelector(`[data-span-id="${id}"]`);
    if (r) r.focus();
  };
  const keys = (ev, row, span) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); details(row, span); }
    else if (ev.key === "ArrowLeft" && !collapsed.has(span.spanID)) flip(span.spanID);
    else if (ev.key === "ArrowRight" && collapsed.has(span.spanID)) flip(span.spanID);
    else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const all = [...view.querySelectorAll(".span-row")];
      const i = all.indexOf(row) + (ev.key === "ArrowDown" ? 1 : -1);
      if (all[i]) all[i].focus();
    }
  };
  walk(root, 0);

  const ticks = el("div", { class: "ticks" }, [0, 25, 50, 75, 100].map((p) =>
    el("span", { style: `left:${Math.min(97, Math.max(3, p))}%` }, fmtTime(t0 + (t1 - t0) * p / 100).slice(11))));
  const title = trace.processes[root.processID].serviceName + ": " + root.operationName;
  view.replaceChildren(
    el("div", { class: "trace-head" }, el("h2", {}, title), modeSwitch(trace),
      el("span", { class: "muted" }, trace.spans.length + " spans, " + fmtDur(t1 - t0)),
      el("a", { href: "/search", onclick: (ev) => { ev.preventDefault(); history.back(); } }, "back to results")),
    el("div", { class: "axis" }, el("div", { style: "padding:3px 6px" }, "span"), ticks),
    rows);
  document.title = "kelemetry: " + title;
}

/* A diff field: lines "<path> <old> -> <new>" shown as -/+ pairs. */
function diffBlock(text) {
  const box = el("div", { class: "diff" });
  for (const line of text.split("\n")) {
    const sp = line.indexOf(" ");
    const arrow = line.indexOf(" -> ", sp);
    if (sp < 0 || arrow < 0) { box.append(el("div", { class: "diff-line" }, line)); continue; }
    const path = line.slice(0, sp);
    box.append(el("div", { class: "diff-line old" }, "- ", el("span", { class: "path" }, path), " ", line.slice(sp + 1, arrow)),
               el("div", { class: "diff-line new" }, "+ ", el("span", { class: "path" }, path), " ", line.slice(arrow + 4)));
  }
  return box;
}

function fieldView(f) {
  if (f.key === "diff" || f.key === "verbose diff")
    return el("div", {}, el("div", { class: "k muted" }, f.key), diffBlock(String(f.value)));
  if (f.key === "snapshot") {
    let pretty = String(f.value);
    try { pretty = JSON.stringify(JSON.parse(pretty), null, 2); } catch (e) { /* raw */ }
    return el("details", { class: "snapshot" }, el("summary", {}, "snapshot"), el("pre", {}, pretty));
  }
  return el("div", { class: "kv" }, el("span", { class: "k" }, f.key || "(note)"), el("span", {}, String(f.value)));
}

function details(row, span) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("span-details")) { next.remove(); row.classList.remove("selected"); return; }
  row.classList.add("selected");
  const trace = currentTrace;
  const obj = trace ? objectOf(span, trace) : null;
  const tags = el("div", { class: "kv" }, ...(span.tags || []).flatMap((t) =>
    [el("span", { class: "k" }, t.key), el("span", {}, String(t.value))]));
  const logs = (span.logs || []).map((l) => el("div", { class: "log" },
    el("div", { class: "when" }, fmtTime(l.timestamp)), ...l.fields.map(fieldView)));
  const link = obj && obj.cluster ? el("a", { class: "obj-link",
    href: "/redirect?" + new URLSearchParams({ cluster: obj.cluster, resource: obj.resource,
      namespace: obj.namespace || "", name: obj.name,
      ts: new Date(span.startTime / 1000).toISOString().replace(/\.\d+Z$/, "Z") }) },
    "open this object's own trace") : null;
  row.after(el("div", { class: "span-details" }, link,
    el("h4", {}, "Tags"), tags, logs.length ? el("h4", {}, "Logs (" + logs.length + ")") : null, ...logs));
}


/* ---- routing ------------------------------------------------------------ */

function go(url) {
  history.pushState(null, "", url);
  route();
}

function route() {
  const path = location.pathname;
  if (path.startsWith("/trace/")) return showTrace(path.slice(7));
  const p = new URLSearchParams(location.search);
  paramsToForm(p);
  if ([...p.keys()].length) return search(p);
  $("#trace-view").hidden = true;
}

$("#search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  go("/search?" + formToParams());
});
$("#lookback").addEventListener("change", () => { $("#custom-range").hidden = $("#lookback").value !== "custom"; });
window.addEventListener("popstate", route);

loadForm().then(route).catch((e) => banner("Cannot reach the query API: " + e.message));
