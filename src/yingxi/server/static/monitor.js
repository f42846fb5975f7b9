/* The screening room: polls the task on the monitor, shows its progress and phase, then plays the film
   or says why there is none. */

import { $, API, FINISHED, api, describe, showBanner, state } from "./core.js";
import { showErrorNear } from "./errors.js";
import { loadTasks, updateEntry } from "./reels.js";

const POLL_MS = 1000;
const REDUNDANT_MESSAGE = /^(shooting shot \d+|editing and encoding|done)$/; // already said by phase()

function stopPolling() {
  if (state.pollTimer) clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

export function openTask(id) {
  stopPolling();
  state.current = id;
  state.shownVideo = null;
  const video = $("video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  video.hidden = true;
  $("screen-empty").hidden = false;
  $("screen-text").textContent = "Loading…";
  $("task-error").hidden = true;
  $("download").hidden = true;
  $("subtitles").hidden = true;
  $("reuse").hidden = true;
  $("progress-wrap").hidden = true;
  $("task-id").textContent = id;
  $("task-facts").textContent = "";
  highlightActive();
  poll();
}

export async function poll() {
  const id = state.current;
  if (!id) return;
  let task;
  try {
    task = await api("GET", `${API}/${encodeURIComponent(id)}`);
  } catch (err) {
    if (id !== state.current) return;
    if (err.status === 404) {
      showMonitorError({ code: "ResourceNotFound", message: err.message }, "error");
      return;
    }
    showBanner(describe(err));
    state.pollTimer = setTimeout(poll, POLL_MS * 3);
    return;
  }
  if (id !== state.current) return;
  renderMonitor(task);
  updateEntry(task);
  if (!FINISHED.has(task.status)) state.pollTimer = setTimeout(poll, POLL_MS);
  else loadTasks();
}

/** Where a running render is: the server counts shots from 1; 0 is planning, total + 1 is the edit. */
function phase(task) {
  const n = task.total_shots || 0;
  const i = task.current_shot || 0;
  if (!n || task.status !== "running") return "";
  if (i < 1) return "planning the shots";
  if (i > n) return "editing and encoding";
  return `shot ${i} of ${n}`;
}

export function setBadge(el, status) {
  el.dataset.status = status;
  el.textContent = status;
}

function showMonitorError(error, status) {
  setBadge($("task-status"), status);
  $("screen").classList.remove("busy");
  $("screen-text").textContent = status === "cancelled" ? "Cancelled." : "No film this time.";
  const box = $("task-error");
  box.replaceChildren();
  const code = document.createElement("b");
  code.textContent = error.code || "Error";
  box.append(code, document.createTextNode(error.message || "the task failed"));
  box.hidden = false;
  // A render that failed on one shot: mark that shot in the editor too, when the editor holds this film.
  if (state.lastTask && state.lastTask.id === state.current && state.lastTask.revised_prompt === $("prompt").value) {
    showErrorNear({ message: error.message || "" });
  }
}

function renderMonitor(task) {
  state.lastTask = task;
  setBadge($("task-status"), task.status);
  const facts = [task.resolution, task.ratio, task.duration ? `${task.duration}s` : null, `seed ${task.seed}`];
  $("task-facts").textContent = facts.filter(Boolean).join(" · ");
  $("reuse").hidden = !task.revised_prompt;
  const running = task.status === "queued" || task.status === "running";
  $("screen").classList.toggle("busy", running);
  $("progress-wrap").hidden = !(running || task.status === "succeeded");
  const pct = Math.max(0, Math.min(100, Math.round(task.progress ?? (task.status === "succeeded" ? 100 : 0))));
  $("progress-fill").style.width = `${pct}%`;
  $("progressbar").setAttribute("aria-valuenow", String(pct));
  $("progress-percent").textContent = `${pct}%`;
  const shot = phase(task);
  $("progress-shot").textContent = running ? shot : task.total_shots ? `${task.total_shots} shots` : "";
  const message = REDUNDANT_MESSAGE.test(task.message || "") ? "" : task.message;
  $("progress-message").textContent = running ? message : "";
  if (task.status === "queued") $("screen-text").textContent = "Waiting in the queue…";
  if (task.status === "running") $("screen-text").textContent = `${shot ? shot[0].toUpperCase() + shot.slice(1) : "Shooting"}…`;

  if (task.status === "succeeded" && task.content && task.content.video_url) {
    $("task-error").hidden = true;
    if (state.shownVideo !== task.id) {
      state.shownVideo = task.id;
      const video = $("video");
      video.src = task.content.video_url;
      video.hidden = false;
      $("screen-empty").hidden = true;
      const a = $("download");
      a.href = task.content.video_url;
      a.setAttribute("download", `${task.id}.mp4`);
      a.hidden = false;
      const srt = $("subtitles");
      srt.hidden = !task.content.subtitles_url;
      if (task.content.subtitles_url) {
        srt.href = task.content.subtitles_url;
        srt.setAttribute("download", `${task.id}.srt`);
      }
    }
  } else if (task.status === "succeeded") {
    showMonitorError({ code: "NoVideo", message: "the task succeeded but its video is gone" }, "expired");
  } else if (FINISHED.has(task.status)) {
    const fallback = { code: task.status, message: `the task is ${task.status}` };
    showMonitorError(task.error || fallback, task.status);
  }
}

export function highlightActive() {
  for (const li of document.querySelectorAll("#tasks .task")) {
    li.classList.toggle("active", li.dataset.id === state.current);
  }
}
