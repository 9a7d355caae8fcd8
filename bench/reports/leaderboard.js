// Inlined into leaderboard.html by bench/reports/page.py: sorting, filters and drill-downs.
// Sorting and filtering act on the DOM rows themselves (reordered, or hidden), so what is seen is
// what a test reads.  Drill-down charts are drawn on demand from the JSON in #bench-data.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("bench-data").textContent);
  document.body.classList.add("js");

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);

  // ---- sorting -------------------------------------------------------------------------------

  // The value a cell sorts by; null (missing, "—") sorts last in both directions.
  function sortKey(td, numeric) {
    if (numeric) {
      const v = td.dataset.v;
      return v === undefined || v === "" ? null : parseFloat(v);
    }
    const t = td.textContent.trim();
    return t === "" || t === "—" ? null : t.toLowerCase();
  }

  // First click on a header: ascending; a second click on the same header: descending; and so on.
  function sortBy(th) {
    const table = th.closest("table");
    const tbody = table.tBodies[0];
    const col = th.cellIndex;
    const numeric = th.dataset.type === "num";
    const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    table.querySelectorAll("th[aria-sort]").forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    const keyed = Array.from(tbody.rows, (tr, i) => ({tr, i, k: sortKey(tr.cells[col], numeric)}));
    keyed.sort((a, b) => {
      if (a.k === null || b.k === null) return a.k === null ? (b.k === null ? a.i - b.i : 1) : -1;
      const c = numeric ? a.k - b.k : a.k.localeCompare(b.k);
      return c !== 0 ? dir * c : a.i - b.i; // stable: ties keep their current order
    });
    keyed.forEach((o) => tbody.appendChild(o.tr));
  }

  document.querySelectorAll("table.lb thead th").forEach((th) => {
    th.addEventListener("click", () => sortBy(th));
  });

  // ---- filters -------------------------------------------------------------------------------

  const taskSel = document.getElementById("task-filter");
  const modelBox = document.getElementById("model-filter");

  function applyFilters() {
    const task = taskSel.value;
    const q = modelBox.value.trim().toLowerCase();
    const match = (name) => q === "" || name.toLowerCase().includes(q);
    document.querySelectorAll("section.board").forEach((sec) => {
      sec.hidden = task !== "" && sec.dataset.task !== task;
      sec.querySelectorAll("tbody tr").forEach((tr) => { tr.hidden = !match(tr.dataset.model); });
      sec.querySelectorAll("svg.pareto [data-model]").forEach((el) => {
        el.classList.toggle("dim", !match(el.dataset.model));
      });
    });
  }
  taskSel.addEventListener("change", applyFilters);
  modelBox.addEventListener("input", applyFilters);

  // ---- charts --------------------------------------------------------------------------------

  const COLORS = ["#1f77b4", "#e8710a", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf"];
  const color = (i) => (i < COLORS.length ? COLORS[i] : `hsl(${(i * 137.5) % 360},60%,45%)`);
  const fmt = (v) => (Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(1) : +v.toFixed(3));

  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * step; t += step) out.push(+t.toFixed(12));
    return out;
  }

  // A line chart: series [{name, x: [...], y: [...]}] (null y values break the line).
  function lineChart(title, xlabel, ylabel, series, yFixed, legend = true) {
    const W = 360, H = 240, L = 52, R = 12, T = 22, B = 36;
    const xs = series.flatMap((s) => s.x), ys = series.flatMap((s) => s.y.filter((v) => v !== null));
    if (!ys.length) return "";
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = yFixed || [Math.min(...ys), Math.max(...ys)];
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    if (!yFixed) { const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad; } // curves off the frame
    const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    let s = `<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">`;
    s += `<text x="${W / 2}" y="14" text-anchor="middle" class="axis">${esc(title)}</text>`;
    s += `<rect class="plot" x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}"/>`;
    ticks(x0, x1, 6).forEach((t) => {
      s += `<line class="grid" x1="${px(t)}" x2="${px(t)}" y1="${T}" y2="${H - B}"/>`;
      s += `<text class="tick" x="${px(t)}" y="${H - B + 13}" text-anchor="middle">${fmt(t)}</text>`;
    });
    ticks(y0, y1, 5).forEach((t) => {
      s += `<line class="grid" x1="${L}" x2="${W - R}" y1="${py(t)}" y2="${py(t)}"/>`;
      s += `<text class="tick" x="${L - 5}" y="${py(t) + 4}" text-anchor="end">${fmt(t)}</text>`;
    });
    s += `<text class="axis" x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${esc(xlabel)}</text>`;
    s += `<text class="axis" transform="translate(12 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(ylabel)}</text>`;
    series.forEach((ser, k) => {
      let d = "", pen = "M";
      ser.x.forEach((x, i) => {
        const y = ser.y[i];
        if (y === null) { pen = "M"; return; }
        d += `${pen}${px(x).toFixed(1)} ${py(y).toFixed(1)} `;
        pen = "L";
      });
      s += `<path d="${d}" fill="none" stroke="${color(k)}" stroke-width="1.5"><title>${esc(ser.name)}</title></path>`;
    });
    if (legend && series.length > 1 && series.length <= 4) {
      series.forEach((ser, k) => {
        s += `<text x="${L + 8}" y="${T + 14 + 13 * k}" style="fill:${color(k)}">${esc(ser.name)}</text>`;
      });
    }
    return s + "</svg>";
  }

  function trainingCharts(d) {
    const h = d.history;
    if (!h) return "";
    let out = lineChart("training loss", "epoch", "train loss", [{name: "train loss", x: h.e, y: h.l}]);
    const acc = [];
    if (h.a.some((v) => v !== null)) acc.push({name: "train acc", x: h.e, y: h.a});
    if (h.v.some((v) => v !== null)) acc.push({name: `val ${d.primary}`, x: h.e, y: h.v});
    if (acc.length) out += lineChart(acc.length > 1 ? "accuracy and validation" : acc[0].name, "epoch",
      acc.map((a) => a.name).join(", "), acc);
    return out;
  }

  function prCharts(pr) {
    if (!pr) return "";
    const series = pr.c.map(([name, ap, p]) => ({name: `${name} (AP ${ap === null ? "—" : ap.toFixed(3)})`, x: pr.r, y: p}));
    const legend = series.slice(0, 30).map((s, k) => `<li style="color:${color(k)}">${esc(s.name)}</li>`).join("");
    const more = series.length > 30 ? `<li>… ${series.length - 30} more</li>` : "";
    return `<figure>${lineChart("precision-recall (VOC, per class)", "recall", "precision", series, [0, 1], false)}` +
      `<ul class="legend-list">${legend}${more}</ul></figure>`;
  }

  // A count that fits a 28 px cell: 950, 3.2k, 32k, 1.2M.
  const compact = (c) => (c < 1000 ? String(c) : c < 1e4 ? (c / 1e3).toFixed(1) + "k" : c < 1e6
    ? Math.round(c / 1e3) + "k" : (c / 1e6).toFixed(1) + "M");

  // Row-normalised heat map (rows = ground truth); counts written in the cells up to 20 classes.
  function confusionChart(cm) {
    if (!cm) return "";
    const m = cm.m, k = m.length, cell = Math.max(4, Math.min(28, Math.floor(360 / k))), L = 80, T = 24;
    const W = Math.max(L + k * cell + 10, 260), H = T + k * cell + 70;
    let s = `<svg class="chart cm" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">`;
    s += `<text x="${W / 2}" y="14" text-anchor="middle" class="axis">confusion matrix (row-normalised)</text>`;
    m.forEach((row, i) => {
      const total = row.reduce((a, b) => a + b, 0);
      row.forEach((c, j) => {
        const f = total ? c / total : 0;
        s += `<rect x="${L + j * cell}" y="${T + i * cell}" width="${cell}" height="${cell}" ` +
          `fill="rgba(31,119,180,${f.toFixed(3)})" stroke="#eee"><title>${esc(cm.n[i])} → ${esc(cm.n[j])}: ${c}</title></rect>`;
        if (k <= 20) {
          s += `<text x="${L + j * cell + cell / 2}" y="${T + i * cell + cell / 2 + 4}" text-anchor="middle" ` +
            `style="fill:${f > 0.5 ? "#fff" : "#333"};font-size:9px">${compact(c)}</text>`;
        }
      });
      if (k <= 30) s += `<text class="tick" x="${L - 4}" y="${T + i * cell + cell / 2 + 4}" text-anchor="end">${esc(cm.n[i])}</text>`;
    });
    if (k <= 30) {
      cm.n.forEach((name, j) => {
        const x = L + j * cell + cell / 2, y = T + k * cell + 6;
        s += `<text class="tick" transform="translate(${x} ${y}) rotate(60)">${esc(name)}</text>`;
      });
    }
    s += `<text class="axis" x="${L + (k * cell) / 2}" y="${H - 4}" text-anchor="middle">predicted</text>`;
    return s + "</svg>";
  }

  // ---- drill-down ----------------------------------------------------------------------------

  function openDrill(tr) {
    const sec = tr.closest("section.board");
    const panel = sec.querySelector(".drill");
    const wasOpen = tr.classList.contains("selected");
    sec.querySelectorAll("tbody tr.selected").forEach((r) => r.classList.remove("selected"));
    if (wasOpen) { panel.hidden = true; panel.innerHTML = ""; return; }
    tr.classList.add("selected");
    const d = DATA[tr.dataset.row];
    let html = `<h3>${esc(d.model)} (${esc(d.task)}): seed ${d.seed}` +
      (d.seeds > 1 ? `, the median of ${d.seeds} seeds by ${esc(d.primary)}` : "") + `, trial ${esc(d.trial)}</h3>`;
    if (d.error) {
      html += `<p class="muted">failed: ${esc(d.error)}</p>`;
    } else {
      const charts = trainingCharts(d) + prCharts(d.pr) + confusionChart(d.cm);
      html += charts ? `<div class="charts">${charts}</div>` : `<p class="muted">nothing recorded to draw</p>`;
    }
    panel.innerHTML = html;
    panel.hidden = false;
  }

  document.querySelectorAll("table.lb tbody tr").forEach((tr) => {
    tr.addEventListener("click", () => openDrill(tr));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") openDrill(tr); });
  });
})();
