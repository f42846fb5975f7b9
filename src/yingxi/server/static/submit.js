/* Submitting: the Ark task body for a prompt, the multipart form for a YAML script, and the Shoot button. */

import { $, API, FILMS_API, KEY_STORE, api, describe, hideBanner, setKeyState, showBanner, state } from "./core.js";
import { parseOutline } from "./editor.js";
import { clearErrors, showErrorNear } from "./errors.js";
import { openTask } from "./monitor.js";
import { loadTasks } from "./reels.js";

function radioValue(name) {
  const el = document.querySelector(`input[name="${name}"]:checked`);
  return el ? el.value : undefined;
}

/** A number field's whole number: null when it is empty, NaN for a fraction or no number at all. */
function wholeNumber(id) {
  const input = $(id);
  if (input.validity.badInput) return NaN; // the browser holds text that is no number; .value reads ""
  if (input.value.trim() === "") return null;
  const n = Number(input.value); // not parseInt: "2.5" is no 2, and "1e3" is 1000
  return Number.isInteger(n) ? n : NaN;
}

/** Duration (when one applies) and seed are whole numbers, or their error shows beside them; false then. */
function numbersOk(text) {
  const fields = [["seed", "seed must be a whole number (leave it empty for a random one)"]];
  if (!parseOutline(text).length) fields.unshift(["duration", "duration must be a whole number of seconds"]);
  let ok = true;
  for (const [id, message] of fields) {
    if (!Number.isNaN(wholeNumber(id))) continue;
    const typed = $(id).value.trim();
    showErrorNear({ param: id, message: typed ? `${message}, not ${typed}` : message });
    ok = false;
  }
  return ok;
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
  const duration = wholeNumber("duration");
  if (!parseOutline(text).length && duration !== null) body.duration = duration;
  const seed = wholeNumber("seed");
  if (seed !== null) body.seed = seed;
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

export async function submitFilm(ev) {
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
  if (state.mode === "prompt" && !numbersOk(text)) return;
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
