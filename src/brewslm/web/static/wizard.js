/* BrewSLM first-run wizard (templates/wizard*.html), on top of app.js's api() and followJob().
 * Each action starts one job; when it ends the page reloads and the server, reading the
 * project, shows the next step (or the failure on this one). A job still running when the
 * page loads (data-follow-job) is followed again.
 */
"use strict";

const wizard = {
  el: null,
  get project() { return this.el.dataset.project; },
  stagePath(stage) { return `/api/projects/${encodeURIComponent(this.project)}/stages/${stage}`; },
};

function wizardError(e) {
  showPanel(`<span class="error">${escapeHtml(e.message)}</span>`, "failed");
}

function busy(on) {
  for (const b of wizard.el.querySelectorAll("button")) b.disabled = on;
}

/* Start a stage as a job, follow it in the job panel, then reload to the step it leads to. */
async function runWizardJob(stage, params, options) {
  busy(true);
  try {
    const job = await api("POST", wizard.stagePath(stage), params || {});
    await followWizardJob(job.id, job.created_at, options);
  } catch (e) {
    busy(false);
    wizardError(e);
  }
}

async function followWizardJob(jobId, since, options) {
  const live = options && options.live;
  const poll = live ? setInterval(() => refreshLiveRuns(since), 1500) : null;
  const end = await followJob(jobId, {reload: false});
  if (poll) clearInterval(poll);
  window.location.reload();
  return end;
}

/* Step 5 while the autopilot runs: every stage run it started, with its counts. */
async function refreshLiveRuns(since) {
  const body = document.querySelector("#live-runs tbody");
  if (!body) return;
  const data = await api("GET", `/api/projects/${encodeURIComponent(wizard.project)}/runs`).catch(() => null);
  if (!data) return;
  const runs = data.runs.filter(r => !since || r.started_at >= since);
  body.innerHTML = runs.map(r => {
    const l = r.ledger || {};
    const cell = v => `<td class="num">${v === undefined || v === null ? "" : escapeHtml(v)}</td>`;
    return `<tr data-stage="${escapeHtml(r.stage)}"><td>${escapeHtml(r.stage)}</td>` +
      `<td><span class="status ${escapeHtml(r.status)}">${escapeHtml(r.status)}</span></td>` +
      cell(l.in) + cell(l.out) + cell(l.dropped) +
      cell(r.duration_s === null ? "" : r.duration_s.toFixed(1)) + "</tr>";
  }).join("");
}

/* Step 1: create the project, then continue on its own wizard page. */
function onCreateProject(form) {
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const body = formJson(form);
    try {
      await api("POST", "/api/projects", body);
      window.location = `/projects/${encodeURIComponent(body.name)}/wizard`;
    } catch (e) { wizardError(e); }
  });
}

/* Upload with XMLHttpRequest for its progress events; resolves to {path, bytes, sha256, name}. */
function uploadFile(file, progressEl) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/projects/${encodeURIComponent(wizard.project)}/uploads`);
    xhr.withCredentials = true;
    xhr.upload.onprogress = ev => {
      if (ev.lengthComputable) { progressEl.hidden = false; progressEl.value = ev.loaded / ev.total; }
    };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText || "{}"); } catch (_) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
      const err = data.error || {code: "http_" + xhr.status, message: xhr.responseText};
      reject(Object.assign(new Error(err.code + ": " + err.message), {body: err, status: xhr.status}));
    };
    xhr.onerror = () => reject(new Error("upload_failed: the connection was lost"));
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}

/* Step 2: upload a file (then ingest its path) or ingest a path or source string. */
function onData() {
  const upload = document.getElementById("upload-form");
  if (upload) upload.addEventListener("submit", async ev => {
    ev.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    if (!file) return;
    busy(true);
    showPanel(`Uploading ${escapeHtml(file.name)}…`, "running");
    try {
      const saved = await uploadFile(file, document.getElementById("upload-progress"));
      showPanel(`Uploaded <code>${escapeHtml(saved.name)}</code> (${saved.bytes} bytes)`, "running");
      await runWizardJob("ingest", {source: saved.path});
    } catch (e) { busy(false); wizardError(e); }
  });
  const source = document.getElementById("source-form");
  if (source) source.addEventListener("submit", ev => {
    ev.preventDefault();
    runWizardJob("ingest", {source: document.getElementById("source-input").value.trim()});
  });
  for (const button of document.querySelectorAll("button.ingest-upload")) {
    button.addEventListener("click", () => runWizardJob("ingest", {source: button.dataset.source}));
  }
}

/* Steps 3 and 4: buttons that start one stage (introspect, map --dry-run, map). */
function onStageButtons() {
  for (const button of document.querySelectorAll("button[data-wizard-stage]")) {
    button.addEventListener("click", () => {
      const params = button.dataset.params ? JSON.parse(button.dataset.params) : {};
      runWizardJob(button.dataset.wizardStage, params);
    });
  }
}

/* Step 5: the autopilot's parameters from the form (max steps and overrides as --set). */
function runParams(form) {
  const overrides = [];
  const steps = form.elements.max_steps.value;
  if (steps) overrides.push(`max_steps=${Number(steps)}`);
  for (const line of form.elements.overrides.value.split(/\n/)) {
    if (line.trim()) overrides.push(line.trim());
  }
  return {data: form.dataset.source, recipe: form.elements.recipe.value,
          deploy: form.elements.deploy.checked, strict: form.elements.strict.checked,
          overrides};
}

function onRun() {
  const form = document.getElementById("run-form");
  if (!form) return;
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    busy(true);
    try {
      const job = await api("POST", wizard.stagePath("run"), runParams(form));
      form.hidden = true;
      const summary = document.getElementById("summary");
      if (summary) summary.hidden = true;
      document.getElementById("run-live").hidden = false;
      await followWizardJob(job.id, job.created_at, {live: true});
    } catch (e) { busy(false); wizardError(e); }
  });
}

/* The ask box: one user message to the project's endpoint; prints the answer. */
function onAsk() {
  const form = document.getElementById("ask-form");
  if (!form) return;
  const out = document.getElementById("ask-answer");
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const question = document.getElementById("ask-input").value.trim();
    if (!question) return;
    out.hidden = false;
    out.className = "answer pending";
    out.textContent = "…";
    try {
      const reply = await api("POST", form.dataset.endpoint, {
        messages: [{role: "user", content: question}], max_tokens: 64, temperature: 0});
      out.className = "answer";
      out.textContent = reply.choices[0].message.content;
    } catch (e) {
      out.className = "answer error";
      out.textContent = e.message;
    }
  });
}

function resumeRunningJob() {
  const {followJob: jobId, followKind: kind, followSince: since} = wizard.el.dataset;
  if (!jobId) return;
  busy(true);
  if (kind === "run") refreshLiveRuns(since);
  followWizardJob(jobId, since, {live: kind === "run"});
}

document.addEventListener("DOMContentLoaded", () => {
  wizard.el = document.getElementById("wizard");
  if (!wizard.el) return;
  const create = document.getElementById("wizard-project");
  if (create) onCreateProject(create);
  onData();
  onStageButtons();
  onRun();
  onAsk();
  resumeRunningJob();
  const current = document.getElementById("step-" + wizard.el.dataset.step);
  if (current && wizard.el.dataset.step > 2) current.scrollIntoView({block: "start"});
});
