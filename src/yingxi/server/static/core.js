/* The studio's shared core: the element lookup, the page's state, the API client (Bearer key) and the
   banner and key badge every part reports through. */

export const API = "/api/v3/contents/generations/tasks";
export const FILMS_API = "/api/v1/films"; // the YAML tab's scripts go to the native film API
export const KEY_STORE = "yingxi.apiKey";
// Until /api/v1/limits answers: the film's own table (film/limits.py), which the server serves.
const DEFAULT_LIMITS = { seconds: { min: 0.25, max: 60 }, shot_seconds: { min: 0.25, max: 60 } };
export const FINISHED = new Set(["succeeded", "failed", "cancelled", "expired"]);

export const $ = (id) => document.getElementById(id);

export const state = {
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

export async function api(method, path, body) {
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

export function describe(err) {
  if (err.status === 401) return `API key rejected: ${err.message}`;
  return err.message;
}

// -- banner and key -----------------------------------------------------------------------------
export function showBanner(text) {
  $("banner-text").textContent = text;
  $("banner").hidden = false;
}

export function hideBanner() {
  $("banner").hidden = true;
}

export function setKeyState(kind, text) {
  const el = $("key-state");
  el.className = `key-state ${kind}`;
  el.textContent = text;
}
