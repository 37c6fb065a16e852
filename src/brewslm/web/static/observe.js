/* The observability pages' own script: the support bundle downloads through fetch, so the page
 * can say how big it was and show the new bundle_created record (with its redaction counts)
 * without leaving the page. Without JavaScript the form is a plain GET of the same route. */
"use strict";

function bundleFileName(response) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : "bundle.zip";
}

function saveBlob(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

async function refreshSection(id) {
  const html = await (await fetch(window.location.pathname, {credentials: "same-origin"})).text();
  const fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
  const current = document.getElementById(id);
  if (fresh && current) current.replaceWith(fresh);
}

async function downloadBundle(form) {
  const since = form.elements.since.value.trim();
  const url = form.action + (since ? "?since=" + encodeURIComponent(since) : "");
  showPanel("Building the support bundle…", "running");
  const response = await fetch(url, {credentials: "same-origin"});
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const err = body.error || {code: "http_" + response.status, message: response.statusText};
    throw new Error(err.code + ": " + err.message);
  }
  const blob = await response.blob();
  const name = bundleFileName(response);
  saveBlob(blob, name);
  showPanel(`Downloaded <code>${escapeHtml(name)}</code>, ${blob.size} bytes`, "succeeded");
  await refreshSection("bundles-made");
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("bundle-form");
  if (!form) return;
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await downloadBundle(form);
    } catch (e) {
      showPanel(`<span class="error">${escapeHtml(e.message)}</span>`, "failed");
    } finally {
      button.disabled = false;
    }
  });
});
