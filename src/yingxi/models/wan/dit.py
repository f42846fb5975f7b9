"""The Wan 2.1 / 2.2 diffusion transformer (Wan-Video/Wan2.1 `wan/modules/model.py`; diffusers
`WanTransformer3DModel` is the numerical reference).

Module names mirror the diffusers state dict, so a diffusers checkpoint loads without renaming. As in the
reference, norms, adaLN modulation, the time MLP and RoPE run in float32 whatever the weights' dtype.

Shape legend: B batch, C channels, F/H/W latent frames/height/width, f/h/w the same after patching,
L = f*h*w video tokens, Lt text tokens, Li image tokens, D inner dim, Hd heads, Dh head dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yingxi.errors import InputError
from yingxi.models.attention import AttentionFn, attention
from yingxi.models.wan.config import TEXT_LEN, WanDiTConfig

# Parameters the reference keeps in float32 when the rest is bf16/fp16 (diffusers `_keep_in_fp32_modules`;
# matched against whole dotted components of a parameter name).
KEEP_FP32 = ("time_embedder", "scale_shift_table", "norm1", "norm2", "norm3")


class Modulation(NamedTuple):
    """One adaLN triple (DiT, Peebles & Xie 2023): y = norm(x) * (1 + scale) + shift; x += gate * f(y)."""

    shift: Tensor
    scale: Tensor
    gate: Tensor

    def apply(self, normed: Tensor) -> Tensor:
        return normed * (1 + self.scale) + self.shift


def _scale_shift_table(rows: int, d: int) -> nn.Parameter:
    """(1, rows, D) drawn as torch.randn(...) / sqrt(D) (the same numbers on the CPU); on the meta device no
    draw at all: meta randn and division go through torch._refs, which import sympy and torch._dynamo (~3 s
    of every process that builds a DiT to load weights into)."""
    table = torch.empty(1, rows, d)
    if not table.is_meta:
        table.normal_().div_(d**0.5)
    return nn.Parameter(table)


def _modulations(table: Tensor, temb: Tensor) -> list[Modulation]:
    """table (1, n*3, D) + temb (B, n*3, D) or per-token (B, L, n*3, D) -> n Modulations of (B, 1|L, D)."""
    if temb.ndim == 4:
        e = table.unsqueeze(0) + temb.float()  # (B, L, 3n, D)
    else:
        e = (table + temb.float()).unsqueeze(1)  # (B, 1, 3n, D)
    parts = e.unbind(dim=2)  # 3n x (B, 1|L, D)
    return [Modulation(*parts[i : i + 3]) for i in range(0, len(parts), 3)]


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and returned in the input dtype."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


def timestep_features(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features [cos, sin] of (fractional) timesteps: t (N,) -> (N, dim) float32."""
    half = dim // 2
    exponent = (
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )  # (half,)
    args = t[:, None].float() * torch.exp(exponent)[None, :]  # (N, half)
    out = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (N, 2*half)
    return F.pad(out, (0, dim % 2))  # (N, dim)


def rope_tables(cfg: WanDiTConfig, f: int, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """3D rotary tables: the head dim is split in t/h/w bands, each rotated by its own axis position.

    Returns cos, sin of shape (L, Dh/2) float32, one angle per channel pair (theta 10000, float64 maths).
    """
    cos_parts, sin_parts = [], []
    for band, n, view in zip(cfg.rope_dims, (f, h, w), ((f, 1, 1), (1, h, 1), (1, 1, w)), strict=True):
        inv = 1.0 / (
            10000.0 ** (torch.arange(0, band, 2, dtype=torch.float64, device=device) / band)
        )  # (band/2,)
        ang = torch.outer(torch.arange(n, device=device, dtype=torch.float64), inv)  # (n, band/2)
        cos_parts.append(ang.cos().float().view(*view, -1).expand(f, h, w, -1))  # (f, h, w, band/2)
        sin_parts.append(ang.sin().float().view(*view, -1).expand(f, h, w, -1))  # (f, h, w, band/2)
    cos = torch.cat(cos_parts, dim=-1).reshape(f * h * w, -1)  # (L, Dh/2)
    sin = torch.cat(sin_parts, dim=-1).reshape(f * h * w, -1)  # (L, Dh/2)
    return cos, sin


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate adjacent channel pairs: x (B, L, Hd, Dh), cos/sin (L, Dh/2) -> (B, L, Hd, Dh), in float32."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)  # 2 x (B, L, Hd, Dh/2)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]  # (1, L, 1, Dh/2)
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, L, Hd, Dh/2, 2)
    return out.flatten(-2).type_as(x)  # (B, L, Hd, Dh)


class MLP(nn.Module):
    """linear_1 -> activation -> linear_2 (diffusers' TimestepEmbedding / PixArtAlphaTextProjection keys)."""

    def __init__(self, dim_in: int, dim: int, act: nn.Module):
        super().__init__()
        self.linear_1 = nn.Linear(dim_in, dim)
        self.act = act
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(self.act(self.linear_1(x)))  # (..., dim)


class _Proj(nn.Module):
    """Linear then GELU, named `proj` as in diffusers' FeedForward (`net.0.proj`)."""

    def __init__(self, dim_in: int, dim_out: int, approximate: str):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.proj(x), approximate=self.approximate)


class FeedForward(nn.Module):
    """Two-layer GELU MLP; `net` = [proj-in+GELU, (dropout slot), proj-out] to keep diffusers' keys."""

    def __init__(self, dim: int, hidden: int, dim_out: int, approximate: str):
        super().__init__()
        self.net = nn.ModuleList([_Proj(dim, hidden, approximate), nn.Identity(), nn.Linear(hidden, dim_out)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.net:
            x = layer(x)
        return x  # (..., dim_out)


class ImageEmbedding(nn.Module):
    """CLIP tokens -> model width: LayerNorm, GELU MLP, LayerNorm; FLF2V adds learned token positions."""

    def __init__(self, image_dim: int, dim: int, pos_embed_seq_len: int | None):
        super().__init__()
        self.norm1 = FP32LayerNorm(image_dim)
        self.ff = FeedForward(image_dim, image_dim, dim, approximate="none")
        self.norm2 = FP32LayerNorm(dim)
        self.pos_embed = (
            nn.Parameter(torch.zeros(1, pos_embed_seq_len, image_dim)) if pos_embed_seq_len else None
        )

    def forward(self, img: Tensor) -> Tensor:
        if self.pos_embed is not None:
            n = self.pos_embed.shape[1]
            # FLF2V: first- and last-frame tokens either already side by side (B, 2*257, E) or stacked in
            # the batch as the diffusers pipeline passes them (2B, 257, E).
            img = img.reshape(-1, n, img.shape[-1]) + self.pos_embed  # (B, Li, E)
        x = self.norm1(img)  # (B, Li, E)
        x = self.ff(x)  # (B, Li, D)
        return self.norm2(x)  # (B, Li, D)


class ConditionEmbedding(nn.Module):
    """Timestep -> (temb, 6 modulation vectors per block); text and image tokens -> model width."""

    def __init__(self, cfg: WanDiTConfig):
        super().__init__()
        d = cfg.inner_dim
        self.freq_dim = cfg.freq_dim
        self.time_embedder = MLP(cfg.freq_dim, d, nn.SiLU())
        self.time_proj = nn.Linear(d, 6 * d)
        self.text_embedder = MLP(cfg.text_dim, d, nn.GELU(approximate="tanh"))
        self.image_embedder = (
            ImageEmbedding(cfg.image_dim, d, cfg.pos_embed_seq_len) if cfg.image_dim is not None else None
        )

    def forward(
        self, timestep: Tensor, text: Tensor, image: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        per_token = timestep.ndim == 2
        freqs = timestep_features(timestep.flatten(), self.freq_dim)  # (B | B*L, freq)
        if per_token:
            freqs = freqs.unflatten(0, timestep.shape)  # (B, L, freq)
        freqs = freqs.to(self.time_embedder.linear_1.weight.dtype)  # float32 unless weights were forced
        temb = self.time_embedder(freqs).type_as(text)  # (B, [L,] D)
        temb6 = self.time_proj(F.silu(temb))  # (B, [L,] 6D)
        temb6 = temb6.unflatten(-1, (6, -1))  # (B, [L,] 6, D)
        text = self.text_embedder(text)  # (B, Lt, D)
        if image is not None:
            if self.image_embedder is None:
                raise InputError(
                    "this transformer has no image branch (image_dim is None) but got CLIP image tokens",
                    field="encoder_hidden_states_image",
                )
            image = self.image_embedder(image)  # (B, Li, D)
        return temb, temb6, text, image


class WanAttention(nn.Module):
    """Multi-head attention with RMS-normed q/k across all heads; optional image k/v for cross-attention.

    `attention_fn` is this module's own kernel, (B, Hd, Lq, Dh) q and (B, Hd, Lk, Dh) k/v -> (B, Hd, Lq, Dh):
    the seam where a faster kernel or a sequence-parallel wrapper (Ulysses, Ring) goes, per module.
    """

    def __init__(self, dim: int, heads: int, eps: float, added_kv_proj_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.attention_fn: AttentionFn = attention
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])
        self.norm_q = nn.RMSNorm(dim, eps=eps)
        self.norm_k = nn.RMSNorm(dim, eps=eps)
        if added_kv_proj_dim is not None:
            self.add_k_proj = nn.Linear(added_kv_proj_dim, dim)
            self.add_v_proj = nn.Linear(added_kv_proj_dim, dim)
            self.norm_added_k = nn.RMSNorm(dim, eps=eps)
        else:
            self.add_k_proj = self.add_v_proj = self.norm_added_k = None

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out = self.attention_fn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, Hd, Lq, Dh)
        return out.transpose(1, 2).flatten(2).type_as(q)  # (B, Lq, D)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
        image: Tensor | None = None,
    ) -> Tensor:
        kv = x if context is None else context  # (B, Lk, D)
        q = self.norm_q(self.to_q(x)).unflatten(2, (self.heads, -1))  # (B, Lq, Hd, Dh)
        k = self.norm_k(self.to_k(kv)).unflatten(2, (self.heads, -1))  # (B, Lk, Hd, Dh)
        v = self.to_v(kv).unflatten(2, (self.heads, -1))  # (B, Lk, Hd, Dh)
        if rope is not None:
            q = apply_rope(q, *rope)  # (B, Lq, Hd, Dh)
            k = apply_rope(k, *rope)  # (B, Lk, Hd, Dh)
        out = self._attend(q, k, v)  # (B, Lq, D)
        if image is not None and self.add_k_proj is not None:
            k_img = self.norm_added_k(self.add_k_proj(image)).unflatten(
                2, (self.heads, -1)
            )  # (B, Li, Hd, Dh)
            v_img = self.add_v_proj(image).unflatten(2, (self.heads, -1))  # (B, Li, Hd, Dh)
            out = out + self._attend(q, k_img, v_img)  # (B, Lq, D)
        return self.to_out[0](out)  # (B, Lq, D)


class WanBlock(nn.Module):
    """adaLN-modulated self-attention (with 3D RoPE), cross-attention to text (+image), gated GELU FFN."""

    def __init__(self, cfg: WanDiTConfig):
        super().__init__()
        d = cfg.inner_dim
        self.norm1 = FP32LayerNorm(d, cfg.eps, elementwise_affine=False)
        self.attn1 = WanAttention(d, cfg.num_attention_heads, cfg.eps)
        self.attn2 = WanAttention(d, cfg.num_attention_heads, cfg.eps, cfg.added_kv_proj_dim)
        self.norm2 = (
            FP32LayerNorm(d, cfg.eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        )
        self.ffn = FeedForward(d, cfg.ffn_dim, d, approximate="tanh")
        self.norm3 = FP32LayerNorm(d, cfg.eps, elementwise_affine=False)
        self.scale_shift_table = _scale_shift_table(6, d)

    def forward(
        self, x: Tensor, text: Tensor, image: Tensor | None, temb6: Tensor, rope: tuple[Tensor, Tensor]
    ) -> Tensor:
        msa, ffn = _modulations(self.scale_shift_table, temb6)  # each field (B, 1|L, D) float32
        y = msa.apply(self.norm1(x.float())).type_as(x)  # (B, L, D)
        x = (x.float() + self.attn1(y, rope=rope) * msa.gate).type_as(x)  # (B, L, D)
        y = self.norm2(x.float()).type_as(x)  # (B, L, D)
        x = x + self.attn2(y, context=text, image=image)  # (B, L, D)
        y = ffn.apply(self.norm3(x.float())).type_as(x)  # (B, L, D)
        return (x.float() + self.ffn(y).float() * ffn.gate).type_as(x)  # (B, L, D)


class BlockInputs(NamedTuple):
    """What the block stack of one forward takes: the hook point between embed and head."""

    x: Tensor  # (B, L, D) video tokens after the patch embedding
    text: Tensor  # (B, 512, D)
    image: Tensor | None  # (B, Li, D)
    temb: Tensor  # (B, [L,] D) time embedding (TeaCache's "e")
    temb6: Tensor  # (B, [L,] 6, D) per-block modulation input (TeaCache's "e0")
    rope: tuple[Tensor, Tensor]  # 2 x (L, Dh/2)


class WanDiT(nn.Module):
    """Patchify -> N blocks -> modulated head -> unpatchify, predicting the flow velocity.

    `blocks_hook` (None: every block runs) is the explicit seam for step caches
    (`yingxi.pipelines.cache`): it gets the embedded inputs and returns the block stack's output, calling
    `run_blocks` for the blocks it does run.
    """

    def __init__(self, config: WanDiTConfig):
        super().__init__()
        self.config = config
        d = config.inner_dim
        self.patch_embedding = nn.Conv3d(config.in_channels, d, config.patch_size, stride=config.patch_size)
        self.condition_embedder = ConditionEmbedding(config)
        self.blocks = nn.ModuleList([WanBlock(config) for _ in range(config.num_layers)])
        self.norm_out = FP32LayerNorm(d, config.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(d, config.out_channels * math.prod(config.patch_size))
        self.scale_shift_table = _scale_shift_table(2, d)
        # The RoPE tables of the last latent grid: every step (and both guidance passes) of a clip uses the
        # same one, so it is built once per clip, not once per call (a float64 build of (L, Dh/2) tables).
        self._rope_cache: tuple[tuple, tuple[Tensor, Tensor]] | None = None
        # blocks_hook(model, inputs) -> (B, L, D): runs in place of the plain block loop (a step cache)
        self.blocks_hook: Callable[[WanDiT, BlockInputs], Tensor] | None = None

    def run_blocks(
        self, inputs: BlockInputs, x: Tensor | None = None, start: int = 0, stop: int | None = None
    ) -> Tensor:
        """Blocks [start, stop) on `x` (default: inputs.x) -> (B, L, D)."""
        x = inputs.x if x is None else x
        for block in self.blocks[start:stop]:
            x = block(x, inputs.text, inputs.image, inputs.temb6, inputs.rope)  # (B, L, D)
        return x

    def set_attention(
        self, self_attention: AttentionFn | None = None, cross_attention: AttentionFn | None = None
    ):
        """Give every block's self-attention (attn1) and/or cross-attention (attn2) its own kernel."""
        for block in self.blocks:
            if self_attention is not None:
                block.attn1.attention_fn = self_attention
            if cross_attention is not None:
                block.attn2.attention_fn = cross_attention

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    def _rope(self, f: int, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (f, h, w, device)
        if self._rope_cache is None or self._rope_cache[0] != key:
            self._rope_cache = (key, rope_tables(self.config, f, h, w, device))
        return self._rope_cache[1]

    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor,
        encoder_hidden_states_image: Tensor | None = None,
    ) -> Tensor:
        """hidden_states (B, C, F, H, W); timestep (B,) or per-token (B, L) for TI2V; text (B, Lt, text_dim);
        image (B, Li, image_dim) CLIP tokens for Wan 2.1 I2V/FLF2V -> velocity (B, C_out, F, H, W)."""
        cfg = self.config
        b, c, frames, height, width = hidden_states.shape
        pt, ph, pw = cfg.patch_size
        if c != cfg.in_channels or frames % pt or height % ph or width % pw:
            raise InputError(
                f"latents {tuple(hidden_states.shape)} do not fit: need {cfg.in_channels} channels and "
                f"frames/height/width divisible by the patch {cfg.patch_size}",
                field="hidden_states",
            )
        f, h, w = frames // pt, height // ph, width // pw
        rope = self._rope(f, h, w, hidden_states.device)  # 2 x (L, Dh/2) float32

        x = self.patch_embedding(hidden_states.to(self.dtype))  # (B, D, f, h, w)
        x = x.flatten(2).transpose(1, 2).contiguous()  # (B, L, D)
        text = encoder_hidden_states.to(self.dtype)  # (B, Lt, text_dim)
        if text.shape[1] < TEXT_LEN:  # Wan's DiT zero-pads every context to text_len (wan/modules/model.py)
            text = F.pad(text, (0, 0, 0, TEXT_LEN - text.shape[1]))  # (B, 512, text_dim)
        image = (
            encoder_hidden_states_image.to(self.dtype) if encoder_hidden_states_image is not None else None
        )
        temb, temb6, text, image = self.condition_embedder(
            timestep, text, image
        )  # (B,[L,]D), (B,[L,]6,D), ...

        inputs = BlockInputs(x, text, image, temb, temb6, rope)
        x = (
            self.run_blocks(inputs) if self.blocks_hook is None else self.blocks_hook(self, inputs)
        )  # (B, L, D)

        if temb.ndim == 3:  # per-token (TI2V)
            e = self.scale_shift_table.unsqueeze(0) + temb.unsqueeze(2)  # (B, L, 2, D) float32
        else:
            e = (self.scale_shift_table + temb.unsqueeze(1)).unsqueeze(1)  # (B, 1, 2, D) float32
        shift, scale = e.unbind(dim=2)  # 2 x (B, 1|L, D)
        x = (self.norm_out(x.float()) * (1 + scale) + shift).type_as(x)  # (B, L, D)
        x = self.proj_out(x)  # (B, L, C_out*pt*ph*pw)

        x = x.reshape(b, f, h, w, pt, ph, pw, -1)  # (B, f, h, w, pt, ph, pw, C_out)
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C_out, f, pt, h, ph, w, pw)
        return x.reshape(b, -1, f * pt, h * ph, w * pw)  # (B, C_out, F, H, W)
