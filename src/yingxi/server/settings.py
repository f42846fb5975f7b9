"""Server settings: one frozen object the CLI builds and the app, supervisor and workers all read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yingxi.backends.registry import get_spec
from yingxi.film.limits import MAX_FILM_SECONDS, MAX_SHOT_SECONDS, MIN_SHOT_SECONDS


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; anything beyond is a 4xx before any work starts."""

    max_prompt_chars: int = 5000
    max_images: int = 9  # reference + first/last frame images per task (Seedance 2.0)
    max_videos: int = 3  # reference videos per task
    max_audios: int = 3  # reference audio clips per task
    max_files: int = 12  # images + videos + audio clips per task (Seedance 2.0)
    min_reference_video_seconds: float = 2.0  # all reference videos of a task together (Seedance 2.0: 2-15 s)
    max_reference_video_seconds: float = 15.0
    max_reference_audio_seconds: float = 15.0  # all reference audio clips together (Seedance 2.0)
    max_upload_bytes: int = 30 * 1024 * 1024  # one decoded reference file
    # Pixels of one reference image, read from its header before decoding: a few kB of PNG can stand for
    # 8192x8192 px (seconds of CPU, GBs of memory to decode); a 1080p frame needs 2 Mpx.
    max_image_pixels: int = 4096 * 4096
    max_body_bytes: int = 64 * 1024 * 1024  # one HTTP request body (base64 data URLs inflate by 4/3)
    # Durations: the film's own limit table by default (film/limits.py), the same as the CLI's.
    min_seconds: float = MIN_SHOT_SECONDS  # a single-prompt task
    max_seconds: float = MAX_SHOT_SECONDS
    min_shot_seconds: float = MIN_SHOT_SECONDS  # each shot of a multi-shot film
    max_shot_seconds: float = MAX_SHOT_SECONDS
    max_film_seconds: float = MAX_FILM_SECONDS  # all shots together
    resolutions: tuple[str, ...] = ("480p", "720p", "1080p")
    max_fps: int = 30
    max_queued_per_tenant: int = 20  # queued + running tasks of one tenant; one more answers 429
    max_jobs_per_hour: int = 600  # tasks one tenant may create in 60 minutes (cancelled and deleted count)
    max_output_bytes_per_tenant: int = 50 * 2**30  # outputs kept for one tenant; past it, new tasks get 429


MODEL_FILE_PARTS = ("model_2", "text_encoder", "vae", "image_encoder", "tokenizer", "variant", "comfy_root")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("yingxi-data")  # jobs.db, secret, tasks/<id>/ (inputs and outputs)
    backend: str = "animatic"  # a name in backends/registry.py: "animatic" (CPU, no weights), "wan", ...
    model: str | None = None  # Wan variant name, folder or transformer file; None: the backend's default
    # The other parts of a model given as single files: model_2, text_encoder, vae, image_encoder, tokenizer,
    # variant, comfy_root (as `load_pipeline`'s keywords)
    model_files: dict[str, str] = field(default_factory=dict)
    device: str | None = None  # torch device for neural backends; None: cuda:<worker index> if any, else cpu
    offload: str = "none"  # wan: "none" | "model" (5B on 24 GB) | "blocks" (14B on 24 GB)
    cache: str | None = None  # wan: every shot's step cache, "magcache" / "teacache:0.2" / ...; None: off
    workers: int = 1  # render processes (one per GPU, or one on CPU); 0: an API server, workers elsewhere
    pool: str = (
        "local"  # "local": `workers` processes here; "ray" / "ray://HEAD[:PORT]": Ray actors (ray_pool.py)
    )
    pool_workers: int = 0  # Ray actors to place; 0: one per GPU of the cluster (wan) or per CPU (animatic)
    allow_url_fetch: bool = False  # fetch http(s) references server-side (SSRF risk: off by default)
    allow_callbacks: bool = False  # POST the task to callback_url when it finishes
    allow_private_urls: bool = False  # let those two reach loopback/private/link-local hosts (LAN only)
    output_ttl_hours: float = 24.0 * 7  # finished outputs are deleted (status "expired") after this
    row_retention_hours: float = 24.0 * 30  # the records of expired/failed/cancelled tasks, after they end
    public_url: str | None = None  # base of the URLs we hand out; None: taken from each request
    database_url: str | None = None  # sqlite:///PATH or postgresql://...; None: data_dir/jobs.db
    log_format: str = "text"  # "text" | "json": one JSON object a line, with request, tenant and job ids
    cors_origins: tuple[str, ...] = ()  # extra origins allowed to call the API from a browser
    max_attempts: int = 3  # a job whose worker dies this many times fails
    lease_seconds: float = 30.0  # a running job without a heartbeat for this long is requeued
    heartbeat_seconds: float = 2.0
    poll_seconds: float = 0.2  # how often an idle worker looks for work
    default_fps: int = 24
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", get_spec(self.backend).name)  # InputError naming the closest
        if self.offload not in ("none", "model", "blocks"):
            raise ValueError(f'unknown offload "{self.offload}"; accepted: none, model, blocks')
        if self.log_format not in ("text", "json"):
            raise ValueError(f'unknown log format "{self.log_format}"; accepted: text, json')
        if self.workers < 0:
            raise ValueError("workers must be 0 (API only: run `yingxi worker` elsewhere) or more")
        if self.database_url and self.database_url.split(":", 1)[0].lower() not in (
            "sqlite",
            "postgresql",
            "postgres",
        ):
            raise ValueError("--database-url must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
        if self.pool not in ("local", "ray") and not self.pool.startswith("ray://"):
            raise ValueError(f'--pool must be local, ray or ray://HEAD[:PORT], got "{self.pool}"')
        if self.pool_workers < 0:
            raise ValueError("--pool-workers must be 0 (one per GPU or CPU of the cluster) or more")
        unknown = sorted(set(self.model_files) - set(MODEL_FILE_PARTS))
        if unknown:
            raise ValueError(
                f'unknown model file part "{unknown[0]}"; accepted: {", ".join(MODEL_FILE_PARTS)}'
            )
        object.__setattr__(self, "data_dir", Path(self.data_dir))

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jobs.db"

    @property
    def tasks_dir(self) -> Path:
        return self.data_dir / "tasks"

    def backend_options(self) -> dict[str, Any]:
        """The registry options these settings give the backend (only those it takes: see registry.py)."""
        takes = get_spec(self.backend).options
        given = {"model": self.model, "files": dict(self.model_files), "device": self.device,
                 "offload": None if self.offload == "none" else self.offload, "cache": self.cache}  # fmt: skip
        return {k: v for k, v in given.items() if k in takes}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, to hand the settings to a worker process."""
        d = dataclasses.asdict(self)
        d["data_dir"] = str(self.data_dir)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServerSettings:
        d = dict(d)
        limits = dict(d.pop("limits", {}))
        limits["resolutions"] = tuple(limits.get("resolutions", Limits.resolutions))
        d["cors_origins"] = tuple(d.get("cors_origins", ()))
        return cls(**d, limits=Limits(**limits))


def limits_view(limits: Limits) -> dict[str, Any]:
    """The limits a client shows in its fields (the studio's duration, its file counts)."""
    return {"seconds": {"min": limits.min_seconds, "max": limits.max_seconds},
            "shot_seconds": {"min": limits.min_shot_seconds, "max": limits.max_shot_seconds},
            "film_seconds": {"max": limits.max_film_seconds}, "max_images": limits.max_images,
            "max_audios": limits.max_audios, "max_prompt_chars": limits.max_prompt_chars,
            "resolutions": list(limits.resolutions), "max_fps": limits.max_fps}  # fmt: skip
