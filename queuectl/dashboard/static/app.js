// queuectl dashboard: polls the JSON API every 2 s and draws the page.
// Job data (ids, commands, output, errors) only ever reaches the page as text:
// textContent and text nodes, never innerHTML. The server's CSP forbids inline
// scripts as a second line of defence.
"use strict";

const POLL_MS = 2000;
const PAGE = 50;
const DLQ_ROWS = 10;
const CSRF_HEADER = "X-Queuectl-Request";

const view = {
  state: "", // jobs filter; "" = all
  q: "",
  offset: 0,
  job: null, // id of the job whose panel is open
  run: null, // run number shown in the panel (null = latest)
};
let timer = null;
let lastOk = 0;
let retryAllArmed = null;

// --- small DOM helpers --------------------------------------------------------------
const $ = (selector) => document.querySelector(selector);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function text(selector, value) {
  $(selector).textContent = value;
}

function number(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 0.01) return (value * 1000).toFixed(1) + " ms";
  if (value < 1) return Math.round(value * 1000) + " ms";
  if (value < 60) return value.toFixed(1) + " s";
  if (value < 3600) return Math.round(value / 60) + " min";
  if (value < 86400) return (value / 3600).toFixed(1) + " h";
  return (value / 86400).toFixed(1) + " d";
}

function shortTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  const today = new Date();
  const time = date.toLocaleTimeString("en-GB", { hour12: false });
  return date.toDateString() === today.toDateString()
    ? time
    : date.toISOString().slice(0, 10) + " " + time;
}

// Lists carry at most 200 characters of each command (`command_shortened` says when it
// was cut); the job panel fetches the job and shows all of it.
function listedCommand(job) {
  return job.command_shortened ? job.command + "…" : job.command;
}

function shorten(value, width) {
  const flat = value.replace(/\s+/g, " ").trim();
  return flat.length > width ? flat.slice(0, width - 1) + "…" : flat;
}

// --- talking to the server ----------------------------------------------------------
async function getJson(path) {
  const response = await fetch(path, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
    cache: "no-store",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.status + " " + response.statusText);
  return body;
}

async function postJson(path, document) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", [CSRF_HEADER]: "1" },
    credentials: "same-origin",
    body: JSON.stringify(document),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.status + " " + response.statusText);
  return body;
}

function jobsQuery(state, q, offset, limit) {
  const params = new URLSearchParams();
  if (state) params.set("state", state);
  if (q) params.set("q", q);
  params.set("offset", String(offset));
  params.set("limit", String(limit));
  return "/api/jobs?" + params.toString();
}

// --- the view state lives in the URL hash, so a reload or a link keeps it ----------
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  view.state = params.get("state") || "";
  view.q = params.get("q") || "";
  view.offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  view.job = params.get("job");
  view.run = params.get("run") ? parseInt(params.get("run"), 10) : null;
}

function writeHash() {
  const params = new URLSearchParams();
  if (view.state) params.set("state", view.state);
  if (view.q) params.set("q", view.q);
  if (view.offset) params.set("offset", String(view.offset));
  if (view.job !== null) params.set("job", view.job);
  if (view.run !== null) params.set("run", String(view.run));
  const hash = params.toString();
  history.replaceState(null, "", location.pathname + (hash ? "#" + hash : ""));
}

// --- drawing --------------------------------------------------------------------------
function drawStats(stats) {
  for (const [state, count] of Object.entries(stats.jobs)) {
    const node = document.querySelector(`[data-count="${state}"]`);
    if (node) node.textContent = number(count);
  }
  const runs = stats.runs;
  text("#success-rate", runs.success_rate === null ? "–" : (runs.success_rate * 100).toFixed(1) + "%");
  const d = stats.duration;
  text("#durations", [d.p50, d.p95, d.max].map(seconds).join(" / "));
  text("#runs", number(runs.completed) + " / " + number(runs.failed));
  text("#oldest", stats.oldest_pending_age === null ? "none waiting" : seconds(stats.oldest_pending_age));
  drawChart(stats.per_minute);
}

let chartData = [];

function drawChart(perMinute) {
  chartData = perMinute.slice(-60);
  const canvas = $("#chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 160;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const style = getComputedStyle(document.body);
  const colors = {
    completed: style.getPropertyValue("--completed").trim() || "#2e7d32",
    failed: style.getPropertyValue("--failed").trim() || "#c62828",
    axis: style.getPropertyValue("--muted").trim() || "#888",
  };
  const left = 40, right = 8, top = 8, bottom = 20;
  const plotW = width - left - right, plotH = height - top - bottom;
  const peak = Math.max(1, ...chartData.map((m) => m.completed + m.failed));
  const scale = niceCeiling(peak);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = colors.axis;
  ctx.strokeStyle = colors.axis;
  ctx.globalAlpha = 0.35;
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH - plotH * fraction;
    ctx.beginPath();
    ctx.moveTo(left, Math.round(y) + 0.5);
    ctx.lineTo(width - right, Math.round(y) + 0.5);
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  ctx.fillText(number(scale), left - 6, top);
  ctx.fillText(number(scale / 2), left - 6, top + plotH / 2);
  ctx.fillText("0", left - 6, top + plotH);
  const slots = 60;
  const slot = plotW / slots;
  const offset = slots - chartData.length;
  chartData.forEach((minute, index) => {
    const x = left + (offset + index) * slot + 1;
    const w = Math.max(1, slot - 2);
    const hc = (minute.completed / scale) * plotH;
    const hf = (minute.failed / scale) * plotH;
    ctx.fillStyle = colors.completed;
    ctx.fillRect(x, top + plotH - hc, w, hc);
    ctx.fillStyle = colors.failed;
    ctx.fillRect(x, top + plotH - hc - hf, w, hf);
  });
  ctx.fillStyle = colors.axis;
  ctx.textBaseline = "top";
  ctx.textAlign = "left";
  ctx.fillText("−60 min", left, top + plotH + 5);
  ctx.textAlign = "center";
  ctx.fillText("−30 min", left + plotW / 2, top + plotH + 5);
  ctx.textAlign = "right";
  ctx.fillText("now", width - right, top + plotH + 5);
}

function niceCeiling(value) {
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function chartHover(event) {
  const canvas = $("#chart");
  const rect = canvas.getBoundingClientRect();
  const left = 40, right = 8;
  const slot = (rect.width - left - right) / 60;
  const index = Math.floor((event.clientX - rect.left - left) / slot) - (60 - chartData.length);
  const minute = chartData[index];
  text("#chart-caption", minute
    ? `${shortTime(minute.minute).slice(0, -3)}: ${number(minute.completed)} completed, ${number(minute.failed)} failed`
    : "");
}

function drawWorkers(data) {
  const rows = data.workers.map((w) =>
    el("tr", { dataset: { id: w.id } },
      el("td", { class: "mono" }, w.id),
      el("td", {}, w.host),
      el("td", { class: "num" }, w.pid),
      el("td", { class: "mono" }, w.job_id ? jobLink(w.job_id) : "idle"),
      el("td", { class: "num" }, seconds(w.heartbeat_age) + " ago")));
  $("#workers-table tbody").replaceChildren(...rows);
  $("#workers-table").hidden = rows.length === 0;
  $("#workers-empty").hidden = rows.length !== 0;
  text("#worker-count", number(rows.length));
}

function jobLink(id) {
  return el("a", { href: "#", class: "job-link", onclick: (event) => { event.preventDefault(); openJob(id); } }, id);
}

function drawDlq(page) {
  const rows = page.jobs.map((job) =>
    el("tr", { dataset: { id: job.id } },
      el("td", { class: "mono" }, jobLink(job.id)),
      el("td", { class: "mono", title: listedCommand(job) }, shorten(listedCommand(job), 26)),
      el("td", { class: "num" }, `${job.attempts}/${job.max_retries}`),
      el("td", { title: job.last_error || "" }, shorten(job.last_error || "–", 20)),
      el("td", {}, el("button", { type: "button", class: "retry", onclick: () => retry([job.id]) }, "Retry"))));
  $("#dlq-table tbody").replaceChildren(...rows);
  $("#dlq-table").hidden = rows.length === 0;
  $("#dlq-empty").hidden = rows.length !== 0;
  text("#dlq-note", page.total > page.jobs.length
    ? `newest ${page.jobs.length} of ${number(page.total)}`
    : page.total ? number(page.total) + " dead" : "");
  $("#dlq-all").hidden = page.total <= page.jobs.length;
  const button = $("#retry-all");
  button.disabled = page.total === 0;
  if (!retryAllArmed) button.textContent = "Retry all";
  button.dataset.total = String(page.total);
}

function drawJobs(page) {
  const rows = page.jobs.map((job) =>
    el("tr", { dataset: { id: job.id }, class: view.job === job.id ? "selected" : null, onclick: () => openJob(job.id) },
      el("td", { class: "mono" }, job.id),
      el("td", { class: "mono command-cell", title: listedCommand(job) }, shorten(listedCommand(job), 60)),
      el("td", {}, el("span", { class: "state " + job.state }, job.state)),
      el("td", { class: "num" }, `${job.attempts}/${job.max_retries}`),
      el("td", { class: "num" }, job.priority),
      el("td", { title: job.updated_at }, shortTime(job.updated_at))));
  $("#jobs-table tbody").replaceChildren(...rows);
  $("#jobs-empty").hidden = rows.length !== 0;
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.jobs.length;
  text("#page-info", `${number(first)}–${number(last)} of ${number(page.total)}${page.total_exact ? "" : "+"}`);
  $("#prev").disabled = page.offset === 0;
  $("#next").disabled = last >= page.total;
  for (const button of document.querySelectorAll("#state-filter button")) {
    button.classList.toggle("active", button.dataset.state === view.state);
  }
}

function drawJob(job) {
  $("#job-panel").hidden = false;
  text("#job-title", "Job " + job.id);
  const fields = [
    ["state", job.state], ["attempts", `${job.attempts}/${job.max_retries}`],
    ["priority", job.priority], ["run at", job.run_at], ["timeout", job.timeout ? job.timeout + " s" : "none"],
    ["cwd", job.cwd], ["created", job.created_at], ["updated", job.updated_at],
    ["exit code", job.exit_code ?? "–"], ["last error", job.last_error ?? "–"], ["worker", job.worker_id ?? "–"],
    ["env", Object.keys(job.env).length ? Object.entries(job.env).map(([k, v]) => `${k}=${v}`).join(" ") : "–"],
  ];
  $("#job-fields").replaceChildren(...fields.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, String(value))]));
  text("#job-command", job.command);
  $("#job-retry").hidden = job.state !== "dead";
  const shown = job.output ? job.output.run : null;
  const rows = job.runs.map((run) => {
    const duration = run.finished_at ? (new Date(run.finished_at) - new Date(run.started_at)) / 1000 : null;
    const result = run.exit_code !== null ? "exit " + run.exit_code
      : run.signal !== null ? "signal " + run.signal : run.finished_at ? "–" : "running";
    return el("tr", { dataset: { run: run.n }, class: run.n === shown ? "selected" : null, onclick: () => { view.run = run.n; writeHash(); refreshJob(); } },
      el("td", { class: "num" }, run.n),
      el("td", { title: run.started_at }, shortTime(run.started_at)),
      el("td", { class: "num" }, duration === null ? "–" : seconds(duration)),
      el("td", {}, result),
      el("td", { class: "mono" }, run.worker_id ?? "–"),
      el("td", {}, run.error ?? ""));
  });
  $("#runs-table tbody").replaceChildren(...rows);
  $("#runs-table").hidden = rows.length === 0;
  $("#runs-empty").hidden = rows.length !== 0;
  const output = job.output;
  text("#job-output", output ? output.text : "");
  let note = "";
  if (output) {
    note = `run ${output.run}${output.finished ? "" : ", still running"}`;
    if (output.total_bytes === 0) note += ", no output";
    if (output.total_bytes > output.shown_bytes) {
      note += ` — last ${number(output.shown_bytes)} of ${number(output.total_bytes)} bytes`;
    }
  } else {
    note = "none yet";
  }
  text("#output-note", note);
}

// --- refreshing ---------------------------------------------------------------------
let refreshes = 0;

async function refresh() {
  clearTimeout(timer);
  const mine = ++refreshes;
  try {
    const [stats, workers, jobs, dlq] = await Promise.all([
      getJson("/api/stats?since=1h"),
      getJson("/api/workers"),
      getJson(jobsQuery(view.state, view.q, view.offset, PAGE)),
      getJson(jobsQuery("dead", "", 0, DLQ_ROWS)),
    ]);
    if (mine !== refreshes) return; // a newer refresh (new filter, a retry) took over
    drawStats(stats);
    drawWorkers(workers);
    drawJobs(jobs);
    drawDlq(dlq);
    if (view.job !== null) await refreshJob();
    lastOk = Date.now();
    setLive(true);
  } catch (error) {
    if (mine !== refreshes) return;
    setLive(false, error.message);
  }
  clearTimeout(timer);
  timer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : POLL_MS);
}

async function refreshJob() {
  if (view.job === null) return;
  const id = view.job;
  // The id in the query, not the path: a browser normalises a path segment "." or ".."
  // (percent-encoded or not) away, and every id must open.
  const params = new URLSearchParams({ id });
  if (view.run !== null) params.set("run", String(view.run));
  const path = "/api/jobs/?" + params.toString();
  try {
    const job = await getJson(path);
    if (view.job === id) drawJob(job);
  } catch (error) {
    if (view.job === id) {
      text("#job-title", "Job " + id);
      text("#output-note", error.message);
    }
  }
}

function setLive(ok, message) {
  const node = $("#live");
  node.classList.toggle("down", !ok);
  node.textContent = ok ? "live · updated " + new Date(lastOk).toLocaleTimeString("en-GB", { hour12: false })
    : "connection lost: " + message;
}

function openJob(id) {
  view.job = id;
  view.run = null;
  writeHash();
  $("#job-panel").hidden = false;
  refreshJob();
  for (const row of document.querySelectorAll("#jobs-table tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === id);
  }
}

function closeJob() {
  view.job = null;
  view.run = null;
  writeHash();
  $("#job-panel").hidden = true;
}

async function retry(ids) {
  try {
    await postJson("/api/dlq/retry", { ids });
  } catch (error) {
    setLive(false, error.message);
  }
  refresh();
}

async function retryAll(event) {
  const button = event.currentTarget;
  if (!retryAllArmed) {
    // Two clicks, no modal dialog: the second within 4 s confirms.
    button.textContent = `Confirm: retry ${number(button.dataset.total)}`;
    retryAllArmed = setTimeout(() => { retryAllArmed = null; button.textContent = "Retry all"; }, 4000);
    return;
  }
  clearTimeout(retryAllArmed);
  retryAllArmed = null;
  button.textContent = "Retry all";
  try {
    await postJson("/api/dlq/retry", { all: true });
  } catch (error) {
    setLive(false, error.message);
  }
  refresh();
}

function setFilter(state) {
  view.state = state;
  view.offset = 0;
  writeHash();
  refresh();
}

function start() {
  // A `?token=` link has set the session cookie by now: keep the token out of the
  // address bar and the history.
  if (new URLSearchParams(location.search).has("token")) {
    history.replaceState(null, "", location.pathname + location.hash);
  }
  readHash();
  $("#search").value = view.q;
  for (const button of document.querySelectorAll("#state-filter button")) {
    button.addEventListener("click", () => setFilter(button.dataset.state));
  }
  let debounce = null;
  $("#search").addEventListener("input", (event) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      view.q = event.target.value.trim();
      view.offset = 0;
      writeHash();
      refresh();
    }, 250);
  });
  $("#prev").addEventListener("click", () => { view.offset = Math.max(0, view.offset - PAGE); writeHash(); refresh(); });
  $("#next").addEventListener("click", () => { view.offset += PAGE; writeHash(); refresh(); });
  $("#retry-all").addEventListener("click", retryAll);
  $("#job-close").addEventListener("click", closeJob);
  $("#job-retry").addEventListener("click", () => view.job !== null && retry([view.job]));
  $("#chart").addEventListener("mousemove", chartHover);
  $("#chart").addEventListener("mouseleave", () => text("#chart-caption", ""));
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeJob(); });
  window.addEventListener("hashchange", () => { readHash(); $("#search").value = view.q; if (view.job === null) $("#job-panel").hidden = true; refresh(); });
  window.addEventListener("resize", () => drawChart(chartData));
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  refresh();
}

document.addEventListener("DOMContentLoaded", start);
