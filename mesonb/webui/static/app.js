// mesonb web UI: the pages of the Mesos UI, rendered from a first snapshot and then from
// the deltas the master pushes over one WebSocket (/ui/feed). Plain JS, no build step.
"use strict";

const M = (window.mesonb = {});
const S = {
  cols: {}, master: {}, log: [], readOnly: false, connected: false, version: 0,
  tables: { tasks: new Map(), agents: new Map(), frameworks: new Map(), offers: new Map(),
            roles: new Map() },
  stateCounts: {},
};
M.S = S;
const TERMINAL = new Set(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR",
  "TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"]);
M.TERMINAL = TERMINAL;
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || "";
const PANEL = (location.pathname.match(/panel\/([a-z]+)\/?$/) || [])[1] || null;

// ---- small helpers -----------------------------------------------------------------------
const esc = (v) => String(v == null ? "" : v).replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
M.esc = esc;
const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const REASONS = {
  REASON_CONTAINER_LIMITATION_MEMORY: "Exceeded its memory limit",
  REASON_CONTAINER_LIMITATION_DISK: "Exceeded its disk limit",
  REASON_COMMAND_EXECUTOR_FAILED: "Command executor failed",
  REASON_EXECUTOR_TERMINATED: "Executor terminated",
  REASON_AGENT_REMOVED: "Agent removed",
  REASON_AGENT_DISCONNECTED: "Agent disconnected",
  REASON_FRAMEWORK_REMOVED: "Framework removed",
  REASON_RECONCILIATION: "Reconciliation",
  REASON_TASK_INVALID: "Invalid task",
};
function stateText(state) {
  if (!state) return "";
  return cap(state.replace(/^TASK_/, "").toLowerCase().replace(/_/g, " "));
}
function reasonText(reason) {
  if (!reason) return "";
  return REASONS[reason] || cap(reason.replace(/^REASON_/, "").toLowerCase().replace(/_/g, " "));
}
function stateBadge(state, text) {
  const cls = "s-" + String(state || "").replace(/^TASK_/, "").toLowerCase();
  return `<span class="state ${esc(cls)}" title="${esc(state)}">${esc(text || stateText(state))}</span>`;
}
function fmtTime(ts) {
  if (ts == null || ts === "") return "";
  const d = new Date(ts * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function ago(ts) {
  if (!ts) return "";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}
function fmtMem(mb) {
  mb = Number(mb) || 0;
  if (mb >= 1024 * 1024) return (mb / 1048576).toFixed(1) + " TB";
  if (mb >= 1024) return (mb / 1024).toFixed(1) + " GB";
  return mb.toFixed(mb > 0 && mb < 10 ? 1 : 0) + " MB";  // a small container is not "0 MB"
}
const fmtNum = (v) => (Number(v) || 0).toLocaleString("en-US", { maximumFractionDigits: 2 });
const fmtRes = (name, v) => (name === "mem" || name === "disk" ? fmtMem(v) : fmtNum(v));
Object.assign(M, { stateText, reasonText, stateBadge, fmtTime, ago, fmtMem, fmtNum, fmtRes });
const shortId = (id) => (id && id.length > 14 ? id.slice(0, 8) + "…" + id.slice(-4) : id || "");
M.shortId = shortId;
const link = (href, text, title) =>
  `<a href="${esc(href)}" title="${esc(title || text)}">${esc(text)}</a>`;
M.link = link;
const agentLink = (id) => {
  const a = S.tables.agents.get(id);
  return id ? link(`#/agents/${encodeURIComponent(id)}`, a ? a.hostname : shortId(id), id) : "";
};
const frameworkLink = (id) => {
  const f = S.tables.frameworks.get(id);
  return link(`#/frameworks/${encodeURIComponent(id)}`, f ? f.name : shortId(id), id);
};
Object.assign(M, { agentLink, frameworkLink });
M.authHeaders = () => (TOKEN ? { Authorization: "Bearer " + TOKEN } : {});
M.getJSON = async (url) => {
  const r = await fetch(url, { headers: M.authHeaders() });
  const text = await r.text();
  if (!r.ok) throw new Error(`${r.status}: ${text}`);
  return JSON.parse(text);
};

// ---- the model: snapshot, then deltas ------------------------------------------------
function taskKey(r) { return r[S.cols.framework_id] + " " + r[S.cols.id]; }
function rowKey(table, r) {
  if (table === "tasks") return taskKey(r);
  if (table === "roles") return r.name;
  return r.id;
}
function countState(row, delta) {
  const st = row[S.cols.state];
  S.stateCounts[st] = (S.stateCounts[st] || 0) + delta;
}
function putRow(table, row) {
  const map = S.tables[table];
  const key = rowKey(table, row);
  if (table === "tasks") {
    const old = map.get(key);
    if (old) countState(old, -1);
    countState(row, 1);
  }
  map.set(key, row);
}
function removeRow(table, key) {
  const map = S.tables[table];
  if (table === "tasks") { const old = map.get(key); if (old) countState(old, -1); }
  map.delete(key);
}
function applySnapshot(m) {
  S.cols = {};
  m.task_columns.forEach((c, i) => { S.cols[c] = i; });
  S.master = m.master || {};
  S.log = m.log || [];
  S.readOnly = !!m.read_only;
  S.stateCounts = {};
  for (const name of Object.keys(S.tables)) {
    S.tables[name] = new Map();
    for (const row of (m.tables[name] || [])) putRow(name, row);
  }
}
function applyDelta(m) {
  if (m.master) S.master = m.master;
  if (m.log) { S.log = S.log.concat(m.log).slice(-500); }
  for (const [name, ch] of Object.entries(m.tables || {})) {
    if (!S.tables[name]) continue;
    for (const key of (ch.removed || [])) removeRow(name, key);
    for (const row of (ch.rows || [])) putRow(name, row);
  }
}
M.task = (r) => {
  const c = S.cols;
  return { id: r[c.id], name: r[c.name], state: r[c.state], framework_id: r[c.framework_id],
    agent_id: r[c.agent_id], executor_id: r[c.executor_id] || r[c.id], started: r[c.started],
    stopped: r[c.stopped], reason: r[c.reason], message: r[c.message], cpus: r[c.cpus],
    mem: r[c.mem], disk: r[c.disk], gpus: r[c.gpus], source: r[c.source] };
};

// ---- the feed ------------------------------------------------------------------------------
function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = new URL("ui/feed", document.baseURI);
  url.protocol = proto;
  if (TOKEN) url.searchParams.set("token", TOKEN);
  const ws = new WebSocket(url.href);
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "snapshot") applySnapshot(m); else applyDelta(m);
    S.version++;
    S.connected = true;
    schedule();
  };
  ws.onclose = () => {
    S.connected = false;
    showConn();
    setTimeout(connect, 1000);
  };
}

// ---- tables: sort, filter, paginate -------------------------------------------------------
// columns: [{title, key: row -> sortable value, html: row -> cell html, num: bool}]
class Table {
  constructor(opts) {
    Object.assign(this, { pageSize: 25, sort: 0, desc: false, filter: "", page: 0, get: null, every: 1000 }, opts);
    this.el = document.createElement("div");
    this.el.className = "tbl";
    if (opts.id) this.el.id = opts.id;
    this.el.innerHTML = `<div class="tbl-bar"><b>${esc(opts.title || "")}</b>
      <input type="search" placeholder="Filter…" class="filter">
      <span class="count muted"></span><span class="pages">
      <button class="prev">‹</button> <span class="page"></span> <button class="next">›</button>
      </span></div><table><thead><tr>${opts.columns.map((c, i) =>
        `<th data-i="${i}" class="${c.num ? "num" : ""}">${esc(c.title)}</th>`).join("")}
      </tr></thead><tbody></tbody></table>`;
    this.el.querySelector(".filter").addEventListener("input", (e) => {
      this.filter = e.target.value.toLowerCase(); this.page = 0; this.update(true);
    });
    this.el.querySelector(".prev").onclick = () => { this.page--; this.update(false); };
    this.el.querySelector(".next").onclick = () => { this.page++; this.update(false); };
    this.el.querySelectorAll("th").forEach((th) => (th.onclick = () => {
      const i = +th.dataset.i;
      if (this.sort === i) this.desc = !this.desc; else { this.sort = i; this.desc = false; }
      this.update(true);
    }));
    this.keys = [];
    this.lastFull = 0;
  }
  // Re-filter and re-sort: on big tables at most once a second, and never more than a
  // tenth of the time; cells always show the latest row of each key, so a change is on
  // screen at the next render.
  update(full) {
    const now = Date.now();
    // A table is big by what it filters (a task table scans every task), not by what shows.
    const scanned = this.sourceSize ? this.sourceSize() : this.total;
    if (full || scanned < 2000 || now - this.lastFull > this.every || this.total === undefined) {
      this.lastFull = now;
      let rows = this.rows();
      this.total = rows.length;
      if (this.filter) {
        const f = this.filter;
        rows = rows.filter((r) => this.columns.some((c) => {
          const v = (c.text || c.key)(r);
          return v != null && String(v).toLowerCase().includes(f);
        }));
      }
      const key = this.columns[this.sort].key;
      const dir = this.desc ? -1 : 1;
      const decorated = rows.map((r) => [key(r), r]);
      decorated.sort((a, b) => {
        const x = a[0], y = b[0];
        if (x == null && y == null) return 0;
        if (x == null) return 1;
        if (y == null) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
      this.keys = decorated.map((d) => this.keyOf(d[1]));
      this.every = Math.max(1000, 10 * (Date.now() - now));
      if (!this.get) this.byKey = new Map(decorated.map((d) => [this.keyOf(d[1]), d[1]]));
    }
    const pages = Math.max(1, Math.ceil(this.keys.length / this.pageSize));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const start = this.page * this.pageSize;
    const shown = [];
    for (const k of this.keys.slice(start, start + this.pageSize)) {
      const r = this.get ? this.get(k) : this.byKey.get(k);
      if (r) shown.push(r);
    }
    this.el.querySelector("tbody").innerHTML = shown.length ? shown.map((r) =>
      `<tr>${this.columns.map((c) => `<td class="${c.num ? "num" : ""}">${c.html ? c.html(r)
        : esc(c.key(r))}</td>`).join("")}</tr>`).join("")
      : `<tr><td colspan="${this.columns.length}" class="muted">${esc(this.empty || "None")}</td></tr>`;
    this.el.querySelector(".count").textContent = this.filter
      ? `${this.keys.length} of ${this.total}` : `${this.total}`;
    this.el.querySelector(".page").textContent = `${this.page + 1} / ${pages}`;
    this.el.querySelectorAll("th").forEach((th, i) => {
      th.classList.toggle("sorted-asc", i === this.sort && !this.desc);
      th.classList.toggle("sorted-desc", i === this.sort && this.desc);
    });
  }
}
M.Table = Table;

function taskTable(title, filter, opts) {
  const c = () => S.cols;
  return new Table(Object.assign({
    title, id: opts && opts.id, empty: `No ${title.toLowerCase()}`, sort: 4, desc: true,
    sourceSize: () => S.tables.tasks.size,
    rows: () => { const out = []; for (const r of S.tables.tasks.values()) if (filter(r)) out.push(r); return out; },
    keyOf: taskKey, get: (k) => S.tables.tasks.get(k),
    columns: [
      { title: "ID", key: (r) => r[c().id],
        html: (r) => link(`#/tasks/${encodeURIComponent(r[c().framework_id])}/${encodeURIComponent(r[c().id])}`, r[c().id]) },
      { title: "Name", key: (r) => r[c().name] },
      { title: "State", key: (r) => r[c().state], text: (r) => stateText(r[c().state]),
        html: (r) => stateBadge(r[c().state]) },
      { title: "Reason", key: (r) => reasonText(r[c().reason]) },
      { title: "Started", key: (r) => r[c().started], html: (r) => `<span title="${esc(ago(r[c().started]))}">${esc(fmtTime(r[c().started]))}</span>` },
      { title: "Stopped", key: (r) => r[c().stopped], html: (r) => esc(fmtTime(r[c().stopped])) },
      { title: "Host", key: (r) => { const a = S.tables.agents.get(r[c().agent_id]); return a ? a.hostname : r[c().agent_id]; },
        html: (r) => agentLink(r[c().agent_id]) },
      { title: "Framework", key: (r) => { const f = S.tables.frameworks.get(r[c().framework_id]); return f ? f.name : r[c().framework_id]; },
        html: (r) => frameworkLink(r[c().framework_id]) },
    ],
  }, opts || {}));
}
M.taskTable = taskTable;
const isActive = (r) => !TERMINAL.has(r[S.cols.state]);
const isOrphan = (r) => !S.tables.frameworks.has(r[S.cols.framework_id]);
Object.assign(M, { isActive, isOrphan, cap, taskKey });

const pages = {};
M.pages = pages;  // filled by pages.js and panels.js

// ---- routing and rendering -------------------------------------------------------------------
const ROUTES = [
  [/^\/?$/, "home"], [/^\/agents\/?$/, "agents"], [/^\/agents\/([^/]+)\/browse$/, "browse"],
  [/^\/agents\/([^/]+)\/file$/, "file"], [/^\/agents\/([^/]+)\/?$/, "agent"],
  [/^\/frameworks\/?$/, "frameworks"], [/^\/frameworks\/([^/]+)\/?$/, "framework"],
  [/^\/tasks\/([^/]+)\/([^/]+)\/?$/, "task"], [/^\/offers\/?$/, "offers"],
  [/^\/roles\/?$/, "roles"], [/^\/maintenance\/?$/, "maintenance"], [/^\/panels\/?$/, "panels"],
  [/^\/panels\/([a-z]+)\/?$/, "panel"],
];
let current = null;
function route() {
  if (current && current.dispose) current.dispose();
  const main = document.getElementById("main");
  const hash = PANEL ? `/panels/${PANEL}` : location.hash.replace(/^#/, "") || "/";
  const [path, qs] = hash.split("?");
  let page = null, args = [];
  for (const [re, name] of ROUTES) {
    const m = path.match(re);
    if (m) { page = name; args = m.slice(1).map(decodeURIComponent); break; }
  }
  document.querySelectorAll("#nav a[data-nav]").forEach((a) =>
    a.classList.toggle("active", page && page.startsWith(a.dataset.nav.replace(/s$/, ""))));
  if (!page || !pages[page]) {
    main.innerHTML = `<h1>Not found</h1><p>No page at <code>${esc(hash)}</code>. ${link("#/", "Home")}</p>`;
    current = null;
    return;
  }
  current = pages[page](main, args, new URLSearchParams(qs || ""));
  render();
}
let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  setTimeout(() => { pending = false; render(); }, 50);
}
function showConn() {
  const el = document.getElementById("conn");
  if (S.readOnly) { el.textContent = "history (read-only)"; el.className = "conn history"; }
  else if (S.connected) { el.textContent = "live"; el.className = "conn live"; }
  else { el.textContent = "disconnected — retrying"; el.className = "conn down"; }
}
function showLeader() {
  let el = document.getElementById("standby");
  const m = S.master;
  const standby = S.version > 0 && !S.readOnly && m.leading === false;
  if (!standby) { if (el) el.remove(); return; }
  if (!el) {
    el = document.createElement("div");
    el.id = "standby";
    el.className = "card";
    document.getElementById("main").before(el);
  }
  el.innerHTML = m.leader ? `This master is standing by; the leading master is
    <a href="//${esc(m.leader)}/">${esc(m.leader)}</a>.` : "This master is standing by; no leader is elected yet.";
}
function render() {
  showConn();
  showLeader();
  if (current && S.version > 0) current();
  document.body.dataset.version = String(S.version);
}
M.render = render;
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  if (PANEL) document.body.classList.add("panel-only");
  route();
  connect();
});
