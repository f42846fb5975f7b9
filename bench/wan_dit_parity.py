"""Our WanDiT vs diffusers' WanTransformer3DModel: output error, peak memory and step time.

Full size (GPU): a random-weight wan2.1-t2v-1.3b transformer in bf16 on 480p x 81-frame latents
(1 x 16 x 21 x 60 x 104, 32,760 tokens):

    python bench/wan_dit_parity.py                 # cuda, bf16
    python bench/wan_dit_parity.py --tiny --device cpu --dtype fp32   # smoke test on CPU

Then `--steps` UniPC steps (default 4) of the whole sampling loop on the device, ours against diffusers'
scheduler, each model driving itself from the same noise; `--blocks` also runs ours with offload="blocks"
(a 14B model on a 24 GB card), for its step time and peak device memory.

Both models share one set of weights (fp32 where the reference keeps fp32, `--dtype` elsewhere).
"""

from __future__ import annotations

import argparse
import time

import torch

from yingxi.models.loading import load_module, parse_dtype
from yingxi.models.wan.attention import set_attention_backend
from yingxi.models.wan.config import WanDiTConfig, get_variant
from yingxi.models.wan.dit import KEEP_FP32, WanDiT

TINY = WanDiTConfig(
    num_attention_heads=2, attention_head_dim=16, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device: torch.device, repeats: int) -> tuple[torch.Tensor, float, float]:
    """(output, mean seconds per call after one warm-up, peak GiB allocated during the calls; 0 on CPU)."""
    with torch.no_grad():
        out = fn()  # warm-up (kernel selection, allocator)
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(repeats):
            out = fn()
        _sync(device)
        seconds = (time.perf_counter() - start) / repeats
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return out, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="tiny config and latents (runs on CPU in seconds)"
    )
    parser.add_argument("--variant", default="wan2.1-t2v-1.3b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--attention", default="sdpa", help="our attention backend: sdpa or flash")
    parser.add_argument("--latent", default="21x60x104", help="latent frames x height x width")
    parser.add_argument(
        "--blocks", action="store_true", help="also time ours with offload='blocks' (streamed weights)"
    )
    parser.add_argument(
        "--steps", type=int, default=4, help="UniPC steps of the sampling-loop comparison (0: skip it)"
    )
    args = parser.parse_args()

    from diffusers import WanTransformer3DModel

    device, dtype = torch.device(args.device), parse_dtype(args.dtype)
    cfg = TINY if args.tiny else get_variant(args.variant).dit
    frames, height, width = (3, 8, 12) if args.tiny else (int(n) for n in args.latent.split("x"))
    set_attention_backend(args.attention)

    torch.manual_seed(0)
    with torch.device(device):
        ref = WanTransformer3DModel(**cfg.to_diffusers()).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.data = p.data.to(torch.float32 if any(s in KEEP_FP32 for s in name.split(".")) else dtype)
    ours = load_module(WanDiT, cfg, ref.state_dict(), dtype=dtype, device=device, keep_fp32=KEEP_FP32)

    g = torch.Generator(device).manual_seed(1)
    x = torch.randn(1, cfg.in_channels, frames, height, width, generator=g, device=device).to(dtype)
    text = torch.randn(1, 512, cfg.text_dim, generator=g, device=device).to(dtype)
    t = torch.tensor([500.0], device=device)

    want, ref_s, ref_peak = measure(lambda: ref(x, t, text, return_dict=False)[0], device, args.repeats)
    got, our_s, our_peak = measure(lambda: ours(x, t, text), device, args.repeats)

    diff = (got.float() - want.float()).flatten()
    rel = (diff.norm() / want.float().flatten().norm()).item()
    tokens = frames * height * width // (cfg.patch_size[1] * cfg.patch_size[2])
    name = "tiny" if args.tiny else args.variant
    print(
        f"{name}: latents 1x{cfg.in_channels}x{frames}x{height}x{width} ({tokens} tokens), {dtype}, {device}"
    )
    print("| impl | step time (ms) | peak memory (GiB) |")
    print("|---|---|---|")
    print(f"| ours | {our_s * 1e3:.1f} | {our_peak:.2f} |")
    print(f"| diffusers | {ref_s * 1e3:.1f} | {ref_peak:.2f} |")
    print(f"relative error: {rel:.3e} (max abs {diff.abs().max().item():.3e})")
    if args.steps:
        sampling_loop(ours, ref, text, (frames, height, width), args.steps, device, dtype)
    if args.blocks:
        ref.to("cpu")  # out of the way: the peak below is ours alone (plus the inputs)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        blocks_offload(ours, got, (x, t, text), device, args.repeats)


def blocks_offload(ours, resident_out, inputs, device: torch.device, repeats: int) -> None:
    """The same DiT with offload "blocks" (weights in pinned host memory, one block on the device at a
    time): step time, peak device memory and the output against the resident run's (should be equal)."""
    from yingxi.pipelines.offload import Placement
    from yingxi.pipelines.wan.common import WAN_OFFLOAD_ORDER, WAN_STREAMED

    placement = Placement(
        {"transformer": ours},
        device,
        order=WAN_OFFLOAD_ORDER,
        streamed=WAN_STREAMED,
        offload="blocks",
        force=device.type == "cpu",
    )
    with placement.use("transformer") as model:
        got, seconds, peak = measure(lambda: model(*inputs), device, repeats)
    placement.release()
    same = torch.equal(got, resident_out)
    print(f"| ours, offload blocks | {seconds * 1e3:.1f} | {peak:.2f} | output equal to resident: {same}")


def sampling_loop(ours, ref, text, grid, steps: int, device: torch.device, dtype: torch.dtype) -> None:
    """Our UniPC driving our DiT vs diffusers' UniPCMultistepScheduler driving theirs, from the same noise
    on `device` (the schedule handed over on the device too, as the pipeline once did: the GPU path)."""
    from diffusers import UniPCMultistepScheduler

    from yingxi.samplers import flow_schedule, sample_unipc

    shift = 5.0
    schedule = flow_schedule(steps, shift)
    g = torch.Generator(device).manual_seed(2)
    noise = torch.randn(1, ours.config.in_channels, *grid, generator=g, device=device)  # float32

    def denoise(x, sigma):
        t = schedule.timestep(sigma).to(device).float().reshape(1)
        return ours(x.to(dtype), t, text)

    def theirs():
        sched = UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift
        )
        sched.set_timesteps(steps, device=device)
        x = noise
        for t in sched.timesteps:
            v = ref(x.to(dtype), t.float().reshape(1), text, return_dict=False)[0]
            x = sched.step(v, t, x, return_dict=False)[0]
        return x

    got, our_s, _ = measure(lambda: sample_unipc(denoise, noise, schedule.sigmas.to(device)), device, 1)
    want, ref_s, _ = measure(theirs, device, 1)
    diff = (got.float() - want.float()).flatten()
    rel = (diff.norm() / want.float().flatten().norm()).item()
    print(f"UniPC, {steps} steps, shift {shift}: ours {our_s / steps * 1e3:.1f} ms/step, "
          f"diffusers {ref_s / steps * 1e3:.1f} ms/step; final latents relative error {rel:.3e}")  # fmt: skip


if __name__ == "__main__":
    main()
