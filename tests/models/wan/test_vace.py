"""Wan VACE transformer: parity with diffusers' `WanVACETransformer3DModel` on tiny random weights (the same
state dict in both), loading from the diffusers and original layouts and single files, detection by keys
and shapes, LoRAs on the context blocks.

Tolerance: float32, 1e-5 absolute (the same maths in the same order; observed 0 on this CPU).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file
from test_loading import DIFFUSERS_TO_ORIGINAL
from tiny_vace import VACE_LAYERS, tiny_vace_config, tiny_vace_transformer

from yingxi.errors import InputError
from yingxi.models.loading import CheckpointError, rename_keys
from yingxi.models.wan.config import VARIANTS, WanDiTConfig
from yingxi.models.wan.detect import detect
from yingxi.models.wan.dit import WanDiT
from yingxi.models.wan.loading import load_transformer, transformer_class
from yingxi.models.wan.lora import set_loras
from yingxi.models.wan.vace import WanVACEDiT

FP32_TOL = 1e-5

# Our (diffusers) names -> Wan's original VaceWanModel names (vace_blocks.N.before_proj / after_proj).
TO_ORIGINAL = DIFFUSERS_TO_ORIGINAL


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ref():
    return tiny_vace_transformer()


@pytest.fixture(scope="module")
def ours(ref):
    model = WanVACEDiT(WanDiTConfig.from_diffusers(dict(ref.config)))
    model.load_state_dict(ref.state_dict(), strict=True)
    return model.eval()


def inputs(frames: int = 3, control_frames: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 16, frames, 4, 6, generator=g)  # (B, C, F, H, W) latents
    control = torch.randn(1, 96, control_frames or frames, 4, 6, generator=g)  # (B, Cv, F', H, W)
    text = torch.randn(1, 512, 32, generator=g)
    return x, torch.tensor([637.0]), text, control


def theirs(ref, x, t, text, control, scale):
    scale = torch.tensor([float(scale)] * len(VACE_LAYERS)) if isinstance(scale, (int, float)) else scale
    with torch.no_grad():
        return ref(hidden_states=x, timestep=t, encoder_hidden_states=text, control_hidden_states=control,
                   control_hidden_states_scale=scale, return_dict=False)[0]  # fmt: skip


@pytest.mark.parametrize("scale", [1.0, 0.4, [0.3, 1.7]])
@pytest.mark.parametrize("control_frames", [None, 2])  # a context shorter than the video: zero-padded tokens
def test_matches_diffusers_with_control_hints_at_a_scale(ref, ours, scale, control_frames):
    x, t, text, control = inputs(control_frames=control_frames)
    with torch.no_grad():
        got = ours(x, t, text, control_hidden_states=control, control_hidden_states_scale=scale)
    want = theirs(ref, x, t, text, control, torch.tensor(scale) if isinstance(scale, list) else scale)
    assert got.shape == want.shape == x.shape
    assert (got - want).abs().max().item() <= FP32_TOL
    assert want.abs().max().item() > 0.1


def test_scale_zero_is_the_base_model_and_hints_matter(ours):
    x, t, text, control = inputs(seed=1)
    base = WanDiT(dataclasses.replace(ours.config, vace_layers=None, vace_in_channels=None))
    base.load_state_dict({k: v for k, v in ours.state_dict().items() if not k.startswith("vace_")})
    with torch.no_grad():
        zero = ours(x, t, text, control_hidden_states=control, control_hidden_states_scale=0.0)
        none = ours(x, t, text)
        one = ours(x, t, text, control_hidden_states=control)
        plain = base.eval()(x, t, text)
    assert (zero - plain).abs().max().item() <= FP32_TOL and torch.equal(none, plain)
    assert (one - plain).abs().max().item() > 1e-3


def test_batched_guidance_and_set_attention_cover_the_context_blocks(ref, ours):
    x, t, text, control = inputs(seed=2)
    with torch.no_grad():
        single = ours(x, t, text, control_hidden_states=control)
        double = ours(
            x.repeat(2, 1, 1, 1, 1), t.repeat(2), text.repeat(2, 1, 1), control_hidden_states=control
        )
    assert (double - single).abs().max().item() <= FP32_TOL
    calls = []

    def counting(q, k, v):
        calls.append(q.shape[2])
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    ours.set_attention(self_attention=counting)
    try:
        with torch.no_grad():
            ours(x, t, text, control_hidden_states=control)
    finally:
        from yingxi.models.wan.attention import attention

        ours.set_attention(self_attention=attention)
    assert len(calls) == ours.config.num_layers + len(VACE_LAYERS)


def test_bad_context_is_an_input_error(ours):
    x, t, text, control = inputs()
    with pytest.raises(InputError, match="96"):
        ours(x, t, text, control_hidden_states=control[:, :90])
    with pytest.raises(InputError, match="one per VACE layer") as err:
        ours(x, t, text, control_hidden_states=control, control_hidden_states_scale=[1.0, 1.0, 1.0])
    assert err.value.field == "conditioning_scale"
    with pytest.raises(InputError, match="more than the video"):
        ours(x, t, text, control_hidden_states=torch.cat([control, control], dim=2))
    with pytest.raises(InputError, match="vace_layers"):
        WanDiTConfig.from_diffusers(tiny_vace_config() | {"vace_layers": [1, 2]})


def test_config_counts_parameters_and_round_trips(ref):
    cfg = WanDiTConfig.from_diffusers(dict(ref.config))
    assert cfg.vace_layers == tuple(VACE_LAYERS) and cfg.vace_in_channels == 96 and cfg.is_vace
    assert cfg.num_params() == sum(p.numel() for p in ref.parameters())
    assert WanDiTConfig.from_diffusers(cfg.to_diffusers()) == cfg
    assert (
        "vace_layers" not in dataclasses.replace(cfg, vace_layers=None, vace_in_channels=None).to_diffusers()
    )
    for name in ("wan2.1-vace-1.3b", "wan2.1-vace-14b"):
        v = VARIANTS[name]
        with torch.device("meta"):
            model = WanVACEDiT(v.dit)
        assert v.dit.num_params() == sum(p.numel() for p in model.parameters())
        assert v.conditionings == ("t2v", "i2v", "flf2v", "references")
    assert len(VARIANTS["wan2.1-vace-1.3b"].dit.vace_layers) == 15
    assert VARIANTS["wan2.1-vace-14b"].dit.vace_layers == (0, 5, 10, 15, 20, 25, 30, 35)


# --- loading -------------------------------------------------------------------------------------------


def _forward(model, seed: int = 4):
    x, t, text, control = inputs(seed=seed)
    with torch.no_grad():
        return model(x, t, text, control_hidden_states=control, control_hidden_states_scale=0.8)


def test_loads_diffusers_original_and_single_file_layouts(ref, tmp_path):
    ref.save_pretrained(tmp_path / "diffusers")
    loaded = load_transformer(tmp_path / "diffusers", dtype="fp32")
    assert isinstance(loaded, WanVACEDiT)
    expected = theirs(ref, *inputs(seed=4), 0.8)
    assert (_forward(loaded) - expected).abs().max().item() <= FP32_TOL

    sd = ref.state_dict()
    original = rename_keys(sd, TO_ORIGINAL)
    assert "vace_blocks.0.before_proj.weight" in original and "vace_blocks.1.after_proj.bias" in original
    assert not any(".attn1." in k or "proj_in" in k for k in original)
    folder = tmp_path / "original"
    folder.mkdir()
    c = tiny_vace_config()
    raw = {"model_type": "vace", "dim": 32, "ffn_dim": c["ffn_dim"], "freq_dim": c["freq_dim"], "num_heads": 2,
           "num_layers": c["num_layers"], "in_dim": 16, "out_dim": 16, "text_dim": 32, "eps": 1e-6,
           "vace_layers": VACE_LAYERS, "vace_in_dim": 96}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(raw))
    save_file(
        {k: v.contiguous() for k, v in original.items()}, str(folder / "diffusion_pytorch_model.safetensors")
    )
    from_original = load_transformer(folder, dtype="fp32")
    assert dataclasses.replace(from_original.config, rope_max_seq_len=32) == loaded.config
    assert (_forward(from_original) - expected).abs().max().item() <= FP32_TOL

    # one ComfyUI-style file without a config: the VACE layers from the context blocks' count
    single = tmp_path / "wan2.1_vace_tiny.safetensors"
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in original.items()}, str(single))
    from yingxi.models.wan.loading import infer_config, to_diffusers_keys

    inferred = infer_config(to_diffusers_keys(original), head_dim=16)  # tiny heads are 16 wide, not 128
    assert dataclasses.replace(inferred, rope_max_seq_len=32) == loaded.config
    bare = load_transformer(single, dtype="fp32", config=inferred)
    assert (_forward(bare) - expected).abs().max().item() <= FP32_TOL


def test_uneven_context_blocks_without_a_config_say_so():
    from yingxi.models.wan.loading import infer_vace

    sd = {
        "vace_patch_embedding.weight": torch.empty(32, 96, 1, 2, 2),
        "vace_blocks.2.proj_out.weight": torch.empty(1),
    }
    with pytest.raises(CheckpointError, match="config.json"):
        infer_vace(sd, num_layers=4)
    assert infer_vace({}, num_layers=4) == {}


def test_fp8_weights_cover_the_context_blocks(ref, tmp_path):
    ref.save_pretrained(tmp_path / "d")
    model = load_transformer(tmp_path / "d", dtype="fp32", weights="fp8")
    from yingxi.models.quant import QuantLinear

    assert isinstance(model.vace_blocks[1].attn1.to_q, QuantLinear)
    assert not isinstance(model.vace_blocks[0].proj_in, QuantLinear)  # projections stay full width
    expected = theirs(ref, *inputs(seed=4), 0.8)
    assert (_forward(model) - expected).abs().max().item() < 0.05 * expected.abs().max().item()


# --- detection -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, file_name",
    [
        ("wan2.1-vace-1.3b", "wan2.1_vace_1.3B_fp16.safetensors"),
        ("wan2.1-vace-14b", "wan2.1_vace_14B_fp16.safetensors"),
        ("wan2.2-vace-fun-a14b", "wan2.2_fun_vace_high_noise_14B_bf16.safetensors"),
    ],
)
def test_vace_variants_are_detected_by_their_keys_and_shapes(name, file_name):
    with torch.device("meta"):
        sd = transformer_class(VARIANTS[name].dit)(VARIANTS[name].dit).state_dict()
    comfy = {f"model.diffusion_model.{k}": t.shape for k, t in rename_keys(sd, TO_ORIGINAL).items()}
    for table in ({k: t.shape for k, t in sd.items()}, comfy):
        found = detect(table, name=file_name)
        assert found.variant is VARIANTS[name]
        assert found.expert == ("high" if "a14b" in name else None)


def test_vace_14b_and_the_fun_a14b_expert_need_a_name_or_a_choice():
    with torch.device("meta"):
        sd = WanVACEDiT(VARIANTS["wan2.1-vace-14b"].dit).state_dict()
    shapes = {k: t.shape for k, t in sd.items()}
    with pytest.raises(InputError, match="wan2.1-vace-14b or wan2.2-vace-fun-a14b"):
        detect(shapes, name="vace.safetensors")
    assert (
        detect(shapes, name="vace.safetensors", variant="wan2.2-vace-fun-a14b").base == "wan2.2-vace-fun-a14b"
    )
    with pytest.raises(InputError, match="not wan2.1-t2v-14b"):
        detect(shapes, name="vace.safetensors", variant="wan2.1-t2v-14b")


# --- LoRA ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wan", "diffusers"])
def test_lora_on_context_blocks_equals_the_merged_weights(ours, tmp_path, fmt):
    g = torch.Generator().manual_seed(5)
    layers = {"vace_blocks.0.proj_in": "vace_blocks.0.before_proj",
              "vace_blocks.1.after_proj": None, "vace_blocks.1.attn1.to_q": "vace_blocks.1.self_attn.q",
              "blocks.0.ffn.net.2": "blocks.0.ffn.2"}  # fmt: skip
    layers["vace_blocks.1.proj_out"] = layers.pop("vace_blocks.1.after_proj") or "vace_blocks.1.after_proj"
    sd, merged = {}, {k: v.clone() for k, v in ours.state_dict().items()}
    for mine, orig in layers.items():
        out_f, in_f = ours.get_submodule(mine).weight.shape
        down, up = 0.1 * torch.randn(2, in_f, generator=g), 0.1 * torch.randn(out_f, 2, generator=g)
        base = f"diffusion_model.{orig}" if fmt == "wan" else f"transformer.{mine}"
        sd |= {f"{base}.lora_A.weight": down, f"{base}.lora_B.weight": up}
        merged[f"{mine}.weight"] += 0.5 * up @ down
    save_file(sd, str(tmp_path / "vace_lora.safetensors"))
    model = WanVACEDiT(ours.config)
    model.load_state_dict(ours.state_dict())
    model.eval()
    set_loras(model, [(tmp_path / "vace_lora.safetensors", 0.5)])
    want = WanVACEDiT(ours.config)
    want.load_state_dict(merged)
    assert (_forward(model) - _forward(want.eval())).abs().max().item() <= FP32_TOL
    set_loras(model, [])
    assert torch.equal(_forward(model), _forward(ours))
