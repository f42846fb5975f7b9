"""The neural camera: Wan 2.1 / 2.2 through `yingxi.pipelines.wan`, with capabilities read off the variant.

`WanGenerator` is honest about what its model can do (which conditionings, sizes, frame counts, fps), so
the director snaps durations to 4k+1 frames and `check(request)` refuses, before any work starts, a shot
the model cannot make (an image for a text-only model, a last frame for a model without FLF2V, ...).
Weights load on the first `generate`, so planning and checking need none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yingxi.backends.base import Capabilities, Clip, ClipRequest, ShotProgress
from yingxi.backends.checks import check_steps, refuse_unsupported
from yingxi.backends.wan_settings import ShotSettings, check_speed_now, split_lora_pair
from yingxi.backends.wan_vace import VACE_KINDS, vace_args
from yingxi.errors import CapabilityError, InputError, ModelNotFoundError
from yingxi.models import hub
from yingxi.models.wan.config import WAN_NEGATIVE_PROMPT, WanVariant, variants_with
from yingxi.pipelines.runtime import Runtime

__all__ = ["OPTIONS", "WanGenerator", "build_wan", "door_wan"]

OPTIONS = {
    "shift": "number > 0: flow shift of the sigma schedule (default: the variant's)",
    "guidance_2": "number >= 1: guidance of the low-noise expert, two-expert (A14B) models only",
    "cache": "fbcache, magcache or teacache [:threshold], or none: the step cache of this shot",
}
MIN_FRAMES = 5  # one latent frame after the first: the shortest clip that moves
AREA_SLACK = (
    1.25  # sizes up to this much larger than the largest trained one are accepted (864x480 for 832x480)
)
DECODE_SHARE = 0.05  # of a shot's progress, left for the VAE decode after the last step


class WanGenerator:
    """A Generator over a Wan pipeline.

    `pipe_or_name`: a built `WanPipeline`, or a variant name / HF repo id / diffusers-layout folder, or one
    transformer file with `files` naming its other parts (model_2, text_encoder, vae, image_encoder,
    tokenizer, variant, comfy_root). `runtime` says how to run it (device, dtype, weights, offload,
    attention, compile, cache, parallel: `pipelines.runtime.Runtime`), handed to `load_pipeline` on first
    use; the loose keywords device=, dtype=, offload=, sampler=, weights=, cache=, attention=,
    cross_attention=, compile= replace its fields (a kernel this machine cannot run is refused here, before
    any weights load). `steps` and `guidance` replace the variant's defaults when a request does not set
    them. `loras` [(file, strength)] go on the transformer (A14B: files named *low_noise* go on the
    low-noise expert, unless `loras_2` is given; otherwise both experts get them). `preset` ("lightning"; or
    a request's own) sets the sampler, steps, shift, guidance and, unless `loras` are given, the LoRA files,
    found in `comfy_root`'s loras. The Runtime's cache (a request's option "cache" replaces it) skips steps'
    blocks.
    """

    def __init__(
        self,
        pipe_or_name: Any,
        *,
        runtime: Runtime | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        files: dict[str, str] | None = None,
        loras: Sequence[tuple[str | Path, float]] = (),
        loras_2: Sequence[tuple[str | Path, float]] | None = None,
        preset: str | None = None,
        schedule: str = "wan",
        comfy_root: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        offload: bool | str | None = None,
        sampler: str | None = None,
        weights: str | None = None,
        cache: str | None = None,
        attention: str | None = None,
        cross_attention: str | None = None,
        compile: bool | str | None = None,
    ) -> None:
        from yingxi.pipelines.runtime import check_supported, runtime_with
        from yingxi.pipelines.wan import WanPipeline
        from yingxi.pipelines.wan.cache import parse_cache
        from yingxi.pipelines.wan.load import find
        from yingxi.pipelines.wan.load_files import is_single_file

        self.runtime = runtime_with(runtime, device=device, dtype=dtype, offload=offload, sampler=sampler,
                                    weights=weights, cache=cache, attention=attention,
                                    cross_attention=cross_attention, compile=compile)  # fmt: skip
        check_supported(self.runtime)  # a kernel or plan this build cannot run: now, before planning
        self.cache = parse_cache(self.runtime.cache)  # every shot's step cache unless its request names one
        self._files = {k: v for k, v in (files or {}).items() if v is not None}
        r = self.runtime
        if not isinstance(pipe_or_name, WanPipeline) and (
            r.attention != "auto" or r.cross_attention is not None or r.compile is not None
        ):
            check_speed_now(r)  # "auto" alone never fails: no CUDA start here
        if isinstance(pipe_or_name, WanPipeline):
            self._pipe: WanPipeline | None = pipe_or_name
            self.variant: WanVariant = pipe_or_name.variant
            self._folder: Path | None = None
            self.size_multiple = pipe_or_name.size_multiple
            if runtime is None:  # a built pipeline already runs somehow: report that, not the defaults
                self.runtime = runtime_with(pipe_or_name.runtime, cache=cache)
                self.cache = parse_cache(self.runtime.cache)
        else:
            self._pipe = None
            self.variant, self._folder = find(pipe_or_name, **self._files)
            if self._files or is_single_file(pipe_or_name):
                self._check_text_encoder(pipe_or_name)
            self._source = pipe_or_name
            self.size_multiple = self.variant.size_multiple
        self.steps = steps
        self.guidance = guidance
        self.sampler, self.schedule = self.runtime.sampler, schedule
        self.comfy_root = comfy_root or self._files.get("comfy_root")  # its loras/ folder holds preset LoRAs
        self.loras, self.loras_2 = split_lora_pair(self.variant, loras, loras_2)
        self.preset = preset
        self._applied: tuple | None = None if self._pipe is None else ((), None)  # LoRAs on the pipeline now
        if preset is not None:
            self.settings(preset)  # a bad preset or a missing LoRA file: now, before any work
        self.name = f"wan:{self.variant.name}"
        self.encoders = True  # False: load no text/image encoder (a parallel rank that rank 0 encodes for)

    def _check_text_encoder(self, model: Any) -> None:
        """A film is made from prompts: a transformer file needs its UMT5 encoder file too."""
        from yingxi.pipelines.wan.load_files import is_single_file, plan_files

        if (
            is_single_file(model, self._files.get("comfy_root"))
            and plan_files(model, **self._files).text_encoder is None
        ):
            raise ModelNotFoundError(
                f"{Path(str(model)).name} needs its text encoder to turn prompts into embeddings: give "
                "--text-encoder FILE (ComfyUI: umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled"
                ".safetensors) or --comfy-root DIR (Python: files={'text_encoder': ...})"
            )

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs: Any) -> WanGenerator:
        """A generator whose weights must be on disk (ModelNotFoundError now, saying where to put them,
        if not); they load into memory on the first `generate` or `load()`. kwargs: as the constructor."""
        from yingxi.pipelines.wan.load import resolve

        resolve(name_or_path, **kwargs.get("files", None) or {})
        return cls(name_or_path, **kwargs)

    def load(self) -> WanGenerator:
        """Load the weights now (a server worker does, so the first job does not wait for them)."""
        _ = self.pipeline
        return self

    @property
    def capabilities(self) -> Capabilities:
        v = self.variant
        return Capabilities(
            conditionings=frozenset(v.conditionings),
            size_multiple=self.size_multiple,
            max_pixels=int(AREA_SLACK * max(w * h for w, h in v.sizes)),
            frame_step=4,
            frame_offset=1,
            min_frames=MIN_FRAMES,
            max_frames=v.max_frames,
            native_fps=float(v.fps),
            conditioning_kinds=VACE_KINDS if self.vace else frozenset(),
        )

    @property
    def vace(self) -> bool:
        """A VACE model: references, extension, pinned frames and control videos (`wan_vace.py`)."""
        return "vace" in self.variant.tasks

    @property
    def pipeline(self):
        """The WanPipeline, loaded on first use."""
        if self._pipe is None:
            from yingxi.pipelines.wan.load import load_pipeline

            loras, loras_2 = self.settings(self.preset).loras
            self._pipe = load_pipeline(self._folder or self._source, runtime=self.runtime, schedule=self.schedule,
                                       loras=loras, loras_2=loras_2, encoders=self.encoders,
                                       **self._files)  # fmt: skip
            self._applied = (tuple(loras), None if loras_2 is None else tuple(loras_2))
            self.size_multiple = self._pipe.size_multiple
        return self._pipe

    # ---- before any work ---------------------------------------------------------------------------------
    def check(self, request: ClipRequest) -> None:
        """CapabilityError for a shot this model cannot make; ModelNotFoundError when its weights are absent."""
        v, caps = self.variant, self.capabilities
        self._check_conditioning(request)
        refuse_unsupported(request, caps, v.name)
        m = caps.size_multiple
        for name in ("width", "height"):
            value = getattr(request, name)
            if not isinstance(value, (int, np.integer)) or value < m or value % m:
                raise CapabilityError(
                    f"{v.name} makes sides that are multiples of {m} px, got {value!r}", field=name
                )
        if caps.max_pixels is not None and request.width * request.height > caps.max_pixels:
            raise CapabilityError(
                f"{request.width}x{request.height} is larger than {v.name} makes "
                f"(at most {caps.max_pixels} pixels, e.g. {v.default_size[0]}x{v.default_size[1]}); "
                "choose a lower resolution",
                field="width",
            )
        n = request.num_frames
        if not isinstance(n, (int, np.integer)) or n < caps.min_frames or (n - 1) % 4 or n > v.max_frames:
            raise CapabilityError(
                f"{v.name} makes 4k+1 frames from {caps.min_frames} to {v.max_frames}, got {n!r} "
                f"(nearest: {caps.legal_frames(int(n)) if isinstance(n, (int, np.integer)) else 81})",
                field="num_frames",
            )
        check_steps(request)
        if request.guidance is not None and not (math.isfinite(request.guidance) and request.guidance >= 1):
            raise CapabilityError(f"guidance must be at least 1, got {request.guidance!r}", field="guidance")
        self._check_options(request.options)
        self.settings(request.preset)  # an unknown preset, a LoRA file not found
        for name in ("first_frame", "last_frame"):
            image = getattr(request, name)
            if image is not None and (
                not isinstance(image, np.ndarray)
                or image.dtype != np.uint8
                or image.shape != (request.height, request.width, 3)
            ):
                got = (
                    f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
                )
                raise InputError(
                    f"must be uint8 ({request.height}, {request.width}, 3) to match the shot, got {got}",
                    field=name,
                )
        if self._pipe is None and self._folder is None:
            raise ModelNotFoundError(
                f"the weights of {v.name} are not on this machine; {hub.where_to_put(v)}"
            )

    def _check_conditioning(self, request: ClipRequest) -> None:
        v = self.variant
        if self.vace:
            vace_args(request, v.name)
            return
        can = set(v.conditionings)
        if request.reference_images:
            raise CapabilityError(
                f"{v.name} cannot follow reference images (Wan conditions on a first frame, not references); "
                f"give the shot a first frame instead, or use a VACE variant: {variants_with('references')}",
                field="reference_images",
            )
        if request.last_frame is not None and "flf2v" not in can:
            raise CapabilityError(
                f"{v.name} cannot end on a given last frame; first+last-frame variants: {variants_with('flf2v')}",
                field="last_frame",
            )
        if request.first_frame is not None and not can & {"i2v", "flf2v"}:
            raise CapabilityError(
                f"{v.name} is text-to-video only and cannot start from an image (a first frame, character or "
                f"style image, or a continued shot); image-to-video variants: {variants_with('i2v')}",
                field="first_frame",
            )
        if request.first_frame is None and "t2v" not in can:
            raise CapabilityError(
                f"{v.name} needs a first frame (give the shot a first_frame, a character or style image, or "
                f"continue the previous shot); text-to-video variants: {variants_with('t2v')}",
                field="first_frame",
            )
        if "flf2v" in can and "i2v" not in can and request.last_frame is None:
            raise CapabilityError(f"{v.name} needs a last frame as well as a first", field="last_frame")

    def _check_options(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            accepted = "; ".join(f"{k} ({d})" for k, d in OPTIONS.items())
            raise CapabilityError(
                f"unknown Wan option(s) {', '.join(unknown)}; accepted: {accepted}", field="options"
            )
        shift = options.get("shift")
        if shift is not None and not (isinstance(shift, (int, float)) and math.isfinite(shift) and shift > 0):
            raise CapabilityError(f"option shift must be a number > 0, got {shift!r}", field="options")
        if "cache" in options:
            from yingxi.pipelines.wan.cache import parse_cache

            parse_cache(options["cache"], field="options")
        g2 = options.get("guidance_2")
        if g2 is not None:
            if not self.variant.two_experts:
                raise CapabilityError(f"option guidance_2 needs a two-expert model; {self.variant.name} has one",
                                      field="options")  # fmt: skip
            if not (isinstance(g2, (int, float)) and math.isfinite(g2) and g2 >= 1):
                raise CapabilityError(f"option guidance_2 must be a number >= 1, got {g2!r}", field="options")

    # ---- presets and LoRAs ---------------------------------------------------------------------------------
    def settings(self, preset: str | None = None) -> ShotSettings:
        """Sampling settings and LoRAs for a shot: the request's or generator's preset, under what the
        generator was told (steps, guidance, LoRAs)."""
        from yingxi.pipelines.wan.presets import find_preset_loras, get_preset

        name = preset or self.preset
        row = get_preset(name, self.variant) if name else None
        loras: tuple = (tuple(self.loras), None if self.loras_2 is None else tuple(self.loras_2))
        if row is not None and not self.loras:
            high, low = find_preset_loras(row, self.comfy_root)
            loras = (tuple(high), None if low is None else tuple(low))
        return ShotSettings(
            steps=self.steps if self.steps is not None else (row.steps if row else None),
            guidance=self.guidance if self.guidance is not None else (row.guidance if row else None),
            guidance_2=row.guidance if row else None,
            shift=row.shift if row else None,
            sampler=row.sampler if row else self.sampler,
            schedule=row.schedule if row else self.schedule,
            loras=loras,
            step_list=row.denoising_step_list if row else (),
        )

    def evaluations(self, request: ClipRequest) -> int:
        """Transformer forward passes this shot costs (one per step; two where guidance is above 1)."""
        from yingxi.pipelines.wan.pipeline import transformer_evaluations

        s, v = self.settings(request.preset), self.variant
        steps = request.steps or s.steps or v.steps
        guidance = request.guidance if request.guidance is not None else s.guidance
        return transformer_evaluations(
            v,
            steps=int(steps),
            guidance=float(v.guidance_scale if guidance is None else guidance),
            guidance_2=request.options.get("guidance_2", s.guidance_2),
            shift=request.options.get("shift", s.shift),
            sampler=s.sampler,
            schedule=s.schedule,
            denoising_step_list=s.step_list_for(steps),
        )

    # ---- shooting ----------------------------------------------------------------------------------------
    def generate(self, request: ClipRequest, progress: ShotProgress | None = None) -> Clip:
        """Shoot one shot: uint8 frames (F, H, W, 3) at the model's native fps."""
        self.check(request)
        report = progress or (lambda fraction: None)
        s = self.settings(request.preset)
        pipe = self.pipeline
        if self._applied != s.loras:  # another preset's LoRAs: swap them on the loaded base
            pipe.set_loras(*s.loras)
            self._applied = s.loras
        steps = request.steps or s.steps
        guidance = request.guidance if request.guidance is not None else s.guidance
        guidance_2 = request.options.get("guidance_2", s.guidance_2)  # a preset's guidance is both experts'
        task: dict = dict(image=request.first_frame, last_image=request.last_frame)
        if self.vace:  # first/last frames are pinned images among the items; given frames end exact
            a = vace_args(request, self.variant.name)
            task = dict(video=a.video, mask=a.mask, reference_images=a.reference_images,
                        conditioning_scale=a.conditioning_scale, keep_given=True)  # fmt: skip
        frames = pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or WAN_NEGATIVE_PROMPT,  # what Wan was sampled with
            **task,
            width=int(request.width),
            height=int(request.height),
            num_frames=int(request.num_frames),
            num_inference_steps=int(steps) if steps is not None else None,
            guidance_scale=guidance,
            guidance_scale_2=guidance_2 if self.variant.two_experts else None,
            shift=request.options.get("shift", s.shift),
            seed=int(request.seed),
            progress=lambda i, n: report((1 - DECODE_SHARE) * i / n),
            sampler=s.sampler,
            schedule=s.schedule,
            denoising_step_list=s.step_list_for(steps),
            cache=self._cache(request),
        )
        report(1.0)
        usage = pipe.last_usage
        return Clip(frames=frames, fps=float(self.variant.fps), evaluations=usage["evaluations"],
                    skipped=usage["skipped"] if usage["cache"] else None)  # fmt: skip

    def runtime_notes(self) -> list[str]:
        """How the loaded pipeline runs, for the `generate` summary: its attention kernels and compile time
        (nothing before the weights load)."""
        return self._pipe.speed.notes() if self._pipe is not None else []

    def planned_skips(self, request: ClipRequest) -> int | str | None:
        """Forward passes the shot's step cache will skip: a count for MagCache on one transformer (its
        rule reads only the published ratios), "at run time" for the caches that look at activations,
        None without a cache."""
        from yingxi.pipelines.wan.cache import CacheSpec, magcache_plan
        from yingxi.pipelines.wan.cache_tables import table_key

        spec = self._cache(request)
        if not isinstance(spec, CacheSpec):
            return None
        if spec.name != "magcache" or self.variant.two_experts:
            return "at run time"
        s, v = self.settings(request.preset), self.variant
        steps = int(request.steps or s.steps or v.steps)
        guidance = request.guidance if request.guidance is not None else s.guidance
        guided = float(v.guidance_scale if guidance is None else guidance) != 1
        tokens = (int(request.num_frames) - 1) // 4 + 1
        tokens *= (int(request.width) // 16) * (int(request.height) // 16)  # 8x VAE, 2x2 patches
        table = table_key(v.dit.inner_dim, v.dit.in_channels, tokens)
        batched = self._pipe.batched_guidance if self._pipe is not None else self.runtime.guidance_batched
        # a batched pair is decided on the cond ratios and skips both of its evaluations (`cache.py`)
        branches = (("cond", "cond") if batched else ("cond", "uncond")) if guided else ("cond",)
        return sum(len(magcache_plan(spec, table, steps, b)) for b in branches)

    def _cache(self, request: ClipRequest):
        """The shot's step cache: its request's option, else the generator's; "none" turns it off."""
        from yingxi.pipelines.wan.cache import parse_cache

        if "cache" in request.options:
            return parse_cache(request.options["cache"], field="options") or "none"
        return self.cache


def build_wan(model: str | None, options: dict[str, Any]) -> WanGenerator:
    """The registry's builder: a WanGenerator over `model` with the options given (weights load on the
    first shot). `files` carries the single-file parts, comfy_root among them (its loras/ hold presets')."""
    from yingxi.pipelines.runtime import runtime_with

    files = dict(options.get("files") or {})
    runtime = runtime_with(options.get("runtime"), batched_guidance=options.get("batched_guidance"),
                           attention=options.get("attention"), cross_attention=options.get("cross_attention"),
                           compile=options.get("compile"))  # fmt: skip
    return WanGenerator(model, runtime=runtime, device=options.get("device"),
                        dtype=options.get("dtype"), offload=options.get("offload"), steps=options.get("steps"),
                        guidance=options.get("guidance"), weights=options.get("weights"), files=files,
                        loras=options.get("loras") or (), loras_2=options.get("loras_2"),
                        preset=options.get("preset"), schedule=options.get("schedule") or "wan",
                        comfy_root=files.get("comfy_root"), cache=options.get("cache"))  # fmt: skip


def door_wan(model: str | None, options: dict[str, Any]) -> WanGenerator:
    """The API process's WanGenerator: capabilities and checks from the variant, no weights loaded (its
    LoRAs and preset count: a preset's check looks for the distillation LoRA)."""
    return WanGenerator(model, runtime=options.get("runtime"), files=options.get("files") or None,
                        loras=options.get("loras") or (), loras_2=options.get("loras_2"),
                        preset=options.get("preset"))  # fmt: skip
