// curate dashboard: plain DOM + inline SVG, no dependencies, no network beyond this server's /v1 API.
// Every value from the API is inserted with textContent (never innerHTML): job configs are user input.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];
const state = { token: null, selected: null, filter: "", inspections: {} };

function readFragment() {
  // #token=...&job=... : the token never reaches the server's access log (fragments are not sent).
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("token")) sessionStorage.setItem("curate-token", params.get("token"));
  if (params.get("job")) state.selected = params.get("job");
  if (location.hash) history.replaceState(null, "", location.pathname);
  state.token = sessionStorage.getItem("curate-token");
}

async function api(path) {
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    document.getElementById("token-form").hidden = false;
    throw new Error("a valid API token is needed");
  }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function fmt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
function when(iso) { return iso ? iso.replace("T", " ").replace("+00:00", "Z") : "–"; }

function progressCell(progress) {
  const cell = el("td");
  const bar = el("span", { class: "bar", role: "progressbar" });
  const fill = el("span");
  const fraction = progress.fraction ?? 0;
  fill.style.width = Math.round(fraction * 100) + "%";
  bar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
  bar.appendChild(fill);
  cell.appendChild(bar);
  const label = progress.planned ? `${fmt(progress.done)}/${fmt(progress.planned)}` : (progress.fraction ? "done" : "");
  cell.appendChild(el("span", { class: "bar-label" }, label));
  return cell;
}

function jobRow(job) {
  const row = el("tr", { "data-job-id": job.id, "data-state": job.state });
  if (job.id === state.selected) row.classList.add("selected");
  row.appendChild(el("td", {}, job.id));
  row.appendChild(el("td", {}, job.kind + (job.schedule ? ` (${job.schedule})` : "")));
  const stateCell = el("td");
  stateCell.appendChild(el("span", { class: "state " + job.state }, job.state));
  row.appendChild(stateCell);
  row.appendChild(progressCell(job.progress));
  row.appendChild(el("td", {}, when(job.created_at)));
  const totals = job.result && job.result.totals;
  row.appendChild(el("td", {}, totals && totals.read !== undefined ? `${fmt(totals.read)} → ${fmt(totals.kept)}` : "–"));
  row.addEventListener("click", () => { state.selected = job.id; refresh(); });
  return row;
}

async function loadJobs() {
  const query = state.filter ? `?limit=100&state=${encodeURIComponent(state.filter)}` : "?limit=100";
  const page = await api("/v1/jobs" + query);
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(...page.jobs.map(jobRow));
  document.getElementById("jobs-empty").hidden = page.jobs.length > 0;
  drawScores(page.jobs.filter((j) => j.kind === "train" && j.result && typeof j.result.score === "number"));
  return page;
}

// -- charts -------------------------------------------------------------------------------------------

function barChart(rows, { width = 460, max = null, unit = "", digits = 0, valueWidth = 90 } = {}) {
  // rows: [{label, value, color?, sub?}] -> horizontal bars with labels and values.
  const labelWidth = 120, rowHeight = 22;
  const top = Math.max(max ?? 0, ...rows.map((r) => r.value), 1e-12);
  const chart = svg("svg", { width, height: rows.length * rowHeight + 4, role: "img" });
  rows.forEach((row, i) => {
    const y = i * rowHeight + 2;
    const w = Math.max(1, ((width - labelWidth - valueWidth) * row.value) / top);
    chart.appendChild(svg("text", { x: 0, y: y + 14 }, row.label));
    const rect = svg("rect", { x: labelWidth, y: y + 3, width: w, height: rowHeight - 8, rx: 3, fill: row.color || COLORS[0] });
    rect.appendChild(svg("title", {}, `${row.label}: ${row.value.toFixed(digits)}${unit}`));
    chart.appendChild(rect);
    chart.appendChild(svg("text", { x: labelWidth + w + 6, y: y + 14 }, row.value.toFixed(digits) + unit + (row.sub || "")));
  });
  return chart;
}

function cpuText(seconds) { return typeof seconds === "number" ? ` · ${seconds.toFixed(1)} s CPU` : ""; }

function drawFunnel(stages) {
  const rows = stages.map((s, i) => ({
    label: s.stage, value: s.out, color: COLORS[i % COLORS.length],
    sub: (s.in !== s.out ? ` of ${fmt(s.in)}` : "") + cpuText(s.cpu_seconds),
  }));
  const max = Math.max(...stages.map((s) => s.in));
  document.getElementById("funnel").replaceChildren(barChart(rows, { max, valueWidth: 170 }));
  const drops = [];
  for (const s of stages) {
    for (const [reason, n] of Object.entries(s.dropped || {})) drops.push(el("li", {}, `${s.stage}: ${reason} ${fmt(n)}`));
  }
  if (!drops.length) drops.push(el("li", { class: "muted" }, "nothing dropped"));
  document.getElementById("drops").replaceChildren(...drops);
  document.getElementById("funnel-figure").hidden = false;
}

function drawDomains(domains, caption) {
  document.getElementById("domains-caption").textContent = caption;
  const entries = Object.entries(domains || {});
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  if (!total) return;
  const size = 150, r = 60, c = size / 2;
  const chart = svg("svg", { width: size + 200, height: Math.max(size, entries.length * 20 + 10), role: "img" });
  let angle = -Math.PI / 2;
  entries.forEach(([domain, n], i) => {
    const share = n / total, color = COLORS[i % COLORS.length];
    const next = angle + share * 2 * Math.PI;
    const path = share >= 0.9999
      ? svg("circle", { cx: c, cy: c, r, fill: color })
      : svg("path", {
          d: `M${c},${c} L${c + r * Math.cos(angle)},${c + r * Math.sin(angle)} A${r},${r} 0 ${share > 0.5 ? 1 : 0} 1 ${c + r * Math.cos(next)},${c + r * Math.sin(next)} Z`,
          fill: color,
        });
    path.setAttribute("data-domain", domain);
    path.appendChild(svg("title", {}, `${domain}: ${(share * 100).toFixed(1)}%`));
    chart.appendChild(path);
    chart.appendChild(svg("rect", { x: size + 10, y: 8 + i * 20, width: 12, height: 12, fill: color }));
    chart.appendChild(svg("text", { x: size + 28, y: 18 + i * 20 }, `${domain} ${(share * 100).toFixed(1)}% (${fmt(n)})`));
    angle = next;
  });
  document.getElementById("domains").replaceChildren(chart);
  document.getElementById("domains-figure").hidden = false;
}

function drawShares(domains) {
  // A mixture: each domain's achieved share of the tokens, beside the share it asked for.
  const rows = Object.entries(domains || {}).map(([d, v], i) => ({
    label: d, value: 100 * (v.achieved_share ?? 0), color: COLORS[i % COLORS.length],
    sub: ` (requested ${(100 * (v.requested_share ?? 0)).toFixed(1)}%, ${fmt(v.achieved_tokens)} tokens)`,
  }));
  document.getElementById("domains-caption").textContent = "Token shares of the mixture: achieved (requested)";
  document.getElementById("domains").replaceChildren(barChart(rows, { digits: 1, unit: "%", max: 100, valueWidth: 260 }));
  document.getElementById("domains-figure").hidden = false;
}

function histogramChart(histogram) {
  // One line per domain over shared bins: the share of that domain's documents in each bin.
  const width = 460, height = 130, left = 8, bottom = 34, plotW = width - 2 * left, plotH = height - bottom - 8;
  const chart = svg("svg", { width, height, role: "img", "data-score": histogram.column });
  const entries = Object.entries(histogram.domains);
  const shares = entries.map(([, counts]) => {
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    return counts.map((n) => n / total);
  });
  const top = Math.max(...shares.flat(), 1e-12);
  const bins = histogram.edges.length - 1;
  entries.forEach(([domain], i) => {
    const points = shares[i].map((v, b) => `${left + ((b + 0.5) * plotW) / bins},${8 + plotH - (v * plotH) / top}`);
    const line = svg("polyline", { points: points.join(" "), fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2 });
    line.setAttribute("data-domain", domain);
    line.appendChild(svg("title", {}, `${histogram.column} · ${domain}`));
    chart.appendChild(line);
  });
  const edge = (v) => (Math.abs(v) >= 1000 ? v.toExponential(1) : v.toPrecision(3));
  chart.appendChild(svg("text", { x: left, y: height - 20 }, edge(histogram.edges[0])));
  chart.appendChild(svg("text", { x: width - left, y: height - 20, "text-anchor": "end" }, edge(histogram.edges[bins])));
  chart.appendChild(svg("text", { x: width / 2, y: height - 20, "text-anchor": "middle" }, `${histogram.column} (${histogram.scale})`));
  entries.forEach(([domain], i) => {
    chart.appendChild(svg("text", { x: left + i * 90, y: height - 4, fill: COLORS[i % COLORS.length] }, domain));
  });
  return chart;
}

function drawHistograms(histograms) {
  if (!histograms || !histograms.length) return;
  document.getElementById("histograms").replaceChildren(...histograms.map(histogramChart));
  document.getElementById("histograms-figure").hidden = false;
}

function drawRejectSamples(samples) {
  if (!samples || !samples.length) return;
  const items = samples.map((s) => {
    const item = el("li", { "data-reason": s.reason });
    item.appendChild(el("strong", {}, `${s.stage}: ${s.reason}`));
    item.appendChild(el("span", { class: "muted" }, ` ${s.id} `));
    item.appendChild(el("q", {}, s.text || ""));
    return item;
  });
  document.getElementById("reject-samples").replaceChildren(...items);
  document.getElementById("samples-figure").hidden = false;
}

async function inspection(jobId) {
  // A succeeded run never changes: fetch its inspection once, not on every refresh.
  if (!state.inspections[jobId]) state.inspections[jobId] = await api(`/v1/jobs/${encodeURIComponent(jobId)}/inspect`);
  return state.inspections[jobId];
}

function drawScore(score) {
  const rows = Object.entries(score.domains || {}).map(([d, v], i) => ({ label: d, value: v.bpb, color: COLORS[i % COLORS.length] }));
  rows.push({ label: "score", value: score.score, color: "#111827" });
  document.getElementById("score").replaceChildren(barChart(rows, { digits: 3, unit: " bpb" }));
  document.getElementById("score-figure").hidden = false;
}

function drawScores(trainJobs) {
  const section = document.getElementById("scores-section");
  section.hidden = trainJobs.length === 0;
  if (!trainJobs.length) return;
  const rows = trainJobs.map((j, i) => ({ label: j.id.slice(-8), value: j.result.score, color: COLORS[i % COLORS.length] }));
  document.getElementById("scores").replaceChildren(barChart(rows, { digits: 3, unit: " bpb" }));
}

// -- detail -------------------------------------------------------------------------------------------

async function loadDetail() {
  const section = document.getElementById("detail");
  if (!state.selected) { section.hidden = true; return; }
  const job = await api("/v1/jobs/" + encodeURIComponent(state.selected));
  section.hidden = false;
  section.setAttribute("data-job-id", job.id);
  document.getElementById("detail-id").textContent = job.id;
  const badge = document.getElementById("detail-state");
  badge.textContent = job.state;
  badge.className = "state " + job.state;
  const p = job.progress;
  document.getElementById("detail-summary").textContent =
    `${job.kind} · attempts ${job.attempts} · progress ${fmt(p.done)}/${fmt(p.planned)} · output ${job.output}`;
  const error = document.getElementById("detail-error");
  error.hidden = !job.error;
  error.textContent = job.error || "";
  const figures = ["funnel-figure", "domains-figure", "score-figure", "histograms-figure", "samples-figure"];
  for (const id of figures) document.getElementById(id).hidden = true;
  if (job.kind === "train") {
    if (job.state === "succeeded") drawScore(await api(`/v1/jobs/${encodeURIComponent(job.id)}/score`));
  } else if (job.state === "succeeded" && (job.kind === "curate" || job.kind === "batch")) {
    const report = await inspection(job.id);
    drawFunnel(report.funnel);
    drawDomains(Object.fromEntries(report.domains.map((d) => [d.domain, d.docs])), "Domain shares of the kept documents");
    drawHistograms(report.histograms);
    drawRejectSamples(report.reject_samples);
  } else if (job.kind === "mixsearch" && job.result) {
    drawDomains(job.result.weights || {}, "Domain weights chosen by the search");
  } else if (job.kind === "mix" && job.result) {
    drawShares(job.result.domains);
  }
  if (document.getElementById("logs-box").open) {
    document.getElementById("logs").textContent = await api(`/v1/jobs/${encodeURIComponent(job.id)}/logs?tail=200`);
  }
}

async function loadSchedules() {
  const schedules = await api("/v1/schedules");
  const rows = schedules.map((s) => {
    const row = el("tr", { "data-schedule": s.name });
    for (const value of [s.name, s.cron, s.missed, when(s.last_run), when(s.next_fire), String(s.versions.length), s.active_job || "–"]) {
      row.appendChild(el("td", {}, value));
    }
    if (s.active_job) row.addEventListener("click", () => { state.selected = s.active_job; refresh(); });
    return row;
  });
  document.querySelector("#schedules tbody").replaceChildren(...rows);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const page = await loadJobs();
    await loadDetail();
    await loadSchedules();
    status.textContent = `${page.total} job(s) · updated ${new Date().toLocaleTimeString()}`;
    document.body.setAttribute("data-loaded", "true");
  } catch (error) {
    status.textContent = String(error.message || error);
  }
}

function init() {
  readFragment();
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("curate-token", document.getElementById("token-input").value.trim());
    state.token = sessionStorage.getItem("curate-token");
    document.getElementById("token-form").hidden = true;
    refresh();
  });
  document.getElementById("state-filter").addEventListener("change", (event) => { state.filter = event.target.value; refresh(); });
  document.getElementById("logs-box").addEventListener("toggle", refresh);
  window.addEventListener("hashchange", () => {  // a #token=/#job= link opened in this tab
    readFragment();
    document.getElementById("token-form").hidden = Boolean(state.token);
    refresh();
  });
  refresh();
  setInterval(refresh, 2000);
}

document.addEventListener("DOMContentLoaded", init);
