"""The `diffusers` camera: any diffusers video pipeline saved on disk (LTX-2 with its sound, Wan, ...).

`--backend diffusers --model DIR` loads `DiffusionPipeline.from_pretrained(DIR, local_files_only=True)` on the
first shot; what it can shoot is read off the pipeline class before that (`diffusers_traits`), so the director
plans within it and `check(request)` refuses, before any work, what the class cannot take. A shot that asks for
its sound (`generate_audio`) from a pipeline that makes one (LTX-2) gets it back as `Clip.audio` (S, C).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from yingxi.backends.base import Capabilities, Clip, ClipRequest, ShotProgress
from yingxi.backends.checks import check_item, check_steps
from yingxi.backends.diffusers_audio import hold_audio
from yingxi.backends.diffusers_traits import (
    CONDITION_KINDS,
    MAPPED,
    UNSETTABLE,
    PipelineTraits,
    read_traits,
    traits_of,
)
from yingxi.errors import CapabilityError, InputError, ModelNotFoundError, RenderError, unknown_word

__all__ = ["OPTIONS", "DiffusersGenerator", "build_diffusers_generator", "to_uint8"]

OPTIONS = {
    "device": "torch device (default: cuda if present, else cpu)",
    "dtype": "bf16, fp16 or fp32 (default: bf16 on a GPU, fp32 on the CPU)",
    "offload": "none, model (enable_model_cpu_offload) or sequential (enable_sequential_cpu_offload; "
    "'blocks' means the same)",
    "steps": "sampling steps when a shot does not set them (default: the pipeline's)",
    "guidance": "guidance scale when a shot does not set it (default: the pipeline's)",
    "call": "a dict of further __call__ arguments of the pipeline for every shot (e.g. stg_scale)",
}
OFFLOADS = {"none": None, "model": "model", "sequential": "sequential", "blocks": "sequential"}
DTYPES = ("bf16", "fp16", "fp32")
DECODE_SHARE = 0.05  # of a shot's progress, left for the VAE (and vocoder) decode after the last step


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """float frames in [0, 1] (diffusers' output_type="np") -> uint8, rounded: the one conversion used."""
    return (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def build_diffusers_generator(model: str, options: dict) -> DiffusersGenerator:
    """The diffusers backend for `model` (a pipeline folder) with backend `options` (see OPTIONS): the one
    place the CLI and the server construct it."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InputError(unknown_word("diffusers backend option", unknown[0], OPTIONS), field="options")
    if not model:
        raise InputError("--backend diffusers needs --model (a folder with a diffusers pipeline: model_index.json)",
                         field="--model")  # fmt: skip
    return DiffusersGenerator(model, **{k: v for k, v in options.items() if v is not None})


class DiffusersGenerator:
    """A Generator over one diffusers pipeline, loaded on first use (or given built, as `pipe`)."""

    def __init__(
        self,
        model: str | Path | Any,
        *,
        device: str | None = None,
        dtype: str | None = None,
        offload: str = "none",
        steps: int | None = None,
        guidance: float | None = None,
        call: dict[str, Any] | None = None,
    ) -> None:
        if offload not in OFFLOADS:
            raise InputError(unknown_word("offload", str(offload), OFFLOADS), field="offload")
        if dtype is not None and dtype not in DTYPES:
            raise InputError(unknown_word("dtype", str(dtype), DTYPES), field="dtype")
        if isinstance(model, (str, Path)):
            self._pipe = None
            self.folder: Path | None = Path(model)
            self.traits: PipelineTraits = read_traits(self.folder)
        else:
            self._pipe, self.folder = model, None
            self.traits = traits_of(model)
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise InputError(f"steps must be a whole number of at least 1, got {steps!r}", field="steps")
        if guidance is not None and not (isinstance(guidance, (int, float)) and math.isfinite(guidance)
                                         and guidance >= 0):  # fmt: skip
            raise InputError(f"guidance must be a number >= 0, got {guidance!r}", field="guidance")
        self.device, self.dtype, self.offload = device, dtype, OFFLOADS[offload]
        self.steps, self.guidance = steps, guidance
        self.call = dict(call or {})
        self._check_call(self.call, "call")
        self.name = f"diffusers:{self.traits.class_name}"

    @property
    def capabilities(self) -> Capabilities:
        return self.traits.capabilities()

    def load(self) -> DiffusersGenerator:
        """Load the weights now (a server worker does, so the first job does not wait for them)."""
        _ = self.pipeline
        return self

    @property
    def pipeline(self):
        """The diffusers pipeline, loaded on first use: local files only, never the network."""
        if self._pipe is None:
            import torch
            from diffusers import DiffusionPipeline

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            if self.offload is not None and not device.startswith("cuda"):  # before any weights are read
                raise InputError(f"offload {self.offload} moves parts onto a GPU, and {device} is none",
                                 field="offload")  # fmt: skip
            dtype = self.dtype or ("bf16" if device.startswith("cuda") else "fp32")
            torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
            try:
                pipe = DiffusionPipeline.from_pretrained(self.folder, dtype=torch_dtype,
                                                         local_files_only=True)  # fmt: skip
            except (OSError, ValueError) as e:
                raise ModelNotFoundError(
                    f"cannot load the diffusers pipeline in {self.folder}: {e}"
                ) from None
            except ImportError as e:
                # e.g. a published Kandinsky 5 folder: its Qwen2VLProcessor's video part wants torchvision
                missing = " ".join(str(e).split())
                raise ModelNotFoundError(f"cannot load the diffusers pipeline in {self.folder}: a part of it "
                                         f"needs a package that is not installed ({missing})") from None  # fmt: skip
            pipe.set_progress_bar_config(disable=True)
            if self.offload == "model":
                pipe.enable_model_cpu_offload(device=device)
            elif self.offload == "sequential":
                pipe.enable_sequential_cpu_offload(device=device)
            else:
                pipe.to(device)
            self._pipe = pipe
        return self._pipe

    # ---- before any work ---------------------------------------------------------------------------------
    def check(self, request: ClipRequest) -> None:
        """CapabilityError (an InputError) for a shot this pipeline class cannot make, before any work."""
        t, caps = self.traits, self.capabilities
        m = caps.size_multiple
        for name in ("width", "height"):
            value = getattr(request, name)
            if not isinstance(value, (int, np.integer)) or value < m or value % m:
                raise CapabilityError(f"{t.class_name} makes sides that are multiples of {m} px, got {value!r}",
                                      field=name)  # fmt: skip
        n = request.num_frames
        if (
            not isinstance(n, (int, np.integer))
            or n < caps.min_frames
            or (n - caps.frame_offset) % caps.frame_step
        ):
            nearest = caps.legal_frames(int(n)) if isinstance(n, (int, np.integer)) else caps.min_frames
            raise CapabilityError(
                f"{t.class_name} makes {caps.frame_step}k+{caps.frame_offset} frames, at least "
                f"{caps.min_frames}, got {n!r} (nearest: {nearest})",
                field="num_frames",
            )
        check_steps(request)
        if request.guidance is not None and not (math.isfinite(request.guidance) and request.guidance >= 0):
            raise CapabilityError(
                f"guidance must be a number >= 0, got {request.guidance!r}", field="guidance"
            )
        if request.guidance is not None and not t.takes_guidance:
            raise CapabilityError(f"{t.class_name} takes no guidance scale (neither its __call__ nor a guider "
                                  "component has one)", field="guidance")  # fmt: skip
        if t.sized_by_image:  # where its bucket rule is not found, generate's shape check still holds
            made = t.image_size(int(request.width), int(request.height))
            if made is not None and made != (request.width, request.height):
                raise CapabilityError(f"{t.class_name} picks its size from the first frame (buckets of about "
                                      f"{t.target_size}² pixels): {request.width}x{request.height} would come "
                                      f"out {made[0]}x{made[1]}; give the shot that size", field="width")  # fmt: skip
        if request.preset is not None:
            raise CapabilityError(f"sampling presets ({request.preset}) are Wan's (--backend wan); give the "
                                  "pipeline's own arguments as options instead", field="preset")  # fmt: skip
        self._check_images(request)
        self._check_conditioning(request)
        self._check_call(request.options, "options")
        if request.generate_audio and not t.makes_audio:
            raise CapabilityError(f"{t.class_name} makes no sound; LTX-2 pipelines (LTX2Pipeline, "
                                  "LTX2ImageToVideoPipeline) do", field="generate_audio")  # fmt: skip

    def _check_images(self, request: ClipRequest) -> None:
        t, can = self.traits, self.traits.conditionings
        if request.reference_images:
            raise CapabilityError(f"{t.class_name} cannot follow reference images (it takes first/last frames "
                                  "or frame conditions); give the shot a first frame instead",
                                  field="reference_images")  # fmt: skip
        if request.first_frame is None and "t2v" not in can:
            raise CapabilityError(f"{t.class_name} is image-to-video and needs a first frame (give the shot a "
                                  "first_frame, a character image, or continue the previous shot)",
                                  field="first_frame")  # fmt: skip
        if request.first_frame is not None and "i2v" not in can:
            raise CapabilityError(f"{t.class_name} is text-to-video only and cannot start from an image; "
                                  "use its image-to-video pipeline", field="first_frame")  # fmt: skip
        if request.last_frame is not None and "flf2v" not in can:
            raise CapabilityError(f"{t.class_name} cannot end on a given last frame (its __call__ takes no "
                                  "last_image or conditions)", field="last_frame")  # fmt: skip
        for name in ("first_frame", "last_frame"):
            _check_pixels(getattr(request, name), (request.height, request.width, 3), name)

    def _check_conditioning(self, request: ClipRequest) -> None:
        t = self.traits
        audio = [k for k, item in enumerate(request.conditioning) if item.kind == "audio"]
        for k in audio:
            if not t.follows_audio:
                raise CapabilityError(f"{t.class_name} cannot follow a reference audio (LTX-2's pipelines can: "
                                      "their transformer takes the sound's own timestep)",
                                      field=f"conditioning[{k}]")  # fmt: skip
            check_item(request.conditioning[k], request, f"conditioning[{k}]")
            if request.conditioning[k].frame != 0 or request.conditioning[k].strength != 1.0:
                raise InputError("a followed audio clip runs from the shot's first frame, whole: frame 0 and "
                                 "strength 1", field=f"conditioning[{k}]")  # fmt: skip
        if len(audio) > 1:
            raise InputError(
                f"a shot follows one audio clip, got {len(audio)}", field=f"conditioning[{audio[1]}]"
            )
        for k, item in enumerate(request.conditioning):
            where = f"conditioning[{k}]"
            if item.kind == "audio":
                continue
            if not t.takes_conditions or item.kind not in CONDITION_KINDS:
                takes = f"takes {' and '.join(CONDITION_KINDS)} items" if t.takes_conditions else "takes none"
                raise CapabilityError(f"{t.class_name} cannot take {item.kind} conditioning ({takes}; "
                                      "LTX2ConditionPipeline takes images and videos at frames)",
                                      field=where)  # fmt: skip
            if not (0 <= item.frame < request.num_frames):
                raise InputError(
                    f"frame {item.frame} is outside the shot's {request.num_frames} frames", field=where
                )
            if not (0.0 <= item.strength <= 1.0):
                raise InputError(f"strength must be in [0, 1], got {item.strength}", field=where)
            ndim = 3 if item.kind == "image" else 4
            _check_pixels(item.media, None, where, ndim=ndim)
            if item.kind == "video" and item.frame + len(item.media) > request.num_frames:
                raise InputError(f"{len(item.media)} frames from frame {item.frame} run past the shot's "
                                 f"{request.num_frames}; give fewer frames or an earlier one", field=where)  # fmt: skip

    def _check_call(self, args: dict[str, Any], field: str) -> None:
        """Options are the pipeline's own further __call__ arguments; a misspelt one names the closest."""
        settable = sorted(self.traits.params - MAPPED - UNSETTABLE)
        for key in args:
            if key not in settable:
                taken = " (yingxi sets it from the shot)" if key in MAPPED else ""
                raise CapabilityError(unknown_word(f"{self.traits.class_name} argument", key, settable) + taken,
                                      field=field)  # fmt: skip

    # ---- shooting ----------------------------------------------------------------------------------------
    def arguments(self, request: ClipRequest, progress: ShotProgress | None = None) -> dict[str, Any]:
        """The pipeline's keyword arguments for a shot: what `generate` calls it with (seeded generator,
        frames as float numpy, a step callback where the class takes one)."""
        import torch

        t = self.traits
        args: dict[str, Any] = {**self.call, **request.options}
        args.update(prompt=request.prompt, width=int(request.width), height=int(request.height),
                    num_frames=int(request.num_frames), output_type="np", return_dict=True,
                    generator=torch.Generator("cpu").manual_seed(int(request.seed)))  # fmt: skip
        if request.negative_prompt and "negative_prompt" in t.params:
            args["negative_prompt"] = request.negative_prompt
        steps = request.steps or self.steps
        if steps is not None:
            args["num_inference_steps"] = int(steps)
        guidance = request.guidance if request.guidance is not None else self.guidance
        if guidance is not None and "guidance_scale" in t.params:
            args["guidance_scale"] = float(guidance)
        if t.fps_param is not None:
            args[t.fps_param] = float(request.fps)
        if t.audio_switch:
            args["generate_audio"] = bool(request.generate_audio)
        if t.takes_conditions:
            conditions = self._conditions(request)
            if conditions:
                args["conditions"] = conditions
        else:
            if request.first_frame is not None:
                args["image"] = _pil(request.first_frame)
            if request.last_frame is not None:
                args["last_image"] = _pil(request.last_frame)
        if progress is not None and "callback_on_step_end" in t.params:
            total = int(args.get("num_inference_steps", t.defaults.get("num_inference_steps") or 1))

            def on_step(pipe, i, timestep, kwargs):
                n = getattr(pipe, "_num_timesteps", None) or total
                progress((1 - DECODE_SHARE) * min(1.0, (i + 1) / n))
                return kwargs

            args["callback_on_step_end"] = on_step
        return {k: v for k, v in args.items() if k in t.params}

    def _conditions(self, request: ClipRequest) -> list:
        """first/last frame and image/video items as the class's condition dataclass, at latent indices:
        a pixel frame f sits in latent frame ceil(f / temporal) (LTX-2's causal VAE: latent 0 is frame 0)."""
        from yingxi.backends.diffusers_traits import condition_type

        make = condition_type(type(self.pipeline))
        step = self.traits.frame_step

        def at(frame: int) -> int:
            return (int(frame) + step - 1) // step

        items = []
        if request.first_frame is not None:
            items.append(make(frames=_pil(request.first_frame), index=0, strength=1.0))
        for c in request.conditioning:
            if c.kind == "audio":
                continue  # held as the sound stream (diffusers_audio.hold_audio), not a picture condition
            media = _pil(c.media) if c.kind == "image" else [_pil(f) for f in c.media]
            items.append(make(frames=media, index=at(c.frame), strength=float(c.strength)))
        if request.last_frame is not None:
            items.append(
                make(frames=_pil(request.last_frame), index=at(request.num_frames - 1), strength=1.0)
            )
        return items

    def generate(self, request: ClipRequest, progress: ShotProgress | None = None) -> Clip:
        """Shoot one shot: uint8 frames (F, H, W, 3) and, where the pipeline makes sound, float32 audio (S, C)."""
        self.check(request)
        report = progress or (lambda fraction: None)
        report(0.0)
        pipe = self.pipeline
        args = self.arguments(request, report)
        counter = _count_evaluations(pipe, None if "callback_on_step_end" in args else report)
        guider = self._guider(pipe, request)
        follow = next((c for c in request.conditioning if c.kind == "audio"), None)
        try:
            if guider is not None:
                guider, pipe.guider = pipe.guider, guider  # this shot's scale; the folder's back after
            with hold_audio(pipe, follow.media, int(follow.sample_rate)) if follow else nullcontext():
                out = pipe(**args)
        except ValueError as e:  # its own check_inputs, on what the shot's options asked (ours are checked)
            raise InputError(f"{self.name} refused the shot's arguments: {e}", field="options") from None
        finally:
            counter.remove()
            if guider is not None:
                pipe.guider = guider
        raw = np.asarray(out.frames[0])  # (F, H, W, 3) floats in [0, 1]
        if not np.isfinite(raw).all():
            raise RenderError(f"{self.name} returned frames that are not numbers (NaN or infinite)")
        frames = to_uint8(raw)
        if frames.shape != (request.num_frames, request.height, request.width, 3):
            raise RenderError(f"{self.name} returned frames {frames.shape}, asked for "
                              f"({request.num_frames}, {request.height}, {request.width}, 3)")  # fmt: skip
        if follow is not None:  # the clip it followed is the shot's sound, as LTX-2's a2v keeps it
            n = round(request.num_frames / float(request.fps) * follow.sample_rate)
            audio, rate = np.clip(follow.media[:n], -1.0, 1.0).astype(np.float32), int(follow.sample_rate)
        else:
            audio, rate = self._audio(pipe, out) if request.generate_audio else (None, None)
        report(1.0)
        fps = float(request.fps if self.traits.native_fps is None else self.traits.native_fps)
        return Clip(frames=frames, fps=fps, evaluations=counter.count or None, audio=audio, sample_rate=rate)

    def _guider(self, pipe, request: ClipRequest):
        """A copy of the pipeline's guider at the shot's guidance scale, where the guider holds the scale
        (HunyuanVideo-1.5); None where __call__ takes guidance_scale or none is asked."""
        guidance = request.guidance if request.guidance is not None else self.guidance
        if guidance is None or "guidance_scale" in self.traits.params or not self.traits.guider:
            return None
        return pipe.guider.new(guidance_scale=float(guidance))

    def _audio(self, pipe, out) -> tuple[np.ndarray | None, int | None]:
        """The shot's sound as float32 (S, C), at the vocoder's output rate; None where it made none.
        Asked for by `generate_audio` only: LTX-2 denoises its sound with the picture either way, and a shot
        that did not ask keeps the film's own sound (dialogue, music) alone."""
        audio = getattr(out, "audio", None)
        if audio is None or not self.traits.makes_audio:
            return None, None
        a = audio[0] if getattr(audio, "ndim", 0) == 3 else audio  # (C, S) of the one video
        a = a.float().cpu().numpy() if hasattr(a, "cpu") else np.asarray(a, dtype=np.float32)
        rate = _sample_rate(pipe)
        return np.ascontiguousarray(np.clip(a.T, -1.0, 1.0), dtype=np.float32), rate  # (S, C)


def _sample_rate(pipe) -> int:
    vocoder = getattr(pipe, "vocoder", None)
    config = getattr(vocoder, "config", {}) or {}
    for key in ("output_sampling_rate", "sampling_rate", "sample_rate"):
        if config.get(key):
            return int(config[key])
    return int(getattr(pipe, "audio_sampling_rate", 16000))


class _count_evaluations:
    """Samples through the transformer(s) in one call: a batch of cond+uncond counts 2, as two passes.
    Given `progress` (a class with no step callback, e.g. HunyuanVideo-1.5), it also reports the steps done
    before each pass, as the scheduler counts them (its step_index over its timesteps)."""

    def __init__(self, pipe, progress: ShotProgress | None = None) -> None:
        self.count = 0
        self._pipe, self._progress = pipe, progress
        self._hooks = []
        for name in ("transformer", "transformer_2"):
            module = getattr(pipe, name, None)
            if module is not None and hasattr(module, "register_forward_pre_hook"):
                self._hooks.append(module.register_forward_pre_hook(self._seen, with_kwargs=True))

    def _seen(self, module, args, kwargs) -> None:
        x = kwargs.get("hidden_states", args[0] if args else None)
        self.count += int(x.shape[0]) if hasattr(x, "shape") else 1
        scheduler = getattr(self._pipe, "scheduler", None)
        timesteps = getattr(scheduler, "timesteps", None)
        total = len(timesteps) if timesteps is not None else 0
        if self._progress is not None and total:
            done = getattr(scheduler, "step_index", None) or 0
            self._progress((1 - DECODE_SHARE) * min(1.0, done / total))

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image))


def _check_pixels(media: Any, shape: tuple | None, field: str, *, ndim: int = 3) -> None:
    if media is None:
        return
    ok = (
        isinstance(media, np.ndarray)
        and media.dtype == np.uint8
        and media.ndim == ndim
        and media.shape[-1] == 3
    )
    if ok and shape is not None:
        ok = media.shape == shape
    if not ok:
        got = f"{media.dtype} {media.shape}" if isinstance(media, np.ndarray) else type(media).__name__
        want = f"uint8 {shape}" if shape is not None else f"uint8 with {ndim} axes, RGB last"
        raise InputError(f"must be {want} to match the shot, got {got}", field=field)
