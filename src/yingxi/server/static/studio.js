/* yingxi studio: write a film, attach references, submit an Ark task, watch it render, screen it.
   Plain JS, no build step; talks only to this server's /api/v3 (Bearer key from localStorage). */
"use strict";

const API = "/api/v3/contents/generations/tasks";
const FILMS_API = "/api/v1/films"; // the YAML tab's scripts go to the native film API
const YAML_STORE = "yingxi.yamlDraft";
const MODE_STORE = "yingxi.mode";
const KEY_STORE = "yingxi.apiKey";
const DRAFT_STORE = "yingxi.draft";
const PAGE_SIZE = 10;
const POLL_MS = 1000;
const LIST_POLL_MS = 3000; // the reels refresh while any film on the page is unfinished
const MAX_IMAGES = 9; // the server's limit on images per task (first + last + references)
const SHOT_HEADER = /^\s*(?:shot|镜头)\s*(\d+)\s*(?:[(（]([^)）]*)[)）])?\s*[:：]\s*(.*)$/i;
const DEFAULT_SHOT_SECONDS = 5;
// Until /api/v1/limits answers: the film's own table (film/limits.py), which the server serves.
const DEFAULT_LIMITS = { seconds: { min: 0.25, max: 60 }, shot_seconds: { min: 0.25, max: 60 } };
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
  refs: { first_frame: [], last_frame: [], reference_image: [], music: [] }, // [{name, url, file, label}]
  mode: "prompt", // "prompt" (Ark task) | "yaml" (native film API)
  limits: DEFAULT_LIMITS,
  contentMap: [], // what each item of the last request's content list was, to place its errors
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
  constructor(status, code, message, param = null, shot = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
    this.shot = shot;
  }
}

async function api(method, path, body) {
  if (!state.key) throw new ApiFailure(0, "NoKey", "Enter your API key first (top right), then try again.");
  const opts = { method, headers: { Authorization: `Bearer ${state.key}` } };
  if (body instanceof FormData) {
    opts.body = body; // the browser writes the multipart boundary
  } else if (body !== undefined) {
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
    throw new ApiFailure(res.status, err.code || `HTTP${res.status}`, message, err.param ?? null, err.shot ?? null);
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
    li.dataset.shot = s.number;
    li.append(n, t);
    list.append(li);
    const { min, max } = state.limits.shot_seconds;
    if (seconds < min || seconds > max) markShot(s.number, `${seconds}s is out of range; a shot lasts ${min}s to ${max}s`);
  }
  $("outline-summary").textContent = `${shots.length} shot${shots.length > 1 ? "s" : ""} · ~${+total.toFixed(2)}s`;
}

function saveDraft() {
  localStorage.setItem(DRAFT_STORE, $("prompt").value);
  localStorage.setItem(YAML_STORE, $("yaml").value);
}

function setMode(mode) {
  state.mode = mode;
  localStorage.setItem(MODE_STORE, mode);
  $("tab-prompt").setAttribute("aria-selected", String(mode === "prompt"));
  $("tab-yaml").setAttribute("aria-selected", String(mode === "yaml"));
  $("prompt-pane").hidden = mode !== "prompt";
  $("yaml-pane").hidden = mode !== "yaml";
  $("insert-example").hidden = mode !== "prompt";
  $("outline-summary").hidden = mode !== "prompt"; // the prompt's shot count; a script's is not counted here
  // A script sets its own size and durations; those fields are for prompts.
  for (const id of ["duration", "seed"]) $(id).disabled = mode === "yaml" || (id === "duration" && parseOutline($("prompt").value).length > 0);
  document.querySelectorAll('#ratio input, #resolution input').forEach((el) => (el.disabled = mode === "yaml"));
  clearErrors();
}

async function loadLimits() {
  try {
    const res = await fetch("/api/v1/limits");
    if (!res.ok) return;
    state.limits = await res.json();
  } catch (e) {
    return; /* the film's own table stays */
  }
  const { min, max } = state.limits.seconds;
  const d = $("duration");
  d.min = String(Math.max(1, Math.ceil(min))); // Ark durations are whole seconds
  d.max = String(Math.floor(max));
  d.title = d.title || `${d.min} to ${d.max} seconds`;
  renderOutline();
}

// -- errors beside what they are about ------------------------------------------------------------
function clearErrors() {
  for (const el of document.querySelectorAll(".field-error")) {
    if (el.closest(".thumb") || el.closest(".outline")) el.remove();
    else el.hidden = true;
  }
  for (const el of document.querySelectorAll(".has-error")) el.classList.remove("has-error");
  for (const el of document.querySelectorAll(".shot-error")) el.remove();
}

function fieldError(id, message, input) {
  const box = $(id);
  box.textContent = message;
  box.hidden = false;
  if (input) input.classList.add("has-error");
  return box;
}

/** Shot N's entry in the outline, marked with the message; false when the outline has no such shot. */
function markShot(number, message) {
  const li = document.querySelector(`#outline li[data-shot="${CSS.escape(String(number))}"]`);
  if (!li) return false;
  li.classList.add("has-error");
  li.querySelector(".shot-error")?.remove();
  const note = document.createElement("div");
  note.className = "shot-error";
  note.setAttribute("role", "alert");
  note.textContent = message;
  li.append(note);
  return true;
}

function markRef(role, index, message) {
  const thumb = document.querySelectorAll(`#thumbs-${role} .thumb`)[index];
  if (!thumb) return false;
  thumb.classList.add("has-error");
  const note = document.createElement("div");
  note.className = "field-error";
  note.setAttribute("role", "alert");
  note.textContent = message;
  thumb.append(note);
  return true;
}

/** Put an API error where the person is looking: beside its shot, field or file (the banner says it too). */
function showErrorNear(err) {
  const message = err.message || "";
  const param = err.param || "";
  const shot = err.shot ?? (message.match(/^shot (\d+)\b/i) || [])[1];
  if (state.mode === "yaml" && (shot || /^(shots|characters|refs|style|title|music|script)/.test(param) || !param)) {
    return fieldError("yaml-error", message, $("yaml"));
  }
  if (shot && markShot(shot, message.replace(/^shot \d+,\s*/i, ""))) return true;
  let m = param.match(/^content\[(\d+)\]/);
  if (m && state.contentMap[+m[1]] && state.contentMap[+m[1]].role) {
    const { role, index } = state.contentMap[+m[1]];
    if (markRef(role, index, message)) return true;
  }
  m = param.match(/^reference_images\[(\d+)\]/);
  if (m && markRef("reference_image", +m[1] - 1, message)) return true;
  if (param === "duration" && !shot) return fieldError("duration-error", message, $("duration"));
  if (param === "seed") return fieldError("seed-error", message, $("seed"));
  if (shot || /^(prompt|style|shots|header|camera|framing|transition|dialogue)/.test(param)) {
    return fieldError("prompt-error", message, $("prompt"));
  }
  return false;
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
  return ["first_frame", "last_frame", "reference_image"].reduce((n, role) => n + state.refs[role].length, 0);
}

async function addFiles(role, files) {
  for (const file of files) {
    if (role === "music") {
      if (!file.type.startsWith("audio/")) {
        showBanner(`"${file.name}" is not an audio file; music must be MP3, WAV, OGG, FLAC or M4A.`);
        continue;
      }
      state.refs.music = [{ name: file.name, url: await readAsDataUrl(file), file }];
      continue;
    }
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
    if (single) state.refs[role] = [{ name: file.name, url, file }];
    else state.refs[role].push({ name: file.name, url, file, label: "" });
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
      if (role === "music") {
        div.classList.add("audio");
        div.title = ref.name;
        div.append(name, remove);
      } else {
        const img = document.createElement("img");
        img.src = ref.url;
        img.alt = `${role.replace("_", " ")}: ${ref.name}`;
        if (role === "reference_image") {
          // Each reference is a character's: the name ties it to the shots where they speak or are mentioned.
          div.classList.add("named");
          const frame = document.createElement("div");
          frame.className = "frame";
          frame.append(img, name, remove);
          const label = document.createElement("input");
          label.type = "text";
          label.className = "ref-name";
          label.placeholder = "character name";
          label.value = ref.label || "";
          label.setAttribute("aria-label", `Character shown in ${ref.name}`);
          label.addEventListener("input", () => (ref.label = label.value));
          const mention = document.createElement("span");
          mention.className = "ref-mention";
          mention.textContent = `@image${i + 1}`;
          mention.title = `Write @image${i + 1} (or @图片${i + 1}) in a shot to put this image in it`;
          div.append(frame, label, mention);
        } else {
          div.append(img, name, remove);
        }
      }
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
  state.contentMap = [];
  if (text.trim()) {
    content.push({ type: "text", text });
    state.contentMap.push({});
  }
  for (const role of ["first_frame", "last_frame", "reference_image"]) {
    state.refs[role].forEach((ref, index) => {
      const item = { type: "image_url", image_url: { url: ref.url }, role };
      if (role === "reference_image" && ref.label && ref.label.trim()) item.name = ref.label.trim();
      content.push(item);
      state.contentMap.push({ role, index });
    });
  }
  state.refs.music.forEach((ref, index) => {
    content.push({ type: "audio_url", audio_url: { url: ref.url }, role: "music" }); // the music bed (yingxi's role)
    state.contentMap.push({ role: "music", index });
  });
  const body = {
    model: $("model").value.trim() || $("model").placeholder || "yingxi",
    content,
    ratio: radioValue("ratio"),
    resolution: radioValue("resolution"),
  };
  if (!parseOutline(text).length && $("duration").value) body.duration = parseInt($("duration").value, 10);
  if ($("seed").value !== "") body.seed = parseInt($("seed").value, 10);
  if ($("burn-subtitles").checked) body.burn_subtitles = true;
  return body;
}

/** The YAML tab's request: the script plus every attached file as a part named by its file name. */
function buildFilmForm() {
  const form = new FormData();
  form.append("script", $("yaml").value);
  for (const role of ["first_frame", "last_frame", "reference_image", "music"]) {
    for (const ref of state.refs[role]) {
      form.append(ref.name, ref.file, ref.name);
      if (role === "reference_image" && ref.label && ref.label.trim()) form.append("ref", `${ref.label.trim()}=${ref.name}`);
      if (role === "music") form.append("music", ref.name);
    }
  }
  if ($("burn-subtitles").checked) form.append("burn_subtitles", "true");
  const model = $("model").value.trim();
  if (model) form.append("model", model);
  return form;
}

async function submitFilm(ev) {
  ev.preventDefault();
  const text = $("prompt").value;
  clearErrors();
  if (state.mode === "yaml" && !$("yaml").value.trim()) {
    showBanner("Write a YAML script first (a mapping with a shots: list).");
    $("yaml").focus();
    return;
  }
  if (state.mode === "prompt" && !text.trim() && !state.refs.first_frame.length) {
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
    const created =
      state.mode === "yaml" ? await api("POST", FILMS_API, buildFilmForm()) : await api("POST", API, buildRequest());
    setKeyState("ok", "connected");
    openTask(created.id);
    loadTasks();
  } catch (err) {
    if (err.status === 401) setKeyState("bad", "rejected");
    showBanner(describe(err));
    showErrorNear(err);
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
  $("subtitles").hidden = true;
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
