// The dataset grid: a virtual scroller over all rows. Only the blocks of rows in view are fetched
// (api/d/ID/rows?block=k); sorting happens on the server, over the full data. Very tall data is
// scaled into a bounded scroll height, so the scrollbar still spans every row.
"use strict";
(function () {
  const dt = window.dt;
  const ROW_H = 28;            // px; matches .row height in app.css
  const MAX_HEIGHT = 8000000;  // px; browsers cap element heights around 16-33M px
  const CACHE_BLOCKS = 64;
  const api = "../../api/d/" + location.pathname.split("/").slice(-2)[0];
  let meta = null;
  let sort = null;             // {column, desc}
  const cache = new Map();     // "sort|block" -> rows
  const pending = new Set();
  let scheduled = false;

  const scroller = document.getElementById("scroller");
  const inner = document.getElementById("inner");
  const rowsBox = document.getElementById("rows");
  const head = document.getElementById("head");

  function problem(text) {
    const node = document.getElementById("problem");
    node.textContent = text;
    node.hidden = false;
    scroller.hidden = true;
    document.getElementById("chart-panel").hidden = true;
    document.getElementById("downloads").hidden = true;
  }

  function sortQuery() { return sort ? "&sort=" + sort.column + "&desc=" + (sort.desc ? 1 : 0) : ""; }
  function sortKey() { return sort ? sort.column + (sort.desc ? "d" : "a") : "-"; }
  function height() { return Math.min(meta.rows * ROW_H, MAX_HEIGHT); }

  // The first row shown for the current scroll position (exact when not scaled).
  function firstRow() {
    const view = scroller.clientHeight - head.offsetHeight;
    const fit = Math.max(1, Math.floor(view / ROW_H));
    const room = height() - view;
    if (room <= 0) { return 0; }
    const ratio = Math.min(1, scroller.scrollTop / room);
    return Math.max(0, Math.min(meta.rows - fit, Math.round(ratio * (meta.rows - fit))));
  }

  function fetchBlock(block) {
    const key = sortKey() + "|" + block;
    if (cache.has(key) || pending.has(key)) { return; }
    pending.add(key);
    dt.getJson(api + "/rows?block=" + block + sortQuery()).then(function (r) {
      pending.delete(key);
      if (r.status === 410) { problem(r.body.error); return; }
      if (r.status !== 200) { return; }
      cache.set(key, r.body.rows);
      while (cache.size > CACHE_BLOCKS) { cache.delete(cache.keys().next().value); }
      schedule();
    }).catch(function () { pending.delete(key); });
  }

  function paint() {
    scheduled = false;
    const first = firstRow();
    const count = Math.ceil(scroller.clientHeight / ROW_H) + 1;
    const last = Math.min(meta.rows, first + count);
    const rows = [];
    let ready = true;
    for (let i = first; i < last; i++) {
      const block = Math.floor(i / meta.block);
      const data = cache.get(sortKey() + "|" + block);
      if (!data) { fetchBlock(block); ready = false; }
      const row = dt.el("div", null, "row");
      row.setAttribute("role", "row");
      row.setAttribute("aria-rowindex", String(i + 2));
      const number = dt.el("div", dt.number(i + 1), "cell num rownum");
      number.setAttribute("role", "rowheader");
      row.appendChild(number);
      const values = data ? data[i - block * meta.block] : null;
      for (let c = 0; c < meta.columns.length; c++) {
        const text = values ? values[c] : "…";
        const cell = dt.el("div", text, "cell" + (meta.columns[c].numeric ? " num" : ""));
        cell.setAttribute("role", "gridcell");
        if (values && text.length > 12) { cell.title = text; }
        row.appendChild(cell);
      }
      rows.push(row);
    }
    rowsBox.replaceChildren.apply(rowsBox, rows);
    rowsBox.style.transform = "translateY(" + scroller.scrollTop + "px)";
    rowsBox.dataset.first = String(first);
    rowsBox.dataset.ready = ready ? "1" : "0";
    rowsBox.dataset.sort = sortKey();
  }

  function schedule() {
    if (!scheduled) { scheduled = true; requestAnimationFrame(paint); }
  }

  function setSort(column) {
    sort = sort && sort.column === column ? { column: column, desc: !sort.desc } : { column: column, desc: false };
    head.querySelectorAll("[data-column]").forEach(function (th) {
      const c = Number(th.dataset.column);
      th.setAttribute("aria-sort", sort.column === c ? (sort.desc ? "descending" : "ascending") : "none");
      th.querySelector(".arrow").textContent = sort.column === c ? (sort.desc ? " ↓" : " ↑") : "";
    });
    document.getElementById("csv").href = api + "/export.csv?" + sortQuery().slice(1);
    document.getElementById("parquet").href = api + "/export.parquet?" + sortQuery().slice(1);
    scroller.scrollTop = 0;
    summary("sorting…");
    schedule();
  }

  function summary(extra) {
    let text = dt.number(meta.rows) + " rows · " + meta.columns.length + " columns";
    if (sort) { text += " · sorted by " + meta.columns[sort.column].name + (sort.desc ? " (descending)" : " (ascending)"); }
    document.getElementById("summary").textContent = extra ? text + " · " + extra : text;
  }

  function header() {
    const corner = dt.el("div", "#", "cell num rownum");
    corner.setAttribute("role", "columnheader");
    corner.setAttribute("aria-label", "Row number");
    head.appendChild(corner);
    meta.columns.forEach(function (col, c) {
      const th = dt.el("div", null, "cell" + (col.numeric ? " num" : ""));
      th.setAttribute("role", "columnheader");
      th.setAttribute("aria-sort", "none");
      th.dataset.column = String(c);
      const button = dt.el("button", null, "sort");
      button.type = "button";
      button.title = "Sort by " + col.name;
      button.appendChild(dt.el("span", col.name, "colname"));
      button.appendChild(dt.el("span", "", "arrow"));
      button.appendChild(dt.el("span", col.type, "coltype"));
      button.addEventListener("click", function () { setSort(c); });
      th.appendChild(button);
      head.appendChild(th);
    });
    const template = "5.5rem repeat(" + meta.columns.length + ", 11rem)";
    inner.style.setProperty("--columns", template);
    inner.style.width = "calc(5.5rem + " + meta.columns.length * 11 + "rem)";
  }

  function chartPanel() {
    const kind = document.getElementById("chart-kind");
    const x = document.getElementById("chart-x");
    const y = document.getElementById("chart-y");
    meta.charts.forEach(function (k) { const o = dt.el("option", k); o.value = k; kind.appendChild(o); });
    const none = dt.el("option", "—"); none.value = ""; y.appendChild(none);
    meta.columns.forEach(function (col, c) {
      const ox = dt.el("option", col.name); ox.value = String(c); x.appendChild(ox);
      const oy = dt.el("option", col.name); oy.value = String(c); y.appendChild(oy);
    });
    const floats = meta.columns.findIndex(function (col) { return col.type === "float"; });
    const numeric = floats >= 0 ? floats : meta.columns.findIndex(function (col) { return col.numeric; });
    if (numeric >= 0) { kind.value = "hist"; x.value = String(numeric); }
    const img = document.getElementById("chart");
    const status = document.getElementById("chart-status");
    img.addEventListener("load", function () { status.textContent = ""; img.hidden = false; });
    img.addEventListener("error", function () { status.textContent = "That chart could not be drawn for these columns."; img.hidden = true; });
    document.getElementById("chart-form").addEventListener("submit", function (e) {
      e.preventDefault();
      status.textContent = "Drawing…";
      let url = api + "/chart.png?kind=" + encodeURIComponent(kind.value) + "&x=" + x.value;
      if (y.value) { url += "&y=" + y.value; }
      img.alt = kind.value + " chart of " + meta.columns[Number(x.value)].name +
        (y.value ? " and " + meta.columns[Number(y.value)].name : "");
      img.src = url;
    });
    document.getElementById("chart-panel").hidden = false;
  }

  dt.getJson(api).then(function (r) {
    if (r.status === 403) { location.replace("/w/denied"); return; }
    if (r.status !== 200) { problem(r.body.error || "This dataset cannot be shown."); return; }
    meta = r.body;
    meta.columns.forEach(function (c) { c.numeric = c.type === "int" || c.type === "float"; });
    document.title = meta.name + " · datathread";
    document.getElementById("name").textContent = meta.name;
    summary();
    header();
    chartPanel();
    document.getElementById("csv").href = api + "/export.csv";
    document.getElementById("parquet").href = api + "/export.parquet";
    document.getElementById("downloads").hidden = false;
    scroller.setAttribute("aria-rowcount", String(meta.rows + 1));
    scroller.setAttribute("aria-colcount", String(meta.columns.length + 1));
    scroller.hidden = false;
    inner.style.height = (height() + head.offsetHeight) + "px";
    scroller.addEventListener("scroll", schedule, { passive: true });
    window.addEventListener("resize", schedule);
    const observer = new MutationObserver(function () {
      if (rowsBox.dataset.ready === "1" && sort) { summary(); }
    });
    observer.observe(rowsBox, { attributes: true, attributeFilter: ["data-ready"] });
    schedule();
  }).catch(function () { problem("Could not load the dataset. Reload the page to try again."); });
})();
