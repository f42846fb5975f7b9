"""`WanPipeline`: built Wan components composed into one callable for t2v, i2v, flf2v and ti2v.

The pipeline never loads weights (see `yingxi.pipelines.wan.load`); it encodes the text and images, builds
the task's conditioning (`t2v.py`, `i2v.py`, `ti2v.py`), wraps the transformer(s) into a denoiser
(classifier-free guidance per expert, A14B expert switching) and runs a sampler from `yingxi.samplers`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from yingxi.errors import CapabilityError, InputError
from yingxi.models.wan.config import WanVariant, variants_with
from yingxi.pipelines.common import (
    as_uint8_image,
    check_frames,
    check_size,
    image_to_tensor,
    initial_latents,
    latent_shape,
    video_to_uint8,
)
from yingxi.pipelines.offload import OffloadMode, Placement
from yingxi.pipelines.runtime import Runtime, runtime_with
from yingxi.pipelines.wan.cache import CacheSpec, StepCache, make_cache, parse_cache, use_cache
from yingxi.pipelines.wan.common import (
    WAN_BLOCK_LISTS,
    WAN_OFFLOAD_ORDER,
    WAN_STREAMED,
    TaskInputs,
    join_contexts,
)
from yingxi.pipelines.wan.components import WanComponents
from yingxi.pipelines.wan.evaluations import check_step_list, sampling_schedule, transformer_evaluations
from yingxi.pipelines.wan.i2v import i2v_inputs
from yingxi.pipelines.wan.speed import apply_speed
from yingxi.pipelines.wan.t2v import t2v_inputs
from yingxi.pipelines.wan.ti2v import ti2v_inputs
from yingxi.samplers import cfg_denoiser, expert_denoiser, sample_euler, sample_unipc
from yingxi.samplers.schedules import SCHEDULES, ScheduleKind

__all__ = ["StepProgress", "WanComponents", "WanPipeline", "transformer_evaluations"]

Sampler = Literal["unipc", "euler"]

StepProgress = Callable[[int, int], None]  # (steps done, total steps)


def _task(variant: WanVariant) -> str:
    return variant.tasks[0]


@dataclass(frozen=True)
class _Run:
    """One call's inputs with every default resolved and every check passed."""

    prompt: str | None
    negative_prompt: str | None
    prompt_embeds: Tensor | None
    negative_prompt_embeds: Tensor | None
    image: np.ndarray | None  # uint8 (H, W, 3)
    last_image: np.ndarray | None
    width: int
    height: int
    num_frames: int
    steps: int
    scale: float
    scale_2: float
    shift: float
    seed: int | None
    latents: Tensor | None
    sampler: Sampler
    schedule: ScheduleKind
    cache: CacheSpec | None
    step_list: tuple[int, ...] = ()  # a step distillation's training timesteps: the schedule, if given


class WanPipeline:
    """pipe(prompt=..., image=..., width=..., height=..., num_frames=...) -> uint8 frames (F, H, W, 3)."""

    def __init__(
        self,
        components: WanComponents,
        *,
        runtime: Runtime | None = None,
        schedule: ScheduleKind = "wan",
        device: str | torch.device | None = None,
        offload: bool | OffloadMode | None = None,
        sampler: Sampler | None = None,
        cache: str | CacheSpec | None = None,
        batched_guidance: bool | None = None,
        attention: str | None = None,
        cross_attention: str | None = None,
        compile: bool | str | None = None,
    ) -> None:
        """`runtime`: how to run (device, offload, sampler, cache, batched guidance, attention, compile, ...);
        the loose keywords, kept for callers that pass them, replace its fields."""
        self.runtime = runtime_with(runtime, device=device, offload=offload, sampler=sampler, cache=cache,
                                    batched_guidance=batched_guidance, attention=attention,
                                    cross_attention=cross_attention, compile=compile)  # fmt: skip
        runtime = self.runtime
        self.components = components
        self.cache = parse_cache(runtime.cache)  # step cache of every call (None: every block of every step)
        self.batched_guidance = runtime.guidance_batched  # cond + uncond as one batch (default: on GPUs)
        self.last_usage: dict[str, Any] = {}  # of the last call: evaluations, skipped, calls, cache
        self.variant = components.variant
        self.device = runtime.torch_device
        self.sampler = runtime.sampler
        self.schedule = _check_schedule(schedule)
        if components.transformer_2 is not None and components.variant.boundary_ratio is None:
            raise InputError("transformer_2 needs the variant's boundary_ratio", field="transformer_2")
        self.placement = Placement(components.modules(), self.device, order=WAN_OFFLOAD_ORDER,
                                   streamed=WAN_STREAMED, block_lists=WAN_BLOCK_LISTS,
                                   offload=runtime.offload)  # fmt: skip
        # attention kernels (cross_attention None: as attention) and compiled blocks, chosen once: speed.py
        self.speed = apply_speed({"transformer": components.transformer, "transformer_2": components.transformer_2},
                                 self.device, attention=runtime.attention, cross_attention=runtime.cross_attention,
                                 compile=runtime.compile, offload=runtime.offload)  # fmt: skip
        vae_cfg = components.vae.config
        self.temporal = int(vae_cfg.scale_factor_temporal)
        self.spatial = int(vae_cfg.scale_factor_spatial)
        self.patch = tuple(components.transformer.config.patch_size)
        self.size_multiple = self.spatial * max(self.patch[1], self.patch[2])
        self.latent_channels = int(vae_cfg.z_dim)

    @property
    def name(self) -> str:
        return self.variant.name

    # ---- checks ------------------------------------------------------------------------------------------
    def check(
        self,
        *,
        width: int,
        height: int,
        num_frames: int,
        image: object = None,
        last_image: object = None,
    ) -> None:
        """Raise InputError/CapabilityError for a request this model cannot make, before any work."""
        v = self.variant
        check_size(width, height, self.size_multiple, model=v.name)
        check_frames(num_frames, temporal=self.temporal, max_frames=v.max_frames, model=v.name)
        task = _task(v)
        if last_image is not None and task != "flf2v":
            raise CapabilityError(
                f"{v.name} cannot end on a given last frame; first+last-frame variants: {variants_with('flf2v')}",
                field="last_image",
            )
        if image is not None and task == "t2v":
            raise CapabilityError(
                f"{v.name} is text-to-video only and cannot start from an image; image-to-video "
                f"variants: {variants_with('i2v')}",
                field="image",
            )
        if image is None and task in ("i2v", "flf2v"):
            raise InputError(f"{v.name} needs a first-frame image", field="image")
        if last_image is None and task == "flf2v":
            raise InputError(f"{v.name} needs a last-frame image", field="last_image")
        if task == "flf2v" and num_frames < 5:
            raise InputError("first+last frame needs at least 5 frames", field="num_frames")

    # ---- LoRA ----------------------------------------------------------------------------------------------
    def set_loras(
        self,
        loras: Sequence[tuple[str | Path, float]] = (),
        loras_2: Sequence[tuple[str | Path, float]] | None = None,
    ) -> None:
        """Make `loras` [(file, strength)] the transformer's LoRAs (A14B: the high-noise expert's) and
        `loras_2` the low-noise expert's (None: the same as `loras`), replacing the ones before; [] puts the
        base weights back exactly. The base is never reloaded: fused weights are restored from backups."""
        from yingxi.models.wan.lora import set_loras

        second = self.components.transformer_2
        if second is None and loras_2:
            raise InputError(
                f"{self.variant.name} has one transformer; --lora-2 needs an A14B pair", field="lora-2"
            )
        set_loras(self.components.transformer, loras)
        if second is not None:
            set_loras(second, loras if loras_2 is None else loras_2)

    def evaluations(self, **call_args: Any) -> int:
        """Transformer forward passes a call with these arguments (steps, guidance, ...) costs."""
        v = self.variant
        steps = call_args.get("num_inference_steps") or v.steps
        guidance = call_args.get("guidance_scale")
        return transformer_evaluations(
            v,
            steps=int(steps),
            guidance=float(v.guidance_scale if guidance is None else guidance),
            guidance_2=call_args.get("guidance_scale_2"),
            shift=call_args.get("shift"),
            sampler=call_args.get("sampler") or self.sampler,
            schedule=call_args.get("schedule") or self.schedule,
            two_experts=self.components.transformer_2 is not None,
        )

    # ---- encoders ----------------------------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str]) -> Tensor:
        """(B, 512, text_dim) UMT5 embeddings, zero past each prompt's tokens (on the pipeline device)."""
        if self.components.text_encoder is None:
            raise InputError("this pipeline has no text encoder; pass prompt_embeds", field="prompt")
        with self.placement.use("text_encoder") as encoder:
            return encoder.encode(prompts).to(self.device)

    def encode_images(self, images: list[np.ndarray]) -> Tensor:
        """(N, 257, image_dim) CLIP penultimate-layer tokens of each image (Wan 2.1 i2v/flf2v)."""
        with self.placement.use("image_encoder") as encoder:
            return encoder.encode(images).to(self.device)

    # ---- the call ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        prompt_embeds: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        image: object = None,
        last_image: object = None,
        width: int | None = None,
        height: int | None = None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_scale_2: float | None = None,
        shift: float | None = None,
        seed: int | None = None,
        latents: Tensor | None = None,
        progress: StepProgress | None = None,
        sampler: Sampler | None = None,
        schedule: ScheduleKind | None = None,
        cache: str | CacheSpec | None = None,
        denoising_step_list: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Generate one clip; every default comes from the variant (steps, guidance, shift, size, length).

        `seed` draws the starting noise from a CPU generator (as diffusers' `randn_tensor` with a CPU
        generator), so a seed starts from the same latents on any device; frames still differ between
        devices and dtypes by kernel rounding. `negative_prompt` None is "" (diffusers' default; Wan's
        own is `models.wan.config.WAN_NEGATIVE_PROMPT`). Guidance 1 skips the unconditional pass.
        `sampler`/`schedule` (None: the pipeline's): "unipc"/"euler", and Wan's own sigma grid or diffusers'.
        `cache` (None: the pipeline's; "none": off): "fbcache", "magcache", "teacache", optionally
        ":threshold". After the call `last_usage` holds the evaluations that ran, were skipped, and calls.
        `denoising_step_list` (a step distillation's training timesteps, e.g. [1000, 750, 500, 250]) replaces
        the grid with exactly those levels, as LightX2V samples them (`samplers.step_list_schedule`).
        """
        v = self.variant
        default_w, default_h = v.default_size
        width = default_w if width is None else width
        height = default_h if height is None else height
        num_frames = v.num_frames if num_frames is None else num_frames
        step_list = tuple(int(t) for t in denoising_step_list or ())
        steps = (len(step_list) or v.steps) if num_inference_steps is None else num_inference_steps
        scale = float(v.guidance_scale if guidance_scale is None else guidance_scale)
        scale_2 = guidance_scale_2 if guidance_scale_2 is not None else (v.guidance_scale_2 or scale)
        shift = float(v.shift if shift is None else shift)
        if not isinstance(steps, int) or steps < 1:
            raise InputError(
                f"num_inference_steps must be at least 1, got {steps}", field="num_inference_steps"
            )
        check_step_list(step_list, steps)
        if scale < 1 or scale_2 < 1:
            raise InputError(
                "guidance scales must be at least 1 (1 turns guidance off)", field="guidance_scale"
            )
        if guidance_scale_2 is not None and self.components.transformer_2 is None:
            raise InputError(
                f"guidance_scale_2 needs a two-expert model; {v.name} has one", field="guidance_scale_2"
            )
        if (prompt is None) == (prompt_embeds is None):
            raise InputError("pass exactly one of prompt and prompt_embeds", field="prompt")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise InputError(
                "pass at most one of negative_prompt and negative_prompt_embeds", field="negative_prompt"
            )
        if image is not None:
            image = as_uint8_image(image, field="image")
        if last_image is not None:
            last_image = as_uint8_image(last_image, field="last_image")
        self.check(width=width, height=height, num_frames=num_frames, image=image, last_image=last_image)

        sampler = sampler or self.sampler
        if sampler not in ("unipc", "euler"):
            raise InputError(f'unknown sampler "{sampler}"; accepted: unipc, euler', field="sampler")
        run = _Run(
            prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, image, last_image,
            width, height, num_frames, steps, scale, float(scale_2), shift, seed, latents,
            sampler, _check_schedule(schedule or self.schedule),
            self.cache if cache is None else parse_cache(cache), step_list,
        )  # fmt: skip
        try:
            return self._generate(run, progress)
        finally:
            self.placement.release()

    def _generate(self, run: _Run, progress: StepProgress | None) -> np.ndarray:
        v, device = self.variant, self.device
        two_experts = self.components.transformer_2 is not None
        needs_uncond = run.scale != 1 or (two_experts and run.scale_2 != 1)

        # 1. text
        context = run.prompt_embeds if run.prompt_embeds is not None else self.encode_prompt([run.prompt])
        uncontext = run.negative_prompt_embeds
        if needs_uncond and uncontext is None:
            if self.components.text_encoder is None:
                raise InputError(
                    "guidance above 1 makes an unconditional pass; this pipeline has no text encoder, so "
                    "pass negative_prompt_embeds with prompt_embeds (or guidance_scale=1)",
                    field="negative_prompt_embeds",
                )
            uncontext = self.encode_prompt([run.negative_prompt or ""])
        context = context.to(device)
        uncontext = uncontext.to(device) if uncontext is not None else None

        # 2. latents to start from
        shape = self._latent_shape(run)
        latents = run.latents
        if latents is None:
            latents = initial_latents(shape, run.seed, device)
        elif tuple(latents.shape) != shape:
            raise InputError(f"latents must have shape {shape} for this size and length, got {tuple(latents.shape)}",
                             field="latents")  # fmt: skip
        latents = latents.to(device=device, dtype=torch.float32)

        # 3. the task's conditioning
        task = _task(v)
        inputs = self._task_inputs(task, run, shape)

        # 4. sample
        schedule = sampling_schedule(run.steps, run.shift, run.sampler, run.schedule, run.step_list)
        experts = [("transformer", run.scale)] + ([("transformer_2", run.scale_2)] if two_experts else [])
        tokens = math.prod(n // p for n, p in zip(shape[-3:], self.patch, strict=True))
        # an A14B low-noise expert's cache starts at the switch, so its step index is the clip's
        boundary = v.boundary_ratio * schedule.num_train_timesteps if two_experts else 0.0
        switch = sum(1 for sigma in schedule.sigmas[:-1] if schedule.timestep(sigma) >= boundary)
        caches = {
            name: make_cache(run.cache, self.components.modules()[name].config, run.steps, tokens,
                             first_step=switch if name == "transformer_2" else 0)
            for name, _ in experts
        }  # fmt: skip
        usage = {"evaluations": 0, "skipped": 0, "calls": 0}
        batch = join_contexts if self.batched_guidance else None
        denoisers = [
            cfg_denoiser(
                self._model_fn(name, inputs, schedule, caches[name], usage, context, uncontext),
                context, uncontext, s, batch=batch,
            )
            for name, s in experts
        ]  # fmt: skip
        denoise = denoisers[0]
        if two_experts:
            denoise = expert_denoiser(
                denoisers[0], denoisers[1], boundary=boundary, timestep=schedule.timestep
            )
        callback = (lambda d: progress(d["i"] + 1, run.steps)) if progress is not None else None
        sample = sample_unipc if run.sampler == "unipc" else sample_euler
        # The sigmas stay on the CPU: each step reads them as scalars (its timestep, the expert switch, the
        # solver's coefficients), which on the GPU would be a device sync per read.
        latents = sample(denoise, latents, schedule.sigmas, callback=callback)
        latents = inputs.hold(latents)[:, :, inputs.leading :]  # (1, z, f, h, w) the video's own frames
        usage["cache"] = str(run.cache) if run.cache is not None else None
        self.last_usage = usage

        # 5. pixels
        with self.placement.use("vae") as vae:
            video = vae.decode(latents.to(vae.dtype))  # (1, 3, F, H, W) in [-1, 1]
        return video_to_uint8(video)

    def _latent_shape(self, run: _Run) -> tuple[int, ...]:
        """The latents the sampler works on (VACE adds leading reference frames)."""
        return latent_shape(self.latent_channels, run.num_frames, run.height, run.width,
                            temporal=self.temporal, spatial=self.spatial)  # fmt: skip

    def _task_inputs(self, task: str, run: _Run, shape: tuple[int, ...]) -> TaskInputs:
        device, image, last_image, width, height = (
            self.device,
            run.image,
            run.last_image,
            run.width,
            run.height,
        )
        if task == "t2v":
            return t2v_inputs(shape, per_token_timesteps=self.variant.expand_timesteps, device=device)
        if task == "ti2v":
            pixels = image_to_tensor(image, width, height, device) if image is not None else None
            with self.placement.use("vae") as vae:
                return ti2v_inputs(vae, pixels, shape, device=device)
        # i2v / flf2v
        embeds = None
        if self.components.image_encoder is not None:
            embeds = self.encode_images([image] if last_image is None else [image, last_image])
        first = image_to_tensor(image, width, height, device)
        last = image_to_tensor(last_image, width, height, device) if last_image is not None else None
        with self.placement.use("vae") as vae:
            inputs = i2v_inputs(vae, first, run.num_frames, last_image=last, image_embeds=embeds)
        return TaskInputs(concat=inputs.concat.to(device), image_embeds=inputs.image_embeds)

    def _model_fn(
        self,
        name: str,
        inputs: TaskInputs,
        schedule,
        cache: StepCache | None,
        usage: dict[str, Any],
        context: Tensor,
        uncontext: Tensor | None,
    ):
        """model_fn(x, sigma, context) -> velocity for one transformer, as `cfg_denoiser` wants it; counts
        the calls and evaluations in `usage` and runs `cache` on the branch the context names."""

        def model_fn(x: Tensor, sigma: Tensor, ctx: Tensor) -> Tensor:
            branch = "cond" if ctx is context else "uncond" if ctx is uncontext else "cfg"
            with self.placement.use(name) as model, use_cache(model, cache, branch):
                dtype = model.dtype
                t = schedule.timestep(sigma).to(x.device)
                timestep = inputs.timestep(t, x.shape[0], self.patch)
                image = inputs.image_embeds.to(dtype) if inputs.image_embeds is not None else None
                if image is not None and x.shape[0] > 1:  # batched guidance: the same image tokens twice
                    image = image.repeat(x.shape[0], 1, 1)  # (2N, Li, E)
                skipped = cache.skipped if cache is not None else 0
                v = model(
                    inputs.model_input(x).to(dtype), timestep, ctx.to(dtype), image, **inputs.model_kwargs()
                )
                done = (cache.skipped if cache is not None else 0) - skipped
                usage["calls"] += 1
                usage["skipped"] += done
                usage["evaluations"] += x.shape[0] - done
                # float32 from here, as Wan's own model returns it: the guidance difference
                # scale * (v_cond - v_uncond) amplifies bf16 rounding (diffusers combines in bf16)
                return v.float()

        return model_fn


def _check_schedule(schedule: str) -> ScheduleKind:
    if schedule not in SCHEDULES:
        from yingxi.errors import unknown_word

        raise InputError(unknown_word("schedule", str(schedule), SCHEDULES), field="schedule")
    return schedule  # type: ignore[return-value]
