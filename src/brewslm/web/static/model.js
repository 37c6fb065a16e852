/* BrewSLM UI: the model and shipping pages (preflight, train, evaluate, exports, deployments).
 *  - forms with data-stage-form="S" start stage S as a job: fields named "set:KEY" and the
 *    space-separated "overrides" field become --set KEY=VALUE overrides, checkboxes are flags
 *    (sent as false too when unticked if they carry data-bool),
 *    number fields with data-scale are multiplied (GiB -> bytes); data-follow-run opens the
 *    run the job starts (the train page then follows its loss curve)
 *  - followTrainingRun(detail, chartId): while the run runs, poll its metrics every 2 s and
 *    redraw the loss curve with Plotly.react (each trace's `meta` names its series)
 *  - exports: the quant list follows the format; deployments: promote, rollback, drift, and
 *    the "Try it" chat box against /serve/NAME/v1/chat/completions
 * Uses api(), followJob(), showPanel() and escapeHtml() from app.js.
 */
"use strict";

const POLL_MS = 2000;

function currentProject() {
  return (document.querySelector("nav.sub") || {dataset: {}}).dataset.project;
}

function projectPath(suffix) {
  return `/api/projects/${encodeURIComponent(currentProject())}${suffix}`;
}

function stageParams(form) {
  const params = {};
  const overrides = [];
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === "checkbox") {
      if (el.checked) params[el.name] = true;
      else if (el.dataset.bool !== undefined) params[el.name] = false;  // its default is true
      continue;
    }
    const value = el.value.trim();
    if (!value) continue;
    if (el.name.startsWith("set:")) overrides.push(`${el.name.slice(4)}=${value}`);
    else if (el.name === "overrides") overrides.push(...value.split(/\s+/));
    else if (el.type === "number") {
      const scale = el.dataset.scale ? Number(el.dataset.scale) : 1;
      params[el.name] = scale === 1 ? Number(value) : Math.round(Number(value) * scale);
    } else params[el.name] = value;
  }
  if (overrides.length) params.overrides = overrides;
  return params;
}

function openStartedRun(progress) {
  if (!progress.run_id || progress.status !== "running") return;
  const url = new URL(window.location.href);
  if (url.searchParams.get("run") === progress.run_id) return;
  url.searchParams.set("run", progress.run_id);
  window.location.assign(url.toString());
}

async function submitStageForm(form) {
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  showPanel("Starting " + escapeHtml(form.dataset.stageForm) + "…", "running");
  try {
    const job = await api("POST", projectPath(`/stages/${form.dataset.stageForm}`), stageParams(form));
    const onProgress = form.dataset.followRun ? openStartedRun : null;
    await followJob(job.id, {reload: true, onProgress});
  } catch (e) {
    showPanel(`<span class="error">${escapeHtml(e.message)}</span>`, "failed");
  } finally {
    if (button) button.disabled = false;
  }
}

/* --- train: the live loss curve ----------------------------------------------------------- */

function redrawLoss(chart, rows) {
  const data = chart.data.map(trace => {
    const points = rows.filter(r => r[trace.meta] !== undefined && r[trace.meta] !== null);
    return Object.assign({}, trace, {x: points.map(r => r.step), y: points.map(r => r[trace.meta])});
  });
  window.Plotly.react(chart, data, chart.layout);
}

function showRunState(metrics) {
  const steps = metrics.rows.filter(r => r.loss !== undefined).map(r => r.step);
  const stepsEl = document.getElementById("run-steps");
  if (stepsEl && steps.length) {
    const max = stepsEl.textContent.includes("/") ? " /" + stepsEl.textContent.split("/")[1] : "";
    stepsEl.textContent = Math.max(...steps) + max;
  }
  const status = document.getElementById("run-status");
  if (status) {
    status.textContent = metrics.status;
    status.className = "status " + metrics.status;
  }
  const points = document.getElementById("trace-points");
  if (points) points.textContent = `${metrics.rows.length} trace points` +
    (metrics.status === "running" ? " · updating every 2 s while the run runs" : "");
}

function followTrainingRun(detail, chartId) {
  if (!detail || detail.dataset.live !== "true" || !window.Plotly) return;
  const chart = document.getElementById(chartId);
  const tick = async () => {
    let metrics;
    try {
      metrics = await api("GET", detail.dataset.metrics);
    } catch (e) {
      showPanel(`<span class="error">${escapeHtml(e.message)}</span>`, "failed");
      return;
    }
    redrawLoss(chart, metrics.rows);
    showRunState(metrics);
    if (metrics.status === "running") {
      setTimeout(tick, POLL_MS);
    } else {
      detail.dataset.live = "false";
      const ended = document.getElementById("run-ended");
      if (ended) ended.hidden = false;
    }
  };
  setTimeout(tick, POLL_MS);
}

/* --- exports: the quantisations a format takes -------------------------------------------- */

function followFormat(form) {
  const fmt = form.querySelector("select[name=fmt]");
  const quant = form.querySelector("select[name=quant]");
  if (!fmt || !quant) return;
  const quants = JSON.parse(form.dataset.quants);
  const defaults = JSON.parse(form.dataset.defaults);
  const fill = () => {
    quant.innerHTML = quants[fmt.value].map(q =>
      `<option${q === defaults[fmt.value] ? " selected" : ""}>${escapeHtml(q)}</option>`).join("");
  };
  fmt.addEventListener("change", fill);
  fill();
}

/* --- deployments: promote, rollback, drift, try it ---------------------------------------- */

async function postThenReload(path, body) {
  try {
    await api("POST", projectPath(path), body);
    window.location.reload();
  } catch (e) {
    showPanel(`<span class="error">${escapeHtml(e.message)}</span>`, "failed");
  }
}

function fmtSeconds(value) {
  return value === null || value === undefined ? "—" : (value * 1000).toFixed(0) + " ms";
}

async function refreshTelemetry(version) {
  const row = document.querySelector(`#telemetry tr[data-version="${version}"]`);
  if (!row) return;
  const t = await api("GET", projectPath(`/deployments/${version}/telemetry`));
  const cells = {requests: t.requests, errors: t.errors,
                 p50: fmtSeconds(t.latency_s.p50), p95: fmtSeconds(t.latency_s.p95),
                 p99: fmtSeconds(t.latency_s.p99), ttft: fmtSeconds(t.ttft_s.p50),
                 tokens: t.tokens_per_s === null ? "—" : t.tokens_per_s};
  for (const [key, value] of Object.entries(cells)) {
    const cell = row.querySelector(`[data-cell="${key}"]`);
    if (cell) cell.textContent = value;
  }
}

async function askModel(form) {
  const answer = document.getElementById("chat-answer");
  const button = form.querySelector("button[type=submit]");
  const text = form.elements.message.value.trim();
  if (!text) return;
  button.disabled = true;
  answer.hidden = false;
  answer.className = "chat-answer running";
  answer.textContent = "…";
  const started = performance.now();
  try {
    const body = {messages: [{role: "user", content: text}],
                  max_tokens: Number(form.elements.max_tokens.value) || 64,
                  temperature: Number(form.elements.temperature.value) || 0};
    const reply = await api("POST", form.dataset.endpoint + "/chat/completions", body);
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    answer.className = "chat-answer";
    answer.innerHTML = `<pre id="chat-text">${escapeHtml(reply.choices[0].message.content)}</pre>` +
      `<span class="muted">${escapeHtml(reply.model)} · ${seconds} s · ` +
      `${reply.usage ? reply.usage.completion_tokens + " tokens" : ""}</span>`;
    await refreshTelemetry(form.dataset.version);
  } catch (e) {
    answer.className = "chat-answer error";
    answer.textContent = e.message;
  } finally {
    button.disabled = false;
  }
}

function wireDeployments() {
  for (const button of document.querySelectorAll("button[data-promote]")) {
    button.addEventListener("click", () => {
      button.disabled = true;
      postThenReload(`/deployments/${button.dataset.promote}/promote`);
    });
  }
  for (const button of document.querySelectorAll("button[data-rollback]")) {
    button.addEventListener("click", () => {
      button.disabled = true;
      postThenReload("/deployments/rollback");
    });
  }
  for (const button of document.querySelectorAll("button[data-drift]")) {
    button.addEventListener("click", () => {
      button.disabled = true;
      showPanel(`Checking drift of version ${escapeHtml(button.dataset.drift)}…`, "running");
      const live = document.getElementById("drift-live");
      const body = live && live.checked ? {endpoint: live.dataset.endpoint} : {};
      postThenReload(`/deployments/${button.dataset.drift}/drift`, body);
    });
  }
  const chat = document.getElementById("chat-form");
  if (chat) chat.addEventListener("submit", ev => { ev.preventDefault(); askModel(chat); });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-stage-form]")) {
    form.addEventListener("submit", ev => { ev.preventDefault(); submitStageForm(form); });
  }
  for (const input of document.querySelectorAll("[data-autosubmit]")) {
    input.addEventListener("change", () => input.form.submit());
  }
  for (const form of document.querySelectorAll("form[data-quants]")) followFormat(form);
  wireDeployments();
});
