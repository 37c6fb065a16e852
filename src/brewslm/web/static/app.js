/* BrewSLM UI: the little JavaScript the server-rendered pages need.
 *  - api(method, path, body): the REST API (same origin; the token cookie rides along)
 *  - startStage(project, stage, params): POST /api/projects/P/stages/S, then follow the job
 *  - followJob(id): the job's server-sent progress in #job-panel; reloads the page at the end
 *  - plot(elementId, figure): draw a plotly figure the server built
 *  - forms with data-api-form="/api/..." submit as JSON (data-then: where to go afterwards)
 *  - buttons with data-stage="S" (and optional data-params='{"k": v}') start a stage
 */
"use strict";

async function api(method, path, body) {
  const init = {method, headers: {"Accept": "application/json"}, credentials: "same-origin"};
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const err = (data && data.error) || {code: "http_" + response.status, message: text};
    throw Object.assign(new Error(err.code + ": " + err.message), {body: err, status: response.status});
  }
  return data;
}

function showPanel(html, cls) {
  const panel = document.getElementById("job-panel");
  if (!panel) return;
  panel.hidden = false;
  panel.className = "job-panel " + (cls || "");
  panel.innerHTML = html;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

async function startStage(project, stage, params) {
  showPanel("Starting " + escapeHtml(stage) + "…", "running");
  try {
    const job = await api("POST", `/api/projects/${encodeURIComponent(project)}/stages/${stage}`, params || {});
    return followJob(job.id, {reload: true});
  } catch (e) {
    showPanel(`<span class="error">${escapeHtml(e.message)}</span>`, "failed");
    throw e;
  }
}

function describeProgress(p) {
  const prog = p.progress || {};
  const parts = [`job <code>${escapeHtml(p.id)}</code>`, `<span class="status ${p.status}">${p.status}</span>`];
  if (prog.task) parts.push(escapeHtml(prog.task));
  let bar = "";
  if (prog.total) bar = ` <progress max="${prog.total}" value="${prog.done || 0}"></progress> ${prog.done || 0}/${prog.total}`;
  const fields = Object.entries(prog.fields || {}).map(([k, v]) => `${escapeHtml(k)} ${escapeHtml(typeof v === "number" ? +v.toFixed(4) : v)}`);
  return parts.join(" · ") + bar + (fields.length ? " · " + fields.join(" · ") : "");
}

function followJob(jobId, options) {
  const opts = Object.assign({reload: true, onProgress: null}, options || {});
  return new Promise(resolve => {
    const source = new EventSource(`/api/jobs/${encodeURIComponent(jobId)}/events`);
    source.addEventListener("progress", ev => {
      const p = JSON.parse(ev.data);
      showPanel(describeProgress(p), p.status);
      if (opts.onProgress) opts.onProgress(p);
    });
    source.addEventListener("end", async ev => {
      source.close();
      const end = JSON.parse(ev.data);
      let result = null;
      try { result = await api("GET", `/api/jobs/${encodeURIComponent(jobId)}/result`); } catch (e) { result = e.body; }
      const code = result && (result.error_code || (result.error && result.error.code));
      showPanel(`job <code>${escapeHtml(jobId)}</code> <span class="status ${end.status}">${end.status}</span>` +
                (code ? ` · <span class="error">${escapeHtml(code)}</span>` : "") +
                ` · <a href="/api/jobs/${encodeURIComponent(jobId)}/log?tail=200">log</a>`, end.status);
      resolve({status: end.status, result});
      if (opts.reload && end.status === "succeeded") window.location.reload();
    });
    source.onerror = () => { /* the browser reconnects on its own; "end" closes it */ };
  });
}

function plot(elementId, figure) {
  const el = document.getElementById(elementId);
  if (!el || !window.Plotly) return;
  const fig = typeof figure === "string" ? JSON.parse(figure) : figure;
  // A responsive chart sizes itself to its box: give the box the figure's height, so it
  // never overlaps what follows.
  if (fig.layout && fig.layout.height && !el.style.height) el.style.height = fig.layout.height + "px";
  window.Plotly.newPlot(el, fig.data, fig.layout || {}, {displaylogo: false, responsive: true});
}

function formJson(form) {
  const out = {};
  for (const [key, value] of new FormData(form).entries()) {
    if (value === "") continue;
    const input = form.elements[key];
    if (input && input.type === "number") out[key] = Number(value);
    else if (input && input.type === "checkbox") out[key] = true;
    else if (input && input.dataset && input.dataset.json !== undefined) out[key] = JSON.parse(value);
    else out[key] = value;
  }
  return out;
}

document.addEventListener("DOMContentLoaded", () => {
  const project = (document.querySelector("nav.sub") || {dataset: {}}).dataset.project;
  for (const form of document.querySelectorAll("form[data-api-form]")) {
    form.addEventListener("submit", async ev => {
      ev.preventDefault();
      const body = formJson(form);
      try {
        const data = await api(form.dataset.method || "POST", form.dataset.apiForm, body);
        if (form.dataset.then) window.location = form.dataset.then.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(body[k] ?? ""));
        else if (data && data.id && data.status === "queued") followJob(data.id);
        else window.location.reload();
      } catch (e) {
        showPanel(`<span class="error">${escapeHtml(e.message)}</span>`, "failed");
      }
    });
  }
  for (const button of document.querySelectorAll("button[data-stage]")) {
    button.addEventListener("click", () => {
      button.disabled = true;
      const params = button.dataset.params ? JSON.parse(button.dataset.params) : {};
      startStage(button.dataset.project || project, button.dataset.stage, params)
        .catch(() => { /* startStage has shown the refusal in #job-panel */ })
        .finally(() => { button.disabled = false; });
    });
  }
});
