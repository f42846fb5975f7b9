/* yingxi studio: write a film, attach references, submit an Ark task, watch it render, screen it.
   Plain JS, no build step; talks only to this server's /api/v3 (Bearer key from localStorage). */
"use strict";

const API = "/api/v3/contents/generations/tasks";
const KEY_STORE = "yingxi.apiKey";
const DRAFT_STORE = "yingxi.draft";
const PAGE_SIZE = 10;
const POLL_MS = 1000;
const LIST_POLL_MS = 3000; // the reels refresh while any film on the page is unfinished
const MAX_IMAGES = 9; // the server's limit on images per task (first + last + references)
const SHOT_HEADER = /^\s*(?:shot|镜头)\s*(\d+)\s*(?:[(（]([^)）]*)[)）])?\s*[:：]\s*(.*)$/i;
const DEFAULT_SHOT_SECONDS = 5;
const REDUNDANT_MESSAGE = /^(shooting shot \d+|editing and encoding|done)$/; // already said by phase()
const FINISHED = new Set(["succeeded", "failed", "cancelled", "expired"]);

const EXAMPLE = `Ink-wash style, subdued blue-grey palette, soft winter light.
Shot 1 (4s, extreme wide, slow pan left): Two men stand on the frozen Yellow River at dusk.
Shot 2 (3s, close-up, static, crossfade): The older man lifts a steaming thermos flask.
OLD JIA: "Happy new year."
Shot 3 (3s, medium, dolly in, continue): The younger man laughs and takes the cup.
Shot 4 (5s, wide, crane up, fade): Fireworks climb into the night sky over the ice.`;

const $ = (id) => document.getElementById(id);

const state = {
  key: "",
  refs: { first_frame: [], last_frame: [], reference_image: [] }, // [{name, url}]
  current: null, // id of the task on the monitor
  pollTimer: null,
  listTimer: null,
  page: 1,
  total: 0,
  shownVideo: null, // the task id whose video is loaded, so polling does not reload it
  lastTask: null,
};

// -- the API ------------------------------------------------------------------------------------
class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  if (!state.key) throw new ApiFailure(0, "NoKey", "Enter your API key first (top right), then try again.");
  const opts = { method, headers: { Authorization: `Bearer ${state.key}` } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiFailure(0, "NetworkError", `Cannot reach the server (${e.message}).`);
  }
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const message = err.message || `${res.status} ${res.statusText}`;
    throw new ApiFailure(res.status, err.code || `HTTP${res.status}`, message);
  }
  return data;
}

function describe(err) {
  if (err.status === 401) return `API key rejected: ${err.message}`;
  return err.message;
}

// -- banner and key -----------------------------------------------------------------------------
function showBanner(text) {
  $("banner-text").textContent = text;
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

function setKeyState(kind, text) {
  const el = $("key-state");
  el.className = `key-state ${kind}`;
  el.textContent = text;
}

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

// -- script editor ------------------------------------------------------------------------------
function parseOutline(text) {
  const shots = [];
  for (const line of text.split(/\r?\n/)) {
    const m = line.match(SHOT_HEADER);
    if (!m) continue;
    const attrs = (m[2] || "").split(",").map((a) => a.trim()).filter(Boolean);
    let seconds = null;
    const rest = [];
    for (const a of attrs) {
      const d = a.match(/^(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)$/i);
      if (d) seconds = parseFloat(d[1]);
      else rest.push(a);
    }
    shots.push({ number: m[1], seconds, attrs: rest, text: m[3].trim() });
  }
  return shots;
}

function renderOutline() {
  const text = $("prompt").value;
  const shots = parseOutline(text);
  const list = $("outline");
  list.replaceChildren();
  const multi = shots.length > 0;
  $("duration").disabled = multi;
  $("duration-hint").textContent = multi ? "· per shot" : "";
  $("duration").title = multi ? "Each shot's duration is set in its header, e.g. Shot 1 (4s, wide)" : "";
  if (!multi) {
    $("outline-summary").textContent = text.trim() ? `one shot · ${$("duration").value || DEFAULT_SHOT_SECONDS}s` : "";
    return;
  }
  let total = 0;
  for (const s of shots) {
    const seconds = s.seconds ?? DEFAULT_SHOT_SECONDS;
    total += seconds;
    const li = document.createElement("li");
    const n = document.createElement("b");
    n.textContent = s.number;
    const t = document.createElement("span");
    t.textContent = [`${seconds}s`, ...s.attrs].join(" · ");
    t.title = s.text;
    li.append(n, t);
    list.append(li);
  }
  $("outline-summary").textContent = `${shots.length} shot${shots.length > 1 ? "s" : ""} · ~${+total.toFixed(2)}s`;
}

function saveDraft() {
  localStorage.setItem(DRAFT_STORE, $("prompt").value);
}

// -- references ---------------------------------------------------------------------------------
function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function imageCount() {
  return Object.values(state.refs).reduce((n, list) => n + list.length, 0);
}

async function addFiles(role, files) {
  for (const file of files) {
    if (!file.type.startsWith("image/")) {
      showBanner(`"${file.name}" is not an image; references must be PNG, JPEG or WebP files.`);
      continue;
    }
    const single = role !== "reference_image";
    if (!single && imageCount() >= MAX_IMAGES) {
      showBanner(`At most ${MAX_IMAGES} images per task (first frame, last frame and references together).`);
      break;
    }
    const url = await readAsDataUrl(file);
    if (single) state.refs[role] = [{ name: file.name, url }];
    else state.refs[role].push({ name: file.name, url });
  }
  renderRefs();
}

function renderRefs() {
  for (const [role, list] of Object.entries(state.refs)) {
    const box = $(`thumbs-${role}`);
    box.replaceChildren();
    list.forEach((ref, i) => {
      const div = document.createElement("div");
      div.className = "thumb";
      div.dataset.role = role;
      const img = document.createElement("img");
      img.src = ref.url;
      img.alt = `${role.replace("_", " ")}: ${ref.name}`;
      const name = document.createElement("span");
      name.className = "thumb-name";
      name.textContent = ref.name;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "✕";
      remove.title = `Remove ${ref.name}`;
      remove.addEventListener("click", () => {
        state.refs[role].splice(i, 1);
        renderRefs();
      });
      div.append(img, name, remove);
      box.append(div);
    });
  }
}

// -- submitting ---------------------------------------------------------------------------------
function radioValue(name) {
  const el = document.querySelector(`input[name="${name}"]:checked`);
  return el ? el.value : undefined;
}

function buildRequest() {
  const text = $("prompt").value;
  const content = [];
  if (text.trim()) content.push({ type: "text", text });
  for (const role of ["first_frame", "last_frame", "reference_image"]) {
    for (const ref of state.refs[role]) content.push({ type: "image_url", image_url: { url: ref.url }, role });
  }
  const body = {
    model: $("model").value.trim() || $("model").placeholder || "yingxi",
    content,
    ratio: radioValue("ratio"),
    resolution: radioValue("resolution"),
  };
  if (!parseOutline(text).length && $("duration").value) body.duration = parseInt($("duration").value, 10);
  if ($("seed").value !== "") body.seed = parseInt($("seed").value, 10);
  return body;
}

async function submitFilm(ev) {
  ev.preventDefault();
  const text = $("prompt").value;
  if (!text.trim() && !state.refs.first_frame.length) {
    showBanner("Write a prompt or a script first (or attach a first frame).");
    $("prompt").focus();
    return;
  }
  const typed = $("api-key").value.trim(); // a key typed but not yet connected is the one meant
  if (typed !== state.key) {
    state.key = typed;
    if (typed) localStorage.setItem(KEY_STORE, typed);
  }
  const button = $("submit");
  button.disabled = true;
  button.textContent = "Submitting…";
  hideBanner();
  try {
    const created = await api("POST", API, buildRequest());
    setKeyState("ok", "connected");
    openTask(created.id);
    loadTasks();
  } catch (err) {
    if (err.status === 401) setKeyState("bad", "rejected");
    showBanner(describe(err));
  } finally {
    button.disabled = false;
    button.textContent = "Shoot the film";
  }
}

// -- the monitor --------------------------------------------------------------------------------
function stopPolling() {
  if (state.pollTimer) clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

function openTask(id) {
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
  $("reuse").hidden = true;
  $("progress-wrap").hidden = true;
  $("task-id").textContent = id;
  $("task-facts").textContent = "";
  highlightActive();
  poll();
}

async function poll() {
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

function setBadge(el, status) {
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
    }
  } else if (task.status === "succeeded") {
    showMonitorError({ code: "NoVideo", message: "the task succeeded but its video is gone" }, "expired");
  } else if (FINISHED.has(task.status)) {
    const fallback = { code: task.status, message: `the task is ${task.status}` };
    showMonitorError(task.error || fallback, task.status);
  }
}

function highlightActive() {
  for (const li of document.querySelectorAll("#tasks .task")) {
    li.classList.toggle("active", li.dataset.id === state.current);
  }
}

// -- reels --------------------------------------------------------------------------------------
async function loadTasks(auto = false) {
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
function updateEntry(task) {
  const li = document.querySelector(`#tasks .task[data-id="${CSS.escape(task.id)}"]`);
  if (!li) return;
  setBadge(li.querySelector(".badge"), task.status);
  li.querySelector(".task-meta").textContent = metaLine(task);
}

function renderTasks(items, total, emptyText) {
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

// -- wiring -------------------------------------------------------------------------------------
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
      $("model-list").append(opt);
    }
  } catch (e) {
    /* the model field keeps its placeholder */
  }
}

function init() {
  $("api-key").value = localStorage.getItem(KEY_STORE) || "";
  $("prompt").value = localStorage.getItem(DRAFT_STORE) || "";
  $("model").placeholder = "yingxi";
  renderOutline();
  renderRefs();

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
    if (!state.lastTask) return;
    $("prompt").value = state.lastTask.revised_prompt || "";
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
