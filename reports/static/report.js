/* Glue between the report's embedded data (#report-data) and the vendored uPlot:
   overlay charts (one series per run), per-run panels (built when a run section opens),
   smoothing, log/linear, show/hide runs, the run filter, the samples animation and the
   latent-interpolation view. Everything is drawn from data in this file: no network. */
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
  const PAD = 28, Q = 999;  // samples canvases: axis margin (px), quantisation (reports.payload)
  const charts = [];  // every live Chart, for the global smoothing slider
  let smooth = 0;

  // TensorBoard's debiased exponential moving average; nulls stay gaps
  function ema(y, a) {
    if (!a) return y;
    const out = new Array(y.length);
    let last = 0, n = 0;
    for (let i = 0; i < y.length; i++) {
      const v = y[i];
      if (v == null) { out[i] = v; continue; }
      last = last * a + (1 - a) * v;
      n++;
      out[i] = last / (1 - Math.pow(a, n));
    }
    return out;
  }

  function fmt(v) {
    if (v == null) return "–";
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : +v.toPrecision(4) + "";
  }

  // log axes: label 1, 2 and 5 x 10^k over up to 3 decades, only the powers of ten beyond
  function logTicks(u, splits) {
    const ok = splits.filter(v => v > 0);
    const decades = ok.length ? Math.log10(Math.max(...ok) / Math.min(...ok)) : 0;
    const keep = decades > 3 ? [1] : [1, 2, 5];
    return splits.map(v => {
      if (!(v > 0)) return null;
      const m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
      return keep.some(k => Math.abs(m - k) < 1e-6) ? v : null;
    });
  }

  function shadeHook(u, c) {
    const ctx = u.ctx, b = u.bbox;
    ctx.save();
    for (const s of c.shade) {
      let x0 = u.valToPos(s[0], "x", true), x1 = u.valToPos(s[1], "x", true);
      x0 = Math.max(x0, b.left);
      x1 = Math.min(Math.max(x1, x0 + 2 * devicePixelRatio), b.left + b.width);
      if (x1 <= x0) continue;
      ctx.fillStyle = s[2];
      ctx.fillRect(x0, b.top, x1 - x0, b.height);
      if (s[3]) {  // the range an advice link points at
        ctx.strokeStyle = "#b00";
        ctx.lineWidth = 2 * devicePixelRatio;
        ctx.strokeRect(x0, b.top, x1 - x0, b.height);
      }
    }
    if (c.hline != null && u.scales.y.min != null) {
      const y = u.valToPos(c.hline, "y", true);
      if (y >= b.top && y <= b.top + b.height) {
        ctx.strokeStyle = "#d62728";
        ctx.setLineDash([6, 4]);
        ctx.lineWidth = devicePixelRatio;
        ctx.beginPath(); ctx.moveTo(b.left, y); ctx.lineTo(b.left + b.width, y); ctx.stroke();
      }
    }
    ctx.restore();
  }

  /* One chart: x + series [{label, stroke, y, show}] drawn by uPlot; rebuilt on log toggle. */
  class Chart {
    constructor(el, c) {
      Object.assign(this, {el: el, shade: [], hline: null, log: false, height: 230,
                           spanGaps: false, sync: null, legendWidth: 0}, c);
      this.build();
      charts.push(this);
    }
    data() {
      const ys = this.series.map(s => {
        const y = ema(s.y, smooth);
        return this.log ? y.map(v => (v != null && v > 0 ? v : null)) : y;
      });
      return [this.x].concat(ys);
    }
    build() {
      let range = null;
      if (this.u) {
        range = [this.u.scales.x.min, this.u.scales.x.max];
        this.u.destroy();
      }
      const opts = {
        width: this.width(), height: this.height,
        scales: {x: {time: false}, y: {distr: this.log ? 3 : 1}},
        axes: [{label: "step", labelSize: 18, size: 34},
               {label: this.ylabel, labelSize: 18, size: 62, filter: this.log ? logTicks : undefined,
                values: (u, vals) => vals.map(v => (v == null ? "" : fmt(v)))}],
        series: [{label: "step", value: (u, v) => (v == null ? "–" : v)}].concat(
          this.series.map(s => ({label: s.label, stroke: s.stroke, dash: s.dash, width: s.width || 1.5,
                                 show: s.show !== false, spanGaps: this.spanGaps,
                                 points: {show: this.x.length < 60},
                                 value: (u, v) => fmt(v)}))),
        cursor: {drag: {x: true, y: false}, focus: {prox: 20},
                 sync: this.sync ? {key: this.sync, setSeries: false} : undefined},
        focus: {alpha: 0.3},
        legend: {live: true},
        hooks: {drawAxes: [u => shadeHook(u, this)],
                setSeries: [(u, i, o) => { if (i != null && o.show != null) this.series[i - 1].show = o.show; }]},
      };
      this.u = new uPlot(opts, this.data(), this.el);
      if (range && range[0] != null) this.u.setScale("x", {min: range[0], max: range[1]});
    }
    width() { return Math.max(this.el.clientWidth - this.legendWidth, 320); }
    refresh() { this.u.setData(this.data(), false); this.u.redraw(); }
    setLog(on) { this.log = on; this.build(); }
    resize() { this.u.setSize({width: this.width(), height: this.height}); }
  }

  function controls(box, chart) {
    const log = box.querySelector("input.log");
    if (log) {
      log.checked = chart.log;
      log.addEventListener("change", () => chart.setLog(log.checked));
    }
    const reset = box.querySelector("button.reset");
    if (reset) reset.addEventListener("click", () => chart.u.setScale("x", {
      min: chart.x[0], max: chart.x[chart.x.length - 1]}));
  }

  // ---- overlay charts: one series per run, coloured by the swept value --------------------
  const overlays = [];
  function buildOverlay(box) {
    const spec = D.overlays.find(o => o.id === box.querySelector("select.metric").value);
    const tables = D.runs.map(r => {
      const t = r.data[spec.table];
      return [t.x, t[spec.column] || t.x.map(() => null)];
    });
    const joined = uPlot.join(tables);
    const series = D.runs.map((r, i) => ({label: r.name, stroke: r.color, dash: r.dash, y: joined[i + 1],
                                          show: r.visible !== false,
                                          width: r.keep ? 2.6 : 1.3}));  // the run to keep stands out
    const old = overlays.find(o => o.box === box);
    if (old) { old.u.destroy(); charts.splice(charts.indexOf(old), 1); overlays.splice(overlays.indexOf(old), 1); }
    const el = box.querySelector(".chart");
    el.textContent = "";
    const c = new Chart(el, {x: joined[0], series: series, ylabel: spec.ylabel,
                             log: box.querySelector("input.log").checked, height: 300,
                             legendWidth: 270,  // the legend sits to the right (CSS)
                             spanGaps: true, hline: spec.hline});
    c.box = box;
    filterLegend(c);
    overlays.push(c);
    return c;
  }
  document.querySelectorAll(".overlay").forEach(box => {
    const sel = box.querySelector("select.metric");
    const log = box.querySelector("input.log");
    sel.addEventListener("change", () => {
      log.checked = D.overlays.find(o => o.id === sel.value).log;
      buildOverlay(box);
    });
    log.checked = D.overlays.find(o => o.id === sel.value).log;
    log.addEventListener("change", () => overlays.find(o => o.box === box).setLog(log.checked));
    box.querySelector("button.reset").addEventListener("click", () => {
      const c = overlays.find(o => o.box === box);
      c.u.setScale("x", {min: c.x[0], max: c.x[c.x.length - 1]});
    });
    buildOverlay(box);
  });

  // ---- per-run panels, built when the run's section is first opened -----------------------
  const built = {};
  function buildRun(i) {
    if (built[i]) return built[i];
    const r = D.runs[i], out = {};
    built[i] = out;
    document.querySelectorAll(`#run-${i} .chartbox`).forEach(box => {
      const p = D.panels.find(q => q.id === box.dataset.chart);
      const t = r.data[p.series[0][0]];
      if (!t.x.length) { box.querySelector(".chart").textContent = "no data"; return; }
      const series = p.series.map((s, k) => ({label: s[2], stroke: PALETTE[k],
                                              y: r.data[s[0]][s[1]] || t.x.map(() => null)}));
      if (series.every(s => s.y.every(v => v === null))) {  // e.g. a run from before the metric
        box.querySelector(".chart").textContent = "not recorded for this run"; return;
      }
      const shade = (r.shade[p.panel] || []).map(s => [s[0], s[1], "rgba(214,39,40,0.13)", false]);
      if (p.id === "critic") r.phases.forEach(ph => shade.unshift([ph[1], ph[2], ph[3], false]));
      const c = new Chart(box.querySelector(".chart"),
                          {x: t.x, series: series, ylabel: p.ylabel, log: p.log, shade: shade,
                           hline: p.hline, sync: "run-" + i});
      controls(box, c);
      (out[p.panel] = out[p.panel] || []).push(c);
    });
    const anim = document.querySelector(`#run-${i} .anim`);
    if (anim && r.samples) animation(anim, r.samples);
    const interp = document.querySelector(`#run-${i} .interp`);
    if (interp && r.interp) interpolation(interp, r.interp);
    return out;
  }
  document.querySelectorAll("details.run").forEach(d => {
    const i = +d.dataset.run;
    if (d.open) buildRun(i);
    d.addEventListener("toggle", () => { if (d.open) buildRun(i); });
  });

  // advice and finding links: open the run, mark the step range on the panel, scroll there
  document.addEventListener("click", ev => {
    const a = ev.target.closest("a.goto");
    if (!a) return;
    const i = +a.dataset.run, det = document.getElementById("run-" + i);
    if (!det) return;
    det.open = true;
    const panels = buildRun(i);
    Object.values(panels).flat().forEach(c => {
      c.shade.forEach(s => { s[3] = false; });
      c.u.redraw();
    });
    if (a.dataset.a === undefined) return;
    const lo = +a.dataset.a, hi = +a.dataset.b;
    (panels[a.dataset.panel] || []).forEach(c => {
      const hit = c.shade.find(s => s[0] === lo && s[1] === hi);
      if (hit) hit[3] = true; else c.shade.push([lo, hi, "rgba(214,39,40,0.13)", true]);
      c.u.redraw();
    });
  });

  // ---- smoothing (all charts) ------------------------------------------------------------
  const sm = document.getElementById("smoothing");
  if (sm) sm.addEventListener("input", () => {
    smooth = +sm.value;
    document.getElementById("smoothing-value").textContent = smooth.toFixed(2);
    charts.forEach(c => c.refresh());
  });

  // ---- filter: by name / verdict, problems only -----------------------------------------
  const q = document.getElementById("filter"), probs = document.getElementById("problems-only");
  // filtered-out runs leave the overlay legends (runs hidden by a legend click stay, greyed)
  function filterLegend(c) {
    const rows = c.u.root.querySelectorAll(".u-legend tr.u-series");
    D.runs.forEach((r, i) => { if (rows[i + 1]) rows[i + 1].hidden = r.visible === false; });
  }
  function applyFilter() {
    const text = q.value.trim().toLowerCase(), only = probs.checked;
    let shown = 0;
    D.runs.forEach((r, i) => {
      const hay = (r.name + " " + r.verdict + " " + r.flags.join(" ")).toLowerCase();
      r.visible = (!text || hay.includes(text)) && (!only || r.problem);
      shown += r.visible;
      // the run's section and its rows and lines elsewhere; never links (the card names the
      // run to keep even when the filter hides its section)
      document.querySelectorAll(`details.run[data-run="${i}"], tr[data-run="${i}"], li[data-run="${i}"]`)
        .forEach(el => { el.hidden = !r.visible; });
    });
    overlays.forEach(c => {
      c.u.batch(() => D.runs.forEach((r, i) => {
        if (c.u.series[i + 1].show !== r.visible) c.u.setSeries(i + 1, {show: r.visible});
      }));
      filterLegend(c);
    });
    document.getElementById("filter-count").textContent = `${shown} of ${D.runs.length} runs shown`;
  }
  if (q) { q.addEventListener("input", applyFilter); probs.addEventListener("change", applyFilter); }
  document.querySelectorAll("button.vfilter").forEach(b => b.addEventListener("click", () => {
    q.value = b.dataset.verdict;
    applyFilter();
    document.getElementById("curves").scrollIntoView();
  }));

  // ---- samples: generated vs real over the evals, and the latent interpolation ------------
  function canvas2d(cv) {
    const dpr = window.devicePixelRatio || 1, w = cv.clientWidth, h = cv.clientHeight;
    cv.width = w * dpr; cv.height = h * dpr;
    const ctx = cv.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return {ctx: ctx, w: w, h: h};
  }
  function frame(g, lim, dim, axes) {
    axes = axes || (dim === 2 ? ["x0", "x1"] : ["x"]);
    const {ctx, w, h} = g;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
    ctx.strokeRect(PAD, 4, w - PAD - 4, h - PAD - 4);
    ctx.fillStyle = "#444"; ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "left"; ctx.fillText(fmt(lim[0][0]), PAD, h - 10);
    ctx.textAlign = "right"; ctx.fillText(fmt(lim[0][1]), w - 4, h - 10);
    ctx.textAlign = "center"; ctx.fillText(axes[0], (w + PAD) / 2, h - 10);
    if (dim === 2) {  // the y range, at the ends of the y axis
      ctx.save(); ctx.translate(12, h - PAD - 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "left";
      ctx.fillText(fmt(lim[1][0]), 0, 0); ctx.restore();
      ctx.save(); ctx.translate(12, 6); ctx.rotate(-Math.PI / 2); ctx.textAlign = "right";
      ctx.fillText(fmt(lim[1][1]), 0, 0); ctx.restore();
    }
    if (dim === 2 || lim[1]) {
      ctx.save(); ctx.translate(12, (h - PAD) / 2); ctx.rotate(-Math.PI / 2);
      ctx.fillText(dim === 2 ? axes[1] : "along the line", 0, 0); ctx.restore();
    }
    return {px: q => PAD + 3 + q / Q * (w - PAD - 10), py: q => h - PAD - 3 - q / Q * (h - PAD - 10)};
  }
  function dots(ctx, m, pts, color, r) {
    ctx.fillStyle = color;
    for (let k = 0; k + 1 < pts.length; k += 2) {
      ctx.beginPath(); ctx.arc(m.px(pts[k]), m.py(pts[k + 1]), r, 0, 2 * Math.PI); ctx.fill();
    }
  }
  function bars(ctx, m, hist, color) {
    const n = hist.length;
    ctx.fillStyle = color;
    hist.forEach((v, k) => {
      const x0 = m.px(k / n * Q), x1 = m.px((k + 1) / n * Q);
      ctx.fillRect(x0, m.py(v), Math.max(x1 - x0 - 1, 1), m.py(0) - m.py(v));
    });
  }
  function animation(root, s) {
    const cv = root.querySelector("canvas"), slider = root.querySelector("input[type=range]");
    const btn = root.querySelector("button.play"), label = root.querySelector(".frame-label");
    const g = canvas2d(cv);
    slider.max = s.frames.length - 1;
    function draw(k) {
      const m = frame(g, s.lim, s.dim, s.axes);
      if (s.dim === 2) { dots(g.ctx, m, s.real, "rgba(150,150,150,0.8)", 1.8); dots(g.ctx, m, s.frames[k], "rgba(31,119,180,0.85)", 2.2); }
      else { bars(g.ctx, m, s.real, "rgba(150,150,150,0.6)"); bars(g.ctx, m, s.frames[k], "rgba(31,119,180,0.55)"); }
      label.textContent = `step ${s.steps[k]} (eval ${k + 1} of ${s.steps.length})` +
        (s.steps[k] === s.best ? ": the best eval" : "");
      root.dataset.frame = k;
    }
    let timer = null;
    function stop() { clearInterval(timer); timer = null; btn.textContent = "▶ play"; }
    btn.addEventListener("click", () => {
      if (timer) return stop();
      btn.textContent = "❚❚ pause";
      timer = setInterval(() => { slider.value = (+slider.value + 1) % s.frames.length; draw(+slider.value); }, 400);
    });
    slider.addEventListener("input", () => { stop(); draw(+slider.value); });
    slider.value = s.frames.length - 1;
    draw(s.frames.length - 1);
  }
  function interpolation(root, s) {
    const g = canvas2d(root.querySelector("canvas")), m = frame(g, s.lim, s.dim, s.axes), ctx = g.ctx;
    if (s.dim === 2) dots(ctx, m, s.real, "rgba(150,150,150,0.8)", 1.8);
    const n = s.line.length / 2;
    for (let k = 0; k + 1 < n; k++) {
      ctx.strokeStyle = `hsl(${220 - 200 * k / n}, 75%, 45%)`; ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(m.px(s.line[2 * k]), m.py(s.line[2 * k + 1]));
      ctx.lineTo(m.px(s.line[2 * k + 2]), m.py(s.line[2 * k + 3])); ctx.stroke();
    }
    ctx.fillStyle = "#222"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "left";
    if (n) {
      const sx = m.px(s.line[0]), sy = m.py(s.line[1]);
      const ex = m.px(s.line[2 * n - 2]), ey = m.py(s.line[2 * n - 1]);
      ctx.fillText("start", sx + 4, sy - 4);
      // a closed path (e.g. a phase-encoded latent: both ends at one angle) would print the
      // two labels on top of each other: put "end" below its point instead
      ctx.fillText("end", ex + 4, Math.hypot(ex - sx, ey - sy) < 24 ? ey + 14 : ey - 4);
    }
  }

  // ---- sortable tables ---------------------------------------------------------------------
  function key(row, i) {
    const c = row.cells[i];
    return c.hasAttribute("data-v") ? c.getAttribute("data-v") : c.textContent.trim();
  }
  document.querySelectorAll("table.sortable").forEach(table => {
    const heads = Array.from(table.tHead.rows[0].cells);
    heads.forEach((th, i) => th.addEventListener("click", () => {
      const asc = th.getAttribute("data-dir") !== "asc";
      heads.forEach(h => h.removeAttribute("data-dir"));
      th.setAttribute("data-dir", asc ? "asc" : "desc");
      const body = table.tBodies[0];
      Array.from(body.rows).sort((a, b) => {
        const x = key(a, i), y = key(b, i), nx = parseFloat(x), ny = parseFloat(y);
        const c = (!isNaN(nx) && !isNaN(ny)) ? (nx === ny ? 0 : (nx < ny ? -1 : 1)) : x.localeCompare(y);
        return asc ? c : -c;
      }).forEach(r => body.appendChild(r));
    }));
  });

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => charts.forEach(c => c.resize()), 150);
  });
  // for the browser tests and the benchmark: the live charts, and a sign that the glue has run
  window.qganReport = {charts: charts, overlays: overlays, built: built, data: D};
  document.documentElement.dataset.ready = "1";
})();
