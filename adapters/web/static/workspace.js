// The workspace page: the listing from api/files, then live updates from api/events (SSE).
"use strict";
(function () {
  const dt = window.dt;
  const STATES = { working: "Running…", done: "Done", failed: "Failed", stopped: "Stopped" };

  function problem(text) {
    const node = document.getElementById("problem");
    node.textContent = text;
    node.hidden = false;
  }

  function openTable(name, button) {
    button.disabled = true;
    button.textContent = "Opening…";
    fetch("api/open-table?path=" + encodeURIComponent(name), { method: "POST", credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (r) {
        if (r.ok) { location.assign("d/" + encodeURIComponent(r.body.dataset) + "/"); return; }
        button.textContent = "Not a table";
      })
      .catch(function () { button.textContent = "Failed"; });
  }

  function fileRow(f) {
    const tr = dt.el("tr");
    tr.dataset.name = f.name;
    const name = dt.el("td", null, "name");
    const link = dt.el("a", f.name);
    link.href = dt.fileUrl(f.name);
    link.setAttribute("download", "");
    name.appendChild(link);
    if (f.image) {
      const img = dt.el("img", null, "thumb");
      img.src = dt.fileUrl(f.name) + "?inline=1";
      img.alt = "Preview of " + f.name;
      img.loading = "lazy";
      name.appendChild(img);
    }
    tr.appendChild(name);
    const type = dt.el("td", f.type, "type");
    type.dataset.label = "Type";
    tr.appendChild(type);
    const size = dt.el("td", f.size_text, "num size");
    size.title = dt.number(f.size) + " bytes";
    size.dataset.label = "Size";
    tr.appendChild(size);
    const modified = dt.el("td", new Date(f.modified).toLocaleString(), "modified");
    modified.dataset.label = "Modified";
    tr.appendChild(modified);
    const open = dt.el("td", null, "open");
    if (f.dataset) {
      const a = dt.el("a", "Open grid");
      a.href = "d/" + encodeURIComponent(f.dataset) + "/";
      open.appendChild(a);
    } else if (f.table) {
      const b = dt.el("button", "Open grid");
      b.type = "button";
      b.addEventListener("click", function () { openTable(f.name, b); });
      open.appendChild(b);
    }
    tr.appendChild(open);
    return tr;
  }

  function renderTurn(turn) {
    const section = document.getElementById("turn");
    if (!turn) { section.hidden = true; return; }
    section.hidden = false;
    const state = document.getElementById("turn-state");
    state.textContent = STATES[turn.state] || turn.state;
    state.dataset.state = turn.state;
    const steps = document.getElementById("steps");
    steps.replaceChildren.apply(steps, turn.steps.map(function (s) { return dt.el("li", s); }));
  }

  function render(listing) {
    const body = document.querySelector("#files tbody");
    body.replaceChildren.apply(body, listing.files.map(fileRow));
    document.getElementById("files-empty").hidden = listing.files.length > 0;
    document.getElementById("files").hidden = listing.files.length === 0;
    document.getElementById("files-summary").textContent = "(" + listing.files.length + ")";
    const list = document.getElementById("datasets");
    list.replaceChildren.apply(list, listing.datasets.map(function (d) {
      const li = dt.el("li");
      const a = dt.el("a", d.name);
      a.href = "d/" + encodeURIComponent(d.id) + "/";
      li.appendChild(a);
      li.appendChild(dt.el("span", " · " + dt.number(d.rows) + " rows × " + d.columns + " columns", "muted"));
      return li;
    }));
    document.getElementById("datasets-empty").hidden = listing.datasets.length > 0;
    renderTurn(listing.turn);
  }

  dt.getJson("api/files").then(function (r) {
    if (r.status !== 200) { location.replace("/w/denied"); return; }
    render(r.body);
    const live = document.getElementById("live");
    const source = new EventSource("api/events");
    source.addEventListener("open", function () { live.textContent = "live"; });
    source.addEventListener("listing", function (e) { render(JSON.parse(e.data)); });
    source.addEventListener("turn", function (e) { renderTurn(JSON.parse(e.data)); });
    source.addEventListener("denied", function () {
      source.close();
      live.textContent = "";
      problem("This session has ended (the link expired or was revoked). Type workspace in the conversation for a new link.");
    });
    source.addEventListener("error", function () { live.textContent = "reconnecting…"; });
  }).catch(function () { problem("Could not load the workspace. Reload the page to try again."); });
})();
