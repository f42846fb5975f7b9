"""LoRA files applied to a built model: read, matched to module names, fused or run as side paths.

A LoRA file holds, per adapted layer, a low-rank pair (`lora_down`/`lora_A` (r, in), `lora_up`/`lora_B`
(out, r)) with an optional `alpha` (update = up @ down * alpha / r, Hu et al. 2021 "LoRA", eq. 4 with
alpha/r as kohya and diffusers' `_convert_non_diffusers_wan_lora_to_diffusers` read it; alpha may be stored
as any dtype: the Lightning files store int64) and full-difference keys (`diff` for a weight, `diff_b` or
`lora_B.bias` for a bias), as ComfyUI's `comfy/lora.py` applies them.

On a float model the updates are fused into the weights, summed in float32 and rounded once; the weights
they replace are kept on the CPU (as ComfyUI's model patcher keeps backups) so `remove_loras` restores the
base bit for bit. On a `QuantLinear` the update runs as a low-rank side path beside the quantized matmul,
so quantized weights are never re-quantized. The family (`models/wan/lora.py`) supplies the names.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from yingxi.errors import InputError, closest
from yingxi.models.quant import QuantLinear

__all__ = [
    "LoraPatch",
    "LoraPath",
    "apply_loras",
    "lora_patches",
    "parse_lora_spec",
    "read_lora",
    "remove_loras",
    "split_lora_keys",
]

log = logging.getLogger(__name__)

# Key suffix -> the part of a patch it is. Longest first, so ".diff_b" is not read as ".diff".
SUFFIXES: tuple[tuple[str, str], ...] = (
    (".lora_A.default.weight", "down"),  # PEFT's adapter-named keys
    (".lora_B.default.weight", "up"),
    (".lora_down.weight", "down"),  # kohya / musubi / Wan-native
    (".lora_up.weight", "up"),
    (".lora_A.weight", "down"),  # diffusers / PEFT / lightx2v
    (".lora_B.weight", "up"),
    (".lora_B.bias", "diff_b"),  # diffusers' name for a bias difference (PEFT lora_bias)
    (".diff_b", "diff_b"),
    (".alpha", "alpha"),
    (".diff", "diff"),
)


@dataclass
class LoraPatch:
    """What one LoRA file changes in one module."""

    down: Tensor | None = None  # (r, in[, kernel...])
    up: Tensor | None = None  # (out, r[, 1...])
    alpha: float | None = None  # None: scale 1
    diff: Tensor | None = None  # full weight difference, weight shape
    diff_b: Tensor | None = None  # bias difference, (out,)
    keys: list[str] = field(default_factory=list)  # the file's keys, for messages

    @property
    def rank(self) -> int:
        return int(self.down.shape[0]) if self.down is not None else 0

    @property
    def scale(self) -> float:
        """alpha / rank, or 1 without an alpha (diffusers and PEFT files carry their scale in the weights)."""
        return 1.0 if self.alpha is None or self.rank == 0 else self.alpha / self.rank

    def check_shape(self, name: str, shape: Sequence[int], file: str | None = None) -> None:
        """InputError when this patch does not fit a weight of `shape` (a LoRA made for another model)."""
        out, fan_in = int(shape[0]), math.prod(int(n) for n in shape[1:])
        got = None
        if self.down is not None and (self.up.shape[0] != out or self.down.flatten(1).shape[1] != fan_in):
            got = f"up {tuple(self.up.shape)} x down {tuple(self.down.shape)}"
        elif self.diff is not None and self.diff.numel() != out * fan_in:
            got = f"diff {tuple(self.diff.shape)}"
        elif self.diff_b is not None and self.diff_b.numel() != out:
            got = f"diff_b {tuple(self.diff_b.shape)}"
        if got is not None:
            raise InputError(
                f"the LoRA's {name} is {got}, which does not fit the model's {tuple(shape)} weight: a LoRA "
                "made for another model (size or variant)?",
                field="lora",
                file=file,
            )

    def weight_delta(self, shape: Sequence[int], device: torch.device) -> Tensor | None:
        """The float32 change of the weight (`shape`) at strength 1, or None when this patch has none."""
        delta = None
        if self.down is not None:
            down = self.down.to(device, torch.float32).flatten(1)  # (r, in*k)
            up = self.up.to(device, torch.float32).flatten(1)  # (out, r)
            delta = (up @ down * self.scale).reshape(shape)  # (out, in, k...)
        if self.diff is not None:
            diff = self.diff.to(device, torch.float32).reshape(shape)
            delta = diff if delta is None else delta + diff
        return delta


def read_lora(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a .safetensors LoRA file (InputError naming the file when it cannot be read)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"LoRA file not found: {path}", field="lora", file=str(path))
    if path.suffix.lower() != ".safetensors":
        raise InputError("LoRA files are read as .safetensors", field="lora", file=str(path))
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors' own untyped errors for truncated/corrupt files
        raise InputError(f"cannot read LoRA file: {exc}", field="lora", file=str(path)) from exc


def split_lora_keys(state: Mapping[str, Tensor], *, file: str | None = None) -> dict[str, LoraPatch]:
    """{raw module name as the file spells it: patch}; a key of no known LoRA kind is an error."""
    patches: dict[str, LoraPatch] = {}
    for key, tensor in state.items():
        part = next(((suffix, kind) for suffix, kind in SUFFIXES if key.endswith(suffix)), None)
        if part is None:
            kinds = ", ".join(s for s, _ in SUFFIXES)
            raise InputError(
                f'"{key}" is not a LoRA key this reader knows (LoRA keys end in {kinds}; LoHa/LoKr '
                "adapters are not read)",
                field="lora",
                file=file,
            )
        suffix, kind = part
        patch = patches.setdefault(key[: -len(suffix)], LoraPatch())
        patch.keys.append(key)
        if kind == "alpha":
            patch.alpha = float(tensor.reshape(-1)[0].item())  # int64 in the Lightning files, fp16 in others
        else:
            setattr(patch, kind, tensor)
    for name, patch in patches.items():
        if (patch.down is None) != (patch.up is None):
            missing = "up (lora_up/lora_B)" if patch.up is None else "down (lora_down/lora_A)"
            raise InputError(f"{name} has no {missing} weight", field="lora", file=file)
        if patch.down is not None and patch.up.shape[1] != patch.down.shape[0]:
            raise InputError(
                f"{name}: lora up {tuple(patch.up.shape)} and down {tuple(patch.down.shape)} ranks differ",
                field="lora",
                file=file,
            )
    return patches


def lora_patches(
    state: Mapping[str, Tensor],
    resolve: Callable[[str], str | None],
    *,
    skippable: Callable[[str], bool] = lambda name: False,
    known: Iterable[str] = (),
    file: str | None = None,
) -> dict[str, LoraPatch]:
    """{module name in the model: patch}. `resolve` maps a file's module name to the model's (None: no such
    module); unresolved names that `skippable` accepts (layers the model lacks, e.g. a Wan 2.1 I2V LoRA's
    k_img/v_img on a 2.2 model) are dropped with one warning that counts them; any other is an error that
    names it and the closest of `known`."""
    out: dict[str, LoraPatch] = {}
    skipped: list[str] = []
    for raw, patch in split_lora_keys(state, file=file).items():
        name = resolve(raw)
        if name is None:
            if skippable(raw):
                skipped.extend(patch.keys)
                continue
            near = closest(raw, known)
            hint = f' (closest module: "{near}")' if near else ""
            raise InputError(
                f'LoRA key "{patch.keys[0]}" names no layer of this model{hint}', field="lora", file=file
            )
        if name in out:
            raise InputError(f"two LoRA entries adapt {name} ({raw})", field="lora", file=file)
        out[name] = patch
    if skipped:
        log.warning(
            "%s: skipped %d LoRA keys for layers this model does not have (e.g. %s)",
            file or "LoRA",
            len(skipped),
            skipped[0],
        )
    return out


def parse_lora_spec(spec: str) -> tuple[Path, float]:
    """`FILE[:STRENGTH]` -> (path, strength); a Windows drive letter ("C:\\x.safetensors") is no strength."""
    path, sep, tail = spec.rpartition(":")
    if sep and path and not tail.startswith(("\\", "/")):
        try:
            strength = float(tail)
        except ValueError:
            raise InputError(f'write --lora as FILE[:STRENGTH], got "{spec}"', field="--lora") from None
        if not math.isfinite(strength):
            raise InputError(f"LoRA strength must be a finite number, got {tail}", field="--lora")
        return Path(path).expanduser(), strength
    return Path(spec).expanduser(), 1.0


class LoraPath(nn.Module):
    """y += strength * (scale * up(down(x)) + x @ diff^T + diff_b): one LoRA beside a quantized Linear.
    Buffers (not persistent), so offload moves them with the layer and checkpoints never see them."""

    def __init__(self, patch: LoraPatch, strength: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.factor = float(strength) * patch.scale
        self.strength = float(strength)
        cast = lambda t: t.to(device, dtype).flatten(1) if t is not None else None  # noqa: E731
        self.register_buffer("down", cast(patch.down), persistent=False)  # (r, in)
        self.register_buffer("up", cast(patch.up), persistent=False)  # (out, r)
        self.register_buffer("diff", cast(patch.diff), persistent=False)  # (out, in)
        bias = patch.diff_b.to(device, dtype) if patch.diff_b is not None else None
        self.register_buffer("diff_b", bias, persistent=False)  # (out,)

    def forward(self, x: Tensor) -> Tensor:
        y = 0
        if self.down is not None:
            h = x @ self.down.to(x.dtype).T  # (..., r)
            y = (h @ self.up.to(x.dtype).T) * self.factor  # (..., out)
        if self.diff is not None:
            y = y + (x @ self.diff.to(x.dtype).T) * self.strength
        if self.diff_b is not None:
            y = y + self.diff_b.to(x.dtype) * self.strength
        return y


_STATE = "_yingxi_lora_backup"  # {parameter name: its base value on the CPU}, on the root module


def remove_loras(model: nn.Module) -> None:
    """Put back the base weights the fused LoRAs replaced (exactly) and drop every side path."""
    backup: dict[str, Tensor] = model.__dict__.pop(_STATE, {})
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, base in backup.items():
            params[name].copy_(base)
    for module in model.modules():
        if isinstance(module, QuantLinear) and "lora_paths" in module._modules:
            del module._modules["lora_paths"]


def apply_loras(model: nn.Module, loras: Sequence[tuple[Mapping[str, LoraPatch], float]]) -> None:
    """Replace the model's LoRAs with `loras` ([(patches by module name, strength)], applied together):
    fused into float weights (summed in float32, rounded once), side paths on QuantLinears. The base
    weights a fusion replaces are kept on the CPU (as much host memory as the adapted layers take on the
    device) so that `remove_loras` and the next call restore them exactly."""
    side_dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    params = dict(model.named_parameters())
    deltas: dict[str, Tensor] = {}  # parameter name -> float32 sum of updates
    sides: dict[str, list[LoraPath]] = {}
    for patches, strength in loras:
        if strength == 0:
            continue
        for name, patch in patches.items():
            if name in params:  # a bare parameter (Wan's modulation tables): only a full difference fits
                if patch.down is not None or patch.diff_b is not None or patch.diff is None:
                    raise InputError(
                        f"{name} is a parameter; a LoRA can only add a .diff to it", field="lora"
                    )
                if patch.diff.numel() != params[name].numel():
                    raise InputError(f"the LoRA's {name} diff {tuple(patch.diff.shape)} does not fit the model's "
                                     f"{tuple(params[name].shape)}", field="lora")  # fmt: skip
                _add(deltas, name, patch.diff.to(params[name].device, torch.float32), strength)
                continue
            module = model.get_submodule(name)
            if isinstance(module, QuantLinear):
                patch.check_shape(name, (module.out_features, module.in_features))
                path = LoraPath(patch, strength, side_dtype, module.qweight.device)
                sides.setdefault(name, []).append(path)
                continue
            weight = getattr(module, "weight", None)
            if patch.down is not None or patch.diff is not None:
                if not isinstance(weight, Tensor):
                    raise InputError(f"LoRA adapts {name}, which has no weight", field="lora")
                patch.check_shape(name, weight.shape)
                _add(deltas, f"{name}.weight", patch.weight_delta(weight.shape, weight.device), strength)
            if patch.diff_b is not None:
                bias = getattr(module, "bias", None)
                if not isinstance(bias, Tensor):
                    raise InputError(f"LoRA changes the bias of {name}, which has none", field="lora")
                _add(deltas, f"{name}.bias", patch.diff_b.to(bias.device, torch.float32), strength)
    remove_loras(model)  # only now: a LoRA that does not fit leaves the model as it was
    backup: dict[str, Tensor] = {}
    with torch.no_grad():
        for pname, delta in deltas.items():
            p = params[pname]
            backup[pname] = p.detach().to("cpu", copy=True)
            p.copy_((p.float() + delta.reshape(p.shape)).to(p.dtype))
    for name, paths in sides.items():
        model.get_submodule(name).lora_paths = nn.ModuleList(paths)
    if backup:
        model.__dict__[_STATE] = backup


def _add(deltas: dict[str, Tensor], name: str, delta: Tensor | None, strength: float) -> None:
    if delta is None:
        return
    delta = delta * strength
    deltas[name] = deltas[name] + delta if name in deltas else delta
