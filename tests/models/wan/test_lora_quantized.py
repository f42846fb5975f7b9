"""LoRAs on quantized Wan transformers (a city96 GGUF file, `weights="fp8"`): they run as low-rank side paths
beside the stored weights, which stay as they were; the output equals the dequantized model with the LoRA
merged in float32."""

from __future__ import annotations

import pytest
import torch
from gguf_files import original_state, write_wan_gguf
from safetensors.torch import save_file
from test_gguf_loading import inputs, random_model, reference_model, wide_config

from yingxi.models.lora import apply_loras
from yingxi.models.quant import QuantLinear
from yingxi.models.wan.config import WanDiTConfig
from yingxi.models.wan.loading import load_transformer
from yingxi.models.wan.lora import load_lora, set_loras

TOL = 1e-4  # float32 both ways; the side path adds x @ down^T @ up^T where the reference adds (up @ down) x


def lightning_like_lora(path, model, seed: int = 0):
    """Wan-native keys with int64 alpha on every block Linear, plus a head diff (as lightx2v files carry)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    names = {
        "attn1.to_q": "self_attn.q",
        "attn2.to_v": "cross_attn.v",
        "ffn.net.0.proj": "ffn.0",
        "ffn.net.2": "ffn.2",
    }
    for ours, orig in names.items():
        out_f, in_f = model.get_submodule(f"blocks.0.{ours}").weight_as(torch.float32).shape
        sd[f"diffusion_model.blocks.0.{orig}.lora_down.weight"] = 0.05 * torch.randn(8, in_f, generator=g)
        sd[f"diffusion_model.blocks.0.{orig}.lora_up.weight"] = 0.05 * torch.randn(out_f, 8, generator=g)
        sd[f"diffusion_model.blocks.0.{orig}.alpha"] = torch.tensor(16, dtype=torch.int64)
        sd[f"diffusion_model.blocks.0.{orig}.diff_b"] = 0.01 * torch.randn(out_f, generator=g)
    save_file(sd, str(path))
    return path


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lora_gguf") / "wan_t2v_Q8_0.gguf"
    write_wan_gguf(path, original_state(random_model(wide_config("t2v"))), "Q8_0")
    return path


def test_lora_on_a_gguf_model_is_a_side_path_equal_to_the_merged_float_model(gguf_file, tmp_path):
    config = WanDiTConfig.from_diffusers(wide_config("t2v"))
    plain = load_transformer(gguf_file, dtype="fp32")
    path = lightning_like_lora(tmp_path / "l.safetensors", plain)
    ours = load_transformer(gguf_file, dtype="fp32", loras=[(path, 0.8)])
    stored = {n: m.qweight.clone() for n, m in plain.named_modules() if isinstance(m, QuantLinear)}
    for name, module in ours.named_modules():
        if isinstance(module, QuantLinear):
            assert torch.equal(module.qweight, stored[name])  # the Q8_0 blocks as the file holds them
    assert len(ours.blocks[0].attn1.to_q.lora_paths) == 1
    ref = reference_model(gguf_file, config)  # the file's weights dequantized to float32 by `gguf`
    apply_loras(ref, [(load_lora(path, ref), 0.8)])  # fused in float32 (checked against diffusers elsewhere)
    args = inputs(config, False)
    with torch.no_grad():
        got, want, base = ours(*args), ref(*args), plain(*args)
    assert (got - want).abs().max().item() < TOL
    assert (got - base).abs().max().item() > 1e-2  # the LoRA does something
    set_loras(ours, [])
    with torch.no_grad():
        assert torch.equal(ours(*args), base)  # side paths gone: the quantized model as loaded


def test_lora_on_weights_fp8(tmp_path):
    model = random_model(wide_config("t2v"))
    file = tmp_path / "wan_t2v.safetensors"
    save_file({k: torch.from_numpy(v) for k, v in original_state(model).items()}, str(file))
    fp8 = load_transformer(file, dtype="fp32", weights="fp8")
    assert isinstance(fp8.blocks[0].attn1.to_q, QuantLinear)
    path = lightning_like_lora(tmp_path / "l.safetensors", fp8, seed=3)
    set_loras(fp8, [(path, 1.0)])
    ref = load_transformer(file, dtype="fp32")  # the same weights, fp8-rounded below, LoRA fused
    state = {n: m.weight_as(torch.float32) for n, m in fp8.named_modules() if isinstance(m, QuantLinear)}
    with torch.no_grad():
        for name, w in state.items():
            ref.get_submodule(name).weight.copy_(w)
    apply_loras(ref, [(load_lora(path, ref), 1.0)])
    config = WanDiTConfig.from_diffusers(wide_config("t2v"))
    args = inputs(config, False)
    with torch.no_grad():
        assert (fp8(*args) - ref(*args)).abs().max().item() < TOL
