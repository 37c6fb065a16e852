/* BrewSLM data pages (data, clean, manifest), on top of app.js:
 *  - every div[data-figure] is drawn with plot() from the JSON script it names
 *  - form[data-stage-form="S"] starts stage S with the form's fields as parameters
 *  - the mapping form: the mapper select shows that mapper's slots; "Preview (dry-run)" and
 *    "Commit mapping" start stage map with {mapper, field_map} (and dry_run for the preview)
 */
"use strict";

function projectName() {
  return (document.querySelector("nav.sub") || {dataset: {}}).dataset.project;
}

function drawFigures() {
  for (const el of document.querySelectorAll("div[data-figure]")) {
    const source = document.getElementById(el.dataset.figure);
    if (source) plot(el.id, source.textContent);
  }
}

async function runStage(stage, params, button) {
  if (button) button.disabled = true;
  try {
    await startStage(projectName(), stage, params);
  } catch (e) {
    /* startStage has shown the refusal in #job-panel */
  } finally {
    if (button) button.disabled = false;
  }
}

function bindStageForms() {
  for (const form of document.querySelectorAll("form[data-stage-form]")) {
    form.addEventListener("submit", ev => {
      ev.preventDefault();
      runStage(form.dataset.stageForm, formJson(form), form.querySelector("button[type=submit]"));
    });
  }
}

function selectedFieldset(form) {
  return form.querySelector(`fieldset[data-mapper="${form.elements.mapper.value}"]`);
}

function showMapperSlots(form) {
  for (const fieldset of form.querySelectorAll("fieldset[data-mapper]")) {
    fieldset.hidden = fieldset !== selectedFieldset(form);
    fieldset.disabled = fieldset.hidden;
  }
}

function mappingParams(form) {
  const fieldMap = {};
  for (const input of selectedFieldset(form).querySelectorAll("input[data-slot]")) {
    if (input.value.trim()) fieldMap[input.dataset.slot] = input.value.trim();
  }
  return {mapper: form.elements.mapper.value, field_map: fieldMap};
}

function bindMappingForm() {
  const form = document.getElementById("mapping-form");
  if (!form) return;
  showMapperSlots(form);
  form.elements.mapper.addEventListener("change", () => showMapperSlots(form));
  for (const button of form.querySelectorAll("button[data-map-action]")) {
    button.addEventListener("click", () => {
      if (!form.reportValidity()) return;
      const params = mappingParams(form);
      if (button.dataset.mapAction === "preview") params.dry_run = true;
      runStage("map", params, button);
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  drawFigures();
  bindStageForms();
  bindMappingForm();
});
