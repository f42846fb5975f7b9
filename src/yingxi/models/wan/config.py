"""Wan 2.1 / 2.2 transformer configuration and the named-variant registry.

Architecture numbers follow the diffusers `transformer/config.json` of each Wan-AI `*-Diffusers` repo;
sampling defaults follow Wan-Video/Wan2.1 `generate.py` (`_validate_args`) and Wan-Video/Wan2.2
`wan/configs/*.py` (`sample_shift`, `sample_steps`, `boundary`, `sample_guide_scale`, `sample_fps`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from yingxi.errors import InputError, unknown_word

Task = Literal["t2v", "i2v", "flf2v", "ti2v", "vace"]
VaeKind = Literal["2.1", "2.2"]

TEXT_LEN = 512  # UMT5 context length every Wan model was trained with (`text_len` in the original config)
# The negative prompt Wan's authors sample every variant with (`sample_neg_prompt` in Wan-Video/Wan2.1 and
# Wan2.2 `wan/configs/shared_config.py`): vivid colours, overexposure, static, blur, subtitles, worst quality,
# JPEG artefacts, extra fingers, deformed limbs, cluttered background, walking backwards, ...
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
CLIP_TOKENS = 257  # CLIP ViT-H/14 at 224 px: 16*16 patches + class token, per conditioning image


@dataclass(frozen=True)
class WanDiTConfig:
    """Shape of a `WanTransformer3DModel`; field names and defaults are those of diffusers (14B T2V)."""

    patch_size: tuple[int, int, int] = (1, 2, 2)  # (t, h, w) latent patch
    num_attention_heads: int = 40
    attention_head_dim: int = 128
    in_channels: int = 16  # 16 latent (t2v); 36 = 16 noise + 4 mask + 16 image latents (i2v); 48 (ti2v-5b)
    out_channels: int = 16
    text_dim: int = 4096  # UMT5-XXL hidden size
    freq_dim: int = 256  # sinusoidal timestep features before the time MLP
    ffn_dim: int = 13824
    num_layers: int = 40
    cross_attn_norm: bool = True  # affine LayerNorm before cross-attention ("norm2"; "norm3" in Wan's code)
    qk_norm: str | None = (
        "rms_norm_across_heads"  # diffusers always builds the RMS q/k norms; kept for record
    )
    eps: float = 1e-6
    image_dim: int | None = None  # CLIP hidden size (1280) for Wan 2.1 I2V/FLF2V; None elsewhere
    added_kv_proj_dim: int | None = None  # inner dim (5120) when cross-attention has image k/v projections
    rope_max_seq_len: int = 1024  # diffusers' RoPE table length; ours builds tables per input, any size
    pos_embed_seq_len: int | None = None  # 2 * 257 for FLF2V: learned positions of first+last CLIP tokens
    # VACE (Wan2.1 `wan/modules/vace_model.py`): the main blocks after which a context block's hint is added
    # (1.3B: every 2nd of 30; 14B: every 5th of 40), and the context channels: 16 inactive + 16 reactive
    # latents + 64 = 8x8 mask pixels folded per latent cell. None: not a VACE model.
    vace_layers: tuple[int, ...] | None = None
    vace_in_channels: int | None = None

    def __post_init__(self) -> None:
        if len(self.patch_size) != 3:
            raise InputError(
                f"patch_size must have 3 entries (t, h, w), got {self.patch_size}", field="patch_size"
            )
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
        if self.attention_head_dim % 2:
            raise InputError(
                "attention_head_dim must be even for rotary embeddings", field="attention_head_dim"
            )
        if self.added_kv_proj_dim is not None and self.image_dim is None:
            raise InputError(
                "added_kv_proj_dim needs image_dim (the image embedder feeds it)", field="image_dim"
            )
        if (self.vace_layers is None) != (self.vace_in_channels is None):
            raise InputError("a VACE model needs both vace_layers and vace_in_channels", field="vace_layers")
        if self.vace_layers is not None:
            layers = tuple(int(i) for i in self.vace_layers)
            object.__setattr__(self, "vace_layers", layers)
            if (
                not layers
                or layers[0] != 0
                or list(layers) != sorted(set(layers))
                or layers[-1] >= self.num_layers
            ):
                raise InputError(
                    f"vace_layers must be increasing block indices from 0 below num_layers {self.num_layers}, "
                    f"got {list(layers)}",
                    field="vace_layers",
                )

    @property
    def is_vace(self) -> bool:
        return self.vace_layers is not None

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        """Head-dim bands for (t, h, w) rotary embeddings, split as the reference: h = w = 2*(d//6)."""
        hw = 2 * (self.attention_head_dim // 6)
        return self.attention_head_dim - 2 * hw, hw, hw

    @classmethod
    def from_diffusers(cls, config: Mapping[str, Any]) -> WanDiTConfig:
        """From a diffusers `transformer/config.json` dict; private (`_class_name`) and retired keys ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in config.items() if k in names}
        if "patch_size" in kwargs:
            kwargs["patch_size"] = tuple(kwargs["patch_size"])
        if kwargs.get("vace_layers") is not None:
            kwargs["vace_layers"] = tuple(kwargs["vace_layers"])
        return cls(**kwargs)

    @classmethod
    def from_original(
        cls, config: Mapping[str, Any], *, image_dim: int | None = None, pos_embed_seq_len: int | None = None
    ) -> WanDiTConfig:
        """From an original Wan `config.json` (dim, num_heads, in_dim, ...); the image parts are read from the
        checkpoint by the caller because Wan 2.2's "i2v" has no CLIP branch while Wan 2.1's does."""
        try:
            dim, heads = int(config["dim"]), int(config["num_heads"])
            vace = config.get("model_type") == "vace" or "vace_layers" in config or "vace_in_dim" in config
            layers = config.get("vace_layers")
            vace_layers = (
                None
                if not vace
                else tuple(layers)
                if layers
                else tuple(range(0, int(config["num_layers"]), 2))
            )  # VaceWanModel's default: every second block
            return cls(
                patch_size=tuple(config.get("patch_size", (1, 2, 2))),
                num_attention_heads=heads,
                attention_head_dim=dim // heads,
                in_channels=int(config["in_dim"]),
                out_channels=int(config["out_dim"]),
                text_dim=int(config.get("text_dim", 4096)),
                freq_dim=int(config.get("freq_dim", 256)),
                ffn_dim=int(config["ffn_dim"]),
                num_layers=int(config["num_layers"]),
                cross_attn_norm=bool(config.get("cross_attn_norm", True)),
                eps=float(config.get("eps", 1e-6)),
                image_dim=image_dim,
                added_kv_proj_dim=dim if image_dim is not None else None,
                pos_embed_seq_len=pos_embed_seq_len,
                vace_layers=vace_layers,
                vace_in_channels=int(config.get("vace_in_dim") or config["in_dim"]) if vace else None,
            )
        except KeyError as exc:
            raise InputError(f"original Wan config lacks {exc.args[0]!r}", field=str(exc.args[0])) from exc

    def to_diffusers(self) -> dict[str, Any]:
        """The diffusers config dict (for writing `transformer/config.json`)."""
        out = dataclasses.asdict(self)
        out["patch_size"] = list(self.patch_size)
        if self.vace_layers is None:  # a plain WanTransformer3DModel has no such arguments
            del out["vace_layers"], out["vace_in_channels"]
        else:
            out["vace_layers"] = list(self.vace_layers)
        return out

    def num_params(self) -> int:
        """Exact parameter count of the transformer this config builds (no weights needed)."""
        d, f, t = self.inner_dim, self.ffn_dim, self.freq_dim
        lin = lambda i, o: i * o + o  # noqa: E731  (weight + bias)
        attn = 4 * lin(d, d) + 2 * d  # q, k, v, o + RMS norm_q, norm_k
        if self.added_kv_proj_dim is not None:
            attn_x = attn + 2 * lin(self.added_kv_proj_dim, d) + d  # add_k, add_v, norm_added_k
        else:
            attn_x = attn
        block = attn + attn_x + lin(d, f) + lin(f, d) + 6 * d + (2 * d if self.cross_attn_norm else 0)
        n = self.in_channels * math.prod(self.patch_size) * d + d  # patch embedding conv
        n += lin(t, d) + lin(d, d) + lin(d, 6 * d)  # time MLP + projection to 6 modulation vectors
        n += lin(self.text_dim, d) + lin(d, d)  # text MLP
        if self.image_dim is not None:
            e = self.image_dim
            n += 2 * e + lin(e, e) + lin(e, d) + 2 * d  # norm1, ff (e->e->d), norm2
            n += (self.pos_embed_seq_len or 0) * e
        n += self.num_layers * block
        if self.vace_layers is not None:  # context blocks: a block + after_proj (+ before_proj on the first)
            n += len(self.vace_layers) * (block + lin(d, d)) + lin(d, d)
            n += self.vace_in_channels * math.prod(self.patch_size) * d + d  # vace_patch_embedding
        n += lin(d, self.out_channels * math.prod(self.patch_size)) + 2 * d  # head + its modulation
        return n


@dataclass(frozen=True)
class WanVariant:
    """A published Wan checkpoint and the defaults its authors sample it with."""

    name: str
    repo_id: str  # Hugging Face repo in diffusers layout
    tasks: tuple[Task, ...]  # pipelines it runs; "ti2v" is one pipeline for both text and text+image
    dit: WanDiTConfig
    vae: VaeKind  # "2.1": 16 ch, 4x8x8; "2.2": 48 ch, 4x16x16 (patchified), used by TI2V-5B
    steps: int
    shift: float  # flow_shift of the sigma schedule
    guidance_scale: float  # CFG scale (for two-expert models: the high-noise expert's)
    sizes: tuple[tuple[int, int], ...]  # legal (width, height); the first is the default
    fps: int
    num_frames: int = 81  # default length; Wan needs 4k+1 frames
    max_frames: int = 81
    size_multiple: int = 16  # VAE stride * patch size
    guidance_scale_2: float | None = None  # low-noise expert's CFG scale (A14B)
    boundary_ratio: float | None = None  # switch to the low-noise expert when t < ratio * 1000 (A14B)
    needs_image_encoder: bool = False  # Wan 2.1 I2V/FLF2V condition on CLIP tokens
    expand_timesteps: bool = False  # TI2V-5B: per-token timesteps, first-frame tokens held at t=0
    notes: str = ""

    @property
    def two_experts(self) -> bool:
        return self.boundary_ratio is not None

    @property
    def conditionings(self) -> tuple[str, ...]:
        """What a user may ask of it: "t2v", "i2v", "flf2v" (TI2V-5B does both t2v and i2v)."""
        out: list[str] = []
        for task in self.tasks:
            if task == "vace":  # frames pinned anywhere by the mask, identity from reference images
                out.extend(("t2v", "i2v", "flf2v", "references"))
            else:
                out.extend(("t2v", "i2v") if task == "ti2v" else (task,))
        return tuple(dict.fromkeys(out))

    @property
    def default_size(self) -> tuple[int, int]:
        return self.sizes[0]

    @property
    def dit_params(self) -> int:
        """Parameters of one transformer (A14B has two of these)."""
        return self.dit.num_params()

    @property
    def dit_gib_bf16(self) -> float:
        """Memory of all transformer weights in bf16, in GiB."""
        return self.dit_params * (2 if self.two_experts else 1) * 2 / 2**30


_P480 = ((832, 480), (480, 832))
_P720 = ((1280, 720), (720, 1280))

_T2V_1_3B = WanDiTConfig(num_attention_heads=12, ffn_dim=8960, num_layers=30)
_T2V_14B = WanDiTConfig()
_I2V_14B = WanDiTConfig(in_channels=36, image_dim=1280, added_kv_proj_dim=5120)
_FLF2V_14B = dataclasses.replace(_I2V_14B, pos_embed_seq_len=2 * CLIP_TOKENS)
_TI2V_5B = WanDiTConfig(num_attention_heads=24, ffn_dim=14336, num_layers=30, in_channels=48, out_channels=48)
_I2V_A14B = WanDiTConfig(in_channels=36)
# VACE: the T2V transformer plus context blocks (diffusers' Wan-AI/Wan2.1-VACE-*-diffusers configs); the
# Wan 2.2 VACE-Fun A14B experts have the 14B's shapes (a file name or a second expert tells them apart).
VACE_IN_CHANNELS = 96  # 16 inactive + 16 reactive latents + 8*8 mask
_VACE_1_3B = dataclasses.replace(
    _T2V_1_3B, vace_layers=tuple(range(0, 30, 2)), vace_in_channels=VACE_IN_CHANNELS
)
_VACE_14B = dataclasses.replace(
    _T2V_14B, vace_layers=tuple(range(0, 40, 5)), vace_in_channels=VACE_IN_CHANNELS
)

_ALL = (
    WanVariant(
        "wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", ("t2v",), _T2V_1_3B, "2.1",
        steps=50, shift=5.0, guidance_scale=5.0, sizes=_P480, fps=16,
        notes="Wan's README suggests shift 8-12 and guidance 6 for sharper 1.3B results",
    ),
    WanVariant(
        "wan2.1-t2v-14b", "Wan-AI/Wan2.1-T2V-14B-Diffusers", ("t2v",), _T2V_14B, "2.1",
        steps=50, shift=5.0, guidance_scale=5.0, sizes=_P720 + _P480, fps=16,
    ),
    WanVariant(
        "wan2.1-i2v-14b-480p", "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", ("i2v",), _I2V_14B, "2.1",
        steps=40, shift=3.0, guidance_scale=5.0, sizes=_P480, fps=16, needs_image_encoder=True,
    ),
    WanVariant(
        "wan2.1-i2v-14b-720p", "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers", ("i2v",), _I2V_14B, "2.1",
        steps=40, shift=5.0, guidance_scale=5.0, sizes=_P720, fps=16, needs_image_encoder=True,
    ),
    WanVariant(
        "wan2.1-flf2v-14b-720p", "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers", ("flf2v",), _FLF2V_14B, "2.1",
        steps=50, shift=16.0, guidance_scale=5.0, sizes=_P720, fps=16, needs_image_encoder=True,
    ),
    WanVariant(
        "wan2.2-ti2v-5b", "Wan-AI/Wan2.2-TI2V-5B-Diffusers", ("ti2v",), _TI2V_5B, "2.2",
        steps=50, shift=5.0, guidance_scale=5.0, sizes=((1280, 704), (704, 1280)), fps=24,
        num_frames=121, max_frames=121, size_multiple=32, expand_timesteps=True,
    ),
    WanVariant(
        "wan2.2-t2v-a14b", "Wan-AI/Wan2.2-T2V-A14B-Diffusers", ("t2v",), _T2V_14B, "2.1",
        steps=40, shift=12.0, guidance_scale=4.0, guidance_scale_2=3.0, boundary_ratio=0.875,
        sizes=_P720 + _P480, fps=16,
    ),
    WanVariant(
        "wan2.2-i2v-a14b", "Wan-AI/Wan2.2-I2V-A14B-Diffusers", ("i2v",), _I2V_A14B, "2.1",
        steps=40, shift=5.0, guidance_scale=3.5, guidance_scale_2=3.5, boundary_ratio=0.9,
        sizes=_P720 + _P480, fps=16,
    ),
    # Wan2.1 generate.py samples every VACE model with shift 16 (`_validate_args`), 50 steps, guidance 5.
    WanVariant(
        "wan2.1-vace-1.3b", "Wan-AI/Wan2.1-VACE-1.3B-diffusers", ("vace",), _VACE_1_3B, "2.1",
        steps=50, shift=16.0, guidance_scale=5.0, sizes=_P480, fps=16,
    ),
    WanVariant(
        "wan2.1-vace-14b", "Wan-AI/Wan2.1-VACE-14B-diffusers", ("vace",), _VACE_14B, "2.1",
        steps=50, shift=16.0, guidance_scale=5.0, sizes=_P720 + _P480, fps=16,
    ),
    WanVariant(
        "wan2.2-vace-fun-a14b", "linoyts/Wan2.2-VACE-Fun-14B-diffusers", ("vace",), _VACE_14B, "2.1",
        steps=40, shift=12.0, guidance_scale=4.0, guidance_scale_2=3.0, boundary_ratio=0.875,
        sizes=_P720 + _P480, fps=16,
        notes="alibaba-pai's VACE-Fun on the Wan 2.2 T2V A14B experts; sampled as Wan 2.2 T2V A14B",
    ),
)  # fmt: skip

VARIANTS: dict[str, WanVariant] = {v.name: v for v in _ALL}


def variants_with(conditioning: str) -> str:
    """Names of the registered variants that accept `conditioning` ("t2v", "i2v", "flf2v"), for messages."""
    return ", ".join(v.name for v in VARIANTS.values() if conditioning in v.conditionings)


def _repo_key(repo_id: str) -> str:
    return repo_id.lower().removesuffix("-diffusers")


_BY_REPO = {_repo_key(v.repo_id): v for v in _ALL}


def get_variant(name: str) -> WanVariant:
    """The variant called `name` (case-insensitive), or whose Hugging Face repo it is (with or without the
    "-Diffusers" suffix of the converted repos); InputError with the closest name otherwise."""
    key = name.strip().lower()
    if key in VARIANTS:
        return VARIANTS[key]
    if _repo_key(key) in _BY_REPO:
        return _BY_REPO[_repo_key(key)]
    raise InputError(unknown_word("Wan variant", name, VARIANTS), field="model")
