/* The script editor: the prompt's shot outline as it is typed, the Prompt/YAML tabs, the drafts kept in
   localStorage and the duration limits the server serves. */

import { $, state } from "./core.js";
import { clearErrors, markShot } from "./errors.js";

export const YAML_STORE = "yingxi.yamlDraft";
export const MODE_STORE = "yingxi.mode";
export const DRAFT_STORE = "yingxi.draft";
const SHOT_HEADER = /^\s*(?:shot|镜头)\s*(\d+)\s*(?:[(（]([^)）]*)[)）])?\s*[:：]\s*(.*)$/i;
const DEFAULT_SHOT_SECONDS = 5;

export const EXAMPLE = `Ink-wash style, subdued blue-grey palette, soft winter light.
Shot 1 (4s, extreme wide, slow pan left): Two men stand on the frozen Yellow River at dusk.
Shot 2 (3s, close-up, static, crossfade): The older man lifts a steaming thermos flask.
OLD JIA: "Happy new year."
Shot 3 (3s, medium, dolly in, continue): The younger man laughs and takes the cup.
Shot 4 (5s, wide, crane up, fade): Fireworks climb into the night sky over the ice.`;

export function parseOutline(text) {
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

export function renderOutline() {
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

export function saveDraft() {
  localStorage.setItem(DRAFT_STORE, $("prompt").value);
  localStorage.setItem(YAML_STORE, $("yaml").value);
}

export function setMode(mode) {
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

export async function loadLimits() {
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
