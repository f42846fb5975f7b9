"""Storage formats of the Wan transformer: bytes at full size, forward time and error at mid size.

    python bench/wan_formats.py                       # CPU: both tables (full-size bytes, mid-size forward)
    python bench/wan_formats.py --sizes-only          # full-size bytes only (meta device)
    python bench/wan_formats.py --device cuda         # H100/H200: full-size 1.3B forward, bf16 vs fp8

Bytes: parameter+buffer bytes of a meta-device build of each full-size transformer held as bf16 (float32
where Wan keeps it), as `weights="fp8"` holds it (block Linears in e4m3fn + a float32 scale per output
row), and as city96-style GGUF Q8_0 / Q4_K files hold it (`yingxi.models.gguf.quantized_model_bytes`
where that module is present, else the same rule from the block sizes: Q8_0 34 bytes per 32 weights,
Q4_K 144 per 256, Linears of more than 1024 weights outside the float32 parts).

Forward (CPU): one mid-size random model (`--dim`, `--layers`, `--tokens`), its weights held plain (fp32,
bf16) or as fp8 (per-row e4m3fn as `--weights fp8` makes it; per-tensor e4m3fn as ComfyUI's fp8_scaled
files; e5m2), computed in `--compute` (fp32 on CPU: CPUs without bf16 units measure themselves in bf16),
best of `--repeats` after a warm-up, time relative to the plain model in the same run, relative L2 error
against the fp32 model.

CUDA (`--device cuda`, <= 8 min on an H100/H200): a full-size wan2.1-t2v-1.3b (or `--variant`) with
random weights on `--frames` x 480p latents: bf16 vs fp8 dequantize-then-matmul vs fp8 `torch._scaled_mm`
(time, peak memory, relative error against bf16), and one layer's `_scaled_mm` error against its
dequantized matmul (the figure `yingxi.models.fp8_matmul` documents).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from yingxi.models.fp8 import module_bytes, quantize_fp8, quantize_linears_
from yingxi.models.quant import QuantizedTensor, QuantLinear
from yingxi.models.wan.config import VARIANTS, WanDiTConfig
from yingxi.models.wan.dit import KEEP_FP32, WanDiT
from yingxi.models.wan.loading import FP8_LAYERS

SIZE_VARIANTS = ("wan2.1-t2v-14b", "wan2.1-i2v-14b-480p", "wan2.2-ti2v-5b", "wan2.1-t2v-1.3b")
GGUF_BLOCKS = {"Q8_0": (32, 34), "Q4_K": (256, 144)}  # (weights per block, bytes per block)
GGUF_THRESHOLD = 1024  # city96's convert.py keeps tensors of at most this many values in F32


def _keep(name: str) -> bool:
    return any(part in KEEP_FP32 for part in name.split("."))


def _as_loaded(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Parameters in `dtype`, float32 where Wan keeps float32 (as `load_transformer` holds them)."""
    for name, p in model.named_parameters():
        p.data = p.data.to(torch.float32 if _keep(name) else dtype)
    return model


def gguf_model_bytes(model: nn.Module, qtype: str) -> int:
    try:  # the gguf engineer's accounting, once merged
        from yingxi.models.gguf import quantized_model_bytes
    except ImportError:
        quantized_model_bytes = None
    if quantized_model_bytes is not None:
        return quantized_model_bytes(model, qtype, dtype=torch.bfloat16, keep_fp32=KEEP_FP32)
    block, size = GGUF_BLOCKS[qtype]
    total, stored = 0, set()
    for name, mod in model.named_modules():
        if type(mod) is nn.Linear and not _keep(f"{name}.weight"):
            if mod.weight.numel() > GGUF_THRESHOLD and mod.in_features % block == 0:
                total += mod.weight.numel() // block * size
                stored.add(f"{name}.weight")
    for name, p in model.named_parameters():
        if name not in stored:
            total += p.numel() * (4 if _keep(name) else 2)
    return total


def sizes_table(variants: list[str]) -> None:
    print("Full-size transformers, parameter+buffer bytes (GB = 1e9; % of bf16), meta-device builds:")
    print(f"{'variant':<22} {'params':>7} {'bf16':>8} {'fp8':>15} {'Q8_0':>15} {'Q4_K':>15}")
    for name in variants:
        cfg = VARIANTS[name].dit
        with torch.device("meta"):
            model = _as_loaded(WanDiT(cfg), torch.bfloat16)
        bf16 = module_bytes(model)
        q8, q4 = gguf_model_bytes(model, "Q8_0"), gguf_model_bytes(model, "Q4_K")
        fp8 = module_bytes(quantize_linears_(model, FP8_LAYERS.match))
        cell = lambda n, bf16=bf16: f"{n / 1e9:6.2f} ({100 * n / bf16:4.1f}%)"  # noqa: E731
        print(
            f"{name:<22} {cfg.num_params() / 1e9:6.2f}B {bf16 / 1e9:7.2f} {cell(fp8)} {cell(q8)} {cell(q4)}"
        )


def random_model(cfg: WanDiTConfig, device: str, seed: int = 0) -> WanDiT:
    torch.manual_seed(seed)
    with torch.device(device):
        model = WanDiT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.ndim == 1:
                p.normal_(1.0, 0.05)  # norm scales
            else:
                p.normal_(0.0, 0.02)
    return model.eval()


def _per_tensor(w: torch.Tensor, fp8: torch.dtype) -> QuantizedTensor:
    scale = w.float().abs().amax() / torch.finfo(fp8).max
    qtype = "fp8_e4m3fn" if fp8 == torch.float8_e4m3fn else "fp8_e5m2"
    return QuantizedTensor(qtype, (w.float() / scale).to(fp8), tuple(w.shape), scale)


def quantized_copy(model: WanDiT, how: str) -> WanDiT:
    """The model with its FP8_LAYERS Linears held as `how`: "fp8" (per-row e4m3fn), "fp8-tensor"
    (per-tensor e4m3fn), "e5m2" (per-tensor e5m2)."""
    import copy

    out = copy.deepcopy(model)
    for name, mod in list(out.named_modules()):
        if type(mod) is nn.Linear and FP8_LAYERS.match(f"{name}.weight"):
            w = mod.weight.detach()
            if how == "fp8":
                q = quantize_fp8(w)
            else:
                q = _per_tensor(w, torch.float8_e4m3fn if how == "fp8-tensor" else torch.float8_e5m2)
            owner, _, attr = name.rpartition(".")
            out.get_submodule(owner).__setattr__(attr, QuantLinear.from_quantized(q, mod.bias.detach()))
    return out


def latents(cfg: WanDiTConfig, f: int, h: int, w: int, device: str, dtype: torch.dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, cfg.in_channels, f, h, w, generator=g).to(device, dtype)
    text = torch.randn(1, 512, cfg.text_dim, generator=g).to(device, dtype)
    return x, torch.tensor([700.0], device=device), text


def timed(model: nn.Module, args, device: torch.device, repeats: int) -> tuple[torch.Tensor, float, float]:
    """(output float32, best seconds of `repeats` after a warm-up, peak GiB allocated; 0 off CUDA)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        out = model(*args)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            out = model(*args)
            sync()
            best = min(best, time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return out.float(), best, peak


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def forward_table(args) -> None:
    cfg = WanDiTConfig(
        num_attention_heads=args.dim // 128, attention_head_dim=128, ffn_dim=4 * args.dim,
        num_layers=args.layers, text_dim=512, freq_dim=256,
    )  # fmt: skip
    compute = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.compute]
    side = max(2, round((args.tokens / 2) ** 0.5))  # 2 latent frames of side x side patches
    base = random_model(cfg, "cpu")
    inputs = latents(cfg, 2, 2 * side, 2 * side, "cpu", compute)
    device = torch.device("cpu")
    print(
        f"\nMid-size forward on CPU ({torch.get_num_threads()} threads): dim {args.dim}, ffn {4 * args.dim}, "
        f"{args.layers} layers, {2 * side * side} tokens, {cfg.num_params() / 1e6:.0f}M params, compute {args.compute}"
    )
    ref, _, _ = timed(_as_loaded(random_model(cfg, "cpu"), torch.float32), inputs, device, 1)
    rows = [("fp32 (plain)", _as_loaded(random_model(cfg, "cpu"), torch.float32))]
    rows.append(("bf16 (plain)", _as_loaded(random_model(cfg, "cpu"), torch.bfloat16)))
    for how, label in (
        ("fp8", "fp8 e4m3fn per-row"),
        ("fp8-tensor", "fp8 e4m3fn per-tensor"),
        ("e5m2", "fp8 e5m2 per-tensor"),
    ):
        rows.append((label, _as_loaded(quantized_copy(base, how), compute)))
    print(f"{'weights':<24} {'MB':>8} {'forward s':>10} {'vs plain':>9} {'rel err vs fp32':>16}")
    plain_time = None
    for label, model in rows:
        out, seconds, _ = timed(model, inputs, device, args.repeats)
        if label.startswith(args.compute):
            plain_time = seconds
        ratio = f"{seconds / plain_time:8.2f}x" if plain_time else f"{'-':>9}"
        print(f"{label:<24} {module_bytes(model) / 1e6:8.1f} {seconds:10.3f} {ratio} {rel(out, ref):16.2e}")
        del model


def cuda_table(args) -> None:
    from yingxi.models import fp8_matmul
    from yingxi.models.fp8_matmul import scaled_mm_linear

    device = torch.device("cuda")
    cap = torch.cuda.get_device_capability(device)
    print(
        f"{torch.cuda.get_device_name(device)} (compute capability {cap[0]}.{cap[1]}), torch {torch.__version__}"
    )
    cfg = VARIANTS[args.variant].dit
    base = _as_loaded(random_model(cfg, "cuda"), torch.bfloat16)
    inputs = latents(cfg, args.frames, 60, 104, "cuda", torch.bfloat16)  # 480p: 60 x 104 latents
    tokens = args.frames * 30 * 52
    print(
        f"{args.variant}: {cfg.num_params() / 1e9:.2f}B params, {tokens} tokens ({args.frames} latent frames, 480p)"
    )
    ref, t_bf16, peak_bf16 = timed(base, inputs, device, args.repeats)
    print(
        f"{'weights':<30} {'weights GB':>10} {'forward s':>10} {'vs bf16':>8} {'peak GiB':>9} {'rel err vs bf16':>16}"
    )
    print(
        f"{'bf16':<30} {module_bytes(base) / 1e9:10.2f} {t_bf16:10.3f} {1:8.2f}x {peak_bf16:9.2f} {0:16.2e}"
    )
    fp8 = quantize_linears_(base, FP8_LAYERS.match)  # in place: the bf16 weights are gone from here on
    torch.cuda.empty_cache()
    for label, env in (("fp8 dequantize-then-matmul", "0"), ("fp8 torch._scaled_mm", "1")):
        os.environ["YINGXI_FP8_MATMUL"] = env
        out, seconds, peak = timed(fp8, inputs, device, args.repeats)
        print(
            f"{label:<30} {module_bytes(fp8) / 1e9:10.2f} {seconds:10.3f} {seconds / t_bf16:7.2f}x {peak:9.2f} {rel(out, ref):16.2e}"
        )
    layer = fp8.blocks[0].ffn.net[0].proj
    x = torch.randn(1, 4096, layer.in_features, device=device, dtype=torch.bfloat16)
    kind = fp8_matmul.fp8_matmul_kind(layer, x)
    exact = torch.nn.functional.linear(x.float(), layer.weight_as(torch.float32), layer.bias.float())
    if kind is not None:
        print(f"one layer ({layer.out_features}x{layer.in_features}, {kind}): _scaled_mm vs dequantized matmul "
              f"rel err {rel(scaled_mm_linear(layer, x, kind).float(), exact):.2e}")  # fmt: skip
    else:
        print("this card has no fp8 matmul (compute capability < 8.9): dequantize-then-matmul only")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--sizes-only", action="store_true")
    ap.add_argument("--sizes", default=",".join(SIZE_VARIANTS), help="variants for the bytes table")
    ap.add_argument("--dim", type=int, default=512, help="mid-size model width (a multiple of 128)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--compute", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variant", default="wan2.1-t2v-1.3b", help="--device cuda: the full-size model")
    ap.add_argument(
        "--frames", type=int, default=21, help="--device cuda: latent frames (21 = 81 video frames)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        cuda_table(args)
        return
    sizes_table([s for s in args.sizes.split(",") if s])
    if not args.sizes_only:
        forward_table(args)


if __name__ == "__main__":
    main()
