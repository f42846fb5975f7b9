"""A native film API script to a stored job request: its file fields (images, music, `refs`) point at
uploads or data URLs only, each decoded and saved under our own name, and the script rewritten to it."""

from __future__ import annotations

from typing import Any

from yingxi.server.http_errors import ApiError
from yingxi.server.inputs import (
    UPLOAD_SCHEME,
    Inputs,
    Upload,
    check_count,
    reference_bytes,
    save_image,
    save_media,
)
from yingxi.server.settings import ServerSettings


def _script_chars(script: dict[str, Any]) -> int:
    """Characters of the text a script asks us to keep, list and render: the title and style (echoed in
    every listing), character descriptions, shot prompts, and dialogue (spoken at the door to fit it)."""
    texts = [script.get("title"), script.get("style")]
    if isinstance(script.get("characters"), dict):
        texts += [c.get("description") for c in script["characters"].values() if isinstance(c, dict)]
    for shot in script.get("shots") if isinstance(script.get("shots"), list) else []:
        if not isinstance(shot, dict):
            texts.append(shot)
            continue
        texts.append(shot.get("prompt"))
        lines = shot.get("dialogue") if isinstance(shot.get("dialogue"), list) else []
        texts += [line.get("line") if isinstance(line, dict) else line for line in lines]
    return sum(len(str(t)) for t in texts if t is not None)


def script_request(script: Any, inputs: Inputs, uploads: dict[str, Upload], settings: ServerSettings) -> dict:
    """A script's file fields point at uploads or data URLs only (never at the server's disk): each is
    decoded, saved under our own name, and the script rewritten to that name."""
    if not isinstance(script, dict):
        raise ApiError(400, "a film script is a mapping with a 'shots' list", param="script")
    script = dict(script)
    counter = {"n": 0}

    def resolve(value: Any, kind: str, param: str) -> Any:
        if value in (None, ""):
            return value
        if not isinstance(value, str):
            raise ApiError(400, f"expected a file reference, got {value!r}"[:200], param=param)
        url = (
            value
            if value.startswith(("data:", "http://", "https://", UPLOAD_SCHEME))
            else UPLOAD_SCHEME + value
        )
        check_count(inputs, kind, settings, param)
        data = reference_bytes(url, uploads, settings, param)
        counter["n"] += 1
        stem = f"file_{counter['n']}"
        if kind == "image":
            return save_image(inputs, data, stem, param, settings.limits.max_image_pixels)
        return save_media(inputs, data, stem, kind, param, settings.limits.max_image_pixels)

    refs = _script_refs(script.pop("refs", None), resolve)
    for key, kind in (("style_image", "image"), ("music", "audio")):
        if script.get(key) is None:
            script.pop(key, None)  # "style_image:" with no value in YAML: as if absent
        else:
            script[key] = resolve(script[key], kind, key)
    if isinstance(script.get("characters"), dict):
        chars = {}
        for name, spec in script["characters"].items():
            if isinstance(spec, dict) and "image" in spec:
                spec = {**spec, "image": resolve(spec["image"], "image", f"characters.{name}.image")}
            chars[name] = spec
        script["characters"] = chars
    if isinstance(script.get("shots"), list):
        shots = []
        for i, shot in enumerate(script["shots"], start=1):
            if isinstance(shot, dict):
                shot = dict(shot)
                for key in ("first_frame", "last_frame"):
                    if key in shot:
                        shot[key] = resolve(shot[key], "image", f"shots[{i}].{key}")
                for key, kind in (("reference_video", "video"), ("audio", "audio")):
                    if key in shot:
                        shot[key] = _resolve_items(shot[key], kind, f"shots[{i}].{key}", resolve)
            shots.append(shot)
        script["shots"] = shots
    chars = _script_chars(script)
    if chars > settings.limits.max_prompt_chars:
        raise ApiError(400, f"the script's text (title, style, descriptions, prompts, dialogue) holds {chars} "
                       f"characters; at most {settings.limits.max_prompt_chars}", param="shots")  # fmt: skip
    return {"source": "script", "script": script, "single": False, "refs": refs, **inputs.as_request()}


def _resolve_items(value: Any, kind: str, param: str, resolve: Any) -> Any:
    """A shot's `reference_video` / `audio`: a file, {file, use}, or (audio) a list of those; each file
    resolved to its saved upload, the rest left for the script's own checks."""
    if isinstance(value, list):
        return [_resolve_items(v, kind, f"{param}[{i}]", resolve) for i, v in enumerate(value, start=1)]
    if isinstance(value, dict):
        return (
            {**value, "file": resolve(value.get("file"), kind, f"{param}.file")} if "file" in value else value
        )
    return resolve(value, kind, param)


def _script_refs(value: Any, resolve: Any) -> dict[str, tuple[str, str]]:
    """A script's `refs`: ["NAME=file", ...] (as the CLI's --ref NAME=IMAGE) or {NAME: file}; each file an
    upload's name or a data URL. Returns {param: (NAME, saved file)}; the names are checked on the Film."""
    if value in (None, "", [], {}):
        return {}
    if isinstance(value, str):
        value = [line for line in value.splitlines() if line.strip()]  # multipart: one ref per line
    if isinstance(value, dict):
        pairs = [(f"refs.{k}", str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        pairs = []
        for i, item in enumerate(value):
            name, sep, file = str(item).partition("=") if isinstance(item, str) else ("", "", "")
            if not sep or not name.strip() or not file.strip():
                raise ApiError(
                    400, f"write each reference as NAME=file, got {str(item)[:80]!r}", param=f"refs[{i}]"
                )
            pairs.append((f"refs[{i}]", name.strip(), file.strip()))
    else:
        raise ApiError(400, 'refs is a list of "NAME=file" or a mapping {NAME: file}', param="refs")
    return {param: (name, resolve(file, "image", param)) for param, name, file in pairs}
