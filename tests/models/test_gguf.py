"""GGUF block dequantizers against the `gguf` package's numpy reference and diffusers' torch ports; the reader's
shapes, types, prefix handling and errors on files written with `gguf.GGUFWriter`."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as T

from yingxi.models.gguf import FLOAT_TYPES, QUANT_TYPES, dequantize_blocks, gguf_bytes, gguf_keys, read_gguf
from yingxi.models.loading import (
    CheckpointError,
    cast_by_name,
    checkpoint_files,
    checkpoint_keys,
    read_state_dict,
)
from yingxi.models.quant import QuantizedTensor, QuantLinear, dequantize, qtypes

K_SCALES = {"Q6_K": (208,), "Q5_K": (0, 2), "Q4_K": (0, 2), "Q3_K": (108,), "Q2_K": (80, 82)}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def quantized(qtype: str, rows: int, cols: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """(stored bytes (rows, bytes per row), how they were made): the gguf package's own quantizer where it has
    one, else random bits with finite random fp16 scales (every bit pattern of the rest is a valid block)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 3.0, (rows, 1))).astype(np.float32)
    try:
        return gguf.quants.quantize(x, T[qtype]), "quantize"
    except NotImplementedError:  # the K-quants: gguf-py decodes them but does not encode them
        block, size = QUANT_TYPES[qtype]
        data = rng.integers(0, 256, (rows * cols // block, size), dtype=np.uint8)
        for at in K_SCALES[qtype]:
            data[:, at : at + 2] = rng.normal(0, 0.05, (len(data), 1)).astype(np.float16).view(np.uint8)
        return data.reshape(rows, -1), "random blocks"


def test_block_sizes_are_ggml_s():
    for name, sizes in QUANT_TYPES.items():
        assert gguf.GGML_QUANT_SIZES[T[name]] == sizes, name
    assert gguf_bytes("Q4_K", 5120 * 13824) == 5120 * 13824 // 256 * 144
    assert gguf_bytes("Q8_0", 64) == 68 and gguf_bytes("BF16", 10) == 20 and gguf_bytes("F32", 3) == 12
    with pytest.raises(CheckpointError, match="multiple"):
        gguf_bytes("Q4_K", 100)
    with pytest.raises(CheckpointError, match='did you mean "Q4_K"'):
        gguf_bytes("Q4K", 256)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("qtype", list(QUANT_TYPES))
def test_dequantize_matches_gguf_reference_exactly(qtype, device):
    """Both compute in float32 in the same order: equal bit for bit."""
    data, _ = quantized(qtype, 6, 768)
    want = gguf.quants.dequantize(data, T[qtype])  # (6, 768) float32
    got = dequantize(qtype, torch.from_numpy(data).to(device), None, (6, 768), torch.float32)
    assert got.device.type == device and got.dtype == torch.float32
    np.testing.assert_array_equal(got.cpu().numpy(), want)
    # other dtypes: the float32 values rounded once
    half = dequantize(qtype, torch.from_numpy(data).to(device), None, (6, 768), torch.bfloat16)
    assert torch.equal(half.cpu(), torch.from_numpy(want).to(torch.bfloat16))


@pytest.mark.parametrize("qtype", list(QUANT_TYPES))
def test_dequantize_matches_diffusers_within_fp16_rounding(qtype):
    """diffusers' ports (after city96's dequant.py) multiply the fp16 scales in fp16; ours in float32. One
    rounding (Q8_0, Q4_0, Q5_0) gives exactly ours rounded to fp16; the K-quants round d*scale, then the
    product, then the minimum's subtraction: within 3 fp16 half-ulps of the block's largest magnitude."""
    from diffusers.quantizers.gguf.utils import dequantize_functions

    data, _ = quantized(qtype, 4, 512, seed=1)
    block, size = QUANT_TYPES[qtype]
    ours = dequantize_blocks(qtype, torch.from_numpy(data)).reshape(-1, block)  # (blocks, block)
    theirs = dequantize_functions[T[qtype]](torch.from_numpy(data).reshape(-1, size), block, size)
    theirs = theirs.reshape(-1, block).float()
    if qtype in ("Q8_0", "Q4_0", "Q5_0"):
        assert torch.equal(theirs, ours.half().float())
    else:
        bound = 3 * 2.0**-11 * ours.abs().amax(dim=1, keepdim=True) + 2.0**-24
        assert ((theirs - ours).abs() <= bound).all()


def test_gguf_types_are_registered_and_run_in_quant_linear():
    assert set(QUANT_TYPES) <= set(qtypes())
    data, _ = quantized("Q4_K", 32, 256)
    q = QuantizedTensor("Q4_K", torch.from_numpy(data), (32, 256))
    bias = torch.randn(32)
    layer = QuantLinear.from_quantized(q, bias)
    x = torch.randn(3, 256)
    w = torch.from_numpy(gguf.quants.dequantize(data, T.Q4_K))
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, w, bias), rtol=0, atol=0)
    assert layer.qweight.nbytes == gguf_bytes("Q4_K", 32 * 256) == q.nbytes
    with pytest.raises(CheckpointError, match="not the"):
        dequantize("Q8_0", torch.from_numpy(quantized("Q8_0", 2, 64)[0]), None, (2, 32), torch.float32)


# --- the reader ---------------------------------------------------------------------------------------


def write(path, tensors: dict[str, tuple[np.ndarray, str]], *, arch: str | None = "wan", shapes=None):
    writer = gguf.GGUFWriter(str(path), arch=arch or "wan")
    if arch is None:
        writer.kv_data[0].pop("general.architecture")
    for name, shape in (shapes or {}).items():
        writer.add_array(f"comfy.gguf.orig_shape.{name}", list(shape))
    for name, (data, qtype) in tensors.items():
        writer.add_tensor(name, data, raw_dtype=T[qtype])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_read_gguf_shapes_types_and_prefix(tmp_path):
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((3, 5)).astype(np.float32)
    bf = torch.randn(4, 6).to(torch.bfloat16)
    conv = rng.standard_normal((32, 16, 1, 2, 2)).astype(np.float32)  # 5-D, stored as rows of 256
    q8 = gguf.quants.quantize(conv.reshape(-1, 256), T.Q8_0)
    lin, _ = quantized("Q5_K", 8, 512)
    p = "model.diffusion_model."
    path = write(
        tmp_path / "wan.gguf",
        {
            p + "head.modulation": (f32, "F32"),
            p + "blocks.0.norm3.weight": (f32[0].astype(np.float16), "F16"),
            p + "blocks.0.self_attn.norm_q.weight": (bf.view(torch.int16).numpy().view(np.uint8), "BF16"),
            p + "patch_embedding.weight": (q8, "Q8_0"),
            p + "blocks.0.ffn.0.weight": (lin, "Q5_K"),
            "vae.decoder.conv.weight": (f32, "F32"),  # outside the prefix: not the transformer's
        },
        shapes={p + "patch_embedding.weight": conv.shape},
    )
    sd = read_gguf(path)
    assert list(sd) == gguf_keys(path) == checkpoint_keys(path)
    assert list(sd) == [
        "head.modulation",
        "blocks.0.norm3.weight",
        "blocks.0.self_attn.norm_q.weight",
        "patch_embedding.weight",
        "blocks.0.ffn.0.weight",
    ]
    assert sd["head.modulation"].dtype == torch.float32 and np.array_equal(sd["head.modulation"].numpy(), f32)
    assert sd["blocks.0.norm3.weight"].dtype == torch.float16
    assert torch.equal(sd["blocks.0.self_attn.norm_q.weight"], bf)  # BF16 bit for bit, as a plain tensor
    pe = sd["patch_embedding.weight"]
    assert isinstance(pe, QuantizedTensor) and pe.qtype == "Q8_0" and pe.shape == conv.shape
    want = gguf.quants.dequantize(q8, T.Q8_0).reshape(conv.shape)
    assert np.array_equal(pe.dequantize().numpy(), want)
    ffn = sd["blocks.0.ffn.0.weight"]
    assert (
        ffn.shape == (8, 512) and ffn.data.dtype == torch.uint8 and ffn.nbytes == gguf_bytes("Q5_K", 8 * 512)
    )

    # through models/loading: the file itself, cast while reading, the same entries
    assert checkpoint_files(path) == [path]
    cast = read_state_dict(path, cast=cast_by_name("bf16", "cpu", ("modulation",)))
    assert (
        cast["blocks.0.norm3.weight"].dtype == torch.bfloat16
        and cast["head.modulation"].dtype == torch.float32
    )
    assert isinstance(cast["blocks.0.ffn.0.weight"], QuantizedTensor)


def test_read_gguf_without_prefix_or_architecture(tmp_path):
    w = np.ones((4, 4), np.float32)
    plain = write(tmp_path / "plain.gguf", {"blocks.0.self_attn.q.weight": (w, "F32")})
    assert gguf_keys(plain) == ["blocks.0.self_attn.q.weight"]
    # sd.cpp-style files name no architecture: accepted when the tensor names are a Wan transformer's
    bare = write(tmp_path / "bare.gguf", {"head.modulation": (w, "F32")}, arch=None)
    assert list(read_gguf(bare)) == ["head.modulation"]
    other = write(tmp_path / "other.gguf", {"double_blocks.0.img_attn.proj.weight": (w, "F32")}, arch=None)
    with pytest.raises(CheckpointError, match="not a Wan transformer") as err:
        read_gguf(other)
    assert err.value.file == str(other)


@pytest.mark.parametrize(("arch", "hint"), (("flux", None), ("wan2", '(did you mean "wan"?)')))
def test_other_architectures_are_refused(tmp_path, arch, hint):
    path = write(tmp_path / f"{arch}.gguf", {"x.weight": (np.ones((2, 2), np.float32), "F32")}, arch=arch)
    for read in (read_gguf, gguf_keys, checkpoint_keys):
        with pytest.raises(CheckpointError, match=f'GGUF architecture "{arch}"') as err:
            read(path)
        assert err.value.file == str(path) and "not a Wan video model" in str(err.value)
        assert hint is None or hint in str(err.value)


def test_unknown_tensor_type_names_tensor_type_and_closest(tmp_path):
    data = np.zeros((2, 2 * gguf.GGML_QUANT_SIZES[T.IQ4_NL][1]), np.uint8)  # 2 rows of 64 values
    path = write(tmp_path / "iq.gguf", {"blocks.0.self_attn.q.weight": (data, "IQ4_NL")})
    with pytest.raises(CheckpointError) as err:
        read_gguf(path)
    msg = str(err.value)
    assert "blocks.0.self_attn.q.weight" in msg and 'GGUF tensor type "IQ4_NL"' in msg and str(path) in msg
    assert 'did you mean "Q4_' in msg
    assert "Q4_K" in msg  # the accepted list


def test_bad_files_are_checkpoint_errors(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(CheckpointError, match="cannot read GGUF file") as err:
        read_gguf(junk)
    assert err.value.file == str(junk)
    good = write(tmp_path / "good.gguf", {"head.modulation": (np.ones((4, 64), np.float32), "F32")})
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good.read_bytes()[:-300])
    with pytest.raises(CheckpointError, match="cannot read GGUF file"):
        read_gguf(cut)
    wrong = write(
        tmp_path / "shape.gguf",
        {"head.modulation": (np.ones((4, 64), np.float32), "F32")},
        shapes={"head.modulation": (3, 64)},
    )
    with pytest.raises(CheckpointError, match=r"original shape \(3, 64\) does not hold the 256"):
        read_gguf(wrong)


def test_float_types_are_plain_tensors():
    assert set(FLOAT_TYPES) == {"F32", "F16", "BF16"}
    assert not set(FLOAT_TYPES) & set(QUANT_TYPES)
