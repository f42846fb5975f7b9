"""Step caches and batched guidance: quality lost against the uncached run, evaluations saved, time.

1. Quality (tiny random Wan 2.1 T2V, the test models; decoded frames): for each cache at its default
   threshold, the PSNR of the decoded frames against the uncached run of the same noise, and the
   evaluations that ran / were skipped.
2. Speed (CPU mid-size random WanDiT, fp32, no VAE): one guided shot of `--steps` UniPC-free Euler steps,
   uncached vs each cache vs batched guidance, in the same run: seconds per shot and evaluations.

    PYTHONPATH=src python bench/wan_cache.py              # both tables (a few minutes on a loaded 2-core VM)
    PYTHONPATH=src python bench/wan_cache.py --device cuda --dim 1536 --layers 30 --tokens 32760  # GPU
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "models" / "wan"))

from yingxi.models.wan.config import WanDiTConfig  # noqa: E402
from yingxi.models.wan.dit import WanDiT  # noqa: E402
from yingxi.pipelines.wan.cache import DEFAULT_THRESHOLDS, CacheSpec, StepCache, use_cache  # noqa: E402

CACHES = [None] + [CacheSpec(n, t) for n, t in DEFAULT_THRESHOLDS.items()]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def quality(steps: int) -> None:
    from tiny import save_tiny_wan

    from yingxi.pipelines.wan import load_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        pipe = load_pipeline(save_tiny_wan(Path(tmp) / "t2v", "t2v"))
        g = torch.Generator().manual_seed(0)
        latents = torch.randn(1, 16, 3, 8, 8, generator=g)
        args = dict(prompt="a kite over the sea", width=64, height=64, num_frames=9, latents=latents,
                    num_inference_steps=steps, guidance_scale=5.0)  # fmt: skip
        print(
            f"\n1. quality, tiny t2v (2 layers), 64x64x9, {steps} steps, guidance 5: decoded frames vs uncached"
        )
        print("| cache | evaluations run | skipped | PSNR (dB) |\n|---|---|---|---|")
        base = None
        for spec in CACHES:
            frames = pipe(**args, cache=spec or "none")
            u = pipe.last_usage
            base = frames if base is None else base
            print(f"| {spec or 'none'} | {u['evaluations']} | {u['skipped']} | {psnr(frames, base):.1f} |")


def guided_loop(model, x0, cond, uncond, steps, cache=None, batched=False) -> tuple[torch.Tensor, float]:
    """Euler flow sampling with guidance 5; (latents, seconds)."""
    s = torch.linspace(1, 0, steps + 1)
    sigmas = 5.0 * s / (1 + 4.0 * s)
    x = x0.clone()
    both = torch.cat([cond, uncond])
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(steps):
            t = (sigmas[i] * 1000).reshape(1)
            if batched:
                with use_cache(model, cache, "cfg"):
                    vc, vu = model(torch.cat([x, x]), t.expand(2), both).chunk(2)
            else:
                with use_cache(model, cache, "cond"):
                    vc = model(x, t, cond)
                with use_cache(model, cache, "uncond"):
                    vu = model(x, t, uncond)
            x = x + (sigmas[i + 1] - sigmas[i]) * (vu + 5.0 * (vc - vu))
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return x, time.perf_counter() - started


def speed(args) -> None:
    heads = args.dim // 128 if args.dim >= 1024 else args.dim // 64
    cfg = WanDiTConfig(num_attention_heads=heads, attention_head_dim=args.dim // heads, text_dim=args.dim,
                       freq_dim=256, ffn_dim=3 * args.dim, num_layers=args.layers)  # fmt: skip
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = WanDiT(cfg).to(device).eval()
    side = int(round(math.sqrt(args.tokens / 2))) * 2  # 2 latent frames of side x side patches
    x0 = torch.randn(1, 16, 2, side, side, device=device)
    cond = torch.randn(1, 64, args.dim, device=device)
    uncond = torch.randn(1, 64, args.dim, device=device)
    uncond[:, 16:] = 0  # a shorter negative prompt, zero-padded as the text encoder returns it
    tokens = 2 * (side // 2) ** 2
    print(f"\n2. speed, random WanDiT dim {args.dim} x {args.layers} layers, {tokens} tokens, {args.steps} steps, "
          f"guidance 5, {device.type}, fp32, torch {torch.__version__}")  # fmt: skip
    print(
        "| run | evaluations run | skipped | transformer calls | s/shot | vs uncached |\n|---|---|---|---|---|---|"
    )
    guided_loop(model, x0, cond, uncond, 2)  # warm-up
    base_x, base_t = guided_loop(model, x0, cond, uncond, args.steps)
    print(f"| uncached | {2 * args.steps} | 0 | {2 * args.steps} | {base_t:.2f} | 1.00x |")
    _, t = guided_loop(model, x0, cond, uncond, args.steps, batched=True)
    print(f"| batched guidance | {2 * args.steps} | 0 | {args.steps} | {t:.2f} | {base_t / t:.2f}x |")
    for spec in CACHES[1:]:
        cache = StepCache(spec, args.steps, table="t2v-1.3B")
        x, t = guided_loop(model, x0, cond, uncond, args.steps, cache=cache)
        err = ((x - base_x).abs().max() / base_x.abs().max()).item()
        print(f"| {spec} | {cache.ran} | {cache.skipped} | {2 * args.steps} | {t:.2f} | {base_t / t:.2f}x "
              f"(max rel. latent error {err:.3f}) |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--quality-steps", type=int, default=20)
    p.add_argument("--skip-quality", action="store_true")
    args = p.parse_args()
    print(f"machine: {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    if not args.skip_quality:
        quality(args.quality_steps)
    speed(args)


if __name__ == "__main__":
    main()
