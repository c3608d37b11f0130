// Panels beyond Mesos; each is also a page of its own at /panel/<name>.
"use strict";
(function () {
  const M = window.mesonb, S = M.S, esc = M.esc;
  const PANELS = {};
  M.panels = PANELS;
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
