"""Wan VACE (Wan-Video/Wan2.1 `wan/modules/vace_model.py`; diffusers `WanVACETransformer3DModel` is the
numerical reference): the Wan DiT plus context blocks that read the VACE context (the latents of the
kept and the to-be-made parts of a source video, its mask, reference-image latents) and add one hint to
the video tokens after each of the main blocks named in `vace_layers`.

`WanVACEDiT` is a `WanDiT`: the same embed -> blocks -> head, the same module names (so diffusers VACE
checkpoints load as they are); only `run_blocks` differs, adding the hints, so step caches still work.

Shape legend as in `dit.py`; Cv the VACE context channels (96), Lc its tokens (<= L).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from yingxi.errors import InputError
from yingxi.models.wan.attention import AttentionFn
from yingxi.models.wan.config import WanDiTConfig
from yingxi.models.wan.dit import BlockInputs, WanBlock, WanDiT


class WanVACEBlock(WanBlock):
    """A Wan block over the context tokens; `proj_in` (the first block only, Wan's `before_proj`) adds the
    video tokens to the embedded context, `proj_out` (Wan's `after_proj`) makes the block's hint."""

    def __init__(self, cfg: WanDiTConfig, *, first: bool):
        super().__init__(cfg)
        d = cfg.inner_dim
        self.proj_in = nn.Linear(d, d) if first else None
        self.proj_out = nn.Linear(d, d)

    def forward(  # type: ignore[override]
        self,
        c: Tensor,
        x: Tensor,
        text: Tensor,
        image: Tensor | None,
        temb6: Tensor,
        rope: tuple[Tensor, Tensor],
    ) -> tuple[Tensor, Tensor]:
        """c (B, L, D) context tokens, x (B, L, D) video tokens -> (next context (B, L, D), hint (B, L, D))."""
        if self.proj_in is not None:
            c = self.proj_in(c) + x  # (B, L, D)
        c = WanBlock.forward(self, c, text, image, temb6, rope)  # (B, L, D)
        return c, self.proj_out(c)


class WanVACEDiT(WanDiT):
    """A WanDiT with VACE context blocks; `forward` also takes the VACE context and its per-layer scales."""

    def __init__(self, config: WanDiTConfig):
        if not config.is_vace:
            raise InputError("a VACE transformer needs vace_layers and vace_in_channels", field="vace_layers")
        super().__init__(config)
        d = config.inner_dim
        self.vace_patch_embedding = nn.Conv3d(
            config.vace_in_channels, d, config.patch_size, stride=config.patch_size
        )
        self.vace_blocks = nn.ModuleList(
            [WanVACEBlock(config, first=i == 0) for i in range(len(config.vace_layers))]
        )
        self._hint_at = {layer: n for n, layer in enumerate(config.vace_layers)}  # main block -> hint index
        # The embedded context and scales of the call under way (set by `forward` only for its duration),
        # and its hints, made once per call on its first `run_blocks` (a step cache may call it twice).
        self._context: tuple[Tensor, Tensor] | None = None
        self._hints: list[Tensor] | None = None

    def set_attention(
        self, self_attention: AttentionFn | None = None, cross_attention: AttentionFn | None = None
    ):
        """As `WanDiT.set_attention`, for the context blocks too."""
        super().set_attention(self_attention, cross_attention)
        for block in self.vace_blocks:
            if self_attention is not None:
                block.attn1.attention_fn = self_attention
            if cross_attention is not None:
                block.attn2.attention_fn = cross_attention

    def _make_hints(self, inputs: BlockInputs) -> list[Tensor]:
        """One hint (B, L, D) per context block, each already times its layer's scale."""
        assert self._context is not None
        c, scales = self._context
        hints = []
        for block, scale in zip(self.vace_blocks, scales.unbind(), strict=True):
            c, hint = block(c, inputs.x, inputs.text, inputs.image, inputs.temb6, inputs.rope)
            hints.append(hint * scale)  # (B, L, D)
        return hints

    def run_blocks(
        self, inputs: BlockInputs, x: Tensor | None = None, start: int = 0, stop: int | None = None
    ) -> Tensor:
        """Blocks [start, stop) on `x` (default: inputs.x), each VACE layer followed by its hint."""
        if self._context is None:  # no context given: the plain Wan stack
            return super().run_blocks(inputs, x, start, stop)
        if self._hints is None:
            self._hints = self._make_hints(inputs)
        x = inputs.x if x is None else x
        stop = len(self.blocks) if stop is None else stop
        for i in range(start, stop):
            x = self.blocks[i](x, inputs.text, inputs.image, inputs.temb6, inputs.rope)  # (B, L, D)
            if i in self._hint_at:
                x = x + self._hints[self._hint_at[i]].to(x.dtype)  # (B, L, D)
        return x

    def embed_context(self, control: Tensor, tokens: int) -> Tensor:
        """control (B, Cv, F, H, W) -> (B, L, D) context tokens, zero-padded to the video's `tokens`."""
        cfg = self.config
        if control.ndim != 5 or control.shape[1] != cfg.vace_in_channels:
            raise InputError(
                f"the VACE context must be (B, {cfg.vace_in_channels}, F, H, W), got {tuple(control.shape)}",
                field="control_hidden_states",
            )
        c = self.vace_patch_embedding(control.to(self.dtype))  # (B, D, f, h, w)
        c = c.flatten(2).transpose(1, 2)  # (B, Lc, D)
        if c.shape[1] > tokens:
            raise InputError(
                f"the VACE context has {c.shape[1]} tokens, more than the video's {tokens}",
                field="control_hidden_states",
            )
        return torch.cat([c, c.new_zeros(c.shape[0], tokens - c.shape[1], c.shape[2])], dim=1)  # (B, L, D)

    def context_scales(self, scale: float | Sequence[float] | Tensor | None, device: torch.device) -> Tensor:
        """One scale per VACE layer (len(vace_layers),) from a number, a list or a tensor (None: all 1)."""
        n = len(self.config.vace_layers)
        if scale is None:
            scale = 1.0
        if isinstance(scale, (int, float)):
            return torch.full((n,), float(scale), device=device, dtype=self.dtype)
        t = torch.as_tensor(scale, dtype=self.dtype, device=device).flatten()
        if t.numel() != n:
            raise InputError(
                f"conditioning_scale needs one number or {n} (one per VACE layer), got {t.numel()}",
                field="conditioning_scale",
            )
        return t

    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor,
        encoder_hidden_states_image: Tensor | None = None,
        control_hidden_states: Tensor | None = None,
        control_hidden_states_scale: float | Sequence[float] | Tensor | None = None,
    ) -> Tensor:
        """As `WanDiT.forward`, plus the VACE context (B, Cv, F', H, W) with F' <= F and its scale(s) (one
        number, or one per VACE layer); no context runs the base model alone -> velocity (B, C, F, H, W)."""
        if control_hidden_states is None:
            return super().forward(
                hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image
            )
        pt, ph, pw = self.config.patch_size
        _, _, frames, height, width = hidden_states.shape
        tokens = (frames // pt) * (height // ph) * (width // pw)
        if tuple(control_hidden_states.shape[-2:]) != (height, width):
            raise InputError(
                f"the VACE context is {tuple(control_hidden_states.shape[-2:])} latents high and wide, the "
                f"video {(height, width)}",
                field="control_hidden_states",
            )
        context = self.embed_context(control_hidden_states, tokens)  # (B, L, D)
        if context.shape[0] != hidden_states.shape[0]:
            context = context.expand(hidden_states.shape[0], -1, -1)  # batched guidance: the same context
        scales = self.context_scales(control_hidden_states_scale, hidden_states.device)
        self._context, self._hints = (context, scales), None
        try:
            return super().forward(
                hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image
            )
        finally:
            self._context = self._hints = None
