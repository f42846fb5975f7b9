/* The reels: the page of films with their status, refreshed while any is unfinished; cancel and delete. */

import { $, API, FINISHED, api, describe, setKeyState, showBanner, state } from "./core.js";
import { parseOutline } from "./editor.js";
import { highlightActive, openTask, poll, setBadge } from "./monitor.js";

const PAGE_SIZE = 10;
const LIST_POLL_MS = 3000; // the reels refresh while any film on the page is unfinished

export async function loadTasks(auto = false) {
  if (!state.key) return false;
  if (auto === true && document.querySelector('#tasks [data-armed="1"]')) {
    state.listTimer = setTimeout(() => loadTasks(true), LIST_POLL_MS); // do not undo a half-made delete
    return true;
  }
  let data;
  try {
    data = await api("GET", `${API}?page_num=${state.page}&page_size=${PAGE_SIZE}`);
  } catch (err) {
    if (err.status === 401) {
      setKeyState("bad", "rejected");
      renderTasks([], 0, "This API key was not accepted; check it and connect again.");
    }
    showBanner(describe(err));
    return false;
  }
  if (!data.items.length && state.page > 1 && data.total) {
    state.page = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
    return loadTasks();
  }
  renderTasks(data.items, data.total);
  clearTimeout(state.listTimer);
  if (data.items.some((t) => !FINISHED.has(t.status))) {
    state.listTimer = setTimeout(() => loadTasks(true), LIST_POLL_MS);
  }
  return true;
}

function timeAgo(seconds) {
  const d = Date.now() / 1000 - seconds;
  if (d < 60) return "just now";
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleDateString();
}

function firstLine(text) {
  const shots = parseOutline(text || "");
  if (shots.length) return `${shots.length} shots — ${shots[0].text}`;
  return (text || "").trim().split(/\r?\n/)[0] || "(script)";
}

function metaLine(task) {
  const bits = [timeAgo(task.created_at), task.resolution, task.ratio, task.duration ? `${task.duration}s` : null];
  if (task.status === "running") bits.push(`${task.progress || 0}%`);
  return bits.filter(Boolean).join(" · ");
}

/** Keep the reels' entry of the film on the monitor in step with what polling just learnt. */
export function updateEntry(task) {
  const li = document.querySelector(`#tasks .task[data-id="${CSS.escape(task.id)}"]`);
  if (!li) return;
  setBadge(li.querySelector(".badge"), task.status);
  li.querySelector(".task-meta").textContent = metaLine(task);
}

export function renderTasks(items, total, emptyText) {
  state.total = total;
  const list = $("tasks");
  list.replaceChildren();
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent =
      emptyText || (state.key ? "No films yet. Write one and shoot it." : "Enter your API key to see your films.");
    list.append(li);
  }
  for (const task of items) {
    const li = document.createElement("li");
    li.className = "task";
    li.dataset.id = task.id;
    li.tabIndex = 0;
    const badge = document.createElement("span");
    badge.className = "badge";
    setBadge(badge, task.status);
    const main = document.createElement("div");
    main.className = "task-main";
    const p = document.createElement("div");
    p.className = "task-prompt";
    p.textContent = firstLine(task.revised_prompt);
    p.title = task.revised_prompt || "";
    const meta = document.createElement("div");
    meta.className = "task-meta";
    meta.textContent = metaLine(task);
    main.append(p, meta);
    const actions = document.createElement("div");
    actions.className = "task-actions";
    const del = document.createElement("button");
    del.type = "button";
    del.className = "ghost small danger delete";
    const open = !FINISHED.has(task.status);
    del.textContent = open ? "Cancel" : "Delete";
    del.addEventListener("click", (ev) => {
      ev.stopPropagation();
      if (del.dataset.armed !== "1") {
        del.dataset.armed = "1";
        del.textContent = open ? "Cancel?" : "Delete?";
        setTimeout(() => {
          del.dataset.armed = "";
          del.textContent = open ? "Cancel" : "Delete";
        }, 3000);
        return;
      }
      removeTask(task.id);
    });
    actions.append(del);
    li.append(badge, main, actions);
    const show = () => {
      openTask(task.id);
      $("monitor").scrollIntoView({ block: "nearest", behavior: "smooth" });
    };
    li.addEventListener("click", show);
    li.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") show();
    });
    list.append(li);
  }
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  $("tasks-count").textContent = total ? `${total} film${total > 1 ? "s" : ""}` : "";
  $("page-label").textContent = pages > 1 ? `page ${state.page} of ${pages}` : "";
  $("prev-page").disabled = state.page <= 1;
  $("next-page").disabled = state.page >= pages;
  highlightActive();
}

async function removeTask(id) {
  try {
    await api("DELETE", `${API}/${encodeURIComponent(id)}`);
  } catch (err) {
    showBanner(describe(err));
    return;
  }
  if (id === state.current) poll();
  loadTasks();
}
