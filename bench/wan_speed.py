"""Wan speed: per-forward time, peak memory and achieved TFLOP/s of diffusers vs ours, with every speed-up.

For each model (random full-size weights built directly on the device in bf16, no files; 480p x 81 frames):
diffusers' `WanTransformer3DModel` eager (the reference, same run) and our `WanDiT` eager, batched guidance
(cond + uncond in one batch of 2), + SageAttention (where installed), + fp8 weights (the `--weights fp8`
path: the block Linears quantized per output row as the loader does), + compile (where `compile_blocks`
exists); each step cache on a guided shot (evaluations run / skipped, time per step); and the end-to-end
time of a 4-step shot through `WanPipeline` (transformer + VAE decode, random VAE weights).

FLOPs of one forward (batch 1), counted from the config (matmuls only; norms, RoPE, softmax are noise):
    layers x (8 L D^2 + 4 L^2 D + 4 L D^2 + 4 T D^2 + 4 L T D + 4 L D F) + 2 L D (C p + C_out p)
with L video tokens, T = 512 text tokens, D the width, F the FFN width, C x p the patch embedding's input
(self-attention: q/k/v/o projections 8LD^2, scores and values 4L^2D; cross-attention: q/o 4LD^2, text k/v
4TD^2, scores and values 4LTD; FFN 4LDF). Wan2.1-T2V-14B at 480p x 81 (L = 32,760): 1.68e15.
The card's bf16 matmul peak is measured in the same run (a timed 8192^3 matmul), so "of peak" is honest.

    python bench/wan_speed.py                              # GPU: 14B and 5B at 480p x 81 (fits 8 min on H100/H200)
    PYTHONPATH=src python bench/wan_speed.py --device cpu  # CPU: a mid-size config (the CI-machine ratios)
    PYTHONPATH=src python bench/wan_speed.py --device cpu --models tiny   # seconds: the test's smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from yingxi.models.attention import resolve_attention  # noqa: E402
from yingxi.models.compile import compile_blocks  # noqa: E402
from yingxi.models.loading import load_module  # noqa: E402
from yingxi.models.wan.config import TEXT_LEN, WanDiTConfig, get_variant  # noqa: E402
from yingxi.models.wan.dit import KEEP_FP32, WanDiT  # noqa: E402
from yingxi.models.wan.vae import WAN21_VAE, WAN22_VAE, WanVAE, WanVAEConfig  # noqa: E402
from yingxi.pipelines.runtime import Runtime  # noqa: E402
from yingxi.pipelines.wan.cache import DEFAULT_THRESHOLDS, CacheSpec, StepCache, use_cache  # noqa: E402
from yingxi.pipelines.wan.cache_tables import table_key  # noqa: E402


@dataclass(frozen=True)
class Model:
    name: str
    dit: WanDiTConfig
    vae: WanVAEConfig
    variant: str  # the registered variant it samples like
    frames: int = 81
    size: tuple[int, int] = (832, 480)  # (width, height)

    @property
    def latent(self) -> tuple[int, int, int]:
        """(latent frames, height, width) of the shot."""
        s, t = self.vae.scale_factor_spatial, self.vae.scale_factor_temporal
        return (self.frames - 1) // t + 1, self.size[1] // s, self.size[0] // s

    @property
    def tokens(self) -> int:
        f, h, w = self.latent
        p = self.dit.patch_size
        return (f // p[0]) * (h // p[1]) * (w // p[2])


TINY_VAE = WanVAEConfig(base_dim=8)
MODELS: dict[str, Callable[[], Model]] = {
    "14b": lambda: Model("wan2.1-t2v-14b", get_variant("wan2.1-t2v-14b").dit, WAN21_VAE, "wan2.1-t2v-14b"),
    "5b": lambda: Model("wan2.2-ti2v-5b", get_variant("wan2.2-ti2v-5b").dit, WAN22_VAE, "wan2.2-ti2v-5b"),
    # CPU: 8 heads x 64, 4 layers, 720 tokens (192x320 px, 9 frames): a forward in about a second on 2 cores
    "mid": lambda: Model(
        "mid (512 wide, 4 layers)",
        WanDiTConfig(num_attention_heads=8, attention_head_dim=64, ffn_dim=1536, num_layers=4),
        dataclasses.replace(WAN21_VAE, base_dim=32),
        "wan2.1-t2v-1.3b",
        frames=9,
        size=(320, 192),
    ),  # fmt: skip
    "tiny": lambda: Model(
        "tiny",
        WanDiTConfig(
            num_attention_heads=2, attention_head_dim=16, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2
        ),
        TINY_VAE,
        "wan2.1-t2v-1.3b",
        frames=5,
        size=(32, 32),
    ),  # fmt: skip
}


def forward_flops(cfg: WanDiTConfig, tokens: int, text: int = TEXT_LEN) -> float:
    """Matmul FLOPs of one forward of batch 1 (the formula in the module docstring)."""
    L, T, D, F = tokens, text, cfg.inner_dim, cfg.ffn_dim
    block = 8 * L * D**2 + 4 * L**2 * D + 4 * L * D**2 + 4 * T * D**2 + 4 * L * T * D + 4 * L * D * F
    patch = math.prod(cfg.patch_size)
    return float(cfg.num_layers * block + 2 * L * D * patch * (cfg.in_channels + cfg.out_channels))


# ---- measuring --------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    """(seconds per call after one warm-up, peak GiB allocated during the calls; 0 on the CPU)."""
    with torch.no_grad():
        fn()
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync(device)
    seconds = (time.perf_counter() - start) / repeats
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return seconds, peak


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured TFLOP/s of a large square matmul in `dtype` (8192^3 on a GPU, 1024^3 on the CPU)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 20 if device.type == "cuda" else 3
    seconds, _ = timed(lambda: [a @ b for _ in range(reps)], device, 2)
    return 2 * n**3 * reps / seconds / 1e12


# ---- building (random weights, on the device) ---------------------------------------------------------------
def build_reference(cfg: WanDiTConfig, device: torch.device, dtype: torch.dtype):
    """diffusers' transformer with random weights made on `device` in `dtype` (float32 where it keeps it)."""
    from diffusers import WanTransformer3DModel

    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # no full-width copy of 14B parameters on the way
    try:
        with torch.device(device):
            ref = WanTransformer3DModel(**cfg.to_diffusers()).eval()
    finally:
        torch.set_default_dtype(before)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if any(s in KEEP_FP32 for s in name.split(".")):
                p.data = p.data.float()
    return ref


def fp8_copy(ours: WanDiT, device: torch.device, dtype: torch.dtype) -> WanDiT:
    """Ours with the block Linears in fp8 e4m3fn (per output row), as `load_transformer(weights="fp8")`
    casts each tensor it reads; the other tensors are shared with `ours`."""
    from yingxi.models.wan.loading import _weights_cast

    cast = _weights_cast("fp8", dtype, device)
    state = {k: cast(k, v) for k, v in ours.state_dict().items()}
    return load_module(WanDiT, ours.config, state, dtype=dtype, device=device, keep_fp32=KEEP_FP32)


def sage_attention() -> Callable | None:
    """SageAttention 2 (8-bit QK) behind our (B, H, L, D) signature, where the package is installed."""
    if importlib.util.find_spec("sageattention") is None:
        return None
    return resolve_attention("sage", torch.device("cuda"), torch.bfloat16)  # the kernel registry's


# ---- the runs -----------------------------------------------------------------------------------------------
def run_model(spec: Model, args, device: torch.device, dtype: torch.dtype, peak: float, rows: list) -> None:
    cfg, tokens = spec.dit, spec.tokens
    flops = forward_flops(cfg, tokens)
    f, h, w = spec.latent
    print(f"\n## {spec.name}: {spec.size[0]}x{spec.size[1]}x{spec.frames} -> latents {cfg.in_channels}x{f}x{h}x{w}, "
          f"{tokens} tokens, {flops:.3e} FLOP per forward, {dtype}, {device.type}", flush=True)  # fmt: skip
    torch.manual_seed(0)
    g = torch.Generator(device).manual_seed(1)
    x = torch.randn(1, cfg.in_channels, f, h, w, generator=g, device=device).to(dtype)
    text = torch.randn(1, TEXT_LEN, cfg.text_dim, generator=g, device=device).to(dtype)
    t = torch.tensor([500.0], device=device)
    ref = build_reference(cfg, device, dtype)
    base, ref_peak = timed(lambda: ref(x, t, text, return_dict=False)[0], device, args.repeats)

    def row(run: str, seconds: float, mem: float, evals: int = 1) -> None:
        achieved = flops * evals / seconds / 1e12
        rows.append((spec.name, run, seconds, mem, achieved, achieved / peak, base * evals / seconds))
        print(f"| {spec.name} | {run} | {seconds:.3f} | {mem:.2f} | {achieved:.3g} | {achieved / peak:.0%} | "
              f"{base * evals / seconds:.2f}x |", flush=True)  # fmt: skip

    print("| model | run | s per call | peak GiB | TFLOP/s | of matmul peak | vs diffusers |")
    print("|---|---|---|---|---|---|---|")
    row("diffusers eager (reference)", base, ref_peak)
    ours = load_module(WanDiT, cfg, ref.state_dict(), dtype=dtype, device=device, keep_fp32=KEEP_FP32)
    ref = None  # ours holds the same tensors; the peaks below are ours alone
    gc.collect()
    row("ours eager", *timed(lambda: ours(x, t, text), device, args.repeats))
    x2, t2, text2 = torch.cat([x, x]), t.expand(2), torch.cat([text, text])
    row(
        "ours, batched guidance (2 evaluations)",
        *timed(lambda: ours(x2, t2, text2), device, args.repeats),
        evals=2,
    )
    sage = sage_attention() if device.type == "cuda" else None
    if sage is not None:
        ours.set_attention(self_attention=sage, cross_attention=sage)
        row("ours + SageAttention", *timed(lambda: ours(x, t, text), device, args.repeats))
        ours.set_attention(self_attention=_default_attention(), cross_attention=_default_attention())
    if not args.skip_fp8:
        quantized = fp8_copy(ours, device, dtype)
        n = sum(type(m).__name__ == "QuantLinear" for m in quantized.modules())
        print(
            f"fp8: {n} block Linears in float8_e4m3fn (per output row), the rest shared with ours", flush=True
        )
        row("ours + fp8 weights", *timed(lambda: quantized(x, t, text), device, args.repeats))
        quantized = None
        gc.collect()
    if spec.name in args.cache_models or args.cache_models == "all":
        caches(spec, ours, x, text, args, device)
    if not args.skip_e2e:
        end_to_end(spec, ours, device, dtype)
    if not args.skip_compile:
        started = time.perf_counter()
        compile_blocks(ours, args.compile_mode)
        with torch.no_grad():
            ours(x, t, text)  # the call that compiles
        sync(device)
        print(
            f"compile ({args.compile_mode}): {time.perf_counter() - started:.1f} s including its first call"
        )
        row(f"ours + compile ({args.compile_mode})", *timed(lambda: ours(x, t, text), device, args.repeats))
    ours = None
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _default_attention():
    from yingxi.models.wan.attention import attention

    return attention


def guided_shot(model, x0, cond, uncond, steps: int, cache: StepCache | None) -> float:
    """Seconds of an Euler flow shot of `steps` guided steps (scale 5, shift 5), cond + uncond batched."""
    s = torch.linspace(1, 0, steps + 1)
    sigmas = 5.0 * s / (1 + 4.0 * s)
    x = x0.clone()
    both = torch.cat([cond, uncond])
    sync(x.device)
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(steps):
            t = (sigmas[i] * 1000).reshape(1).to(x.device).expand(2)
            with use_cache(model, cache, "cfg"):
                vc, vu = model(torch.cat([x, x]), t, both).float().chunk(2)
            x = x + (sigmas[i + 1] - sigmas[i]).item() * (vu + 5.0 * (vc - vu)).to(x.dtype)
    sync(x.device)
    return time.perf_counter() - started


def caches(spec: Model, ours, x, text, args, device: torch.device) -> None:
    """Each step cache on one guided, batched shot of `--cache-steps`: evaluations run / skipped, s/step."""
    steps = args.cache_steps
    uncond = text.clone()
    uncond[:, 16:] = 0  # a short negative prompt, zero-padded as the text encoder returns it
    table = table_key(spec.dit.inner_dim, spec.dit.in_channels, spec.tokens)
    print(f"\n{spec.name}: step caches on a {steps}-step guided shot (batched guidance; tables of {table})")
    print("| model | cache | evaluations run | skipped | saved | s per step | vs uncached |")
    print("|---|---|---|---|---|---|---|")
    guided_shot(ours, x, text, uncond, 1, None)  # warm-up
    base = guided_shot(ours, x, text, uncond, steps, None) / steps
    print(f"| {spec.name} | none | {2 * steps} | 0 | 0% | {base:.3f} | 1.00x |", flush=True)
    for name, threshold in DEFAULT_THRESHOLDS.items():
        cache = StepCache(CacheSpec(name, threshold), steps, table=table)
        per = guided_shot(ours, x, text, uncond, steps, cache) / steps
        saved = cache.skipped / (cache.ran + cache.skipped)
        print(f"| {spec.name} | {name}:{threshold:g} | {cache.ran} | {cache.skipped} | {saved:.0%} | {per:.3f} | "
              f"{base / per:.2f}x |", flush=True)  # fmt: skip


def end_to_end(spec: Model, ours, device: torch.device, dtype: torch.dtype) -> None:
    """A 4-step unguided shot (as a distilled preset samples) through WanPipeline: transformer + VAE decode."""
    from yingxi.pipelines.wan import WanComponents, WanPipeline

    torch.manual_seed(2)
    with torch.device(device):
        vae = WanVAE(spec.vae).eval()  # random weights, float32 as Wan decodes
    pipe = WanPipeline(WanComponents(variant=get_variant(spec.variant), transformer=ours, vae=vae),
                       runtime=Runtime(device=str(device), sampler="euler"))  # fmt: skip
    embeds = torch.randn(1, TEXT_LEN, spec.dit.text_dim, device=device, dtype=dtype)
    w, h = spec.size
    call = dict(prompt_embeds=embeds, width=w, height=h, num_frames=spec.frames, num_inference_steps=4,
                guidance_scale=1.0, seed=0)  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    started = time.perf_counter()
    frames = pipe(**call)
    sync(device)
    total = time.perf_counter() - started
    latents = torch.randn(1, spec.vae.z_dim, *spec.latent, device=device)
    sync(device)
    started = time.perf_counter()
    with torch.no_grad():
        vae.decode(latents)  # once more, alone (warm: the shot just decoded)
    sync(device)
    decode = time.perf_counter() - started
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    print(f"\n{spec.name}: 4-step shot {w}x{h}x{spec.frames} end to end (WanPipeline, frames {tuple(frames.shape)}): "
          f"{total:.2f} s, of which VAE decode ~{decode:.2f} s; peak {mem:.2f} GiB", flush=True)  # fmt: skip
    pipe = vae = None  # noqa: F841 (freed before the next model)


def main(argv: list[str] | None = None) -> list:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--models", help=f"comma-separated: {', '.join(MODELS)} (default: 14b,5b on GPU, mid on CPU)"
    )
    p.add_argument("--dtype", help="bf16 on GPU (default), fp32 on CPU (default: CPU bf16 matmuls are slow)")
    p.add_argument("--repeats", type=int, default=2, help="timed calls after one warm-up")
    p.add_argument("--cache-steps", type=int, default=20, help="steps of the step-cache shot")
    p.add_argument(
        "--cache-models", default=None, help="models whose caches run (default: 5b on GPU, all on CPU)"
    )
    p.add_argument("--compile-mode", help="torch.compile mode (default: max-autotune-no-cudagraphs on GPU, "
                   "default on CPU)")  # fmt: skip
    p.add_argument("--skip-fp8", action="store_true")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--skip-compile", action="store_true")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.compile_mode = args.compile_mode or ("max-autotune-no-cudagraphs" if gpu else "default")
    names = (args.models or ("14b,5b" if gpu else "mid")).split(",")
    specs = [MODELS[n.strip()]() for n in names]
    if args.cache_models is None:
        args.cache_models = ",".join(s.name for s in specs if not gpu or "5b" in s.name)
    else:
        args.cache_models = ",".join(
            MODELS[n]().name if n in MODELS else n for n in args.cache_models.split(",")
        )
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
        args.dtype or ("bf16" if gpu else "fp32")
    ]
    card = torch.cuda.get_device_name(device) if gpu else f"cpu, {torch.get_num_threads()} threads"
    peak = matmul_peak(device, dtype)
    print(
        f"# wan_speed: {card}, torch {torch.__version__}, {dtype}; measured {dtype} matmul peak {peak:.3g} TFLOP/s"
    )
    rows: list = []
    started = time.perf_counter()
    for spec in specs:
        run_model(spec, args, device, dtype, peak, rows)
    print(f"\ntotal: {time.perf_counter() - started:.0f} s")
    return rows


if __name__ == "__main__":
    main()
