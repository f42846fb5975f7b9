/* Errors beside what they are about: a shot of the outline, a field, an attached file. */

import { $, state } from "./core.js";

export function clearErrors() {
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
export function markShot(number, message) {
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
export function showErrorNear(err) {
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
