"""What a diffusers video pipeline can shoot, read off its class and its components' configs.

No per-model table of abilities: the `__call__` signature says which conditionings it takes (`image`,
`last_image`, `conditions`, `generate_audio`, `frame_rate`/`fps`), the VAE's temporal/spatial compression and
the transformer's patch sizes say which frame counts and sizes are legal, and the components say whether it
makes sound (an audio VAE and a vocoder). Read from the folder without loading any weights (the VAE is built on
the meta device for its compression ratios), so the API process can check requests before queueing them.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from yingxi.backends.diffusers_audio import follows_audio
from yingxi.director.capabilities import Capabilities
from yingxi.errors import ModelNotFoundError

__all__ = ["CONDITION_KINDS", "PipelineTraits", "condition_type", "read_traits", "traits_of"]

# The arguments yingxi fills from a ClipRequest; the rest of a pipeline's __call__ is open to options.
MAPPED = frozenset(
    {"prompt", "negative_prompt", "width", "height", "num_frames", "frame_rate", "fps", "num_inference_steps",
     "guidance_scale", "generator", "image", "last_image", "conditions", "generate_audio", "output_type",
     "return_dict", "callback_on_step_end", "callback_on_step_end_tensor_inputs"}
)  # fmt: skip
# Arguments a film has no use for (precomputed embeddings, batches) or that would break the mapping.
UNSETTABLE = frozenset({"self", "latents", "audio_latents", "num_videos_per_prompt"})
# Trained frame rates of pipelines whose __call__ takes none (the model cards'); a Wan 2.2 TI2V pipeline
# (expand_timesteps) is 24 fps, the other Wan pipelines 16.
FAMILY_FPS = (("Wan", 16.0), ("HunyuanVideo15", 24.0), ("Kandinsky5", 24.0))
# Latent frames a class needs at least, where it needs more than 2: Kandinsky5I2VPipeline's
# normalize_first_frame matches its first 4 latent frames to the ones after, and with none after (fewer than 5)
# its std is NaN and so is every frame.
MIN_LATENT_FRAMES = {"Kandinsky5I2VPipeline": 5}
AUDIO_COMPONENTS = ("audio_vae", "vocoder")
CONDITION_KINDS = ("image", "video")  # the Conditioning kinds a `conditions` pipeline takes
DIVISIBLE = re.compile(r"height.{0,80}?divisible by (\d+)", re.DOTALL)


@dataclass(frozen=True)
class PipelineTraits:
    """One pipeline class's abilities and the numbers behind its legal sizes and frame counts."""

    class_name: str
    params: frozenset[str]  # its __call__'s keyword names
    defaults: dict[str, Any]  # of those, the ones with defaults
    spatial: int  # VAE spatial compression (pixels per latent side)
    temporal: int  # VAE temporal compression (frames per latent frame after the first)
    patch: int  # transformer spatial patch (latents per token side)
    patch_t: int
    size_divisor: int  # what its check_inputs demands of height and width (e.g. LTX-2's 32), 1 if nothing
    makes_audio: bool  # an audio VAE and vocoder: the output carries sound
    native_fps: float | None  # None: it takes a frame rate argument and shoots at the one asked
    guider: bool = False  # a guider component (HunyuanVideo-1.5) holds the guidance scale, not __call__
    target_size: int | None = None  # the transformer's pixel size, where the class sizes from its image
    follows_audio: bool = False  # makes sound and its transformer takes the sound's own timestep (LTX-2):
    # a reference audio can be held clean while the picture denoises (diffusers_audio.py)

    @property
    def sized_by_image(self) -> bool:
        """An image-to-video class whose __call__ takes no width/height (HunyuanVideo-1.5 i2v): it picks the
        bucket of about target_size² pixels nearest the first frame's aspect ratio."""
        return "image" in self.params and not {"width", "height"} & self.params

    @property
    def min_frames(self) -> int:
        """One latent frame after the first, or the class's own minimum (MIN_LATENT_FRAMES)."""
        if self.frame_step == 1:
            return 1
        return (MIN_LATENT_FRAMES.get(self.class_name, 2) - 1) * self.frame_step + 1

    @property
    def takes_guidance(self) -> bool:
        return "guidance_scale" in self.params or self.guider

    def image_size(self, width: int, height: int) -> tuple[int, int] | None:
        """(width, height) the class makes from a first frame of this size: the same, unless it sizes by image
        (then its own bucket rule, from its module's video processor); None where that rule is not found."""
        if not self.sized_by_image:
            return width, height
        processor = _bucket_processor(self.class_name)
        if processor is None or not self.target_size:
            return None
        h, w = processor(vae_scale_factor=self.spatial).calculate_default_height_width(
            height=height, width=width, target_size=self.target_size
        )
        return int(w), int(h)

    @property
    def fps_param(self) -> str | None:
        return next((p for p in ("frame_rate", "fps") if p in self.params), None)

    @property
    def takes_conditions(self) -> bool:
        """LTX-2's `conditions`: images or videos at frame indices with strengths."""
        return "conditions" in self.params

    @property
    def audio_switch(self) -> bool:
        """Its __call__ has `generate_audio` (sound made only when asked)."""
        return "generate_audio" in self.params

    @property
    def conditionings(self) -> frozenset[str]:
        """t2v when it needs no image; i2v with `image` or `conditions`; flf2v with `last_image` or
        `conditions`; "conditions" for LTX-2's items at any frame; "audio" when it makes sound."""
        can = set()
        if "image" not in self.params:
            can.add("t2v")  # an image-to-video class needs its image even where the signature defaults it
        if "image" in self.params or self.takes_conditions:
            can.add("i2v")
        if "last_image" in self.params or self.takes_conditions:
            can.add("flf2v")
        if self.takes_conditions:
            can.add("conditions")
        if self.makes_audio:
            can.add("audio")
        return frozenset(can)

    @property
    def frame_step(self) -> int:
        return self.temporal * self.patch_t

    @property
    def size_multiple(self) -> int:
        return math.lcm(self.spatial * self.patch, self.size_divisor)

    @property
    def conditioning_kinds(self) -> frozenset[str]:
        """The ClipRequest.conditioning kinds it takes: LTX-2's `conditions` are images and videos at frames;
        every LTX-2 class follows an "audio" item."""
        kinds = set(CONDITION_KINDS) if self.takes_conditions else set()
        return frozenset(kinds | ({"audio"} if self.follows_audio else set()))

    def capabilities(self) -> Capabilities:
        return Capabilities(
            conditionings=self.conditionings,
            size_multiple=self.size_multiple,
            frame_step=self.frame_step,
            frame_offset=1 if self.frame_step > 1 else 0,
            min_frames=self.min_frames,
            native_fps=self.native_fps,
            conditioning_kinds=self.conditioning_kinds,
            audio=self.makes_audio,
            max_pixels=self.target_size**2 if self.sized_by_image and self.target_size else None,
            size_rule=self.image_size if self.sized_by_image else None,  # the director plans its buckets
        )


def pipeline_class(name: str, folder: Path):
    import diffusers

    cls = getattr(diffusers, name, None)
    if not isinstance(cls, type):
        raise ModelNotFoundError(f"{folder}: model_index.json names {name!r}, which diffusers "
                                 f"{diffusers.__version__} does not have")  # fmt: skip
    return cls


def read_traits(folder: str | Path) -> PipelineTraits:
    """The traits of the pipeline saved in `folder` (model_index.json and the vae/transformer configs),
    without loading weights. ModelNotFoundError where the folder is not a diffusers pipeline."""
    folder = Path(folder)
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ModelNotFoundError(
            f"{folder} is not a diffusers pipeline folder (no model_index.json); give --model the folder "
            "that `DiffusionPipeline.save_pretrained` wrote or `huggingface-cli download` fetched"
        )
    index = json.loads(index_file.read_text())
    cls = pipeline_class(index.get("_class_name", ""), folder)
    vae = _meta_component(folder, index, "vae")
    transformer = _config(folder / "transformer")
    guider = isinstance(index.get("guider"), list) and index["guider"][-1] is not None
    sound = set(index) & set(AUDIO_COMPONENTS) == set(AUDIO_COMPONENTS)
    transformer_cls = _component_class(index, "transformer", folder) if sound else None  # may follow audio
    return _traits(cls, vae, transformer, sound, _expand_timesteps(index), guider, transformer_cls)


def traits_of(pipe) -> PipelineTraits:
    """The traits of a built pipeline (the same numbers read_traits finds in its folder)."""
    transformer = getattr(pipe, "transformer", None)
    config = dict(transformer.config) if transformer is not None else {}
    audio = all(getattr(pipe, c, None) is not None for c in AUDIO_COMPONENTS)
    guider = "guidance_scale" in (getattr(getattr(pipe, "guider", None), "config", None) or {})
    return _traits(type(pipe), getattr(pipe, "vae", None), config, audio, _expand_timesteps(pipe.config), guider,
                   type(transformer) if transformer is not None else None)  # fmt: skip


def _traits(
    cls, vae, transformer: dict, makes_audio: bool, expand_timesteps: bool, guider: bool, transformer_cls=None
) -> PipelineTraits:
    sig = inspect.signature(cls.__call__).parameters
    params = frozenset(k for k in sig if k != "self")
    defaults = {
        k: p.default for k, p in sig.items() if k != "self" and p.default is not inspect.Parameter.empty
    }
    spatial, temporal = _compression(vae)
    patch, patch_t = _patch(transformer)
    fps = next((p for p in ("frame_rate", "fps") if p in params), None)
    native = None if fps else _family_fps(cls.__name__, expand_timesteps)
    return PipelineTraits(class_name=cls.__name__, params=params, defaults=defaults, spatial=spatial,
                          temporal=temporal, patch=patch, patch_t=patch_t, size_divisor=_divisor(cls),
                          makes_audio=makes_audio, native_fps=native, guider=guider,
                          target_size=transformer.get("target_size"),
                          follows_audio=makes_audio and transformer_cls is not None
                          and follows_audio(transformer_cls.forward))  # fmt: skip


def _bucket_processor(class_name: str):
    """The video processor class with `calculate_default_height_width` in the pipeline's module, if any."""
    import sys

    module = sys.modules.get(pipeline_class(class_name, Path(".")).__module__)
    for value in vars(module).values() if module else ():
        if isinstance(value, type) and hasattr(value, "calculate_default_height_width"):
            return value
    return None


def _compression(vae) -> tuple[int, int]:
    """(spatial, temporal) compression: the VAE's own attributes (LTX, HunyuanVideo) or config (Wan)."""
    if vae is None:
        return 1, 1
    config = getattr(vae, "config", {}) or {}
    found = []
    for names in (("spatial_compression_ratio", "scale_factor_spatial"),
                  ("temporal_compression_ratio", "scale_factor_temporal")):  # fmt: skip
        value = next((v for n in names for v in (config.get(n), _own(vae, n)) if v), None)
        found.append(int(value) if value else 1)
    if found[0] == 1 and config.get("block_out_channels"):  # an image AutoencoderKL: 2x per extra block
        found[0] = 2 ** (len(config["block_out_channels"]) - 1)
    return found[0], found[1]


def _own(module, name: str):
    """An attribute the module sets itself (not one of its config's, which diffusers warns about)."""
    return vars(module).get(name)


def _patch(config: dict) -> tuple[int, int]:
    """(spatial, temporal) patch of the transformer: an int plus patch_size_t (LTX), or [t, h, w] (Wan)."""
    p = config.get("patch_size", 1)
    if isinstance(p, (list, tuple)):
        return int(p[-1]), int(p[0]) if len(p) == 3 else 1
    return int(p or 1), int(config.get("patch_size_t") or 1)


def _divisor(cls) -> int:
    """What the class's check_inputs demands of height and width ("divisible by 32"), read from its source."""
    check = getattr(cls, "check_inputs", None)
    try:
        source = inspect.getsource(check) if check is not None else ""
    except (OSError, TypeError):
        return 1
    match = DIVISIBLE.search(source)
    return int(match.group(1)) if match else 1


def _family_fps(class_name: str, expand_timesteps: bool) -> float | None:
    if class_name.startswith("Wan") and expand_timesteps:
        return 24.0
    return next((fps for prefix, fps in FAMILY_FPS if class_name.startswith(prefix)), None)


def _expand_timesteps(config: Any) -> bool:
    return bool(dict(config).get("expand_timesteps", False))


def _config(sub: Path) -> dict:
    path = sub / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _component_class(index: dict, name: str, folder: Path) -> type | None:
    """The class model_index.json names for a component (imported, not built), or None where it has none."""
    entry = index.get(name)
    if not isinstance(entry, list) or len(entry) != 2 or entry[1] is None:
        return None
    import importlib

    cls = getattr(importlib.import_module(entry[0]), entry[1], None)
    if not isinstance(cls, type):
        raise ModelNotFoundError(f"{folder}: model_index.json names {entry[1]!r} for its {name}, which "
                                 f"{entry[0]} does not have")  # fmt: skip
    return cls


def _meta_component(folder: Path, index: dict, name: str):
    """The component built from its config on the meta device (no weights read), or None if absent."""
    cls = _component_class(index, name, folder)
    if cls is None:
        return None
    from accelerate import init_empty_weights

    with init_empty_weights():
        return cls.from_config(cls.load_config(folder / name))


def condition_type(pipe_cls) -> type | None:
    """The dataclass a `conditions` pipeline takes (frames, index, strength), found in its module."""
    import sys

    module = sys.modules.get(pipe_cls.__module__)
    for value in vars(module).values() if module else ():
        if isinstance(value, type) and is_dataclass(value):
            names = {f.name for f in fields(value)}
            if {"frames", "index", "strength"} <= names:
                return value
    return None
