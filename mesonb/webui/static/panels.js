// Panels beyond Mesos; each is also a page of its own at /panel/<name> (for a notebook or
// JupyterLab to embed). They render from the same pushed model as the other pages.
"use strict";
(function () {
  const M = window.mesonb, S = M.S, esc = M.esc;
  const PANELS = {};
  M.panels = PANELS;
  const FAILED = new Set(["TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE",
    "TASK_GONE_BY_OPERATOR"]);
  const PALETTE = ["#1e88e5", "#43a047", "#8e24aa", "#fb8c00", "#00897b", "#6d4c41", "#3949ab",
    "#c0ca33", "#d81b60", "#546e7a"];
  function colour(id) {
    let h = 0;
    for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) | 0;
    return PALETTE[Math.abs(h) % PALETTE.length];
  }
  const col = (r, name) => r[S.cols[name]];
  // At most one run per ``ms``; a call inside the interval runs at its end (never lost).
  const throttled = (fn, ms) => {
    let last = 0, timer = null;
    const run = () => { timer = null; last = Date.now(); fn(); };
    const call = () => {
      if (timer) return;
      const wait = last + ms - Date.now();
      if (wait <= 0) run(); else timer = setTimeout(run, wait);
    };
    call.dispose = () => clearTimeout(timer);
    return call;
  };
  function bar(parts, total) {
    return `<div class="bar" title="${esc(parts.map((p) => p.title).join(", "))}">${parts.map((p) =>
      `<span class="${p.cls}" style="width:${total > 0 ? Math.min(100, (100 * p.value) / total).toFixed(1) : 0}%"></span>`).join("")}</div>`;
  }

  // ---- task stream: a timeline of tasks per agent, coloured by framework -------------------
  PANELS.tasks = { title: "Task stream", about: "tasks per agent over time, coloured by framework, failures marked",
    mount(el) {
      el.innerHTML = `<p class="muted">Tasks of <select id="ts-window"><option value="0" selected>the last
        5 minutes, fitted</option><option value="60">the last minute</option><option value="300">the last
        5 minutes</option><option value="1800">the last 30 minutes</option></select>; bars run from
        start to stop (or now), ✕ marks a failure.</p><div id="ts-svg"></div><div id="ts-legend"></div>`;
      const sel = el.querySelector("#ts-window");
      const draw = () => {
        const now = Date.now() / 1000;
        let span = +sel.value || 300, from = now - span;
        if (+sel.value === 0) {  // fit the window to the tasks in it
          let first = now;
          for (const r of S.tables.tasks.values()) {
            const start = col(r, "started"), stop = col(r, "stopped");
            if (start != null && (stop == null || stop >= from) && start < first) first = start;
          }
          from = Math.max(from, first - Math.max(1, (now - first) * 0.05));
          span = Math.max(1, now - from);
        }
        const lanes = new Map(), shown = [];
        for (const r of S.tables.tasks.values()) {
          const start = col(r, "started"), stop = col(r, "stopped");
          if (start == null || (stop != null && stop < from) || shown.length >= 5000) continue;
          shown.push(r);
          const a = col(r, "agent_id");
          lanes.set(a, (lanes.get(a) || 0) + 1);
        }
        const agents = [...lanes.keys()].sort((x, y) => {
          const ax = S.tables.agents.get(x), ay = S.tables.agents.get(y);
          return String(ax ? ax.hostname + x : x).localeCompare(String(ay ? ay.hostname + y : y));
        }).slice(0, 40);
        const lane = new Map(agents.map((a, i) => [a, i]));
        const W = 1000, L = 150, H = 16, height = Math.max(1, agents.length) * H + 20;
        const x = (t) => L + ((Math.max(from, t) - from) / span) * (W - L - 10);
        const parts = [`<svg viewBox="0 0 ${W} ${height}" width="100%" role="img" aria-label="task stream">`];
        agents.forEach((a, i) => {
          const ag = S.tables.agents.get(a);
          parts.push(`<text x="4" y="${i * H + 12}">${esc(ag ? ag.hostname + " " + M.shortId(a).slice(-6) : M.shortId(a))}</text>`);
        });
        const frameworks = new Set();
        for (const r of shown) {
          const i = lane.get(col(r, "agent_id"));
          if (i === undefined) continue;
          const fw = col(r, "framework_id"); frameworks.add(fw);
          const x0 = x(col(r, "started")), x1 = Math.max(x0 + 2, x(col(r, "stopped") ?? now));
          const failed = FAILED.has(col(r, "state"));
          parts.push(`<rect class="task-bar${failed ? " failed" : ""}" x="${x0.toFixed(1)}" y="${i * H + 3}" width="${(x1 - x0).toFixed(1)}" height="${H - 6}"
            fill="${colour(fw)}" ${failed ? 'stroke="#c62828" stroke-width="1.5"' : ""}><title>${esc(col(r, "id"))}: ${esc(M.stateText(col(r, "state")))}</title></rect>`);
          if (failed) parts.push(`<text x="${(x1 + 1).toFixed(1)}" y="${i * H + 12}" style="fill:#c62828">✕</text>`);
        }
        parts.push(`<text x="${L}" y="${height - 4}">${esc(M.fmtTime(from))}</text><text x="${W - 120}" y="${height - 4}">now</text></svg>`);
        el.querySelector("#ts-svg").innerHTML = agents.length ? parts.join("") : `<p class="muted">No tasks in this window.</p>`;
        el.querySelector("#ts-legend").innerHTML = [...frameworks].map((f) =>
          `<span style="color:${colour(f)}">■</span> ${M.frameworkLink(f)}`).join(" &nbsp; ");
      };
      sel.onchange = draw;
      return throttled(draw, 500);
    } };

  // ---- memory and CPU per agent: measured vs allocated vs total --------------------------------
  PANELS.usage = { title: "Memory and CPU per agent", about: "used (measured by the agent) vs allocated vs total",
    mount(el) {
      const usage = new Map();
      const res = (a, field, n) => (a[field] && a[field][n]) || 0;
      const cell = (a, n, fmt) => {
        const u = usage.get(a.id), total = res(a, "total", n), alloc = res(a, "used", n);
        const used = u ? u[n] : null;
        return `${bar([{ cls: "alloc", value: alloc, title: `allocated ${fmt(alloc)}` },
          { cls: "used", value: used || 0, title: `used ${used == null ? "?" : fmt(used)}` }], total)}
          <small>${used == null ? "…" : esc(fmt(used))} / ${esc(fmt(alloc))} / ${esc(fmt(total))}</small>`;
      };
      const table = new M.Table({
        title: "Agents (used / allocated / total)", id: "usage-table", empty: "No agents", pageSize: 15,
        rows: () => [...S.tables.agents.values()].filter((a) => a.state !== "UNREACHABLE"),
        keyOf: (a) => a.id, get: (k) => S.tables.agents.get(k),
        columns: [
          { title: "Host", key: (a) => a.hostname, html: (a) => M.agentLink(a.id) },
          { title: "CPUs", key: (a) => res(a, "used", "cpus"), html: (a) => cell(a, "cpus", M.fmtNum) },
          { title: "Mem", key: (a) => res(a, "used", "mem"), html: (a) => cell(a, "mem", M.fmtMem) },
        ],
      });
      el.appendChild(table.el);
      let stopped = false, timer = null;
      async function measure() {
        if (stopped) return;
        const page = table.keys.slice(table.page * table.pageSize, (table.page + 1) * table.pageSize);
        await Promise.all(page.map(async (id) => {
          try {
            const m = await M.getJSON(`ui/agent/metrics/snapshot?agent_id=${encodeURIComponent(id)}`);
            usage.set(id, { cpus: m["slave/cpus_usage"] || 0, mem: m["slave/mem_usage"] || 0 });
          } catch (e) { /* an agent that does not answer keeps its last figures */ }
        }));
        table.update(false);
        timer = setTimeout(measure, 2000);
      }
      const update = () => table.update();
      setTimeout(measure, 0);
      update.dispose = () => { stopped = true; clearTimeout(timer); };
      return update;
    } };

  // ---- pending work with why-not reasons -------------------------------------------------------
  const PHRASES = {
    offered: "offered", nothing_available: "had nothing free", suppressed: "suppressed by the framework",
    below_min_allocatable: "less free than the minimum offer", filtered: "hidden by refuse_seconds filters",
    lost_to_lower_share: "went to a lower DRF share first",
    quota_limit: "held back by a role's quota limit",
  };
  PANELS.pending = { title: "Pending work", about: "frameworks waiting for resources, and why the last allocation did not offer them more",
    mount(el) {
      el.innerHTML = `<div class="card" id="pending-summary"></div><div id="pending-frameworks"></div>`;
      return throttled(() => {
        const w = S.master.why_not || {};
        const staging = new Map();
        for (const r of S.tables.tasks.values()) if (col(r, "state") === "TASK_STAGING") {
          const f = col(r, "framework_id"); staging.set(f, (staging.get(f) || 0) + 1);
        }
        el.querySelector("#pending-summary").innerHTML = `Last allocation run: ${esc(w.agents_considered || 0)} agents,
          ${esc(w.frameworks_considered || 0)} frameworks, ${esc(w.offers || 0)} offers made,
          ${esc(w.agents_unoffered || 0)} agents with free resources not offered.`;
        const rows = Object.entries(w.frameworks || {}).map(([fid, counts]) => {
          const reasons = Object.entries(counts).filter(([k, n]) => k !== "offered" && n > 0).sort((a, b) => b[1] - a[1]);
          const why = reasons.length ? reasons.map(([k, n]) => `${n} agent${n === 1 ? "" : "s"} ${PHRASES[k] || k}`).join("; ") : "—";
          return `<tr><td>${M.frameworkLink(fid)}</td><td class="num">${esc(counts.offered || 0)}</td>
            <td class="num">${esc(staging.get(fid) || 0)}</td><td class="why">${esc(why)}</td></tr>`;
        }).join("");
        el.querySelector("#pending-frameworks").innerHTML = `<table id="pending-table"><thead><tr><th>Framework</th>
          <th class="num">Agents offered</th><th class="num">Tasks staging</th><th>Why not more</th></tr></thead>
          <tbody>${rows || '<tr><td colspan="4" class="muted">No framework took part in an allocation yet</td></tr>'}</tbody></table>`;
      }, 500);
    } };

  // ---- DRF shares per role and framework -----------------------------------------------------
  PANELS.shares = { title: "DRF shares", about: "dominant shares per role and framework",
    mount(el) {
      el.innerHTML = `<h2>Roles</h2><div id="shares-roles"></div><h2>Frameworks</h2><div id="shares-frameworks"></div>`;
      const rowsOf = (items) => items.length ? `<table><tbody>${items.map(([name, share, extra]) =>
        `<tr><td>${name}</td><td style="width:50%">${bar([{ cls: "used", value: share, title: (share * 100).toFixed(1) + "%" }], 1)}</td>
        <td class="num">${(share * 100).toFixed(1)}%</td><td class="muted">${esc(extra || "")}</td></tr>`).join("")}</tbody></table>`
        : `<p class="muted">None yet</p>`;
      return throttled(() => {
        const totals = M.sums([...S.tables.agents.values()].filter((a) => a.state !== "UNREACHABLE"), "total");
        const dominant = (used) => {
          let best = 0, which = "";
          for (const n of ["cpus", "mem", "disk", "gpus"]) {
            const s = totals[n] > 0 ? ((used || {})[n] || 0) / totals[n] : 0;
            if (s > best) { best = s; which = n; }
          }
          return [best, which];
        };
        const roleShares = Object.entries((S.master.why_not || {}).role_shares || {});
        const roles = roleShares.length ? roleShares.map(([r, s]) => [esc(r), s, "weight " + ((S.tables.roles.get(r) || {}).weight ?? 1)])
          : [...S.tables.roles.values()].map((r) => { const [s, n] = dominant(r.allocated); return [esc(r.name), s, n]; });
        roles.sort((a, b) => b[1] - a[1]);
        const fws = [...S.tables.frameworks.values()].filter((f) => !f.completed).map((f) => {
          const [s, n] = dominant(f.used); return [M.frameworkLink(f.id), s, n ? `by ${n}` : ""];
        }).sort((a, b) => b[1] - a[1]);
        el.querySelector("#shares-roles").innerHTML = rowsOf(roles);
        el.querySelector("#shares-frameworks").innerHTML = rowsOf(fws);
      }, 500);
    } };

  // ---- recent failures, with their reasons and the tail of their stderr --------------------------
  PANELS.failures = { title: "Recent failures", about: "failed tasks, their reasons and the end of their stderr",
    mount(el) {
      el.innerHTML = `<div id="failures-list"></div>`;
      const tails = new Map();
      async function tail(t) {
        const key = t.framework_id + " " + t.id;
        if (tails.has(key)) return;
        tails.set(key, "…");
        const base = `/frameworks/${t.framework_id}/executors/${t.executor_id}/runs/latest`;
        const read = async (path) => {
          const size = (await M.getJSON(M.filesUrl("read", t.agent_id, path, "&offset=-1"))).offset;
          const from = Math.max(0, size - 2048);
          return (await M.getJSON(M.filesUrl("read", t.agent_id, path, `&offset=${from}&length=2048`))).data;
        };
        try {  // the executor of a failed task has often ended: ask where its sandbox is
          const real = await M.realSandboxPath(t.agent_id, base);
          tails.set(key, await read(real + "/stderr"));
        } catch (e) { tails.set(key, `(stderr not available: ${e.message})`); }
        draw();
      }
      const draw = () => {
        const failed = [];
        for (const r of S.tables.tasks.values()) if (FAILED.has(col(r, "state"))) failed.push(r);
        failed.sort((a, b) => (col(b, "stopped") || 0) - (col(a, "stopped") || 0));
        const shown = failed.slice(0, 15).map(M.task);
        el.querySelector("#failures-list").innerHTML = shown.length ? shown.map((t) => {
          const text = tails.get(t.framework_id + " " + t.id);
          return `<div class="card failure"><b>${M.link(`#/tasks/${encodeURIComponent(t.framework_id)}/${encodeURIComponent(t.id)}`, t.id)}</b>
            ${M.stateBadge(t.state)} <b>${esc(M.reasonText(t.reason) || "no reason given")}</b>
            <span class="muted">${esc(M.fmtTime(t.stopped))} on</span> ${M.agentLink(t.agent_id)} · ${M.frameworkLink(t.framework_id)}
            ${t.message ? `<div>${esc(t.message)}</div>` : ""}
            <pre class="log stderr" style="height:auto;max-height:160px">${esc(text == null ? "…" : text || "(stderr is empty)")}</pre></div>`;
        }).join("") : `<p class="muted">No failed tasks.</p>`;
        shown.forEach(tail);
      };
      return throttled(draw, 500);
    } };

  // ---- the panels page and the standalone panel page ---------------------------------------------
  M.pages.panels = (main) => {
    main.innerHTML = `<h1>Panels</h1><ul>${Object.entries(PANELS).map(([name, p]) =>
      `<li>${M.link(`#/panels/${name}`, p.title)} — ${esc(p.about)}
       (<a href="panel/${name}" target="_blank">standalone</a>)</li>`).join("")}</ul>`;
    return () => {};
  };
  M.pages.panel = (main, [name]) => {
    const p = PANELS[name];
    if (!p) { main.innerHTML = `<h1>No panel ${esc(name)}</h1>`; return () => {}; }
    main.innerHTML = `<h1>${esc(p.title)}</h1><div id="panel-${esc(name)}" class="panel"></div>`;
    return p.mount(main.querySelector(".panel"));
  };
})();
