// The pages of the Mesos UI: home, agents, frameworks, tasks, offers, roles, maintenance,
// and sandbox browsing with a live tail. They render from the model app.js keeps.
"use strict";
(function () {
const M = window.mesonb;
const { S, esc, link, cap, stateText, reasonText, stateBadge, fmtTime, ago, fmtMem, fmtNum,
  fmtRes, shortId, agentLink, frameworkLink, Table, taskTable, isActive, isOrphan } = M;

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
Object.assign(M, { sums, resourceTable });

// ---- pages -----------------------------------------------------------------------------
// Each page: (main, args, query) -> update(); it builds its frame once, update refreshes.
const pages = M.pages;

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
      ["Built", m.build_time ? fmtTime(m.build_time) : "—"], ["Started", fmtTime(m.start_time)],
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
      pre.textContent = S.log.length ? S.log.join("\n")
        : "(no lines yet: the master logs at INFO and above under mesonb.master, when its process logs them)";
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

// The maintenance page: the schedule and each scheduled machine's mode and the frameworks'
// answers to its inverse offers, read from the master's /master/maintenance/{schedule,status}
// when the page opens and every 3 s while it shows; then the agents that are not active.
pages.maintenance = (main) => {
  main.innerHTML = `<h1>Maintenance</h1>
    <div class="card"><h2>Schedule</h2><div id="maint-schedule">Loading…</div></div>
    <div class="card"><h2>Machines</h2><div id="maint-machines"></div></div>`;
  const ns = (t) => (t && t.nanoseconds !== undefined ? Number(t.nanoseconds) / 1e9 : null);
  const machine = (m) => esc([m.hostname, m.ip].filter(Boolean).join(" / "));
  const dur = (s) => (s === null ? "—" : s >= 3600 ? fmtNum(s / 3600) + " h" : fmtNum(s) + " s");
  const show = (schedule, status) => {
    const windows = schedule.windows || [];
    main.querySelector("#maint-schedule").innerHTML = windows.length ? `<table id="maint-windows">
      <thead><tr><th>Window</th><th>Machines</th><th>Starts</th><th>Duration</th></tr></thead>
      <tbody>${windows.map((w, i) => `<tr><td>${i + 1}</td>
        <td>${(w.machine_ids || []).map(machine).join("<br>")}</td>
        <td>${esc(fmtTime(ns(w.unavailability.start)))}</td>
        <td>${esc(dur(ns(w.unavailability.duration)))}</td></tr>`).join("")}</tbody></table>`
      : `<p class="muted">No maintenance is scheduled.</p>`;
    const rows = [
      ...(status.draining_machines || []).map((d) => [d.id, "Draining", d.statuses || []]),
      ...(status.down_machines || []).map((m) => [m, "Down", []])];
    const answers = (list) => list.map((a) => `${frameworkLink(a.framework_id.value)}:
      <span class="answer">${esc(a.status)}</span>`).join("<br>") || "—";
    main.querySelector("#maint-machines").innerHTML = rows.length ? `<table id="maint-status">
      <thead><tr><th>Machine</th><th>Mode</th><th>Inverse offer answers</th></tr></thead>
      <tbody>${rows.map(([m, mode, list]) => `<tr><td>${machine(m)}</td>
        <td class="mode">${mode}</td><td>${answers(list)}</td></tr>`).join("")}</tbody></table>`
      : `<p class="muted">Every machine is up.</p>`;
  };
  let last = 0;
  const refresh = async () => {
    if (!S.version) return;  // the feed's snapshot first: it says whether this is a history
    if (S.readOnly) {
      main.querySelector("#maint-schedule").textContent = "Not recorded in the history.";
      return;
    }
    last = Date.now();
    try {
      show(await M.getJSON("master/maintenance/schedule"), await M.getJSON("master/maintenance/status"));
    } catch (e) {
      main.querySelector("#maint-schedule").innerHTML = `<p class="err">${esc(String(e))}</p>`;
    }
  };
  const timer = setInterval(() => (main.isConnected && main.contains(t.el) ? refresh()
    : clearInterval(timer)), 3000);
  const t = new Table({
    title: "Agents not active", empty: "Every agent is active",
    rows: () => [...S.tables.agents.values()].filter((a) => a.state !== "ACTIVE"),
    keyOf: (a) => a.id, get: (k) => S.tables.agents.get(k),
    columns: [{ title: "Host", key: (a) => a.hostname, html: (a) => agentLink(a.id) },
              { title: "State", key: (a) => a.state, html: (a) => stateBadge(a.state) },
              { title: "Since", key: (a) => a.unreachable_time, html: (a) => esc(fmtTime(a.unreachable_time)) }],
  });
  main.appendChild(t.el);
  refresh();
  return () => { t.update(); if (Date.now() - last > 3000) refresh(); };
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

})();
