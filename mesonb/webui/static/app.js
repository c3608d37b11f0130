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
  return mb.toFixed(0) + " MB";
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
    if (full || this.total < 2000 || now - this.lastFull > this.every || this.total === undefined) {
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

// ---- resources -----------------------------------------------------------------------
function sums(rows, field) {
  const out = { cpus: 0, gpus: 0, mem: 0, disk: 0 };
  for (const r of rows) for (const k in out) out[k] += (r[field] && r[field][k]) || 0;
  return out;
}
function resourceTable(total, used, offered) {
  const names = ["cpus", "gpus", "mem", "disk"];
  const row = (title, v) => `<tr><td>${title}</td>${names.map((n) => `<td class="num">${esc(fmtRes(n, v[n]))}</td>`).join("")}</tr>`;
  const idle = {};
  for (const n of names) idle[n] = Math.max(0, (total[n] || 0) - (used[n] || 0) - (offered[n] || 0));
  return `<table class="resources"><thead><tr><th></th><th class="num">CPUs</th><th class="num">GPUs</th>
    <th class="num">Mem</th><th class="num">Disk</th></tr></thead><tbody>
    ${row("Total", total)}${row("Allocated", used)}${row("Offered", offered)}${row("Idle", idle)}</tbody></table>`;
}
M.sums = sums;
M.resourceTable = resourceTable;

// ---- pages -----------------------------------------------------------------------------
// Each page: {mount(main, args) -> update()}; mount builds the frame once, update refreshes.
const pages = {};
M.pages = pages;

pages.home = (main) => {
  main.innerHTML = `<div class="grid"><div>
    <div class="card"><h1 id="cluster"></h1><dl class="kv" id="info"></dl></div>
    <div class="card"><h2>Agents</h2><table class="counts" id="agent-counts"></table></div>
    <div class="card"><h2>Tasks</h2><table class="counts" id="task-counts"></table></div>
    <div class="card"><h2>Resources</h2><div id="resources"></div></div>
    </div><div><h2>LOG</h2><pre class="log" id="log"></pre><div id="tables"></div></div></div>`;
  const t1 = taskTable("Active Tasks", isActive, { id: "active-tasks" });
  const t2 = taskTable("Completed Tasks", (r) => !isActive(r), { id: "completed-tasks", sort: 5 });
  const t3 = taskTable("Orphan Tasks", isOrphan, { id: "orphan-tasks" });
  const holder = main.querySelector("#tables");
  [t1, t2, t3].forEach((t) => holder.appendChild(t.el));
  let logShown = -1, orphans = 0, orphansAt = 0;
  return () => {
    const m = S.master;
    main.querySelector("#cluster").textContent = m.cluster || "mesonb";
    main.querySelector("#info").innerHTML = [
      ["Leader", m.leader || "(none)"], ["Version", `${m.version || ""} (mesonb ${m.mesonb_version || ""})`],
      ["Built", m.build_date || "—"], ["Started", fmtTime(m.start_time)],
      ["Elected", m.elected_time ? fmtTime(m.elected_time) : "not elected"], ["Master ID", m.id],
    ].map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("");
    const agents = [...S.tables.agents.values()];
    const by = (st) => agents.filter((a) => a.state === st).length;
    main.querySelector("#agent-counts").innerHTML =
      [["Activated", by("ACTIVE")], ["Deactivated", agents.length - by("ACTIVE") - by("UNREACHABLE")],
       ["Unreachable", by("UNREACHABLE")]].map(([k, v]) =>
        `<tr><td>${k}</td><td class="num" id="agents-${k.toLowerCase()}">${v}</td></tr>`).join("");
    if (Date.now() - orphansAt > 1000 || S.tables.tasks.size < 2000) {
      orphans = 0;
      for (const r of S.tables.tasks.values()) if (isOrphan(r)) orphans++;
      orphansAt = Date.now();
    }
    const states = ["STAGING", "STARTING", "RUNNING", "KILLING", "FINISHED", "KILLED", "FAILED", "LOST", "UNREACHABLE"];
    main.querySelector("#task-counts").innerHTML = states.map((s) =>
      `<tr><td>${cap(s.toLowerCase())}</td><td class="num" id="tasks-${s.toLowerCase()}">${S.stateCounts["TASK_" + s] || 0}</td></tr>`).join("") +
      `<tr><td>Orphan</td><td class="num" id="tasks-orphan">${orphans}</td></tr>` +
      (m.tasks_loading ? `<tr><td colspan="2" class="muted" id="tasks-loading">loading older tasks…</td></tr>` : "");
    const live = agents.filter((a) => a.state !== "UNREACHABLE");
    main.querySelector("#resources").innerHTML = resourceTable(sums(live, "total"), sums(live, "used"), sums(live, "offered"));
    if (logShown !== S.log.length || S.log.length >= 500) {
      const pre = main.querySelector("#log");
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = S.log.join("\n");
      if (atEnd) pre.scrollTop = pre.scrollHeight;
      logShown = S.log.length;
    }
    [t1, t2, t3].forEach((t) => t.update());
  };
};

function agentTable() {
  const res = (field, n) => (a) => (a[field] && a[field][n]) || 0;
  return new Table({
    title: "Agents", id: "agents-table", empty: "No agents",
    rows: () => [...S.tables.agents.values()], keyOf: (a) => a.id, get: (k) => S.tables.agents.get(k),
    columns: [
      { title: "ID", key: (a) => a.id, html: (a) => link(`#/agents/${encodeURIComponent(a.id)}`, shortId(a.id), a.id) },
      { title: "Host", key: (a) => a.hostname, html: (a) => agentLink(a.id) },
      { title: "State", key: (a) => a.state, text: (a) => stateText(a.state), html: (a) => stateBadge(a.state) },
      { title: "CPUs", num: true, key: res("total", "cpus"), html: (a) => `${fmtNum(res("used", "cpus")(a))} / ${fmtNum(res("total", "cpus")(a))}` },
      { title: "GPUs", num: true, key: res("total", "gpus"), html: (a) => `${fmtNum(res("used", "gpus")(a))} / ${fmtNum(res("total", "gpus")(a))}` },
      { title: "Mem", num: true, key: res("total", "mem"), html: (a) => `${fmtMem(res("used", "mem")(a))} / ${fmtMem(res("total", "mem")(a))}` },
      { title: "Disk", num: true, key: res("total", "disk"), html: (a) => `${fmtMem(res("used", "disk")(a))} / ${fmtMem(res("total", "disk")(a))}` },
      { title: "Registered", key: (a) => a.registered_time, html: (a) => esc(fmtTime(a.registered_time)) },
    ],
  });
}

pages.agents = (main) => {
  main.innerHTML = `<h1>Agents</h1>`;
  const t = agentTable();
  main.appendChild(t.el);
  return () => t.update();
};

pages.agent = (main, [id]) => {
  main.innerHTML = `<h1>Agent <span id="agent-name"></span></h1><div class="grid"><div>
    <div class="card"><dl class="kv" id="agent-info"></dl></div>
    <div class="card"><h2>Resources</h2><div id="agent-res"></div></div>
    <div class="card"><h2>Attributes</h2><dl class="kv" id="agent-attrs"></dl></div></div>
    <div><div id="agent-fws"></div><div id="agent-execs"></div><div id="agent-tasks"></div></div></div>`;
  const onAgent = (r) => r[S.cols.agent_id] === id;
  const fws = new Table({
    title: "Frameworks", empty: "No frameworks on this agent",
    rows: () => { const seen = new Map(); for (const r of S.tables.tasks.values()) if (onAgent(r) && isActive(r)) {
      const f = r[S.cols.framework_id]; seen.set(f, (seen.get(f) || 0) + 1); }
      return [...seen.entries()].map(([f, n]) => ({ id: f, n })); },
    keyOf: (x) => x.id,
    columns: [{ title: "Framework", key: (x) => x.id, html: (x) => frameworkLink(x.id) },
              { title: "Active tasks", num: true, key: (x) => x.n }],
  });
  const execs = new Table({
    title: "Executors", empty: "No executors",
    rows: () => { const seen = new Map(); for (const r of S.tables.tasks.values()) if (onAgent(r)) {
      const t = M.task(r); const k = t.framework_id + " " + t.executor_id;
      const prev = seen.get(k); if (!prev || isActive(r)) seen.set(k, { key: k, t, active: isActive(r) }); }
      return [...seen.values()]; },
    keyOf: (x) => x.key,
    columns: [
      { title: "Executor", key: (x) => x.t.executor_id },
      { title: "Framework", key: (x) => x.t.framework_id, html: (x) => frameworkLink(x.t.framework_id) },
      { title: "State", key: (x) => (x.active ? "active" : "completed") },
      { title: "Sandbox", key: () => "", html: (x) => link(sandboxHref(id, x.t.framework_id, x.t.executor_id), "Sandbox") },
    ],
  });
  const tasks = taskTable("Tasks", onAgent, { id: "agent-task-table" });
  main.querySelector("#agent-fws").appendChild(fws.el);
  main.querySelector("#agent-execs").appendChild(execs.el);
  main.querySelector("#agent-tasks").appendChild(tasks.el);
  return () => {
    const a = S.tables.agents.get(id);
    main.querySelector("#agent-name").textContent = a ? a.hostname : id;
    if (a) {
      main.querySelector("#agent-info").innerHTML = [["ID", a.id], ["Address", a.address],
        ["State", stateText(a.state)], ["Version", a.version || S.master.version], ["Registered", fmtTime(a.registered_time)],
        ["Re-registered", fmtTime(a.reregistered_time)], ["Unreachable since", fmtTime(a.unreachable_time)],
        ["Ports", a.ports]].filter(([, v]) => v).map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("");
      main.querySelector("#agent-res").innerHTML = resourceTable(a.total || {}, a.used || {}, a.offered || {});
      const attrs = Object.entries(a.attributes || {});
      main.querySelector("#agent-attrs").innerHTML = attrs.length ? attrs.map(([k, v]) =>
        `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("") : `<dd class="muted">none</dd>`;
    } else {
      main.querySelector("#agent-info").innerHTML = `<dd class="err">This agent is not known (removed?)</dd>`;
    }
    fws.update(); execs.update(); tasks.update();
  };
};

function frameworkTable(completed) {
  return new Table({
    title: completed ? "Completed Frameworks" : "Active Frameworks", empty: "No frameworks",
    rows: () => [...S.tables.frameworks.values()].filter((f) => !!f.completed === completed),
    keyOf: (f) => f.id, get: (k) => S.tables.frameworks.get(k),
    columns: [
      { title: "ID", key: (f) => f.id, html: (f) => link(`#/frameworks/${encodeURIComponent(f.id)}`, shortId(f.id), f.id) },
      { title: "Name", key: (f) => f.name, html: (f) => frameworkLink(f.id) },
      { title: "User", key: (f) => f.user },
      { title: "Roles", key: (f) => (f.roles || []).join(", ") },
      { title: "State", key: (f) => (f.completed ? "COMPLETED" : f.active ? "ACTIVE" : f.connected ? "INACTIVE" : "DISCONNECTED"),
        html: (f) => { const s = f.completed ? "COMPLETED" : f.active ? "ACTIVE" : f.connected ? "INACTIVE" : "DISCONNECTED"; return stateBadge(s); } },
      { title: "CPUs", num: true, key: (f) => (f.used && f.used.cpus) || 0, html: (f) => fmtNum((f.used || {}).cpus) },
      { title: "Mem", num: true, key: (f) => (f.used && f.used.mem) || 0, html: (f) => fmtMem((f.used || {}).mem) },
      { title: "Registered", key: (f) => f.registered_time, html: (f) => esc(fmtTime(f.registered_time)) },
    ],
  });
}

pages.frameworks = (main) => {
  main.innerHTML = `<h1>Frameworks</h1>`;
  const a = frameworkTable(false), c = frameworkTable(true);
  main.appendChild(a.el); main.appendChild(c.el);
  return () => { a.update(); c.update(); };
};

pages.framework = (main, [id]) => {
  main.innerHTML = `<h1>Framework <span id="fw-name"></span></h1><div class="grid"><div>
    <div class="card"><dl class="kv" id="fw-info"></dl></div>
    <div class="card"><h2>Resources</h2><div id="fw-res"></div></div></div><div id="fw-tables"></div></div>`;
  const mine = (r) => r[S.cols.framework_id] === id;
  const t1 = taskTable("Active Tasks", (r) => mine(r) && isActive(r));
  const t2 = taskTable("Completed Tasks", (r) => mine(r) && !isActive(r), { sort: 5 });
  const holder = main.querySelector("#fw-tables");
  holder.appendChild(t1.el); holder.appendChild(t2.el);
  return () => {
    const f = S.tables.frameworks.get(id);
    main.querySelector("#fw-name").textContent = f ? f.name : id;
    main.querySelector("#fw-info").innerHTML = f ? [["ID", f.id], ["User", f.user], ["Roles", (f.roles || []).join(", ")],
      ["Principal", f.principal], ["Hostname", f.hostname], ["Web UI", f.webui_url],
      ["Active", f.active ? "yes" : "no"], ["Connected", f.connected ? "yes" : "no"],
      ["Checkpoint", f.checkpoint ? "yes" : "no"], ["Failover timeout", f.failover_timeout ? f.failover_timeout + " s" : ""],
      ["Capabilities", (f.capabilities || []).join(", ")], ["Registered", fmtTime(f.registered_time)],
      ["Unregistered", fmtTime(f.unregistered_time)], ["Outstanding offers", f.offers]]
      .filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("")
      : `<dd class="err">This framework is not known</dd>`;
    main.querySelector("#fw-res").innerHTML = f ? resourceTable({}, f.used || {}, f.offered || {}).replace(/<tr><td>Total.*?<\/tr>|<tr><td>Idle.*?<\/tr>/g, "") : "";
    t1.update(); t2.update();
  };
};

pages.task = (main, [fw, id]) => {
  main.innerHTML = `<h1>Task <span id="task-name"></span></h1><div class="card"><dl class="kv" id="task-info"></dl></div>`;
  return () => {
    const r = S.tables.tasks.get(fw + " " + id);
    if (!r) { main.querySelector("#task-info").innerHTML = `<dd class="err">This task is not known</dd>`; return; }
    const t = M.task(r);
    main.querySelector("#task-name").textContent = t.name || t.id;
    main.querySelector("#task-info").innerHTML = [
      ["ID", esc(t.id)], ["Name", esc(t.name)], ["State", stateBadge(t.state)],
      ["Reason", esc(reasonText(t.reason))], ["Message", esc(t.message || "")],
      ["Framework", frameworkLink(t.framework_id)], ["Agent", agentLink(t.agent_id)],
      ["Executor", esc(t.executor_id)], ["Started", esc(fmtTime(t.started))], ["Stopped", esc(fmtTime(t.stopped))],
      ["Resources", esc(`cpus ${fmtNum(t.cpus)}, mem ${fmtMem(t.mem)}, disk ${fmtMem(t.disk)}, gpus ${fmtNum(t.gpus)}`)],
      ["Sandbox", link(sandboxHref(t.agent_id, t.framework_id, t.executor_id), "Browse the sandbox")],
    ].map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("");
  };
};

pages.offers = (main) => {
  main.innerHTML = `<h1>Offers</h1>`;
  const res = (n) => (o) => (o.resources && o.resources[n]) || 0;
  const t = new Table({
    title: "Outstanding Offers", id: "offers-table", empty: "No outstanding offers",
    rows: () => [...S.tables.offers.values()], keyOf: (o) => o.id, get: (k) => S.tables.offers.get(k),
    columns: [
      { title: "ID", key: (o) => o.id, html: (o) => esc(shortId(o.id)) },
      { title: "Framework", key: (o) => o.framework_id, html: (o) => frameworkLink(o.framework_id) },
      { title: "Host", key: (o) => o.hostname, html: (o) => agentLink(o.agent_id) },
      { title: "Role", key: (o) => o.role },
      { title: "CPUs", num: true, key: res("cpus"), html: (o) => fmtNum(res("cpus")(o)) },
      { title: "GPUs", num: true, key: res("gpus"), html: (o) => fmtNum(res("gpus")(o)) },
      { title: "Mem", num: true, key: res("mem"), html: (o) => fmtMem(res("mem")(o)) },
      { title: "Disk", num: true, key: res("disk"), html: (o) => fmtMem(res("disk")(o)) },
    ],
  });
  main.appendChild(t.el);
  return () => t.update();
};

pages.roles = (main) => {
  main.innerHTML = `<h1>Roles</h1>`;
  const q = (field, n) => (r) => (r[field] && r[field][n]) || 0;
  const t = new Table({
    title: "Roles", id: "roles-table", empty: "No roles",
    rows: () => [...S.tables.roles.values()], keyOf: (r) => r.name, get: (k) => S.tables.roles.get(k),
    columns: [
      { title: "Role", key: (r) => r.name },
      { title: "Weight", num: true, key: (r) => r.weight },
      { title: "Frameworks", num: true, key: (r) => (r.frameworks || []).length },
      { title: "Allocated CPUs", num: true, key: q("allocated", "cpus") },
      { title: "Allocated Mem", num: true, key: q("allocated", "mem"), html: (r) => fmtMem(q("allocated", "mem")(r)) },
      { title: "Offered CPUs", num: true, key: q("offered", "cpus") },
      { title: "Offered Mem", num: true, key: q("offered", "mem"), html: (r) => fmtMem(q("offered", "mem")(r)) },
    ],
  });
  main.appendChild(t.el);
  return () => t.update();
};

pages.maintenance = (main) => {
  main.innerHTML = `<h1>Maintenance</h1><div class="card"><p>No maintenance schedule is set
    (mesonb does not carry out Mesos maintenance calls yet). Agents that are not active:</p></div>`;
  const t = new Table({
    title: "Agents not active", empty: "Every agent is active",
    rows: () => [...S.tables.agents.values()].filter((a) => a.state !== "ACTIVE"),
    keyOf: (a) => a.id, get: (k) => S.tables.agents.get(k),
    columns: [{ title: "Host", key: (a) => a.hostname, html: (a) => agentLink(a.id) },
              { title: "State", key: (a) => a.state, html: (a) => stateBadge(a.state) },
              { title: "Since", key: (a) => a.unreachable_time, html: (a) => esc(fmtTime(a.unreachable_time)) }],
  });
  main.appendChild(t.el);
  return () => t.update();
};

// ---- sandbox browsing and tailing ---------------------------------------------------------
function sandboxHref(agent, fw, executor) {
  const path = `/frameworks/${fw}/executors/${executor}/runs/latest`;
  return `#/agents/${encodeURIComponent(agent)}/browse?path=${encodeURIComponent(path)}`;
}
M.sandboxHref = sandboxHref;
// A ``runs/latest`` path is served while the executor runs; after, its real directory
// (from the agent's state) is.
async function realSandboxPath(agent, path) {
  const m = path.match(/^\/frameworks\/([^/]+)\/executors\/([^/]+)\/runs\/latest(\/.*)?$/);
  if (!m) return null;
  const q = `agent_id=${encodeURIComponent(agent)}&framework_id=${encodeURIComponent(m[1])}` +
    `&executor_id=${encodeURIComponent(m[2])}`;
  const r = await M.getJSON(`ui/sandbox?${q}`);
  return r.directory + (m[3] || "");
}
M.realSandboxPath = realSandboxPath;
const filesUrl = (op, agent, path, extra) =>
  `ui/files/${op}?agent_id=${encodeURIComponent(agent)}&path=${encodeURIComponent(path)}${extra || ""}`;

M.filesUrl = filesUrl;
pages.browse = (main, [agent], query) => {
  const path = query.get("path") || "/";
  main.innerHTML = `<h1>Sandbox</h1><p>Agent ${agentLink(agent)} · <code id="path">${esc(path)}</code></p>
    <div id="listing" class="muted">Loading…</div>`;
  const parent = path.replace(/\/[^/]+\/?$/, "") || "/";
  M.getJSON(filesUrl("browse", agent, path)).then((entries) => {
    const rows = entries.map((e) => {
      const isDir = e.mode && e.mode[0] === "d";
      const name = e.path.split("/").pop();
      const href = isDir ? `#/agents/${encodeURIComponent(agent)}/browse?path=${encodeURIComponent(e.path)}`
        : `#/agents/${encodeURIComponent(agent)}/file?path=${encodeURIComponent(e.path)}`;
      return `<tr><td>${esc(e.mode)}</td><td>${link(href, name + (isDir ? "/" : ""))}</td>
        <td class="num">${esc(fmtNum(e.size))}</td><td>${esc(fmtTime(e.mtime))}</td></tr>`;
    }).join("");
    main.querySelector("#listing").outerHTML = `<p>${link(`#/agents/${encodeURIComponent(agent)}/browse?path=${encodeURIComponent(parent)}`, "⬑ up")}</p>
      <table id="files"><thead><tr><th>Mode</th><th>Name</th><th class="num">Size</th><th>Modified</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="4" class="muted">Empty</td></tr>'}</tbody></table>`;
  }).catch(async (e) => {
    const real = e.message.startsWith("404") ? await realSandboxPath(agent, path).catch(() => null) : null;
    if (real) {
      location.replace(`#/agents/${encodeURIComponent(agent)}/browse?path=${encodeURIComponent(real)}`);
      return;
    }
    main.querySelector("#listing").innerHTML = `<span class="err">${esc(e.message)}</span>`;
  });
  return () => {};
};

pages.file = (main, [agent], query) => {
  const path = query.get("path") || "";
  const dir = path.replace(/\/[^/]*$/, "");
  main.innerHTML = `<h1>${esc(path.split("/").pop())}</h1><p>Agent ${agentLink(agent)} ·
    ${link(`#/agents/${encodeURIComponent(agent)}/browse?path=${encodeURIComponent(dir)}`, dir)}
    · <span id="tail-state" class="muted">tailing</span></p><pre class="log tall" id="file"></pre>`;
  const pre = main.querySelector("#file");
  const enc = new TextEncoder();
  let offset = null, stopped = false, timer = null;
  const TAIL = 64 * 1024;
  async function poll() {
    if (stopped) return;
    try {
      if (offset === null) {
        const size = (await M.getJSON(filesUrl("read", agent, path, "&offset=-1"))).offset;
        offset = Math.max(0, size - TAIL);
      }
      for (;;) {
        const r = await M.getJSON(filesUrl("read", agent, path, `&offset=${offset}&length=65536`));
        if (!r.data) break;
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent += r.data;
        offset = r.offset + enc.encode(r.data).length;
        if (atEnd) pre.scrollTop = pre.scrollHeight;
        if (stopped) return;
      }
      main.querySelector("#tail-state").textContent = "tailing";
    } catch (e) {
      main.querySelector("#tail-state").innerHTML = `<span class="err">${esc(e.message)}</span>`;
    }
    timer = setTimeout(poll, 500);
  }
  poll();
  const update = () => {};
  update.dispose = () => { stopped = true; clearTimeout(timer); };
  return update;
};

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
function render() {
  showConn();
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
