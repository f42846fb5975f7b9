"""Variant detection and `yingxi models inspect` from tensor names and shapes only: full-size meta-device
builds of every registered variant (diffusers names, and ComfyUI's prefixed original names), the
ambiguities shapes cannot settle, the CLI on real tiny files, and a non-Wan file."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import save_file
from test_loading import DIFFUSERS_TO_ORIGINAL

from yingxi.cli import main
from yingxi.errors import InputError
from yingxi.models.headers import read_tensor_infos
from yingxi.models.loading import CheckpointError, rename_key
from yingxi.models.wan.config import VARIANTS
from yingxi.models.wan.detect import detect, expert_from_name
from yingxi.models.wan.dit import WanDiT
from yingxi.models.wan.loading import transformer_class
from yingxi.pipelines.wan.inspect import inspect_shapes, meta_infos, plan_memory

GIB = 2**30


@pytest.fixture(scope="module")
def shapes() -> dict[str, dict[str, torch.Tensor]]:
    """{variant: its full-size meta state dict} (no memory, no weights)."""
    out = {}
    for name, variant in VARIANTS.items():
        with torch.device("meta"):
            out[name] = transformer_class(variant.dit)(variant.dit).state_dict()  # VACE: with context blocks
    return out


# The names ComfyUI's repackaged files carry (Comfy-Org/Wan_2.1_ComfyUI_repackaged, Wan_2.2_...).
COMFY_NAMES = {
    "wan2.1-t2v-1.3b": "wan2.1_t2v_1.3B_fp16.safetensors",
    "wan2.1-t2v-14b": "wan2.1_t2v_14B_fp8_e4m3fn.safetensors",
    "wan2.1-i2v-14b-480p": "wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors",
    "wan2.1-i2v-14b-720p": "wan2.1_i2v_720p_14B_fp16.safetensors",
    "wan2.1-flf2v-14b-720p": "wan2.1_flf2v_720p_14B_fp16.safetensors",
    "wan2.2-ti2v-5b": "wan2.2_ti2v_5B_fp16.safetensors",
    "wan2.2-t2v-a14b": "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
    "wan2.2-i2v-a14b": "wan2.2_i2v_low_noise_14B_fp16.safetensors",
    "wan2.1-vace-1.3b": "wan2.1_vace_1.3B_fp16.safetensors",
    "wan2.1-vace-14b": "wan2.1_vace_14B_fp16.safetensors",
    "wan2.2-vace-fun-a14b": "wan2.2_fun_vace_high_noise_14B_bf16.safetensors",
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_is_detected_from_full_size_shapes(shapes, name):
    sd = shapes[name]
    original = {rename_key(k, DIFFUSERS_TO_ORIGINAL): t.shape for k, t in sd.items()}  # Wan's own names
    comfy = {f"model.diffusion_model.{k}": s for k, s in original.items()}  # ComfyUI's prefix
    for table in ({k: t.shape for k, t in sd.items()}, original, comfy):
        found = detect(table, name=COMFY_NAMES[name])
        assert found.variant is VARIANTS[name]  # the registered row, with the authors' sampling defaults
        assert found.expert == {
            "wan2.2-t2v-a14b": "high",
            "wan2.2-i2v-a14b": "low",
            "wan2.2-vace-fun-a14b": "high",
        }.get(name)


def test_ambiguous_shapes_need_the_name_or_the_users_choice(shapes):
    i2v = {k: t.shape for k, t in shapes["wan2.1-i2v-14b-480p"].items()}
    with pytest.raises(InputError, match=r"could be wan2\.1-i2v-14b-480p or wan2\.1-i2v-14b-720p .* "
                       r"--model-variant wan2\.1-i2v-14b-480p") as info:  # fmt: skip
        detect(i2v, name="my_i2v.safetensors")
    assert info.value.field == "model_variant"
    assert (
        detect(i2v, name="x.safetensors", variant="wan2.1-i2v-14b-720p").variant.name == "wan2.1-i2v-14b-720p"
    )
    with pytest.raises(
        InputError, match=r"has the tensors of wan2\.1-i2v-14b-480p or .*, not wan2\.1-t2v-14b"
    ):
        detect(i2v, name="x.safetensors", variant="wan2.1-t2v-14b")
    t2v = {k: t.shape for k, t in shapes["wan2.1-t2v-14b"].items()}
    with pytest.raises(InputError, match=r"wan2\.1-t2v-14b or wan2\.2-t2v-a14b"):
        detect(t2v, name="renamed.safetensors")
    assert detect(t2v, name="renamed.safetensors", paired=True).variant.name == "wan2.2-t2v-a14b"
    assert detect(t2v, name="Wan2_2-T2V-A14B-LOW_fp8_e4m3fn_scaled_KJ.safetensors").expert == "low"
    # Wan 2.2 I2V A14B: in_dim 36 without CLIP's img_emb; it cannot be 2.1.
    a14b = {k: t.shape for k, t in shapes["wan2.2-i2v-a14b"].items()}
    assert detect(a14b, name="model.safetensors").variant.name == "wan2.2-i2v-a14b"
    assert expert_from_name("wan2.2_i2v_high_noise_14B_fp16.safetensors") == "high"
    assert expert_from_name("wan2.1_i2v_480p_14B_fp16.safetensors") is None


@pytest.mark.parametrize("name", list(VARIANTS))
def test_inspect_figures_of_full_size_builds_match_the_parameter_arithmetic(shapes, name):
    variant = VARIANTS[name]
    report = inspect_shapes(meta_infos(shapes[name], "bf16"), file=COMFY_NAMES[name])
    n = variant.dit.num_params()
    assert abs(report.params - n) <= 0.02 * n and report.storage == "bf16"
    assert abs(report.stored_bytes - 2 * n) <= 0.02 * 2 * n
    bf16 = plan_memory([report], dtype="bf16")
    assert abs(bf16.device_bytes - 2 * n) <= 0.02 * 2 * n and bf16.host_bytes == 0
    fp8 = plan_memory([report], dtype="bf16", weights="fp8", offload="model")
    assert 0.5 * n <= fp8.device_bytes <= 0.55 * bf16.device_bytes and fp8.host_bytes == fp8.device_bytes
    blocks = plan_memory([report], dtype="bf16", offload="blocks", vram=24 * GIB)
    per_block = (2 * n) / variant.dit.num_layers
    assert blocks.device_bytes < 3 * per_block and blocks.fits
    if variant.two_experts:  # both experts resident without offload
        pair = plan_memory([report, report], dtype="bf16", vram=40 * GIB)
        assert pair.device_bytes == 2 * bf16.device_bytes and pair.fits is False


def _tiny_file(path, dtype=torch.bfloat16, fp8_scaled=False):
    """A tiny Wan 2.1 T2V transformer file as ComfyUI writes one (prefix, original names, marker tensors)."""
    from tiny import tiny_dit_config

    from yingxi.models.wan.config import WanDiTConfig

    cfg = dataclasses.replace(WanDiTConfig.from_diffusers(tiny_dit_config("t2v")), num_attention_heads=1,
                              attention_head_dim=128)  # fmt: skip
    model = WanDiT(cfg)
    out = {}
    for k, v in model.state_dict().items():
        key = "model.diffusion_model." + rename_key(k, DIFFUSERS_TO_ORIGINAL)
        if fp8_scaled and v.ndim == 2 and "blocks" in k:
            out[key] = v.to(torch.float8_e4m3fn)
            out[key.removesuffix(".weight") + ".scale_weight"] = torch.ones(1)
        else:
            out[key] = v.to(dtype)
    if fp8_scaled:
        out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    save_file(out, str(path))
    return cfg


def test_cli_inspect_on_tiny_files(tmp_path, capsys):
    cfg = _tiny_file(tmp_path / "wan2.1_t2v_tiny_bf16.safetensors")
    _tiny_file(tmp_path / "wan2.1_t2v_tiny_fp8_scaled.safetensors", fp8_scaled=True)
    n = cfg.num_params()
    assert (
        main(["models", "inspect", str(tmp_path / "wan2.1_t2v_tiny_bf16.safetensors"), "--dtype", "fp32"])
        == 0
    )
    out = capsys.readouterr().out
    assert "wan2.1_t2v_tiny_bf16 (built like wan2.1-t2v-1.3b; does t2v)" in out
    assert f"storage bf16, {n:,} parameters" in out
    assert f"{2 * n / 2**20:.2f} MiB on disk" in out  # bf16: 2 bytes a parameter
    assert f"dtype float32, weights as stored, offload none: device {4 * n / 2**20:.2f} MiB" in out
    infos, _ = read_tensor_infos(tmp_path / "wan2.1_t2v_tiny_fp8_scaled.safetensors")
    assert infos["scaled_fp8"].dtype == "fp8_e4m3fn"
    assert main(["models", "inspect", str(tmp_path / "wan2.1_t2v_tiny_fp8_scaled.safetensors")]) == 0
    out = capsys.readouterr().out
    assert f"storage fp8_e4m3fn scaled, {n:,} parameters" in out  # markers and scales are not parameters
    assert "weights as stored" in out
    # An impossible combination is refused with the numbers (exit 2, one line).
    assert (
        main(["models", "inspect", str(tmp_path / "wan2.1_t2v_tiny_bf16.safetensors"), "--vram", "0.0001"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1
        and "more than the 0.10 MiB this device has" in err
        and "--offload blocks" in err
    )


def test_cli_inspect_refuses_a_non_wan_file(tmp_path, capsys):
    save_file({"encoder.weight": torch.zeros(4, 4)}, str(tmp_path / "sdxl_vae.safetensors"))
    (tmp_path / "garbage.safetensors").write_bytes(b"\xff" * 64)
    for file in ("sdxl_vae.safetensors", "garbage.safetensors"):
        assert main(["models", "inspect", str(tmp_path / file)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and file in err, err
    with pytest.raises(CheckpointError, match="not a Wan transformer"):
        detect({"encoder.weight": (4, 4)}, name="x.safetensors")


def test_cli_inspect_on_a_gguf_file(tmp_path, capsys):
    from gguf_files import original_state, write_wan_gguf
    from tiny import tiny_dit_config

    from yingxi.models.wan.config import WanDiTConfig

    cfg = dataclasses.replace(WanDiTConfig.from_diffusers(tiny_dit_config("t2v")), num_attention_heads=1,
                              attention_head_dim=128)  # fmt: skip
    path = tmp_path / "wan2.1-t2v-tiny-Q8_0.gguf"
    write_wan_gguf(path, original_state(WanDiT(cfg)), "Q8_0")
    assert main(["models", "inspect", str(path), "--vram", "1"]) == 0
    out = capsys.readouterr().out
    assert f"storage GGUF Q8_0, {cfg.num_params():,} parameters" in out and "(fits)" in out
    infos, _ = read_tensor_infos(path)
    assert infos["patch_embedding.weight"].shape == (128, 16, 1, 2, 2)  # comfy.gguf.orig_shape, not the rows


def _loaded_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


@pytest.mark.parametrize(
    "stored, dtype, weights",
    [("fp32", "fp32", None), ("bf16", "bf16", None), ("bf16", "fp32", "fp8"), ("fp8", "bf16", None),
     ("Q8_0", "bf16", None)],
)  # fmt: skip
def test_inspect_bytes_are_what_load_transformer_holds(tmp_path, stored, dtype, weights):
    """The plan is accounting of the same rules the loader applies: compare it with a loaded model."""
    from gguf_files import original_state, write_wan_gguf
    from tiny import tiny_dit_config

    from yingxi.models.wan.config import WanDiTConfig
    from yingxi.models.wan.loading import load_transformer
    from yingxi.pipelines.wan.inspect import inspect_file

    if stored == "Q8_0":
        cfg = dataclasses.replace(WanDiTConfig.from_diffusers(tiny_dit_config("t2v")), num_attention_heads=1,
                                  attention_head_dim=128)  # fmt: skip
        path = tmp_path / "tiny-Q8_0.gguf"
        write_wan_gguf(path, original_state(WanDiT(cfg)), "Q8_0")
    else:
        path = tmp_path / f"wan2.1_t2v_tiny_{stored}.safetensors"
        _tiny_file(path, torch.float32 if stored == "fp32" else torch.bfloat16, fp8_scaled=stored == "fp8")
    report = inspect_file(path)
    plan = plan_memory([report], dtype=dtype, weights=weights)
    model = load_transformer(path, dtype=dtype, config=report.detection.config, weights=weights)
    loaded = _loaded_bytes(model)
    assert abs(plan.device_bytes - loaded) <= 0.02 * loaded, (plan.device_bytes, loaded)


def test_cli_inspect_an_a14b_pair_from_a_comfy_root(tmp_path, capsys):
    folder = tmp_path / "ComfyUI" / "models" / "diffusion_models"
    folder.mkdir(parents=True)
    cfg = _tiny_file(folder / "wan2.2_t2v_high_noise_tiny_fp16.safetensors", torch.float16)
    _tiny_file(folder / "wan2.2_t2v_low_noise_tiny_fp16.safetensors", torch.float16)
    n = cfg.num_params()
    args = ["models", "inspect", "wan2.2_t2v_high_noise_tiny_fp16", "wan2.2_t2v_low_noise_tiny_fp16",
            "--comfy-root", str(tmp_path / "ComfyUI"), "--offload", "model", "--dtype", "fp16"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(high-noise expert) (built like wan2.2-t2v-a14b" in out and "(low-noise expert)" in out
    assert "storage fp16" in out and f"{n:,} parameters" in out
    fp32_part = sum(p.numel() for k, p in WanDiT(cfg).state_dict().items() if "time_embedder" in k or
                    "scale_shift_table" in k or ".norm2." in k)  # fmt: skip  # KEEP_FP32: 4 bytes, not 2
    one = 2 * n + 2 * fp32_part
    assert f"offload model: device {one / 2**20:.2f} MiB" in out and f"host {2 * one / 2**20:.2f} MiB" in out
    swapped = ["models", "inspect", *args[3:1:-1], *args[4:]]
    assert main(swapped) == 2 and "give the high-noise file as --model" in capsys.readouterr().err


def test_pth_files_and_unsupported_wan_kinds(tmp_path, shapes, capsys):
    sd = {
        rename_key(k, DIFFUSERS_TO_ORIGINAL): torch.zeros(t.shape)
        for k, t in WanDiT(_small()).state_dict().items()
    }
    torch.save(sd, tmp_path / "wan_t2v.pth")
    assert main(["models", "inspect", str(tmp_path / "wan_t2v.pth"), "--dtype", "fp32"]) == 0
    assert "storage fp32" in capsys.readouterr().out
    animate = {
        **{k: t.shape for k, t in shapes["wan2.1-t2v-14b"].items()},
        "face_adapter.fuser_blocks.0.k_norm.weight": (128,),
    }
    with pytest.raises(CheckpointError, match="a Wan Animate transformer"):
        detect(animate, name="wan2.2_animate_14B_bf16.safetensors")


def _small():
    from tiny import tiny_dit_config

    from yingxi.models.wan.config import WanDiTConfig

    return dataclasses.replace(WanDiTConfig.from_diffusers(tiny_dit_config("t2v")), num_attention_heads=1,
                               attention_head_dim=128)  # fmt: skip
