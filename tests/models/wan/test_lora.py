"""Wan LoRAs in every published key format against diffusers' loaders and the float32-merged weights."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tiny import TEXT_DIM, save_tiny_wan

from yingxi.errors import InputError
from yingxi.models.lora import parse_lora_spec
from yingxi.models.quant import QuantizedTensor, QuantLinear
from yingxi.models.wan.loading import load_transformer
from yingxi.models.wan.lora import DIFFUSERS_TO_ORIGINAL, load_lora, set_loras, wan_lora_names

PARITY_TOL = 2e-5  # fp32 vs diffusers/PEFT: the same update, summed in another order (observed ~1e-6)
MERGED_TOL = 1e-6  # fp32 fused weights vs W + s * alpha/r * up @ down computed here (observed 0)
RANK, ALPHA = 4, 8  # alpha / rank = 2: an ignored alpha shows as a 2x update

B, F, H, W = 1, 2, 8, 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return save_tiny_wan(tmp_path_factory.mktemp("lora_wan") / "t2v", "t2v")


# (our name, Wan's original name) of the layers the test LoRAs adapt
LAYERS = [
    (f"blocks.{i}.{ours}", f"blocks.{i}.{orig}")
    for i in range(2)
    for ours, orig in [
        ("attn1.to_q", "self_attn.q"), ("attn1.to_k", "self_attn.k"), ("attn1.to_v", "self_attn.v"),
        ("attn1.to_out.0", "self_attn.o"), ("attn2.to_q", "cross_attn.q"), ("attn2.to_k", "cross_attn.k"),
        ("attn2.to_v", "cross_attn.v"), ("attn2.to_out.0", "cross_attn.o"), ("ffn.net.0.proj", "ffn.0"),
        ("ffn.net.2", "ffn.2"),
    ]
]  # fmt: skip


def random_pairs(model, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    pairs = {}
    for ours, _ in LAYERS:
        w = model.get_submodule(ours).weight
        out_f, in_f = w.shape
        pairs[ours] = (
            0.1 * torch.randn(RANK, in_f, generator=g),
            0.1 * torch.randn(out_f, RANK, generator=g),
        )
    return pairs


def write_lora(path: Path, pairs, fmt: str, *, diff_b: dict | None = None) -> Path:
    """A LoRA file as each trainer writes it; alpha stored as int64 (the Lightning files' dtype)."""
    names = dict(LAYERS)
    sd = {}
    for ours, (down, up) in pairs.items():
        orig = names[ours]
        alpha = torch.tensor(ALPHA, dtype=torch.int64)
        if fmt == "wan":
            base, d, u = f"diffusion_model.{orig}", "lora_down", "lora_up"
        elif fmt == "wan-AB":
            base, d, u = f"diffusion_model.{orig}", "lora_A", "lora_B"
        elif fmt == "kohya":
            base, d, u = "lora_unet_" + orig.replace(".", "_"), "lora_down", "lora_up"
        elif fmt == "diffusers":  # PEFT files carry no alpha: the scale is in the weights
            base, d, u = f"transformer.{ours}", "lora_A", "lora_B"
            down, alpha = down * (ALPHA / RANK), None
        sd[f"{base}.{d}.weight"] = down.contiguous()
        sd[f"{base}.{u}.weight"] = up.contiguous()
        if alpha is not None:
            sd[f"{base}.alpha"] = alpha
        if diff_b and ours in diff_b:
            key = f"{base}.lora_B.bias" if fmt == "diffusers" else f"{base}.diff_b"
            sd[key] = diff_b[ours]
    save_file(sd, str(path))
    return path


def forward(model, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 16, F, H, W, generator=g)
    text = torch.randn(B, 512, TEXT_DIM, generator=g)
    t = torch.tensor([700.0])
    with torch.no_grad():
        out = model(x, t, text)
    return out[0] if isinstance(out, tuple) else out


def diffusers_with_lora(folder: Path, path: Path, strength: float, fuse: bool):
    from diffusers import WanPipeline, WanTransformer3DModel

    ref = WanTransformer3DModel.from_pretrained(folder / "transformer").eval()
    sd = WanPipeline.lora_state_dict(str(path))  # diffusers' own format detection and conversion
    sd = sd[0] if isinstance(sd, tuple) else sd
    ref.load_lora_adapter(sd, prefix="transformer", adapter_name="a")
    ref.set_adapters(["a"], weights=[strength])
    if fuse:
        ref.fuse_lora(lora_scale=1.0)
    return ref


def ref_forward(ref, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 16, F, H, W, generator=g)
    text = torch.randn(B, 512, TEXT_DIM, generator=g)
    with torch.no_grad():
        return ref(x, torch.tensor([700.0]), text, return_dict=False)[0]


@pytest.mark.parametrize(
    "fmt,strength,fuse",
    [("wan", 1.0, False), ("wan-AB", 0.7, True), ("kohya", 1.3, False), ("diffusers", 0.5, False)],
)
def test_matches_diffusers_loader(folder, tmp_path, fmt, strength, fuse):
    base = load_transformer(folder / "transformer", dtype="fp32")
    diff_b = None
    if fmt != "kohya":  # musubi files carry no bias differences
        g = torch.Generator().manual_seed(9)
        diff_b = {"blocks.0.attn1.to_q": 0.1 * torch.randn(32, generator=g)}
    path = write_lora(tmp_path / f"{fmt}.safetensors", random_pairs(base), fmt, diff_b=diff_b)
    ours = load_transformer(folder / "transformer", dtype="fp32", loras=[(path, strength)])
    want = ref_forward(diffusers_with_lora(folder, path, strength, fuse))
    got = forward(ours)
    assert (got - want).abs().max().item() < PARITY_TOL
    assert (got - forward(base)).abs().max().item() > 1e-3  # the LoRA changed something


@pytest.mark.parametrize("fmt", ["wan", "kohya", "diffusers"])
def test_fused_weights_equal_float32_merge(folder, tmp_path, fmt):
    base = load_transformer(folder / "transformer", dtype="fp32")
    pairs = random_pairs(base, seed=1)
    path = write_lora(tmp_path / "l.safetensors", pairs, fmt)
    ours = load_transformer(folder / "transformer", dtype="fp32", loras=[(path, 0.8)])
    for name, (down, up) in pairs.items():
        want = base.get_submodule(name).weight + 0.8 * (ALPHA / RANK) * up @ down
        assert (ours.get_submodule(name).weight - want).abs().max().item() < MERGED_TOL, name


def test_set_loras_replace_strength_remove_restore_bf16_exactly(folder, tmp_path):
    model = load_transformer(folder / "transformer", dtype="bf16")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = write_lora(tmp_path / "a.safetensors", random_pairs(model, 1), "wan")
    b = write_lora(tmp_path / "b.safetensors", random_pairs(model, 2), "kohya")
    set_loras(model, [(a, 1.0)])
    changed = model.get_submodule("blocks.0.attn1.to_q").weight.clone()
    assert not torch.equal(changed, before["blocks.0.attn1.to_q.weight"])
    set_loras(model, [(a, 0.5), (b, 1.0)])  # replace and change strength from the base, not on top
    fresh = load_transformer(folder / "transformer", dtype="bf16", loras=[(a, 0.5), (b, 1.0)])
    for k, v in fresh.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    set_loras(model, [])  # remove: the base, bit for bit
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_i2v_keys_on_a_model_without_image_layers_are_skipped_with_one_warning(folder, tmp_path, caplog):
    model = load_transformer(folder / "transformer", dtype="fp32")
    g = torch.Generator().manual_seed(0)
    sd = {
        "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.randn(RANK, 32, generator=g),
        "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.randn(32, RANK, generator=g),
        "diffusion_model.blocks.0.self_attn.q.alpha": torch.tensor(4, dtype=torch.int64),
    }
    for i in range(2):
        for layer in ("k_img", "v_img"):
            sd[f"diffusion_model.blocks.{i}.cross_attn.{layer}.lora_down.weight"] = torch.randn(RANK, 16)
            sd[f"diffusion_model.blocks.{i}.cross_attn.{layer}.lora_up.weight"] = torch.randn(32, RANK)
        sd[f"diffusion_model.blocks.{i}.norm2.diff"] = torch.zeros(32)  # Wan's weightless norm
    save_file(sd, str(tmp_path / "i2v.safetensors"))
    with caplog.at_level(logging.WARNING, logger="yingxi.models.lora"):
        patches = load_lora(tmp_path / "i2v.safetensors", model)
    assert list(patches) == ["blocks.0.attn1.to_q"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 10 LoRA keys" in warnings[0]


def test_unmatched_key_names_it_and_the_closest_module(folder, tmp_path):
    model = load_transformer(folder / "transformer", dtype="fp32")
    sd = {
        "diffusion_model.blocks.0.self_attn.qq.lora_down.weight": torch.randn(RANK, 32),
        "diffusion_model.blocks.0.self_attn.qq.lora_up.weight": torch.randn(32, RANK),
    }
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(InputError) as e:
        load_lora(tmp_path / "bad.safetensors", model)
    assert "blocks.0.self_attn.qq.lora_down.weight" in e.value.message
    assert 'closest module: "blocks.0.self_attn.q' in e.value.message
    assert e.value.file == str(tmp_path / "bad.safetensors")


def test_lightning_style_head_diff_and_modulation(folder, tmp_path):
    """lightx2v files add full differences: head.head.diff (+ diff_b), modulation diffs, zero norm diffs."""
    base = load_transformer(folder / "transformer", dtype="fp32")
    g = torch.Generator().manual_seed(4)
    head = base.proj_out.weight
    sd = {
        "diffusion_model.head.head.diff": 0.1 * torch.randn(head.shape, generator=g),
        "diffusion_model.head.head.diff_b": 0.1 * torch.randn(head.shape[0], generator=g),
        "diffusion_model.blocks.1.modulation.diff": 0.1 * torch.randn(1, 6, 32, generator=g),
        "diffusion_model.blocks.0.norm3.diff": 0.1 * torch.randn(32, generator=g),
    }
    save_file(sd, str(tmp_path / "light.safetensors"))
    ours = load_transformer(
        folder / "transformer", dtype="fp32", loras=[(tmp_path / "light.safetensors", 0.5)]
    )
    torch.testing.assert_close(ours.proj_out.weight, head + 0.5 * sd["diffusion_model.head.head.diff"])
    torch.testing.assert_close(
        ours.proj_out.bias, base.proj_out.bias + 0.5 * sd["diffusion_model.head.head.diff_b"]
    )
    torch.testing.assert_close(
        ours.blocks[1].scale_shift_table,
        base.blocks[1].scale_shift_table + 0.5 * sd["diffusion_model.blocks.1.modulation.diff"],
    )
    torch.testing.assert_close(
        ours.blocks[0].norm2.weight,
        base.blocks[0].norm2.weight + 0.5 * sd["diffusion_model.blocks.0.norm3.diff"],
    )


def test_quantlinear_side_path_equals_dequantized_plus_update(folder, tmp_path):
    """On a quantized layer the LoRA runs beside the stored fp8 weight, which stays as it was."""
    model = load_transformer(folder / "transformer", dtype="fp32")
    pairs = random_pairs(model, seed=5)
    name = "blocks.0.attn1.to_q"
    lin = model.get_submodule(name)
    scale = lin.weight.abs().amax(dim=1, keepdim=True) / 448.0  # (out, 1) per output channel
    q = QuantizedTensor(
        "fp8_e4m3fn", (lin.weight / scale).to(torch.float8_e4m3fn), tuple(lin.weight.shape), scale
    )
    quant = QuantLinear.from_quantized(q, lin.bias.detach().clone())
    parent = model.get_submodule("blocks.0.attn1")
    parent.to_q = quant
    stored = quant.qweight.clone()
    path = write_lora(tmp_path / "q.safetensors", pairs, "wan", diff_b={name: torch.ones(32)})
    set_loras(model, [(path, 0.6)])
    x = torch.randn(5, 32, generator=torch.Generator().manual_seed(8))
    down, up = pairs[name]
    w = q.dequantize(torch.float32) + 0.6 * (ALPHA / RANK) * up @ down
    want = x @ w.T + lin.bias + 0.6
    torch.testing.assert_close(quant(x), want, atol=1e-5, rtol=1e-5)
    assert torch.equal(quant.qweight, stored)  # never re-quantized
    assert not any("lora" in k for k in model.state_dict())  # side paths are not checkpoint keys
    set_loras(model, [])
    torch.testing.assert_close(quant(x), x @ q.dequantize(torch.float32).T + lin.bias)


def test_inverse_names_round_trip_for_every_module():
    """DIFFUSERS_TO_ORIGINAL inverts loading's ORIGINAL_TO_DIFFUSERS on every weight of every tiny kind."""
    import re

    from tiny import KINDS, tiny_dit_config

    from yingxi.models.loading import rename_key
    from yingxi.models.wan.config import WanDiTConfig
    from yingxi.models.wan.dit import WanDiT
    from yingxi.models.wan.loading import ORIGINAL_TO_DIFFUSERS

    for kind in KINDS:
        with torch.device("meta"):
            model = WanDiT(WanDiTConfig.from_diffusers(tiny_dit_config(kind)))
        for key in model.state_dict():
            original = key
            for pattern, repl in DIFFUSERS_TO_ORIGINAL:
                original = re.sub(pattern, repl, original.removesuffix(".weight").removesuffix(".bias"))
            suffix = key[len(key.removesuffix(".weight").removesuffix(".bias")) :]
            assert rename_key(original + suffix, ORIGINAL_TO_DIFFUSERS) == key, (kind, key, original)
        assert wan_lora_names(model, original=True)["blocks_0_self_attn_q"] == "blocks.0.attn1.to_q"


@pytest.mark.parametrize(
    "spec,want",
    [("a.safetensors", ("a.safetensors", 1.0)), ("a.safetensors:0.5", ("a.safetensors", 0.5)),
     ("C:\\x\\a.safetensors", ("C:\\x\\a.safetensors", 1.0)), ("/m/a:b.safetensors:2", ("/m/a:b.safetensors", 2.0))],
)  # fmt: skip
def test_parse_lora_spec(spec, want):
    path, strength = parse_lora_spec(spec)
    assert (str(path), strength) == (str(Path(want[0])), want[1])


def test_bad_lora_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_lora(tmp_path / "none.safetensors", torch.nn.Linear(2, 2))
    with pytest.raises(InputError, match="FILE\\[:STRENGTH\\]"):
        parse_lora_spec("a.safetensors:strong")


def test_a_lora_for_another_model_size_is_an_input_error_naming_the_layer(folder, tmp_path):
    model = load_transformer(folder / "transformer", dtype="fp32")
    sd = {
        "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.randn(RANK, 5120),  # a 14B LoRA
        "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.randn(5120, RANK),
    }
    save_file(sd, str(tmp_path / "big.safetensors"))
    fine = write_lora(tmp_path / "fine.safetensors", random_pairs(model), "wan")
    set_loras(model, [(fine, 1.0)])
    before = model.blocks[0].attn1.to_q.weight.clone()
    with pytest.raises(
        InputError, match=r"blocks.0.attn1.to_q is up \(5120, 4\) x down \(4, 5120\).*another model"
    ):
        set_loras(model, [(tmp_path / "big.safetensors", 1.0)])
    assert torch.equal(model.blocks[0].attn1.to_q.weight, before)  # the LoRAs before stay, none half-applied
