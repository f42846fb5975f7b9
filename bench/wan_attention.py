"""Attention kernels against SDPA-math, and eager against regionally compiled Wan blocks, on this machine.

    PYTHONPATH=src python bench/wan_attention.py                      # CPU: mid-size shapes
    PYTHONPATH=src python bench/wan_attention.py --device cuda --tokens 32760 --heads 40 --dim 5120

Part 1 times every kernel this machine runs (`available_attention_backends`) on one self-attention shape
(B=1, H, L, 128) and one cross-attention shape (L queries, 512 text keys) and prints its max |difference|
from SDPA-math. Part 2 times one transformer forward (a sampling step without guidance) of a random DiT
with `--layers` blocks, eager and after `compile_blocks`, with the compile time and the largest difference
of the compiled output, in float32 and bf16, and with fp8 (QuantLinear) block weights.
"""

from __future__ import annotations

import argparse
import copy
import functools
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from yingxi.models.attention import available_attention_backends, resolve_attention  # noqa: E402
from yingxi.models.compile import compile_blocks, parse_compile  # noqa: E402
from yingxi.models.fp8 import quantize_linears_  # noqa: E402
from yingxi.models.wan.config import WanDiTConfig  # noqa: E402
from yingxi.models.wan.dit import WanDiT  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kernels(args, device: torch.device) -> None:
    print(f"\n## attention kernels vs sdpa-math: B=1, H={args.heads}, L={args.tokens}, D=128 (Lk: L or 512)")
    print("| kernel | dtype | shape | ms / call | x sdpa-math | max abs diff vs math |")
    print("|---|---|---|---:|---:|---:|")
    dtypes = [torch.float32, torch.bfloat16] if device.type == "cpu" else [torch.bfloat16, torch.float16]
    g = torch.Generator().manual_seed(0)
    for dtype in dtypes:
        for label, lk in (("self", args.tokens), ("cross", 512)):
            q = torch.randn(1, args.heads, args.tokens, 128, generator=g).to(device, dtype)  # (B, H, L, D)
            k = torch.randn(1, args.heads, lk, 128, generator=g).to(device, dtype)  # (B, H, Lk, D)
            v = torch.randn(1, args.heads, lk, 128, generator=g).to(device, dtype)
            ref = resolve_attention("sdpa-math", device, dtype, head_dim=128)(q, k, v).float()
            rows = {}  # name -> (seconds, max diff); sdpa-math is one of them, the ratios' base
            for name in available_attention_backends(device, dtype):
                fn = resolve_attention(name, device, dtype, head_dim=128)
                seconds = timed(functools.partial(fn, q, k, v), device, args.repeats)
                rows[name] = seconds, (fn(q, k, v).float() - ref).abs().max().item()
            base, dt = rows["sdpa-math"][0], str(dtype).removeprefix("torch.")
            for name, (seconds, diff) in rows.items():
                ms = seconds * 1e3
                print(f"| {name} | {dt} | {label} | {ms:.1f} | {base / seconds:.2f} | {diff:.2e} |")


def blocks(args, device: torch.device) -> None:
    cfg = WanDiTConfig(num_attention_heads=args.dim // 128, attention_head_dim=128, ffn_dim=args.dim * 3,
                       num_layers=args.layers, text_dim=4096, freq_dim=256)  # fmt: skip
    latent = (1, 16, (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8)  # (B, C, F, H, W)
    mode = parse_compile(args.compile, device)
    tokens = latent[2] * latent[3] * latent[4] // 4
    print(f"\n## one forward (a step without guidance): {args.layers} blocks of dim {args.dim}, {tokens} tokens, "
          f"torch.compile mode {mode}")  # fmt: skip
    print(
        "| weights | eager s / step | compiled s / step | x eager | compile s (first call) | max abs diff |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*latent, generator=g).to(device)
    t = torch.tensor([700.0], device=device)
    text = torch.randn(1, 512, 4096, generator=g).to(device)
    dtypes = ["fp32", "bf16", "fp8"] if device.type == "cpu" else ["bf16", "fp8"]
    for weights in dtypes:
        torch.manual_seed(0)
        with torch.device(device):
            model = WanDiT(cfg).eval()
        model.to(torch.float32 if weights == "fp32" else torch.bfloat16)
        if weights == "fp8":
            quantize_linears_(model, lambda name: name.startswith("blocks."))
        kernel = resolve_attention("auto", device, model.dtype, head_dim=128)
        model.set_attention(self_attention=kernel, cross_attention=kernel)
        compiled = copy.deepcopy(model)
        stats = compile_blocks(compiled, mode)
        with torch.no_grad():
            eager_s = timed(lambda m=model: m(x, t, text), device, args.repeats)
            start = time.perf_counter()
            out = compiled(x, t, text)  # the call that compiles
            _sync(device)
            first = time.perf_counter() - start
            compiled_s = timed(lambda m=compiled: m(x, t, text), device, args.repeats)
            diff = (out.float() - model(x, t, text).float()).abs().max().item()
        print(f"| {weights} | {eager_s:.3f} | {compiled_s:.3f} | {eager_s / compiled_s:.2f} | "
              f"{first:.1f} ({stats.graphs} graph) | {diff:.2e} |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tokens", type=int, default=2048, help="query tokens of the attention shapes")
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--dim", type=int, default=512, help="model width of part 2's DiT (heads of 128)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--frames", type=int, default=9)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--compile", default="auto", help="compile mode (auto, default, cudagraphs, ...)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-kernels", action="store_true")
    p.add_argument("--skip-blocks", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"torch {torch.__version__}, {card}, {torch.get_num_threads()} threads")
    if not args.skip_kernels:
        kernels(args, device)
    if not args.skip_blocks:
        blocks(args, device)


if __name__ == "__main__":
    main()
