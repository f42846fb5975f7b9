"""GGUF storage formats for the Wan transformer: bytes of full-size models, and forward time on a mid-size
CPU-runnable model relative to the plain bf16/fp32 model in the same run.

    python bench/wan_gguf.py                          # both tables
    python bench/wan_gguf.py --sizes-only             # full-size bytes only (meta device, instant)
    python bench/wan_gguf.py --dim 256 --layers 2     # a smaller forward (slow or busy machines)
    python bench/wan_gguf.py --device cuda --compute bf16,fp32 --dim 1536 --tokens 8192   # on a GPU

Bytes: parameter+buffer bytes a model holds loaded from a city96-style GGUF file of one type
(`yingxi.models.gguf.quantized_model_bytes` on a meta-device build: block Linears in the type, the rest in
bf16, float32 where Wan keeps it). Forward: the same random fp32 weights held plain (fp32, bf16) or as GGUF
blocks in `QuantLinear`s, which dequantize each layer in its forward; one forward of `--tokens` tokens, the
best of `--repeats` rounds after a warm-up round (a round runs every model once, so load drift hits all
alike), single-threaded unless `--threads`, in each `--compute` dtype (fp32 by default: CPUs without bf16
matmul units run bf16 several times slower, which measures the CPU, not the format). Q8_0/Q5_0/Q4_0 (and
Q5_1/Q4_1) weights are quantized by the gguf package, so their error against fp32 is shown; gguf-py cannot
encode the K-quants, so those hold random valid blocks of the same size (their time is meaningful, their
error is not).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from yingxi.models.gguf import QUANT_TYPES, quantized_model_bytes
from yingxi.models.loading import load_module
from yingxi.models.quant import QuantizedTensor, QuantLinear
from yingxi.models.wan.config import VARIANTS, WanDiTConfig
from yingxi.models.wan.dit import KEEP_FP32, WanDiT

FORMATS = ("Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q4_K", "Q4_0", "Q3_K")
SIZE_VARIANTS = ("wan2.1-t2v-14b", "wan2.2-ti2v-5b", "wan2.1-t2v-1.3b")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
K_SCALES = {"Q6_K": (208,), "Q5_K": (0, 2), "Q4_K": (0, 2), "Q3_K": (108,), "Q2_K": (80, 82)}


def sizes_table(formats: tuple[str, ...]) -> None:
    print("Full-size transformers, parameter+buffer bytes (GiB; % of bf16), meta-device builds:")
    print(f"{'variant':<18} {'params':>8} {'bf16':>8} " + " ".join(f"{q:>13}" for q in formats))
    for name in SIZE_VARIANTS:
        config = VARIANTS[name].dit
        with torch.device("meta"):
            model = WanDiT(config)
        bf16 = quantized_model_bytes(model, None, dtype=torch.bfloat16, keep_fp32=KEEP_FP32)
        cells = []
        for q in formats:
            n = quantized_model_bytes(model, q, dtype=torch.bfloat16, keep_fp32=KEEP_FP32)
            cells.append(f"{n / 2**30:6.2f} ({100 * n / bf16:4.1f}%)")
        params = sum(p.numel() for p in model.parameters()) / 1e9
        print(f"{name:<18} {params:7.2f}B {bf16 / 2**30:8.2f} " + " ".join(f"{c:>13}" for c in cells))


def _blocks(qtype: str, w: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, bool]:
    """(stored bytes of `w` in `qtype`, whether they encode `w`): gguf's quantizer, or random K-quant blocks."""
    import gguf

    try:
        return torch.from_numpy(gguf.quants.quantize(w.numpy(), gguf.GGMLQuantizationType[qtype])), True
    except NotImplementedError:
        block, size = QUANT_TYPES[qtype]
        data = rng.integers(0, 256, (w.numel() // block, size), dtype=np.uint8)
        for at in K_SCALES[qtype]:
            data[:, at : at + 2] = np.full((len(data), 1), 2e-4, np.float16).view(np.uint8)
        return torch.from_numpy(data.reshape(w.shape[0], -1)), False


def quantized_state(model: WanDiT, qtype: str) -> tuple[dict, bool]:
    """The model's weights with every block-aligned Linear weight (> 1024 values) stored as `qtype`."""
    rng = np.random.default_rng(0)
    block = QUANT_TYPES[qtype][0]
    state: dict = dict(model.state_dict())
    encodes = True
    for name, mod in model.named_modules():
        key = f"{name}.weight"
        if not isinstance(mod, nn.Linear) or any(p in KEEP_FP32 for p in key.split(".")):
            continue
        if mod.weight.numel() > 1024 and mod.in_features % block == 0:
            data, exact = _blocks(qtype, mod.weight.detach().float(), rng)
            state[key] = QuantizedTensor(qtype, data, tuple(mod.weight.shape))
            encodes = encodes and exact
    return state, encodes


def model_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def one_forward(model: nn.Module, args: tuple) -> tuple[torch.Tensor, float]:
    device = args[0].device
    with torch.no_grad():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = model(*args)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def forward_table(opts: argparse.Namespace, formats: tuple[str, ...]) -> None:
    heads = opts.dim // 128
    config = WanDiTConfig(
        num_attention_heads=heads,
        attention_head_dim=128,
        text_dim=opts.dim,
        freq_dim=256,
        ffn_dim=4 * opts.dim,
        num_layers=opts.layers,
    )
    torch.manual_seed(0)
    base = WanDiT(config).eval()
    with torch.no_grad():
        for p in base.parameters():
            p.normal_(0, 0.02) if p.dim() > 1 else p.normal_(1.0, 0.05)
    side = int(round((opts.tokens / 2) ** 0.5)) * 2  # latent (1, 16, 2, side, side): 2 * (side/2)^2 tokens
    g = torch.Generator().manual_seed(1)
    dev = torch.device(opts.device)
    x = torch.randn(1, 16, 2, side, side, generator=g).to(dev)
    text = torch.randn(1, 64, config.text_dim, generator=g).to(dev)
    t = torch.tensor([500.0], device=dev)
    tokens = 2 * (side // 2) ** 2
    print(
        f"\nForward on {opts.device} ({torch.get_num_threads()} CPU thread(s)): dim {opts.dim}, {heads} heads, ffn "
        f"{4 * opts.dim}, {opts.layers} layers, {tokens} tokens + 64 text tokens; best of {opts.repeats} rounds"
    )
    print(
        "(MiB: parameter+buffer bytes; % bf16: of the plain bf16 model's; x plain: time / the plain model's in"
    )
    print(
        " the same compute dtype; rel err: ||out - out_fp32|| / ||out_fp32||, nan where the blocks are random)"
    )
    print(f"{'format':<7} {'compute':<8} {'MiB':>7} {'% bf16':>7} {'ms':>8} {'x plain':>8} {'rel err':>9}")
    computes = [c.strip() for c in opts.compute.split(",")]
    with torch.device("meta"):
        bf16_bytes = quantized_model_bytes(WanDiT(config), None, dtype=torch.bfloat16, keep_fp32=KEEP_FP32)
    # rows: (format, compute, model, whether its weights encode the fp32 ones)
    rows = []
    for compute in computes:
        model = load_module(WanDiT, config, base.state_dict(), dtype=DTYPES[compute], keep_fp32=KEEP_FP32)
        rows.append((compute, compute, model.to(dev), True))
    for q in formats:
        state, encodes = quantized_state(base, q)
        for compute in computes:
            model = load_module(WanDiT, config, state, dtype=DTYPES[compute], keep_fp32=KEEP_FP32, device=dev)
            assert any(isinstance(m, QuantLinear) for m in model.modules())
            rows.append((q, compute, model, encodes))
    ref = load_module(WanDiT, config, base.state_dict(), dtype=torch.float32, keep_fp32=KEEP_FP32, device=dev)
    with torch.no_grad():
        ref_out = ref(x, t, text).float()
    del ref
    # Round-robin: each round times every model once, so a busy machine slows all of them alike.
    best = [float("inf")] * len(rows)
    outs: list[torch.Tensor | None] = [None] * len(rows)
    for _ in range(opts.repeats + 1):  # the first round warms up
        for i, (_, compute, model, _) in enumerate(rows):
            dtype = DTYPES[compute]
            out, sec = one_forward(model, (x.to(dtype), t, text.to(dtype)))
            best[i] = min(best[i], sec) if outs[i] is not None else float("inf")
            outs[i] = out
    plain = {compute: best[i] for i, (name, compute, _, _) in enumerate(rows) if name == compute}
    for i, (name, compute, model, encodes) in enumerate(rows):
        err = ((outs[i].float() - ref_out).norm() / ref_out.norm()).item() if encodes else float("nan")
        nbytes = model_bytes(model)
        print(
            f"{name:<7} {compute:<8} {nbytes / 2**20:7.1f} {100 * nbytes / bf16_bytes:6.1f}% "
            f"{1e3 * best[i]:8.1f} {best[i] / plain[compute]:8.2f} {err:9.2e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-only", action="store_true", help="only the full-size bytes table")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated GGUF types")
    parser.add_argument("--dim", type=int, default=512, help="mid-size model width (a multiple of 256)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=512, help="video tokens per forward")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compute", default="fp32", help="comma-separated compute dtypes: fp32, bf16, fp16")
    opts = parser.parse_args()
    formats = tuple(f.strip() for f in opts.formats.split(",") if f.strip())
    unknown = [f for f in formats if f not in QUANT_TYPES]
    if unknown:
        parser.error(f"unknown GGUF types {unknown}; known: {', '.join(QUANT_TYPES)}")
    bad = [c for c in opts.compute.split(",") if c.strip() not in DTYPES]
    if bad:
        parser.error(f"unknown compute dtypes {bad}; known: {', '.join(DTYPES)}")
    if opts.dim % 256:
        parser.error("--dim must be a multiple of 256 (K-quant rows hold whole 256-value blocks)")
    torch.set_num_threads(opts.threads)
    sizes_table(formats)
    if not opts.sizes_only:
        forward_table(opts, formats)


if __name__ == "__main__":
    main()
