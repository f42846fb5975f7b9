"""YAML/JSON film scripts: the same model as the prompt grammar, with paths relative to the file.

title: New Year on the Ice
fps: 24
resolution: 720p
ratio: "16:9"
style: Ink-wash style, subdued blue-grey palette.
characters:
  OLD JIA: {description: a weathered man in a padded coat, image: jia.png, voice: en-us+m3}
music: score.ogg
shots:
  - {prompt: Two men stand on the ice., duration: 4, framing: wide, camera: slow pan left}
  - prompt: The older man lifts a thermos flask.
    duration: 3
    transition: crossfade
    dialogue: [{character: OLD JIA, line: Happy new year.}]
"""

from __future__ import annotations

import json
from pathlib import Path, PureWindowsPath
from typing import Any

import yaml

from yingxi.errors import InputError, unknown_word
from yingxi.film.composition import parse_compose, parse_fit, parse_focus
from yingxi.film.model import (
    DEFAULT_SHOT_SECONDS,
    MAX_SHOT_SECONDS,
    RATIOS,
    REFERENCE_VIDEO_USES,
    SHOT_AUDIO_USES,
    Character,
    DialogueLine,
    Film,
    Shot,
)
from yingxi.film.vocabulary import (
    FADE_OUT_SECONDS,
    camera_from,
    parse_camera_move,
    parse_duration,
    parse_fps,
    parse_framing,
    parse_preset,
    parse_ratio,
    parse_resolution,
    parse_seed,
    parse_size,
    parse_transition,
)

FILM_KEYS = (
    "title",
    "fps",
    "resolution",
    "ratio",
    "size",
    "seed",
    "style",
    "style_image",
    "characters",
    "music",
    "shots",
    "fade_out",  # true, or seconds: the film's end fades to black
    "fit",
    "preset",
    "generate_audio",  # true: each shot's own sound from a backend that makes it (mixed under dialogue)
)
SHOT_KEYS = ("prompt", "duration", "framing", "camera", "transition", "dialogue", "characters",
             "first_frame", "last_frame", "continue", "seed", "focus", "compose", "fit",
             "reference_video", "audio")  # fmt: skip
CHARACTER_KEYS = ("description", "image", "voice")
MAX_SHOTS = 100
SCRIPT_SUFFIXES = (".yaml", ".yml", ".json")


def load_script(path: str | Path) -> Film:
    """Read a .yaml/.yml/.json script; relative paths inside resolve against its folder."""
    path = Path(path)
    if path.suffix.lower() not in SCRIPT_SUFFIXES:
        raise InputError(
            f'a script is a .yaml, .yml or .json file, got "{path.suffix or path.name}"; '
            'for a prompt in a text file, pass its text: yingxi generate "$(cat FILE)"',
            file=str(path),
        )
    try:
        text = path.read_text(encoding="utf-8-sig")  # editors on Windows start files with a BOM
    except FileNotFoundError:
        raise InputError("script file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read script: {e}", file=str(path)) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise InputError(
            f"not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {_first_line(e)}",
            file=str(path),
        ) from None
    try:
        return parse_script(data, path.parent)
    except InputError as e:
        e.file = e.file or str(path)
        raise InputError(e.message, shot=e.shot, field=e.field, file=e.file) from None


def parse_script(data: Any, base_dir: Path | None = None) -> Film:
    """A script already decoded from YAML/JSON (a dict); files are checked to exist."""
    if not isinstance(data, dict):
        raise InputError(f"a script is a mapping with a 'shots' list, got {type(data).__name__}")
    _check_keys(data, FILM_KEYS, "script")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    shots_data = data.get("shots")
    if not isinstance(shots_data, list) or not shots_data:
        raise InputError("a script needs a non-empty list of shots", field="shots")
    if len(shots_data) > MAX_SHOTS:
        raise InputError(f"{len(shots_data)} shots is too many; at most {MAX_SHOTS}", field="shots")
    characters = _characters(data.get("characters") or {}, base)
    shots = tuple(_shot(i, s, base) for i, s in enumerate(shots_data, start=1))
    _check_featured(shots, characters)
    return Film(
        shots=shots,
        title=_text(data.get("title", ""), "title"),
        style=_text(data.get("style", ""), "style"),
        style_image=_path(data.get("style_image"), base, field="style_image"),
        characters=characters,
        fps=parse_fps(data.get("fps", 24)),
        resolution=parse_resolution(data.get("resolution", "720p")),
        ratio=parse_ratio(_unsexagesimal(data.get("ratio", "16:9"))),
        seed=parse_seed(data.get("seed", 0)),
        music=_path(data.get("music"), base, field="music"),
        custom_size=parse_size(data["size"]) if data.get("size") is not None else None,
        fade_out=_fade_out(data.get("fade_out", False)),
        fit=parse_fit(data["fit"]) if data.get("fit") is not None else "cover",
        preset=parse_preset(data.get("preset")),
        generate_audio=_flag(data.get("generate_audio", False), "generate_audio"),
    )


def _flag(value: Any, field: str, shot: int | None = None) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{field} is true or false, got {value!r}", shot=shot, field=field)
    return value


def _file_with_use(
    value: Any, base: Path, n: int, field: str, uses: tuple[str, ...], what: str
) -> tuple[Path | None, str]:
    """`FILE` or `{file: FILE, use: USE}` (the first of `uses` by default) -> (path, use); a shot's
    reference video and audio are written alike."""
    data = value if isinstance(value, dict) else {"file": value}
    _check_keys(data, ("file", "use"), field.split("[")[0], shot=n, field=field)
    use = str(data.get("use", uses[0])).strip().lower()
    if use not in uses:
        raise InputError(unknown_word(what, use, uses), shot=n, field=f"{field}.use")
    return _path(data.get("file"), base, shot=n, field=field), use


def _reference_video(value: Any, base: Path, n: int) -> tuple[Path | None, str]:
    """`reference_video: moves.mp4` (a control video) or `{file: take.mp4, use: control | extend}`."""
    if value is None or value == "":
        return None, "control"
    return _file_with_use(value, base, n, "reference_video", REFERENCE_VIDEO_USES, "reference video use")


def _shot_audio(value: Any, base: Path, n: int) -> tuple[Path | None, tuple[Path, ...]]:
    """`audio: bell.wav` (a sound at the shot), `{file: song.wav, use: sound | follow}` ("follow": the clip
    the shot's picture follows, LTX-2's audio-to-video) or a list of those -> (followed clip, sounds)."""
    if value is None or value == "":
        return None, ()
    listed = isinstance(value, list)
    followed, sounds = None, []
    for i, item in enumerate(value if listed else [value], start=1):
        field = f"audio[{i}]" if listed else "audio"
        path, use = _file_with_use(item, base, n, field, SHOT_AUDIO_USES, "shot audio use")
        if path is None:
            raise InputError("the shot's audio names no file", shot=n, field=field)
        if use == "sound":
            sounds.append(path)
        elif followed is not None:
            raise InputError("a shot's picture follows one audio clip; the others can be its sounds "
                             "(use: sound)", shot=n, field=field)  # fmt: skip
        else:
            followed = path
    return followed, tuple(sounds)


def _fade_out(value: Any) -> float:
    """`fade_out: true` (FADE_OUT_SECONDS), false, or seconds of fade to black at the film's end."""
    if isinstance(value, bool):
        return FADE_OUT_SECONDS if value else 0.0
    if isinstance(value, (int, float)) and 0 <= value <= MAX_SHOT_SECONDS:
        return float(value)
    raise InputError(f"fade_out is true, false or seconds (e.g. 1.5), got {value!r}", field="fade_out")


def _shot(n: int, data: Any, base: Path) -> Shot:
    if isinstance(data, str):
        data = {"prompt": data}
    if not isinstance(data, dict):
        raise InputError(f"a shot is a mapping with a prompt, got {type(data).__name__}", shot=n)
    _check_keys(data, SHOT_KEYS, "shot", shot=n)
    prompt = _text(data.get("prompt", ""), "prompt", shot=n).strip()
    if not prompt:
        raise InputError("the shot has no prompt; describe what we see", shot=n, field="prompt")
    framing = parse_framing(_text(data["framing"], "framing", shot=n), shot=n) if "framing" in data else None
    move = parse_camera_move(_text(data["camera"], "camera", shot=n), shot=n) if "camera" in data else None
    transition = parse_transition(_text(data.get("transition", "cut"), "transition", shot=n), shot=n)
    keep_going = data.get("continue", False)
    if not isinstance(keep_going, bool):
        raise InputError(f"continue is true or false, got {keep_going!r}", shot=n, field="continue")
    if keep_going and n == 1:
        raise InputError("the first shot has no previous shot to continue", shot=n, field="continue")
    video, use = _reference_video(data.get("reference_video"), base, n)
    followed, sounds = _shot_audio(data.get("audio"), base, n)
    names = data.get("characters", [])
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise InputError("characters is a list of names", shot=n, field="characters")
    return Shot(
        prompt=prompt,
        duration=parse_duration(data.get("duration", DEFAULT_SHOT_SECONDS), shot=n),
        camera=camera_from(framing, move),
        transition=transition,
        dialogue=_dialogue(data.get("dialogue", []), n),
        characters=tuple(names),
        first_frame=_path(data.get("first_frame"), base, shot=n, field="first_frame"),
        last_frame=_path(data.get("last_frame"), base, shot=n, field="last_frame"),
        continue_previous=keep_going,
        seed=parse_seed(data["seed"], shot=n) if data.get("seed") is not None else None,
        focus=parse_focus(data["focus"], shot=n) if data.get("focus") is not None else None,
        compose=parse_compose(data["compose"], shot=n) if data.get("compose") is not None else None,
        fit=parse_fit(data["fit"], shot=n) if data.get("fit") is not None else None,
        reference_video=video,
        reference_video_use=use,
        audio_conditioning=followed,
        sounds=sounds,
    )


def _dialogue(items: Any, n: int) -> tuple[DialogueLine, ...]:
    if not isinstance(items, list):
        raise InputError("dialogue is a list of {character, line}", shot=n, field="dialogue")
    lines = []
    for j, item in enumerate(items, start=1):
        where = f"dialogue[{j}]"
        if not isinstance(item, dict):
            raise InputError("each dialogue entry is {character: NAME, line: TEXT}", shot=n, field=where)
        _check_keys(item, ("character", "line"), "dialogue", shot=n, field=where)
        who = _text(item.get("character", ""), f"{where}.character", shot=n).strip()
        line = _text(item.get("line", ""), f"{where}.line", shot=n).strip()
        if not who or not line:
            raise InputError("each dialogue entry needs a character and a line", shot=n, field=where)
        lines.append(DialogueLine(who, line))
    return tuple(lines)


def _characters(data: Any, base: Path) -> tuple[Character, ...]:
    if not isinstance(data, dict):
        raise InputError("characters is a mapping NAME: {description, image, voice}", field="characters")
    out = []
    seen: dict[str, str] = {}
    for name, spec in data.items():
        where = f"characters.{name}"
        if str(name).lower() in seen:  # names match case-insensitively, so one would hide the other
            raise InputError(f'"{name}" and "{seen[str(name).lower()]}" are the same name', field=where)
        seen[str(name).lower()] = str(name)
        if isinstance(spec, str):
            spec = {"description": spec}
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise InputError("a character is {description, image, voice}", field=where)
        _check_keys(spec, CHARACTER_KEYS, "character", field=where)
        out.append(
            Character(
                name=str(name),
                description=_text(spec.get("description", ""), f"{where}.description"),
                image=_path(spec.get("image"), base, field=f"{where}.image"),
                voice=_text(spec["voice"], f"{where}.voice") if spec.get("voice") else None,
            )
        )
    return tuple(out)


def _check_featured(shots: tuple[Shot, ...], characters: tuple[Character, ...]) -> None:
    """A shot's `characters` entry or a dialogue speaker that the script does not define is most likely a
    misspelling (a line spoken by "OLD JIAA" would get another voice and no image); a script that defines no
    characters may name them freely (--ref can add their images)."""
    if not characters:
        return
    known = [c.name for c in characters]
    for n, shot in enumerate(shots, start=1):
        for name in shot.characters:
            if name.lower() not in (k.lower() for k in known):
                raise InputError(unknown_word("character", name, known), shot=n, field="characters")
        for j, line in enumerate(shot.dialogue, start=1):  # stream (issue 8, item 10)
            if line.character.lower() not in (k.lower() for k in known):
                where = f"dialogue[{j}].character"
                raise InputError(unknown_word("speaker", line.character, known), shot=n, field=where)


def _path(value: Any, base: Path, *, shot: int | None = None, field: str) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"expected a file path, got {value!r}", shot=shot, field=field)
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file() and "\\" in value and not PureWindowsPath(value).anchor:
        path = base / PureWindowsPath(value).as_posix()  # a script written on Windows: frames\a.png
    if not path.is_file():
        what = "not a file" if path.exists() else "file not found"
        raise InputError(f"{what}: {path}", shot=shot, field=field)
    return path


def _text(value: Any, field: str, *, shot: int | None = None) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"expected text, got {value!r}", shot=shot, field=field)
    return value


def _check_keys(
    data: dict, allowed: tuple[str, ...], what: str, *, shot: int | None = None, field: str | None = None
) -> None:
    for key in data:
        if key not in allowed:
            raise InputError(
                unknown_word(f"{what} field", str(key), allowed), shot=shot, field=field or str(key)
            )


def _unsexagesimal(value: Any) -> Any:
    """YAML 1.1 reads an unquoted `ratio: 16:9` as the base-60 integer 969; give back "16:9"."""
    if isinstance(value, int) and not isinstance(value, bool):
        for ratio in RATIOS:
            a, b = (int(x) for x in ratio.split(":"))
            if value == a * 60 + b:
                return ratio
    return value


def _first_line(error: Exception) -> str:
    """Where and what, without PyYAML's echo of the source: 'line 2, column 1: found character ...'."""
    mark, problem = getattr(error, "problem_mark", None), getattr(error, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(error).split())[:200]
