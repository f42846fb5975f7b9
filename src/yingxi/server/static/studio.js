/* yingxi studio: write a film, attach references, submit an Ark task, watch it render, screen it.
   Plain JS modules, no build step; talks only to this server's /api/v3 (Bearer key from localStorage).
   This is the entry (index.html loads it as a module): it connects the key and wires the page's
   controls to core.js (API, state), editor.js, errors.js, refs.js, submit.js, monitor.js and reels.js. */

import { $, KEY_STORE, hideBanner, setKeyState, state } from "./core.js";
import { DRAFT_STORE, EXAMPLE, MODE_STORE, YAML_STORE, loadLimits, parseOutline, renderOutline, saveDraft, setMode } from "./editor.js";
import { clearErrors } from "./errors.js";
import { addFiles, renderRefs } from "./refs.js";
import { submitFilm } from "./submit.js";
import { loadTasks, renderTasks } from "./reels.js";

async function connect() {
  state.key = $("api-key").value.trim();
  if (state.key) localStorage.setItem(KEY_STORE, state.key);
  else localStorage.removeItem(KEY_STORE);
  if (!state.key) {
    setKeyState("", "");
    renderTasks([], 0);
    return;
  }
  setKeyState("", "checking…");
  const ok = await loadTasks();
  if (ok) {
    setKeyState("ok", "connected");
    hideBanner();
  }
}

async function loadDefaultModel() {
  try {
    const res = await fetch("/api/v1/health");
    if (!res.ok) return;
    const health = await res.json();
    const name = health.model || health.backend;
    if (name) {
      $("model").placeholder = name;
      const opt = document.createElement("option");
      opt.value = name;
      /* the served backend's row of the registry (backends/registry.py): what it is, whether it makes sound */
      const spec = (health.backends || []).find((b) => b.name === health.backend);
      const caps = health.capabilities || {};
      if (spec) opt.label = spec.summary + (caps.audio ? " (with sound)" : "");
      $("model-list").append(opt);
    }
  } catch (e) {
    /* the model field keeps its placeholder */
  }
}

function init() {
  $("api-key").value = localStorage.getItem(KEY_STORE) || "";
  $("prompt").value = localStorage.getItem(DRAFT_STORE) || "";
  $("yaml").value = localStorage.getItem(YAML_STORE) || "";
  $("model").placeholder = "yingxi";
  renderOutline();
  renderRefs();
  setMode(localStorage.getItem(MODE_STORE) === "yaml" ? "yaml" : "prompt");
  loadLimits();
  $("tab-prompt").addEventListener("click", () => setMode("prompt"));
  $("tab-yaml").addEventListener("click", () => setMode("yaml"));
  $("yaml").addEventListener("input", () => {
    clearErrors();
    saveDraft();
  });
  $("yaml").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("film-form").requestSubmit();
  });
  $("music").addEventListener("change", (ev) => addFiles("music", ev.target.files).then(() => (ev.target.value = "")));

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.page = 1;
    connect();
  });
  $("key-toggle").addEventListener("click", () => {
    const input = $("api-key");
    input.type = input.type === "password" ? "text" : "password";
    $("key-toggle").textContent = input.type === "password" ? "show" : "hide";
  });
  $("banner-close").addEventListener("click", hideBanner);
  $("prompt").addEventListener("input", () => {
    clearErrors();
    renderOutline();
    saveDraft();
  });
  $("duration").addEventListener("input", renderOutline);
  $("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("film-form").requestSubmit();
  });
  $("insert-example").addEventListener("click", () => {
    const box = $("prompt");
    box.value = box.value.trim() ? `${box.value.replace(/\s+$/, "")}\n\n${EXAMPLE}` : EXAMPLE;
    renderOutline();
    saveDraft();
    box.focus();
  });
  $("clear-prompt").addEventListener("click", () => {
    $("prompt").value = "";
    renderOutline();
    saveDraft();
  });
  $("first-frame").addEventListener("change", (ev) => addFiles("first_frame", ev.target.files).then(() => (ev.target.value = "")));
  $("last-frame").addEventListener("change", (ev) => addFiles("last_frame", ev.target.files).then(() => (ev.target.value = "")));
  $("reference-images").addEventListener("change", (ev) =>
    addFiles("reference_image", ev.target.files).then(() => (ev.target.value = "")),
  );
  $("film-form").addEventListener("submit", submitFilm);
  $("refresh").addEventListener("click", () => loadTasks());
  $("prev-page").addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    loadTasks();
  });
  $("next-page").addEventListener("click", () => {
    state.page += 1;
    loadTasks();
  });
  $("reuse").addEventListener("click", () => {
    const task = state.lastTask;
    if (!task) return;
    // The film's script and its settings (not its seed: a new take), in the Prompt tab where they show.
    $("prompt").value = task.revised_prompt || "";
    for (const name of ["ratio", "resolution"]) {
      const radio = document.querySelector(`input[name="${name}"][value="${CSS.escape(task[name] || "")}"]`);
      if (radio) radio.checked = true;
    }
    if (task.duration && !parseOutline($("prompt").value).length) $("duration").value = String(task.duration);
    setMode("prompt");
    renderOutline();
    saveDraft();
  });
  $("video").addEventListener("error", () => {
    if (!$("video").getAttribute("src")) return;
    const e = $("video").error;
    $("task-error").replaceChildren(
      document.createTextNode(
        `This browser cannot play the film here (${e ? `media error ${e.code}` : "unknown error"}); use Download MP4.`,
      ),
    );
    $("task-error").hidden = false;
  });

  loadDefaultModel();
  state.key = $("api-key").value.trim();
  if (state.key) connect();
  else renderTasks([], 0);
}

document.addEventListener("DOMContentLoaded", init);
