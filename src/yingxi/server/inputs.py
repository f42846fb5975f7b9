"""From an API request to a stored, renderable job request: references decoded and saved under names we
choose (never the client's filename), the Film built once to validate, limits checked.

The job's `request` JSON is what the worker renders from; `build_film(request, task_dir)` rebuilds the
same Film there, so what was validated at the door is exactly what is rendered.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from yingxi.errors import InputError
from yingxi.film import parse_prompt, parse_script
from yingxi.film.composition import parse_fit
from yingxi.film.mentions import attach_media
from yingxi.film.model import RATIOS, SIZES, CameraMove, Film
from yingxi.film.references import (
    attach_references,
    check_mentions,
    check_reference_name,
    with_character_image,
)
from yingxi.film.vocabulary import parse_fps, parse_preset, parse_ratio, parse_resolution, parse_seed
from yingxi.media.image import decode_image_bytes, save_png
from yingxi.server.http_errors import ApiError
from yingxi.server.outbound import fetch
from yingxi.server.probe import image_size, media_seconds
from yingxi.server.settings import ServerSettings

# A multi-shot prompt: "Shot 1", "镜头1", and the Chinese numbering "镜头一" / "第一镜" (film/prompt.py).
NUMBER = r"(?:\d+|[一二三四五六七八九十百零〇两]+)"
SHOT_HEADER_RE = re.compile(
    rf"^\s*(?:(?:shot|镜头)\s*{NUMBER}|第\s*{NUMBER}\s*镜)", re.IGNORECASE | re.MULTILINE
)
DATA_URL_RE = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*)(;base64)?,", re.IGNORECASE)
UPLOAD_SCHEME = "upload://"  # a multipart part named by its field name or filename
AUDIO_FORMATS = {"mp3": "mp3", "wav": "wav", "ogg": "ogg", "flac": "flac", "aac": "aac", "matroska,webm": "webm",
                 "mov,mp4,m4a,3gp,3g2,mj2": "m4a"}  # fmt: skip
VIDEO_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4", "matroska,webm": "webm", "avi": "avi"}


@dataclass(frozen=True)
class Upload:
    """One multipart file part: its bytes and the names a request may refer to it by (never a path)."""

    field: str
    filename: str
    data: bytes
    content_type: str = ""


@dataclass
class Inputs:
    """Reference files saved for one task, by role; names are relative to the task's inputs folder."""

    folder: Path
    first_frame: str | None = None
    last_frame: str | None = None
    reference_images: list[str] = field(default_factory=list)
    reference_names: list[str | None] = field(
        default_factory=list
    )  # the character each image shows, if named
    reference_audio: list[str] = field(default_factory=list)
    reference_videos: list[str] = field(default_factory=list)
    music: str | None = None  # yingxi's role "music" (the studio's music bed)
    image_sizes: dict[str, tuple[int, int]] = field(
        default_factory=dict
    )  # name -> (width, height), videos too
    media_seconds: dict[str, float] = field(default_factory=dict)  # audio/video name -> seconds
    visuals: list[str] = field(default_factory=list)  # images and videos in item order (ratio "adaptive")
    count: dict[str, int] = field(default_factory=lambda: {"image": 0, "audio": 0, "video": 0})

    def as_request(self) -> dict[str, Any]:
        return {
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "reference_images": self.reference_images,
            "reference_names": self.reference_names,
            "reference_audio": self.reference_audio,
            "reference_videos": self.reference_videos,
            "music": self.music,
        }


# -- fetching and decoding references ------------------------------------------------------------
def reference_bytes(url: Any, uploads: dict[str, Upload], settings: ServerSettings, param: str) -> bytes:
    """The bytes behind a reference: a data URL, an uploaded part, or (only when allowed) http(s)."""
    limit = settings.limits.max_upload_bytes
    if not isinstance(url, str) or not url:
        raise ApiError(400, "expected a URL string (a data: URL, upload://NAME, or http(s))", param=param)
    m = DATA_URL_RE.match(url[:300])
    if m:
        payload = url[m.end() :]
        if not m.group(3):
            raise ApiError(400, "only base64 data URLs are accepted (data:<type>;base64,...)", param=param)
        if len(payload) * 3 // 4 > limit + 3:
            raise ApiError(413, f"the file is larger than {limit // (1 << 20)} MB", param=param)
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            try:  # some clients wrap base64 in lines
                data = base64.b64decode("".join(payload.split()), validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "the data URL is not valid base64", param=param) from None
    elif url.startswith(UPLOAD_SCHEME):
        name = url[len(UPLOAD_SCHEME) :]
        if name not in uploads:
            raise ApiError(400, f'no uploaded file part named "{name[:80]}" in this request', param=param)
        data = uploads[name].data
    elif url.lower().startswith(("http://", "https://")):
        if not settings.allow_url_fetch:
            raise ApiError(
                400,
                "this server does not fetch http(s) references (allow_url_fetch is off); "
                "send the file as a base64 data URL or a multipart upload",
                param=param,
            )
        data = fetch(url, limit, settings.allow_private_urls, param)
    else:
        raise ApiError(
            400, "unsupported reference URL; use a data: URL, upload://NAME, or http(s)", param=param
        )
    if len(data) > limit:
        raise ApiError(413, f"the file is larger than {limit // (1 << 20)} MB", param=param)
    if not data:
        raise ApiError(400, "the file is empty", param=param)
    return data


def check_count(inputs: Inputs, kind: str, settings: ServerSettings, param: str) -> None:
    """Seedance 2.0's counts: at most 9 images, 3 videos, 3 audio clips and 12 files in all per task."""
    limits = settings.limits
    limit = {"image": limits.max_images, "audio": limits.max_audios, "video": limits.max_videos}[kind]
    inputs.count[kind] += 1
    item = param.split(".", 1)[0]
    if inputs.count[kind] > limit:
        raise ApiError(400, f"{item}: too many {kind} references; at most {limit} {kind} items per task",
                       param=param)  # fmt: skip
    if sum(inputs.count.values()) > limits.max_files:
        raise ApiError(400, f"{item}: too many reference files; at most {limits.max_files} images, videos and "
                       "audio clips in all per task", param=param)  # fmt: skip


def check_media_seconds(inputs: Inputs, kind: str, settings: ServerSettings, param: str) -> None:
    """Seedance 2.0's totals, checked as each clip arrives: reference videos together at most 15 s, audio
    clips together at most 15 s (the 2 s minimum of the videos is checked once all are in)."""
    names = inputs.reference_videos if kind == "video" else inputs.reference_audio
    total = sum(inputs.media_seconds[n] for n in names)
    limit = (
        settings.limits.max_reference_video_seconds
        if kind == "video"
        else settings.limits.max_reference_audio_seconds
    )
    if total > limit + 1e-3:
        what = "reference videos" if kind == "video" else "reference audio clips"
        raise ApiError(400, f"{param.split('.', 1)[0]}: the {what} last {total:.2f}s together; at most "
                       f"{limit:g}s in all", param=param)  # fmt: skip


def save_image(inputs: Inputs, data: bytes, stem: str, param: str, max_pixels: int) -> str:
    """Decode (the content decides, never the name), save as PNG; 415 when it is not an image, 413 when
    its header promises more than `max_pixels` (checked before any pixel is decoded)."""
    size = image_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ApiError(413, f"the image is {size[0]}x{size[1]} px; at most {max_pixels / 1e6:g} Mpx",
                       param=param)  # fmt: skip
    try:
        img = decode_image_bytes(data, name=param)
    except InputError as e:
        raise ApiError(415, e.message, param=param) from None
    name = f"{stem}.png"
    inputs.folder.mkdir(parents=True, exist_ok=True)
    save_png(img, inputs.folder / name)
    inputs.image_sizes[name] = (img.shape[1], img.shape[0])
    return name


def save_media(inputs: Inputs, data: bytes, stem: str, kind: str, param: str, max_pixels: int) -> str:
    """Probe audio/video by decoding its first frame with PyAV; 415 when it holds no such stream, 413 when
    a video's frame is over `max_pixels` (read from the stream header, before decoding)."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            streams = container.streams.audio if kind == "audio" else container.streams.video
            if not streams:
                raise ApiError(415, f"the file holds no {kind} stream", param=param)
            if kind == "video":
                width, height = streams[0].codec_context.width, streams[0].codec_context.height
                if width * height > max_pixels:
                    raise ApiError(413, f"the video is {width}x{height} px; at most {max_pixels / 1e6:g} Mpx a frame",
                                   param=param)  # fmt: skip
            next(container.decode(streams[0]))
            fmt = container.format.name
            seconds = media_seconds(container, streams[0], data, kind)
    except ApiError:
        raise
    except (av.error.FFmpegError, StopIteration, ValueError, OSError):
        raise ApiError(415, f"cannot decode the file as {kind}", param=param) from None
    ext = (AUDIO_FORMATS if kind == "audio" else VIDEO_FORMATS).get(fmt, "bin")
    name = f"{stem}.{ext}"
    inputs.folder.mkdir(parents=True, exist_ok=True)
    (inputs.folder / name).write_bytes(data)
    inputs.media_seconds[name] = seconds
    if kind == "video":
        inputs.image_sizes[name] = (width, height)
    return name


def add_reference(inputs: Inputs, kind: str, role: str, url: Any, uploads: dict[str, Upload],
                  settings: ServerSettings, param: str, name: str | None = None) -> None:  # fmt: skip
    """One content item (image/audio/video with a role) into `inputs`; `name`: the character a
    reference_image shows (a yingxi extension of Ark's item; the prompt can also say "NAME (@image1)")."""
    if name is not None and (kind != "image" or role != "reference_image"):
        raise ApiError(400, "only a reference_image item takes a name (the character it shows)",
                       param=param.rsplit(".", 2)[0] + ".name")  # fmt: skip
    roles = {"image": ("first_frame", "last_frame", "reference_image"), "audio": ("reference_audio", "music"),
             "video": ("reference_video",)}[kind]  # fmt: skip
    if role not in roles:
        raise ApiError(400, f'unknown role "{role}" for a {kind}; accepted: {", ".join(roles)}', param=param)
    check_count(inputs, kind, settings, param)
    data = reference_bytes(url, uploads, settings, param)
    if kind == "image":
        if role in ("first_frame", "last_frame"):
            if getattr(inputs, role) is not None:
                raise ApiError(400, f"only one image may have the role {role}", param=param)
            setattr(inputs, role, save_image(inputs, data, role, param, settings.limits.max_image_pixels))
            inputs.visuals.append(getattr(inputs, role))
        else:
            inputs.reference_names.append(name.strip() if name and name.strip() else None)
            inputs.reference_images.append(
                save_image(
                    inputs,
                    data,
                    f"reference_image_{len(inputs.reference_images) + 1}",
                    param,
                    settings.limits.max_image_pixels,
                )
            )
            inputs.visuals.append(inputs.reference_images[-1])
    elif role == "music":  # yingxi: the film's music bed, outside Seedance's reference rules
        if inputs.music is not None:
            raise ApiError(400, "only one audio item may have the role music", param=param)
        inputs.music = save_media(inputs, data, "music", "audio", param, settings.limits.max_image_pixels)
    elif kind == "audio":
        stem = f"reference_audio_{len(inputs.reference_audio) + 1}"
        inputs.reference_audio.append(
            save_media(inputs, data, stem, "audio", param, settings.limits.max_image_pixels)
        )
        check_media_seconds(inputs, "audio", settings, param)
    else:
        stem = f"reference_video_{len(inputs.reference_videos) + 1}"
        inputs.reference_videos.append(
            save_media(inputs, data, stem, "video", param, settings.limits.max_image_pixels)
        )
        inputs.visuals.append(inputs.reference_videos[-1])
        check_media_seconds(inputs, "video", settings, param)


def adaptive_ratio(width: int, height: int) -> str:
    """The listed aspect ratio closest to an image's (Ark's ratio "adaptive")."""
    return min(RATIOS, key=lambda r: abs(math.log((width / height) / _ratio_value(r))))


def _ratio_value(ratio: str) -> float:
    a, b = ratio.split(":")
    return int(a) / int(b)


def size_to_format(size: str, param: str = "size") -> tuple[str, str]:
    """'1280x720' -> ('720p', '16:9'): the closest ratio, and the resolution whose short side is nearest."""
    m = re.fullmatch(r"\s*(\d{2,5})\s*[xX*]\s*(\d{2,5})\s*", str(size))
    if not m:
        raise ApiError(400, f'size must look like "1280x720", got "{str(size)[:40]}"', param=param)
    w, h = int(m.group(1)), int(m.group(2))
    if not w or not h:
        raise ApiError(400, f'size "{size}" has a zero side', param=param)
    for res, table in SIZES.items():
        for ratio, wh in table.items():
            if wh == (w, h):
                return res, ratio
    short = min(w, h)
    res = min(SIZES, key=lambda r: abs(int(r[:-1]) - short))
    return res, adaptive_ratio(w, h)


def random_seed() -> int:
    return secrets.randbelow(2**31)


# -- the Film ------------------------------------------------------------------------------------
def prompt_request(
    text: str,
    inputs: Inputs,
    settings: ServerSettings,
    *,
    resolution: Any = None,
    ratio: Any = None,
    duration: Any = None,
    fps: Any = None,
    seed: Any = None,
    camera_fixed: bool = False,
    fit: Any = None,
    preset: Any = None,
    generate_audio: bool = False,
) -> dict[str, Any]:
    """The stored request of a prompt task (plain or multi-shot grammar), fields validated."""
    limits = settings.limits
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "the prompt is empty; describe what to film", param="prompt")
    if len(text) > limits.max_prompt_chars:
        raise ApiError(
            400, f"the prompt is {len(text)} characters; at most {limits.max_prompt_chars}", param="prompt"
        )
    try:
        res = parse_resolution(resolution or "720p")
        if ratio in (None, "", "adaptive", "keep_ratio"):
            frame = inputs.visuals[0] if inputs.visuals else None  # the first image or video item's aspect
            ratio_word = adaptive_ratio(*inputs.image_sizes[frame]) if frame else "16:9"
        else:
            ratio_word = parse_ratio(ratio)
        frames_per_second = parse_fps(fps if fps is not None else settings.default_fps)
        seed_value = random_seed() if seed in (None, -1, "-1") else parse_seed(seed)
        fit_word = parse_fit(fit) if fit is not None else "cover"  # how the first frame meets the frame
        sampling = {"preset": p} if (p := parse_preset(preset)) else {}  # a Film field, as in scripts
    except InputError as e:
        raise ApiError(400, e.message, param=e.field) from None
    single = not SHOT_HEADER_RE.search(text)
    try:  # Seedance's "@image2" / "@视频1" mentions must name items of this request
        check_mentions(text, {"image": len(inputs.reference_images), "video": len(inputs.reference_videos),
                              "audio": len(inputs.reference_audio)})  # fmt: skip
    except InputError as e:
        raise ApiError(400, e.message, param="prompt") from None
    default_duration = None
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            raise ApiError(400, f"duration must be a number of seconds, got {duration!r}", param="duration")
        if single and not limits.min_seconds <= duration <= limits.max_seconds:
            raise ApiError(
                400,
                f"duration {duration:g}s is out of range; {limits.min_seconds:g}-{limits.max_seconds:g}s",
                param="duration",
            )
        default_duration = float(duration)
    return {
        "source": "prompt",
        "text": text,
        "default_duration": default_duration,
        "single": single,
        "fields": {
            "resolution": res,
            "ratio": ratio_word,
            "fps": frames_per_second,
            "seed": seed_value,
            "fit": fit_word,
            **sampling,
        },  # fmt: skip
        "camera_fixed": bool(camera_fixed),
        "generate_audio": bool(generate_audio),
        **inputs.as_request(),
    }


def build_film(request: dict[str, Any], task_dir: Path) -> Film:
    """The Film a stored request describes; InputError when it does not parse."""
    folder = task_dir / "inputs"

    def path(name: str | None) -> Path | None:
        return folder / name if name else None

    if request["source"] == "script":
        film = parse_script(request["script"], folder)
        for where, (name, file) in request.get("refs", {}).items():  # NAME=file, as the CLI's --ref
            film = with_character_image(film, check_reference_name(film, name, where), folder / file)
        return film
    fields = dict(request["fields"])
    refs = [folder / n for n in request.get("reference_images", [])]
    if request.get("music"):
        fields["music"] = folder / request["music"]
    film = parse_prompt(request["text"], default_duration=request.get("default_duration"), **fields)
    # Videos and audio clips go where the prompt's @video1 / @audio1 say (film/mentions.py): a shot's camera
    # move to copy; the music, a sound at a shot, or audio a shot's sound follows.
    film = attach_media(film, [folder / n for n in request.get("reference_videos", [])],
                        [folder / n for n in request.get("reference_audio", [])])  # fmt: skip
    film = replace(film, generate_audio=bool(request.get("generate_audio")))
    # Each reference is a character's image, used in that character's shots (a first frame only takes
    # shot 1's keyframe); names come from the items or the prompt's "NAME (@image1)".
    film = attach_references(
        film, refs, list(request.get("reference_names", [])), single=len(film.shots) == 1
    )
    shots = list(film.shots)
    if request.get("first_frame"):
        shots[0] = replace(shots[0], first_frame=path(request["first_frame"]))
    if request.get("last_frame"):
        shots[-1] = replace(shots[-1], last_frame=path(request["last_frame"]))
    if request.get("camera_fixed"):
        shots = [replace(s, camera=replace(s.camera, move=CameraMove())) for s in shots]
    return replace(film, shots=tuple(shots))


def validated_film(request: dict[str, Any], task_dir: Path, settings: ServerSettings) -> Film:
    """build_film, then the server's limits; every problem is a 400 naming the shot and field."""
    try:
        film = build_film(request, task_dir)
    except InputError as e:
        raise ApiError(400, str(e), param=e.field or "prompt", shot=e.shot) from None
    limits = settings.limits
    if film.resolution not in limits.resolutions:
        raise ApiError(400, f"resolution {film.resolution} is not served here; accepted: "
                       f"{', '.join(limits.resolutions)}", param="resolution")  # fmt: skip
    if film.fps > limits.max_fps:
        raise ApiError(400, f"fps {film.fps} is above this server's limit of {limits.max_fps}", param="fps")
    if not request.get("single"):
        for i, shot in enumerate(film.shots, start=1):
            if not limits.min_shot_seconds <= shot.duration <= limits.max_shot_seconds:
                raise ApiError(400, f"shot {i}, duration: {shot.duration:g}s is out of range; a shot lasts "
                               f"{limits.min_shot_seconds:g}-{limits.max_shot_seconds:g}s", param="duration", shot=i)  # fmt: skip
    elif not limits.min_seconds <= film.duration <= limits.max_seconds:
        raise ApiError(400, f"duration {film.duration:g}s is out of range; "
                       f"{limits.min_seconds:g}-{limits.max_seconds:g}s", param="duration")  # fmt: skip
    if film.duration > limits.max_film_seconds:
        raise ApiError(400, f"the film lasts {film.duration:g}s; at most {limits.max_film_seconds:g}s in all",
                       param="duration")  # fmt: skip
    return film
